#include "service/learner_ids_ahead.h"

#include <chrono>
#include <string>

#include "eventstore/event_codec.h"

namespace passage::service {

learner_ids_ahead::learner_ids_ahead(eventstore::key_store& keys, std::size_t batch)
    : keys_(keys), batch_(batch) {
  if (batch_ > 0) thread_ = std::thread([this] { refill_loop(); });
}

learner_ids_ahead::~learner_ids_ahead() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uuid learner_ids_ahead::take() {
  std::unique_lock lk(mu_);
  if (ready_.empty()) return uuid::time_ordered();
  uuid id = ready_.front();
  ready_.pop_front();
  if (ready_.size() < batch_ / 2) {
    lk.unlock();
    cv_.notify_one();
  }
  return id;
}

void learner_ids_ahead::give_back(const uuid& id) {
  std::lock_guard lk(mu_);
  // An id from take()'s fallback has no key yet. Pooled, it stays correct (its key is
  // made on first use and synced with the commit, as without the pool); it only misses
  // the head start. At the front: the next take() hands it out again, about in its turn.
  if (batch_ > 0 && ready_.size() < 2 * batch_) ready_.push_front(id);
}

std::size_t learner_ids_ahead::ready() const {
  std::lock_guard lk(mu_);
  return ready_.size();
}

void learner_ids_ahead::refill_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || ready_.size() < batch_ / 2 + 1; });
    if (stop_) return;
    lk.unlock();
    std::vector<uuid> ids(batch_);
    std::vector<std::string> subjects;
    subjects.reserve(batch_);
    for (auto& id : ids) {
      id = uuid::time_ordered();
      subjects.push_back(eventstore::learner_subject(id));
    }
    // One synced write for the whole batch, off every request's path.
    auto made = keys_.create_ahead(subjects);
    lk.lock();
    if (made) {
      ready_.insert(ready_.end(), ids.begin(), ids.end());
    } else {
      // take() falls back to making ids itself meanwhile; try again a little later.
      cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_; });
      if (stop_) return;
    }
  }
}

}  // namespace passage::service
