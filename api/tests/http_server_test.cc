// The server over real loopback sockets (127.0.0.1, ephemeral ports). No test
// asserts a duration: timeouts below only bound how long a broken server can
// hang a test.

#include "api/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "api/logging.h"
#include "api/problem.h"
#include "api/router.h"

namespace passage::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto liveness = 10s;  // how long a test waits before calling the server stuck

// A blocking test client; every wait is bounded by `liveness`.
class client {
 public:
  // receive_buffer > 0 shrinks the socket's receive buffer (SO_RCVBUF) so that a large
  // response cannot fit in the kernel's buffers.
  explicit client(std::uint16_t port, int receive_buffer = 0) : socket_(ioc_) {
    boost::system::error_code ec;
    if (receive_buffer > 0) {
      socket_.open(tcp::v4(), ec);
      if (!ec) socket_.set_option(asio::socket_base::receive_buffer_size(receive_buffer), ec);
    }
    if (!ec) socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    connected_ = !ec;
  }

  bool connected() const { return connected_; }

  void send(std::string_view data) {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(data.data(), data.size()), ec);
  }

  // The next response, or nullopt on EOF, error or timeout.
  std::optional<response> read() {
    response res;
    boost::system::error_code result = asio::error::timed_out;
    http::async_read(socket_, buffer_, res,
                     [&](boost::system::error_code ec, std::size_t) { result = ec; });
    run();
    if (result) return std::nullopt;
    return res;
  }

  // Raw bytes until `needle` has been seen (true) or the connection ends (false).
  bool read_until_contains(std::string_view needle) {
    while (raw_.find(needle) == std::string::npos) {
      std::array<char, 4096> chunk{};
      boost::system::error_code result = asio::error::timed_out;
      std::size_t n = 0;
      socket_.async_read_some(asio::buffer(chunk),
                              [&](boost::system::error_code ec, std::size_t k) {
                                result = ec;
                                n = k;
                              });
      run();
      if (result) return false;
      raw_.append(chunk.data(), n);
    }
    return true;
  }

  // Whether the server closes the connection (EOF or reset) within
  // `liveness`; whatever else arrives first is skipped.
  bool closed_by_server() {
    std::array<char, 4096> chunk{};
    while (true) {
      boost::system::error_code result = asio::error::timed_out;
      socket_.async_read_some(asio::buffer(chunk),
                              [&](boost::system::error_code ec, std::size_t) { result = ec; });
      run();
      if (result == asio::error::timed_out) return false;
      if (result) return true;
    }
  }

  void close() {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // Closes with a reset (SO_LINGER 0) instead of a FIN: the server's read fails at once,
  // whatever it still owes this client.
  void reset() {
    boost::system::error_code ec;
    socket_.set_option(asio::socket_base::linger(true, 0), ec);
    socket_.close(ec);
  }

  const std::string& raw() const { return raw_; }

 private:
  void run() {
    ioc_.restart();
    ioc_.run_for(liveness);
    if (!ioc_.stopped()) {
      boost::system::error_code ec;
      socket_.cancel(ec);
      ioc_.restart();
      ioc_.run();
    }
  }

  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::string raw_;
  bool connected_ = false;
};

