#include "api/http_server.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/defer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "api/logging.h"
#include "api/problem.h"

namespace passage::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
// Connections run on a strand of the io_context, named by its concrete type rather than
// the type-erased any_io_executor: every asynchronous operation then completes without
// allocating a copy of the executor.
using strand_type = asio::strand<asio::io_context::executor_type>;
using socket_type = asio::basic_stream_socket<tcp, strand_type>;
using timer_type = asio::basic_waitable_timer<steady, asio::wait_traits<steady>, strand_type>;

constexpr char request_id_header[] = "X-Request-Id";
constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

// The largest body any route allows.
std::size_t largest_body_bytes(const http_server_options& o) {
  std::size_t largest = o.max_body_bytes;
  for (const auto& [route, bytes] : o.route_body_bytes) largest = std::max(largest, bytes);
  return largest;
}

// The largest body the route of `method` `target` allows.
std::size_t route_body_bytes(const http_server_options& o, http::verb method,
                             beast::string_view target) {
  if (o.route_body_bytes.empty() || !o.route_of) return o.max_body_bytes;
  auto route = o.route_of(method, std::string_view(target.data(), target.size()));
  if (!route) return o.max_body_bytes;
  auto it = o.route_body_bytes.find(*route);
  return it == o.route_body_bytes.end() ? o.max_body_bytes : it->second;
}

// The Date header's IMF-fixdate for "now" (RFC 9110 §5.6.7), formatted once per second
// per thread.
const std::string& http_date() {
  thread_local std::time_t last = -1;
  thread_local std::string text;
  std::time_t t = std::time(nullptr);
  if (t != last) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    text.assign(buf, n);
    last = t;
  }
  return text;
}

// `from` + `d`, saturating at time_point::max() instead of overflowing (an option of
// years would otherwise wrap to a deadline in the past and close every connection).
steady::time_point deadline_after(steady::time_point from, std::chrono::milliseconds d) {
  constexpr auto far = steady::time_point::max();
  if (d <= std::chrono::milliseconds::zero()) return from;
  if (d >= std::chrono::duration_cast<std::chrono::milliseconds>(far - from)) return far;
  return from + d;
}

class session;
class session_stream;
class server_core;

// One request on its way through a session: read, handled, answered, written.
// Owned by the session's queue and by the request's responder.
struct exchange final : response_sink, std::enable_shared_from_this<exchange> {
  explicit exchange(std::shared_ptr<session> s) : owner(std::move(s)) {}

  void deliver(response res) override;
  std::shared_ptr<event_stream> open_stream(response_header header) override;

  std::shared_ptr<session> owner;
  request req;
  request_context ctx;
  steady::time_point started = steady::now();
  bool keep_alive = true;  // the client asked to keep the connection

  // Fields below are touched on the session's strand only.
  std::optional<response> res;
  bool keep = true;  // decided when the response is written
  // Stream state.
  std::shared_ptr<session_stream> stream;
  std::optional<response_header> stream_header;
  bool stream_header_written = false;
  bool stream_closing = false;
  bool stream_finished = false;
  std::string stream_pending;
};

// The event_stream handed to a handler: queues onto the session's strand.
class session_stream final : public event_stream {
 public:
  explicit session_stream(std::weak_ptr<exchange> ex) : ex_(std::move(ex)) {}

  bool send(std::string chunk) override;
  void close() override;
  bool is_open() const override { return !closed_.load(); }
  void on_close(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    if (fired_) {
      lock.unlock();
      if (fn) fn();
      return;
    }
    fn_ = std::move(fn);
  }

  // Called by the session once the stream is over, for whatever reason.
  void notify_closed() {
    closed_.store(true);
    std::function<void()> fn;
    {
      std::lock_guard lock(mu_);
      if (fired_) return;
      fired_ = true;
      fn = std::move(fn_);
    }
    if (fn) fn();
  }

 private:
  std::weak_ptr<exchange> ex_;
  std::atomic<bool> closed_{false};
  std::mutex mu_;
  bool fired_ = false;
  std::function<void()> fn_;
};

// State shared by the listener and its sessions; outlives the http_server
// object while handlers are pending.
class server_core : public std::enable_shared_from_this<server_core> {
 public:
  server_core(asio::io_context& ioc, http_server_options options, handler h)
      : ioc_(ioc),
        options_(std::move(options)),
        handler_(std::move(h)),
        clock_(options_.clock ? options_.clock : &system_clock_),
        strand_(asio::make_strand(ioc)),
        acceptor_(strand_),
        retry_timer_(strand_),
        stop_timer_(strand_) {}

  result<void, std::string> start();
  void async_stop(std::chrono::milliseconds grace, std::function<void()> done);
  void close_now();

  void session_closed(session* s);

  // Queues the answer of `ex`, given on a thread that is not its connection's (a command
  // answered once its commit is durable, for instance). Answers given together (one
  // commit group's) share one post to the io_context (its lock, and the wake-up of an I/O
  // thread if one sleeps), not one each: the handler that takes them defers each onto its
  // connection's strand as a continuation of itself, queued on that I/O thread's own queue
  // (no post, no wake-up; the io_context's lock once when the handler returns).
  void hand_over(std::shared_ptr<exchange> ex, response res);

