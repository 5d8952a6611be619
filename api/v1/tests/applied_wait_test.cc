// applied_wait: a command's answer waits for the read models, but not forever.
// Real read models and event log (RocksDB in a temp folder); the projector is started or
// left stopped to play a healthy or a stalled node.

#include "api/v1/applied_wait.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "api/problem.h"
#include "projections/tests/fixture.h"

namespace passage::api::v1 {
namespace {

using namespace std::chrono_literals;
using projections::testing::id;

class applied_wait_test : public projections::testing::projections_test {
 protected:
  // A responder whose first answer lands in `answered`; later ones are only counted.
  responder capture() {
    return responder::capture([this](response r) {
      if (answers++ == 0) answered.set_value(std::move(r));
    });
  }
  // What a command's continuation does: answers through its own copy of the responder.
  static std::function<void()> answer_ok(responder respond, std::shared_ptr<int> ran) {
    return [respond, ran] {
      ++*ran;
      respond(json_response(http::status::ok, nlohmann::json::object()));
    };
  }
  std::promise<response> answered;
  std::atomic<int> answers{0};
};

TEST_F(applied_wait_test, runs_the_continuation_once_the_position_is_applied) {
  applied_wait waits(*models_, 60s);
  const auto position = create_org(id(1), "Acme", 'a');
  ASSERT_GT(position, 0u);
  auto ran = std::make_shared<int>(0);
  auto respond = capture();
  waits.answer_when_applied(position, respond, answer_ok(respond, ran));
  start_projector();
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(f.get().result_int(), 200u);  // the continuation's answer
  EXPECT_EQ(*ran, 1);
}

TEST_F(applied_wait_test, runs_at_once_for_nothing_written_or_already_applied) {
  applied_wait waits(*models_, 60s);
  auto ran = std::make_shared<int>(0);
  auto respond = capture();
  waits.answer_when_applied(0, respond, answer_ok(respond, ran));
  EXPECT_EQ(*ran, 1);
  catch_up();  // nothing to apply yet; starts the projector
  const auto position = create_org(id(1), "Acme", 'a');
  catch_up();
  auto again = capture();
  waits.answer_when_applied(position, again, answer_ok(again, ran));
  EXPECT_EQ(*ran, 2);
  EXPECT_EQ(answers.load(), 2);
}

TEST_F(applied_wait_test, answers_503_read_model_lagging_when_the_projector_is_stalled) {
  // The projector is not running: the position is durable in the log but never applied.
  applied_wait waits(*models_, 50ms);
  const auto position = create_org(id(1), "Acme", 'a');
  ASSERT_GT(position, 0u);
  auto ran = std::make_shared<int>(0);
  {
    auto respond = capture();
    waits.answer_when_applied(position, respond, answer_ok(respond, ran));
  }
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  auto res = f.get();
  EXPECT_EQ(res.result_int(), 503u);
  auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["code"], "read_model_lagging");
  EXPECT_NE(body["detail"].get<std::string>().find("recorded durably"), std::string::npos);
  EXPECT_NE(body["detail"].get<std::string>().find(std::to_string(position)), std::string::npos);

  // The projector catching up later does not answer a second time nor run the
  // continuation.
  catch_up();
  EXPECT_EQ(models_->applied_position(), position);
  EXPECT_EQ(*ran, 0);
  EXPECT_EQ(answers.load(), 1);
}

// A sink that keeps the answer a request settles on after a provisional one (as the
// Idempotency-Key store does), and says so. Answers come from applied_wait's deadline
// thread while the test reads them: a lock guards them, and readers get copies.
class keeping_sink final : public response_sink {
 public:
  void deliver(response r) override { keep(delivered_, std::move(r)); }
  std::shared_ptr<event_stream> open_stream(response_header) override { return nullptr; }
  void deliver_provisional(response r) override { keep(provisional_, std::move(r)); }
  void settle(response r) override { keep(settled_, std::move(r)); }
  bool keeps_settled() const override { return true; }
  std::vector<response> delivered() const { return copy(delivered_); }
  std::vector<response> provisional() const { return copy(provisional_); }
  std::vector<response> settled() const { return copy(settled_); }

 private:
  void keep(std::vector<response>& to, response r) {
    std::lock_guard lk(mu_);
    to.push_back(std::move(r));
  }
  std::vector<response> copy(const std::vector<response>& from) const {
    std::lock_guard lk(mu_);
    return from;
  }
  mutable std::mutex mu_;
  std::vector<response> delivered_, provisional_, settled_;
};

TEST_F(applied_wait_test, a_lagging_answer_is_provisional_and_the_continuation_settles_it) {
  applied_wait waits(*models_, 50ms);
  const auto position = create_org(id(1), "Acme", 'a');
  ASSERT_GT(position, 0u);
  auto ran = std::make_shared<int>(0);
  auto sink = std::make_shared<keeping_sink>();
  {
    responder respond(sink);
    waits.answer_when_applied(position, respond, answer_ok(respond, ran));
  }
  // The deadline only bounds a hang.
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (sink->provisional().empty() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(5ms);
  const auto provisional = sink->provisional();
  ASSERT_EQ(provisional.size(), 1u) << "no provisional answer";
  EXPECT_EQ(provisional[0].result_int(), 503u);
  EXPECT_EQ(*ran, 0);

  catch_up();  // the read models show the command: its own answer is made for the record
  EXPECT_EQ(*ran, 1);
  const auto settled = sink->settled();
  ASSERT_EQ(settled.size(), 1u);
  EXPECT_EQ(settled[0].result_int(), 200u);
  EXPECT_TRUE(sink->delivered().empty());  // the client was answered once, provisionally
}

TEST_F(applied_wait_test, every_wait_times_out_whether_others_are_pending_or_not) {
  // The deadline thread is woken only when it waits with nothing pending: waits started
  // while it sleeps towards an earlier deadline, and after it has gone idle, all time out.
  applied_wait waits(*models_, 100ms);
  const auto position = create_org(id(1), "Acme", 'a');
  ASSERT_GT(position, 0u);
  auto ran = std::make_shared<int>(0);
  std::vector<std::future<response>> answers_of;
  auto start_wait = [&] {
    auto p = std::make_shared<std::promise<response>>();
    answers_of.push_back(p->get_future());
    auto respond = responder::capture([p](response r) { p->set_value(std::move(r)); });
    waits.answer_when_applied(position, respond, answer_ok(respond, ran));
  };
  start_wait();
  std::this_thread::sleep_for(30ms);
  start_wait();  // the thread sleeps towards the first deadline
  ASSERT_EQ(answers_of[0].wait_for(30s), std::future_status::ready);
  ASSERT_EQ(answers_of[1].wait_for(30s), std::future_status::ready);
  std::this_thread::sleep_for(20ms);  // nothing pending: the thread waits with no deadline
  start_wait();
  ASSERT_EQ(answers_of[2].wait_for(30s), std::future_status::ready);
  for (auto& f : answers_of) EXPECT_EQ(f.get().result_int(), 503u);
  EXPECT_EQ(*ran, 0);
}

}  // namespace
}  // namespace passage::api::v1
