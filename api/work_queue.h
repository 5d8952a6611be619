#pragma once
// A bounded pool for requests that take long: rebuilding an invite from the log for an
// `as_of` answer may read thousands of events, which must not hold an HTTP I/O thread
// (every connection on it would wait). At most `threads` such jobs run at once and at
// most `max_jobs` are taken (running or waiting); past that try_post refuses and the caller
// answers 503 with Retry-After, so a burst of slow queries cannot take the node's memory or
// its threads.
//
//   work_queue slow({.threads = 2, .max_jobs = 32});
//   if (!slow.try_post([respond] { respond(build_answer()); }))
//     respond(problem_response(busy_problem()));
//   ...
//   slow.stop();  // runs what is queued, then joins

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/http_types.h"

namespace passage::api {

struct work_queue_options {
  std::size_t threads = 2;
  std::size_t max_jobs = 32;  // running and waiting; 0 refuses every job
};

// Owned by the application; try_post() from any thread.
class work_queue {
 public:
  explicit work_queue(work_queue_options options = {});
  ~work_queue();  // stop()
  work_queue(const work_queue&) = delete;
  work_queue& operator=(const work_queue&) = delete;

  // Queues `job`; false (and `job` not run) when max_jobs are taken or it stopped.
  bool try_post(std::function<void()> job);

  // Refuses new jobs, runs every job already queued, then joins the threads. Call after
  // the HTTP server stopped taking requests, so that queued requests still get answers.
  void stop();

  // Jobs taken and not finished (running or waiting).
  std::size_t jobs() const;

 private:
  void run();

  work_queue_options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Runs `job` (which answers `respond` itself) on `queue`, or at once when `queue` is null.
// A full queue answers 503 unavailable with Retry-After: 1 and `busy_detail`.
void run_off_io_thread(work_queue* queue, const responder& respond, std::function<void()> job,
                       const std::string& busy_detail);

}  // namespace passage::api
