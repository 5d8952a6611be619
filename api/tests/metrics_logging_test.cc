#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>

#include "api/logging.h"
#include "api/metrics.h"

namespace passage::api {
namespace {

TEST(metrics_test, request_counters_use_route_labels) {
  metrics m;
  m.observe_request("/v1/invites/{id}", "GET", 200, std::chrono::milliseconds(3));
  m.observe_request("/v1/invites/{id}", "GET", 200, std::chrono::milliseconds(5));
  m.observe_request("", "POST", 404, std::chrono::milliseconds(1));
  m.connection_opened();
  std::string text = m.text();
  EXPECT_NE(
      text.find(
          R"(passage_http_requests_total{method="GET",route="/v1/invites/{id}",status="200"} 2)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(route="unmatched",status="404"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(passage_http_request_duration_seconds_count{route="/v1/invites/{id}"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("passage_http_open_connections 1"), std::string::npos) << text;
}

TEST(metrics_test, methods_clients_invent_share_one_series) {
  metrics m;
  for (int i = 0; i < 50; ++i) {
    m.observe_request("", "X" + std::to_string(i), 405, std::chrono::milliseconds(1));
  }
  m.observe_request("", "PATCH", 405, std::chrono::milliseconds(1));
  std::string text = m.text();
  EXPECT_NE(
      text.find(R"(passage_http_requests_total{method="other",route="unmatched",status="405"} 50)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"({method="PATCH",route="unmatched",status="405"} 1)"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("X1"), std::string::npos) << text;
}

TEST(metrics_test, each_instance_counts_its_own_requests_from_every_thread) {
  // Series are remembered per thread; a second instance (possibly at the address of the
  // first, destroyed) and a second thread each start from their own counts.
  const std::string series =
      R"(passage_http_requests_total{method="GET",route="/items/{id}",status="200"} )";
  for (int round = 0; round < 2; ++round) {
    auto m = std::make_unique<metrics>();
    m->observe_request("/items/{id}", "GET", 200, std::chrono::milliseconds(1));
    std::thread other([&] {
      m->observe_request("/items/{id}", "GET", 200, std::chrono::milliseconds(1));
      m->observe_request("/items/{id}", "GET", 201, std::chrono::milliseconds(1));
    });
    other.join();
    std::string text = m->text();
    EXPECT_NE(text.find(series + "2"), std::string::npos) << round << text;
    EXPECT_NE(text.find(R"(route="/items/{id}",status="201"} 1)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(passage_http_request_duration_seconds_count{route="/items/{id}"} 3)"),
              std::string::npos)
        << text;
  }
}

TEST(metrics_test, other_modules_register_their_own) {
  metrics m;
  m.gauge("passage_log_position", "Last stored position").Set(42);
  auto& lag =
      m.gauge("passage_projection_lag_events", "Events behind", {{"projection", "invites"}});
  lag.Set(3);
  EXPECT_EQ(&lag, &m.gauge("passage_projection_lag_events", "Events behind",
                           {{"projection", "invites"}}));
  m.histogram("passage_append_latency_seconds", "Append latency", {0.001, 0.01}).Observe(0.005);
  m.counter("passage_claims_total", "Claims").Increment();
  std::string text = m.text();
  EXPECT_NE(text.find("passage_log_position 42"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(passage_projection_lag_events{projection="invites"} 3)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(passage_append_latency_seconds_bucket{le="0.01"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("passage_claims_total 1"), std::string::npos);

  EXPECT_THROW(m.gauge("bad name", "x"), std::invalid_argument);
  EXPECT_THROW(m.gauge("passage_ok", "x", {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(m.counter("passage_log_position", "Last stored position"), std::invalid_argument);
}

TEST(metrics_test, handler_serves_text_format) {
  metrics m;
  request req{http::verb::get, "/metrics", 11};
  request_context ctx;
  std::optional<response> got;
  m.metrics_handler()(req, ctx, responder::capture([&](response r) { got = std::move(r); }));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result(), http::status::ok);
  EXPECT_NE(std::string((*got)[http::field::content_type]).find("text/plain; version=0.0.4"),
            std::string::npos);
  EXPECT_NE(got->body().find("passage_http_open_connections"), std::string::npos);
}

class logging_test : public ::testing::Test {
 protected:
  std::vector<nlohmann::json> lines() {
    std::vector<nlohmann::json> out;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> log_ =
      make_json_logger("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
};

TEST_F(logging_test, one_json_object_per_line_with_fields) {
  log_json(*log_, spdlog::level::info, "listening", {{"port", 8080}, {"msg", "clash"}});
  log_->warn("plain \"quoted\" text");
  log_json(*log_, spdlog::level::debug, "hidden");  // below the default level
  auto got = lines();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["level"], "info");
  EXPECT_EQ(got[0]["msg"], "listening");
  EXPECT_EQ(got[0]["port"], 8080);
  EXPECT_EQ(got[0]["_msg"], "clash");
  std::string time = got[0]["time"];
  EXPECT_EQ(time.back(), 'Z');
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(got[1]["level"], "warning");
  EXPECT_EQ(got[1]["msg"], "plain \"quoted\" text");
}

TEST_F(logging_test, client_tag_hides_the_ip) {
  // The tag is 12 lower-case hex digits and nothing else: no dot, so neither the address
  // nor any of its dotted parts with their separators can be in it, and whatever a tag
  // shows is hash output. (A search for a 3-digit part such as "203" in random hex would
  // match about once in 400 runs.)
  const std::string ip = "203.0.113.7";
  std::string tag = client_tag(ip);
  ASSERT_EQ(tag.size(), 12u);
  for (char c : tag) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << tag;
  EXPECT_EQ(tag.find(ip), std::string::npos);
  EXPECT_EQ(tag, client_tag(ip));
  EXPECT_NE(tag, client_tag("203.0.113.8"));
  // Nor the address written without its dots, plain or zero-padded, nor its bytes in hex
  // (cb.00.71.07), which would pass the format check: a chance match of 8 or more given
  // digits in hash output is at most 5 in 16^8.
  for (const char* encoded : {"20301137", "203000113007", "cb007107"})
    EXPECT_EQ(tag.find(encoded), std::string::npos) << tag << " shows " << encoded;
}

}  // namespace
}  // namespace passage::api
