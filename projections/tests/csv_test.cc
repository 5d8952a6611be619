#include "projections/csv.h"

#include <gtest/gtest.h>

#include "common/time_format.h"

namespace passage::projections {
namespace {

TEST(csv_cell, plain_values_stay_as_they_are) {
  EXPECT_EQ(csv_cell("ada@example.com"), "ada@example.com");
  EXPECT_EQ(csv_cell(""), "");
}

TEST(csv_cell, quotes_commas_quotes_and_line_breaks) {
  EXPECT_EQ(csv_cell("Lovelace, Ada"), "\"Lovelace, Ada\"");
  EXPECT_EQ(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_cell("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_cell("cr\rhere"), "\"cr\rhere\"");
}

TEST(csv_cell, neutralises_formula_injection) {
  EXPECT_EQ(csv_cell("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
  EXPECT_EQ(csv_cell("+1"), "'+1");
  EXPECT_EQ(csv_cell("-2+3"), "'-2+3");
  EXPECT_EQ(csv_cell("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(csv_cell("\tx"), "'\tx");
  EXPECT_EQ(csv_cell("a=b"), "a=b");
}

TEST(acceptance_csv, header_rows_crlf_and_forgotten) {
  acceptance_row a;
  a.claim_id = *uuid::parse("00000000-0000-4000-8000-000000000001");
  a.learner_id = *uuid::parse("00000000-0000-4000-8000-000000000002");
  a.claimed_at = *parse_rfc3339("2026-11-20T09:00:00Z");
  a.who.email = "=cmd@example.com";
  a.who.first_name = "Ada, Countess";
  acceptance_row b = a;
  b.who = shown_person{.forgotten = true};
  b.access_expires_at = *parse_rfc3339("2026-12-20T09:00:00Z");
  b.seconds_since_invite_created = 90;
  std::vector<acceptance_row> rows{a, b};
  EXPECT_EQ(acceptance_csv(rows),
            "claim_id,learner_id,anonymous,email,first_name,last_name,claimed_at,"
            "access_expires_at,seconds_since_invite_created\r\n"
            "00000000-0000-4000-8000-000000000001,00000000-0000-4000-8000-000000000002,false,"
            "'=cmd@example.com,\"Ada, Countess\",,2026-11-20T09:00:00Z,,0\r\n"
            "00000000-0000-4000-8000-000000000001,00000000-0000-4000-8000-000000000002,false,"
            "forgotten,,,2026-11-20T09:00:00Z,2026-12-20T09:00:00Z,90\r\n");
}

}  // namespace
}  // namespace passage::projections
