// Load generator for a whole Passage node over loopback: durable claims by
// distinct learners (POST /v1/public/invites/{code}/claims) and invite reads
// (GET /v1/invites/{id}). The node runs in this process on 2 I/O threads with a
// real RocksDB log (fsync on) in a temp folder; the clients share the machine.
// Prints requests/s, latency percentiles and CPU per request (the client's thread, the
// background consumers' threads, nice > 0, and the node's HTTP I/O threads shown apart), and
// for claims the log's fsyncs as the node timed them (passage_log_fsync_duration_seconds:
// how many, claims per fsync, their latency: the floor under a durable claim's); asserts
// nothing. After the claims run it prints how far the mailer (welcome mail per new learner, .eml
// outbox) kept up: mails sent during the run, and the backlog (claims not yet mailed) at its end
// and 1 s later.
//
// With --drain N it then waits up to N s for the mailer to send the whole backlog on an
// otherwise idle node and prints its rate and CPU per mail.
//
//   api_bench [--seconds 5] [--connections 64] [--mode claims|reads|both] [--threads 2]
//             [--drain 0] [--outbox DIR]
//
// --outbox DIR puts the node's .eml outbox into a new folder under DIR (linked as
// <data>/outbox), e.g. on a tmpfs, to tell the files' cost apart from the rest of the node.
//
// The node's folder is under $TMPDIR (default /tmp). On an ext4 without a journal (the dev
// box's disk) creating a file costs a check of every inode freed in its block group in the
// last 1 to 6 minutes (the allocator skips recently deleted inodes one by one, 60 s after
// their deletion, 360 s while their inode table block is not yet written back): after a run's
// folder (tens of thousands of .eml files) was deleted, each outbox file of the next runs cost
// up to ~0.6 ms of CPU instead of ~20 us, even in a new top-level folder, and the mailer's
// figures measured that. For comparisons put the outbox on a tmpfs (--outbox /dev/shm/...),
// run each in a new top-level TMPDIR, and delete the folders only after the last run.

#include <utility>  // first: Boost 1.74's awaitable.hpp needs it under g++ 12

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "app/server.h"
#include "bench/bench_args.h"
#include "bench/prometheus_text.h"
#include "common/random.h"
#include "tests/support/http_client.h"

using steady = std::chrono::steady_clock;

namespace {

// CPU seconds each thread of this process has used so far (/proc/self/task/*/stat), by
// thread id, whether it runs at a lowered priority (nice > 0: background consumers) and
// whether it is one of the node's HTTP I/O threads (by id: a thread one of them started
// would carry their name, "passage-io", too).
struct thread_cpu {
  double seconds = 0;
  bool background = false;
  bool io = false;
};
std::vector<int> io_thread_ids;  // the node's, once it started
std::map<int, thread_cpu> threads_cpu() {
  std::map<int, thread_cpu> out;
  const double tick = double(::sysconf(_SC_CLK_TCK));
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(t.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    auto close = line.rfind(')');  // the name may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(rest), {}};
    // After the name: state is field 3, utime 14, stime 15, nice 19 (man 5 proc).
    if (f.size() < 17) continue;
    const int tid = std::atoi(t.path().filename().c_str());
    const bool io =
        std::find(io_thread_ids.begin(), io_thread_ids.end(), tid) != io_thread_ids.end();
    out[tid] = {double(std::stoull(f[11]) + std::stoull(f[12])) / tick,
                std::atoi(f[16].c_str()) > 0, io};
  }
  return out;
}

struct run_result {
  std::size_t ok = 0, failed = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  double cpu_seconds = 0;             // the whole process: node and client
  double client_cpu_seconds = 0;      // the client's thread alone
  double background_cpu_seconds = 0;  // threads at a lowered priority (mailer, relay)
  double io_cpu_seconds = 0;          // the node's HTTP I/O threads
};

double cpu_now(int who = RUSAGE_SELF) {
  rusage u{};
  getrusage(who, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(k), v.end());
  return v[k];
}

// The load generator: one thread, epoll, `connections` keep-alive sockets, each sending
// its next request as soon as the previous response is complete (no pipelining, like wrk's
// default). Requests are prebuilt text and responses are only framed (status line and
// Content-Length), so the client costs a few microseconds per request and leaves the CPU
// to the node it measures.
struct connection {
  int fd = -1;
  std::size_t n = 0;  // requests sent on this connection
  std::string out;    // the request being sent
  std::size_t sent = 0;
  std::string in;  // bytes of the response being read
  steady::time_point t0;
};

// The length of the first complete response in `in` and its status, or 0 when incomplete.
std::size_t framed_response(const std::string& in, unsigned& status) {
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos || in.size() < 12) return 0;
  status = unsigned(std::atoi(in.c_str() + 9));
  std::size_t body = 0;
  for (std::size_t at = in.find("\r\n"); at < head_end; at = in.find("\r\n", at + 2)) {
    static constexpr std::string_view name = "content-length:";
    if (head_end - at - 2 < name.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < name.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(in[at + 2 + i])) == name[i];
    }
    if (match) body = std::strtoull(in.c_str() + at + 2 + name.size(), nullptr, 10);
  }
  std::size_t total = head_end + 4 + body;
  return in.size() >= total ? total : 0;
}