std::string get(std::string_view target, std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

// Polls `pred` until true or liveness runs out.
template <typename Pred>
bool eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + liveness;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

class http_server_test : public ::testing::Test {
 protected:
  http_server_test() {
    routes_.add(http::verb::get, "/hello", [](const request&, request_context& ctx, responder r) {
      r(text_response(http::status::ok, "hello " + ctx.client_ip, "text/plain"));
    });
    routes_.add(http::verb::get, "/items/{id}",
                [](const request&, request_context& ctx, responder r) {
                  r(json_response(http::status::ok, {{"id", ctx.params.get_or("id", "")}}));
                });
    routes_.add(http::verb::post, "/echo", [](const request& req, request_context&, responder r) {
      r(text_response(http::status::ok, req.body(), "text/plain"));
    });
    // Answers from another thread after the test releases it.
    routes_.add(http::verb::get, "/slow", [this](const request&, request_context&, responder r) {
      slow_started_.set_value();
      workers_.emplace_back([this, r] {
        slow_release_.wait_for(liveness);
        r(text_response(http::status::ok, "slow", "text/plain"));
      });
    });
    routes_.add(
        http::verb::get, "/fast/{n}", [](const request&, request_context& ctx, responder r) {
          r(text_response(http::status::ok, std::string(ctx.params.get_or("n", "")), "text/plain"));
        });
    routes_.add(http::verb::get, "/drop", [](const request&, request_context&, responder) {});
    routes_.add(http::verb::get, "/throw", [](const request&, request_context&, responder) {
      throw std::runtime_error("boom");
    });
    routes_.add(http::verb::get, "/events", [this](const request&, request_context&, responder r) {
      auto s = r.start_stream();
      s->on_close([this] { stream_closed_.set_value(); });
      s->send("data: one\n\n");
      stream_.set_value(s);
    });
    routes_.add(http::verb::get, "/metrics", metrics_->metrics_handler());
    // Parks its responder for the test to answer (from another thread).
    routes_.add(http::verb::get, "/parked/{n}",
                [this](const request&, request_context& ctx, responder r) {
                  std::lock_guard lock(parked_mu_);
                  parked_.emplace_back(std::string(ctx.params.get_or("n", "")), std::move(r));
                });
    // Counts its calls: whether a pipelined request was run at all.
    routes_.add(http::verb::get, "/count", [this](const request&, request_context&, responder r) {
      ++counted_;
      r(text_response(http::status::ok, "counted", "text/plain"));
    });
    // Answers asking to close the connection: at once, or (like /slow) once released.
    routes_.add(http::verb::get, "/bye", [](const request&, request_context&, responder r) {
      auto res = text_response(http::status::ok, "bye", "text/plain");
      res.keep_alive(false);
      r(std::move(res));
    });
    routes_.add(http::verb::get, "/slow-bye",
                [this](const request&, request_context&, responder r) {
                  slow_started_.set_value();
                  workers_.emplace_back([this, r] {
                    slow_release_.wait_for(liveness);
                    auto res = text_response(http::status::ok, "slow bye", "text/plain");
                    res.keep_alive(false);
                    r(std::move(res));
                  });
                });
  }

  ~http_server_test() override {
    if (server_) {
      EXPECT_TRUE(server_->stop(5s));
    }
    release_slow();
    for (auto& t : workers_) t.join();
    work_.reset();
    for (auto& t : io_threads_) t.join();
    server_.reset();
  }

  void start(http_server_options options = {}, int io_threads = 2) {
    options.port = 0;
    options.metrics = metrics_;
    options.access_log =
        make_json_logger("access", std::make_shared<spdlog::sinks::ostream_sink_mt>(access_log_));
    // The server's shared state holds its handler, and every connection (and every
    // answer queued for one) holds that state: once the server is gone, `server_state_`
    // expires unless something leaked.
    auto token = std::make_shared<int>(0);
    server_state_ = token;
    server_ = std::make_unique<http_server>(
        ioc_, std::move(options),
        [h = routes_.as_handler(), token](const request& req, request_context& ctx, responder r) {
          h(req, ctx, std::move(r));
        });
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error();
    ASSERT_NE(server_->port(), 0);
    for (int i = 0; i < io_threads; ++i) io_threads_.emplace_back([this] { ioc_.run(); });
  }

  void release_slow() {
    std::call_once(released_, [this] { slow_release_promise_.set_value(); });
  }

  std::uint16_t port() const { return server_->port(); }

  std::size_t parked_count() {
    std::lock_guard lock(parked_mu_);
    return parked_.size();
  }

  // Answers every parked request from another thread, all at once (like a commit group's
  // answers), and lets go of the responders.
  void answer_parked() {
    std::thread answering([this] {
      std::lock_guard lock(parked_mu_);
      for (auto& [name, respond] : parked_) {
        EXPECT_TRUE(respond(text_response(http::status::ok, name, "text/plain"))) << name;
      }
      parked_.clear();
    });
    answering.join();
  }

  // Destroys the server; true once nothing holds its shared state any more (no session,
  // request or queued answer leaked).
  bool server_released() {
    server_.reset();
    return eventually([this] { return server_state_.expired(); });
  }

  router routes_;
  std::shared_ptr<metrics> metrics_ = std::make_shared<metrics>();
  std::ostringstream access_log_;
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      ioc_.get_executor()};
  std::unique_ptr<http_server> server_;
  std::vector<std::thread> io_threads_;
  std::vector<std::thread> workers_;
  std::promise<void> slow_started_promise_;
  std::promise<void>& slow_started_ = slow_started_promise_;
  std::promise<void> slow_release_promise_;
  std::shared_future<void> slow_release_ = slow_release_promise_.get_future().share();
  std::once_flag released_;
  std::promise<std::shared_ptr<event_stream>> stream_;
  std::promise<void> stream_closed_;
  std::atomic<int> counted_{0};
  std::mutex parked_mu_;
  std::vector<std::pair<std::string, responder>> parked_;
  std::weak_ptr<int> server_state_;
};

TEST_F(http_server_test, keep_alive_serves_several_requests_on_one_connection) {
  start();
  client c(port());
  ASSERT_TRUE(c.connected());
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    c.send(get("/items/" + std::to_string(i)));
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->result(), http::status::ok);
    EXPECT_TRUE(res->keep_alive());
    EXPECT_NE((*res)[http::field::date].find(" GMT"), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(res->body())["id"], std::to_string(i));
    std::string id((*res)["X-Request-Id"]);
    EXPECT_TRUE(uuid::parse(id).has_value()) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(server_->open_connections(), 1u);
}

TEST_F(http_server_test, pipelined_responses_come_back_in_request_order) {
  start();
  client c(port());
  // Three requests in one write; the first is answered last, from another thread.
  c.send(get("/slow") + get("/fast/1") + get("/fast/2"));
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  // Give the fast ones every chance to overtake before releasing the slow one.
  std::this_thread::sleep_for(50ms);
  release_slow();
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    bodies.push_back(res->body());
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"slow", "1", "2"}));
}

