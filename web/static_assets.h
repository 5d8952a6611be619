#pragma once
// The web console (/console) and the learner page's scripts and styles: plain
// ES modules and CSS from web/static/, embedded in the binary at build time and
// served under one versioned URL prefix (/assets/<version>/<file>) that changes
// whenever any file does, so browsers may cache them for good.
//
//   router r;
//   web::register_routes(r);                       // /assets/{version}/{file}, /console
//   std::string src = web::asset_url("learner.js");  // "/assets/1a2b3c4d5e6f/learner.js"
//
// Pages are plain documents that load these assets; they talk to the server
// only through the public HTTP API.

#include <optional>
#include <string>
#include <string_view>

#include "api/http_types.h"
#include "api/router.h"

namespace passage::web {

struct asset {
  std::string_view name;          // "console.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string etag;  // quoted strong validator from the content hash
};

// The embedded file `name` (no folders), or nullopt.
std::optional<asset> find_asset(std::string_view name);

// The version prefix shared by every asset URL.
std::string_view assets_version();

// "/assets/<version>/<name>" for an embedded file.
std::string asset_url(std::string_view name);

// The Content-Security-Policy of Passage's HTML pages: scripts, styles and
// connections only from this origin, images also from https, nothing inline.
std::string_view page_security_policy();

// Sets the Content-Security-Policy and the other headers every HTML page carries.
void set_page_headers(api::response& res);

// GET /assets/{version}/{file} (immutable caching, ETag, 304 on If-None-Match)
// and GET /console (the admin console's page).
void register_routes(api::router& r);

}  // namespace passage::web
