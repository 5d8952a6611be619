#include "api/v1/html.h"

#include <algorithm>
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

// Why a claim is refused, by status or rejection code (the same words), for the
// page itself; learner.js says the same for answers it receives.
std::string refusal_text(const std::string& code, const std::string& starts_at) {
  if (code == "upcoming" || code == "not_open_yet") {
    auto starts = parse_rfc3339(starts_at);
    if (!starts) return "This invite is not open yet.";
    auto opens = html_escape(format_rfc3339(*starts - std::chrono::hours(24)));
    return "This invite is not open yet. It opens on <time datetime=\"" + opens + "\">" + opens +
           "</time>, 24 hours before the event starts.";
  }
  if (code == "expired") return "This invite has expired.";
  if (code == "full") return "Sorry, this invite is full: every spot has been taken.";
  if (code == "not_allowed") return "This invite is not available for your email address.";
  if (code == "deactivated") return "This invite is not available at the moment.";
  if (code == "deleted") return "This invite no longer exists.";
  if (code == "details_missing") return "Please fill in the required details.";
  if (code == "rate_limited") return "Too many attempts. Please wait a little and try again.";
  if (code == "invalid_request") return "Please check the details you entered.";
  return "This invite is not available.";
}

// The learner's tracks after a claim, with the claim id and learner token for
// learner.js to take over (play, pause) when scripts run.
std::string access_section(const nlohmann::json& claim) {
  std::string html =
      "<section id=\"access\" class=\"card\" aria-labelledby=\"access-title\" "
      "data-claim-id=\"" +
      html_escape(claim.value("claim_id", "")) + "\" data-learner-token=\"" +
      html_escape(claim.value("learner_token", "")) +
      "\"><h2 id=\"access-title\">Your tracks</h2><ul class=\"claim-tracks\">";
  for (const auto& t : claim.value("tracks", nlohmann::json::array())) {
    std::string left =
        t["plays_remaining"].is_null()
            ? "Unlimited plays"
            : std::to_string(t["plays_remaining"].get<std::int64_t>()) + " plays left";
    std::string until = t["access_expires_at"].is_null()
                            ? "No expiry"
                            : "Access until " + t["access_expires_at"].get<std::string>();
    html += "<li><div><strong>" + html_escape(t.value("track_id", "")) +
            "</strong><div class=\"meta\">" + html_escape(left + " · " + until) +
            "</div></div></li>";
  }
  return html + "</ul></section>\n";
}

std::string field(const std::string& name, const std::string& label, const std::string& type,
                  bool required, const std::string& value) {
  std::string id = "f-" + name;
  std::string attrs = required ? " required aria-required=\"true\"" : "";
  if (type == "checkbox") {
    if (value == "true") attrs += " checked";
    return "<label for=\"" + html_escape(id) + "\"><input type=\"checkbox\" id=\"" +
           html_escape(id) + "\" name=\"" + html_escape(name) + "\"" + attrs + "> " +
           html_escape(label) + "</label>\n";
  }
  return "<label for=\"" + html_escape(id) + "\">" + html_escape(label) +
         (required ? " (required)" : "") + "</label><input type=\"" + type + "\" id=\"" +
         html_escape(id) + "\" name=\"" + html_escape(name) + "\" value=\"" + html_escape(value) +
         "\"" + attrs + ">\n";
}

bool is_url_safe(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '_';
  });
}

}  // namespace

