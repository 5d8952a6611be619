#pragma once
// Keeps the CPUs from going idle while work is in flight, by running low-priority threads
// that yield in a loop instead of letting the CPU halt.
//
// Why: on a virtual machine whose idle vCPUs halt (no guest halt-polling, as on the
// Firecracker VMs this project is benchmarked on), waking a halted vCPU for an I/O
// completion costs milliseconds: one fdatasync there takes ~4 ms when the CPUs are idle and
// ~0.1 ms when they are busy. A node that waits on an fsync then idles, so it waits longer,
// so it idles more. With the poller, threads blocked in fsync, epoll or a condition
// variable are woken at once. It spends CPU only while some hold is open, and gives way to
// any runnable thread (sched_yield), so it costs no throughput, only idle time.
//
//   idle_poller poller(2);          // one thread per CPU
//   {
//     auto h = poller.hold();       // while a request is in flight
//     ...
//   }

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace passage {

class idle_poller {
 public:
  // `threads` polling threads (0: none; the poller then does nothing).
  explicit idle_poller(unsigned threads);
  ~idle_poller();
  idle_poller(const idle_poller&) = delete;
  idle_poller& operator=(const idle_poller&) = delete;

  // Polling goes on while at least one hold is open. Any thread.
  void begin();
  void end();

  class hold {
   public:
    hold() = default;
    explicit hold(idle_poller* p) : p_(p) {
      if (p_) p_->begin();
    }
    hold(hold&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    hold& operator=(hold&& o) noexcept {
      if (this != &o) {
        release();
        p_ = o.p_;
        o.p_ = nullptr;
      }
      return *this;
    }
    ~hold() { release(); }
    void release() {
      if (p_) p_->end();
      p_ = nullptr;
    }

   private:
    idle_poller* p_ = nullptr;
  };
  hold make_hold() { return hold(this); }

  // Holds open now (for tests).
  std::size_t holds() const { return holds_.load(std::memory_order_relaxed); }

 private:
  void run();

  std::atomic<std::size_t> holds_{0};
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace passage
