// Replay rate of the read models: fills an event log with a realistic mix (learners
// registering, claiming invites and playing tracks, all personal data encrypted by the
// codec), then times rebuild() from position 0.
//
//   projections_replay_bench [claims=200000] [folder=/tmp/passage-replay-bench]
//
// Prints events/s for the rebuild and for the catch-up of a fresh projector.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/events.h"
#include "domain/streams.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/projector.h"
#include "projections/read_models.h"

using namespace passage;
namespace d = passage::domain;

namespace {

uuid numbered(std::uint64_t kind, std::uint64_t n) {
  uuid u;
  for (int i = 0; i < 8; ++i) u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  u.bytes[0] = static_cast<std::uint8_t>(kind);
  u.bytes[6] = 0x40;
  u.bytes[8] = 0x80;
  return u;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t claims = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  const std::filesystem::path folder = argc > 2 ? argv[2] : "/tmp/passage-replay-bench";
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);

  auto store = eventstore::open_event_store({.path = (folder / "events").string(), .sync = false});
  if (!store) die(store.error().message);
  auto keys = eventstore::make_memory_key_store();
  eventstore::event_codec codec(*keys, std::string(48, 'p'));

  const uuid org = numbered(1, 1);
  const timestamp t0 = from_unix_micros(1'790'000'000'000'000);
  std::vector<eventstore::stream_append> pending;
  std::size_t pending_events = 0;
  std::unordered_map<std::string, std::size_t> slot;
  auto add = [&](const d::event& e) {
    auto enc = codec.encode(e, {.event_id = uuid::random(), .actor = "bench"});
    if (!enc) die(enc.error().message);
    // One stream may appear once per append: group by stream in order of first appearance.
    auto stream = d::stream_of(e);
    auto [it, fresh] = slot.try_emplace(stream, pending.size());
    if (fresh) pending.push_back({std::move(stream), eventstore::expected_version::any(), {}});
    pending[it->second].events.push_back(std::move(*enc));
    if (++pending_events >= 4096) {
      auto r = (*store)->append(std::move(pending));
      if (!r) die(r.error().message);
      pending.clear();
      slot.clear();
      pending_events = 0;
    }
  };

  const auto gen_start = std::chrono::steady_clock::now();
  add(d::organization_created{org, "Bench", t0});
  const std::vector<std::string> tracks = {"t1", "t2", "t3"};
  for (const auto& t : tracks) add(d::track_registered{org, t, "Track " + t, true, {}, t0});
  const std::uint64_t invites = std::max<std::uint64_t>(1, claims / 200);
  for (std::uint64_t i = 0; i < invites; ++i) {
    d::invite_settings s;
    s.title_ = "Invite " + std::to_string(i);
    for (const auto& t : tracks) s.tracks_.push_back({t, true});
    s.claim_limit_ = 100000;
    s.plays_per_track_ = 10;
    add(d::invite_created{org, numbered(2, i), "C" + std::to_string(1000000 + i), s, {}, t0});
  }
  for (std::uint64_t c = 0; c < claims; ++c) {
    const uuid learner = numbered(3, c);
    const uuid claim = numbered(4, c);
    const uuid invite = numbered(2, c % invites);
    const timestamp at = t0 + std::chrono::seconds(c);
    d::personal_data pd;
    pd.email_ = "learner" + std::to_string(c) + "@example.com";
    pd.first_name_ = "First";
    pd.last_name_ = "Last";
    add(d::learner_registered{org, learner, d::learner_role::student, true, at, pd});
    d::claim_snapshot snap;
    for (const auto& t : tracks) snap.tracks_.push_back({t, true});
    snap.plays_per_track_ = 10;
    add(d::invite_claimed{org, invite, claim, learner, false, at, snap, std::nullopt,
                          d::personal_data{.email_ = pd.email_}});
    for (int p = 0; p < 3; ++p) {
      add(d::track_played{org, invite, claim, learner, tracks[p], 1, at + std::chrono::seconds(1)});
    }
  }
  if (!pending.empty()) {
    auto r = (*store)->append(std::move(pending));
    if (!r) die(r.error().message);
  }
  const double gen_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - gen_start).count();
  const auto head = (*store)->head_position();
  std::printf("log: %llu events written in %.1f s\n", static_cast<unsigned long long>(head), gen_s);

  {
    // Where the time goes: reading the log alone, then reading and decoding.
    auto t = std::chrono::steady_clock::now();
    std::uint64_t n = 0;
    (void)(*store)->scan({}, [&](const eventstore::recorded_event&) { return ++n > 0; });
    const double scan_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    t = std::chrono::steady_clock::now();
    (void)(*store)->scan({}, [&](const eventstore::recorded_event& e) {
      auto dec = codec.decode(e);
      return dec.has_value();
    });
    const double decode_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    t = std::chrono::steady_clock::now();
    (void)(*store)->scan({}, [&](const eventstore::recorded_event& e) {
      auto j = nlohmann::json::parse(e.data);
      if (auto pd = j.find("personal_data"); pd != j.end()) *pd = nullptr;
      return eventstore::event_from_json(e.type, j).has_value();
    });
    const double plain_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    std::printf(
        "scan alone: %.0f events/s; scan + codec.decode (1 thread): %.0f events/s; scan + "
        "decode without decrypting: %.0f events/s\n",
        static_cast<double>(n) / scan_s, static_cast<double>(n) / decode_s,
        static_cast<double>(n) / plain_s);
  }

  auto models = projections::read_models::open({.path = (folder / "readmodels").string()}, codec);
  if (!models) die(models.error().message);
  auto r = projections::rebuild(**store, **models, {.on_progress = [](const auto& p) {
    std::printf("  %llu/%llu events, %.0f events/s\n",
                static_cast<unsigned long long>(p.events_done),
                static_cast<unsigned long long>(p.events_total), p.events_per_second);
  }});
  if (!r) die(r.error().message);
  std::printf("rebuild: %llu events in %.2f s = %.0f events/s\n",
              static_cast<unsigned long long>(r->events_done), r->seconds, r->events_per_second);

  // Catch-up through a projector (subscription batches) from a wiped folder.
  if (auto cleared = (*models)->clear(); !cleared) die(cleared.error().message);
  const auto start = std::chrono::steady_clock::now();
  projections::projector p(**store, **models, {.max_batch = 8192});
  if (auto s = p.start(); !s) die(s.error().message);
  while ((*models)->applied_position() < head) {
    if (p.error()) die(p.error()->message);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("projector catch-up: %llu events in %.2f s = %.0f events/s\n",
              static_cast<unsigned long long>(head), s, static_cast<double>(head) / s);
  p.stop();
  auto v = (*models)->invite(org, numbered(2, 0), t0);
  std::printf("check: invite 0 has %lld claims\n",
              static_cast<long long>(v ? v->claims_count : -1));
  std::filesystem::remove_all(folder);
  return 0;
}