  const http_server_options& options() const { return options_; }
  const handler& request_handler() const { return handler_; }
  const passage::clock& clock() const { return *clock_; }
  asio::io_context& ioc() { return ioc_; }

  std::atomic<std::uint16_t> port{0};
  std::atomic<std::size_t> open{0};

 private:
  void do_accept();
  void on_accept(error_code ec, socket_type socket);
  std::vector<std::shared_ptr<session>> live_sessions();

  struct handoff {
    std::shared_ptr<exchange> ex;
    response res;
  };
  // The handler that takes the queued answers. Destroyed without having run (the
  // io_context went away first), it drops them and closes their connections: an answer's
  // request and its connection hold each other until the connection closes, and the
  // connection holds this object.
  struct take_handoffs {
    explicit take_handoffs(std::shared_ptr<server_core> c) : core(std::move(c)) {}
    take_handoffs(take_handoffs&&) = default;
    take_handoffs& operator=(take_handoffs&&) = default;
    ~take_handoffs() {
      if (core) core->drop_handoffs();
    }
    void operator()() { std::exchange(core, nullptr)->run_handoffs(); }
    std::shared_ptr<server_core> core;
  };
  void run_handoffs();
  void drop_handoffs();

  asio::io_context& ioc_;
  http_server_options options_;
  handler handler_;
  passage::system_clock system_clock_;
  const passage::clock* clock_;
  asio::strand<asio::io_context::executor_type> strand_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  asio::steady_timer stop_timer_;

  std::mutex mu_;  // guards the fields below
  std::unordered_map<session*, std::weak_ptr<session>> sessions_;
  bool stopping_ = false;
  std::vector<std::function<void()>> on_stopped_;

  std::mutex handoff_mu_;  // guards the fields below
  std::vector<handoff> handoffs_;
  bool handoffs_posted_ = false;  // a take_handoffs is queued and has not taken them yet
};

// The status line and header fields of `res` as sent: the handler's fields, then
// Content-Length (from the body, except for 1xx/204/304), Date (unless the handler set
// one) and X-Request-Id. Written straight into the session's output buffer so that a
// response costs no field allocations and no serializer.
void append_head(std::string& out, const response& res, const uuid& request_id) {
  out.append(res.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char digits[8];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, res.result_int());
  (void)ec;
  out.append(digits, end);
  out.push_back(' ');
  auto reason = res.reason();
  out.append(reason.data(), reason.size());
  out.append("\r\n");
  bool has_date = false;
  for (const auto& f : res.base()) {
    auto name = f.name();
    if (name == http::field::content_length || name == http::field::transfer_encoding) continue;
    auto name_text = f.name_string();
    if (name == http::field::unknown && beast::iequals(name_text, request_id_header)) continue;
    if (name == http::field::date) has_date = true;
    auto value = f.value();
    out.append(name_text.data(), name_text.size())
        .append(": ")
        .append(value.data(), value.size())
        .append("\r\n");
  }
  unsigned status = res.result_int();
  if (status >= 200 && status != 204 && status != 304) {
    out.append("Content-Length: ");
    auto [len_end, len_ec] = std::to_chars(digits, digits + sizeof digits, res.body().size());
    (void)len_ec;
    if (len_ec == std::errc()) {
      out.append(digits, len_end);
    } else {
      out.append(std::to_string(res.body().size()));
    }
    out.append("\r\n");
  }
  if (!has_date) out.append("Date: ").append(http_date()).append("\r\n");
  out.append(request_id_header).append(": ");
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < request_id.bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[request_id.bytes[i] >> 4]);
    out.push_back(hex[request_id.bytes[i] & 0xF]);
  }
  out.append("\r\n\r\n");
}

// One connection. Every member function except the public entry points
// (start, shutdown, force_close) runs on the socket's strand.
//
// The hot path of a keep-alive request costs one read and one write system call:
// requests are parsed from the session's own buffer (so a keep-alive connection waits
// with a plain read, not a readiness wait that re-arms epoll), a handler that answers on
// the I/O thread has its response written when it returns (no post), responses go out
// with a non-blocking send first (pipelined ones ready together in one send), and the
// timeouts share one lazily re-armed timer per connection.
class session : public std::enable_shared_from_this<session> {
 public:
  session(socket_type socket, std::shared_ptr<server_core> server)
      : socket_(std::move(socket)),
        server_(std::move(server)),
        options_(server_->options()),
        timer_(socket_.get_executor()) {
    error_code ec;
    auto peer = socket_.remote_endpoint(ec);
    if (!ec) peer_ip_ = peer.address().to_string();
    socket_.set_option(tcp::no_delay(true), ec);
    // Responses are first sent without waiting; what the kernel does not take goes
    // out asynchronously.
    socket_.non_blocking(true, ec);
  }

