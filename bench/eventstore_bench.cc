// Event store benchmark: durable appends/s with p50/p99 latency at 1, 16 and
// 256 concurrent appenders, and the global-log read rate. Prints its figures.
//
// Usage: eventstore_bench [--seconds S] [--dir DIR] [--read-events N] [--appenders N]
//                         [--modes async,threads,claims]
//
// --modes: any of async, threads and claims, comma-separated (default async,threads).
// async and threads share one store, then the global-log read runs in it (unless claims
// is the only mode). claims runs first, in a fresh store of its own: appends shaped like a
// claim's (an InviteClaimed to one of a few busy invite streams, a LearnerRegistered and a
// PasswordSetupIssued opening a new learner stream, its id time-ordered as the service's
// learner ids are), 64 in flight (or --appenders); prints
// CPU per claim by thread (the store's writer and sync threads, RocksDB's flush and
// compaction threads, the bench's own `bench-issue`, which makes the next claims) for the
// run and for the flush of its memtables at close, which a hash memtable defers its
// sorting to.
//
// Appenders run as a closed loop: each keeps exactly one append in flight and
// issues the next as soon as the previous is acknowledged (fsynced), as an
// async HTTP server does with one request per connection. A thread-per-appender
// run is printed alongside for comparison.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench_args.h"
#include "common/random.h"
#include "eventstore/event_store.h"

using namespace passage;
using namespace passage::eventstore;
using steady = std::chrono::steady_clock;

