#include "projections/projector.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
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
      [this, named = false](std::span<const eventstore::recorded_event> batch) mutable {
        // The subscription's thread, named for per-thread profiles (perf, top).
        if (!std::exchange(named, true)) pthread_setname_np(pthread_self(), "projector");
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

// A batch of the log on its way from the reading thread through a decoding one to the
// applying one. The reader decodes each record it reads straight into the batch's next
// event (store.decode_record, which checks the record) from the table's block, the one
// copy of its bytes; the decoder turns the events into what applying them needs. (Copying
// the records' bytes into the batch for the decoder to decode there cost the reader a
// second copy of every record and left the decoder, the busiest stage, with the
// records' checks.) A fixed set of batches circulates: memory stays bounded, and the
// events' strings keep their buffers from one use to the next (decoding into a used slot
// copies bytes without a malloc per field, and nothing is freed per event on the applying
// thread).
struct rebuild_batch {
  std::uint64_t seq = 0;                          // order of reading
  std::vector<eventstore::recorded_event> slots;  // the first `count` are this batch's
  std::size_t count = 0;
  read_models::decoded_batch decoded;
  // The record after the batch's events does not decode (the log is damaged there): the
  // events before it are applied, then the rebuild fails as when reading the log fails.
  std::optional<std::string> unreadable;
  std::optional<projection_error> failed;  // decoding an event failed

  // Decrypted personal data (a LearnerRegistered's email and names, its email hash) must
  // not outlive the batch in memory, as the live path's (read_models::wipe_decoded): wiped
  // once applied, and whatever a batch still holds when the rebuild ends.
  ~rebuild_batch() { wipe_decoded(); }
  rebuild_batch() = default;
  rebuild_batch(const rebuild_batch&) = delete;
  rebuild_batch& operator=(const rebuild_batch&) = delete;
  void wipe_decoded() {
    for (auto& d : decoded) read_models::wipe_decoded(d);
  }

  std::span<const eventstore::recorded_event> events() const { return {slots.data(), count}; }
};

// Hands batches between the stages, in reading order to the applying thread. Each stage
// waits on a condition of its own and is woken only by what it waits for (one condition
// for all woke every waiting stage at every hand-over, to find nothing to do and sleep
// again: context switches on two cores shared by three busy threads). Woken after the
// lock is let go, so that the woken thread does not block on it at once.
class rebuild_pipeline {
 public:
  rebuild_pipeline(std::size_t batches, std::size_t decoders)
      : pool_(batches), decoders_running_(decoders) {
    for (auto& b : pool_) free_.push_back(&b);
  }

  // Reader: an unused batch; nullptr once the consumer gave up.
  rebuild_batch* take_free() {
    std::unique_lock lock(mu_);
    free_cv_.wait(lock, [&] { return !free_.empty() || abandoned_; });
    if (abandoned_) return nullptr;
    rebuild_batch* b = free_.back();
    free_.pop_back();
    return b;
  }
  void push_read(rebuild_batch* b) {
    {
      std::lock_guard lock(mu_);
      b->seq = next_read_++;
      read_.push_back(b);
    }
    read_cv_.notify_one();
  }
  void reading_done() {
    {
      std::lock_guard lock(mu_);
      reading_done_ = true;
    }
    read_cv_.notify_all();
  }
  // Decoder: the next batch to decode; nullptr when there is none left.
  rebuild_batch* take_read() {
    std::unique_lock lock(mu_);
    read_cv_.wait(lock, [&] { return !read_.empty() || reading_done_ || abandoned_; });
    if (read_.empty() || abandoned_) return nullptr;
    rebuild_batch* b = read_.front();
    read_.pop_front();
    return b;
  }
  void push_decoded(rebuild_batch* b) {
    bool next;
    {
      std::lock_guard lock(mu_);
      decoded_.emplace(b->seq, b);
      next = b->seq == next_apply_;  // else the applier still waits for an earlier one
    }
    if (next) decoded_cv_.notify_one();
  }
  void decoder_done() {
    bool last;
    {
      std::lock_guard lock(mu_);
      last = --decoders_running_ == 0;
    }
    if (last) decoded_cv_.notify_one();
  }
  // Applier: the next batch in reading order; nullptr once all are done.
  rebuild_batch* take_decoded() {
    std::unique_lock lock(mu_);
    decoded_cv_.wait(lock, [&] {
      return decoded_.contains(next_apply_) || (decoders_running_ == 0 && read_.empty());
    });
    auto it = decoded_.find(next_apply_);
    if (it == decoded_.end()) return nullptr;
    rebuild_batch* b = it->second;
    decoded_.erase(it);
    ++next_apply_;
    return b;
  }
  void give_back(rebuild_batch* b) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(b);
    }
    free_cv_.notify_one();
  }
  void abandon() {
    {
      std::lock_guard lock(mu_);
      abandoned_ = true;
    }
    free_cv_.notify_all();
    read_cv_.notify_all();
  }
  // Once the other stages are joined: batches decoded but never applied (the rebuild
  // failed or stopped at a damaged record before them) hold decrypted personal data too,
  // wiped now rather than when the pipeline goes, after the bulk load's long merge.
  void wipe_all(const std::function<void(std::span<const read_models::decoded_entry>)>& seen) {
    for (auto& b : pool_) {
      b.wipe_decoded();
      if (seen) seen(b.decoded);
    }
  }

 private:
  std::vector<rebuild_batch> pool_;
  std::mutex mu_;
  std::condition_variable free_cv_;     // the reader's: a batch given back, or abandoned
  std::condition_variable read_cv_;     // the decoders': a batch read, reading done or abandoned
  std::condition_variable decoded_cv_;  // the applier's: the next batch decoded, or all done
  std::vector<rebuild_batch*> free_;
  std::deque<rebuild_batch*> read_;
  std::map<std::uint64_t, rebuild_batch*> decoded_;
  std::uint64_t next_read_ = 0;
  std::uint64_t next_apply_ = 0;
  std::size_t decoders_running_;
  bool reading_done_ = false;
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
  // Tables sized once for the log rather than grown by doubling as it is applied.
  models.reserve_for_log(progress.events_total);
  auto last_report = started;
  auto update = [&] {
    progress.seconds = std::chrono::duration<double>(clock::now() - started).count();
    progress.events_per_second =
        progress.seconds > 0 ? static_cast<double>(progress.events_done) / progress.seconds : 0;
  };

  // Not preloaded (declined or failed): a lookup per learner, as without it. Nor with as_of:
  // the preload holds every learner's key, also those of learners registered after it,
  // while such a replay reads a part of the log (into a folder of its own, usually beside
  // a running server, whose store declines anyway).
  const bool preloaded =
      options.preload_keys && !options.as_of && progress.events_total > 0 && models.preload_keys();

  // One thread reads the log into batches, others decode them, this one applies them.
  const std::size_t batch_size = std::max<std::size_t>(1, options.batch_size);
  std::size_t decoders = options.decode_threads;
  if (decoders == 0) {
    decoders = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 2, 5) - 1;
  }
  // Two per decoder (one decoding, one waiting) and two for the applier.
  rebuild_pipeline pipeline(2 * decoders + 2, decoders);
  std::optional<std::string> read_failed;
  auto read = [&] {
    pthread_setname_np(pthread_self(), "rebuild-read");  // per-stage profiles (perf, top)
    eventstore::log_filter filter;
    filter.from_position = 1;
    filter.to_position = progress.events_total;
    filter.one_pass = true;
    if (options.as_of) filter.until = *options.as_of + std::chrono::microseconds(1);
    rebuild_batch* batch = nullptr;
    if (progress.events_total > 0) {
      auto scanned =
          store.scan_records(filter, [&](std::uint64_t position, std::string_view bytes) {
            if (batch == nullptr) {
              batch = pipeline.take_free();
              if (batch == nullptr) return false;
              batch->count = 0;
              batch->unreadable.reset();
              if (batch->slots.size() < batch_size) batch->slots.resize(batch_size);
            }
            auto& slot = batch->slots[batch->count];
            if (auto read = store.decode_record(position, bytes, slot); !read) {
              batch->unreadable = read.error().message;
              return false;  // the events before it are applied; the rest goes unread
            }
            if (++batch->count < batch_size) return true;
            pipeline.push_read(batch);
            batch = nullptr;
            return true;
          });
      if (!scanned) read_failed = scanned.error().message;
    }
    if (batch != nullptr && (batch->count > 0 || batch->unreadable)) pipeline.push_read(batch);
    pipeline.reading_done();
  };
  auto decode = [&] {
    pthread_setname_np(pthread_self(), "rebuild-decode");
    while (rebuild_batch* b = pipeline.take_read()) {
      b->failed.reset();
      b->decoded.resize(b->count);
      for (std::size_t i = 0; i < b->count; ++i) {
        if (auto d = models.decode_event(b->slots[i], b->decoded[i]); !d) {
          b->failed = d.error();
          read_models::wipe_decoded(b->decoded[i]);  // maybe half decoded
          break;
        }
      }
      pipeline.push_decoded(b);
    }
    pipeline.decoder_done();
  };

  // Stops the other stages and wipes every batch, also when starting a thread fails or
  // applying or a callback throws on this thread (joinable threads would terminate the
  // process as they go).
  std::thread reader;
  std::vector<std::thread> decoding;
  struct stages_guard {
    rebuild_pipeline& pipeline;
    std::thread& reader;
    std::vector<std::thread>& decoding;
    void stop(const std::function<void(std::span<const read_models::decoded_entry>)>& seen) {
      if (!reader.joinable()) return;
      pipeline.abandon();
      reader.join();
      for (auto& t : decoding) {
        if (t.joinable()) t.join();
      }
      pipeline.wipe_all(seen);
    }
    ~stages_guard() { stop(nullptr); }
  } stages{pipeline, reader, decoding};
  try {
    if (options.before_thread_start_for_test) options.before_thread_start_for_test(0);
    reader = std::thread(read);
    decoding.reserve(decoders);
    for (std::size_t i = 0; i < decoders; ++i) {
      if (options.before_thread_start_for_test) options.before_thread_start_for_test(i + 1);
      decoding.emplace_back(decode);
    }
  } catch (const std::system_error& e) {
    stages.stop(options.on_batch_wiped_for_test);
    if (preloaded) models.end_preload_keys();
    return projection_error{std::string("rebuild: cannot start its threads: ") + e.what()};
  }

  // The read models skip their write-ahead log meanwhile (bulk load) and are flushed after.
  std::optional<projection_error> failed;
  std::optional<std::string> unreadable;  // a damaged record, found decoding it
  if (auto bulk = models.set_bulk_load(true); !bulk) failed = bulk.error();
  while (!failed) {
    rebuild_batch* batch = pipeline.take_decoded();
    if (batch == nullptr) break;
    if (batch->failed) {
      failed = batch->failed;
    } else if (auto applied = models.apply(batch->events(), batch->decoded); !applied) {
      failed = applied.error();
    } else {
      progress.events_done += batch->count;
    }
    // The log is damaged past the events applied: the rest of it goes unread.
    if (!failed && batch->unreadable) unreadable = std::move(batch->unreadable);
    batch->wipe_decoded();
    if (options.on_batch_wiped_for_test) options.on_batch_wiped_for_test(batch->decoded);
    pipeline.give_back(batch);
    if (failed || unreadable) break;
    if (options.on_progress && clock::now() - last_report >= options.progress_interval) {
      last_report = clock::now();
      update();
      options.on_progress(progress);
    }
  }
  stages.stop(options.on_batch_wiped_for_test);
  // All decoded: the keys' memory goes back before the load's end needs its own.
  if (preloaded) models.end_preload_keys();
  if (auto flushed = models.set_bulk_load(false); !flushed && !failed) failed = flushed.error();
  if (failed) return *failed;
  // A record found damaged while decoding comes before any failure the reader met later
  // in the log.
  if (unreadable) read_failed = std::move(unreadable);
  if (read_failed) return projection_error{"rebuild: reading the log failed: " + *read_failed};
  update();
  if (options.as_of) progress.events_total = progress.events_done;
  if (options.on_progress) options.on_progress(progress);
  return progress;
}

}  // namespace passage::projections