TEST_F(http_server_test, many_pipelined_requests_are_answered_in_order) {
  start({.max_pipelined_requests = 4});
  client c(port());
  // More requests in one write than may be in flight (reading pauses and resumes), mixing
  // handlers that answer at once with a POST and one answered from another thread; the
  // last asks to close.
  std::string batch;
  for (int i = 0; i < 12; ++i) batch += get("/fast/" + std::to_string(i));
  batch += "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\necho";
  batch += get("/slow");
  batch += get("/fast/last", "Connection: close\r\n");
  c.send(batch);
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  release_slow();
  std::vector<std::string> bodies;
  std::set<std::string> ids;
  for (int i = 0; i < 15; ++i) {
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->result(), http::status::ok) << i;
    bodies.push_back(res->body());
    ids.insert(std::string((*res)["X-Request-Id"]));
    EXPECT_EQ(res->keep_alive(), i < 14) << i;
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 12; ++i) expected.push_back(std::to_string(i));
  expected.insert(expected.end(), {"echo", "slow", "last"});
  EXPECT_EQ(bodies, expected);
  EXPECT_EQ(ids.size(), 15u);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(http_server_test, a_request_arriving_in_pieces_is_answered_once_complete) {
  start();
  client c(port());
  const std::string first =
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world";
  const std::string second = get("/fast/2");
  // Byte by byte for the first request, then the second split inside its request line.
  for (char ch : first) {
    c.send(std::string_view(&ch, 1));
    std::this_thread::sleep_for(1ms);
  }
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hello world");
  c.send(second.substr(0, 7));
  std::this_thread::sleep_for(20ms);
  c.send(second.substr(7));
  res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "2");
}

TEST_F(http_server_test, a_response_larger_than_the_socket_buffers_arrives_whole) {
  const std::string big = [] {
    std::string s(6 << 20, '\0');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = char('a' + i % 26);
    return s;
  }();
  routes_.add(http::verb::get, "/big", [&big](const request&, request_context&, responder r) {
    r(text_response(http::status::ok, big, "text/plain"));
  });
  start();
  client c(port(), 4096);
  ASSERT_TRUE(c.connected());
  // The response cannot fit in the kernel's buffers: the rest of it is written as the
  // client reads, and the request pipelined behind it is answered after it.
  c.send(get("/big") + get("/fast/after"));
  std::this_thread::sleep_for(50ms);
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body().size(), big.size());
  EXPECT_TRUE(res->body() == big);
  res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "after");
}

TEST_F(http_server_test, expect_100_continue_is_answered_before_the_body_is_sent) {
  start();
  client c(port());
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  ASSERT_TRUE(c.read_until_contains("HTTP/1.1 100 Continue\r\n\r\n"));
  c.send("ping");
  ASSERT_TRUE(c.read_until_contains("\r\n\r\nping"));
  EXPECT_NE(c.raw().find("HTTP/1.1 200 OK\r\n"), std::string::npos) << c.raw();
}

TEST_F(http_server_test, response_headers_are_framed_by_the_server) {
  routes_.add(http::verb::get, "/own", [](const request&, request_context&, responder r) {
    response res{http::status::ok, 11};
    res.set(http::field::date, "Tue, 01 Dec 2026 00:00:00 GMT");
    res.set("X-Request-Id", "from-the-handler");
    res.set(http::field::content_length, "999");  // the body's size wins
    res.body() = "body";
    r(std::move(res));
  });
  routes_.add(http::verb::get, "/not-modified", [](const request&, request_context&, responder r) {
    response res{http::status::not_modified, 11};
    res.set(http::field::etag, "\"v1\"");
    r(std::move(res));
  });
  start();
  client c(port());
  c.send(get("/own") + get("/not-modified") + get("/fast/end"));
  ASSERT_TRUE(c.read_until_contains("\r\n\r\nend"));
  const std::string& raw = c.raw();
  auto second = raw.find("HTTP/1.1 304 Not Modified\r\n");
  ASSERT_NE(second, std::string::npos) << raw;
  std::string own = raw.substr(0, second), not_modified = raw.substr(second);
  EXPECT_NE(own.find("Date: Tue, 01 Dec 2026 00:00:00 GMT\r\n"), std::string::npos) << own;
  EXPECT_EQ(own.find("Date:", own.find("Date:") + 1), std::string::npos) << own;
  EXPECT_EQ(own.find("from-the-handler"), std::string::npos) << own;
  EXPECT_NE(own.find("X-Request-Id: "), std::string::npos) << own;
  EXPECT_NE(own.find("Content-Length: 4\r\n"), std::string::npos) << own;
  EXPECT_EQ(own.find("999"), std::string::npos) << own;
  EXPECT_TRUE(own.ends_with("\r\n\r\nbody")) << own;
  // 304: no Content-Length, no body; the next response follows its blank line.
  auto third = not_modified.find("\r\n\r\nHTTP/1.1 200 OK\r\n");
  ASSERT_NE(third, std::string::npos) << not_modified;
  EXPECT_EQ(not_modified.substr(0, third).find("Content-Length"), std::string::npos)
      << not_modified;
  EXPECT_NE(not_modified.find("ETag: \"v1\"\r\n"), std::string::npos) << not_modified;
}