  void start() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->maybe_read(); });
  }

  // Graceful: finish what was read, then close.
  void shutdown() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_shutdown(); });
  }

  void force_close() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close_socket(); });
  }

  // Only while the io_context is being destroyed (no I/O thread runs it any more): closes
  // the connection at once and lets go of its requests in flight, which hold this session
  // (a cycle nothing else would break).
  void abandon() { close_socket(); }

  template <typename F>
  void run(F&& f) {
    asio::post(socket_.get_executor(), std::forward<F>(f));
  }

  // As run(), called from a handler running on an I/O thread: `f` is queued on this
  // thread (no lock of the io_context, no wake-up), as a continuation of that handler.
  template <typename F>
  void run_next(F&& f) {
    asio::defer(socket_.get_executor(), std::forward<F>(f));
  }

  server_core& server() { return *server_; }

  // Whether the calling thread is running this session's strand right now (a handler
  // answering before it returns, for instance).
  bool on_own_strand() const { return strand_.running_in_this_thread(); }

  void on_response(const std::shared_ptr<exchange>& ex, response res) {
    if (closed_ || ex->res || ex->stream) return;
    // A handler asking to close: read nothing more. The requests already read have run,
    // so they are answered first; the connection closes after the last of them
    // (serialize). The intent is read before the version is set: an HTTP/1.0 response
    // without "Connection: keep-alive" reads as close.
    if (!res.keep_alive()) read_closed_ = true;
    ex->res = std::move(res);
    // A handler answering from within on_request has its response written when it
    // returns, together with whatever else is ready.
    if (!in_handler_) do_write();
  }

  void on_stream_started(const std::shared_ptr<exchange>& ex,
                         std::shared_ptr<session_stream> stream, response_header header) {
    if (closed_) {
      stream->notify_closed();
      return;
    }
    ex->stream = std::move(stream);
    ex->stream_header = std::move(header);
    read_closed_ = true;  // a stream ends pipelining
    if (!in_handler_) do_write();
  }

  void on_stream_send(const std::shared_ptr<exchange>& ex, std::string chunk) {
    if (closed_ || ex->stream_closing) return;
    if (ex->stream_pending.size() + chunk.size() > options_.max_stream_buffer_bytes) {
      close_socket();  // the client does not keep up
      return;
    }
    ex->stream_pending += chunk;
    do_write();
  }

  void on_stream_close(const std::shared_ptr<exchange>& ex) {
    if (closed_) return;
    ex->stream_closing = true;
    do_write();
  }

 private:
  enum class timer_kind { idle, header, body, linger };
  static constexpr steady::time_point never = steady::time_point::max();
  static constexpr std::size_t max_kept_output_bytes = 64 * 1024;

  // ---- reading ----

  // Parses what the buffer holds into requests and reads more when needed, until the
  // pipelining cap, the end of the connection or an outstanding read stops it.
  // Re-entrant calls (a response written from within) only ask for another round.
  void maybe_read() {
    if (in_read_loop_) {
      read_again_ = true;
      return;
    }
    in_read_loop_ = true;
    do {
      read_again_ = false;
      read_step();
    } while (read_again_ && !closed_);
    in_read_loop_ = false;
  }

  void read_step() {
    while (true) {
      if (closed_ || reading_) return;
      if (lingering_ || streaming_) return start_discard();
      if (read_closed_ || queue_.size() >= options_.max_pipelined_requests) return;
      if (!parser_) new_parser();
      if (buffer_.size() == 0) return start_read();
      error_code ec;
      std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) return start_read();
      if (ec) {
        on_read_failed(ec);
        continue;  // the flags set above end the loop
      }
      if (parser_->is_done()) {
        on_request();
        continue;
      }
      if (parser_->is_header_done() && !header_handled_) {
        header_handled_ = true;
        on_header();
        continue;
      }
      if (used == 0) return start_read();
    }
  }

  void new_parser() {
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(options_.max_header_bytes, UINT32_MAX)));
    // The largest any route allows until the header says which route it is (on_header).
    body_limit_ = largest_body_bytes(options_);
    parser_->body_limit(body_limit_);
    header_handled_ = false;
    header_started_ = false;
  }

  // Waits for more bytes under the timeout that applies: idle between keep-alive
  // requests, header from the request's first byte (from accept for the first request),
  // body once the header is in.
  void start_read() {
    if (header_handled_) {
      set_read_deadline(body_deadline_, timer_kind::body);
    } else if (parser_->got_some() || buffer_.size() > 0) {
      if (!header_started_) {
        header_started_ = true;
        header_deadline_ = deadline_after(steady::now(), options_.header_timeout);
      }
      set_read_deadline(header_deadline_, timer_kind::header);
    } else if (requests_read_ == 0) {
      set_read_deadline(deadline_after(accepted_at_, options_.header_timeout), timer_kind::header);
    } else {
      set_read_deadline(deadline_after(steady::now(), options_.idle_timeout), timer_kind::idle);
    }
    reading_ = true;
    socket_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, 65536)),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (!lingering_) read_deadline_ = never;
    if (lingering_ || streaming_) {
      // Whatever arrived no longer matters; the discard loop takes over.
      if (ec) return close_socket();
      return maybe_read();
    }
    if (ec == asio::error::eof) {
      if (!parser_ || !parser_->got_some()) return on_read_failed(http::error::end_of_stream);
      error_code eof_ec;
      parser_->put_eof(eof_ec);
      if (!eof_ec && parser_->is_done()) return maybe_read();
      return on_read_failed(eof_ec ? eof_ec : error_code(http::error::partial_message));
    }
    if (ec) return on_read_failed(ec);
    buffer_.commit(n);
    if (!header_started_ && !header_handled_) {
      // The request's first bytes: its header has header_timeout from now (from
      // accept for a connection's first request).
      header_started_ = true;
      header_deadline_ = deadline_after(requests_read_ == 0 ? accepted_at_ : steady::now(),
                                        options_.header_timeout);
    }
    maybe_read();
  }

  // The header is in and the body is still to come.
  void on_header() {
    if (!limit_body_to_route()) return;
    const auto& head = parser_->get();
    if (head.version() >= 11 && beast::iequals(head[http::field::expect], "100-continue") &&
        queue_.empty() && !writing_) {
      out_.assign(continue_line);
      batch_ = 0;
      flush();
    }
    body_deadline_ = deadline_after(steady::now(), options_.body_timeout);
    parser_->eager(true);
  }

  void on_read_failed(error_code ec) {
    if (ec == http::error::end_of_stream) {
      // The client closed (or half-closed) between requests: answer what was
      // read, then close.
      read_closed_ = true;
      if (queue_.empty() && !writing_) close_socket();
      return;
    }
    if (ec == http::error::body_limit) return fail_body_too_large();
    if (ec == http::error::header_limit) {
      return fail_request("header_too_large", "the request line and header exceed " +
                                                  std::to_string(options_.max_header_bytes) +
                                                  " bytes");
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::partial_message) {
      return fail_request("invalid_request", "malformed HTTP request: " + ec.message());
    }
    close_socket();  // network error, timeout, or the client left mid-request
  }

  void fail_body_too_large() {
    fail_request("payload_too_large",
                 "the request body exceeds " + std::to_string(body_limit_) + " bytes");
  }

  // Narrows the parser's body limit to the route's once the header is in; false when the
  // declared length already exceeds it (answered with 413).
  bool limit_body_to_route() {
    const auto& head = parser_->get();
    const auto declared = parser_->content_length();
    if (declared && *declared <= options_.max_body_bytes) return true;
    body_limit_ = route_body_bytes(options_, head.method(), head.target());
    if (declared && *declared > body_limit_) {
      fail_body_too_large();
      return false;
    }
    parser_->body_limit(body_limit_);  // a chunked body is counted as it arrives
    return true;
  }

  // Answers a request the session could not read, then closes.
  void fail_request(std::string_view code, std::string detail) {
    auto ex = std::make_shared<exchange>(shared_from_this());
    if (parser_ && parser_->is_header_done()) ex->req.base() = parser_->get().base();
    ex->req.version(11);
    fill_context(*ex);
    ex->res = problem_response(make_problem(code, std::move(detail)));
    queue_.push_back(ex);
    read_closed_ = true;
    do_write();
  }

  void on_request() {
    ++requests_read_;
    auto ex = std::make_shared<exchange>(shared_from_this());
    ex->req = parser_->release();
    parser_.reset();
    ex->keep_alive = ex->req.keep_alive();
    fill_context(*ex);
    queue_.push_back(ex);
    if (!ex->keep_alive || stopping_) read_closed_ = true;
    // The read loop goes on with the next (pipelined) request once this returns, so
    // handlers run in request order.

    in_handler_ = true;
    {
      responder respond(ex);
      try {
        server_->request_handler()(ex->req, ex->ctx, respond);
      } catch (const std::exception& e) {
        if (respond(problem_response(make_problem("internal", "")))) {
          if (options_.access_log) {
            log_json(*options_.access_log, spdlog::level::err, "handler threw",
                     {{"error", e.what()}, {"request_id", ex->ctx.request_id.to_string()}});
          }
        }
      } catch (...) {
        respond(problem_response(make_problem("internal", "")));
      }
      in_handler_ = false;
    }  // a handler that kept no copy of `respond` without answering gets its 500 here
    do_write();
  }

  void fill_context(exchange& ex) {
    ex.ctx.client_ip = peer_ip_;
    ex.ctx.received_at = server_->clock().now();
    std::optional<uuid> id;
    if (options_.trust_proxy) {
      // The last entry: the one the proxy in front of us appended (the peer it saw).
      // Entries before it are whatever the client sent, so they cannot be trusted. A proxy
      // may add a header line of its own rather than append to the client's: the last line.
      std::string_view last;
      for (auto [it, end] = ex.req.equal_range("X-Forwarded-For"); it != end; ++it) {
        last = std::string_view(it->value().data(), it->value().size());
      }
      if (auto comma = last.rfind(','); comma != std::string_view::npos) {
        last.remove_prefix(comma + 1);
      }
      while (!last.empty() && (last.front() == ' ' || last.front() == '\t')) {
        last.remove_prefix(1);
      }
      while (!last.empty() && (last.back() == ' ' || last.back() == '\t')) {
        last.remove_suffix(1);
      }
      error_code ec;
      auto addr = asio::ip::make_address(last, ec);
      if (!ec && !last.empty()) ex.ctx.client_ip = addr.to_string();
      auto rid = ex.req[request_id_header];
      id = uuid::parse(std::string_view(rid.data(), rid.size()));
    }
    ex.ctx.request_id = id ? *id : uuid::random();
  }

  // Reads and drops input: while lingering before a close, and during an
  // event stream to notice the client leaving.
  void start_discard() {
    reading_ = true;
    socket_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              self->reading_ = false;
                              if (self->closed_) return;
                              if (ec) return self->close_socket();
                              self->maybe_read();
                            });
  }

  // ---- writing ----

  // Writes the responses ready at the front of the queue (several when pipelined
  // requests were answered together), in request order; an event stream at the front
  // is written on its own.
  void do_write() {
    if (closed_ || writing_ || lingering_ || queue_.empty()) return;
    if (queue_.front()->stream) return write_stream(queue_.front());
    out_.clear();
    batch_ = 0;
    for (const auto& ex : queue_) {
      if (ex->stream || !ex->res) break;
      serialize(*ex);
      ++batch_;
      if (!ex->keep) break;  // nothing goes out after a final response
    }
    if (batch_ == 0) return;
    flush();
  }

  void serialize(exchange& ex) {
    response& res = *ex.res;
    // Once reading has ended (the client or a handler asked to close, the server is
    // stopping, a request was unreadable) every request already read is still answered,
    // and Connection: close goes on the last one only: a command that ran is never left
    // without its response. Before that, each response keeps the connection.
    ex.keep = !(read_closed_ && &ex == queue_.back().get());
    res.version(ex.req.version());
    res.keep_alive(ex.keep);
    append_head(out_, res, ex.ctx.request_id);
    // HEAD: the headers GET would send, Content-Length included, and no body.
    unsigned status = res.result_int();
    if (ex.req.method() != http::verb::head && status >= 200 && status != 204 && status != 304) {
      out_.append(res.body());
    }
  }

  // Sends out_: at once as far as the socket takes it, the rest asynchronously under
  // the write timeout.
  void flush() {
    writing_ = true;
    out_sent_ = 0;
    error_code ec;
    while (out_sent_ < out_.size()) {
      std::size_t n =
          socket_.write_some(asio::buffer(out_.data() + out_sent_, out_.size() - out_sent_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec == asio::error::interrupted) continue;
      if (ec) {
        writing_ = false;
        return close_socket();
      }
      out_sent_ += n;
    }
    if (out_sent_ == out_.size()) return on_flushed();
    set_write_deadline(deadline_after(steady::now(), options_.write_timeout));
    asio::async_write(socket_, asio::buffer(out_.data() + out_sent_, out_.size() - out_sent_),
                      [self = shared_from_this()](error_code wec, std::size_t) {
                        self->write_deadline_ = never;
                        if (self->closed_) return;
                        if (wec) {
                          self->writing_ = false;
                          return self->close_socket();
                        }
                        self->on_flushed();
                      });
  }

  void on_flushed() {
    writing_ = false;
    if (closed_) return;
    // Responses copy their bodies into out_: a large one's buffer is not kept for the
    // rest of a keep-alive connection.
    if (out_.capacity() > max_kept_output_bytes) std::string().swap(out_);
    if (batch_ == 0) {
      // A 100 Continue. Reading may have ended meanwhile (stop, or the client half-closed)
      // with nothing to answer: close as on_shutdown would have, not at the stop deadline.
      if (queue_.empty() && read_closed_) return close_socket();
      return do_write();
    }
    bool final = false;
    for (std::size_t i = 0; i < batch_ && !queue_.empty(); ++i) {
      const auto& ex = queue_.front();
      record(*ex, ex->res->result_int());
      if (!ex->keep) final = true;
      queue_.pop_front();
    }
    batch_ = 0;
    if (final) return begin_linger();
    if (queue_.empty() && read_closed_) return begin_linger();
    if (queue_.empty() && reading_ && read_kind_ == timer_kind::idle) {
      // Idle from now on, not from when the read began (the handler may have taken most
      // of idle_timeout): a client sending its next request at once must not race a close.
      read_deadline_ = deadline_after(steady::now(), options_.idle_timeout);
    }
    maybe_read();
    do_write();
  }

  void write_stream(const std::shared_ptr<exchange>& ex) {
    if (!ex->stream_header_written) {
      stream_res_ =
          std::make_unique<http::response<http::empty_body>>(std::move(*ex->stream_header));
      auto& r = *stream_res_;
      r.version(ex->req.version());
      if (r.find(http::field::content_type) == r.end()) {
        r.set(http::field::content_type, "text/event-stream");
      }
      if (r.find(http::field::cache_control) == r.end())
        r.set(http::field::cache_control, "no-cache");
      r.set("X-Accel-Buffering", "no");
      r.set(request_id_header, ex->ctx.request_id.to_string());
      r.set(http::field::date, http_date());
      r.keep_alive(false);
      r.chunked(true);
      stream_sr_ = std::make_unique<http::response_serializer<http::empty_body>>(r);
      writing_ = true;
      set_write_deadline(deadline_after(steady::now(), options_.write_timeout));
      http::async_write_header(socket_, *stream_sr_,
                               [self = shared_from_this(), ex](error_code ec, std::size_t) {
                                 if (!ec) {
                                   ex->stream_header_written = true;
                                   self->streaming_ = true;
                                   if (!self->lingering_) self->read_deadline_ = never;
                                   if (ex->req.method() == http::verb::head) {
                                     // HEAD of a stream: its headers, then done.
                                     ex->stream->close();
                                     ex->stream_finished = true;
                                   }
                                 }
                                 self->on_stream_written(ec, ex);
                               });
      return;
    }
    if (!ex->stream_pending.empty()) {
      chunk_.clear();
      chunk_.swap(ex->stream_pending);
      writing_ = true;
      set_write_deadline(deadline_after(steady::now(), options_.write_timeout));
      asio::async_write(socket_, http::make_chunk(asio::buffer(chunk_)),
                        [self = shared_from_this(), ex](error_code ec, std::size_t) {
                          self->on_stream_written(ec, ex);
                        });
      return;
    }
    if (ex->stream_closing && !ex->stream_finished) {
      ex->stream_finished = true;
      writing_ = true;
      set_write_deadline(deadline_after(steady::now(), options_.write_timeout));
      asio::async_write(socket_, http::make_chunk_last(),
                        [self = shared_from_this(), ex](error_code ec, std::size_t) {
                          self->on_stream_written(ec, ex);
                        });
    }
  }

  void on_stream_written(error_code ec, const std::shared_ptr<exchange>& ex) {
    writing_ = false;
    write_deadline_ = never;
    if (closed_) return;
    if (ec) return close_socket();
    if (ex->stream_header_written && !reading_) maybe_read();  // watch for the client leaving
    if (ex->stream_finished) {
      record(*ex, stream_res_ ? stream_res_->result_int() : 200);
      return begin_linger();
    }
    do_write();
  }

  // ---- closing ----

  void on_shutdown() {
    if (closed_) return;
    stopping_ = true;
    read_closed_ = true;
    for (auto& ex : queue_) {
      if (ex->stream) ex->stream->close();
    }
    // Idle, or half-way through reading a request nobody answers yet: close
    // now. Otherwise the last response goes out with Connection: close.
    if (queue_.empty() && !writing_) close_socket();
  }

  // Stops sending, then drops input for linger_timeout (or until the client
  // closes) so that the client reads the last response rather than a reset.
  void begin_linger() {
    if (lingering_ || closed_) return;
    lingering_ = true;
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close_socket();
    set_read_deadline(deadline_after(steady::now(), options_.linger_timeout), timer_kind::linger);
    maybe_read();
  }

  void close_socket() {
    if (closed_) return;
    closed_ = true;
    ++timer_gen_;
    timer_armed_ = false;
    timer_.cancel();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    auto queue = std::move(queue_);
    queue_.clear();
    for (auto& ex : queue) {
      if (ex->stream) ex->stream->notify_closed();
    }
    server_->session_closed(this);
  }

  // ---- timeouts ----
  //
  // One timer per session serves the read deadline (idle, header, body or linger) and
  // the write deadline. Moving a deadline later costs nothing: the timer, when it
  // fires, finds nothing due and waits for the earliest deadline still set. Only a
  // deadline earlier than the timer's expiry re-arms it, so a keep-alive connection
  // answering requests in single reads and writes touches its timer about once per
  // idle_timeout.

  void set_read_deadline(steady::time_point at, timer_kind kind) {
    read_deadline_ = at;
    read_kind_ = kind;
    ensure_timer(at);
  }

  void set_write_deadline(steady::time_point at) {
    write_deadline_ = at;
    ensure_timer(at);
  }

  void ensure_timer(steady::time_point at) {
    if (closed_ || (timer_armed_ && timer_expiry_ <= at)) return;
    timer_armed_ = true;
    timer_expiry_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this(), gen = ++timer_gen_](error_code) {
      if (gen != self->timer_gen_) return;  // re-armed or closed since
      self->timer_armed_ = false;
      if (self->closed_) return;
      self->on_timer();
    });
  }

  void on_timer() {
    auto now = steady::now();
    if (write_deadline_ <= now) return close_socket();
    if (read_deadline_ <= now) {
      if (read_kind_ == timer_kind::idle && (!queue_.empty() || writing_)) {
        // Still answering earlier requests: the connection is not idle.
        read_deadline_ = deadline_after(now, options_.idle_timeout);
      } else {
        return close_socket();
      }
    }
    auto next = std::min(read_deadline_, write_deadline_);
    if (next != never) ensure_timer(next);
  }

  // ---- accounting ----

  void record(const exchange& ex, unsigned status) {
    auto elapsed = std::chrono::duration<double>(steady::now() - ex.started);
    std::string_view method(ex.req.method_string().data(), ex.req.method_string().size());
    if (method.empty()) method = "UNKNOWN";
    if (options_.metrics) options_.metrics->observe_request(ex.ctx.route, method, status, elapsed);
    if (options_.access_log) {
      log_json(*options_.access_log, spdlog::level::info, "request",
               {{"method", method},
                {"route", ex.ctx.route.empty() ? "unmatched" : ex.ctx.route},
                {"status", status},
                {"duration_ms", std::round(elapsed.count() * 1e6) / 1e3},
                {"request_id", ex.ctx.request_id.to_string()},
                {"client", client_tag(ex.ctx.client_ip)}});
    }
  }

  socket_type socket_;
  strand_type strand_ = socket_.get_executor();
  std::shared_ptr<server_core> server_;
  const http_server_options& options_;
  std::string peer_ip_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<std::shared_ptr<exchange>> queue_;
  std::string out_;           // responses being written
  std::size_t out_sent_ = 0;  // bytes of out_ the socket took
  std::size_t batch_ = 0;     // exchanges at the queue's front whose responses are in out_
  timer_type timer_;
  std::uint64_t timer_gen_ = 0;
  bool timer_armed_ = false;
  steady::time_point timer_expiry_{};
  steady::time_point read_deadline_ = never;
  timer_kind read_kind_ = timer_kind::idle;
  steady::time_point write_deadline_ = never;
  steady::time_point accepted_at_ = steady::now();
  steady::time_point header_deadline_{};  // the request being read's
  steady::time_point body_deadline_{};
  std::size_t requests_read_ = 0;
  std::size_t body_limit_ = 0;   // the request being read's
  bool header_handled_ = false;  // on_header ran for the request being read
  bool header_started_ = false;  // header_deadline_ is set for the request being read
  bool in_read_loop_ = false;
  bool read_again_ = false;
  bool in_handler_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool read_closed_ = false;  // no further requests will be read
  bool lingering_ = false;
  bool streaming_ = false;  // an event stream's header is out
  bool stopping_ = false;
  bool closed_ = false;
  std::array<char, 4096> scratch_{};
  std::string chunk_;
  std::unique_ptr<http::response<http::empty_body>> stream_res_;
  std::unique_ptr<http::response_serializer<http::empty_body>> stream_sr_;
};

