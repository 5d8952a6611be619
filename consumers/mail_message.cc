#include "consumers/mail_message.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/encoding.h"

namespace passage::consumers {
namespace {

// Appends header_value(raw): the text itself when it has no control and no non-ASCII
// byte, as most values have.
void append_header_value(std::string& out, std::string_view raw) {
  const bool plain = std::all_of(raw.begin(), raw.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f;
  });
  if (plain) {
    out += raw;
  } else {
    out += header_value(raw);
  }
}

// "Fri, 20 Nov 2026 09:00:00 +0000" (RFC 5322 date-time, UTC), as strftime() with
// "%a, %d %b %Y %H:%M:%S +0000" writes it in the C locale.
// The text of the last second a thread wrote is kept: a run's mails, written one after
// another, mostly fall in one second (gmtime_r and snprintf were ~2 % of the mailer's
// instructions per welcome mail).
void append_date(std::string& out, timestamp date) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct last_date {
    bool set = false;
    std::int64_t secs = 0;
    char text[64] = {};
    std::size_t size = 0;
  };
  thread_local last_date last;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(date.time_since_epoch());
  if (!last.set || last.secs != secs.count()) {
    const std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    const int n = std::snprintf(last.text, sizeof last.text, "%s, %02d %s %d %02d:%02d:%02d +0000",
                                days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                                tm.tm_hour, tm.tm_min, tm.tm_sec);
    last.size = std::min(static_cast<std::size_t>(std::max(n, 0)), sizeof last.text - 1);
    last.secs = secs.count();
    last.set = true;
  }
  out.append(last.text, last.size);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// `tpl` with its {{placeholders}} replaced: `find(name)` gives a placeholder's value
// (nullptr: renders as nothing).
template <typename Find>
std::string fill(std::string_view tpl, const Find& find, bool escape) {
  std::string out;
  out.reserve(tpl.size() + 128);
  std::size_t i = 0;
  while (i < tpl.size()) {
    auto open = tpl.find("{{", i);
    if (open == std::string_view::npos) break;
    auto close = tpl.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    out.append(tpl.substr(i, open - i));
    auto name = tpl.substr(open + 2, close - open - 2);
    if (const std::string_view* value = find(name)) {
      // `*_html` values are markup the caller built from escaped parts.
      if (escape && !name.ends_with("_html")) {
        out += html_escape(*value);
      } else {
        out += *value;
      }
    }
    i = close + 2;
  }
  out.append(tpl.substr(i));
  return out;
}

}  // namespace

std::string_view to_string(mail_kind k) {
  switch (k) {
    case mail_kind::invitation:
      return "invitation";
    case mail_kind::reminder:
      return "reminder";
    case mail_kind::welcome:
      return "welcome";
    case mail_kind::password_link:
      return "password_link";
    case mail_kind::claim_digest:
      return "claim_digest";
  }
  return "invitation";
}

mail_template default_template(mail_kind k) {
  if (k == mail_kind::welcome) {
    return {"Welcome: choose your password ({{title}})",
            "Hello {{name}},\n\nwelcome! Your account was created when you claimed "
            "\"{{title}}\".\n\nChoose your password with this one-time link (it works once, "
            "until {{expires_at}}):\n{{link}}\n\nWe never send passwords by mail. If you did "
            "not claim this invite, you can ignore this mail.\n",
            "<!DOCTYPE html>\n<html><body>\n<p>Hello {{name}},</p>\n<p>welcome! Your account "
            "was created when you claimed <strong>{{title}}</strong>.</p>\n<p><a "
            "href=\"{{link}}\">Choose your password</a> (a one-time link, valid until "
            "{{expires_at}}).</p>\n<p>We never send passwords by mail. If you did not claim "
            "this invite, you can ignore this mail.</p>\n</body></html>\n"};
  }
  if (k == mail_kind::password_link) {
    return {"Your new link to choose a password",
            "Hello {{name}},\n\nhere is a new link to choose the password of your account (it "
            "works once, until {{expires_at}}; links sent to you before no longer work):\n"
            "{{link}}\n\nWe never send passwords by mail. If you did not ask for a new link, "
            "you can ignore this mail.\n",
            "<!DOCTYPE html>\n<html><body>\n<p>Hello {{name}},</p>\n<p>here is a new link to "
            "choose the password of your account.</p>\n<p><a href=\"{{link}}\">Choose your "
            "password</a> (a one-time link, valid until {{expires_at}}; links sent to you before "
            "no longer work).</p>\n<p>We never send passwords by mail. If you did not ask for a "
            "new link, you can ignore this mail.</p>\n</body></html>\n"};
  }
  if (k == mail_kind::claim_digest) {
    return {"New claims ({{count}}): {{title}}",
            "Hello,\n\n{{count}} new claim(s) of your invite \"{{title}}\":\n\n{{claims}}\n"
            "You get this digest because notify_on_claim is on for this invite ({{invite_id}}); "
            "turn it off to stop these mails.\n",
            "<!DOCTYPE html>\n<html><body>\n<p>Hello,</p>\n<p>{{count}} new claim(s) of your "
            "invite <strong>{{title}}</strong>:</p>\n<ul>\n{{claims_html}}</ul>\n<p>You get this "
            "digest because notify_on_claim is on for this invite ({{invite_id}}); turn it off to "
            "stop these mails.</p>\n</body></html>\n"};
  }
  if (k == mail_kind::reminder) {
    return {"Reminder: you are invited to {{title}}",
            "Hello,\n\na reminder: you are invited to \"{{title}}\" and have not claimed your "
            "place yet.\n\n{{description}}\n\nYour personal link (it works for you only):\n"
            "{{link}}\n",
            "<!DOCTYPE html>\n<html><body>\n<p>Hello,</p>\n<p>a reminder: you are invited to "
            "<strong>{{title}}</strong> and have not claimed your place yet.</p>\n"
            "<p>{{description}}</p>\n<p><a href=\"{{link}}\">Open your invitation</a> (it works "
            "for you only).</p>\n</body></html>\n"};
  }
  return {"You are invited: {{title}}",
          "Hello,\n\nyou are invited to \"{{title}}\".\n\n{{description}}\n\n"
          "Your personal link (it works for you only, please do not forward it):\n{{link}}\n",
          "<!DOCTYPE html>\n<html><body>\n<p>Hello,</p>\n<p>you are invited to "
          "<strong>{{title}}</strong>.</p>\n<p>{{description}}</p>\n"
          "<p><a href=\"{{link}}\">Open your invitation</a> (it works for you only, please do "
          "not forward it).</p>\n</body></html>\n"};
}