TEST_F(http_server_test, oversized_body_gets_413_and_the_server_stays_up) {
  start({.max_body_bytes = 1024});
  {
    client c(port());
    std::string body(5000, 'x');
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + body);
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result(), http::status::payload_too_large);
    EXPECT_EQ((*res)[http::field::content_type], "application/problem+json");
    EXPECT_EQ(nlohmann::json::parse(res->body())["code"], "payload_too_large");
    EXPECT_FALSE(res->keep_alive());
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    // Chunked bodies are limited as well.
    client c(port());
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
           std::string(0x800, 'y') + "\r\n0\r\n\r\n");
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result(), http::status::payload_too_large);
  }
  client ok(port());
  ok.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  auto res = ok.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hello");
}

TEST_F(http_server_test, a_route_can_take_a_larger_body_than_the_others) {
  start({.max_body_bytes = 1024,
         .route_body_bytes = {{"POST /echo", 8192}},
         .route_of = [this](http::verb m, std::string_view t) { return routes_.route_of(m, t); }});
  auto post = [&](const std::string& target, const std::string& framing, const std::string& body) {
    client c(port());
    c.send("POST " + target + " HTTP/1.1\r\nHost: t\r\n" + framing + "\r\n" + body);
    return c.read();
  };
  const std::string chunked_5000 =
      "1388\r\n" + std::string(5000, 'y') + "\r\n0\r\n\r\n";  // 0x1388 = 5000
  auto large = post("/echo", "Content-Length: 5000\r\n", std::string(5000, 'x'));
  ASSERT_TRUE(large);
  EXPECT_EQ(large->result(), http::status::ok);
  EXPECT_EQ(large->body().size(), 5000u);
  auto chunked = post("/echo", "Transfer-Encoding: chunked\r\n", chunked_5000);
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->result(), http::status::ok);

  auto too_large = post("/echo", "Content-Length: 9000\r\n", std::string(9000, 'x'));
  ASSERT_TRUE(too_large);
  EXPECT_EQ(too_large->result(), http::status::payload_too_large);
  EXPECT_NE(too_large->body().find("8192"), std::string::npos) << too_large->body();
  auto chunked_too_large =
      post("/echo", "Transfer-Encoding: chunked\r\n",
           "2328\r\n" + std::string(9000, 'y') + "\r\n0\r\n\r\n");  // 0x2328 = 9000
  ASSERT_TRUE(chunked_too_large);
  EXPECT_EQ(chunked_too_large->result(), http::status::payload_too_large);

  // Any other route keeps max_body_bytes.
  for (const std::string target : {"/hello", "/unknown"}) {
    auto other = post(target, "Content-Length: 5000\r\n", std::string(5000, 'x'));
    ASSERT_TRUE(other) << target;
    EXPECT_EQ(other->result(), http::status::payload_too_large) << target;
    EXPECT_NE(other->body().find("1024"), std::string::npos) << other->body();
    auto other_chunked = post(target, "Transfer-Encoding: chunked\r\n", chunked_5000);
    ASSERT_TRUE(other_chunked) << target;
    EXPECT_EQ(other_chunked->result(), http::status::payload_too_large) << target;
  }
}

TEST_F(http_server_test, malformed_request_gets_400_and_close) {
  start();
  for (const char* bad : {"GET / HTP/1.1\r\n\r\n", "GET\x01 / HTTP/1.1\r\n\r\n",
                          "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n"}) {
    client c(port());
    c.send(bad);
    auto res = c.read();
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->result(), http::status::bad_request) << bad;
    EXPECT_EQ(nlohmann::json::parse(res->body())["code"], "invalid_request");
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST_F(http_server_test, header_too_large_gets_431) {
  start({.max_header_bytes = 2048});
  client c(port());
  c.send(get("/hello", "X-Big: " + std::string(4096, 'a') + "\r\n"));
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 431u);
  EXPECT_EQ(nlohmann::json::parse(res->body())["code"], "header_too_large");
}

TEST_F(http_server_test, slowloris_client_is_disconnected_after_header_timeout) {
  start({.header_timeout = 200ms});
  client c(port());
  c.send("GET /hello HTTP/1.1\r\nHost: t\r\n");  // and never the blank line
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 0; }));
  client after(port());
  after.send(get("/hello"));
  EXPECT_TRUE(after.read());
}