std::string claim_page(const nlohmann::json& invite, const nlohmann::json& lead_form,
                       const claim_page_outcome* outcome, std::string_view invitation) {
  auto str = [&](const char* k) {
    return invite.contains(k) && invite[k].is_string() ? invite[k].get<std::string>()
                                                       : std::string();
  };
  const nlohmann::json submitted = outcome ? outcome->submitted : nlohmann::json::object();
  auto sent = [&](const std::string& name) {
    auto dot = name.find('.');
    const nlohmann::json* j = &submitted;
    if (dot != std::string::npos) {
      if (!submitted.contains("answers")) return std::string();
      j = &submitted["answers"];
    }
    auto key = dot == std::string::npos ? name : name.substr(dot + 1);
    return j->contains(key) && (*j)[key].is_string() ? (*j)[key].get<std::string>() : std::string();
  };
  std::string access = str("access");
  bool needs_email = access != "anyone" ||
                     (invite.contains("require_account") && invite["require_account"].get<bool>());
  std::string status = str("status");
  bool claimed = outcome && outcome->claim.is_object();

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
  if (status != "active" && !outcome) {
    html += "<p id=\"closed\" class=\"notice error\" role=\"status\">" +
            refusal_text(status, str("starts_at")) + "</p>\n";
  }
  // Without scripts the form posts to this page (POST /i/{code}); learner.js
  // posts JSON to the public API instead.
  // Link tokens are URL-safe ("pl1." and base64url); anything else is not kept.
  std::string target = "/i/" + str("code");
  if (!invitation.empty() && is_url_safe(invitation))
    target += "?invitation=" + std::string(invitation);
  html += "<form id=\"claim\" class=\"card\" method=\"post\" action=\"" + html_escape(target) +
          "\" data-code=\"" + html_escape(str("code")) + "\" data-starts-at=\"" +
          html_escape(str("starts_at")) + "\" novalidate" + (claimed ? " hidden" : "") + ">\n";
  html += "<h2>Get access</h2>\n";
  if (needs_email || access == "lead_form") {
    html += field("email", "Email", "email", true, sent("email"));
  } else {
    html += field("email", "Email (optional)", "email", false, sent("email"));
  }
  if (access == "lead_form") {
    html += field("first_name", "First name", "text", true, sent("first_name"));
    html += field("last_name", "Last name", "text", true, sent("last_name"));
    for (const auto& f : lead_form.value("fields", nlohmann::json::array())) {
      std::string name = f.value("name", "");
      bool required = f.value("required", false) || name == "consent";
      // Lead-form answers post as answer.<name>.
      html +=
          field("answer." + name, f.value("label", name).empty() ? name : f.value("label", name),
                name == "consent" ? "checkbox" : "text", required, sent("answer." + name));
    }
  }
  html += "<button type=\"submit\">Get access</button>\n</form>\n";
  if (claimed) {
    html += "<div id=\"result\" class=\"notice ok\" role=\"status\" aria-live=\"polite\">" +
            std::string(outcome->again ? "Welcome back: you already have access."
                                       : "You have access.") +
            "</div>\n" + access_section(outcome->claim);
  } else {
    std::string message;
    if (outcome) {
      message = refusal_text(outcome->rejection, str("starts_at"));
      if (!outcome->missing_field.empty())
        message += " Missing: " + html_escape(outcome->missing_field) + ".";
    }
    html += std::string("<div id=\"result\"") + (outcome ? " class=\"notice error\"" : "") +
            " role=\"status\" aria-live=\"polite\">" + message + "</div>\n";
    html += "<section id=\"access\" aria-labelledby=\"access-title\" hidden></section>\n";
  }
  if (invite.value("show_share_button", false)) {
    html += "<p class=\"share\">Share this invite: <a id=\"share-link\" href=\"" +
            html_escape(str("link")) + "\">" + html_escape(str("link")) +
            "</a> <button type=\"button\" id=\"share\" class=\"secondary\" hidden>Copy "
            "link</button></p>\n";
  }
  html += "</main></body></html>\n";
  return html;
}

nlohmann::json claim_form_body(const std::vector<std::pair<std::string, std::string>>& form) {
  nlohmann::json body = nlohmann::json::object();
  nlohmann::json answers = nlohmann::json::object();
  for (const auto& [name, value] : form) {
    if (name.starts_with("answer.")) {
      answers[name.substr(7)] = value == "on" ? std::string("true") : value;
    } else if (name == "email" || name == "first_name" || name == "last_name") {
      if (!value.empty()) body[name] = value;
    }
  }
  if (!answers.empty()) body["answers"] = answers;
  return body;
}

std::string not_found_page() {
  return page_head("Invite not found", "") +
         "<h1>Invite not found</h1><p>This invite link is not valid. Check the link or ask the "
         "person who sent it.</p></main></body></html>\n";
}

}  // namespace passage::api::v1
