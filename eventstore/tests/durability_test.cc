// Crash safety: a child process appends in a loop and is killed with SIGKILL
// at random moments; after every reopen each acknowledged event is present and
// byte-identical, and positions are gap-free.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "eventstore/event_store.h"
#include "eventstore/tests/crash_payload.h"
#include "tests/support/temp_dir.h"

namespace passage::eventstore::testing {
namespace {

struct ack {
  int thread, seq;
  std::uint64_t position;
};

// Runs the child until its first acknowledgement and `millis` more (so a slow start on a
// loaded machine, or under sanitizers, still gets killed mid-load), then SIGKILLs it;
// returns every acknowledgement it printed.
std::vector<ack> run_and_kill(const std::string& dir, int threads, int run, int millis) {
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::string t = std::to_string(threads), r = std::to_string(run);
    execl(PASSAGE_CRASH_CHILD, PASSAGE_CRASH_CHILD, dir.c_str(), t.c_str(), r.c_str(), nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string text;
  std::atomic<bool> acked{false};
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = read(out[0], buf, sizeof buf)) > 0) {
      text.append(buf, static_cast<size_t>(n));
      if (text.find('\n') != std::string::npos) acked.store(true);
    }
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!acked.load() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  reader.join();
  close(out[0]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child ended on its own (status " << status << "): it failed before the kill";
  std::vector<ack> acks;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    ack a{};
    unsigned long long p = 0;
    // A line cut by the kill is not a complete acknowledgement; skip it.
    if (std::sscanf(line.c_str(), "%d %d %llu", &a.thread, &a.seq, &p) == 3 && !in.eof()) {
      a.position = p;
      acks.push_back(a);
    }
  }
  return acks;
}

TEST(Durability, EveryAcknowledgedAppendSurvivesSigkill) {
  passage::testing::temp_dir dir;
  const std::string path = dir.sub("events");
  std::mt19937 rng(std::random_device{}());
  constexpr int kRuns = 24, kThreads = 8;
  std::size_t total_acks = 0;
  std::map<std::uint64_t, std::pair<int, std::pair<int, int>>> all_acks;  // position -> run, t, seq
  for (int run = 0; run < kRuns; ++run) {
    int millis = std::uniform_int_distribution<int>(30, 250)(rng);
    auto acks = run_and_kill(path, kThreads, run, millis);
    total_acks += acks.size();
    for (const auto& a : acks) all_acks[a.position] = {run, {a.thread, a.seq}};

    auto store = open_event_store({.path = path});
    ASSERT_TRUE(store) << "reopen after kill " << run << ": " << store.error().message;
    auto& s = **store;
    // Every position 1..head is present, in order, with consecutive stream versions.
    std::uint64_t expected = 1;
    std::map<std::string, std::uint64_t> versions;
    auto scanned = s.scan({}, [&](const recorded_event& e) {
      EXPECT_EQ(e.position, expected) << "gap in the log after kill " << run;
      EXPECT_EQ(e.stream_version, ++versions[e.stream]) << e.stream;
      ++expected;
      return true;
    });
    ASSERT_TRUE(scanned) << scanned.error().message;
    EXPECT_EQ(s.head_position(), expected - 1);
    // Every acknowledged event (this run's and earlier ones') is there byte for byte.
    for (const auto& [position, who] : all_acks) {
      ASSERT_LE(position, s.head_position()) << "acknowledged position lost after kill " << run;
      auto spec = crash_event(who.first, who.second.first, who.second.second);
      auto got = s.read_all({.from_position = position, .to_position = position}, 1);
      ASSERT_TRUE(got) << got.error().message;
      ASSERT_EQ(got->size(), 1u);
      const auto& e = got->front();
      EXPECT_EQ(e.event_id, spec.event.event_id) << "position " << position;
      EXPECT_EQ(e.stream, spec.stream);
      EXPECT_EQ(e.type, spec.event.type);
      EXPECT_EQ(e.org_id, spec.event.org_id);
      EXPECT_EQ(e.actor, spec.event.actor);
      EXPECT_EQ(e.data, spec.event.data);
    }
    // Retrying an acknowledged append after the crash is recognised as a duplicate.
    if (!all_acks.empty()) {
      auto [position, who] = *all_acks.rbegin();
      auto spec = crash_event(who.first, who.second.first, who.second.second);
      auto again = s.append({{spec.stream, expected_version::any(), {spec.event}}});
      ASSERT_TRUE(again) << again.error().message;
      EXPECT_TRUE(again->already_stored);
      EXPECT_EQ(again->first_position, position);
    }
  }
  EXPECT_GT(total_acks, std::size_t{kRuns}) << "the child acknowledged almost nothing";
  std::printf("[ crash    ] %d SIGKILLs, %zu acknowledged appends verified\n", kRuns, total_acks);
}

}  // namespace
}  // namespace passage::eventstore::testing
