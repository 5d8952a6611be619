#include "api/v1/html.h"

#include <chrono>

#include "common/time_format.h"
#include "web/static_assets.h"

namespace passage::api::v1 {
namespace {

// The head shared by the learner pages: the embedded stylesheet and, when
// `script` is set, a module script (no inline code: the pages run under
// web::page_security_policy()).
std::string page_head(const std::string& title, std::string_view script) {
  std::string head =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      html_escape(title) + "</title><link rel=\"stylesheet\" href=\"" +
      web::asset_url("passage.css") + "\">";
  if (!script.empty())
    head += "<script type=\"module\" src=\"" + web::asset_url(script) + "\"></script>";
  return head + "</head><body class=\"learner\"><main id=\"main\">\n";
}

// Why an invite that is not open refuses claims, for the page itself.
std::string closed_reason(const std::string& status, const std::string& starts_at) {
  if (status == "upcoming") {
    auto starts = parse_rfc3339(starts_at);
    if (!starts) return "This invite is not open yet.";
    return "This invite is not open yet. It opens on <time datetime=\"" +
           html_escape(format_rfc3339(*starts - std::chrono::hours(24))) + "\">" +
           html_escape(format_rfc3339(*starts - std::chrono::hours(24))) +
           "</time>, 24 hours before the event starts.";
  }
  if (status == "expired") return "This invite has expired.";
  if (status == "full") return "Sorry, this invite is full.";
  if (status == "deactivated") return "This invite is not available at the moment.";
  return "This invite is not available.";
}

std::string field(const std::string& name, const std::string& label, const std::string& type,
                  bool required) {
  std::string id = "f-" + name;
  std::string attrs = required ? " required aria-required=\"true\"" : "";
  if (type == "checkbox") {
    return "<label for=\"" + html_escape(id) + "\"><input type=\"checkbox\" id=\"" +
           html_escape(id) + "\" name=\"" + html_escape(name) + "\"" + attrs + "> " +
           html_escape(label) + "</label>\n";
  }
  return "<label for=\"" + html_escape(id) + "\">" + html_escape(label) +
         (required ? " (required)" : "") + "</label><input type=\"" + type + "\" id=\"" +
         html_escape(id) + "\" name=\"" + html_escape(name) + "\"" + attrs + ">\n";
}

}  // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string claim_page(const nlohmann::json& invite, const nlohmann::json& lead_form) {
  auto str = [&](const char* k) {
    return invite.contains(k) && invite[k].is_string() ? invite[k].get<std::string>()
                                                       : std::string();
  };
  std::string access = str("access");
  bool needs_email = access != "anyone" ||
                     (invite.contains("require_account") && invite["require_account"].get<bool>());
  std::string status = str("status");

  std::string html = page_head(str("title"), "learner.js");
  html += "<article class=\"invite\">";
  html += "<h1>" + html_escape(str("title")) + "</h1>\n";
  auto image = str("image_url");
  if (image.starts_with("https://"))
    html += "<img class=\"cover\" src=\"" + html_escape(image) + "\" alt=\"\">\n";
  if (!str("public_description").empty())
    html += "<p>" + html_escape(str("public_description")) + "</p>\n";
  html += "<h2>Tracks</h2><ol class=\"tracks\">";
  for (const auto& t : invite.value("tracks", nlohmann::json::array())) {
    html += "<li>" + html_escape(t.value("track_id", "")) + "</li>";
  }
  html += "</ol></article>\n";
  if (status != "active") {
    html += "<p id=\"closed\" class=\"notice error\" role=\"status\">" +
            closed_reason(status, str("starts_at")) + "</p>\n";
  }
  html += "<form id=\"claim\" class=\"card\" data-code=\"" + html_escape(str("code")) +
          "\" data-starts-at=\"" + html_escape(str("starts_at")) + "\" novalidate>\n";
  html += "<h2>Get access</h2>\n";
  if (needs_email || access == "lead_form") {
    html += field("email", "Email", "email", true);
  } else {
    html += field("email", "Email (optional)", "email", false);
  }
  if (access == "lead_form") {
    html += field("first_name", "First name", "text", true);
    html += field("last_name", "Last name", "text", true);
    for (const auto& f : lead_form.value("fields", nlohmann::json::array())) {
      std::string name = f.value("name", "");
      bool required = f.value("required", false) || name == "consent";
      // Lead-form answers post as answers.<name> (learner.js).
      html += field("answer." + name, f.value("label", name).empty() ? name : f.value("label", name),
                    name == "consent" ? "checkbox" : "text", required);
    }
  }
  html += "<button type=\"submit\">Get access</button>\n"
          "<noscript><p>Claiming needs JavaScript in this browser.</p></noscript></form>\n";
  html += "<div id=\"result\" role=\"status\" aria-live=\"polite\"></div>\n";
  html += "<section id=\"access\" aria-labelledby=\"access-title\" hidden></section>\n";
  if (invite.value("show_share_button", false)) {
    html += "<p class=\"share\">Share this invite: <a id=\"share-link\" href=\"" +
            html_escape(str("link")) + "\">" + html_escape(str("link")) +
            "</a> <button type=\"button\" id=\"share\" class=\"secondary\" hidden>Copy "
            "link</button></p>\n";
  }
  html += "</main></body></html>\n";
  return html;
}

std::string not_found_page() {
  return page_head("Invite not found", "") +
         "<h1>Invite not found</h1><p>This invite link is not valid. Check the link or ask the "
         "person who sent it.</p></main></body></html>\n";
}

}  // namespace passage::api::v1
