// Test helper for the crash-safety test: appends in a loop from several threads
// and prints one line per acknowledged append, "<thread> <seq> <position>",
// flushed at once. The parent kills this process with SIGKILL at a random
// moment and then checks that every acknowledged event survived intact.
//
// Usage: eventstore_crash_child <data-dir> <threads> <run>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "eventstore/event_store.h"
#include "eventstore/tests/crash_payload.h"

using namespace passage::eventstore;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <data-dir> <threads> <run>\n", argv[0]);
    return 2;
  }
  auto store = open_event_store({.path = argv[1]});
  if (!store) {
    std::fprintf(stderr, "open failed: %s\n", store.error().message.c_str());
    return 1;
  }
  const int threads = std::atoi(argv[2]);
  const int run = std::atoi(argv[3]);
  std::mutex out_mu;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int seq = 0;; ++seq) {
        auto spec = passage::eventstore::testing::crash_event(run, t, seq);
        std::vector<stream_append> a{{spec.stream, expected_version::any(), {spec.event}}};
        auto r = (*store)->append(std::move(a));
        if (!r) {
          std::fprintf(stderr, "append failed: %s\n", r.error().message.c_str());
          std::_Exit(1);
        }
        std::lock_guard lk(out_mu);
        std::printf("%d %d %llu\n", t, seq, static_cast<unsigned long long>(r->first_position));
        std::fflush(stdout);
      }
    });
  }
  for (auto& w : workers) w.join();
}
