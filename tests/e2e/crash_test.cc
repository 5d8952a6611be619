// SIGKILL under load: `passage serve` runs as a child process while clients
// claim; it is killed at a random moment, restarted on the same data folder,
// and every claim that was acknowledged (201) must be in the acceptance list.

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "app/offline.h"
#include "common/time_format.h"
#include "projections/json_views.h"
#include "projections/read_models.h"
#include "tests/support/free_port.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"

namespace passage::testing {
namespace {

using nlohmann::json;

const std::string kOwner = "psk_crash_test_owner_0123456789";

// A track "t" and an invite to it, made through `c` as the owner: `fields` are the invite's
// JSON members beside its tracks (R"("title":"Crash")"). Sets the invite's id and code.
void make_invite(http_client& c, const std::string& fields, std::string& id, std::string& code) {
  const http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  ASSERT_EQ(c.post("/v1/tracks", R"({"track_id":"t","title":"T"})", auth).status, 201u);
  auto inv = c.post("/v1/invites", R"({"tracks":["t"],)" + fields + "}", auth);
  ASSERT_EQ(inv.status, 201u) << inv.body;
  id = inv.json()["id"];
  code = inv.json()["code"];
}

// A `passage serve` child; its port is read from its start-up line.
class child_node {
 public:
  explicit child_node(const std::string& data_dir, std::vector<std::string> extra_flags = {}) {
    int err[2];
    if (pipe(err) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(err[1], STDERR_FILENO);
      int devnull = ::open("/dev/null", O_WRONLY);
      dup2(devnull, STDOUT_FILENO);
      close(err[0]);
      close(err[1]);
      setenv("PASSAGE_OWNER_TOKEN", kOwner.c_str(), 1);
      // Started as from a shell with a low soft limit of open files (the node raises it).
      rlimit files{};
      if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_max > kLowOpenFiles) {
        files.rlim_cur = kLowOpenFiles;
        setrlimit(RLIMIT_NOFILE, &files);
      }
      std::vector<std::string> args = {PASSAGE_BINARY,
                                       "serve",
                                       "--data-dir",
                                       data_dir,
                                       "--listen",
                                       "127.0.0.1:0",
                                       "--claim-limit-per-ip",
                                       "0",
                                       "--claim-limit-per-email",
                                       "0"};
      args.insert(args.end(), extra_flags.begin(), extra_flags.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(PASSAGE_BINARY, argv.data());
      _exit(127);
    }
    close(err[1]);
    err_ = fdopen(err[0], "r");
    char line[4096];
    while (std::fgets(line, sizeof line, err_)) {
      std::string s(line);
      start_lines_ += s;
      auto at = s.find("listening on http://127.0.0.1:");
      if (at != std::string::npos) {
        port_ = static_cast<unsigned short>(std::stoi(s.substr(at + 30)));
        break;
      }
    }
    // Keep draining the child's stderr so it never blocks on a full pipe (kept: later_lines).
    drain_ = std::thread([this, f = err_] {
      char buf[4096];
      while (std::fgets(buf, sizeof buf, f)) {
        std::lock_guard lk(later_mu_);
        later_lines_ += buf;
      }
    });
  }
  ~child_node() {
    kill_now();
    if (drain_.joinable()) drain_.join();
    if (err_) std::fclose(err_);
  }
  // SIGTERM, then the exit status (0 for a graceful stop).
  int terminate() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill_now() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }
  // What the node wrote to stderr up to its "listening on" line.
  const std::string& start_lines() const { return start_lines_; }
  // What it wrote to stderr since.
  std::string later_lines() const {
    std::lock_guard lk(later_mu_);
    return later_lines_;
  }
  static constexpr rlim_t kLowOpenFiles = 256;

 private:
  pid_t pid_ = -1;
  FILE* err_ = nullptr;
  unsigned short port_ = 0;
  std::string start_lines_;
  mutable std::mutex later_mu_;
  std::string later_lines_;
  std::thread drain_;
};

// The node asks for the hard limit of open files: RocksDB's table files in three folders,
// a socket per connection and a rebuild's merge (every run file per key range) outgrow
// the usual soft limit.
TEST(Crash, ServeRaisesItsSoftOpenFileLimitToTheHardOne) {
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_max <= child_node::kLowOpenFiles) GTEST_SKIP() << "hard limit too low here";
  temp_dir dir;
  child_node node(dir.sub("data"));
  ASSERT_NE(node.port(), 0) << "passage serve did not start";
  std::ifstream limits("/proc/" + std::to_string(node.pid()) + "/limits");
  std::string line;
  std::string soft, hard;
  while (std::getline(limits, line)) {
    if (!line.starts_with("Max open files")) continue;
    std::istringstream in(line.substr(std::string("Max open files").size()));
    in >> soft >> hard;
  }
  ASSERT_FALSE(soft.empty());
  EXPECT_EQ(soft, hard);
  EXPECT_NE(soft, std::to_string(child_node::kLowOpenFiles));
}

