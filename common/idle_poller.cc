#include "common/idle_poller.h"

#include <sched.h>

namespace passage {

idle_poller::idle_poller(unsigned threads) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

idle_poller::~idle_poller() {
  {
    std::lock_guard lock(mu_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void idle_poller::begin() {
  if (holds_.fetch_add(1, std::memory_order_acq_rel) != 0 || threads_.empty()) return;
  // First hold: wake the pollers. Taking the mutex orders this with their check.
  { std::lock_guard lock(mu_); }
  wake_.notify_all();
}

void idle_poller::end() { holds_.fetch_sub(1, std::memory_order_acq_rel); }

void idle_poller::run() {
  // The lowest priority there is: any other runnable thread goes first.
  sched_param none{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock,
                 [&] { return stopping_.load() || holds_.load(std::memory_order_acquire) > 0; });
      if (stopping_.load()) return;
    }
    while (holds_.load(std::memory_order_acquire) > 0 &&
           !stopping_.load(std::memory_order_relaxed)) {
      sched_yield();
    }
  }
}

}  // namespace passage
