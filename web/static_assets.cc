#include "web/static_assets.h"

#include <algorithm>

#include "web/embedded_assets.h"

namespace passage::web {
namespace {

namespace http = api::http;

std::string_view content_type_of(std::string_view name) {
  struct entry {
    std::string_view ext, type;
  };
  static constexpr entry types[] = {
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".html", "text/html; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
  };
  for (const auto& t : types) {
    if (name.ends_with(t.ext)) return t.type;
  }
  return "application/octet-stream";
}

std::string console_page() {
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>Passage console</title>"
         "<link rel=\"stylesheet\" href=\"" +
         asset_url("passage.css") +
         "\">"
         "<script type=\"module\" src=\"" +
         asset_url("console.js") +
         "\"></script></head>\n<body class=\"console\">"
         "<a class=\"skip\" href=\"#main\">Skip to content</a>"
         "<header class=\"topbar\"><span class=\"brand\">Passage</span>"
         "<nav id=\"nav\" aria-label=\"Console\"></nav></header>\n"
         "<main id=\"main\" tabindex=\"-1\"><noscript><p>The console needs JavaScript. Every "
         "action is also available through the HTTP API (see /openapi.json).</p></noscript>"
         "</main>\n<div id=\"toast\" class=\"toast\" role=\"status\" aria-live=\"polite\"></div>"
         "</body></html>\n";
}

void serve_asset(const api::request& req, api::request_context& ctx, api::responder respond) {
  auto a = find_asset(ctx.params.get_or("file", ""));
  if (!a || ctx.params.get_or("version", "") != assets_version()) {
    return respond(api::problem_response(api::make_problem("not_found", "no such asset"))), void();
  }
  auto inm = req.find(http::field::if_none_match);
  bool fresh = inm != req.end() && inm->value().find(a->etag) != std::string_view::npos;
  api::response res{fresh ? http::status::not_modified : http::status::ok, req.version()};
  res.set(http::field::etag, a->etag);
  res.set(http::field::cache_control, "public, max-age=31536000, immutable");
  res.set("X-Content-Type-Options", "nosniff");
  if (!fresh) {
    res.set(http::field::content_type, std::string(a->content_type));
    res.body() = std::string(a->body);
  }
  res.prepare_payload();
  respond(std::move(res));
}

}  // namespace

std::optional<asset> find_asset(std::string_view name) {
  const auto* end = embedded::files + embedded::file_count;
  const auto* f = std::find_if(embedded::files, end, [&](const embedded::file& e) {
    return std::string_view(e.name) == name;
  });
  if (f == end) return std::nullopt;
  return asset{f->name, content_type_of(f->name),
               std::string_view(reinterpret_cast<const char*>(f->bytes), f->size),
               "\"" + std::string(f->sha256_prefix) + "\""};
}

std::string_view assets_version() { return embedded::version; }

std::string asset_url(std::string_view name) {
  return "/assets/" + std::string(assets_version()) + "/" + std::string(name);
}

std::string_view page_security_policy() {
  return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
         "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
}

void set_page_headers(api::response& res) {
  res.set("Content-Security-Policy", std::string(page_security_policy()));
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set(http::field::cache_control, "no-store");
}

void register_routes(api::router& r) {
  r.add(http::verb::get, "/assets/{version}/{file}", serve_asset);
  r.add(http::verb::get, "/console",
        [](const api::request&, api::request_context&, api::responder respond) {
          auto res =
              api::text_response(http::status::ok, console_page(), "text/html; charset=utf-8");
          set_page_headers(res);
          respond(std::move(res));
        });
}

}  // namespace passage::web