// Waits until /readyz answers 200; false after a generous deadline (it only bounds a hang:
// a node that never gets ready must not be mistaken for one that lost claims).
bool wait_ready(http_client& c) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (c.get("/readyz").status != 200) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST(Crash, EveryAcknowledgedClaimSurvivesSigkillUnderLoad) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  std::string invite_id, code;
  std::set<std::string> acknowledged;
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3; ++round) {
    child_node node(data);
    ASSERT_NE(node.port(), 0) << "passage serve did not start";
    http_client admin(node.port());
    http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
    // Wait until the restarted node's read models caught up with its log.
    ASSERT_TRUE(wait_ready(admin)) << "round " << round;
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(make_invite(admin, R"("title":"Crash")", invite_id, code));
    } else {
      // Everything acknowledged before the last kill is there.
      auto list = admin.get("/v1/invites/" + invite_id + "/claims", auth);
      ASSERT_EQ(list.status, 200u) << list.body;
      std::set<std::string> present;
      auto body = list.json();  // keep it alive: a range-for over a temporary's member dangles
      for (const auto& c : body["claims"]) present.insert(c["claim_id"].get<std::string>());
      for (const auto& id : acknowledged) {
        if (present.count(id)) continue;
        auto sys = admin.get("/v1/system").body;
        auto events = admin.get("/v1/events?limit=10000&type=InviteClaimed", auth).body;
        FAIL() << "acknowledged claim " << id << " lost in round " << round
               << "; in the log: " << (events.find(id) != std::string::npos) << "; system: " << sys
               << "; listed " << present.size() << " " << list.body.substr(0, 300);
      }
      auto invite = admin.get("/v1/invites/" + invite_id, auth).json();
      EXPECT_EQ(invite["claims_count"].get<std::size_t>(), present.size());
    }
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&, t] {
        http_client c(node.port());
        for (int n = 0; !stop; ++n) {
          try {
            auto r = c.post("/v1/public/invites/" + code + "/claims",
                            json{{"email", "r" + std::to_string(round) + "t" + std::to_string(t) +
                                               "n" + std::to_string(n) + "@example.com"}}
                                .dump());
            if (r.status == 201) {
              std::lock_guard lk(mu);
              acknowledged.insert(r.json()["claim_id"].get<std::string>());
            }
          } catch (const std::exception&) {
            return;  // the node was killed mid-request: not acknowledged
          }
        }
      });
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 900)(rng)));
    node.kill_now();
    stop = true;
    for (auto& c : clients) c.join();
  }
  EXPECT_GT(acknowledged.size(), 10u);
  // A last start checks the final round's acknowledgements.
  child_node node(data);
  ASSERT_NE(node.port(), 0) << "passage serve did not start";
  http_client admin(node.port());
  ASSERT_TRUE(wait_ready(admin)) << "the last start";
  auto list =
      admin.get("/v1/invites/" + invite_id + "/claims", {{"Authorization", "Bearer " + kOwner}});
  std::set<std::string> present;
  auto body = list.json();
  for (const auto& c : body["claims"]) present.insert(c["claim_id"].get<std::string>());
  for (const auto& id : acknowledged) EXPECT_TRUE(present.count(id)) << id;
  std::printf("[ crash    ] 3 SIGKILLs under load, %zu acknowledged claims all present\n",
              acknowledged.size());
}