TEST_F(http_server_test, idle_keep_alive_connection_is_closed) {
  start({.idle_timeout = 200ms});
  client c(port());
  c.send(get("/hello"));
  ASSERT_TRUE(c.read());
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(http_server_test, each_request_on_a_keep_alive_connection_gets_its_timeouts) {
  // The idle timeout is long: only the header or body timeout can close these in time.
  start({.header_timeout = 200ms, .body_timeout = 200ms, .idle_timeout = 60s});
  {
    client c(port());
    c.send(get("/hello"));
    ASSERT_TRUE(c.read());
    c.send("GET /hello HTTP/1.1\r\nHost: t\r\n");  // the second header never ends
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    client c(port());
    c.send(get("/hello"));
    ASSERT_TRUE(c.read());
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");  // 3 of 10
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST_F(http_server_test, a_busy_keep_alive_connection_outlives_the_idle_timeout) {
  start({.idle_timeout = 1s});
  client c(port());
  // Requests 200 ms apart for longer than the idle timeout: never idle that long.
  for (int i = 0; i < 7; ++i) {
    c.send(get("/fast/" + std::to_string(i)));
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->body(), std::to_string(i));
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(c.closed_by_server());  // and once idle, it is closed
}

TEST_F(http_server_test, connections_beyond_the_cap_are_refused) {
  start({.max_connections = 2});
  client a(port()), b(port());
  for (client* c : {&a, &b}) {
    c->send(get("/hello"));
    ASSERT_TRUE(c->read());
  }
  client c(port());
  c.send(get("/hello"));
  auto res = c.read();  // a 503, or just a closed connection
  if (res) {
    EXPECT_EQ(res->result(), http::status::service_unavailable);
    EXPECT_EQ(nlohmann::json::parse(res->body())["code"], "unavailable");
  }
  EXPECT_TRUE(c.closed_by_server());

  a.close();
  ASSERT_TRUE(eventually([&] { return server_->open_connections() == 1; }));
  client d(port());
  d.send(get("/hello"));
  auto ok = d.read();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->result(), http::status::ok);
}

TEST_F(http_server_test, event_stream_delivers_chunks_and_sees_the_client_leave) {
  start();
  client c(port());
  c.send(get("/events"));
  ASSERT_TRUE(c.read_until_contains("data: one\n\n"));
  EXPECT_NE(c.raw().find("text/event-stream"), std::string::npos);
  EXPECT_NE(c.raw().find("chunked"), std::string::npos);
  auto f = stream_.get_future();
  ASSERT_EQ(f.wait_for(liveness), std::future_status::ready);
  auto stream = f.get();
  std::thread other([stream] { EXPECT_TRUE(stream->send("data: two\n\n")); });
  other.join();
  ASSERT_TRUE(c.read_until_contains("data: two\n\n"));

  c.close();
  EXPECT_EQ(stream_closed_.get_future().wait_for(liveness), std::future_status::ready);
  EXPECT_FALSE(stream->is_open());
  EXPECT_FALSE(stream->send("data: late\n\n"));
  bool late_callback = false;
  stream->on_close([&] { late_callback = true; });  // runs at once
  EXPECT_TRUE(late_callback);
}

TEST_F(http_server_test, head_sends_the_get_headers_and_no_body) {
  start();
  client c(port());
  c.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n" + get("/fast/7"));
  ASSERT_TRUE(c.read_until_contains("\r\n\r\n7"));  // the next response follows at once
  EXPECT_NE(c.raw().find("Content-Length: 15\r\n"), std::string::npos) << c.raw();
  EXPECT_EQ(c.raw().find("hello 127.0.0.1"), std::string::npos) << c.raw();
  EXPECT_EQ(c.raw().find("HTTP/1.1 200 OK"), 0u);
}

TEST_F(http_server_test, head_of_an_event_stream_sends_its_headers_and_ends) {
  start();
  client c(port());
  c.send("HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_FALSE(c.read_until_contains("never sent"));  // the server ends the response
  EXPECT_NE(c.raw().find("text/event-stream"), std::string::npos) << c.raw();
  EXPECT_EQ(c.raw().find("data: one"), std::string::npos) << c.raw();
  EXPECT_EQ(stream_closed_.get_future().wait_for(liveness), std::future_status::ready);
}

TEST_F(http_server_test, event_stream_close_ends_the_response) {
  start();
  client c(port());
  c.send(get("/events"));
  auto f = stream_.get_future();
  ASSERT_EQ(f.wait_for(liveness), std::future_status::ready);
  f.get()->close();
  ASSERT_TRUE(c.read_until_contains("0\r\n\r\n"));  // the last chunk
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(stream_closed_.get_future().wait_for(liveness), std::future_status::ready);
}

TEST_F(http_server_test, answers_given_together_from_another_thread_reach_every_connection) {
  // Like a commit group's answers: the handlers park their responders, and one thread
  // answers them all at once, pipelined requests included.
  start();
  constexpr int connections = 12, per_connection = 3;
  std::vector<std::unique_ptr<client>> clients;
  for (int c = 0; c < connections; ++c) {
    clients.push_back(std::make_unique<client>(port()));
    ASSERT_TRUE(clients.back()->connected());
    std::string batch;
    for (int i = 0; i < per_connection; ++i) {
      batch += get("/parked/" + std::to_string(c) + "-" + std::to_string(i));
    }
    clients.back()->send(batch);
  }
  ASSERT_TRUE(
      eventually([&] { return parked_count() == std::size_t(connections * per_connection); }));
  std::thread answering([&] {
    std::lock_guard lock(parked_mu_);
    // In reverse: each connection still answers in request order.
    for (auto it = parked_.rbegin(); it != parked_.rend(); ++it) {
      it->second(text_response(http::status::ok, it->first, "text/plain"));
    }
    parked_.clear();
  });
  answering.join();
  for (int c = 0; c < connections; ++c) {
    for (int i = 0; i < per_connection; ++i) {
      auto res = clients[std::size_t(c)]->read();
      ASSERT_TRUE(res) << c << " " << i;
      EXPECT_EQ(res->body(), std::to_string(c) + "-" + std::to_string(i));
      EXPECT_TRUE(res->keep_alive());
    }
  }
}

TEST_F(http_server_test, answers_to_clients_that_left_are_dropped_with_the_others_delivered) {
  // A batch of answers given from another thread, some for clients that left while their
  // requests were in flight: one reset its connection (closed by the server at once, before
  // its answer comes), one closed its side (the server writes the answer, then closes).
  // The others get theirs, the connections close, and nothing holds the server after.
  start();
  client gone(port()), leaving(port()), a(port()), b(port());
  const std::vector<std::pair<client*, std::string>> all = {
      {&gone, "gone"}, {&leaving, "leaving"}, {&a, "a"}, {&b, "b"}};
  for (const auto& [c, name] : all) {
    ASSERT_TRUE(c->connected());
    c->send(get("/parked/" + name));
  }
  ASSERT_TRUE(eventually([&] { return parked_count() == 4; }));
  EXPECT_EQ(server_->open_connections(), 4u);
  gone.reset();
  ASSERT_TRUE(eventually([&] { return server_->open_connections() == 3; }));
  leaving.close();
  answer_parked();
  for (client* c : {&a, &b}) {
    auto res = c->read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body(), c == &a ? "a" : "b");
    EXPECT_TRUE(res->keep_alive());
  }
  ASSERT_TRUE(eventually([&] { return server_->open_connections() == 2; }));
  a.send(get("/hello"));  // still serving
  ASSERT_TRUE(a.read());

  // Resets racing the answers: each answer is given while its client resets.
  std::vector<std::unique_ptr<client>> racing;
  for (int i = 0; i < 8; ++i) {
    racing.push_back(std::make_unique<client>(port()));
    ASSERT_TRUE(racing.back()->connected());
    racing.back()->send(get("/parked/racing-" + std::to_string(i)));
  }
  ASSERT_TRUE(eventually([&] { return parked_count() == 8; }));
  std::thread answering([this] { answer_parked(); });
  for (auto& c : racing) c->reset();
  answering.join();
  b.send(get("/hello"));
  ASSERT_TRUE(b.read());
  ASSERT_TRUE(eventually([&] { return server_->open_connections() == 2; }));

  a.close();
  b.close();
  ASSERT_TRUE(eventually([&] { return server_->open_connections() == 0; }));
  EXPECT_TRUE(server_released());
}

TEST_F(http_server_test, stop_closes_a_connection_whose_answer_comes_after_the_grace) {
  // The grace runs out with the request unanswered: stop() closes the connection. The
  // answer, given afterwards from another thread, goes through the hand-over to a closed
  // connection and is dropped.
  start();
  client c(port());
  c.send(get("/parked/late"));
  ASSERT_TRUE(eventually([&] { return parked_count() == 1; }));
  ASSERT_TRUE(server_->stop(100ms));
  EXPECT_EQ(server_->open_connections(), 0u);
  EXPECT_TRUE(c.closed_by_server());
  answer_parked();
  EXPECT_TRUE(server_released());
}

TEST_F(http_server_test, destroying_the_server_drops_an_answer_queued_for_a_connection_it_closes) {
  // The server is destroyed (every connection closed at once) while an answer is queued in
  // the hand-over. One I/O thread, held until both wait: the close reaches the connection
  // first and the answer, moved onto the connection's strand behind it, is dropped.
  start({}, 1);
  client c(port()), idle(port());
  c.send(get("/parked/queued"));
  ASSERT_TRUE(eventually([&] { return parked_count() == 1; }));
  std::promise<void> release;
  std::promise<void> holding;
  asio::post(ioc_, [&holding, released = release.get_future()]() mutable {
    holding.set_value();
    released.wait();
  });
  ASSERT_EQ(holding.get_future().wait_for(liveness), std::future_status::ready);
  server_.reset();
  answer_parked();
  release.set_value();
  EXPECT_FALSE(c.read()) << "closed without the answer";
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_TRUE(server_released());
}

TEST(http_server_handoff, answers_left_when_the_io_context_goes_away_are_dropped) {
  // An answer given after the I/O threads stopped waits for an I/O thread that never
  // comes; destroying the io_context must release it (and with it the connection) rather
  // than leak or crash. The queued answer holds its connection, which holds the server's
  // shared state, which holds the handler: `state` expires once all of them are gone.
  std::promise<responder> parked;
  router routes;
  routes.add(http::verb::get, "/park", [&](const request&, request_context&, responder r) {
    parked.set_value(std::move(r));
  });
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> state = token;
  auto ioc = std::make_unique<asio::io_context>();
  auto work = asio::make_work_guard(*ioc);
  auto server = std::make_unique<http_server>(
      *ioc, http_server_options{.port = 0},
      [h = routes.as_handler(), token = std::move(token)](
          const request& req, request_context& ctx, responder r) { h(req, ctx, std::move(r)); });
  ASSERT_TRUE(server->start());
  std::thread io([&] { ioc->run(); });
  client c(server->port());
  c.send(get("/park"));
  auto f = parked.get_future();
  ASSERT_EQ(f.wait_for(liveness), std::future_status::ready);
  auto respond = f.get();
  ioc->stop();
  io.join();
  EXPECT_TRUE(respond(text_response(http::status::ok, "late", "text/plain")));
  respond = responder::capture([](response) {});  // only the queued answer holds it now
  server.reset();
  work.reset();
  EXPECT_FALSE(state.expired());
  ioc.reset();  // drops the queued answer with its connection
  EXPECT_TRUE(state.expired()) << "the queued answer (or its connection) leaked";
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(http_server_test, graceful_stop_finishes_the_request_in_flight) {
  start();
  client c(port());
  c.send(get("/slow"));
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  client idle(port());  // connected, never sends: closed at once by stop

  auto stopped = std::async(std::launch::async, [this] { return server_->stop(10s); });
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_EQ(stopped.wait_for(50ms), std::future_status::timeout);  // still waiting for /slow
  release_slow();
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "slow");
  EXPECT_FALSE(res->keep_alive());
  ASSERT_EQ(stopped.wait_for(liveness), std::future_status::ready);
  EXPECT_TRUE(stopped.get());
  EXPECT_EQ(server_->open_connections(), 0u);
  client late(port());
  EXPECT_FALSE(late.connected() && late.read());
}

TEST_F(http_server_test, graceful_stop_answers_every_pipelined_request_already_read) {
  start();
  client c(port());
  // Three requests in one write: the fast ones run (and would commit) while the first is
  // still being handled; the stop comes before any is answered.
  c.send(get("/slow") + get("/fast/1") + get("/fast/2"));
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  client idle(port());
  auto stopped = std::async(std::launch::async, [this] { return server_->stop(10s); });
  EXPECT_TRUE(idle.closed_by_server());  // the stop has reached the sessions
  std::this_thread::sleep_for(50ms);
  release_slow();
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    bodies.push_back(res->body());
    EXPECT_EQ(res->keep_alive(), i < 2) << i;  // close on the last one only
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"slow", "1", "2"}));
  EXPECT_TRUE(c.closed_by_server());
  ASSERT_EQ(stopped.wait_for(liveness), std::future_status::ready);
  EXPECT_TRUE(stopped.get());
}

