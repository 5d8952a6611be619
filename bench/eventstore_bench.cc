// Event store benchmark: durable appends/s with p50/p99 latency at 1, 16 and
// 256 concurrent appenders, and the global-log read rate. Prints its figures.
//
// Usage: eventstore_bench [--seconds S] [--dir DIR] [--read-events N]
//
// Appenders run as a closed loop: each keeps exactly one append in flight and
// issues the next as soon as the previous is acknowledged (fsynced), as an
// async HTTP server does with one request per connection. A thread-per-appender
// run is printed alongside for comparison.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

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
  e.event_id = uuid::random();
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
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds"))
      seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--read-events"))
      read_events = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--appenders"))
      counts = {std::atoi(argv[i + 1])};
    else if (!std::strcmp(argv[i], "--modes"))
      modes = argv[i + 1];
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
