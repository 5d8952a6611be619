#pragma once
// Time in Passage: UTC instants with microsecond precision, read only through a
// clock interface so that domain decisions and tests control "now".

#include <atomic>
#include <chrono>
#include <cstdint>

namespace passage {

using timestamp = std::chrono::sys_time<std::chrono::microseconds>;
using std::chrono::microseconds;

inline timestamp from_unix_micros(std::int64_t us) { return timestamp{microseconds{us}}; }
inline std::int64_t to_unix_micros(timestamp t) { return t.time_since_epoch().count(); }

// Source of "now". Implementations must be safe to call from any thread.
class clock {
 public:
  virtual ~clock() = default;
  virtual timestamp now() const = 0;
};

// The system's real-time clock.
class system_clock final : public clock {
 public:
  timestamp now() const override {
    return std::chrono::time_point_cast<microseconds>(std::chrono::system_clock::now());
  }
};

// A clock that only moves when told: for tests and for replays "as of" an instant.
class manual_clock final : public clock {
 public:
  explicit manual_clock(timestamp start = timestamp{}) : now_(to_unix_micros(start)) {}
  timestamp now() const override { return from_unix_micros(now_.load()); }
  void set(timestamp t) { now_.store(to_unix_micros(t)); }
  void advance(microseconds d) { now_.fetch_add(d.count()); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace passage
