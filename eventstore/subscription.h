#pragma once
// Catch-up subscriptions: deliver every event from a position on, first the
// stored backlog, then new events as they commit, with no gap and no duplicate
// at the switch (both phases read the same log by position). Each subscription
// reads on its own thread, so a slow subscriber never holds up appends.
//
//   subscription sub(store, {.from_position = checkpoint + 1},
//                    [&](std::span<const recorded_event> batch) { apply(batch); return true; });

#include <atomic>
#include <functional>
#include <span>
#include <thread>

#include "eventstore/event_store.h"

namespace passage::eventstore {

struct subscription_options {
  log_filter filter;             // where to start (filter.from_position) and what to deliver
  std::size_t max_batch = 1024;  // most events per handler call. Default: 1024
  // Reads and handles at the lowest CPU priority (nice 19: see
  // run_this_thread_in_background()), for consumers that may lag (the
  // mailer, the relay): under load they take the CPU that request handling and the log's
  // writer leave instead of competing with them, and catch up when the load drops. Nothing
  // is skipped; only when the work is done changes.
  // Default: false
  bool background = false;
};

// Puts the calling thread (only it) at the lowest CPU priority, nice 19, so it runs mostly
// on CPU time that normal threads leave. For the threads of consumers that may lag (a
// background subscription's, the mailer's reminder thread). Needs no privilege; best effort.
void run_this_thread_in_background();

// Owned by whoever consumes the events; the handler runs on the subscription's
// own thread. stop() and the destructor may be called from any other thread
// (not from inside the handler).
class subscription {
 public:
  // Returns false to end the subscription.
  using handler = std::function<bool(std::span<const recorded_event> batch)>;
  // Called once, on the subscription's thread, when reading the log fails;
  // the subscription then ends.
  using error_handler = std::function<void(const store_error&)>;

  subscription(event_store& store, subscription_options options, handler on_events,
               error_handler on_error = {});
  ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  void stop();
  // The next position the subscription will examine.
  std::uint64_t next_position() const { return next_.load(std::memory_order_acquire); }
  // True once the backlog has been delivered and the subscription waits for new events.
  bool is_live() const { return live_.load(std::memory_order_acquire); }
  // True while the reading thread runs (false after stop, error or handler refusal).
  bool is_running() const { return running_.load(std::memory_order_acquire); }

 private:
  void run();

  event_store& store_;
  subscription_options options_;
  handler on_events_;
  error_handler on_error_;
  std::atomic<std::uint64_t> next_;
  std::atomic<bool> live_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> running_{true};
  std::thread thread_;
};

}  // namespace passage::eventstore
