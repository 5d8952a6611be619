// Rendering of mails: templates, HTML escaping, header injection, RFC 2047, the MIME shape,
// per-organization templates, and the ids derived from source events.
#include <gtest/gtest.h>

#include <fstream>

#include "common/time_format.h"
#include "consumers/mail_message.h"
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
}

}  // namespace
}  // namespace passage::consumers
