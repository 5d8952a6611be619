#include "api/v1/applied_wait.h"

#include <atomic>
#include <optional>
#include <string>
#include <utility>

#include "api/problem.h"

namespace passage::api::v1 {

// Shared by the read models' callback and the deadline queue; whichever comes first
// answers and lets go of the responder and the continuation, so a finished wait costs
// the queue only this small record until its deadline passes.
struct applied_wait::waiter {
  std::atomic<bool> finished{false};
  std::chrono::steady_clock::time_point deadline;
  std::uint64_t position = 0;
  std::optional<responder> respond;
  std::function<void()> fn;
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
    while (!pending_.empty() && pending_.front()->finished.load(std::memory_order_acquire)) {
      pending_.pop_front();
    }
    pending_.push_back(w);
    wake = std::exchange(idle_, false);
  }
  if (wake) changed_.notify_all();
  reads_.when_applied(position, [w] {
    if (w->finished.exchange(true)) return;
    auto fn = std::move(w->fn);
    w->respond.reset();
    fn();
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
    if (!w->finished.exchange(true)) {
      auto respond = std::move(*w->respond);
      w->respond.reset();
      w->fn = nullptr;
      respond(problem_response(make_problem(
          "read_model_lagging",
          "the command was recorded durably (log position " + std::to_string(w->position) +
              "), but the read models did not show it within " + std::to_string(timeout_.count()) +
              " ms; do not repeat it: reads will show it once the read models catch up")));
    }
    lock.lock();
  }
}

}  // namespace passage::api::v1
