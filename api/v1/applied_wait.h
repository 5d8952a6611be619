#pragma once
// Read-your-writes with a bound: a command's answer waits until the read models show what
// it wrote, but no longer than a timeout. Past it (the projector stopped on an error, or
// lags far behind) the request gets 503 `read_model_lagging` instead of hanging until
// shutdown; the command itself is durable, and the problem detail says so. That 503 is a
// provisional answer (responder::provisionally): once the read models catch up, the
// continuation still runs and its answer goes to the responder's sink for the record, so
// a retry with the command's Idempotency-Key gets it and the command is not repeated.
//
//   applied_wait waits(*reads, std::chrono::seconds(5));
//   waits.answer_when_applied(position, respond, [respond] { respond(ok()); });
//
// One thread checks the deadlines. Waits finish in order of their deadlines, which, the
// timeout being fixed and each deadline taken as its wait joins the queue, is the order
// they joined it: a FIFO queue, no heap.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "api/http_types.h"
#include "projections/read_models.h"

namespace passage::api::v1 {

class applied_wait {
 public:
  applied_wait(projections::read_models& reads, std::chrono::milliseconds timeout);
  ~applied_wait();  // pending waits are dropped unanswered (the server is going away)
  applied_wait(const applied_wait&) = delete;
  applied_wait& operator=(const applied_wait&) = delete;

  // Runs `fn` once `position` is applied (at once for 0 or an applied position); if that
  // has not happened within the timeout, answers `respond` with 503 read_model_lagging
  // provisionally, and `fn` runs when the position is applied (its answer goes to the
  // sink's settle()), or never if the read models stop first.
  void answer_when_applied(std::uint64_t position, responder respond, std::function<void()> fn);

 private:
  struct waiter;
  void run();

  projections::read_models& reads_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable changed_;
  // By deadline: each wait's deadline is taken under mu_ as it joins the back (the
  // timeout being fixed), so no wait behind the front has an earlier one.
  std::deque<std::shared_ptr<waiter>> pending_;
  // The deadline thread waits with no deadline (nothing pending): only then does a new wait
  // need to wake it. Otherwise it wakes at the front's deadline, which no later wait
  // precedes, so a command's wait costs no wake-up of that thread.
  bool idle_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace passage::api::v1
