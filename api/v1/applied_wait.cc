#include "api/v1/applied_wait.h"

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "api/problem.h"

namespace passage::api::v1 {

// Shared by the read models' callback and the deadline queue; whichever comes first takes
// the wait (under `mu`). The callback runs the continuation, which answers. The deadline
// answers 503 provisionally; the continuation then stays for the callback only if the
// responder's sink keeps a settled answer (an Idempotency-Key's: its retries get the
// command's own answer), else it goes at once with the responder, so a finished wait costs
// the queue only this small record until its deadline passes.
struct applied_wait::waiter {
  std::mutex mu;
  bool applied = false, lagged = false;  // under mu
  std::atomic<bool> taken{false};        // either: the queue may let go of it
  std::chrono::steady_clock::time_point deadline;
  std::uint64_t position = 0;
  std::optional<responder> respond;  // under mu
  std::function<void()> fn;          // under mu
};

applied_wait::applied_wait(projections::read_models& reads, std::chrono::milliseconds timeout)
    : reads_(reads), timeout_(timeout), thread_([this] { run(); }) {}

applied_wait::~applied_wait() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void applied_wait::answer_when_applied(std::uint64_t position, responder respond,
                                       std::function<void()> fn) {
  if (position == 0 || reads_.applied_position() >= position) return fn();
  auto w = std::make_shared<waiter>();
  w->respond = std::move(respond);
  w->fn = std::move(fn);
  w->position = position;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    // Taken under the lock: waits join the queue in the order of their deadlines.
    w->deadline = std::chrono::steady_clock::now() + timeout_;
    // Waits already answered leave from the front here, so the queue holds about the
    // waits in flight rather than every wait of the last timeout.
    while (!pending_.empty() && pending_.front()->taken.load(std::memory_order_acquire)) {
      pending_.pop_front();
    }
    pending_.push_back(w);
    wake = std::exchange(idle_, false);
  }
  if (wake) changed_.notify_all();
  reads_.when_applied(position, [w] {
    std::function<void()> fn;
    {
      std::lock_guard lock(w->mu);
      if (w->applied) return;
      w->applied = true;
      fn = std::move(w->fn);
      w->fn = nullptr;
      w->respond.reset();
    }
    w->taken.store(true, std::memory_order_release);
    if (fn) fn();
  });
}

void applied_wait::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (pending_.empty()) {
      idle_ = true;
      changed_.wait(lock);
      idle_ = false;
      continue;
    }
    auto w = pending_.front();
    if (std::chrono::steady_clock::now() < w->deadline) {
      changed_.wait_until(lock, w->deadline);
      continue;
    }
    pending_.pop_front();
    lock.unlock();
    std::optional<responder> respond;
    {
      std::lock_guard wait_lock(w->mu);
      if (!w->applied && !w->lagged) {
        w->lagged = true;
        respond = std::move(w->respond);
        w->respond.reset();
        if (!respond->keeps_settled()) w->fn = nullptr;
      }
    }
    if (respond) {
      w->taken.store(true, std::memory_order_release);
      respond->provisionally(problem_response(make_problem(
          "read_model_lagging",
          "the command was recorded durably (log position " + std::to_string(w->position) +
              "), but the read models did not show it within " + std::to_string(timeout_.count()) +
              " ms; do not repeat it: reads will show it once the read models catch up (a "
              "retry with the same Idempotency-Key then gets the command's own answer)")));
    }
    lock.lock();
  }
}

}  // namespace passage::api::v1