// The read models keep no write-ahead log, so a SIGKILL takes their tail since the last
// flush (here: everything; a short run never fills a memtable) while the log keeps it.
// Serving starts once they are back at the log's head, and says it catches up: a learner
// claiming again at once, without waiting for /readyz, gets the claim they have, never a
// second one (the command finds them in the read models by email).
TEST(Crash, AReturningLearnerRightAfterASigkillGetsTheirClaimNotASecondOne) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  auto claim = [](http_client& c, const std::string& code, const std::string& email) {
    return c.post("/v1/public/invites/" + code + "/claims", json{{"email", email}}.dump());
  };
  std::string invite_id, code;
  std::map<std::string, std::string> claim_of;  // email -> claim id
  {
    child_node node(data);
    ASSERT_NE(node.port(), 0) << "passage serve did not start";
    http_client admin(node.port());
    ASSERT_NO_FATAL_FAILURE(make_invite(admin, R"("title":"Again")", invite_id, code));
    // Many claims before the returning learners' (the last two): a restart has the
    // whole log to apply again before it finds them.
    std::mutex mu;
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&, t] {
        http_client c(node.port());
        for (int n = 0; n < 300; ++n) {
          const auto email = "t" + std::to_string(t) + "n" + std::to_string(n) + "@example.com";
          auto r = claim(c, code, email);
          if (r.status != 201u) continue;  // counted below
          std::lock_guard lk(mu);
          claim_of[email] = r.json()["claim_id"].get<std::string>();
        }
      });
    }
    for (auto& t : clients) t.join();
    ASSERT_EQ(claim_of.size(), 1200u);
    for (int n = 1; n <= 2; ++n) {
      const auto email = "again" + std::to_string(n) + "@example.com";
      auto r = claim(admin, code, email);
      ASSERT_EQ(r.status, 201u) << r.body;
      claim_of[email] = r.json()["claim_id"].get<std::string>();
    }
    node.kill_now();
  }
  // No Kafka: its broker's start would give the read models time to catch up anyway.
  child_node node(data, {"--kafka-brokers", "none"});
  ASSERT_NE(node.port(), 0) << "passage serve did not start";
  EXPECT_NE(node.start_lines().find("passage: read models catching up from position "),
            std::string::npos)
      << node.start_lines();
  http_client c(node.port());
  for (const auto& email : {"again2@example.com", "again1@example.com"}) {
    auto r = claim(c, code, email);
    EXPECT_EQ(r.status, 200u) << email << ": " << r.body;
    if (r.status / 100 == 2) {
      EXPECT_EQ(r.json()["claim_id"].get<std::string>(), claim_of[email]);
    }
  }
  auto list = c.get("/v1/invites/" + invite_id + "/claims", auth);
  ASSERT_EQ(list.status, 200u) << list.body;
  EXPECT_EQ(list.json()["claims"].size(), claim_of.size());
  EXPECT_EQ(c.get("/v1/invites/" + invite_id, auth).json()["claims_count"].get<std::size_t>(),
            claim_of.size());

  // A graceful stop flushes them (their close): the next start has nothing to catch up.
  ASSERT_EQ(node.terminate(), 0);
  child_node again(data, {"--kafka-brokers", "none"});
  ASSERT_NE(again.port(), 0) << "passage serve did not start";
  EXPECT_EQ(again.start_lines().find("catching up"), std::string::npos) << again.start_lines();
}