void exchange::deliver(response res) {
  if (owner->on_own_strand()) {
    // Answered on the connection's own strand (a handler answering before it returns):
    // no hop through the io_context.
    owner->on_response(shared_from_this(), std::move(res));
    return;
  }
  owner->server().hand_over(shared_from_this(), std::move(res));
}

std::shared_ptr<event_stream> exchange::open_stream(response_header header) {
  auto stream = std::make_shared<session_stream>(weak_from_this());
  if (owner->on_own_strand()) {
    // Started from within the handler: reading ends before the read loop goes on, so no
    // request pipelined behind the stream is run (it could never be answered).
    owner->on_stream_started(shared_from_this(), stream, std::move(header));
    return stream;
  }
  owner->run([self = shared_from_this(), stream, header = std::move(header)]() mutable {
    self->owner->on_stream_started(self, std::move(stream), std::move(header));
  });
  return stream;
}

bool session_stream::send(std::string chunk) {
  if (closed_.load()) return false;
  auto ex = ex_.lock();
  if (!ex) return false;
  ex->owner->run([ex, chunk = std::move(chunk)]() mutable {
    ex->owner->on_stream_send(ex, std::move(chunk));
  });
  return true;
}

void session_stream::close() {
  if (closed_.exchange(true)) return;
  auto ex = ex_.lock();
  if (!ex) return;
  ex->owner->run([ex] { ex->owner->on_stream_close(ex); });
}

