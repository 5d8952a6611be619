// Kafka relay benchmark: publish throughput of a pre-filled log into the
// embedded broker (start to every position acknowledged), then publish lag
// p50/p99 under a sustained paced append rate (append acknowledged -> the
// relay's checkpoint passes it, i.e. the broker's delivery report). Prints its figures.
//
// Usage: relay_bench [--events N] [--rate R] [--seconds S] [--dir DIR]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_args.h"
#include "common/random.h"
#include "consumers/embedded_broker.h"
#include "consumers/relay.h"
#include "eventstore/key_store.h"

using namespace passage;
using namespace passage::eventstore;
using namespace passage::consumers;
using steady = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

// About the size of an InviteClaimed event's JSON (personal data stored apart).
const std::string payload =
    R"({"claim_id":"6f1c2a4e-1b7d-4c55-9a0e-3d2b8f7e6a10","learner_id":"0b9d7e62-55a4-4f1a-8c3e-2f6d9b1a7c44",)"
    R"("invite_id":"9a8b7c6d-1b7d-4c55-9a0e-3d2b8f7e6a10","claimed_at":"2026-11-20T09:00:00Z",)"
    R"("tracks":[{"track_id":"k8s-basics","pausable":false}],"access_duration":"P30D","plays_per_track":3,)"
    R"("personal_data":null})";

new_event make() {
  return {.event_id = uuid::random(),
          .type = "InviteClaimed",
          .org_id = "0b9c1d2e-55a4-4f1a-8c3e-2f6d9b1a7c44",
          .correlation_id = "req-bench",
          .actor = "learner",
          .data = payload};
}

struct options {
  std::size_t events = 500'000;
  int rate = 10'000;
  int seconds = 5;
  std::string dir;
};

void throughput(const options& o, const event_codec& codec) {
  const auto dir = o.dir + "/throughput";
  auto store = open_event_store({.path = dir + "/events", .sync = false});
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().message.c_str());
    std::exit(1);
  }
  constexpr int streams = 10'000;
  std::size_t appended = 0;
  while (appended < o.events) {
    std::vector<stream_append> batch;
    for (int i = 0; i < 1000 && appended < o.events; ++i, ++appended)
      batch.push_back(
          {"invite-" + std::to_string(appended % streams), expected_version::any(), {make()}});
    if (auto r = (*store)->append(std::move(batch)); !r) {
      std::fprintf(stderr, "append: %s\n", r.error().message.c_str());
      std::exit(1);
    }
  }
  const auto head = (*store)->head_position();

  auto broker = embedded_broker::start({});
  if (!broker) std::exit(1);
  relay r(**store, codec,
          {.brokers = (*broker)->bootstrap_servers(),
           .checkpoint_path = dir + "/relay",
           .from_start = true});
  const auto t0 = steady::now();
  if (auto ok = r.start(); !ok) {
    std::fprintf(stderr, "relay: %s\n", ok.error().message.c_str());
    std::exit(1);
  }
  if (!r.wait_for_published(head, std::chrono::minutes(10))) {
    std::fprintf(stderr, "relay did not finish: %s\n", r.stats().last_error.c_str());
    std::exit(1);
  }
  const double secs = std::chrono::duration<double>(steady::now() - t0).count();
  const auto st = r.stats();
  r.stop();
  std::printf(
      "throughput: %llu events (%d keys, %zu-byte data) published and acknowledged in "
      "%.2f s = %.0f events/s (target >= 100000); messages acknowledged %llu, errors %llu\n",
      static_cast<unsigned long long>(head), streams, payload.size(), secs, head / secs,
      static_cast<unsigned long long>(st.messages_published),
      static_cast<unsigned long long>(st.errors));
}

void lag(const options& o, const event_codec& codec) {
  const auto dir = o.dir + "/lag";
  // Durable appends (fsync, group commit), as the service makes them.
  auto store = open_event_store({.path = dir + "/events"});
  if (!store) std::exit(1);
  auto broker = embedded_broker::start({});
  if (!broker) std::exit(1);

  const std::size_t total = static_cast<std::size_t>(o.rate) * o.seconds;
  std::vector<std::atomic<std::int64_t>> acked(total + 2);
  std::vector<std::int64_t> published(total + 2, 0);
  std::uint64_t last_cp = 0;
  relay r(**store, codec,
          {.brokers = (*broker)->bootstrap_servers(),
           .checkpoint_path = dir + "/relay",
           .on_checkpoint = [&](std::uint64_t cp) {
             const auto t = now_ns();
             for (auto p = last_cp + 1; p <= cp && p < published.size(); ++p) published[p] = t;
             last_cp = cp;
           }});
  if (!r.start()) std::exit(1);

  std::atomic<std::size_t> failures{0};
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / o.rate);
  const auto t0 = steady::now();
  for (std::size_t i = 0; i < total; ++i) {
    std::this_thread::sleep_until(t0 + interval * i);
    (*store)->append_async(
        {{"invite-" + std::to_string(i % 1000), expected_version::any(), {make()}}},
        [&](store_result<append_result> res) {
          if (!res) {
            failures.fetch_add(1);
            return;
          }
          if (res->last_position < acked.size()) acked[res->last_position].store(now_ns());
        });
  }
  const double append_secs = std::chrono::duration<double>(steady::now() - t0).count();
  const auto head = total;
  while ((*store)->head_position() < head && failures.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  r.wait_for_published(head, std::chrono::seconds(60));
  r.stop();  // joins the relay thread: `published` is complete

  std::vector<double> lags_ms;
  lags_ms.reserve(total);
  for (std::size_t p = 1; p <= head; ++p) {
    const auto a = acked[p].load();
    if (a == 0 || published[p] == 0) continue;
    lags_ms.push_back(std::max<std::int64_t>(0, published[p] - a) / 1e6);
  }
  std::sort(lags_ms.begin(), lags_ms.end());
  auto pct = [&](double q) {
    return lags_ms.empty() ? 0.0
                           : lags_ms[std::min(lags_ms.size() - 1, std::size_t(q * lags_ms.size()))];
  };
  std::printf(
      "lag: %zu appends paced at %d/s for %d s (achieved %.0f/s, fsynced, %zu failed); "
      "append acknowledged -> delivery acknowledged: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
      "over %zu events (target p99 <= 100 ms)\n",
      total, o.rate, o.seconds, total / append_secs, failures.load(), pct(0.50), pct(0.99),
      lags_ms.empty() ? 0.0 : lags_ms.back(), lags_ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  passage::bench::bench_args args("relay_bench",
                                  "Kafka relay throughput and lag against the embedded broker.");
  args.value("--events", o.events, "events for the throughput run (default 500000)");
  args.value("--rate", o.rate, "paced appends per second for the lag run (default 10000)");
  args.value("--seconds", o.seconds, "length of the lag run (default 5)");
  args.value("--dir", o.dir, "the store's folder (default: a new one under $TMPDIR)");
  if (int code = args.parse_or_exit_code(argc, argv); code >= 0) return code;
  const bool own_dir = o.dir.empty();
  if (own_dir)
    o.dir =
        (std::filesystem::temp_directory_path() / ("passage-relay-bench-" + secure_random_hex(6)))
            .string();
  auto keys = make_memory_key_store();
  event_codec codec(*keys, std::string(32, 'p'));
  throughput(o, codec);
  lag(o, codec);
  if (own_dir) std::filesystem::remove_all(o.dir);
}
