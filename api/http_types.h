#pragma once
// The vocabulary between the HTTP server and the code that answers requests:
// the request/response types, the per-request context, the `responder` that a
// handler calls exactly once (from any thread, possibly later) and the
// `event_stream` for Server-Sent Events.
//
//   handler h = [](const request& req, request_context& ctx, responder respond) {
//     worker_pool.submit([&req, &ctx, respond] {   // req and ctx live until respond()
//       respond(json_response(http::status::ok, {{"id", ctx.params.get_or("id", "")}}));
//     });
//   };
//
//   handler live = [](const request&, request_context&, responder respond) {
//     auto stream = respond.start_stream();        // 200 text/event-stream, chunked
//     stream->on_close([] { /* client went away */ });
//     stream->send("data: hello\n\n");             // any thread
//   };

#include <atomic>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <functional>
#include <memory>
#include <string>

#include "api/params.h"
#include "common/clock.h"
#include "common/uuid.h"

namespace passage::api {

namespace http = boost::beast::http;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;
using response_header = http::response_header<>;

// What the server knows about a request besides its bytes. Filled by the server
// (client_ip, request_id, received_at) and the router (route, params, query).
// Owned by the connection; valid until the handler has responded (or its stream
// has closed). Not synchronized: a handler that hands it to another thread must
// not touch it from two threads at once.
struct request_context {
  // The peer's address, or the last X-Forwarded-For entry when the server
  // trusts a proxy. Never log it in clear (see api/logging.h).
  std::string client_ip;
  // Echoed in the X-Request-Id response header and in the access log.
  uuid request_id;
  // When the request was fully read (server clock).
  timestamp received_at{};
  // The matched route template, e.g. "/v1/invites/{id}"; metrics label
  // requests with it. Empty when no route matched.
  std::string route;
  // Route parameters, percent-decoded.
  param_map params;
  // Query parameters, percent-decoded ('+' is a space); first value wins.
  param_map query;
};

// A streaming response body (Server-Sent Events). Created by
// responder::start_stream(); shared by the handler and the connection. Every
// method is safe to call from any thread.
class event_stream {
 public:
  virtual ~event_stream() = default;

  // Queues `chunk` to be written as is (an SSE frame such as "data: x\n\n").
  // Returns false once the stream is closed; the chunk is then dropped. A
  // client that does not read fast enough to keep the queue under the server's
  // max_stream_buffer_bytes is disconnected.
  virtual bool send(std::string chunk) = 0;

  // Ends the response after the queued chunks; the connection then closes.
  virtual void close() = 0;

  // Whether send() can still succeed.
  virtual bool is_open() const = 0;

  // Runs `fn` once when the stream ends for any reason: the client went away,
  // close() was called, the server stopped. Runs at once (on this thread) if the
  // stream has ended already; otherwise on an I/O thread, so it must be quick.
  virtual void on_close(std::function<void()> fn) = 0;
};

// Where a responder delivers: implemented by the server's connections, and by
// tests that call handlers without a socket (see responder::capture).
class response_sink {
 public:
  virtual ~response_sink() = default;
  virtual void deliver(response res) = 0;
  virtual std::shared_ptr<event_stream> open_stream(response_header header) = 0;
  // An answer sent before the request's own (responder::provisionally): the client gets
  // `res` now. By default it is the answer, as deliver() would send it.
  virtual void deliver_provisional(response res) { deliver(std::move(res)); }
  // The request's own answer after a provisional one: the client has its answer already,
  // so by default it goes nowhere; a sink that keeps answers for retries keeps this one.
  virtual void settle(response) {}
  // Whether settle() keeps what it gets: if not, whoever would make that answer later
  // need not (and need not keep what it would take to).
  virtual bool keeps_settled() const { return false; }
};

// The one-shot reply channel of a request. Copyable; all copies share one
// "already answered" flag. Call it (or start_stream) exactly once, from any
// thread; later calls are ignored. If every copy is dropped without an answer,
// the client gets a 500 problem rather than a hung connection.
class responder {
 public:
  explicit responder(std::shared_ptr<response_sink> sink);

  // Sends `res`. Returns false if this request was answered already (after a provisional
  // answer, `res` goes to the sink's settle() instead: false as well).
  bool operator()(response res) const;

  // Sends `res` now as a stand-in (e.g. 503 while the read models lag behind a command
  // that is already durable), leaving the request's own answer to a later call of this
  // responder, which the client does not get but the sink may keep (response_sink::
  // settle). Returns false if this request was answered already.
  bool provisionally(response res) const;
  // Whether an answer after a provisional one is kept (response_sink::keeps_settled).
  bool keeps_settled() const;

  // Answers with a streaming body instead: writes `header` (default 200 with
  // Content-Type text/event-stream) and then the chunks sent on the stream.
  // A stream ends pipelining on its connection. Returns nullptr if this
  // request was answered already.
  std::shared_ptr<event_stream> start_stream(response_header header = {}) const;

  bool answered() const;

  // A responder that hands the response to `fn` (on the calling thread); for
  // tests and in-process calls. start_stream() on it returns nullptr.
  static responder capture(std::function<void(response)> fn);

 private:
  struct control;
  std::shared_ptr<control> control_;
};

// Answers one request. Runs on an I/O thread: it must not block. Slow work
// goes elsewhere and calls `respond` when done. Exceptions thrown by a handler
// become a 500 problem (if it had not answered yet).
using handler = std::function<void(const request& req, request_context& ctx, responder respond)>;

}  // namespace passage::api
