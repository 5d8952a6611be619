// Rendering of mails: templates, HTML escaping, header injection, RFC 2047, the MIME shape,
// per-organization templates, and the ids derived from source events.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <vector>

#include "common/encoding.h"
#include "common/time_format.h"
#include "consumers/mail_message.h"
#include "consumers/mail_transport.h"
#include "consumers/mailer.h"
#include "consumers/welcome_mail.h"
#include "tests/support/temp_dir.h"

namespace passage::consumers {
namespace {

const timestamp t0 = *parse_rfc3339("2026-11-20T09:00:00Z");

std::vector<std::string> header_lines(const std::string& wire) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (;;) {
    auto end = wire.find("\r\n", at);
    if (end == std::string::npos || end == at) break;
    out.push_back(wire.substr(at, end - at));
    at = end + 2;
  }
  return out;
}

// The transport's description goes to /v1/system (anyone may read it) and to logs: a
// user and password written into the URL are left out.
TEST(MailTransport, DescriptionLeavesOutCredentialsInTheUrl) {
  auto describe = [](std::string url) {
    return passage::consumers::make_smtp_transport({.url = std::move(url)})->describe();
  };
  EXPECT_EQ(describe("smtp://mailer:s3cr3t@mail.example.com:587"), "smtp://mail.example.com:587");
  EXPECT_EQ(describe("smtps://a%40b:p@ss@mail.example.com/x@y"), "smtps://mail.example.com/x@y");
  EXPECT_EQ(describe("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
  auto tls = passage::consumers::make_smtp_transport(
      {.url = "smtp://u:p@mail.example.com", .starttls = true});
  EXPECT_EQ(tls->describe(), "smtp://mail.example.com (STARTTLS required)");
}

TEST(MailMessage, PlaceholdersAreFilledAndEscapedInHtmlOnly) {
  auto m = render(
      default_template(mail_kind::invitation),
      {{"title", "R&D <intro>"}, {"description", "a \"b\""}, {"link", "https://x/i/C?a=1&b=2"}},
      "Passage <no-reply@example.com>", "ada@example.com", "<1@passage>");
  EXPECT_EQ(m.subject, "You are invited: R&D <intro>");
  EXPECT_NE(m.text.find("\"R&D <intro>\""), std::string::npos);
  EXPECT_NE(m.text.find("https://x/i/C?a=1&b=2"), std::string::npos);
  EXPECT_NE(m.html.find("<strong>R&amp;D &lt;intro&gt;</strong>"), std::string::npos);
  EXPECT_NE(m.html.find("href=\"https://x/i/C?a=1&amp;b=2\""), std::string::npos);
  EXPECT_EQ(m.html.find("<intro>"), std::string::npos);
}

TEST(MailMessage, CrLfInHeaderValuesCannotInjectHeaders) {
  mail_message m;
  m.from = "Evil\r\nBcc: a@evil.example <no-reply@example.com>";
  m.to = "ada@example.com\r\nCc: b@evil.example";
  m.subject = "Hi\r\nX-Injected: yes\n\rTo: c@evil.example";
  m.text = "body";
  m.message_id = "<6f1c2a4e-8b1d-4c3e-9f00-112233445566@passage>";
  const std::string wire = to_rfc5322(m, t0);
  for (const auto& line : header_lines(wire)) {
    EXPECT_FALSE(line.starts_with("Bcc:")) << line;
    EXPECT_FALSE(line.starts_with("Cc:")) << line;
    EXPECT_FALSE(line.starts_with("X-Injected:")) << line;
    EXPECT_FALSE(line.starts_with("To: c@")) << line;
  }
  EXPECT_NE(wire.find("Subject: Hi X-Injected: yes To: c@evil.example\r\n"), std::string::npos);
  EXPECT_EQ(header_value("a\tb\x01"
                         "c"),
            "a b c");
}

TEST(MailMessage, NonAsciiHeadersAreEncodedWords) {
  const std::string v = header_value("Kubernetes für Anfänger – Teil 1 mit einem langen Titel");
  EXPECT_TRUE(v.starts_with("=?UTF-8?B?")) << v;
  for (const auto& line : header_lines(v + "\r\n")) EXPECT_LE(line.size(), 76u) << line;
  EXPECT_EQ(header_value("plain ascii"), "plain ascii");
}

TEST(MailMessage, MultipartAlternativeWithBase64Bodies) {
  auto m =
      render(default_template(mail_kind::invitation), {{"title", "T"}, {"link", "L"}},
             "f@example.com", "t@example.com", "<6f1c2a4e-8b1d-4c3e-9f00-112233445566@passage>");
  const std::string wire = to_rfc5322(m, t0);
  EXPECT_NE(wire.find("Date: Fri, 20 Nov 2026 09:00:00 +0000\r\n"), std::string::npos);
  EXPECT_NE(wire.find("Message-ID: <6f1c2a4e-8b1d-4c3e-9f00-112233445566@passage>\r\n"),
            std::string::npos);
  EXPECT_NE(wire.find("Content-Type: multipart/alternative; boundary="), std::string::npos);
  EXPECT_NE(wire.find("Content-Type: text/plain; charset=utf-8"), std::string::npos);
  EXPECT_NE(wire.find("Content-Type: text/html; charset=utf-8"), std::string::npos);
  // No body line can end the SMTP data early.
  EXPECT_EQ(wire.find("\r\n.\r\n"), std::string::npos);
  for (const auto& line : header_lines(wire)) EXPECT_LE(line.size(), 998u);
}

// to_rfc5322() as it was written first (whole-body base64 split into lines, strftime,
// header_value() on every header): the text a mail had before, which every later way of
// writing it must give byte for byte (receivers and tests compare copies).
std::string first_rfc5322(const mail_message& m, timestamp date) {
  auto base64_lines = [](std::string_view in) {
    std::string b = base64_encode(in), out;
    for (std::size_t i = 0; i < b.size(); i += 76) {
      out.append(b, i, 76);
      out += "\r\n";
    }
    return out;
  };
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(date.time_since_epoch());
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char when[64];
  std::strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  const std::string boundary = "=_passage_" + header_value(m.message_id.substr(1, 36));
  std::string out;
  out += "From: " + header_value(m.from) + "\r\n";
  out += "To: " + header_value(m.to) + "\r\n";
  out += "Subject: " + header_value(m.subject) + "\r\n";
  out += "Date: " + std::string(when) + "\r\n";
  out += "Message-ID: " + header_value(m.message_id) + "\r\n";
  out += "MIME-Version: 1.0\r\n";
  auto part = [&](std::string_view type, std::string_view body) {
    return "Content-Type: " + std::string(type) +
           "; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64_lines(body);
  };
  if (m.html.empty()) return out + part("text/plain", m.text);
  out += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n";
  out += "--" + boundary + "\r\n" + part("text/plain", m.text);
  out += "--" + boundary + "\r\n" + part("text/html", m.html);
  out += "--" + boundary + "--\r\n";
  return out;
}

TEST(MailMessage, TheWireTextIsTheSameByteForByte) {
  mail_message m;
  m.from = "Passage <no-reply@passage.invalid>";
  m.to = "ada@example.com";
  m.subject = "Hi";
  m.text = "ab";
  m.message_id = "<6f1c2a4e-8b1d-4c3e-9f00-112233445566@passage>";
  EXPECT_EQ(to_rfc5322(m, t0),
            "From: Passage <no-reply@passage.invalid>\r\nTo: ada@example.com\r\nSubject: Hi\r\n"
            "Date: Fri, 20 Nov 2026 09:00:00 +0000\r\n"
            "Message-ID: <6f1c2a4e-8b1d-4c3e-9f00-112233445566@passage>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            "YWI=\r\n");
  // Bodies around the 57-byte line, headers with control and non-ASCII bytes, other dates.
  const std::string subjects[] = {"Welcome: choose your password (Kubernetes 101)",
                                  "Kubernetes für Anfänger – Teil 1 mit einem langen Titel",
                                  "Hi\r\nX-Injected: yes\x7f", ""};
  for (std::size_t n : {0, 1, 2, 3, 56, 57, 58, 113, 114, 115, 171, 1000, 2049}) {
    for (const auto& subject : subjects) {
      m.subject = subject;
      m.from = n % 2 ? "Passage <no-reply@passage.invalid>" : "Pässage\t<x@y.example>";
      m.text = std::string(n, 'x') + "é\n";
      m.html = n % 3 ? std::string(n, '<') : std::string();
      const timestamp when = t0 + std::chrono::seconds(n * 86'399 + 7);
      EXPECT_EQ(to_rfc5322(m, when), first_rfc5322(m, when)) << n << " " << subject;
    }
  }
  // Bodies of arbitrary bytes (the whole base64 alphabet, both paddings) of every length up
  // to three lines and a bit.
  m.subject = "Hi";
  for (std::size_t n = 0; n <= 3 * 57 + 4; ++n) {
    m.text.clear();
    for (std::size_t i = 0; i < n; ++i) m.text += static_cast<char>((i * 97 + n * 31) & 0xff);
    m.html = n % 2 ? m.text : std::string();
    EXPECT_EQ(to_rfc5322(m, t0), first_rfc5322(m, t0)) << n;
  }
}

// render_views() renders as render() with the same values: escaped in HTML but for
// `*_html` values, unknown names as nothing, placeholders at the ends and unclosed.
TEST(MailMessage, ValuesAsViewsRenderAsTheMap) {
  const mail_template t{"{{title}} for {{name}}{{missing}}",
                        "{{name}}: {{link}} until {{expires_at}} {{unclosed",
                        "<p>{{title}}</p>{{list_html}}<a href=\"{{link}}\">{{name}}</a>"};
  const template_values map{{"title", "K8s <&> \"101\""},
                            {"name", "Ada"},
                            {"link", "https://x/p?a=1&b=2"},
                            {"expires_at", "2026-11-20T09:00:00Z"},
                            {"list_html", "<li>a &amp; b</li>"}};
  std::vector<template_value> views;
  for (const auto& [name, value] : map) views.push_back({name, value});
  const auto a = render(t, map, "f", "t@example.com", "<m@passage>");
  const auto b = render_views(t, views, "f", "t@example.com", "<m@passage>");
  EXPECT_EQ(a.subject, b.subject);
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.html, b.html);
  EXPECT_EQ(b.html,
            "<p>K8s &lt;&amp;&gt; &quot;101&quot;</p><li>a &amp; b</li><a "
            "href=\"https://x/p?a=1&amp;b=2\">Ada</a>");
  EXPECT_EQ(b.to, "t@example.com");
  EXPECT_EQ(b.message_id, "<m@passage>");
}

TEST(MailMessage, TemplatesPerOrganizationOverrideTheBuiltInParts) {
  passage::testing::temp_dir dir;
  std::filesystem::create_directories(dir.sub("tpl") + "/org-a");
  std::ofstream(dir.sub("tpl") + "/org-a/invitation.subject") << "Join {{title}} at ACME";
  auto a = template_for(mail_kind::invitation, dir.sub("tpl"), "org-a");
  auto b = template_for(mail_kind::invitation, dir.sub("tpl"), "org-b");
  EXPECT_EQ(a.subject, "Join {{title}} at ACME");
  EXPECT_EQ(a.text, default_template(mail_kind::invitation).text);
  EXPECT_EQ(b.subject, default_template(mail_kind::invitation).subject);
  EXPECT_EQ(render(a, {{"title", "K8s"}}, "f", "t", "<m>").subject, "Join K8s at ACME");
  // Reminders have their own files and built-in template.
  EXPECT_EQ(template_for(mail_kind::reminder, dir.sub("tpl"), "org-a").subject,
            default_template(mail_kind::reminder).subject);
  EXPECT_NE(default_template(mail_kind::reminder).subject, b.subject);
}

TEST(MailMessage, ClaimDigestTemplateTakesPrebuiltHtmlListsAndPerOrgOverrides) {
  auto m = render(default_template(mail_kind::claim_digest),
                  {{"title", "R&D <intro>"},
                   {"count", "2"},
                   {"claims", "- Ada <ada@example.com>\n- anonymous learner\n"},
                   {"claims_html", "<li>Ada &lt;ada@example.com&gt;</li>\n<li>anonymous</li>\n"},
                   {"invite_id", "abc"}},
                  "f", "staff@example.org", "<d@passage>");
  EXPECT_EQ(m.subject, "New claims (2): R&D <intro>");
  EXPECT_NE(m.text.find("- Ada <ada@example.com>\n- anonymous learner\n"), std::string::npos);
  // `*_html` values are inserted as built (their parts were escaped by the caller); every
  // other value is escaped as usual.
  EXPECT_NE(m.html.find("<li>Ada &lt;ada@example.com&gt;</li>"), std::string::npos);
  EXPECT_NE(m.html.find("<strong>R&amp;D &lt;intro&gt;</strong>"), std::string::npos);
  EXPECT_EQ(to_string(mail_kind::claim_digest), "claim_digest");

  passage::testing::temp_dir dir;
  std::filesystem::create_directories(dir.sub("tpl") + "/org-a");
  std::ofstream(dir.sub("tpl") + "/org-a/claim_digest.txt") << "{{count}} joined {{title}}";
  auto t = template_for(mail_kind::claim_digest, dir.sub("tpl"), "org-a");
  EXPECT_EQ(render(t, {{"count", "3"}, {"title", "K8s"}}, "f", "t", "<m>").text, "3 joined K8s");
  EXPECT_EQ(t.subject, default_template(mail_kind::claim_digest).subject);
  EXPECT_EQ(template_for(mail_kind::invitation, dir.sub("tpl"), "org-a").text,
            default_template(mail_kind::invitation).text);
}

// A new account's mail says it was created by the claim; a link staff sent again (no
// invite in the event) says it is a new link, each with its own per-organization files.
TEST(MailMessage, AReissuedLinkHasItsOwnWordingAndTemplateFiles) {
  domain::password_setup_issued e;
  e.org_id_ = *uuid::parse("0b9d7c1e-2f3a-4b5c-8d6e-7f8091a2b3c4");
  e.learner_id_ = uuid::random();
  e.setup_id_ = uuid::random();
  e.invite_id_ = uuid::random();
  e.expires_at_ = t0;
  e.personal_data_.email_ = "ada@example.com";
  e.personal_data_.first_name_ = "Ada";
  const welcome_facts facts{"Kubernetes 101", "https://learn.example.com/p/ps1.x"};
  auto first = welcome_message(e, facts, "", "f", "<w@passage>");
  EXPECT_NE(first.text.find("Your account was created when you claimed \"Kubernetes 101\""),
            std::string::npos)
      << first.text;
  e.invite_id_.reset();
  auto again = welcome_message(e, facts, "", "f", "<w@passage>");
  EXPECT_EQ(again.subject, "Your new link to choose a password");
  EXPECT_EQ(again.text.find("account was created"), std::string::npos) << again.text;
  EXPECT_EQ(again.html.find("account was created"), std::string::npos) << again.html;
  EXPECT_NE(again.text.find("Hello Ada,\n\nhere is a new link"), std::string::npos) << again.text;
  EXPECT_NE(again.text.find("https://learn.example.com/p/ps1.x"), std::string::npos);
  EXPECT_NE(again.html.find("href=\"https://learn.example.com/p/ps1.x\""), std::string::npos);
  EXPECT_EQ(to_string(mail_kind::password_link), "password_link");

  passage::testing::temp_dir dir;
  const std::string org_dir = dir.sub("tpl") + "/" + e.org_id_.to_string();
  std::filesystem::create_directories(org_dir);
  std::ofstream(org_dir + "/welcome.subject") << "Welcome to ACME";
  std::ofstream(org_dir + "/password_link.txt") << "ACME: your new link {{link}}";
  auto custom_again = welcome_message(e, facts, dir.sub("tpl"), "f", "<w@passage>");
  EXPECT_EQ(custom_again.text, "ACME: your new link https://learn.example.com/p/ps1.x");
  EXPECT_EQ(custom_again.subject, again.subject) << "the welcome files are not used";
  e.invite_id_ = uuid::random();
  auto custom_first = welcome_message(e, facts, dir.sub("tpl"), "f", "<w@passage>");
  EXPECT_EQ(custom_first.subject, "Welcome to ACME");
  EXPECT_EQ(custom_first.text, first.text);
}

TEST(MailMessage, DerivedIdsAreStablePerEventAndKind) {
  const uuid e = *uuid::parse("6f1c2a4e-8b1d-4c3e-9f00-112233445566");
  EXPECT_EQ(derived_id(e, "mail"), derived_id(e, "mail"));
  EXPECT_NE(derived_id(e, "mail"), derived_id(e, "outcome"));
  EXPECT_NE(derived_id(e, "mail"), derived_id(uuid::random(), "mail"));
  EXPECT_EQ(derived_id(e, "mail").to_string()[14], '8');  // version 8
  // The same on every run and every build: SHA-256 of "passage.mail|<event id>|<kind>".
  EXPECT_EQ(derived_id(e, "mail").to_string(), "51e055cd-61f6-8e95-9b2c-7a6a9c7d8f0b");
  EXPECT_EQ(derived_id(e, "welcome-outcome").to_string(), "e42ce0f0-c3d3-84fe-a820-0e8827421a36");
  // A kind given in two pieces is the kind they make.
  EXPECT_EQ(derived_id(e, "welcome", "-outcome"), derived_id(e, "welcome-outcome"));
  EXPECT_EQ(derived_id(e, "", "mail"), derived_id(e, "mail"));
  // Kinds of any length (short ones and long ones are hashed alike).
  EXPECT_EQ(derived_id(e, std::string(64, 'x')).to_string(),
            "1fc90d6f-8855-8089-9261-65b625a5262e");
  EXPECT_EQ(derived_id(e, std::string(100, 'k')).to_string(),
            "76803f8c-a677-8fe2-92b1-1971ad137c6c");
  EXPECT_EQ(derived_id(e, std::string(60, 'k'), std::string(40, 'k')),
            derived_id(e, std::string(100, 'k')));
}

// The ledger entry written by hand is the bytes nlohmann::json dumps for the same fields.
TEST(MailMessage, LedgerEntriesAreWhatTheJsonLibraryWrites) {
  for (const std::string error : {"", "recipient forgotten", "550 \"no\"\r\n\x01 ü"}) {
    for (const bool sent : {false, true}) {
      for (const bool forgotten : {false, true}) {
        for (const int attempts : {0, 1, 7, 2147483647}) {
          for (const std::int64_t at :
               {std::int64_t{0}, std::int64_t{1764619200123456}, std::int64_t{-5}}) {
            const auto expected = nlohmann::json{
                {"sent", sent},
                {"error", error},
                {"attempts", attempts},
                {"at", at},
                {"forgotten",
                 forgotten}}.dump();
            EXPECT_EQ(ledger_entry_json(sent, error, attempts, at, forgotten), expected)
                << error << " " << sent << " " << forgotten << " " << attempts << " " << at;
          }
        }
      }
    }
  }
}

// A run's ledger record reads back as written; bytes it did not write are refused.
TEST(MailMessage, WelcomeLedgerRecordsReadBackAsWritten) {
  std::vector<welcome_ledger_entry> mails;
  EXPECT_EQ(decode_welcome_ledger(encode_welcome_ledger(mails)), mails);
  for (const std::string error : {"", "recipient forgotten", "550 \"no\"\r\n\x01 ü"}) {
    for (const int attempts : {0, 1, 2147483647}) {
      for (const std::int64_t at :
           {std::int64_t{0}, std::int64_t{1764619200123456}, std::int64_t{-5}}) {
        mails.push_back({static_cast<std::uint64_t>(mails.size()) * 1000003 + 1, uuid::random(),
                         mails.size() % 2 == 0, mails.size() % 3 == 0, attempts, at, error});
      }
    }
  }
  mails.push_back({~std::uint64_t{0}, uuid::random(), true, true, 3, 7, std::string(300, 'e')});
  const auto bytes = encode_welcome_ledger(mails);
  EXPECT_EQ(decode_welcome_ledger(bytes), mails);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(decode_welcome_ledger(bytes.substr(0, n)), std::nullopt) << "cut at " << n;
  }
  EXPECT_EQ(decode_welcome_ledger(bytes + "x"), std::nullopt) << "trailing bytes";
  auto other_version = bytes;
  other_version[0] = 2;
  EXPECT_EQ(decode_welcome_ledger(other_version), std::nullopt);
  const std::vector<welcome_ledger_entry> one{{42, uuid::random(), true, false, 1, 5, ""}};
  auto bad_flags = encode_welcome_ledger(one);
  bad_flags[1 + 1 + 8 + 16] = 4;  // version, count, position, id, then the flags
  EXPECT_EQ(decode_welcome_ledger(bad_flags), std::nullopt);
}

// A run's ledger record, byte for byte: states written by earlier builds must keep reading.
TEST(MailMessage, WelcomeLedgerRecordBytesArePinned) {
  uuid first, second;
  for (std::uint8_t i = 0; i < 16; ++i) {
    first.bytes[i] = static_cast<std::uint8_t>(0x10 + i);
    second.bytes[i] = static_cast<std::uint8_t>(0xF0 + i);
  }
  const std::vector<welcome_ledger_entry> mails{
      {0x0102030405060708ull, first, true, true, 300, -5, "550 no"},
      {7, second, false, false, 0, 0x1122334455667788ll, ""},
  };
  const std::string expected = std::string("\x01\x02", 2) +              // version, count
                               "\x01\x02\x03\x04\x05\x06\x07\x08" +      // position
                               std::string(first.as_bytes()) + "\x03" +  // id, flags
                               "\xAC\x02" +                              // attempts 300
                               "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFB" +      // at -5
                               std::string(1, 6) + "550 no" +            // error
                               std::string("\x00\x00\x00\x00\x00\x00\x00\x07", 8) +
                               std::string(second.as_bytes()) + std::string("\x00\x00", 2) +
                               "\x11\x22\x33\x44\x55\x66\x77\x88" + std::string(1, '\0');
  EXPECT_EQ(encode_welcome_ledger(mails), expected);
  EXPECT_EQ(decode_welcome_ledger(expected), mails);
}

}  // namespace
}  // namespace passage::consumers
