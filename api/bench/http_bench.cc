// Load generator for the HTTP layer alone: an in-process server on 127.0.0.1
// (ephemeral port) with a trivial route, and client threads that send
// pipelined batches over keep-alive connections. Prints throughput and batch
// latency percentiles; asserts nothing. Bounded: it sends --requests in total.
//
//   http_bench [requests=200000] [connections=8] [pipeline=8] [io_threads=2]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "api/http_server.h"
#include "api/problem.h"
#include "api/router.h"

namespace asio = boost::asio;
using namespace passage::api;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
  auto arg = [&](int i, long fallback) { return argc > i ? std::atol(argv[i]) : fallback; };
  const long total = arg(1, 200000), connections = arg(2, 8), pipeline = arg(3, 8),
             io_threads = arg(4, 2);

  router r;
  r.add(http::verb::get, "/v1/items/{id}", [](const request&, request_context& ctx, responder rs) {
    rs(json_response(http::status::ok, {{"id", ctx.params.get_or("id", "")}}));
  });
  auto m = std::make_shared<metrics>();
  asio::io_context ioc;
  auto work = asio::make_work_guard(ioc);
  http_server server(ioc, {.port = 0, .metrics = m}, r.as_handler());
  if (auto ok = server.start(); !ok) {
    std::fprintf(stderr, "%s\n", ok.error().c_str());
    return 1;
  }
  std::vector<std::thread> io;
  for (long i = 0; i < io_threads; ++i) io.emplace_back([&] { ioc.run(); });

  const long per_connection = total / connections / pipeline;
  std::atomic<long> errors{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(connections));
  std::string batch;
  for (long i = 0; i < pipeline; ++i) batch += "GET /v1/items/42 HTTP/1.1\r\nHost: bench\r\n\r\n";

  auto start = clock_type::now();
  std::vector<std::thread> clients;
  for (long c = 0; c < connections; ++c) {
    clients.emplace_back([&, c] {
      asio::io_context cio;
      tcp::socket s(cio);
      boost::system::error_code ec;
      s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()), ec);
      if (ec) {
        ++errors;
        return;
      }
      boost::beast::flat_buffer buf;
      auto& lat = latencies[static_cast<std::size_t>(c)];
      lat.reserve(static_cast<std::size_t>(per_connection));
      for (long b = 0; b < per_connection; ++b) {
        auto t0 = clock_type::now();
        asio::write(s, asio::buffer(batch), ec);
        for (long i = 0; i < pipeline && !ec; ++i) {
          response res;
          http::read(s, buf, res, ec);
          if (!ec && res.result() != http::status::ok) ++errors;
        }
        if (ec) {
          ++errors;
          return;
        }
        lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      }
    });
  }
  for (auto& t : clients) t.join();
  double secs = std::chrono::duration<double>(clock_type::now() - start).count();

  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0
                       : all[std::min(all.size() - 1, static_cast<std::size_t>(p * all.size()))];
  };
  long done = static_cast<long>(all.size()) * pipeline;
  std::printf("requests %ld  connections %ld  pipeline %ld  io_threads %ld  errors %ld\n", done,
              connections, pipeline, io_threads, errors.load());
  std::printf("throughput %.0f req/s  batch latency us p50 %.0f p99 %.0f max %.0f\n", done / secs,
              pct(0.5), pct(0.99), all.empty() ? 0.0 : all.back());

  (void)server.stop(std::chrono::seconds(5));
  work.reset();
  ioc.stop();
  for (auto& t : io) t.join();
  return errors.load() == 0 ? 0 : 1;
}