// ---- server_core ----

result<void, std::string> server_core::start() {
  error_code ec;
  auto address = asio::ip::make_address(options_.address, ec);
  if (ec) return fail("invalid listen address '" + options_.address + "': " + ec.message());
  tcp::endpoint endpoint(address, options_.port);
  std::string where = options_.address + ":" + std::to_string(options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor_.close(ec);
    return fail("cannot listen on " + where + ": " + ec.message());
  }
  port.store(acceptor_.local_endpoint(ec).port());
  asio::post(strand_, [self = shared_from_this()] { self->do_accept(); });
  return {};
}

void server_core::do_accept() {
  acceptor_.async_accept(asio::make_strand(ioc_),
                         [self = shared_from_this()](error_code ec, socket_type socket) {
                           self->on_accept(ec, std::move(socket));
                         });
}

void server_core::on_accept(error_code ec, socket_type socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Out of descriptors or a transient error: pause instead of spinning.
    retry_timer_.expires_after(std::chrono::milliseconds(50));
    retry_timer_.async_wait([self = shared_from_this()](error_code tec) {
      if (!tec) self->do_accept();
    });
    return;
  }
  bool refuse = false;
  std::shared_ptr<session> s;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || sessions_.size() >= options_.max_connections) {
      refuse = true;
    } else {
      s = std::make_shared<session>(std::move(socket), shared_from_this());
      sessions_.emplace(s.get(), s);
      open.store(sessions_.size());
    }
  }
  if (refuse) {
    static const std::string busy = [] {
      auto res = problem_response(make_problem("unavailable", "too many connections"));
      res.keep_alive(false);
      set_retry_after(res, std::chrono::seconds(1));
      std::string text;
      text.reserve(512);
      for (const auto& f : res.base()) {
        text.append(f.name_string().data(), f.name_string().size())
            .append(": ")
            .append(f.value().data(), f.value().size())
            .append("\r\n");
      }
      return "HTTP/1.1 503 Service Unavailable\r\n" + text + "\r\n" + res.body();
    }();
    error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(busy), ignored);
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    socket.close(ignored);
  } else {
    if (options_.metrics) options_.metrics->connection_opened();
    s->start();
  }
  do_accept();
}

