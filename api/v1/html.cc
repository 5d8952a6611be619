#include "api/v1/html.h"

namespace passage::api::v1 {
namespace {

constexpr const char* kStyle = R"(
body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.6rem;margin-bottom:.25rem}
img{max-width:100%;height:auto;border-radius:6px}
label{display:block;margin-top:.75rem;font-weight:600}
input[type=text],input[type=email]{width:100%;padding:.5rem;font-size:1rem;border:1px solid #555;border-radius:4px}
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#0b57d0;color:#fff;border:0;border-radius:4px;cursor:pointer}
button:focus,input:focus{outline:3px solid #f4b400;outline-offset:2px}
.status{padding:.75rem;border-radius:4px;margin-top:1rem}
.error{background:#fce8e6;color:#7a1a12}.ok{background:#e6f4ea;color:#0d652d}
ol{padding-left:1.25rem}
)";

// Posts the form to the public claim endpoint and renders the answer.
constexpr const char* kScript = R"(
const form = document.getElementById('claim');
const out = document.getElementById('result');
const messages = {
  expired: 'This invite has expired.',
  not_open_yet: 'This invite is not open yet.',
  full: 'Sorry, this invite is full.',
  not_allowed: 'This invite is not available for your email address.',
  deactivated: 'This invite has been deactivated.',
  deleted: 'This invite no longer exists.',
  details_missing: 'Please fill in the required details.',
  rate_limited: 'Too many attempts. Please try again later.'
};
function text(el, s) { el.textContent = s; }
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  const body = {};
  const answers = {};
  for (const [k, v] of data.entries()) {
    if (k.startsWith('answer.')) answers[k.slice(7)] = v; else if (v !== '') body[k] = v;
  }
  for (const box of form.querySelectorAll('input[type=checkbox]')) answers[box.name.slice(7)] = box.checked ? 'true' : 'false';
  if (Object.keys(answers).length) body.answers = answers;
  const token = localStorage.getItem('passage.learner_token');
  if (token) body.learner_token = token;
  out.className = 'status';
  text(out, 'Claiming…');
  try {
    // A personal link (private invitation) claims through its own route.
    const link = new URLSearchParams(location.search).get('invitation');
    const url = link ? '/v1/public/invitations/' + encodeURIComponent(link) + '/claims'
                     : '/v1/public/invites/' + encodeURIComponent(form.dataset.code) + '/claims';
    const res = await fetch(url, {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
    const json = await res.json();
    if (!res.ok) {
      out.className = 'status error';
      text(out, messages[json.code] || json.detail || 'The claim failed.');
      return;
    }
    localStorage.setItem('passage.learner_token', json.learner_token);
    out.className = 'status ok';
    out.innerHTML = '';
    const h = document.createElement('h2'); text(h, 'You have access'); out.appendChild(h);
    const list = document.createElement('ol');
    for (const t of json.tracks) {
      const li = document.createElement('li');
      let s = t.track_id;
      if (t.access_expires_at) s += ' — until ' + t.access_expires_at;
      if (t.plays_remaining !== null) s += ' — ' + t.plays_remaining + ' plays left';
      text(li, s); list.appendChild(li);
    }
    out.appendChild(list);
  } catch (e) {
    out.className = 'status error';
    text(out, 'The network request failed. Please try again.');
  }
});
)";

std::string field(const std::string& name, const std::string& label, const std::string& type,
                  bool required) {
  std::string id = "f-" + name;
  std::string attrs = required ? " required aria-required=\"true\"" : "";
  if (type == "checkbox") {
    return "<label for=\"" + html_escape(id) + "\"><input type=\"checkbox\" id=\"" +
           html_escape(id) + "\" name=\"answer." + html_escape(name) + "\"" + attrs + "> " +
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

  std::string html =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      html_escape(str("title")) + "</title><style>" + kStyle + "</style></head><body><main>\n";
  html += "<h1>" + html_escape(str("title")) + "</h1>\n";
  auto image = str("image_url");
  if (image.starts_with("https://")) html += "<img src=\"" + html_escape(image) + "\" alt=\"\">\n";
  if (!str("public_description").empty())
    html += "<p>" + html_escape(str("public_description")) + "</p>\n";
  html += "<h2>Tracks</h2><ol>";
  for (const auto& t : invite.value("tracks", nlohmann::json::array())) {
    html += "<li>" + html_escape(t.value("track_id", "")) + "</li>";
  }
  html += "</ol>\n";
  if (status != "active") {
    std::string why = status == "upcoming"
                          ? "This invite opens 24 hours before the event starts (" +
                                html_escape(str("starts_at")) + ")."
                      : status == "expired" ? "This invite has expired."
                      : status == "full"    ? "Sorry, this invite is full."
                                            : "This invite is not available.";
    html += "<p class=\"status error\" role=\"status\">" + why + "</p>\n";
  }
  html += "<form id=\"claim\" data-code=\"" + html_escape(str("code")) + "\" novalidate>\n";
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
      bool required = f.value("required", false);
      html += field(name, f.value("label", name).empty() ? name : f.value("label", name),
                    name == "consent" ? "checkbox" : "text", required);
    }
  }
  html += "<button type=\"submit\">Get access</button>\n</form>\n";
  html += "<div id=\"result\" role=\"status\" aria-live=\"polite\"></div>\n";
  if (invite.value("show_share_button", false)) {
    html +=
        "<p><button type=\"button\" onclick=\"navigator.clipboard.writeText(location.href)\">"
        "Copy link to share</button></p>\n";
  }
  html += "</main><script>" + std::string(kScript) + "</script></body></html>\n";
  return html;
}

std::string not_found_page() {
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Invite not "
         "found</title></head><body><main><h1>Invite not found</h1><p>This invite link is not "
         "valid. Check the link or ask the person who sent it.</p></main></body></html>\n";
}

}  // namespace passage::api::v1