// The node's own logs are JSON lines on stderr, as its access log is: here the mailer's
// warning that a welcome mail's first attempt failed (an SMTP port nobody listens on).
TEST(Logs, TheMailersWarningsAreJsonLinesOnStderr) {
  const std::string smtp = "smtp://127.0.0.1:" + std::to_string(free_loopback_port());

  temp_dir dir;
  child_node node(dir.sub("data"), {"--kafka-brokers", "none", "--smtp-url", smtp});
  ASSERT_NE(node.port(), 0) << "passage serve did not start";
  http_client c(node.port());
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  std::string invite_id, code;
  ASSERT_NO_FATAL_FAILURE(make_invite(c, R"("title":"Logs")", invite_id, code));
  auto claimed =
      c.post("/v1/public/invites/" + code + "/claims", json{{"email", "ada@example.com"}}.dump());
  ASSERT_EQ(claimed.status, 201u) << claimed.body;

  std::optional<json> warning;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!warning && std::chrono::steady_clock::now() < deadline) {
    std::istringstream lines(node.later_lines());
    for (std::string line; std::getline(lines, line);) {
      if (line.find("mailer: attempt 1") == std::string::npos) continue;
      auto j = json::parse(line, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << "not a JSON line: " << line;
      warning = j;
    }
    if (!warning) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(warning) << "no mailer warning on stderr:\n" << node.later_lines();
  EXPECT_EQ((*warning)["level"], "warning");
  EXPECT_TRUE((*warning)["time"].is_string());
  // Never the recipient's address (SPEC §6).
  EXPECT_EQ(node.later_lines().find("ada@example.com"), std::string::npos);
}

std::string run(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  status = pclose(p);
  return out;
}

// The read models `passage replay --out` left at `copy` (beside the data folder `data`,
// whose key store decrypts them) open and answer the usage of `invite_id` (of the
// folder's only organization) as `expected`.
void expect_usage_in_copy(const std::string& data, const std::string& copy,
                          const std::string& invite_id, const nlohmann::json& expected) {
  auto offline = app::open_offline(data);
  ASSERT_TRUE(offline) << offline.error();
  auto models = projections::read_models::open({.path = copy}, *(*offline)->codec);
  ASSERT_TRUE(models) << models.error().message;
  auto orgs = (*models)->organizations();
  ASSERT_EQ(orgs.size(), 1u);
  auto id = uuid::parse(invite_id);
  ASSERT_TRUE(id);
  auto usage = (*models)->usage(orgs[0].org_id, *id);
  ASSERT_TRUE(usage);
  EXPECT_EQ(projections::to_json(*usage), expected);
}

TEST(Replay, RebuildsIdenticalReadModelsAfterAGracefulStop) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  std::string invite_id;
  json before_invite, before_claims, before_usage;
  {
    child_node node(data);
    ASSERT_NE(node.port(), 0);
    http_client c(node.port());
    std::string code;
    ASSERT_NO_FATAL_FAILURE(
        make_invite(c, R"("title":"Replay","claim_limit":100)", invite_id, code));
    for (int i = 0; i < 40; ++i) {
      auto r = c.post("/v1/public/invites/" + code + "/claims",
                      json{{"email", "p" + std::to_string(i) + "@example.com"}}.dump());
      ASSERT_EQ(r.status, 201u);
    }
    before_invite = c.get("/v1/invites/" + invite_id, auth).json();
    before_claims = c.get("/v1/invites/" + invite_id + "/claims", auth).json();
    before_usage = c.get("/v1/invites/" + invite_id + "/usage", auth).json();
    c.close();
    EXPECT_EQ(node.terminate(), 0) << "SIGTERM is a graceful stop";
  }
  int status = -1;
  auto out = run(std::string(PASSAGE_BINARY) + " replay --data-dir " + data + " 2>&1", status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("rebuilt read models from"), std::string::npos) << out;
  EXPECT_NE(out.find("events/s"), std::string::npos) << out;

  child_node node(data);
  http_client c(node.port());
  EXPECT_EQ(c.get("/v1/invites/" + invite_id, auth).json(), before_invite);
  EXPECT_EQ(c.get("/v1/invites/" + invite_id + "/claims", auth).json(), before_claims);
  EXPECT_EQ(c.get("/v1/invites/" + invite_id + "/usage", auth).json(), before_usage);
}

// Marks a folder of read models as written in record format 4 (an older Passage's).
void mark_format_4(const std::string& path) {
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &raw).ok()) << path;
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "m:fmt", "4").ok());
}

// Read models of an older record format are what `passage replay` is for: it rebuilds
// them (live or --out) instead of refusing them with advice to run `passage replay`.
TEST(Replay, RebuildsReadModelsOfAnOlderRecordFormat) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  const std::string copy = dir.sub("analysis");
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  std::string invite_id;
  json before_usage, before_claims;
  {
    child_node node(data);
    ASSERT_NE(node.port(), 0);
    http_client c(node.port());
    std::string code;
    ASSERT_NO_FATAL_FAILURE(make_invite(c, R"("title":"Old","claim_limit":10)", invite_id, code));
    for (int i = 0; i < 3; ++i) {
      auto r = c.post("/v1/public/invites/" + code + "/claims",
                      json{{"email", "old" + std::to_string(i) + "@example.com"}}.dump());
      ASSERT_EQ(r.status, 201u);
    }
    before_usage = c.get("/v1/invites/" + invite_id + "/usage", auth).json();
    before_claims = c.get("/v1/invites/" + invite_id + "/claims", auth).json();
    c.close();
    ASSERT_EQ(node.terminate(), 0);
  }
  int status = -1;
  auto made =
      run(std::string(PASSAGE_BINARY) + " replay --data-dir " + data + " --out " + copy + " 2>&1",
          status);
  ASSERT_EQ(status, 0) << made;
  mark_format_4(data + "/readmodels");
  mark_format_4(copy);

  for (const std::string& out_flag : {std::string(), " --out " + copy}) {
    SCOPED_TRACE(out_flag);
    auto out = run(std::string(PASSAGE_BINARY) + " replay --data-dir " + data + out_flag + " 2>&1",
                   status);
    ASSERT_EQ(status, 0) << out;
    EXPECT_NE(out.find("record format 4; rebuilding it"), std::string::npos) << out;
    EXPECT_NE(out.find("rebuilt read models from"), std::string::npos) << out;
  }

  // The --out copy opens as current read models and answers as the server did.
  expect_usage_in_copy(data, copy, invite_id, before_usage);
  // The live folder too: the server starts on it without catching up from 0.
  child_node node(data);
  ASSERT_NE(node.port(), 0);
  EXPECT_EQ(node.start_lines().find("record format"), std::string::npos) << node.start_lines();
  http_client c(node.port());
  EXPECT_EQ(c.get("/v1/invites/" + invite_id + "/usage", auth).json(), before_usage);
  EXPECT_EQ(c.get("/v1/invites/" + invite_id + "/claims", auth).json(), before_claims);
}