run_result load(unsigned short port, int connections, double seconds,
                std::function<std::string(int, std::size_t)> make, unsigned expect) {
  run_result all;
  int ep = epoll_create1(0);
  std::vector<connection> conns(static_cast<std::size_t>(connections));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto begin = [&](connection& c, int id) {
    c.out = make(id, c.n++);
    c.sent = 0;
    c.t0 = steady::now();
    ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (w > 0) c.sent = std::size_t(w);
  };
  for (int i = 0; i < connections; ++i) {
    auto& c = conns[std::size_t(i)];
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::perror("connect");
      std::exit(1);
    }
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = std::uint32_t(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                      std::chrono::duration<double>(seconds));
  auto t0 = steady::now();
  double cpu0 = cpu_now();
  double client_cpu0 = cpu_now(RUSAGE_THREAD);
  auto threads0 = threads_cpu();
  for (int i = 0; i < connections; ++i) begin(conns[std::size_t(i)], i);
  int open = connections;
  std::vector<epoll_event> events(static_cast<std::size_t>(connections));
  char buf[65536];
  while (open > 0) {
    int ready = epoll_wait(ep, events.data(), connections, 1000);
    auto now = steady::now();
    for (int k = 0; k < ready; ++k) {
      int id = int(events[std::size_t(k)].data.u32);
      auto& c = conns[std::size_t(id)];
      if (c.sent < c.out.size()) {  // the rest of a large request
        ssize_t w = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (w > 0) c.sent += std::size_t(w);
      }
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        std::fprintf(stderr, "connection %d closed by the server\n", id);
        std::exit(1);
      }
      c.in.append(buf, std::size_t(r));
      unsigned status = 0;
      std::size_t used = framed_response(c.in, status);
      if (used == 0) continue;
      c.in.erase(0, used);
      all.latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - c.t0).count());
      (status == expect ? all.ok : all.failed)++;
      if (now < deadline) {
        begin(c, id);
      } else {
        ::close(c.fd);
        --open;
      }
    }
  }
  all.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  all.cpu_seconds = cpu_now() - cpu0;
  all.client_cpu_seconds = cpu_now(RUSAGE_THREAD) - client_cpu0;
  for (const auto& [tid, t] : threads_cpu()) {
    if (t.background) all.background_cpu_seconds += t.seconds - threads0[tid].seconds;
    if (t.io) all.io_cpu_seconds += t.seconds - threads0[tid].seconds;
  }
  ::close(ep);
  return all;
}

