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
// a claim's CPU in api_bench.) Not SCHED_IDLE (weight 3, never preempts on wake-up): it gave
// ~6% more claims/s, but these threads take locks the request path and the store's
// answering thread also take (the key store's shards, the store's head, the mailer's job
// and purge locks), and a SCHED_IDLE holder preempted while both CPUs are busy waits whole
// scheduling periods to run again: a priority inversion that stalls acknowledgements (p99
// was no better). Linux applies setpriority(PRIO_PROCESS, tid) to that one thread, not the
// process; raising the nice value needs no privilege.
constexpr int kBackgroundNice = 19;

// A slot keeps buffers of usual sizes only (events are well under 4 KiB but for big invite
// settings): a catch-up over big events (data up to 4 MiB) must not leave their memory held
// in every slot, for the life of the process. At most ~4 KiB per string and slot: with the
// projector's 4096 slots, ~16 MiB held at worst.
void release_big_buffers(recorded_event& e) {
  constexpr std::size_t keep = 4u << 10;
  for (std::string* s :
       {&e.type, &e.stream, &e.org_id, &e.correlation_id, &e.causation_id, &e.actor, &e.data}) {
    if (s->capacity() > keep) std::string().swap(*s);
  }
}

}  // namespace

void run_this_thread_in_background() {
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kBackgroundNice);
}

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
  if (options_.background) run_this_thread_in_background();
  // No RocksDB perf counting (on by default: a TLS lookup per key comparison) on this
  // thread, which also runs the handler: the projector's memtable inserts compare keys
  // millions of times a second, and nothing reads the counts.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  // This round's events are the first `count`; the slots past them keep their strings'
  // buffers. Each event is swapped into its slot (scan_taking): the store reads the next
  // one into the buffers the slot held, so an event is neither copied nor allocated for
  // (a fresh copy of each event, freed after the handler, cost several allocations each).
  std::vector<recorded_event> batch;
  std::size_t count = 0;
  log_filter filter = options_.filter;
  while (!stopping_.load(std::memory_order_acquire)) {
    std::uint64_t from = next_.load(std::memory_order_relaxed);
    filter.from_position = from;
    count = 0;
    // The last position examined, matched or not: filtered-out events still move us on.
    auto examined = store_.scan_taking(filter, [&](recorded_event& e) {
      if (count == batch.size()) {
        batch.push_back(std::move(e));
      } else {
        std::swap(batch[count], e);
      }
      ++count;
      return count < options_.max_batch;
    });
    if (!examined) {
      if (on_error_) on_error_(examined.error());
      break;
    }
    // scan() stops right after the event that filled the batch, so `last` never
    // passes an event that was not delivered.
    std::uint64_t last = *examined;
    if (count != 0 && !on_events_(std::span<const recorded_event>(batch.data(), count))) break;
    for (std::size_t i = 0; i < count; ++i) release_big_buffers(batch[i]);
    if (last >= from) {
      next_.store(last + 1, std::memory_order_release);
      if (last >= filter.to_position) break;
      if (count == options_.max_batch) continue;
    }
    live_.store(true, std::memory_order_release);
    store_.wait_for_head(next_.load() - 1,
                         std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  }
  running_.store(false, std::memory_order_release);
}

}  // namespace passage::eventstore