TEST_F(http_server_test, a_handler_asking_to_close_still_gets_the_requests_already_run_answered) {
  start();
  // Answered at once: reading stops there, so nothing behind it runs.
  {
    client c(port());
    c.send(get("/bye") + get("/count"));
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body(), "bye");
    EXPECT_FALSE(res->keep_alive());
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(counted_.load(), 0);
  }
  // Answered later, after the request behind it ran: that one is answered too, and the
  // close moves to it.
  client c(port());
  c.send(get("/slow-bye") + get("/count") + get("/count"));
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  ASSERT_TRUE(eventually([&] { return counted_.load() == 2; }));
  release_slow();
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    bodies.push_back(res->body());
    EXPECT_EQ(res->keep_alive(), i < 2) << i;
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"slow bye", "counted", "counted"}));
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(http_server_test, a_request_pipelined_behind_an_event_stream_is_not_run) {
  start();
  client c(port());
  c.send(get("/events") + get("/count"));
  ASSERT_TRUE(c.read_until_contains("data: one\n\n"));
  auto f = stream_.get_future();
  ASSERT_EQ(f.wait_for(liveness), std::future_status::ready);
  f.get()->close();
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(counted_.load(), 0);  // it could never have been answered
}

TEST_F(http_server_test, http10_keep_alive_is_honoured) {
  start();
  client c(port());
  for (int i = 0; i < 2; ++i) {
    c.send("GET /fast/" + std::to_string(i) + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->body(), std::to_string(i));
    EXPECT_EQ(res->version(), 10);
    EXPECT_TRUE(res->keep_alive()) << i;
  }
  EXPECT_EQ(server_->open_connections(), 1u);
}

