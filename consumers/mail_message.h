#pragma once
// Mails as Passage sends them: the rendered message (plain text and HTML alternatives),
// templates with {{placeholders}} per organization, and the RFC 5322 text that goes to
// SMTP or into an .eml file. Pure: no I/O except template loading.
//
//   mail_template t = template_for(mail_kind::invitation, templates_dir, org_id);
//   mail_message m = render(t, {{"title", title}, {"link", url}}, from, to, message_id);
//   std::string wire = to_rfc5322(m, now);
//
// Header values never carry CR or LF (header injection): every control character in a
// value is replaced by a space, and non-ASCII text is sent as RFC 2047 encoded words.

#include <map>
#include <span>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace passage::consumers {

struct mail_message {
  std::string from;  // "Name <addr>" or "addr"
  std::string to;    // bare address
  std::string subject;
  std::string text;        // text/plain body, UTF-8
  std::string html;        // text/html body, UTF-8; empty: text only
  std::string message_id;  // "<…@…>"
};

// One kind of mail, as templates: `{{name}}` is replaced by the value of `name` (HTML-escaped
// in `html`, except values whose name ends in `_html`, which the caller built as markup from
// escaped parts); unknown names render as nothing.
struct mail_template {
  std::string subject;
  std::string text;
  std::string html;
};

using template_values = std::map<std::string, std::string, std::less<>>;
// One value of a template as views (render_views()): `name` once per call.
struct template_value {
  std::string_view name;
  std::string_view value;
};

// The kinds of mail Passage sends, each with a built-in template: the private invitation
// and the reminder to an addressee who has not claimed ({{title}}, {{description}},
// {{link}}); the welcome mail of a new account (welcome_mail.h; also {{name}} and
// {{expires_at}}) and, with the same values, the mail of a set-password link staff sent
// again (`password_link`: the account exists already); the claim digest to an invite's
// creator ({{title}}, {{count}}, {{claims}}, {{claims_html}}, {{invite_id}}).
enum class mail_kind { invitation, reminder, welcome, password_link, claim_digest };
// "invitation", "reminder", "welcome", "password_link", "claim_digest"
std::string_view to_string(mail_kind k);
mail_template default_template(mail_kind k);
// `<dir>/<org_id>/<kind>.subject|.txt|.html` where present, else the built-in part.
// An empty `dir` gives the built-in template.
mail_template template_for(mail_kind k, const std::string& dir, std::string_view org_id);

mail_message render(const mail_template& t, const template_values& values, std::string from,
                    std::string to, std::string message_id);
// render() from a few values as views (no map and no copies of the values: one per mail,
// the welcome mail's four). The first value of a name counts.
mail_message render_views(const mail_template& t, std::span<const template_value> values,
                          std::string from, std::string to, std::string message_id);

// A header value safe to write: control characters (CR, LF, TAB, …) become spaces, runs of
// spaces collapse, and text with non-ASCII bytes becomes RFC 2047 base64 encoded words.
std::string header_value(std::string_view raw);

// The whole message with CRLF line ends: headers, then multipart/alternative (text, html)
// with base64 bodies, so no body line can be mistaken for SMTP's end of data.
std::string to_rfc5322(const mail_message& m, timestamp date);

}  // namespace passage::consumers
