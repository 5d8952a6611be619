#pragma once
// Feeds the read models from the event log: a catch-up subscription from the read models'
// checkpoint (catch-up, then live), each delivered batch decoded, applied and written with
// its checkpoint in one WriteBatch. rebuild() wipes the read models and replays the whole
// log synchronously (`passage replay`).
//
//   auto models = read_models::open({.path = "data/readmodels"}, codec);
//   projector p(*store, **models);
//   if (auto ok = p.start(); !ok) die(ok.error().message);
//   ...
//   p.stop();
//
//   auto r = rebuild(*store, **models, {.on_progress = [](const rebuild_progress& p) {
//     log("{}/{} events, {:.0f}/s", p.events_done, p.events_total, p.events_per_second);
//   }});

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "common/result.h"
#include "eventstore/event_store.h"
#include "eventstore/subscription.h"
#include "projections/read_models.h"

namespace passage::projections {

struct projector_options {
  // Most events applied (and written) per batch. Default: 4096.
  std::size_t max_batch = 4096;
};

// Owned by the application next to the read models it feeds (which must outlive it).
// start(), stop() and the destructor are called from one controlling thread; the other
// accessors from any thread. Events are applied on the subscription's own thread.
class projector {
 public:
  projector(eventstore::event_store& store, read_models& models, projector_options options = {});
  ~projector();
  projector(const projector&) = delete;
  projector& operator=(const projector&) = delete;

  // Subscribes from read_models::applied_position() + 1. Fails when the read models are
  // ahead of the log (a different or truncated log: rebuild them).
  result<void, projection_error> start();
  // Stops after the batch being applied; what was applied stays applied.
  void stop();

  bool running() const;
  // True once the backlog is applied and new events are applied as they commit.
  bool is_live() const;
  // Why the projector stopped by itself (an undecodable event, a write error), if it did.
  std::optional<projection_error> error() const;

 private:
  eventstore::event_store& store_;
  read_models& models_;
  projector_options options_;
  std::unique_ptr<eventstore::subscription> subscription_;
  mutable std::mutex mu_;
  std::optional<projection_error> error_;
};

struct rebuild_progress {
  std::uint64_t events_done = 0;
  // The log's head when the rebuild started (with as_of: until the last report, which
  // gives the events up to as_of).
  std::uint64_t events_total = 0;
  double seconds = 0;
  double events_per_second = 0;
};

struct rebuild_options {
  // Events handed from one stage of the rebuild (reading, decoding, applying) to the next
  // at a time. Default: 512: the few batches in flight stay in the processors' caches,
  // which 8192 outgrew (~10 % more CPU per event on a 1M-event log).
  std::size_t batch_size = 512;
  // Called on the calling thread about every `progress_interval`, and once at the end.
  // Default: none.
  std::function<void(const rebuild_progress&)> on_progress;
  std::chrono::milliseconds progress_interval{1000};  // Default: 1 s
  // Threads that decode batches while the calling thread applies them and one more reads
  // the log. Default: 0 means the hardware's threads less one, at least 1, at most 4.
  std::size_t decode_threads = 0;
  // Only the events recorded at or before this instant: the read models as they stood
  // then (for analysis, into a folder of their own). Default: the whole log.
  std::optional<timestamp> as_of;
  // Read the learners' keys at once before the first event, with one scan of the key store
  // (key_store::preload), instead of one lookup per LearnerRegistered; given back once the
  // log is decoded (also when the rebuild fails). Not with as_of (it would hold the keys of
  // learners after it too), nor on a key store that follows a running server's (it
  // declines: a key the server destroys meanwhile must not be used). Default: true.
  bool preload_keys = true;
  // Tests only: called on the calling thread with each applied batch's decoded entries,
  // once they are wiped (read_models::wipe_decoded) for the batch's next use; then, once the
  // rebuild's threads are joined, with every batch's (all wiped, applied or not).
  std::function<void(std::span<const read_models::decoded_entry>)> on_batch_wiped_for_test;
  // Tests only: called on the calling thread before each of the rebuild's threads is
  // started (the reader first, then each decoder), with its index; it may throw what
  // std::thread throws when the system has no thread to give (std::system_error).
  std::function<void(std::size_t)> before_thread_start_for_test;
};

// Wipes the read models and applies the log from position 1 up to its current head (or
// as_of), on the
// calling thread. No projector may be feeding `models` meanwhile. Start a projector after
// it to follow newer events.
result<rebuild_progress, projection_error> rebuild(eventstore::event_store& store,
                                                   read_models& models,
                                                   const rebuild_options& options = {});

}  // namespace passage::projections
