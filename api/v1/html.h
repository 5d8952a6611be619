#pragma once
// The plain learner page behind an invite link (/i/{code}): the invite's public
// fields, the form its access rule needs, and the result with the track list.
// Works without JavaScript (the invite, why it is closed, the form); web/static/
// learner.js, an embedded module, adds claiming, playing and pausing through the
// public JSON API. No inline code, no CDN; accessible (labels, live region).

#include <nlohmann/json.hpp>

#include <string>

namespace passage::api::v1 {

// `invite` is the public invite JSON, `lead_form` the org's form JSON.
std::string claim_page(const nlohmann::json& invite, const nlohmann::json& lead_form);
std::string not_found_page();

// Escapes text for HTML element content and attribute values.
std::string html_escape(std::string_view s);

}  // namespace passage::api::v1
