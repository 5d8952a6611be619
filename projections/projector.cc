#include "projections/projector.h"

#include <condition_variable>
#include <deque>
#include <thread>
#include <vector>

namespace passage::projections {

projector::projector(eventstore::event_store& store, read_models& models, projector_options options)
    : store_(store), models_(models), options_(options) {}

projector::~projector() { stop(); }

result<void, projection_error> projector::start() {
  if (subscription_) return projection_error{"projector: already started"};
  const std::uint64_t applied = models_.applied_position();
  const std::uint64_t head = store_.head_position();
  if (applied > head) {
    return projection_error{"projector: read models are at position " + std::to_string(applied) +
                            " but the log ends at " + std::to_string(head) +
                            "; rebuild them (`passage replay`)"};
  }
  {
    std::lock_guard lock(mu_);
    error_.reset();
  }
  eventstore::subscription_options o;
  o.filter.from_position = applied + 1;
  o.max_batch = options_.max_batch;
  subscription_ = std::make_unique<eventstore::subscription>(
      store_, o,
      [this](std::span<const eventstore::recorded_event> batch) {
        auto applied_ok = models_.apply(batch);
        if (applied_ok) return true;
        std::lock_guard lock(mu_);
        error_ = applied_ok.error();
        return false;
      },
      [this](const eventstore::store_error& e) {
        std::lock_guard lock(mu_);
        error_ = projection_error{"projector: reading the log failed: " + e.message};
      });
  return {};
}

void projector::stop() {
  if (subscription_) {
    subscription_->stop();
    subscription_.reset();
  }
}

bool projector::running() const { return subscription_ && subscription_->is_running(); }

bool projector::is_live() const { return running() && subscription_->is_live(); }

std::optional<projection_error> projector::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

namespace {

// Batches of the log handed from the reading thread to the applying one; at most
// `capacity` wait, so memory stays bounded while reading and applying overlap.
class batch_queue {
 public:
  explicit batch_queue(std::size_t capacity) : capacity_(capacity) {}
  // False once the consumer gave up.
  bool push(std::vector<eventstore::recorded_event> batch) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return ready_.size() < capacity_ || abandoned_; });
    if (abandoned_) return false;
    ready_.push_back(std::move(batch));
    changed_.notify_all();
    return true;
  }
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    changed_.notify_all();
  }
  void abandon() {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    changed_.notify_all();
  }
  // nullopt once closed and drained.
  std::optional<std::vector<eventstore::recorded_event>> pop() {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return !ready_.empty() || closed_; });
    if (ready_.empty()) return std::nullopt;
    auto b = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return b;
  }

 private:
  std::size_t capacity_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<eventstore::recorded_event>> ready_;
  bool closed_ = false;
  bool abandoned_ = false;
};

}  // namespace

result<rebuild_progress, projection_error> rebuild(eventstore::event_store& store,
                                                   read_models& models,
                                                   const rebuild_options& options) {
  using clock = std::chrono::steady_clock;
  if (auto cleared = models.clear(); !cleared) return cleared.error();
  rebuild_progress progress;
  progress.events_total = store.head_position();
  const auto started = clock::now();
  auto last_report = started;
  auto update = [&] {
    progress.seconds = std::chrono::duration<double>(clock::now() - started).count();
    progress.events_per_second =
        progress.seconds > 0 ? static_cast<double>(progress.events_done) / progress.seconds : 0;
  };

  // One thread reads the log into batches while this one decodes and applies them.
  const std::size_t batch_size = std::max<std::size_t>(1, options.batch_size);
  batch_queue queue(2);
  std::optional<std::string> read_failed;
  std::thread reader([&] {
    eventstore::log_filter filter;
    filter.from_position = 1;
    filter.to_position = progress.events_total;
    if (options.as_of) filter.until = *options.as_of + std::chrono::microseconds(1);
    std::vector<eventstore::recorded_event> batch;
    batch.reserve(batch_size);
    if (progress.events_total > 0) {
      auto scanned = store.scan(filter, [&](const eventstore::recorded_event& e) {
        batch.push_back(e);
        if (batch.size() < batch_size) return true;
        bool more = queue.push(std::move(batch));
        batch = {};
        batch.reserve(batch_size);
        return more;
      });
      if (!scanned) read_failed = scanned.error().message;
    }
    if (!batch.empty()) queue.push(std::move(batch));
    queue.close();
  });

  // The read models skip their write-ahead log meanwhile (bulk load) and are flushed after.
  std::optional<projection_error> failed;
  if (auto bulk = models.set_bulk_load(true); !bulk) failed = bulk.error();
  while (!failed) {
    auto batch = queue.pop();
    if (!batch) break;
    if (auto applied = models.apply(*batch); !applied) {
      failed = applied.error();
      break;
    }
    progress.events_done += batch->size();
    if (options.on_progress && clock::now() - last_report >= options.progress_interval) {
      last_report = clock::now();
      update();
      options.on_progress(progress);
    }
  }
  queue.abandon();
  reader.join();
  if (auto flushed = models.set_bulk_load(false); !flushed && !failed) failed = flushed.error();
  if (failed) return *failed;
  if (read_failed) return projection_error{"rebuild: reading the log failed: " + *read_failed};
  update();
  if (options.as_of) progress.events_total = progress.events_done;
  if (options.on_progress) options.on_progress(progress);
  return progress;
}

}  // namespace passage::projections
