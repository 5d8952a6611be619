// Load generator for a whole Passage node over loopback: durable claims by
// distinct learners (POST /v1/public/invites/{code}/claims) and invite reads
// (GET /v1/invites/{id}). The node runs in this process on 2 I/O threads with a
// real RocksDB log (fsync on) in a temp folder; the clients share the machine.
// Prints requests/s and latency percentiles; asserts nothing.
//
//   api_bench [--seconds 5] [--connections 64] [--mode claims|reads|both]

#include <utility>  // first: Boost 1.74's awaitable.hpp needs it under g++ 12

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "app/server.h"
#include "common/random.h"
#include "tests/support/http_client.h"

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

struct run_result {
  std::size_t ok = 0, failed = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  double cpu_seconds = 0;
};

double cpu_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(k), v.end());
  return v[k];
}

// One keep-alive connection sending requests back to back until the deadline.
asio::awaitable<void> client(unsigned short port, int id, steady::time_point deadline,
                             std::function<http::request<http::string_body>(int, std::size_t)> make,
                             unsigned expect, run_result& out) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket socket(ex);
  co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
  boost::beast::flat_buffer buffer;
  for (std::size_t n = 0; steady::now() < deadline; ++n) {
    auto req = make(id, n);
    auto t0 = steady::now();
    co_await http::async_write(socket, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(socket, buffer, res, asio::use_awaitable);
    out.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(steady::now() - t0).count());
    (res.result_int() == expect ? out.ok : out.failed)++;
  }
}

run_result load(unsigned short port, int connections, double seconds,
                std::function<http::request<http::string_body>(int, std::size_t)> make,
                unsigned expect) {
  asio::io_context ioc;
  std::vector<run_result> parts(static_cast<std::size_t>(connections));
  auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                      std::chrono::duration<double>(seconds));
  auto t0 = steady::now();
  double cpu0 = cpu_now();
  for (int c = 0; c < connections; ++c) {
    asio::co_spawn(ioc, client(port, c, deadline, make, expect, parts[std::size_t(c)]),
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
  }
  ioc.run();
  run_result all;
  all.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  all.cpu_seconds = cpu_now() - cpu0;
  for (auto& p : parts) {
    all.ok += p.ok;
    all.failed += p.failed;
    all.latencies_ms.insert(all.latencies_ms.end(), p.latencies_ms.begin(), p.latencies_ms.end());
  }
  return all;
}

void report(const char* what, int connections, run_result r) {
  double rate = double(r.ok) / r.seconds;
  std::printf(
      "%-34s %4d conns %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  ok %zu  failed %zu  cpu %.0f "
      "us/req\n",
      what, connections, rate, pct(r.latencies_ms, 0.5), pct(r.latencies_ms, 0.99), r.ok, r.failed,
      r.cpu_seconds * 1e6 / double(std::max<std::size_t>(1, r.ok + r.failed)));
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  int connections = 64;
  std::string mode = "both";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--connections")) connections = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--mode")) mode = argv[i + 1];
  }
  auto dir = std::filesystem::temp_directory_path() /
             ("passage-api-bench-" + passage::secure_random_hex(6));
  const std::string owner = "psk_bench_owner_key_0123456789";
  passage::app::server_options o;
  o.data_dir = dir.string();
  o.port = 0;
  o.owner_token = owner;
  o.claim_limit_per_ip = "0";
  o.claim_limit_per_email = "0";
  o.say = [](const std::string&) {};
  o.access_log = false;
  o.kafka_brokers = "none";
  auto node = passage::app::server::start(o);
  if (!node) {
    std::fprintf(stderr, "%s\n", node.error().c_str());
    return 1;
  }
  unsigned short port = (*node)->port();
  passage::testing::http_client admin(port);
  passage::testing::http_client::headers auth = {{"Authorization", "Bearer " + owner}};
  admin.post("/v1/tracks", R"({"track_id":"k8s-basics","title":"Kubernetes"})", auth);
  auto invite =
      admin.post("/v1/invites", R"({"title":"Bench","tracks":["k8s-basics"]})", auth).json();
  std::string code = invite["code"], id = invite["id"];
  std::printf(
      "api benchmark: node on 127.0.0.1:%u, fsync on, %.0f s per run, 2 server I/O threads\n\n",
      port, seconds);

  if (mode == "claims" || mode == "both") {
    auto r = load(
        port, connections, seconds,
        [&](int c, std::size_t n) {
          http::request<http::string_body> req{http::verb::post,
                                               "/v1/public/invites/" + code + "/claims", 11};
          req.set(http::field::host, "127.0.0.1");
          req.set(http::field::content_type, "application/json");
          req.body() =
              "{\"email\":\"u" + std::to_string(c) + "-" + std::to_string(n) + "@example.com\"}";
          req.prepare_payload();
          return req;
        },
        201);
    report("durable claims (distinct learners)", connections, std::move(r));
  }
  if (mode == "reads" || mode == "both") {
    auto r = load(
        port, connections, seconds,
        [&](int, std::size_t) {
          http::request<http::string_body> req{http::verb::get, "/v1/invites/" + id, 11};
          req.set(http::field::host, "127.0.0.1");
          req.set(http::field::authorization, "Bearer " + owner);
          return req;
        },
        200);
    report("GET /v1/invites/{id}", connections, std::move(r));
  }
  (*node)->stop();
  node->reset();
  std::filesystem::remove_all(dir);
}
