#include <gtest/gtest.h>

#include "domain/duration.h"
#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using testing::at;

TEST(AccessDuration, ParsesAndFormatsRoundTrip) {
  for (const char* text : {"forever", "P1Y2M3DT4H5M", "P2W", "PT90M", "P30D", "P1M", "P1Y", "PT1S",
                           "P1DT12H", "PT4H5M6S", "P36500D"}) {
    auto d = parse_access_duration(text);
    ASSERT_TRUE(d) << text << ": " << d.error().message_;
    EXPECT_EQ(format_access_duration(*d), text);
  }
}

TEST(AccessDuration, ParsesComponents) {
  auto d = parse_access_duration("P1Y2M3DT4H5M6S");
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->forever_);
  EXPECT_EQ(d->years_, 1);
  EXPECT_EQ(d->months_, 2);
  EXPECT_EQ(d->days_, 3);
  EXPECT_EQ(d->hours_, 4);
  EXPECT_EQ(d->minutes_, 5);
  EXPECT_EQ(d->seconds_, 6);
  auto f = parse_access_duration("forever");
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->forever_);
}

TEST(AccessDuration, RejectsMalformedWithFieldName) {
  for (const char* bad :
       {"",        "P",       "PT",     "P1DT",        "1D",     "p1d",    "P1d",       "P1.5D",
        "P1,5D",   "PT1H2D",  "P1D2M",  "P1M1Y",       "P1W2D",  "P1WT1H", "P-1D",      "P1",
        "PT1",     "P1Y1Y",   "PT1H1H", "P1DT1H1M1S1", "P0D",    "PT0S",   "P1234567D", "P1001Y",
        "Forever", "P1DTT1H", "P 1D",   "P1D ",        "FOREVER"}) {
    auto d = parse_access_duration(bad, "access_duration");
    ASSERT_FALSE(d) << bad;
    EXPECT_EQ(d.error().code_, errc::invalid_request) << bad;
    EXPECT_EQ(d.error().field_, "access_duration") << bad;
    EXPECT_FALSE(d.error().message_.empty());
  }
}

struct add_case {
  const char* start;
  const char* duration;
  const char* expected;
};

class AddDuration : public ::testing::TestWithParam<add_case> {};

TEST_P(AddDuration, UsesUtcCalendarArithmetic) {
  const auto& c = GetParam();
  auto d = parse_access_duration(c.duration);
  ASSERT_TRUE(d) << c.duration;
  EXPECT_EQ(format_rfc3339(add_duration(at(c.start), *d)), c.expected)
      << c.start << " + " << c.duration;
}

INSTANTIATE_TEST_SUITE_P(
    Calendar, AddDuration,
    ::testing::Values(
        // Month ends clamp.
        add_case{"2025-01-31T10:00:00Z", "P1M", "2025-02-28T10:00:00Z"},
        add_case{"2024-01-31T10:00:00Z", "P1M", "2024-02-29T10:00:00Z"},
        add_case{"2025-03-31T00:00:00Z", "P1M", "2025-04-30T00:00:00Z"},
        add_case{"2025-12-31T23:59:59Z", "P2M", "2026-02-28T23:59:59Z"},
        add_case{"2023-01-31T00:00:00Z", "P1Y1M", "2024-02-29T00:00:00Z"},
        // Leap day plus a year.
        add_case{"2024-02-29T12:00:00Z", "P1Y", "2025-02-28T12:00:00Z"},
        add_case{"2024-02-29T12:00:00Z", "P4Y", "2028-02-29T12:00:00Z"},
        // Days and times.
        add_case{"2026-01-01T00:00:00Z", "PT90M", "2026-01-01T01:30:00Z"},
        add_case{"2026-01-01T23:00:00Z", "PT90M", "2026-01-02T00:30:00Z"},
        add_case{"2026-01-01T00:00:00Z", "P2W", "2026-01-15T00:00:00Z"},
        add_case{"2026-01-01T00:00:00Z", "P30D", "2026-01-31T00:00:00Z"},
        add_case{"2024-02-28T00:00:00Z", "P1D", "2024-02-29T00:00:00Z"},
        add_case{"2026-01-31T00:00:00Z", "P1M1D", "2026-03-01T00:00:00Z"},
        add_case{"2026-11-20T09:00:00Z", "P1Y2M3DT4H5M", "2028-01-23T13:05:00Z"},
        add_case{"2026-11-20T09:00:00.250000Z", "PT1S", "2026-11-20T09:00:01.250000Z"},
        add_case{"2026-01-01T00:00:00Z", "PT86400S", "2026-01-02T00:00:00Z"}));

TEST(AccessDuration, ForeverNeverExpires) {
  EXPECT_FALSE(access_expires_at(at("2026-01-01T00:00:00Z"), access_duration::forever()));
  auto d = parse_access_duration("P1D");
  ASSERT_TRUE(d);
  EXPECT_EQ(access_expires_at(at("2026-01-01T00:00:00Z"), *d), at("2026-01-02T00:00:00Z"));
}

}  // namespace
}  // namespace passage::domain
