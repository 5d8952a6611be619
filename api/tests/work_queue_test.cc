#include "api/work_queue.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "api/logging.h"

namespace passage::api {
namespace {

using namespace std::chrono_literals;

// Polls `pred` for up to ten seconds.
template <typename Pred>
bool eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(work_queue, takes_at_most_max_jobs_and_refuses_the_rest_until_one_finishes) {
  work_queue q({.threads = 1, .max_jobs = 2});
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> done{0};
  auto blocked = [&] {
    gate.wait();
    ++done;
  };
  ASSERT_TRUE(q.try_post(blocked));  // runs, and waits
  ASSERT_TRUE(q.try_post(blocked));  // waits for the thread
  EXPECT_FALSE(q.try_post([&] { ++done; })) << "two taken: the third is refused";
  EXPECT_EQ(q.jobs(), 2u);
  release.set_value();
  ASSERT_TRUE(eventually([&] { return done == 2 && q.jobs() == 0; }));
  EXPECT_TRUE(q.try_post([&] { ++done; }));
  ASSERT_TRUE(eventually([&] { return done == 3; }));
}

TEST(work_queue, stop_runs_what_is_queued_then_refuses) {
  std::atomic<int> done{0};
  work_queue q({.threads = 1, .max_jobs = 10});
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  ASSERT_TRUE(q.try_post([&] {
    gate.wait();
    ++done;
  }));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.try_post([&] { ++done; }));
  std::thread stopper([&] { q.stop(); });
  release.set_value();
  stopper.join();
  EXPECT_EQ(done, 6) << "every queued job ran before stop returned";
  EXPECT_FALSE(q.try_post([&] { ++done; }));
}

TEST(work_queue, a_throwing_job_leaves_the_thread_working) {
  work_queue q({.threads = 1, .max_jobs = 4});
  std::atomic<bool> ran{false};
  ASSERT_TRUE(q.try_post([] { throw std::runtime_error("boom"); }));
  ASSERT_TRUE(q.try_post([&] { ran = true; }));
  EXPECT_TRUE(eventually([&] { return ran.load(); }));
}

// A throwing job's request is answered 500 by its dropped responder; what it threw is
// logged (the default logger: JSON on stderr in `passage serve`).
TEST(work_queue, what_a_job_threw_is_logged) {
  std::ostringstream out;
  const auto before = spdlog::default_logger();
  spdlog::set_default_logger(
      make_json_logger("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
  {
    work_queue q({.threads = 1, .max_jobs = 4});
    ASSERT_TRUE(q.try_post([] { throw std::runtime_error("the A row cannot be read"); }));
    q.stop();
  }
  spdlog::set_default_logger(before);
  const auto line = nlohmann::json::parse(out.str());
  EXPECT_EQ(line["level"], "error");
  EXPECT_EQ(line["msg"], "a queued request's job threw");
  EXPECT_EQ(line["error"], "the A row cannot be read");
}

TEST(work_queue, zero_max_jobs_refuses_everything) {
  work_queue q({.threads = 1, .max_jobs = 0});
  EXPECT_FALSE(q.try_post([] {}));
}

}  // namespace
}  // namespace passage::api