TEST_F(http_server_test, the_idle_timeout_counts_from_the_response_not_the_request) {
  start({.idle_timeout = 1s});
  client c(port());
  c.send(get("/slow"));
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  // The handler takes most of the idle timeout; the client's next request, well within
  // idle_timeout of the response, must find the connection open.
  std::this_thread::sleep_for(800ms);
  release_slow();
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->keep_alive());
  std::this_thread::sleep_for(400ms);
  c.send(get("/fast/next"));
  res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "next");
}

TEST_F(http_server_test, huge_timeouts_do_not_overflow_into_the_past) {
  constexpr auto years =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 365 * 400));
  start({.header_timeout = years,
         .body_timeout = years,
         .idle_timeout = years,
         .write_timeout = years});
  client c(port());
  for (int i = 0; i < 2; ++i) {
    c.send(get("/fast/" + std::to_string(i)));
    auto res = c.read();
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->body(), std::to_string(i));
    std::this_thread::sleep_for(20ms);
  }
}

TEST_F(http_server_test, a_client_that_never_reads_is_closed_at_the_write_timeout) {
  const std::string big(8 << 20, 'x');
  routes_.add(http::verb::get, "/big", [&big](const request&, request_context&, responder r) {
    r(text_response(http::status::ok, big, "text/plain"));
  });
  start({.write_timeout = 200ms});
  client c(port(), 4096);
  ASSERT_TRUE(c.connected());
  c.send(get("/big"));
  ASSERT_TRUE(eventually([&] { return server_->open_connections() == 1; }));
  EXPECT_TRUE(eventually([&] { return server_->open_connections() == 0; }));
}