mail_template template_for(mail_kind k, const std::string& dir, std::string_view org_id) {
  mail_template t = default_template(k);
  if (dir.empty()) return t;
  const auto base = std::filesystem::path(dir) / std::string(org_id);
  const std::string name(to_string(k));
  auto override_with = [&](const std::string& file, std::string& part) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(base / file, ec)) part = read_file(base / file);
  };
  override_with(name + ".subject", t.subject);
  override_with(name + ".txt", t.text);
  override_with(name + ".html", t.html);
  return t;
}

namespace {

template <typename Find>
mail_message render_with(const mail_template& t, const Find& find, std::string from, std::string to,
                         std::string message_id) {
  mail_message m;
  m.from = std::move(from);
  m.to = std::move(to);
  m.subject = fill(t.subject, find, false);
  m.text = fill(t.text, find, false);
  m.html = t.html.empty() ? std::string() : fill(t.html, find, true);
  m.message_id = std::move(message_id);
  return m;
}

}  // namespace

mail_message render(const mail_template& t, const template_values& values, std::string from,
                    std::string to, std::string message_id) {
  std::string_view found;
  const auto find = [&](std::string_view name) -> const std::string_view* {
    const auto it = values.find(name);
    if (it == values.end()) return nullptr;
    found = it->second;
    return &found;
  };
  return render_with(t, find, std::move(from), std::move(to), std::move(message_id));
}

mail_message render_views(const mail_template& t, std::span<const template_value> values,
                          std::string from, std::string to, std::string message_id) {
  const auto find = [&](std::string_view name) -> const std::string_view* {
    for (const auto& v : values) {
      if (v.name == name) return &v.value;
    }
    return nullptr;
  };
  return render_with(t, find, std::move(from), std::move(to), std::move(message_id));
}

std::string header_value(std::string_view raw) {
  std::string clean;
  bool ascii = true;
  for (char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      if (clean.empty() || clean.back() != ' ') clean += ' ';
      continue;
    }
    if (u >= 0x80) ascii = false;
    clean += c;
  }
  if (ascii) return clean;
  // RFC 2047: encoded words of at most 75 characters; split on UTF-8 character starts.
  std::string out;
  std::size_t i = 0;
  while (i < clean.size()) {
    std::size_t n = std::min<std::size_t>(45, clean.size() - i);
    while (i + n < clean.size() && (static_cast<unsigned char>(clean[i + n]) & 0xC0) == 0x80) --n;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64_encode(std::string_view(clean).substr(i, n)) + "?=";
    i += n;
  }
  return out;
}

std::string to_rfc5322(const mail_message& m, timestamp date) {
  const std::string boundary = "=_passage_" + header_value(m.message_id.substr(1, 36));

  std::string out;
  // The headers, and the bodies in base64 (4 characters per 3 bytes, 2 per 76 for CRLF).
  out.reserve(512 + m.from.size() + m.to.size() + m.subject.size() + m.message_id.size() +
              (m.text.size() + m.html.size()) * 140 / 100);
  out += "From: ";
  append_header_value(out, m.from);
  out += "\r\nTo: ";
  append_header_value(out, m.to);
  out += "\r\nSubject: ";
  append_header_value(out, m.subject);
  out += "\r\nDate: ";
  append_date(out, date);
  out += "\r\nMessage-ID: ";
  append_header_value(out, m.message_id);
  out += "\r\nMIME-Version: 1.0\r\n";
  auto part = [&out](std::string_view type, std::string_view body) {
    out += "Content-Type: ";
    out += type;
    out += "; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    base64_append_lines(out, body);
  };
  if (m.html.empty()) {
    part("text/plain", m.text);
    return out;
  }
  out += "Content-Type: multipart/alternative; boundary=\"";
  out += boundary;
  out += "\"\r\n\r\n--";
  out += boundary;
  out += "\r\n";
  part("text/plain", m.text);
  out += "--";
  out += boundary;
  out += "\r\n";
  part("text/html", m.html);
  out += "--";
  out += boundary;
  out += "--\r\n";
  return out;
}

}  // namespace passage::consumers
