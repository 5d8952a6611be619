#include "api/rate_limiter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace passage::api {
namespace {

constexpr std::size_t shard_count = 16;
constexpr std::uint32_t max_count = 100'000;
constexpr std::chrono::seconds max_window = std::chrono::hours(24 * 7);

}  // namespace

std::string client_network(std::string_view ip) {
  std::string text(ip);
  in6_addr v6{};
  if (text.find(':') == std::string::npos || inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
    return text;
  }
  char out[INET6_ADDRSTRLEN] = {};
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    inet_ntop(AF_INET, &v6.s6_addr[12], out, sizeof out);
    return out;
  }
  std::fill(std::begin(v6.s6_addr) + 8, std::end(v6.s6_addr), std::uint8_t{0});
  inet_ntop(AF_INET6, &v6, out, sizeof out);
  return std::string(out) + "/64";
}

result<rate_limit, std::string> parse_rate_limit(std::string_view spec) {
  auto bad = [&](std::string_view why) {
    return fail("invalid rate limit '" + std::string(spec) + "': " + std::string(why) +
                " (expected COUNT/DURATION such as 5/15m, 3/1h, 10/30s, or 0 to disable)");
  };
  if (spec == "0") return rate_limit{};
  auto slash = spec.find('/');
  if (slash == std::string_view::npos) return bad("missing '/'");
  std::string_view count_text = spec.substr(0, slash);
  std::string_view duration_text = spec.substr(slash + 1);

  std::uint32_t count = 0;
  auto [cend, cec] =
      std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
  if (count_text.empty() || cec != std::errc() || cend != count_text.data() + count_text.size()) {
    return bad("COUNT is not a whole number");
  }
  if (count == 0 || count > max_count) return bad("COUNT must be between 1 and 100000");

  if (duration_text.size() < 2) return bad("DURATION must be a number and a unit (s, m, h, d)");
  char unit = duration_text.back();
  std::string_view amount_text = duration_text.substr(0, duration_text.size() - 1);
  std::uint64_t amount = 0;
  auto [dend, dec] =
      std::from_chars(amount_text.data(), amount_text.data() + amount_text.size(), amount);
  if (dec != std::errc() || dend != amount_text.data() + amount_text.size()) {
    return bad("DURATION must be a number and a unit (s, m, h, d)");
  }
  std::uint64_t unit_seconds = 0;
  switch (unit) {
    case 's':
      unit_seconds = 1;
      break;
    case 'm':
      unit_seconds = 60;
      break;
    case 'h':
      unit_seconds = 3600;
      break;
    case 'd':
      unit_seconds = 86400;
      break;
    default:
      return bad("unknown DURATION unit (use s, m, h or d)");
  }
  if (amount == 0) return bad("DURATION must be positive");
  if (amount > static_cast<std::uint64_t>(max_window.count()) / unit_seconds) {
    return bad("DURATION must be at most 7d");
  }
  return rate_limit{count, std::chrono::seconds(amount * unit_seconds)};
}

std::string to_string(const rate_limit& limit) {
  if (limit.disabled()) return "0";
  auto s = limit.window.count();
  std::string d;
  if (s % 86400 == 0) {
    d = std::to_string(s / 86400) + "d";
  } else if (s % 3600 == 0) {
    d = std::to_string(s / 3600) + "h";
  } else if (s % 60 == 0) {
    d = std::to_string(s / 60) + "m";
  } else {
    d = std::to_string(s) + "s";
  }
  return std::to_string(limit.count) + "/" + d;
}

// One slice of the key space. `times` holds the instants (µs) of the actions
// inside the window, oldest first, at most `count` of them.
struct rate_limiter::shard {
  struct entry {
    std::vector<std::int64_t> times;
    std::int64_t last = 0;
  };
  mutable std::mutex mu;
  std::unordered_map<std::uint64_t, entry> entries;
};

rate_limiter::rate_limiter(rate_limiter_options options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &system_clock_),
      hasher_(options_.hash_key.empty() ? keyed_hasher() : keyed_hasher(options_.hash_key)),
      shards_(std::make_unique<shard[]>(shard_count)) {
  options_.max_keys = std::max<std::size_t>(options_.max_keys, shard_count);
}

rate_limiter::~rate_limiter() = default;

rate_limiter::decision rate_limiter::acquire(std::string_view key) {
  if (options_.limit.disabled()) return {};
  std::uint64_t h = hasher_.hash64(key);
  return check(shards_[h % shard_count], h, true);
}

rate_limiter::decision rate_limiter::peek(std::string_view key) const {
  if (options_.limit.disabled()) return {};
  std::uint64_t h = hasher_.hash64(key);
  return check(shards_[h % shard_count], h, false);
}

std::size_t rate_limiter::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].entries.size();
  }
  return n;
}

rate_limiter::decision rate_limiter::check(shard& s, std::uint64_t h, bool record) const {
  const std::int64_t now = to_unix_micros(clock_->now());
  const std::int64_t window = std::chrono::microseconds(options_.limit.window).count();
  const std::size_t count = options_.limit.count;
  const std::size_t shard_cap = options_.max_keys / shard_count;

  std::lock_guard lock(s.mu);
  auto it = s.entries.find(h);
  if (it == s.entries.end()) {
    if (!record) return {};
    if (s.entries.size() >= shard_cap) {
      // Drop keys whose window has passed; if that frees too little, the
      // eighth least recently active.
      std::erase_if(s.entries, [&](const auto& kv) { return kv.second.last + window <= now; });
      if (s.entries.size() >= shard_cap) {
        std::vector<std::pair<std::int64_t, std::uint64_t>> by_age;
        by_age.reserve(s.entries.size());
        for (const auto& [k, e] : s.entries) by_age.emplace_back(e.last, k);
        std::size_t drop = std::max<std::size_t>(1, by_age.size() / 8);
        std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                         by_age.end());
        for (std::size_t i = 0; i < drop; ++i) s.entries.erase(by_age[i].second);
      }
    }
    it = s.entries.emplace(h, shard::entry{}).first;
  }
  auto& times = it->second.times;
  // Forget actions that have left the window (now - window, now].
  auto first_inside =
      std::find_if(times.begin(), times.end(), [&](std::int64_t t) { return t + window > now; });
  times.erase(times.begin(), first_inside);
  if (times.size() >= count) {
    std::int64_t wait_us = times[times.size() - count] + window - now;
    auto secs = (wait_us + 999'999) / 1'000'000;
    return {false, std::chrono::seconds(std::max<std::int64_t>(secs, 1))};
  }
  if (record) {
    times.push_back(now);
    it->second.last = now;
  }
  return {};
}

}  // namespace passage::api