TEST(Export, RunsBesideAWritingServerAndExportsAPrefixOfTheLog) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  child_node node(data);
  ASSERT_NE(node.port(), 0);
  http_client admin(node.port());
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  std::string invite_id, code;
  ASSERT_NO_FATAL_FAILURE(make_invite(admin, R"("title":"Export")", invite_id, code));
  auto first = admin.post("/v1/public/invites/" + code + "/claims",
                          R"({"email":"ada.exported@example.com"})");
  ASSERT_EQ(first.status, 201u);

  std::atomic<bool> stop{false};
  std::thread writer([&] {
    http_client c(node.port());
    for (int n = 0; !stop; ++n) {
      c.post("/v1/public/invites/" + code + "/claims",
             json{{"email", "w" + std::to_string(n) + "@example.com"}}.dump());
    }
  });
  for (int round = 0; round < 3; ++round) {
    int status = -1;
    auto out = run(std::string(PASSAGE_BINARY) + " export events --format ndjson --data-dir " +
                       data + " 2>/dev/null",
                   status);
    ASSERT_EQ(status, 0) << out.substr(0, 500);
    // Positions 1..N with no gap: a prefix of the log, however busy the writer.
    std::uint64_t expected = 1;
    std::size_t start = 0;
    while (start < out.size()) {
      auto end = out.find('\n', start);
      auto line = json::parse(out.substr(start, end - start), nullptr, false);
      ASSERT_FALSE(line.is_discarded()) << "line " << expected;
      ASSERT_EQ(line["position"].get<std::uint64_t>(), expected);
      ++expected;
      start = end + 1;
    }
    EXPECT_GT(expected, 4u);
  }
  stop = true;
  writer.join();

  int status = -1;
  auto csv = run(std::string(PASSAGE_BINARY) + " export claims --invite " + invite_id +
                     " --data-dir " + data + " 2>/dev/null",
                 status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(csv.rfind("position,recorded_at,org_id,invite_id,claim_id", 0), 0u)
      << csv.substr(0, 200);
  EXPECT_NE(csv.find("ada.exported@example.com"), std::string::npos);

  // After forget the export shows the learner as forgotten, with the row intact.
  auto forgot = admin.post(
      "/v1/learners/" + first.json()["learner_id"].get<std::string>() + "/forget", "", auth);
  ASSERT_EQ(forgot.status, 200u) << forgot.body;
  auto after = run(std::string(PASSAGE_BINARY) + " export claims --invite " + invite_id +
                       " --data-dir " + data + " 2>/dev/null",
                   status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(after.find("ada.exported@example.com"), std::string::npos);
  EXPECT_NE(after.find(first.json()["claim_id"].get<std::string>()), std::string::npos);
  EXPECT_NE(after.find("forgotten"), std::string::npos);

  // A full disk (/dev/full) fails the export (1), naming the output, whether the rows fill
  // the buffer (events: the first failing write stops it) or only the last flush finds it
  // (claims of a fresh invite: the header alone).
  auto fresh = admin.post("/v1/invites", R"({"title":"Unclaimed","tracks":["t"]})", auth);
  ASSERT_EQ(fresh.status, 201u) << fresh.body;
  const std::string fresh_id = fresh.json()["id"];
  for (const std::string& what : {std::string("events"), "claims --invite " + fresh_id}) {
    auto full = run(std::string(PASSAGE_BINARY) + " export " + what + " --data-dir " + data +
                        " --output /dev/full 2>&1",
                    status);
    EXPECT_EQ(WEXITSTATUS(status), 1) << what << ": " << full;
    EXPECT_NE(full.find("cannot write /dev/full"), std::string::npos) << what << ": " << full;
    full = run(std::string(PASSAGE_BINARY) + " export " + what + " --data-dir " + data +
                   " 2>&1 >/dev/full",
               status);
    EXPECT_EQ(WEXITSTATUS(status), 1) << what << ": " << full;
    EXPECT_NE(full.find("cannot write standard output"), std::string::npos) << what << ": " << full;
  }
}

// `--invite` follows the invite into the streams of its learners and claims: its leads,
// plays and pauses are events of those streams that name it; `--since` keeps the time
// from the invite's creation to each claim.
TEST(Export, AnInvitesLeadsAndPlaysAreItsEventsAndSinceKeepsTheTimeFromCreation) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  child_node node(data);
  ASSERT_NE(node.port(), 0);
  http_client admin(node.port());
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  ASSERT_EQ(
      admin.put("/v1/lead-form", R"({"fields":[{"name":"company","required":true}]})", auth).status,
      200u);
  ASSERT_EQ(admin.post("/v1/tracks", R"({"track_id":"t","title":"T"})", auth).status, 201u);
  std::vector<json> invites;
  for (const char* title : {"Leads A", "Leads B"}) {
    auto inv =
        admin.post("/v1/invites",
                   json{{"title", title}, {"tracks", {"t"}}, {"access", "lead_form"}}.dump(), auth);
    ASSERT_EQ(inv.status, 201u) << inv.body;
    invites.push_back(inv.json());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const auto since = format_rfc3339(
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()));
  std::vector<std::string> claims;
  for (std::size_t i = 0; i < invites.size(); ++i) {
    auto c = admin.post("/v1/public/invites/" + invites[i]["code"].get<std::string>() + "/claims",
                        json{{"email", "lead" + std::to_string(i) + "@example.com"},
                             {"first_name", "Lead"},
                             {"last_name", std::to_string(i)},
                             {"answers", {{"company", "Acme " + std::to_string(i)}}}}
                            .dump());
    ASSERT_EQ(c.status, 201u) << c.body;
    claims.push_back(c.json()["claim_id"]);
    auto played =
        admin.post("/v1/public/claims/" + claims.back() + "/plays", R"({"track_id":"t"})",
                   {{"Authorization", "Bearer " + c.json()["learner_token"].get<std::string>()}});
    ASSERT_EQ(played.status, 201u) << played.body;
  }
  const std::string a = invites[0]["id"];
  int status = -1;
  auto leads = run(std::string(PASSAGE_BINARY) + " export leads --invite " + a + " --data-dir " +
                       data + " 2>/dev/null",
                   status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(std::count(leads.begin(), leads.end(), '\n'), 2) << leads;  // header + 1 lead
  EXPECT_NE(leads.find("Acme 0"), std::string::npos) << leads;
  EXPECT_EQ(leads.find("Acme 1"), std::string::npos) << leads;

  auto events = run(std::string(PASSAGE_BINARY) + " export events --format ndjson --invite " + a +
                        " --data-dir " + data + " 2>/dev/null",
                    status);
  ASSERT_EQ(status, 0);
  std::multiset<std::string> types;
  for (std::size_t start = 0; start < events.size();) {
    auto end = events.find('\n', start);
    auto line = json::parse(events.substr(start, end - start));
    types.insert(line["type"].get<std::string>());
    EXPECT_EQ(line.dump().find(invites[1]["id"].get<std::string>()), std::string::npos) << line;
    start = end + 1;
  }
  EXPECT_EQ(types.count("InviteCreated"), 1u) << events;
  EXPECT_EQ(types.count("InviteClaimed"), 1u) << events;
  EXPECT_EQ(types.count("LeadCaptured"), 1u) << events;
  EXPECT_EQ(types.count("TrackPlayed"), 1u) << events;

  auto csv = run(std::string(PASSAGE_BINARY) + " export claims --invite " + a + " --since " +
                     since + " --data-dir " + data + " 2>/dev/null",
                 status);
  ASSERT_EQ(status, 0);
  ASSERT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2) << csv;
  auto last_cell = csv.substr(csv.rfind(',') + 1);
  EXPECT_NE(last_cell, "\n") << "seconds_since_invite_created is empty: " << csv;
  EXPECT_GE(std::stoi(last_cell), 1) << csv;
}

