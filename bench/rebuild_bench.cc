// Rebuild and export rates on a big log: writes a Passage data folder whose log holds a
// realistic mix (invites, learners registering, claims, rejections, plays; personal data
// encrypted per learner), then runs each measured phase in a child process of its own so
// its peak memory (getrusage ru_maxrss) is its own:
//   rebuild         every read model from position 1 as `passage replay` in place does (the
//                   server stopped: the key store opened exclusively, which lets it preload
//                   the learners' keys), into a fresh folder beside the log. The child works
//                   on the bench's own folder, so opening its keys for writing is harmless
//                   (copy the keys of a shared log, hard-link only its events).
//   rebuild-no-preload  the same without the key preload (rebuild_options::preload_keys):
//                   only when named in --phases, to compare the preload's time and memory
//   export claims   `passage export claims` to /dev/null
//   export events   `passage export events --format ndjson` to /dev/null
//
//   rebuild_bench [--events 10000000] [--dir /tmp/passage-rebuild-bench] [--keep]
//                 [--phases rebuild,export-claims,export-events] (or rebuild-no-preload)
//                 [--help]
//
// --keep reuses the folder's log when it already holds --events events (skips writing).
// --phases runs only those (comma-separated), e.g. to alternate with another build; an
// empty list only writes the log (with --keep, to share it between builds).

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "app/export.h"
#include "app/offline.h"
#include "app/server.h"
#include "bench/bench_args.h"
#include "common/random.h"
#include "domain/events.h"
#include "domain/streams.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/projector.h"
#include "projections/read_models.h"

extern char** environ;

namespace {

using namespace passage;
namespace d = passage::domain;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rebuild_bench: %s\n", what.c_str());
  std::exit(1);
}

double since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

uuid numbered(std::uint64_t kind, std::uint64_t n) {
  uuid u;
  for (int i = 0; i < 8; ++i) u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  u.bytes[0] = static_cast<std::uint8_t>(kind);
  u.bytes[6] = 0x40;
  u.bytes[8] = 0x80;
  return u;
}

// Writes the data folder: server.secret, keys, events. Returns the events written.
std::uint64_t write_log(const fs::path& dir, std::uint64_t target) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string secret = secure_random_hex(32);
  std::ofstream(dir / "server.secret") << secret << "\n";
  auto keys = eventstore::open_key_store({.path = (dir / "keys").string(), .sync_new_keys = false});
  if (!keys) die(keys.error().message);
  auto store = eventstore::open_event_store({.path = (dir / "events").string(), .sync = false});
  if (!store) die(store.error().message);
  eventstore::event_codec codec(**keys, app::derive_key(secret, "pepper"));

  std::vector<eventstore::stream_append> pending;
  std::unordered_map<std::string, std::size_t> slot;
  std::uint64_t written = 0, in_batch = 0;
  auto flush = [&] {
    if (pending.empty()) return;
    if (auto s = (*keys)->sync(); !s) die(s.error().message);
    if (auto r = (*store)->append(std::move(pending)); !r) die(r.error().message);
    pending.clear();
    slot.clear();
    in_batch = 0;
  };
  auto add = [&](const d::event& e) {
    auto enc = codec.encode(e, {.event_id = uuid::random(), .actor = "bench"});
    if (!enc) die(enc.error().message);
    auto stream = d::stream_of(e);
    auto [it, fresh] = slot.try_emplace(stream, pending.size());
    if (fresh) pending.push_back({std::move(stream), eventstore::expected_version::any(), {}});
    pending[it->second].events.push_back(std::move(*enc));
    ++written;
    if (++in_batch >= 4096) flush();
  };

  const auto started = steady::now();
  const uuid org = numbered(1, 1);
  const timestamp t0 = from_unix_micros(1'790'000'000'000'000);
  add(d::organization_created{org, "Bench", t0});
  std::vector<std::string> tracks;
  for (int t = 0; t < 20; ++t) {
    tracks.push_back("track-" + std::to_string(t));
    add(d::track_registered{org, tracks.back(), "Track " + std::to_string(t), t % 2 == 0, {}, t0});
  }
  std::uint64_t invites = 0;
  auto new_invite = [&](timestamp at) {
    d::invite_settings s;
    s.title_ = "Invite " + std::to_string(invites);
    for (int t = 0; t < 3; ++t) s.tracks_.push_back({tracks[(invites + t) % tracks.size()], false});
    s.claim_limit_ = 1000;
    s.plays_per_track_ = 10;
    add(d::invite_created{
        org, numbered(2, invites), "C" + std::to_string(1000000 + invites), s, {}, at});
    ++invites;
  };
  int last_report = 0;
  for (std::uint64_t n = 0; written < target; ++n) {
    const timestamp at = t0 + std::chrono::seconds(n);
    if (n % 1000 == 0) new_invite(at);  // an invite for every 1,000 learners
    const std::uint64_t i = invites - 1;
    const uuid invite = numbered(2, i);
    const uuid learner = numbered(3, n), claim = numbered(4, n);
    d::personal_data pd;
    pd.email_ = "learner" + std::to_string(n) + "@example.com";
    pd.first_name_ = "First" + std::to_string(n);
    pd.last_name_ = "Last";
    add(d::learner_registered{org, learner, d::learner_role::student, true, at, pd});
    if (n % 20 == 19) {  // 5 % also get turned away once (an invite that is full)
      add(d::claim_rejected{org, numbered(2, i / 2), d::rejection_reason::full, learner, false, at,
                            d::personal_data{.email_ = pd.email_}});
    }
    d::claim_snapshot snap;
    for (int t = 0; t < 3; ++t) snap.tracks_.push_back({tracks[(i + t) % tracks.size()], false});
    snap.plays_per_track_ = 10;
    add(d::invite_claimed{org, invite, claim, learner, false, at, snap, std::nullopt,
                          d::personal_data{.email_ = pd.email_}});
    for (std::uint64_t p = 0; p < 1 + n % 5; ++p) {  // 1 to 5 plays, 3 on average
      add(d::track_played{org, invite, claim, learner, snap.tracks_[p % 3].track_id_,
                          static_cast<std::int64_t>(p / 3 + 1), at + std::chrono::minutes(p)});
    }
    int pct = static_cast<int>(100 * written / target);
    if (pct >= last_report + 10) {
      last_report = pct;
      std::fprintf(stderr, "  writing the log: %d%% (%.0f events/s)\n", pct,
                   static_cast<double>(written) / since(started));
    }
  }
  flush();
  std::printf("log: %llu events (%llu invites) written in %.1f s\n",
              static_cast<unsigned long long>((*store)->head_position()),
              static_cast<unsigned long long>(invites), since(started));
  return (*store)->head_position();
}