std::vector<std::shared_ptr<session>> server_core::live_sessions() {
  std::vector<std::shared_ptr<session>> out;
  std::lock_guard lock(mu_);
  for (auto& [p, w] : sessions_) {
    if (auto s = w.lock()) out.push_back(std::move(s));
  }
  return out;
}

void server_core::hand_over(std::shared_ptr<exchange> ex, response res) {
  bool post = false;
  {
    std::lock_guard lock(handoff_mu_);
    handoffs_.push_back({std::move(ex), std::move(res)});
    post = !std::exchange(handoffs_posted_, true);
  }
  if (post) asio::post(ioc_, take_handoffs(shared_from_this()));
}

void server_core::run_handoffs() {
  std::vector<handoff> batch;
  {
    std::lock_guard lock(handoff_mu_);
    batch.swap(handoffs_);
    handoffs_posted_ = false;
  }
  for (auto& h : batch) {
    auto& owner = *h.ex->owner;
    owner.run_next([ex = std::move(h.ex), res = std::move(h.res)]() mutable {
      ex->owner->on_response(ex, std::move(res));
    });
  }
}

void server_core::drop_handoffs() {
  std::vector<handoff> dropped;
  {
    std::lock_guard lock(handoff_mu_);
    dropped.swap(handoffs_);
    handoffs_posted_ = false;
  }
  for (auto& h : dropped) h.ex->owner->abandon();
}