// Point-in-time answers from the CLI, beside a running server: `passage usage --as-of`,
// `passage export claims --as-of` and `passage replay --as-of --out` give what the
// server answered at that instant, while the server keeps writing and serving.
TEST(PointInTime, CliAnswersAsTheServerDidAtAnInstantBesideARunningServer) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  child_node node(data);
  ASSERT_NE(node.port(), 0);
  http_client admin(node.port());
  http_client::headers auth = {{"Authorization", "Bearer " + kOwner}};
  std::string invite_id, code;
  ASSERT_NO_FATAL_FAILURE(
      make_invite(admin, R"("title":"As of","claim_limit":50)", invite_id, code));
  auto claim_some = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      auto r = admin.post("/v1/public/invites/" + code + "/claims",
                          json{{"email", "p" + std::to_string(i) + "@example.com"}}.dump());
      ASSERT_EQ(r.status, 201u) << r.body;
    }
  };
  claim_some(0, 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // The instant, on the same machine clock as the server's.
  auto now =
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
  auto micros = now.time_since_epoch().count();
  std::time_t secs = static_cast<std::time_t>(micros / 1'000'000);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", std::gmtime(&secs));
  char as_of[80];
  std::snprintf(as_of, sizeof as_of, "%s.%06lldZ", text,
                static_cast<long long>(micros % 1'000'000));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto usage_then = admin.get("/v1/invites/" + invite_id + "/usage", auth).json();
  ASSERT_EQ(usage_then["claims"], 3);
  claim_some(3, 8);

  int status = -1;
  auto usage = run(std::string(PASSAGE_BINARY) + " usage --invite " + invite_id + " --as-of " +
                       as_of + " --data-dir " + data + " 2>&1",
                   status);
  ASSERT_EQ(status, 0) << usage;
  auto usage_json = json::parse(usage, nullptr, false);
  ASSERT_FALSE(usage_json.is_discarded()) << usage;
  usage_json.erase("as_of");
  EXPECT_EQ(usage_json, usage_then);
  auto over_http = admin.get("/v1/invites/" + invite_id + "/usage?as_of=" + as_of, auth).json();
  over_http.erase("as_of");
  EXPECT_EQ(over_http, usage_then);

  auto csv = run(std::string(PASSAGE_BINARY) + " export claims --invite " + invite_id +
                     " --as-of " + as_of + " --data-dir " + data + " 2>/dev/null",
                 status);
  ASSERT_EQ(status, 0);
  EXPECT_NE(csv.substr(0, csv.find('\n')).find("seconds_since_invite_created"), std::string::npos)
      << csv.substr(0, 200);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4) << csv;  // header + 3 claims

  // Refuses the live folder; builds a separate one while the server runs.
  auto refused = run(std::string(PASSAGE_BINARY) + " replay --data-dir " + data + " --as-of " +
                         as_of + " --out " + data + "/readmodels 2>&1",
                     status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << "bad usage: " << refused;
  EXPECT_NE(refused.find("--out"), std::string::npos) << refused;
  const std::string copy = dir.sub("analysis");
  auto out = run(std::string(PASSAGE_BINARY) + " replay --data-dir " + data + " --as-of " + as_of +
                     " --out " + copy + " 2>&1",
                 status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("events/s"), std::string::npos) << out;
  EXPECT_NE(out.find("rebuilt read models from"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(copy + "/CURRENT")) << out;
  // The live server did not notice.
  EXPECT_EQ(admin.get("/v1/invites/" + invite_id + "/usage", auth).json()["claims"], 8);

  // The copy holds the read models as of the instant.
  expect_usage_in_copy(data, copy, invite_id, usage_then);
}

TEST(Replay, RefusesAFolderThatIsNotPassages) {
  temp_dir dir;
  int status = -1;
  auto out = run(std::string(PASSAGE_BINARY) + " replay --data-dir " + dir.sub("nothing") + " 2>&1",
                 status);
  EXPECT_EQ(WEXITSTATUS(status), 1) << "a failure while running: " << out;
  EXPECT_NE(out.find("not found"), std::string::npos) << out;
}

// Every file under `root` with its size and modification time.
std::map<std::string, std::pair<std::uintmax_t, std::filesystem::file_time_type>> snapshot(
    const std::string& root) {
  std::map<std::string, std::pair<std::uintmax_t, std::filesystem::file_time_type>> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files[e.path().string()] = {e.file_size(), e.last_write_time()};
  }
  return files;
}