namespace {

std::string payload() {
  // About the size of an InviteClaimed event's JSON.
  return R"({"claim_id":"6f1c2a4e-1b7d-4c55-9a0e-3d2b8f7e6a10","learner_id":"0b9d7e62-55a4-4f1a-8c3e-2f6d9b1a7c44",)"
         R"("email":{"enc":"AES-256-GCM","key":"learner-0b9d7e62","ct":"q8ZyJ1m7v5H2nX0k3cP4wR6tB9sL1dF8gA2hE5jK7oU="},)"
         R"("tracks":[{"track_id":"k8s-basics","pausable":false}],"access_duration":"P30D","plays_per_track":3})";
}

new_event make(const std::string& data) {
  new_event e;
  e.event_id = uuid::time_ordered();  // as command_service makes them
  e.type = "InviteClaimed";
  e.org_id = "org-default";
  e.correlation_id = "req-bench";
  e.actor = "learner";
  e.data = data;
  return e;
}

struct figures {
  double per_second;
  double p50_us, p99_us;
  std::size_t appends;
  double cpu_us_per_append = 0;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// How many 512-byte write + fdatasync rounds the disk under `dir` does per
// second right now: the ceiling for one-at-a-time durable appends, and the
// context every other figure needs on a shared machine.
double probe_fsyncs_per_second(const std::string& dir, double seconds) {
  std::string path = dir + "/fsync-probe";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return 0;
  char buf[512] = {};
  std::size_t n = 0;
  auto t0 = steady::now();
  while (std::chrono::duration<double>(steady::now() - t0).count() < seconds) {
    if (::write(fd, buf, sizeof buf) != sizeof buf || ::fdatasync(fd) != 0) break;
    ++n;
  }
  double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
  ::close(fd);
  ::unlink(path.c_str());
  return static_cast<double>(n) / elapsed;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// Closed loop over append_async: `appenders` requests always in flight.
figures run_async(event_store& store, int appenders, double seconds) {
  const std::string data = payload();
  std::vector<double> latencies;  // touched only on the writer thread
  latencies.reserve(2'000'000);
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::atomic<std::size_t> done{0};
  std::function<void(int)> issue = [&](int who) {
    auto start = steady::now();
    ++in_flight;
    store.append_async(
        {{"invite-" + std::to_string(who), expected_version::any(), {make(data)}}},
        [&, who, start](store_result<append_result> r) {
          if (!r) {
            std::fprintf(stderr, "append failed: %s\n", r.error().message.c_str());
            std::abort();
          }
          latencies.push_back(
              std::chrono::duration<double, std::micro>(steady::now() - start).count());
          ++done;
          --in_flight;
          if (!stop.load()) issue(who);
        });
  };
  auto t0 = steady::now();
  double cpu0 = cpu_seconds();
  for (int i = 0; i < appenders; ++i) issue(i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
  figures f{static_cast<double>(done.load()) / elapsed, 0, 0, done.load()};
  f.cpu_us_per_append = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(done.load());
  f.p50_us = percentile(latencies, 0.50);
  f.p99_us = percentile(latencies, 0.99);
  return f;
}

// CPU seconds used so far by this process's threads, summed by thread name.
std::map<std::string, double> cpu_by_thread_name() {
  std::map<std::string, double> out;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::FILE* f = std::fopen((t.path() / "stat").c_str(), "r");
    if (f == nullptr) continue;
    char line[1024] = {};
    std::size_t n = std::fread(line, 1, sizeof line - 1, f);
    std::fclose(f);
    std::string_view l(line, n);
    auto open = l.find('('), close = l.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos) continue;
    std::string name(l.substr(open + 1, close - open - 1));
    // After the name: state is field 3, utime 14, stime 15 (man 5 proc).
    unsigned long long utime = 0, stime = 0;
    if (std::sscanf(line + close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                    &utime, &stime) != 2) {
      continue;
    }
    out[name] += static_cast<double>(utime + stime) / tick;
  }
  return out;
}

// Claim-shaped appends (see the header), `appenders` in flight, in a store of its own
// opened at `dir`; CPU per claim by thread name, for the run and for the closing flush.
void run_claims(const std::string& dir, int appenders, double seconds) {
  auto opened = open_event_store({.path = dir});
  if (!opened) {
    std::fprintf(stderr, "%s\n", opened.error().message.c_str());
    std::exit(1);
  }
  auto& store = **opened;
  const std::string data = payload();
  const std::string registered =
      R"({"org_id":"5d0c7a52-3f0e-4a51-9a65-7e0b8c1d2e3f","learner_id":"0b9d7e62-55a4-4f1a-8c3e-2f6d9b1a7c44",)"
      R"("registered_at":"2026-12-01T10:00:00.000000Z","email":{"enc":"AES-256-GCM","ct":"q8ZyJ1m7v5H2nX0k3cP4wR6tB9sL1dF8gA2hE5jK7oU="}})";
  const std::string setup =
      R"({"org_id":"5d0c7a52-3f0e-4a51-9a65-7e0b8c1d2e3f","learner_id":"0b9d7e62-55a4-4f1a-8c3e-2f6d9b1a7c44",)"
      R"("setup_id":"7a1e5c3d-2b4f-4e6a-8c9d-0f1e2d3c4b5a","expires_at":"2026-12-08T10:00:00.000000Z"})";
  std::vector<std::string> invites;
  for (int i = 0; i < 4; ++i) invites.push_back("invite-" + uuid::random().to_string());
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};  // claims appending or waiting to be made again
  std::atomic<std::size_t> done{0};
  // Completions arrive on the store's sync thread, which only hands the appender's number
  // to `bench-issue`: that thread makes the next claim (random ids, events, the append), as
  // a server's own threads would, so that none of it is counted as the store's CPU.
  std::mutex ready_mu;
  std::condition_variable ready_cv;
  std::vector<int> ready;
  bool finished = false;
  auto hand_back = [&](int who) {
    bool wake;
    {
      std::lock_guard lk(ready_mu);
      wake = ready.empty();  // else already woken: one wake per group of answers
      ready.push_back(who);
    }
    if (wake) ready_cv.notify_one();
  };
  auto issue = [&](int who) {
    new_event reg = make(registered), set = make(setup);
    reg.type = "LearnerRegistered";
    set.type = "PasswordSetupIssued";
    std::vector<stream_append> appends;
    appends.push_back(
        {invites[std::size_t(who) % invites.size()], expected_version::any(), {make(data)}});
    appends.push_back({"learner-" + uuid::time_ordered().to_string(),
                       expected_version::no_stream(),
                       {std::move(reg), std::move(set)}});
    store.append_async(std::move(appends), [&, who](store_result<append_result> r) {
      if (!r) {
        std::fprintf(stderr, "append failed: %s\n", r.error().message.c_str());
        std::abort();
      }
      ++done;
      hand_back(who);
    });
  };
  std::thread issuer([&] {
    pthread_setname_np(pthread_self(), "bench-issue");
    std::vector<int> batch;
    for (;;) {
      {
        std::unique_lock lk(ready_mu);
        ready_cv.wait(lk, [&] { return !ready.empty() || finished; });
        if (ready.empty()) return;
        batch.swap(ready);
      }
      for (int who : batch) {
        if (stop.load()) {
          --in_flight;
        } else {
          issue(who);
        }
      }
      batch.clear();
    }
  });
  auto t0 = steady::now();
  auto cpu0 = cpu_by_thread_name();
  in_flight = appenders;
  for (int i = 0; i < appenders; ++i) hand_back(i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
  auto cpu1 = cpu_by_thread_name();  // before bench-issue ends and leaves /proc
  {
    std::lock_guard lk(ready_mu);
    finished = true;
  }
  ready_cv.notify_one();
  issuer.join();
  store.close();  // flushes the memtables
  auto cpu2 = cpu_by_thread_name();
  const double n = static_cast<double>(std::max<std::size_t>(1, done.load()));
  std::printf("claims: %zu in %.1f s = %.0f claims/s, %d in flight\n", done.load(), elapsed,
              n / elapsed, appenders);
  double run_total = 0, flush_total = 0;
  // The store's own threads end at close: their last figures are cpu1's.
  for (const auto& [name, sec] : cpu1) cpu2.try_emplace(name, sec);
  for (const auto& [name, sec] : cpu2) {
    const double run = cpu1[name] - cpu0[name], flush = sec - cpu1[name];
    run_total += run;
    flush_total += flush;
    if (run + flush < 0.005) continue;
    std::printf("  %-16s %8.2f us/claim in the run %8.2f at the closing flush\n", name.c_str(),
                run * 1e6 / n, flush * 1e6 / n);
  }
  std::printf("  %-16s %8.2f us/claim in the run %8.2f at the closing flush\n", "all",
              run_total * 1e6 / n, flush_total * 1e6 / n);
  opened->reset();
  std::filesystem::remove_all(dir);
}

// One OS thread per appender, each calling the blocking append().
figures run_threads(event_store& store, int appenders, double seconds) {
  const std::string data = payload();
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto t0 = steady::now();
  double cpu0 = cpu_seconds();
  for (int t = 0; t < appenders; ++t) {
    threads.emplace_back([&, t] {
      std::vector<double> mine;
      while (!stop.load()) {
        auto start = steady::now();
        auto r =
            store.append({{"invite-t" + std::to_string(t), expected_version::any(), {make(data)}}});
        if (!r) std::abort();
        mine.push_back(std::chrono::duration<double, std::micro>(steady::now() - start).count());
      }
      std::lock_guard lk(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
  figures f{static_cast<double>(latencies.size()) / elapsed, 0, 0, latencies.size()};
  f.cpu_us_per_append = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(latencies.size());
  f.p50_us = percentile(latencies, 0.50);
  f.p99_us = percentile(latencies, 0.99);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::size_t read_events = 2'000'000;
  std::vector<int> counts = {1, 16, 256};
  std::string modes = "async,threads";
  std::string dir =
      (std::filesystem::temp_directory_path() / ("passage-bench-" + secure_random_hex(6))).string();
  int appenders = 0;
  passage::bench::bench_args args(
      "eventstore_bench", "Durable appends by 1, 16 and 256 appenders, and the global-log scan.");
  args.value("--seconds", seconds, "length of each append run (default 3)");
  args.value("--dir", dir, "the store's folder (default: a new one under $TMPDIR)");
  args.value("--read-events", read_events, "events to scan (default 2000000)");
  args.value("--appenders", appenders, "only this many appenders");
  args.value("--modes", modes, "comma list of async, threads, claims (default async,threads)");
  if (int code = args.parse_or_exit_code(argc, argv); code >= 0) return code;
  if (appenders > 0) counts = {appenders};
  if (modes.find("claims") != std::string::npos) {
    run_claims(dir + "-claims", counts.size() == 1 ? counts[0] : 64, seconds);
    if (modes.find("async") == std::string::npos && modes.find("threads") == std::string::npos) {
      return 0;
    }
    std::printf("\n");
  }
  auto opened = open_event_store({.path = dir});
  if (!opened) {
    std::fprintf(stderr, "%s\n", opened.error().message.c_str());
    return 1;
  }
  auto& store = **opened;
  std::printf("event store benchmark: %s, %.1f s per run, fsync on every group commit\n\n",
              dir.c_str(), seconds);
  std::filesystem::create_directories(dir);
  std::printf("disk: %.0f fsyncs/s (512-byte write + fdatasync, one at a time)\n\n",
              probe_fsyncs_per_second(dir, 1.0));
  std::printf("%-28s %14s %10s %10s %10s %12s\n", "run", "appends/s", "p50 us", "p99 us", "appends",
              "cpu us/app");
  for (int n : counts) {
    if (modes.find("async") == std::string::npos) break;
    auto f = run_async(store, n, seconds);
    std::printf("%-28s %14.0f %10.0f %10.0f %10zu %12.1f\n",
                ("async, " + std::to_string(n) + " appenders").c_str(), f.per_second, f.p50_us,
                f.p99_us, f.appends, f.cpu_us_per_append);
  }
  for (int n : counts) {
    if (modes.find("threads") == std::string::npos) break;
    auto f = run_threads(store, n, seconds);
    std::printf("%-28s %14.0f %10.0f %10.0f %10zu %12.1f\n",
                ("threads, " + std::to_string(n) + " appenders").c_str(), f.per_second, f.p50_us,
                f.p99_us, f.appends, f.cpu_us_per_append);
  }

  // Fill to read_events with large batches, then read the whole log.
  const std::string data = payload();
  while (store.head_position() < read_events) {
    std::vector<new_event> batch;
    for (int i = 0; i < 1000; ++i) batch.push_back(make(data));
    auto r = store.append({{"fill-" + std::to_string(store.head_position() % 97),
                            expected_version::any(), std::move(batch)}});
    if (!r) std::abort();
  }
  for (int pass = 0; pass < 2; ++pass) {
    std::size_t n = 0, bytes = 0;
    auto t0 = steady::now();
    auto r = store.scan({}, [&](const recorded_event& e) {
      ++n;
      bytes += e.data.size();
      return true;
    });
    if (!r) std::abort();
    double s = std::chrono::duration<double>(steady::now() - t0).count();
    std::printf("\nread %s: %zu events in %.2f s = %.0f events/s (%.0f MB/s of payload)",
                pass ? "warm" : "first", n, s, static_cast<double>(n) / s,
                static_cast<double>(bytes) / s / 1e6);
  }
  std::printf("\n");
  opened->reset();
  std::filesystem::remove_all(dir);
}