// --- phases (each in its own process) ---

constexpr const char* kPhases[] = {"rebuild", "rebuild-no-preload", "export-claims",
                                   "export-events"};

// The first name in the comma list `phases` that is no phase (a typo would otherwise run
// nothing and print nothing), if any. Empty names (",,", an empty list) are allowed.
std::optional<std::string> unknown_phase(std::string_view phases) {
  while (!phases.empty()) {
    const auto comma = phases.find(',');
    const auto name = phases.substr(0, comma);
    if (!name.empty() && std::none_of(std::begin(kPhases), std::end(kPhases),
                                      [&](const char* p) { return name == p; })) {
      return std::string(name);
    }
    if (comma == std::string_view::npos) break;
    phases.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

int phase_rebuild(const fs::path& dir, bool preload_keys) {
  // As `passage replay` in place: keys opened exclusively (a follower never preloads).
  auto data = app::open_offline(dir.string(), app::key_access::exclusive, 0);
  if (!data) die(data.error());
  fs::remove_all(dir / "bench-readmodels");
  auto models = projections::read_models::open({.path = (dir / "bench-readmodels").string()},
                                               *(*data)->codec);
  if (!models) die(models.error().message);
  auto r = projections::rebuild(*(*data)->store, **models, {.preload_keys = preload_keys});
  if (!r) die(r.error().message);
  // Valid events should all take the fast (simdjson) reader.
  if (auto slow = eventstore::text_decode_fallbacks(); slow > 0) {
    std::fprintf(stderr, "rebuild: %llu events decoded through nlohmann\n",
                 static_cast<unsigned long long>(slow));
  }
  // ... and nearly all the layout reader (events as this build's encoder writes them).
  if (auto missed = eventstore::layout_decode_misses(); missed > 0) {
    std::fprintf(stderr, "rebuild: %llu events not in the encoder's exact layout\n",
                 static_cast<unsigned long long>(missed));
  }
  std::printf("%llu %.3f\n", static_cast<unsigned long long>(r->events_done), r->seconds);
  return 0;
}

int phase_export(const fs::path& dir, app::export_kind kind) {
  std::FILE* out = std::fopen("/dev/null", "w");
  app::export_options o;
  o.data_dir = dir.string();
  o.kind = kind;
  o.format =
      kind == app::export_kind::events ? app::export_format::ndjson : app::export_format::csv;
  o.out = out;
  auto r = app::run_export(o);
  std::fclose(out);
  if (!r) die(r.error().message);
  std::printf("%llu %.3f %llu\n", static_cast<unsigned long long>(r->scanned), r->seconds,
              static_cast<unsigned long long>(r->rows));
  return 0;
}

struct child_result {
  std::string out;
  long max_rss_kib = 0;
  double cpu_seconds = 0;  // user + system, the whole child (opening the folder included)
};

child_result run_phase(const char* self, const std::string& phase, const fs::path& dir) {
  int pipefd[2];
  if (pipe(pipefd) != 0) die("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipefd[0]);
  std::string dir_s = dir.string();
  std::vector<char*> args = {const_cast<char*>(self),
                             const_cast<char*>("--phase"),
                             const_cast<char*>(phase.c_str()),
                             const_cast<char*>("--dir"),
                             dir_s.data(),
                             nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, self, &actions, nullptr, args.data(), environ) != 0) die("spawn");
  posix_spawn_file_actions_destroy(&actions);
  close(pipefd[1]);
  child_result r;
  char buf[256];
  ssize_t n = 0;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<std::size_t>(n));
  close(pipefd[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(phase + " failed");
  r.max_rss_kib = usage.ru_maxrss;
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  r.cpu_seconds = secs(usage.ru_utime) + secs(usage.ru_stime);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t events = 10'000'000;
  std::string dir_text = "/tmp/passage-rebuild-bench";
  std::string phase;
  bool keep = false;
  std::string phases = "rebuild,export-claims,export-events";
  passage::bench::bench_args args(
      "rebuild_bench",
      "Writes a data folder whose log holds N events (or keeps one), then measures each phase\n"
      "in a child process: events/s, peak RSS and CPU per event.");
  args.value("--events", events, "events in the log (default 10000000)");
  args.value("--dir", dir_text, "the data folder (default /tmp/passage-rebuild-bench)");
  args.flag("--keep", keep,
            "keep the folder, and reuse its log when it already holds --events events");
  args.value("--phases", phases,
             "comma list of rebuild, rebuild-no-preload, export-claims, export-events "
             "(default rebuild,export-claims,export-events; empty: only write the log)");
  args.value("--phase", phase, "internal: run one phase in this process (the child's side)");
  if (int code = args.parse_or_exit_code(argc, argv); code >= 0) return code;
  const fs::path dir = dir_text;
  if (auto wrong = unknown_phase(phases)) {
    die("--phases: unknown phase '" + *wrong +
        "' (rebuild, rebuild-no-preload, export-claims, export-events)");
  }
  if (phase == "rebuild") return phase_rebuild(dir, true);
  if (phase == "rebuild-no-preload") return phase_rebuild(dir, false);
  if (phase == "export-claims") return phase_export(dir, app::export_kind::claims);
  if (phase == "export-events") return phase_export(dir, app::export_kind::events);
  if (!phase.empty()) die("unknown phase " + phase);

  std::uint64_t head = 0;
  if (keep && fs::exists(dir / "server.secret")) {
    auto data = app::open_offline(dir.string());
    if (data) head = (*data)->store->head_position();
  }
  if (head < events) head = write_log(dir, events);
  std::printf("log: %llu events in %s\n", static_cast<unsigned long long>(head), dir.c_str());

  const std::string self = fs::read_symlink("/proc/self/exe").string();
  for (const char* p : kPhases) {
    if (("," + phases + ",").find(std::string(",") + p + ",") == std::string::npos) continue;
    auto r = run_phase(self.c_str(), p, dir);
    unsigned long long scanned = 0, rows = 0;
    double seconds = 0;
    if (std::sscanf(r.out.c_str(), "%llu %lf %llu", &scanned, &seconds, &rows) < 2) {
      die(std::string(p) + ": unexpected output " + r.out);
    }
    std::printf("%-18s %11llu events in %7.2f s = %10.0f events/s", p, scanned, seconds,
                static_cast<double>(scanned) / seconds);
    if (rows > 0) std::printf(" (%llu rows)", rows);
    std::printf(", peak RSS %.0f MiB, CPU %.2f us/event\n",
                static_cast<double>(r.max_rss_kib) / 1024.0,
                r.cpu_seconds * 1e6 / static_cast<double>(std::max(scanned, 1ull)));
    std::fflush(stdout);
  }
  if (!keep) fs::remove_all(dir);
  return 0;
}
