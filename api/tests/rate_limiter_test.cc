#include "api/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace passage::api {
namespace {

using std::chrono::seconds;

// IPv6 clients are limited per /64 (a host picks any address of its network), IPv4-mapped
// addresses as the IPv4 address they carry; IPv4 and unparsable text as they are.
TEST(client_network, ipv6_by_its_slash_64_and_ipv4_as_is) {
  EXPECT_EQ(client_network("203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(client_network("::ffff:203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(client_network("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  EXPECT_EQ(client_network("2001:db8:1:2::1"), client_network("2001:0db8:0001:0002:ffff::9"));
  EXPECT_NE(client_network("2001:db8:1:2::1"), client_network("2001:db8:1:3::1"));
  EXPECT_EQ(client_network("::1"), "::/64");
  EXPECT_EQ(client_network("not an address"), "not an address");
  EXPECT_EQ(client_network(""), "");
}

TEST(rate_limit_spec, parses_counts_and_durations) {
  struct row {
    const char* spec;
    std::uint32_t count;
    std::int64_t window_s;
  };
  for (auto [spec, count, window] :
       {row{"5/15m", 5, 900}, row{"3/1h", 3, 3600}, row{"10/30s", 10, 30},
        row{"100/1d", 100, 86400}, row{"0", 0, 0}}) {
    auto r = parse_rate_limit(spec);
    ASSERT_TRUE(r) << spec << ": " << r.error();
    EXPECT_EQ(r->count, count) << spec;
    EXPECT_EQ(r->window.count(), window) << spec;
    EXPECT_EQ(to_string(*r), spec);
  }
  EXPECT_TRUE(parse_rate_limit("0")->disabled());
}

TEST(rate_limit_spec, rejects_malformed_specs_clearly) {
  for (const char* spec :
       {"", "5", "5/", "/15m", "5/15", "5/15x", "x/15m", "0/15m", "-1/15m", "5/0m", "5/-1m",
        "5/1.5h", "5/15m ", " 5/15m", "5/8d", "100001/1h", "5/m", "00"}) {
    auto r = parse_rate_limit(spec);
    ASSERT_FALSE(r) << spec;
    EXPECT_NE(r.error().find("invalid rate limit '" + std::string(spec) + "'"), std::string::npos)
        << r.error();
    EXPECT_NE(r.error().find("COUNT/DURATION"), std::string::npos);
  }
}

class rate_limiter_test : public ::testing::Test {
 protected:
  manual_clock clock_{from_unix_micros(1'700'000'000'000'000)};
};

TEST_F(rate_limiter_test, sliding_window_and_retry_after) {
  rate_limiter limiter({.limit = *parse_rate_limit("3/1m"), .clock = &clock_});
  EXPECT_TRUE(limiter.acquire("10.0.0.1").allowed);  // t = 0
  clock_.advance(seconds(10));
  EXPECT_TRUE(limiter.acquire("10.0.0.1").allowed);  // t = 10
  clock_.advance(seconds(10));
  EXPECT_TRUE(limiter.acquire("10.0.0.1").allowed);  // t = 20

  auto denied = limiter.acquire("10.0.0.1");
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.retry_after, seconds(40));  // the t=0 action leaves the window at 60

  // Another key has its own window.
  EXPECT_TRUE(limiter.acquire("10.0.0.2").allowed);

  clock_.advance(seconds(39));  // t = 59
  auto still = limiter.acquire("10.0.0.1");
  EXPECT_FALSE(still.allowed);
  EXPECT_EQ(still.retry_after, seconds(1));

  clock_.advance(seconds(1));  // t = 60: one slot is free again, but only one
  EXPECT_TRUE(limiter.acquire("10.0.0.1").allowed);
  auto next = limiter.acquire("10.0.0.1");
  EXPECT_FALSE(next.allowed);
  EXPECT_EQ(next.retry_after, seconds(10));  // the t=10 action leaves at 70

  clock_.advance(seconds(120));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.acquire("10.0.0.1").allowed);
}

TEST_F(rate_limiter_test, denied_attempts_do_not_extend_the_wait) {
  rate_limiter limiter({.limit = *parse_rate_limit("1/30s"), .clock = &clock_});
  EXPECT_TRUE(limiter.acquire("k").allowed);
  for (int i = 0; i < 10; ++i) {
    clock_.advance(seconds(1));
    EXPECT_FALSE(limiter.acquire("k").allowed);
  }
  EXPECT_EQ(limiter.peek("k").retry_after, seconds(20));
  clock_.advance(seconds(20));
  EXPECT_TRUE(limiter.acquire("k").allowed);
}

TEST_F(rate_limiter_test, retry_after_rounds_up_to_whole_seconds) {
  rate_limiter limiter({.limit = *parse_rate_limit("1/10s"), .clock = &clock_});
  EXPECT_TRUE(limiter.acquire("k").allowed);
  clock_.advance(std::chrono::milliseconds(9'500));
  EXPECT_EQ(limiter.acquire("k").retry_after, seconds(1));
}

TEST_F(rate_limiter_test, disabled_limit_allows_everything_and_stores_nothing) {
  rate_limiter limiter({.limit = *parse_rate_limit("0"), .clock = &clock_});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.acquire("k").allowed);
  EXPECT_EQ(limiter.size(), 0u);
}

TEST_F(rate_limiter_test, memory_is_bounded) {
  rate_limiter limiter({.limit = *parse_rate_limit("2/1h"), .clock = &clock_, .max_keys = 64});
  for (int i = 0; i < 5000; ++i) {
    EXPECT_TRUE(limiter.acquire("198.51.100." + std::to_string(i)).allowed);
    clock_.advance(std::chrono::milliseconds(1));
  }
  EXPECT_LE(limiter.size(), 64u);
  // Expired keys go first: once the window has passed, the table refills freely.
  clock_.advance(std::chrono::hours(2));
  EXPECT_TRUE(limiter.acquire("203.0.113.1").allowed);
  EXPECT_LE(limiter.size(), 64u);
}

TEST_F(rate_limiter_test, concurrent_acquires_admit_exactly_the_limit) {
  rate_limiter limiter({.limit = *parse_rate_limit("100/1h"), .clock = &clock_});
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (limiter.acquire("shared").allowed) ++allowed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 100);
}

TEST(keyed_hasher_test, hashes_are_keyed_and_stable) {
  keyed_hasher a("key-a"), a2("key-a"), b("key-b");
  EXPECT_EQ(a.hash64("10.0.0.1"), a2.hash64("10.0.0.1"));
  EXPECT_NE(a.hash64("10.0.0.1"), b.hash64("10.0.0.1"));
  EXPECT_NE(a.hash64("10.0.0.1"), a.hash64("10.0.0.2"));
  EXPECT_EQ(a.hex("x", 12).size(), 12u);
  EXPECT_NE(keyed_hasher().hex("x", 16), keyed_hasher().hex("x", 16));  // random keys
}

}  // namespace
}  // namespace passage::api