void server_core::session_closed(session* s) {
  std::vector<std::function<void()>> done;
  {
    std::lock_guard lock(mu_);
    if (sessions_.erase(s) == 0) return;
    open.store(sessions_.size());
    if (stopping_ && sessions_.empty()) done.swap(on_stopped_);
  }
  if (options_.metrics) options_.metrics->connection_closed();
  if (!done.empty()) {
    asio::post(strand_, [self = shared_from_this()] { self->stop_timer_.cancel(); });
    for (auto& fn : done) fn();
  }
}

void server_core::async_stop(std::chrono::milliseconds grace, std::function<void()> done) {
  asio::post(strand_, [self = shared_from_this(), grace, done = std::move(done)]() mutable {
    error_code ec;
    self->acceptor_.close(ec);
    self->retry_timer_.cancel();
    bool finished = false;
    {
      std::lock_guard lock(self->mu_);
      self->stopping_ = true;
      if (self->sessions_.empty()) {
        finished = true;
      } else if (done) {
        self->on_stopped_.push_back(std::move(done));
      }
    }
    if (finished) {
      if (done) done();
      return;
    }
    for (auto& s : self->live_sessions()) s->shutdown();
    self->stop_timer_.expires_after(grace);
    self->stop_timer_.async_wait([self](error_code tec) {
      if (tec) return;
      for (auto& s : self->live_sessions()) s->force_close();
    });
  });
}

