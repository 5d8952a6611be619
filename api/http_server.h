#pragma once
// The HTTP/1.1 server: an acceptor and one session per connection, on a
// caller-owned io_context that the application runs on as many threads as it
// likes. Sessions keep connections alive, read pipelined requests while earlier
// ones are still being handled and write the responses strictly in request
// order. They enforce body and header limits, header/idle/write timeouts
// (slowloris), a connection cap and a pipelining cap, and stop gracefully.
//
//   boost::asio::io_context ioc;
//   router r;  r.add(http::verb::get, "/healthz", healthz);
//   http_server server(ioc, {.port = 8080, .metrics = m, .access_log = log}, r.as_handler());
//   if (auto started = server.start(); !started) die(started.error());
//   std::vector<std::thread> threads;  // ioc.run() on each
//   ...
//   server.stop(std::chrono::seconds(10));  // on SIGTERM, from a non-I/O thread
//   ioc.stop();

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>

#include "api/http_types.h"
#include "api/metrics.h"
#include "common/clock.h"
#include "common/result.h"

namespace passage::api {

struct http_server_options {
  // Address to listen on. Default: "127.0.0.1"; "0.0.0.0" or "::" for every interface.
  std::string address = "127.0.0.1";
  // TCP port. Default: 8080. 0 picks a free port; see http_server::port().
  std::uint16_t port = 8080;
  // Largest request body; a larger one gets 413 and the connection closes.
  // Default: 64 KiB.
  std::size_t max_body_bytes = 64 * 1024;
  // Routes allowed a larger body than max_body_bytes, named as `route_of` names them
  // ({"POST /v1/invites/{id}/send", 1 << 20}). Decided once a request's header is in, and
  // only for a request whose body may exceed max_body_bytes. Default: none.
  std::map<std::string, std::size_t> route_body_bytes;
  // The method and route template a request line matches ("POST /v1/invites/{id}/send"),
  // or nullopt; needed with route_body_bytes (see router::route_of).
  std::function<std::optional<std::string>(http::verb, std::string_view target)> route_of;
  // Largest request line plus header fields; larger gets 431 and the
  // connection closes. Default: 16 KiB.
  std::size_t max_header_bytes = 16 * 1024;
  // Time from the first byte of a request (or from accept, for the first
  // request) to its complete header. A client that dribbles its header is
  // disconnected. Default: 10 s.
  std::chrono::milliseconds header_timeout{10'000};
  // Time to receive a body once its header is in. Default: 30 s.
  std::chrono::milliseconds body_timeout{30'000};
  // How long a keep-alive connection may wait, idle, for its next request.
  // Default: 30 s.
  std::chrono::milliseconds idle_timeout{30'000};
  // Time for one response (or stream chunk) write to complete; slower readers
  // are disconnected. Default: 30 s.
  std::chrono::milliseconds write_timeout{30'000};
  // After a final response (error, Connection: close, stop) the server stops
  // sending and discards input this long so the client reads the response
  // rather than a reset. Default: 1 s.
  std::chrono::milliseconds linger_timeout{1'000};
  // Open connections beyond which a new connection gets a 503 and is closed.
  // Default: 10,000.
  std::size_t max_connections = 10'000;
  // Requests read but not yet answered on one connection; the session stops
  // reading until the oldest is answered. Default: 16.
  std::size_t max_pipelined_requests = 16;
  // Bytes an event stream may queue for a slow client before it is
  // disconnected. Default: 1 MiB.
  std::size_t max_stream_buffer_bytes = 1 << 20;
  // Take the client IP from the last X-Forwarded-For entry (and accept a
  // UUID X-Request-Id) — only behind a proxy that sets them. Default: false.
  bool trust_proxy = false;
  // Where request counts, durations and open connections go. Default: nullptr (none).
  std::shared_ptr<api::metrics> metrics;
  // Receives one JSON access-log line per answered request (method, route,
  // status, duration_ms, request_id, client tag; never the IP). Default:
  // nullptr (no access log).
  std::shared_ptr<spdlog::logger> access_log;
  // Source of request_context::received_at. Default: nullptr means the
  // system clock. Must outlive the server.
  const passage::clock* clock = nullptr;
};

// Owned by the application. start(), port(), open_connections() and the stop
// functions may be called from any thread; the destructor closes everything
// at once (call stop() first for a graceful end) and must not run on an I/O
// thread of the io_context while it is running. The io_context must outlive
// every responder and event_stream the handlers hold. Answers handed over after it
// stopped running are dropped when it is destroyed, and their connections closed.
class http_server {
 public:
  http_server(boost::asio::io_context& ioc, http_server_options options, handler h);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Binds, listens and starts accepting (the accept loop runs once the
  // io_context runs). Errors name the address and the cause.
  result<void, std::string> start();

  // The bound port (the chosen one when options.port was 0); 0 before start().
  std::uint16_t port() const;

  // Open connections right now.
  std::size_t open_connections() const;

  // Stops accepting, closes idle connections, lets requests in flight finish
  // and their responses be written (with Connection: close), ends event
  // streams; connections still open after `grace` are closed. `done` runs
  // once, on an I/O thread, when every connection is closed.
  void async_stop(std::chrono::milliseconds grace, std::function<void()> done);

  // As async_stop(), blocking until done. The io_context must be running on
  // other threads; calling it from one of its own threads is refused.
  result<void, std::string> stop(std::chrono::milliseconds grace);

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace passage::api