void report(const char* what, int connections, run_result r) {
  double rate = double(r.ok) / r.seconds;
  double n = double(std::max<std::size_t>(1, r.ok + r.failed));
  std::printf(
      "%-34s %4d conns %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  ok %zu  failed %zu  cpu %.1f "
      "us/req (client %.1f, background %.1f, io %.1f)\n",
      what, connections, rate, pct(r.latencies_ms, 0.5), pct(r.latencies_ms, 0.99), r.ok, r.failed,
      r.cpu_seconds * 1e6 / n, r.client_cpu_seconds * 1e6 / n, r.background_cpu_seconds * 1e6 / n,
      r.io_cpu_seconds * 1e6 / n);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  int connections = 64;
  std::string mode = "both";
  unsigned threads = 2;      // the node's I/O threads (server_options::threads)
  double drain = 0;          // seconds to wait for the mailer's backlog after the claims
  std::string outbox_under;  // --outbox: the outbox's folder goes under this one
  passage::bench::bench_args args(
      "api_bench", "Durable claims and invite reads against a whole node over loopback.");
  args.value("--seconds", seconds, "length of each run (default 5)");
  args.value("--connections", connections, "client connections (default 64)");
  args.value("--mode", mode, "claims, reads or both (default both)");
  args.value("--threads", threads, "the node's HTTP I/O threads (default 2)");
  args.value("--drain", drain, "then wait up to V s for the mailer's backlog (default 0)");
  args.value("--outbox", outbox_under, "put the .eml outbox under this folder (e.g. a tmpfs)");
  if (int code = args.parse_or_exit_code(argc, argv); code >= 0) return code;
  if (mode != "claims" && mode != "reads" && mode != "both") {
    std::fprintf(stderr, "api_bench: --mode is claims, reads or both, not '%s'\n", mode.c_str());
    return 2;
  }
  if (seconds <= 0 || connections < 1 || threads < 1) {
    std::fprintf(stderr, "api_bench: --seconds, --connections and --threads must be positive\n");
    return 2;
  }
  auto dir = std::filesystem::temp_directory_path() /
             ("passage-api-bench-" + passage::secure_random_hex(6));
  const std::string owner = "psk_bench_owner_key_0123456789";
  std::filesystem::path outbox;
  if (!outbox_under.empty()) {
    outbox = std::filesystem::path(outbox_under) / dir.filename();
    std::filesystem::create_directories(outbox);
    std::filesystem::create_directories(dir);
    std::filesystem::create_directory_symlink(outbox, dir / "outbox");
  }
  passage::app::server_options o;
  o.data_dir = dir.string();
  o.port = 0;
  o.threads = threads;
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
  io_thread_ids = (*node)->io_thread_ids();
  passage::testing::http_client admin(port);
  passage::testing::http_client::headers auth = {{"Authorization", "Bearer " + owner}};
  admin.post("/v1/tracks", R"({"track_id":"k8s-basics","title":"Kubernetes"})", auth);
  auto invite =
      admin.post("/v1/invites", R"({"title":"Bench","tracks":["k8s-basics"]})", auth).json();
  std::string code = invite["code"], id = invite["id"];
  std::printf(
      "api benchmark: node on 127.0.0.1:%u, fsync on, %.0f s per run, %u server I/O threads\n\n",
      port, seconds, threads);

  if (mode == "claims" || mode == "both") {
    // The node times each fsync of its log: the disk's share of a claim's latency.
    auto fsyncs = [&] {
      return passage::bench::histogram_in(admin.get("/metrics", auth).body,
                                          "passage_log_fsync_duration_seconds");
    };
    const auto fsyncs_before = fsyncs();
    auto r = load(
        port, connections, seconds,
        [&](int c, std::size_t n) {
          std::string body =
              "{\"email\":\"u" + std::to_string(c) + "-" + std::to_string(n) + "@example.com\"}";
          return "POST /v1/public/invites/" + code +
                 "/claims HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
        },
        201);
    std::size_t claims_ok = r.ok;
    double run_seconds = r.seconds;
    const auto synced = fsyncs().since(fsyncs_before);
    report("durable claims (distinct learners)", connections, std::move(r));
    std::printf(
        "%-34s %10.0f fsyncs/s  %.1f claims each  mean %.2f ms  p50 <= %.1f ms  p99 <= %.1f ms "
        "(bucket bounds)\n",
        "log fsyncs during the claims", synced.count / run_seconds,
        synced.count > 0 ? double(claims_ok) / synced.count : 0.0, synced.mean() * 1e3,
        synced.quantile_bound(0.5) * 1e3, synced.quantile_bound(0.99) * 1e3);
    // Every claim here registers a new learner, whose welcome mail the mailer sends.
    auto mails = [&] {
      return admin.get("/v1/system", auth).json()["mail"]["sent"].get<std::uint64_t>();
    };
    auto sent = mails();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto sent_later = mails();
    std::printf(
        "%-34s %10.0f mails/s during the run  sent %llu of %zu  backlog %lld at the end, %lld "
        "1 s later\n",
        "mailer (welcome mails)", double(sent) / run_seconds, (unsigned long long)sent, claims_ok,
        (long long)claims_ok - (long long)sent, (long long)claims_ok - (long long)sent_later);
    if (drain > 0) {
      // The node is idle now but for the mailer: its rate and the CPU of the background
      // threads (nice > 0) per mail, until the backlog is gone or the time is up.
      auto background_cpu = [] {
        double s = 0;
        for (const auto& [tid, t] : threads_cpu()) s += t.background ? t.seconds : 0;
        return s;
      };
      const auto from_sent = mails();
      const double from_cpu = background_cpu();
      const auto start = steady::now();
      auto now_sent = from_sent;
      while (now_sent < claims_ok &&
             std::chrono::duration<double>(steady::now() - start).count() < drain) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        now_sent = mails();
      }
      const double took = std::chrono::duration<double>(steady::now() - start).count();
      const double mailed = double(now_sent - from_sent);
      std::printf(
          "%-34s %10.0f mails/s idle  sent %.0f in %.1f s  backlog %lld  cpu %.1f us/mail\n",
          "mailer drain", mailed / took, mailed, took, (long long)claims_ok - (long long)now_sent,
          mailed > 0 ? (background_cpu() - from_cpu) * 1e6 / mailed : 0.0);
    }
  }
  if (mode == "reads" || mode == "both") {
    auto r = load(
        port, connections, seconds,
        [get = "GET /v1/invites/" + id + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
               owner + "\r\n\r\n"](int, std::size_t) { return get; },
        200);
    report("GET /v1/invites/{id}", connections, std::move(r));
  }
  (*node)->stop();
  node->reset();
  std::filesystem::remove_all(dir);
  if (!outbox.empty()) std::filesystem::remove_all(outbox);
}
