#pragma once
// Keyed sliding-window rate limits ("5 claims per IP per 15 minutes"): a key
// may act `count` times within any window of `duration`; beyond that it is
// told how long to wait. Keys are stored only as keyed hashes (client IPs and
// emails never in clear, SPEC §6), and memory is bounded.
//
//   auto spec = parse_rate_limit("5/15m");          // "0" disables
//   if (!spec) die(spec.error());
//   rate_limiter per_ip({.limit = *spec});
//   auto d = per_ip.acquire(ctx.client_ip);
//   if (!d.allowed) return respond(problem_response(rate_limited(d.retry_after)));

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/keyed_hash.h"
#include "common/clock.h"
#include "common/result.h"

namespace passage::api {

// `count` actions per `window`; count 0 means no limit.
struct rate_limit {
  std::uint32_t count = 0;
  std::chrono::seconds window{0};

  bool disabled() const { return count == 0; }
  friend bool operator==(const rate_limit&, const rate_limit&) = default;
};

// Parses "COUNT/DURATION" with DURATION = <n>s|m|h|d ("10/30s", "5/15m",
// "3/1h", "100/1d"), or "0" for no limit. COUNT is 1..100000, the window at
// most 7 days. The error names the spec and what is wrong with it.
result<rate_limit, std::string> parse_rate_limit(std::string_view spec);

// "5/15m" style text of a limit ("0" when disabled).
std::string to_string(const rate_limit& limit);

// The key a client address is limited under: an IPv4 address as it is (also when it comes as
// an IPv4-mapped IPv6 address, ::ffff:a.b.c.d), an IPv6 address by its /64 network ("2001:db8:
// 1:2::/64"): one host or home network usually holds a whole /64, and a limit per address
// would let it take a new address for every request. Text that is no address is its own key.
std::string client_network(std::string_view ip);

struct rate_limiter_options {
  // The limit applied to every key. Default: disabled.
  rate_limit limit;
  // Source of "now". Default: nullptr means the system clock. Must outlive the limiter.
  const passage::clock* clock = nullptr;
  // Keys remembered at most; past it expired keys are dropped, then the least
  // recently active ones. Memory is about max_keys * (limit.count * 8 + 64)
  // bytes. Default: 100,000.
  std::size_t max_keys = 100'000;
  // Key of the hash that keys are stored under. Default: "" means random per process.
  std::string hash_key;
};

// Shared by the handlers that apply one limit. Every method is safe to call
// from any thread (the key space is sharded, one mutex per shard).
class rate_limiter {
 public:
  struct decision {
    bool allowed = true;
    // When not allowed: how long until one more action fits the window
    // (rounded up to whole seconds, at least 1). Zero when allowed.
    std::chrono::seconds retry_after{0};
  };

  explicit rate_limiter(rate_limiter_options options);
  ~rate_limiter();
  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;

  // Counts one action of `key` if the window has room; otherwise counts
  // nothing and says how long to wait.
  decision acquire(std::string_view key);

  // As acquire() but counts nothing.
  decision peek(std::string_view key) const;

  // Keys currently remembered (for tests and metrics).
  std::size_t size() const;

  const rate_limit& limit() const { return options_.limit; }

 private:
  struct shard;
  decision check(shard& s, std::uint64_t h, bool record) const;

  rate_limiter_options options_;
  passage::system_clock system_clock_;
  const passage::clock* clock_;
  keyed_hasher hasher_;
  std::unique_ptr<shard[]> shards_;
};

}  // namespace passage::api
