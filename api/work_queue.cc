#include "api/work_queue.h"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

#include "api/logging.h"
#include "api/problem.h"

namespace passage::api {

work_queue::work_queue(work_queue_options options) : options_(options) {
  std::size_t n = std::max<std::size_t>(options_.threads, 1);
  threads_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) threads_.emplace_back([this] { run(); });
}

work_queue::~work_queue() { stop(); }

bool work_queue::try_post(std::function<void()> job) {
  {
    std::lock_guard lk(mu_);
    if (stopping_ || queue_.size() + running_ >= options_.max_jobs) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void work_queue::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

std::size_t work_queue::jobs() const {
  std::lock_guard lk(mu_);
  return queue_.size() + running_;
}

void work_queue::run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to answer
      job = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    // A job answers its request itself; one that throws has dropped its responder, which
    // then answers 500, and the reason goes to the log. The thread goes on either way.
    try {
      job();
    } catch (const std::exception& e) {
      log_json(*spdlog::default_logger(), spdlog::level::err, "a queued request's job threw",
               {{"error", e.what()}});
    } catch (...) {
      log_json(*spdlog::default_logger(), spdlog::level::err, "a queued request's job threw");
    }
    job = nullptr;  // its captures (the responder) go before the slot is given back
    std::lock_guard lk(mu_);
    --running_;
  }
}

void run_off_io_thread(work_queue* queue, const responder& respond, std::function<void()> job,
                       const std::string& busy_detail) {
  if (!queue) return job();
  if (queue->try_post(std::move(job))) return;
  problem p = make_problem("unavailable", busy_detail);
  p.retry_after = std::chrono::seconds(1);
  respond(problem_response(p));
}

}  // namespace passage::api