void server_core::close_now() {
  asio::post(strand_, [self = shared_from_this()] {
    error_code ec;
    self->acceptor_.close(ec);
    self->retry_timer_.cancel();
    self->stop_timer_.cancel();
    {
      std::lock_guard lock(self->mu_);
      self->stopping_ = true;
    }
    for (auto& s : self->live_sessions()) s->force_close();
  });
}

}  // namespace

struct http_server::impl {
  std::shared_ptr<server_core> core;
};

http_server::http_server(boost::asio::io_context& ioc, http_server_options options, handler h)
    : impl_(std::make_shared<impl>(
          impl{std::make_shared<server_core>(ioc, std::move(options), std::move(h))})) {}

http_server::~http_server() { impl_->core->close_now(); }

result<void, std::string> http_server::start() { return impl_->core->start(); }

std::uint16_t http_server::port() const { return impl_->core->port.load(); }

std::size_t http_server::open_connections() const { return impl_->core->open.load(); }

void http_server::async_stop(std::chrono::milliseconds grace, std::function<void()> done) {
  impl_->core->async_stop(grace, std::move(done));
}

result<void, std::string> http_server::stop(std::chrono::milliseconds grace) {
  if (impl_->core->ioc().get_executor().running_in_this_thread()) {
    return fail(std::string("http_server::stop() called on an I/O thread; use async_stop()"));
  }
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  async_stop(grace, [done] { done->set_value(); });
  // Closing at the deadline is asynchronous too; allow it a moment.
  if (finished.wait_for(grace + std::chrono::seconds(5)) != std::future_status::ready) {
    return fail(
        std::string("http_server::stop(): connections still open (is the io_context running?)"));
  }
  return {};
}

}  // namespace passage::api