TEST_F(http_server_test, stop_closes_connections_still_open_at_the_deadline) {
  start();
  client c(port());
  c.send(get("/slow"));
  ASSERT_EQ(slow_started_promise_.get_future().wait_for(liveness), std::future_status::ready);
  EXPECT_TRUE(server_->stop(100ms));
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(http_server_test, dropped_or_throwing_handlers_answer_500) {
  start();
  client c(port());
  for (const char* target : {"/drop", "/throw"}) {
    c.send(get(target));
    auto res = c.read();
    ASSERT_TRUE(res) << target;
    EXPECT_EQ(res->result(), http::status::internal_server_error);
    EXPECT_EQ(nlohmann::json::parse(res->body())["code"], "internal");
  }
}

TEST_F(http_server_test, router_problems_reach_the_client) {
  start();
  client c(port());
  c.send(get("/nope") + get("/items/..") + "DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  auto not_found = c.read();
  auto bad = c.read();
  auto wrong_method = c.read();
  ASSERT_TRUE(not_found && bad && wrong_method);
  EXPECT_EQ(not_found->result(), http::status::not_found);
  EXPECT_EQ(bad->result(), http::status::bad_request);
  EXPECT_EQ(wrong_method->result(), http::status::method_not_allowed);
  EXPECT_EQ((*wrong_method)[http::field::allow], "GET, HEAD");
}

TEST_F(http_server_test, client_ip_comes_from_the_proxy_only_when_trusted) {
  start();
  client c(port());
  c.send(get("/hello", "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"));
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hello 127.0.0.1");
}

TEST_F(http_server_test, trusted_proxy_sets_client_ip_and_request_id) {
  start({.trust_proxy = true});
  client c(port());
  std::string id = "0b7f7a3e-2f35-4a5e-9f49-3c4b3b0c6e11";
  c.send(get("/hello", "X-Forwarded-For: 203.0.113.9\r\nX-Request-Id: " + id + "\r\n"));
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hello 203.0.113.9");
  EXPECT_EQ((*res)["X-Request-Id"], id);
}

// A client may send an X-Forwarded-For of its own; the proxy appends the address it saw.
// Only that last entry is the client's: taking the first would let anyone pick the IP
// that claims are rate-limited by.
TEST_F(http_server_test, a_trusted_proxy_s_last_entry_is_the_client_not_what_the_client_sent) {
  start({.trust_proxy = true});
  client c(port());
  c.send(get("/hello", "X-Forwarded-For: 198.51.100.7, 10.9.8.7 ,203.0.113.9 \r\n"));
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hello 203.0.113.9");
  // A proxy that adds a header line of its own (HAProxy's `option forwardfor`) rather than
  // appending to the client's: the last line's last entry, never the client's line.
  c.send(get("/hello",
             "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: 10.1.1.1, 203.0.113.10\r\n"));
  res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "hello 203.0.113.10");
}

TEST_F(http_server_test, metrics_and_access_log_use_route_templates) {
  start();
  client c(port());
  c.send(get("/items/41") + get("/items/42") + get("/nope"));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.read());
  c.send(get("/metrics"));
  auto res = c.read();
  ASSERT_TRUE(res);
  const std::string& text = res->body();
  EXPECT_NE(
      text.find(R"(passage_http_requests_total{method="GET",route="/items/{id}",status="200"} 2)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(route="unmatched",status="404"} 1)"), std::string::npos) << text;
  EXPECT_EQ(text.find("/items/41"), std::string::npos);
  EXPECT_NE(text.find("passage_http_open_connections 1"), std::string::npos);

  ASSERT_TRUE(eventually([&] {
    return access_log_.str().find("/nope") == std::string::npos &&
           access_log_.str().find("unmatched") != std::string::npos;
  }));
  std::istringstream lines(access_log_.str());
  std::string first;
  std::getline(lines, first);
  auto line = nlohmann::json::parse(first);
  EXPECT_EQ(line["msg"], "request");
  EXPECT_EQ(line["route"], "/items/{id}");
  EXPECT_EQ(line["status"], 200);
  EXPECT_EQ(line["method"], "GET");
  EXPECT_TRUE(line.contains("duration_ms"));
  EXPECT_TRUE(line.contains("request_id"));
  EXPECT_EQ(access_log_.str().find("127.0.0.1"), std::string::npos);
}

TEST_F(http_server_test, http10_and_connection_close_end_the_connection) {
  start();
  client c(port());
  c.send("GET /hello HTTP/1.0\r\n\r\n");
  auto res = c.read();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result(), http::status::ok);
  EXPECT_TRUE(c.closed_by_server());

  client d(port());
  d.send(get("/hello", "Connection: close\r\n") + get("/hello"));
  ASSERT_TRUE(d.read());
  EXPECT_TRUE(d.closed_by_server());
}

TEST_F(http_server_test, start_reports_a_port_in_use) {
  start();
  http_server second(ioc_, {.port = port()}, routes_.as_handler());
  auto r = second.start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot listen on 127.0.0.1:"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace passage::api
