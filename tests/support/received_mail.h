#pragma once
// A mail as the test SMTP sink (smtp_sink.h) received it: envelope recipient, headers
// (unfolded) and the decoded text/plain part, for the mail tests to look into.
//
//   for (const auto& raw : sink.messages()) {
//     auto m = parse_received_mail(raw);
//     EXPECT_EQ(m.header("Subject"), "...");
//   }

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/encoding.h"

namespace passage::testing {

// A MIME base64 body (lines of 76) as text; "" when it is not base64.
inline std::string base64_decode(std::string in) {
  std::erase_if(in, [](char c) { return c == '\r' || c == '\n'; });
  return passage::base64_decode(in).value_or("");
}

struct received_mail {
  std::string envelope_to;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string text;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return {};
  }
};

// Parses the raw message the sink stored (it adds X-Envelope-To).
inline received_mail parse_received_mail(const std::string& raw) {
  received_mail m;
  std::istringstream lines(raw.substr(0, raw.find("\r\n\r\n")));
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !m.headers.empty()) {
      m.headers.back().second += line;
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    m.headers.emplace_back(line.substr(0, colon), value);
  }
  m.envelope_to = m.header("X-Envelope-To");
  // The first base64 part is text/plain.
  auto p = raw.find("Content-Type: text/plain");
  auto body = raw.find("\r\n\r\n", p);
  auto end = raw.find("\r\n--", body + 4);
  if (p != std::string::npos && body != std::string::npos) {
    m.text = base64_decode(
        raw.substr(body + 4, end == std::string::npos ? std::string::npos : end - body - 4));
  }
  return m;
}

// A mail whose subject was built from text carrying CR/LF and header lines ("Bcc: …",
// "X-Evil: …"): none of them became a header, the text stays in the Subject, and the mail
// went to `recipient` only.
inline void expect_headers_not_injected(const received_mail& m, const std::string& recipient) {
  for (const auto& [name, value] : m.headers) {
    EXPECT_NE(name, "Bcc");
    EXPECT_NE(name, "X-Evil");
  }
  EXPECT_NE(m.header("Subject").find("Bcc: victim@evil.example"), std::string::npos);
  EXPECT_EQ(m.envelope_to, recipient);
}

}  // namespace passage::testing
