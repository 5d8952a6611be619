#include "eventstore/subscription.h"

#include <rocksdb/perf_level.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

namespace passage::eventstore {
namespace {

// A background subscription's thread runs at nice 19, the lowest priority: CFS gives it
// about 1/70 of the share of a nice-0 thread while both want the CPU (weights 15 and 1024),
// and all of a CPU nobody else wants. (At nice 10, weight 110, the mailer still took ~40% of
// a claim's CPU in api_bench.) Linux applies setpriority(PRIO_PROCESS, tid) to that one
// thread, not the process; raising the nice value needs no privilege.
constexpr int kBackgroundNice = 19;

void run_in_background() {
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kBackgroundNice);
}

}  // namespace

subscription::subscription(event_store& store, subscription_options options, handler on_events,
                           error_handler on_error)
    : store_(store),
      options_(std::move(options)),
      on_events_(std::move(on_events)),
      on_error_(std::move(on_error)),
      next_(std::max<std::uint64_t>(options_.filter.from_position, 1)) {
  thread_ = std::thread([this] { run(); });
}

subscription::~subscription() { stop(); }

void subscription::stop() {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void subscription::run() {
  if (options_.background) run_in_background();
  // No RocksDB perf counting (on by default: a TLS lookup per key comparison) on this
  // thread, which also runs the handler: the projector's memtable inserts compare keys
  // millions of times a second, and nothing reads the counts.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  std::vector<recorded_event> batch;
  batch.reserve(options_.max_batch);
  log_filter filter = options_.filter;
  while (!stopping_.load(std::memory_order_acquire)) {
    std::uint64_t from = next_.load(std::memory_order_relaxed);
    filter.from_position = from;
    batch.clear();
    // The last position examined, matched or not: filtered-out events still move us on.
    auto examined = store_.scan(filter, [&](const recorded_event& e) {
      batch.push_back(e);
      return batch.size() < options_.max_batch;
    });
    if (!examined) {
      if (on_error_) on_error_(examined.error());
      break;
    }
    // scan() stops right after the event that filled the batch, so `last` never
    // passes an event that was not delivered.
    std::uint64_t last = *examined;
    if (!batch.empty() && !on_events_(batch)) break;
    if (last >= from) {
      next_.store(last + 1, std::memory_order_release);
      if (last >= filter.to_position) break;
      if (batch.size() == options_.max_batch) continue;
    }
    live_.store(true, std::memory_order_release);
    store_.wait_for_head(next_.load() - 1,
                         std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  }
  running_.store(false, std::memory_order_release);
}

}  // namespace passage::eventstore