// `replay --out` writes only into a new or empty folder or one of read models: the data
// folder's other parts, or any other non-empty folder, are refused before anything is touched.
TEST(Replay, OutRefusesAFolderThatIsNotReadModels) {
  temp_dir dir;
  const std::string data = dir.sub("data");
  {
    child_node node(data);
    ASSERT_NE(node.port(), 0);
    http_client c(node.port());
    ASSERT_EQ(c.post("/v1/tracks", R"({"track_id":"t","title":"T"})",
                     {{"Authorization", "Bearer " + kOwner}})
                  .status,
              201u);
    c.close();
    EXPECT_EQ(node.terminate(), 0);
  }
  const std::string notes = dir.sub("notes");
  std::filesystem::create_directories(notes);
  std::FILE* f = std::fopen((notes + "/todo.txt").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("keep me\n", f);
  std::fclose(f);

  int status = -1;
  const auto before = snapshot(dir.sub(""));
  for (const std::string& out_dir :
       {data + "/keys", data + "/mailer", data + "/events", data, notes, notes + "/todo.txt"}) {
    ASSERT_TRUE(std::filesystem::exists(out_dir)) << out_dir;
    auto out = run(
        std::string(PASSAGE_BINARY) + " replay --data-dir " + data + " --out " + out_dir + " 2>&1",
        status);
    EXPECT_NE(status, 0) << out_dir << ": " << out;
    EXPECT_NE(out.find("--out"), std::string::npos) << out;
    EXPECT_NE(out.find(out_dir), std::string::npos) << out;
    EXPECT_NE(out.find("nothing was changed"), std::string::npos) << out;
    EXPECT_EQ(snapshot(dir.sub("")), before) << out_dir;
  }

  // A folder of read models, new or already there, is fine.
  const std::string copy = dir.sub("analysis");
  for (int i = 0; i < 2; ++i) {
    auto out =
        run(std::string(PASSAGE_BINARY) + " replay --data-dir " + data + " --out " + copy + " 2>&1",
            status);
    EXPECT_EQ(status, 0) << out;
  }
}

// Bad usage exits with status 2 and a message naming the problem, whichever layer
// finds it (the option parser, the commands' own checks); scripts tell it from a
// failure while running (1).
TEST(Cli, BadFlagsAreNamedAndTouchNothing) {
  temp_dir dir;
  int status = -1;
  auto out = run(std::string(PASSAGE_BINARY) + " serve --listen nowhere 2>&1", status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("--listen"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " serve --listen 127.0.0.1:8080abc --data-dir " +
                dir.sub("d") + " 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << "a port with trailing text is not port 8080";
  EXPECT_NE(out.find("--listen"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " serve --data-dir " + dir.sub("d") +
                " --claim-limit-per-ip lots --listen 127.0.0.1:0 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("claim-limit-per-ip"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " serve --data-dir " + dir.sub("d") +
                " --slow-query-limit many --listen 127.0.0.1:0 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("--slow-query-limit"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.sub("d"))) << "a refused start creates no data folder";

  out = run(std::string(PASSAGE_BINARY) + " launch 2>&1", status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  out = run(std::string(PASSAGE_BINARY) + " export everything --data-dir " + dir.sub("d") + " 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("everything"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " export events --type InviteClaimed,Bogus --data-dir " +
                dir.sub("d") + " 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("'Bogus' is not an event type"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " export events --type InviteClaimed, --data-dir " +
                dir.sub("d") + " 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << "an empty type name: " << out;
  out = run(std::string(PASSAGE_BINARY) + " export claims --type InviteClaimed --data-dir " +
                dir.sub("d") + " 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("--type applies to `export events` only"), std::string::npos) << out;
  {  // a usage error leaves the --output file as it was (found before it is opened)
    const std::string kept = dir.sub("kept.csv");
    std::ofstream(kept) << "rows of an earlier export\n";
    out = run(std::string(PASSAGE_BINARY) + " export events --type Bogus --output " + kept +
                  " --data-dir " + dir.sub("d") + " 2>&1",
              status);
    EXPECT_EQ(WEXITSTATUS(status), 2) << out;
    EXPECT_NE(out.find("'Bogus' is not an event type"), std::string::npos) << out;
    std::ifstream in(kept);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "rows of an earlier export\n");
  }
  // Not usage: an output that cannot be written is a failure (1).
  out = run(std::string(PASSAGE_BINARY) + " export events --output " + dir.sub("no/such.csv") +
                " --data-dir " + dir.sub("d") + " 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("cannot write"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.sub("d")));

  out = run(std::string(PASSAGE_BINARY) + " replica --data-dir " + dir.sub("r") + " 2>&1", status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("--kafka-brokers"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " replica --kafka-brokers none --data-dir " +
                dir.sub("r") + " --listen 127.0.0.1:0 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("--kafka-brokers"), std::string::npos) << out;
  out = run(std::string(PASSAGE_BINARY) + " replica --kafka-brokers 127.0.0.1:9 --data-dir " +
                dir.sub("r") + " --listen nowhere 2>&1",
            status);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("--listen"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.sub("r"))) << "a refused start creates no folder";
}

}  // namespace
}  // namespace passage::testing
