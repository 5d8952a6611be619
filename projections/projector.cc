#include "projections/projector.h"

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

  const std::size_t batch_size = std::max<std::size_t>(1, options.batch_size);
  std::vector<eventstore::recorded_event> batch;
  batch.reserve(batch_size);
  std::optional<projection_error> failed;
  auto flush = [&] {
    if (batch.empty()) return true;
    if (auto applied = models.apply(batch); !applied) {
      failed = applied.error();
      return false;
    }
    progress.events_done += batch.size();
    batch.clear();
    if (options.on_progress && clock::now() - last_report >= options.progress_interval) {
      last_report = clock::now();
      update();
      options.on_progress(progress);
    }
    return true;
  };
  eventstore::log_filter filter;
  filter.from_position = 1;
  filter.to_position = progress.events_total;
  if (options.as_of) filter.until = *options.as_of + std::chrono::microseconds(1);
  if (progress.events_total > 0) {
    auto scanned = store.scan(filter, [&](const eventstore::recorded_event& e) {
      batch.push_back(e);
      return batch.size() < batch_size || flush();
    });
    if (!scanned)
      return projection_error{"rebuild: reading the log failed: " + scanned.error().message};
    if (failed) return *failed;
    if (!flush()) return *failed;
  }
  update();
  if (options.as_of) progress.events_total = progress.events_done;
  if (options.on_progress) options.on_progress(progress);
  return progress;
}

}  // namespace passage::projections
