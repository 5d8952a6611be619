// Appends, expected versions, idempotency, atomicity, reads and the on-disk
// format checks of the RocksDB event store.

#include <rocksdb/db.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "eventstore/format.h"
#include "eventstore/tests/store_fixture.h"
#include "tests/support/forwarding_store.h"

namespace passage::eventstore::testing {
namespace {

using namespace std::chrono_literals;

// ---- expected versions -------------------------------------------------------

struct expectation_case {
  const char* name;
  int prior_events;  // events already in the stream
  expected_version expected;
  bool succeeds;
};

class expected_version_test : public store_test,
                              public ::testing::WithParamInterface<expectation_case> {};

TEST_P(expected_version_test, AdmitsOrRejectsWithActualVersion) {
  const auto& c = GetParam();
  for (int i = 0; i < c.prior_events; ++i) {
    must_append({to("s-1", expected_version::any(), {make_event()})});
  }
  auto r = store_->append({to("s-1", c.expected, {make_event()})});
  if (c.succeeds) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->streams[0].first_version, std::uint64_t(c.prior_events + 1));
    EXPECT_EQ(r->streams[0].last_version, std::uint64_t(c.prior_events + 1));
  } else {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::wrong_expected_version);
    EXPECT_EQ(r.error().stream, "s-1");
    EXPECT_EQ(r.error().actual_version, std::uint64_t(c.prior_events));
    EXPECT_NE(r.error().message.find("is at version " + std::to_string(c.prior_events)),
              std::string::npos)
        << r.error().message;
    auto v = store_->stream_version("s-1");
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, std::uint64_t(c.prior_events)) << "a rejected append stored something";
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, expected_version_test,
    ::testing::Values(
        expectation_case{"any_on_empty", 0, expected_version::any(), true},
        expectation_case{"any_on_existing", 2, expected_version::any(), true},
        expectation_case{"no_stream_on_empty", 0, expected_version::no_stream(), true},
        expectation_case{"no_stream_on_existing", 2, expected_version::no_stream(), false},
        expectation_case{"exists_on_empty", 0, expected_version::stream_exists(), false},
        expectation_case{"exists_on_existing", 2, expected_version::stream_exists(), true},
        expectation_case{"exact_0_on_empty", 0, expected_version::exact(0), true},
        expectation_case{"exact_0_on_existing", 2, expected_version::exact(0), false},
        expectation_case{"exact_match", 2, expected_version::exact(2), true},
        expectation_case{"exact_behind", 2, expected_version::exact(1), false},
        expectation_case{"exact_ahead", 2, expected_version::exact(3), false},
        expectation_case{"exact_on_empty", 0, expected_version::exact(1), false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(store_test, ConcurrentWritersWithExactVersionsHaveOneWinnerPerVersion) {
  constexpr int kThreads = 8, kRounds = 50;
  std::atomic<int> wins{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto v = store_->stream_version("contended");
        ASSERT_TRUE(v);
        auto r = store_->append({to("contended", expected_version::exact(*v), {make_event()})});
        if (r) {
          ++wins;
        } else {
          ASSERT_EQ(r.error().code, errc::wrong_expected_version);
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins + conflicts, kThreads * kRounds);
  auto events = store_->read_stream("contended", 1, read_direction::forward, 100000);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), std::size_t(wins.load()));
  for (std::size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].stream_version, i + 1);
}

// ---- idempotency -------------------------------------------------------------

TEST_F(store_test, SameEventIdTwiceReturnsTheOriginalAndStoresNothing) {
  must_append({to("other", expected_version::any(), {make_event()})});
  auto e = make_event("InviteCreated", R"({"title":"x"})");
  auto first = must_append({to("s-1", expected_version::no_stream(), {e})});
  must_append({to("other", expected_version::any(), {make_event()})});
  // Even though the expectation no longer holds, the retry is recognised first.
  auto again = store_->append({to("s-1", expected_version::no_stream(), {e})});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->already_stored);
  EXPECT_FALSE(first.already_stored);
  EXPECT_EQ(again->first_position, first.first_position);
  EXPECT_EQ(again->last_position, first.last_position);
  EXPECT_EQ(again->streams[0].last_version, 1u);
  EXPECT_EQ(again->recorded_at, first.recorded_at);
  EXPECT_EQ(store_->head_position(), 3u);
}

// The event id index hashes ids by their first two bytes: ids sharing them (one bucket,
// neighbours in key order) are told apart, in the memtable and, after a reopen (the clean
// close flushes), in table files: ids derived from one base id differing only in their
// last byte (byte 15), ids differing only in byte 2 (the first byte past the bucket's
// prefix), and ids differing from those only in byte 1 (the neighbouring bucket).
TEST_F(store_test, EventIdsSharingTheirFirstBytesAreEachFoundOnceStored) {
  uuid base = uuid::random();
  base.bytes[0] = 0xAB;
  base.bytes[1] = 0xCD;
  base.bytes[2] = base.bytes[15] = 0xF0;  // unlike any varied value below: no id twice
  auto varied = [&](std::size_t byte, int value, std::uint8_t bucket_byte = 0xCD) {
    uuid id = base;
    id.bytes[1] = bucket_byte;
    id.bytes[byte] = static_cast<std::uint8_t>(value);
    return id;
  };
  std::vector<new_event> stored;
  for (int i = 0; i < 300; ++i) {
    auto e = make_event("T", std::to_string(i));
    // A quarter differ only in byte 15, a quarter only in byte 2, a quarter like those of
    // byte 2 but in the next bucket; the rest are random.
    if (i % 4 == 0) e.event_id = varied(15, i / 4);
    if (i % 4 == 1) e.event_id = varied(2, i / 4);
    if (i % 4 == 2) e.event_id = varied(2, i / 4, 0xCE);
    stored.push_back(e);
    must_append({to("s-" + std::to_string(i % 7), expected_version::any(), {e})});
  }
  std::uint64_t head = store_->head_position();
  auto check = [&] {
    for (std::size_t i = 0; i < stored.size(); i += 11) {
      auto again =
          store_->append({to("s-" + std::to_string(i % 7), expected_version::any(), {stored[i]})});
      ASSERT_TRUE(again) << again.error().message;
      EXPECT_TRUE(again->already_stored) << i;
      EXPECT_EQ(again->first_position, i + 1) << i;
    }
    EXPECT_EQ(store_->head_position(), head);
    // Differs from stored ids only in its last byte, never stored itself: a new event.
    auto fresh = make_event();
    fresh.event_id = varied(15, 100 + static_cast<int>(head % 100));  // unlike last time
    auto r = must_append({to("s-new", expected_version::any(), {fresh})});
    EXPECT_FALSE(r.already_stored);
    EXPECT_EQ(r.first_position, ++head);
  };
  check();
  reopen();
  check();
}

// 400 ids of one two-byte prefix (as time-ordered ids share theirs), in random order within
// it: 200 appended one per commit, 100 in one append of many events (the writer puts a
// batch's ids in id order) and 100 more one per commit. Every one of them, retried alone,
// and the batch retried whole, is found stored once: in the memtable (a skip list hinted by
// the first byte, whose hint these ids keep missing) and after a reopen (the clean close
// flushes) in table files. Fresh ids of that prefix sorting before and after all others
// are new events. (Until session 17 the memtable was a hash of link lists, and these ids
// filled one bucket past its conversion to a skip list.)
TEST_F(store_test, EventIdsOfOnePrefixAreEachFoundOnceStored) {
  // Bytes 2.. are random but never all 0x00 or all 0xFF (the fresh ids below).
  auto in_bucket = [] {
    uuid id = uuid::random();
    id.bytes[0] = 0x5A;
    id.bytes[1] = 0xA5;
    id.bytes[2] = static_cast<std::uint8_t>(1 + id.bytes[2] % 254);
    return id;
  };
  struct stored_event {
    new_event event;
    std::string stream;
    std::uint64_t position;
  };
  std::vector<stored_event> stored;
  auto append_one = [&](const std::string& stream) {
    auto e = make_event("T", std::to_string(stored.size()));
    e.event_id = in_bucket();
    auto r = must_append({to(stream, expected_version::any(), {e})});
    ASSERT_FALSE(r.already_stored);
    stored.push_back({e, stream, r.first_position});
  };
  for (int i = 0; i < 200; ++i) append_one("s-" + std::to_string(i % 7));
  std::vector<new_event> batch;
  for (int i = 0; i < 100; ++i) {
    batch.push_back(make_event("T", "batch " + std::to_string(i)));
    batch.back().event_id = in_bucket();
  }
  auto b = must_append({to("batch", expected_version::no_stream(), batch)});
  ASSERT_EQ(b.last_position, b.first_position + 99);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    stored.push_back({batch[i], "batch", b.first_position + i});
  }
  for (int i = 0; i < 100; ++i) append_one("s-" + std::to_string(i % 7));
  ASSERT_EQ(store_->head_position(), 400u);

  std::uint64_t head = store_->head_position();
  std::uint8_t round = 0;
  auto check = [&] {
    for (const auto& s : stored) {
      auto again = store_->append({to(s.stream, expected_version::any(), {s.event})});
      ASSERT_TRUE(again) << s.position << ": " << again.error().message;
      EXPECT_TRUE(again->already_stored) << s.position;
      EXPECT_EQ(again->first_position, s.position);
    }
    auto whole = store_->append({to("batch", expected_version::no_stream(), batch)});
    ASSERT_TRUE(whole) << whole.error().message;
    EXPECT_TRUE(whole->already_stored);
    EXPECT_EQ(whole->first_position, b.first_position);
    EXPECT_EQ(whole->last_position, b.last_position);
    EXPECT_EQ(store_->head_position(), head);
    // The bucket's first and last ids in key order (before and after last round's), new.
    ++round;
    for (std::uint8_t fill : {std::uint8_t{0x00}, std::uint8_t{0xFF}}) {
      auto fresh = make_event();
      fresh.event_id = in_bucket();
      std::fill(fresh.event_id.bytes.begin() + 2, fresh.event_id.bytes.end(), fill);
      fresh.event_id.bytes[15] = static_cast<std::uint8_t>(fill == 0 ? 0x10 - round : 0xF0 + round);
      auto r = must_append({to("s-fresh", expected_version::any(), {fresh})});
      EXPECT_FALSE(r.already_stored);
      EXPECT_EQ(r.first_position, ++head);
      stored.push_back({fresh, "s-fresh", r.first_position});
    }
  };
  check();
  reopen();
  check();
}

TEST_F(store_test, SameEventIdWithOtherContentIsAConflict) {
  auto e = make_event("InviteCreated", R"({"title":"x"})");
  must_append({to("s-1", expected_version::any(), {e})});
  auto changed = e;
  changed.data = R"({"title":"y"})";
  auto r = store_->append({to("s-1", expected_version::any(), {changed})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::idempotency_conflict);
  auto other_stream = store_->append({to("s-2", expected_version::any(), {e})});
  ASSERT_FALSE(other_stream);
  EXPECT_EQ(other_stream.error().code, errc::idempotency_conflict);
  EXPECT_EQ(store_->head_position(), 1u);
}

TEST_F(store_test, AppendMixingStoredAndNewIdsIsRefusedWhole) {
  auto e = make_event();
  must_append({to("s-1", expected_version::any(), {e})});
  auto r = store_->append({to("s-1", expected_version::any(), {e, make_event()})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::idempotency_conflict);
  EXPECT_EQ(store_->head_position(), 1u);
}

// Holds the writer in the before_commit hook of the first commit until opened: appends
// queued meanwhile (append_async queues before it returns) all wait for the writer, which
// then takes them into one group commit (up to max_commit_events). Counts the commits
// written. The store's hook shares it; the test's `opener` opens it on the way out, also
// after a failed assertion, so that the store can close.
struct commit_gate {
  std::mutex mu;
  std::condition_variable cv;
  bool holding = false, released = false;
  int commits = 0;

  static std::shared_ptr<commit_gate> install(event_store_options& o) {
    auto gate = std::make_shared<commit_gate>();
    o.before_commit = [gate]() -> std::optional<std::string> {
      std::unique_lock lk(gate->mu);
      ++gate->commits;
      gate->holding = true;
      gate->cv.notify_all();
      gate->cv.wait(lk, [&] { return gate->released; });
      return std::nullopt;
    };
    return gate;
  }
  bool wait_until_holding() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(20), [&] { return holding; });
  }
  void open() {
    std::lock_guard lk(mu);
    released = true;
    cv.notify_all();
  }
  int commits_written() {
    std::lock_guard lk(mu);
    return commits;
  }
  struct opener {
    std::shared_ptr<commit_gate> gate;
    ~opener() { gate->open(); }
  };
};

// Async answers collected in the slots of their appends.
struct answers {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<store_result<append_result>>> slots;
  std::size_t done = 0;

  explicit answers(std::size_t n) : slots(n) {}
  append_callback slot(std::size_t i) {
    return [this, i](store_result<append_result> r) {
      std::lock_guard lk(mu);
      slots[i] = std::move(r);
      ++done;
      cv.notify_all();
    };
  }
  bool wait_for_all() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(20), [&] { return done == slots.size(); });
  }
};

// Twenty appends of one event in one group commit: stored once, the others answered with
// its position.
TEST_F(store_test, DuplicateIdsInOneGroupCommitAreStoredOnce) {
  event_store_options o;
  auto gate = commit_gate::install(o);
  commit_gate::opener open_on_exit{gate};
  reopen(o);
  answers first(1), group(20);
  store_->append_async({to("first", expected_version::any(), {make_event()})}, first.slot(0));
  ASSERT_TRUE(gate->wait_until_holding()) << "the first commit never started";
  auto e = make_event();
  for (std::size_t i = 0; i < 20; ++i) {
    store_->append_async({to("s-1", expected_version::any(), {e})}, group.slot(i));
  }
  gate->open();
  ASSERT_TRUE(first.wait_for_all());
  ASSERT_TRUE(group.wait_for_all());
  EXPECT_EQ(gate->commits_written(), 2) << "the 20 appends were not one group commit";
  int fresh = 0;
  for (auto& r : group.slots) {
    ASSERT_TRUE(*r) << (*r).error().message;
    EXPECT_EQ((*r)->first_position, 2u);
    fresh += !(*r)->already_stored;
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(store_->head_position(), 2u);
}

// The writer looks up the ids of a whole group commit at once: each append of the group
// gets the answer for its own ids, whatever the number of events of those queued before it,
// also after an append of the group that fails on its expected version (its ids looked up
// but not stored: an append after it stores them).
TEST_F(store_test, EachAppendOfAGroupCommitIsJudgedByItsOwnIds) {
  event_store_options o;
  auto gate = commit_gate::install(o);
  commit_gate::opener open_on_exit{gate};
  reopen(o);
  std::vector<new_event> stored;
  for (int i = 0; i < 3; ++i) stored.push_back(make_event("T", std::to_string(i)));
  answers first(1);
  store_->append_async({to("old", expected_version::any(), stored)}, first.slot(0));
  ASSERT_TRUE(gate->wait_until_holding()) << "the first commit never started";

  // 0: all new, 1: all stored before, 2: stored and new mixed, 3: new ids on a wrong
  // expected version, 4: the ids of that 3 again, on a version that holds.
  constexpr std::size_t kAppends = 62, kWrongVersion = 30;
  std::vector<int> kinds;
  answers group(kAppends);
  std::vector<new_event> refused = {make_event(), make_event()};
  for (std::size_t i = 0; i < kAppends; ++i) {
    int kind = int(i % 3);
    if (i == kWrongVersion) kind = 3;
    if (i == kWrongVersion + 1) kind = 4;
    kinds.push_back(kind);
    std::vector<new_event> events;
    expected_version expected = expected_version::any();
    if (kind == 0) {
      for (std::size_t k = 0; k <= i % 4; ++k) events.push_back(make_event());
    } else if (kind == 1) {
      events = stored;
    } else if (kind == 2) {
      events = {make_event(), stored[1]};
    } else {
      events = refused;
      if (kind == 3) expected = expected_version::exact(99);
    }
    store_->append_async(
        {to(kind == 1 || kind == 3 ? "old" : "s-" + std::to_string(i), expected, events)},
        group.slot(i));
  }
  gate->open();
  ASSERT_TRUE(first.wait_for_all());
  ASSERT_TRUE(*first.slots[0]) << (*first.slots[0]).error().message;
  ASSERT_TRUE(group.wait_for_all());
  EXPECT_EQ(gate->commits_written(), 2) << "the appends were not one group commit";

  std::uint64_t next = 4;  // the group's first position
  for (std::size_t i = 0; i < kAppends; ++i) {
    const auto& r = *group.slots[i];
    if (kinds[i] == 2) {
      ASSERT_FALSE(r) << i;
      EXPECT_EQ(r.error().code, errc::idempotency_conflict) << i;
      continue;
    }
    if (kinds[i] == 3) {
      ASSERT_FALSE(r) << i;
      EXPECT_EQ(r.error().code, errc::wrong_expected_version) << i << ": " << r.error().message;
      EXPECT_EQ(r.error().actual_version, 3u) << i;
      continue;
    }
    ASSERT_TRUE(r) << i << ": " << r.error().message;
    EXPECT_EQ(r->already_stored, kinds[i] == 1) << i;
    if (kinds[i] == 1) {
      EXPECT_EQ(r->first_position, 1u) << i;
      continue;
    }
    EXPECT_EQ(r->first_position, next) << i;
    next = r->last_position + 1;
  }
  // 3 stored first, then 1 to 4 events for each all-new append and 2 for the refused ids.
  std::uint64_t expected = 3 + 2;
  for (std::size_t i = 0; i < kAppends; ++i) {
    if (kinds[i] == 0) expected += i % 4 + 1;
  }
  EXPECT_EQ(next, expected + 1);
  EXPECT_EQ(store_->head_position(), expected);
}

// A group commit puts its stream index entries in key order, not in the order of its
// appends: claim-shaped appends (an event to a shared invite stream, a new learner stream
// of two events, named at random so that key order differs from queue order) mixed with
// streams appended several times within the group (versions 1 and 2 share a memtable
// insert hint, later ones have their stream's) read back as appended, before and after a
// restart; an expected version checked against the group's own earlier appends still
// conflicts.
TEST_F(store_test, GroupCommitOfManyNewStreamsReadsBackAsAppended) {
  event_store_options o;
  auto gate = commit_gate::install(o);
  commit_gate::opener open_on_exit{gate};
  reopen(o);
  answers first(1);
  store_->append_async({to("invite-1", expected_version::no_stream(), {make_event("Created")})},
                       first.slot(0));
  ASSERT_TRUE(gate->wait_until_holding()) << "the first commit never started";

  constexpr std::size_t kClaims = 120, kRepeated = 5, kRounds = 4;
  std::vector<std::string> learners;
  for (std::size_t i = 0; i < kClaims; ++i)
    learners.push_back("learner-" + uuid::random().to_string());
  answers claims(kClaims), repeated(kRepeated * kRounds), wrong(1);
  for (std::size_t i = 0; i < kClaims; ++i) {
    store_->append_async(
        {to("invite-1", expected_version::any(), {make_event("Claimed", std::to_string(i))}),
         to(learners[i], expected_version::no_stream(),
            {make_event("Registered", std::to_string(i)), make_event("Setup", std::to_string(i))})},
        claims.slot(i));
    // claim-0..4: one event each per round, so the group takes each from version 1 to 4.
    if (i % 30 == 0) {
      for (std::size_t c = 0; c < kRepeated; ++c) {
        std::size_t round = i / 30;
        store_->append_async({to("claim-" + std::to_string(c), expected_version::exact(round),
                                 {make_event("Played", std::to_string(round))})},
                             repeated.slot(round * kRepeated + c));
      }
    }
  }
  store_->append_async({to("claim-0", expected_version::exact(2), {make_event("Late")})},
                       wrong.slot(0));
  gate->open();
  ASSERT_TRUE(first.wait_for_all());
  ASSERT_TRUE(claims.wait_for_all());
  ASSERT_TRUE(repeated.wait_for_all());
  ASSERT_TRUE(wrong.wait_for_all());
  EXPECT_EQ(gate->commits_written(), 2) << "the appends were not one group commit";
  for (auto& r : claims.slots) ASSERT_TRUE(*r) << (*r).error().message;
  for (auto& r : repeated.slots) ASSERT_TRUE(*r) << (*r).error().message;
  const auto& refused = *wrong.slots[0];
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::wrong_expected_version);
  EXPECT_EQ(refused.error().actual_version, kRounds);

  auto check = [&] {
    for (std::size_t i = 0; i < kClaims; ++i) {
      const auto& r = **claims.slots[i];
      auto fwd = store_->read_stream(learners[i], 1, read_direction::forward, 10);
      ASSERT_TRUE(fwd);
      ASSERT_EQ(fwd->size(), 2u) << learners[i];
      EXPECT_EQ((*fwd)[0].type, "Registered");
      EXPECT_EQ((*fwd)[0].data, std::to_string(i));
      EXPECT_EQ((*fwd)[0].position, r.streams[1].first_position);
      EXPECT_EQ((*fwd)[1].type, "Setup");
      EXPECT_EQ((*fwd)[1].data, std::to_string(i));
      EXPECT_EQ((*fwd)[1].stream_version, 2u);
      auto back = store_->read_stream(learners[i], UINT64_MAX, read_direction::backward, 10);
      ASSERT_TRUE(back);
      ASSERT_EQ(back->size(), 2u);
      EXPECT_EQ(back->front().position, r.streams[1].last_position);
      auto v = store_->stream_version(learners[i]);
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, 2u);
    }
    auto invite = store_->read_stream("invite-1", 1, read_direction::forward, 1000);
    ASSERT_TRUE(invite);
    ASSERT_EQ(invite->size(), kClaims + 1);
    for (std::size_t i = 0; i < kClaims; ++i) {
      EXPECT_EQ((*invite)[i + 1].data, std::to_string(i));
      EXPECT_EQ((*invite)[i + 1].stream_version, i + 2);
      EXPECT_EQ((*invite)[i + 1].position, (**claims.slots[i]).streams[0].first_position);
    }
    for (std::size_t c = 0; c < kRepeated; ++c) {
      const std::string s = "claim-" + std::to_string(c);
      auto fwd = store_->read_stream(s, 1, read_direction::forward, 100);
      ASSERT_TRUE(fwd);
      ASSERT_EQ(fwd->size(), kRounds) << s;
      for (std::size_t k = 0; k < kRounds; ++k) {
        EXPECT_EQ((*fwd)[k].stream_version, k + 1);
        EXPECT_EQ((*fwd)[k].data, std::to_string(k));
        EXPECT_EQ((*fwd)[k].position, (**repeated.slots[k * kRepeated + c]).first_position);
      }
      auto back = store_->read_stream(s, UINT64_MAX, read_direction::backward, 1);
      ASSERT_TRUE(back);
      ASSERT_EQ(back->size(), 1u);
      EXPECT_EQ(back->front().stream_version, kRounds);
    }
    EXPECT_EQ(store_->head_position(), 1 + kClaims * 3 + kRepeated * kRounds);
  };
  check();
  reopen();
  check();
  // The streams go on from the versions the group gave them.
  must_append({to("claim-0", expected_version::exact(kRounds), {make_event("Played")}),
               to(learners[7], expected_version::exact(2), {make_event("Third")})});
  auto grown = store_->read_stream(learners[7], 1, read_direction::forward, 10);
  ASSERT_TRUE(grown);
  ASSERT_EQ(grown->size(), 3u);
  EXPECT_EQ((*grown)[2].type, "Third");
}

TEST_F(store_test, MalformedAppendsAreRejected) {
  auto nil = make_event();
  nil.event_id = uuid{};
  auto dup = make_event();
  struct bad_case {
    const char* why;
    std::vector<stream_append> append;
  };
  std::vector<bad_case> cases = {
      {"no stream", {}},
      {"no events", {to("s", expected_version::any(), {})}},
      {"empty stream name", {to("", expected_version::any(), {make_event()})}},
      {"NUL in stream", {to(std::string("a\0b", 3), expected_version::any(), {make_event()})}},
      {"nil id", {to("s", expected_version::any(), {nil})}},
      {"empty type", {to("s", expected_version::any(), {make_event("")})}},
      {"id twice", {to("s", expected_version::any(), {dup, dup})}},
      {"stream twice",
       {to("s", expected_version::any(), {make_event()}),
        to("s", expected_version::any(), {make_event()})}},
  };
  // Big appends too, where duplicates are looked up in a hash set instead of a list.
  std::vector<stream_append> many_streams, many_events = {to("s", expected_version::any(), {})};
  for (int i = 0; i < 40; ++i) {
    many_streams.push_back(to("s-" + std::to_string(i), expected_version::any(), {make_event()}));
    many_events[0].events.push_back(make_event());
  }
  many_streams.push_back(to("s-3", expected_version::any(), {make_event()}));
  many_events[0].events.push_back(many_events[0].events[5]);
  cases.push_back({"stream twice among many", many_streams});
  cases.push_back({"id twice among many", many_events});
  many_streams.pop_back();
  many_streams[30].events.push_back(many_streams[2].events[0]);
  cases.push_back({"id twice across many streams", many_streams});
  for (auto& c : cases) {
    auto r = store_->append(c.append);
    ASSERT_FALSE(r) << c.why;
    EXPECT_EQ(r.error().code, errc::invalid_argument) << c.why;
  }
  EXPECT_EQ(store_->head_position(), 0u);
}

// ---- multi-stream atomicity --------------------------------------------------

TEST_F(store_test, MultiStreamAppendStoresAllOrNothing) {
  must_append({to("invite-1", expected_version::any(), {make_event()})});
  auto failed = store_->append({to("learner-1", expected_version::no_stream(), {make_event()}),
                                to("invite-1", expected_version::exact(7), {make_event()}),
                                to("claim-1", expected_version::any(), {make_event()})});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, errc::wrong_expected_version);
  EXPECT_EQ(failed.error().stream, "invite-1");
  EXPECT_EQ(failed.error().actual_version, 1u);
  for (const char* s : {"learner-1", "claim-1"}) {
    auto v = store_->stream_version(s);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 0u) << s;
  }
  EXPECT_EQ(store_->head_position(), 1u);

  auto ok = must_append({to("learner-1", expected_version::no_stream(), {make_event()}),
                         to("invite-1", expected_version::exact(1), {make_event(), make_event()})});
  EXPECT_EQ(ok.first_position, 2u);
  EXPECT_EQ(ok.last_position, 4u);
  EXPECT_EQ(ok.streams[0].first_position, 2u);
  EXPECT_EQ(ok.streams[1].first_version, 2u);
  EXPECT_EQ(ok.streams[1].last_version, 3u);
}

TEST_F(store_test, StreamWithNoEventsActsAsACondition) {
  must_append({to("lead-form", expected_version::any(), {make_event()})});
  auto stale = store_->append({to("lead-form", expected_version::exact(0), {}),
                               to("invite-1", expected_version::any(), {make_event()})});
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, errc::wrong_expected_version);
  auto fresh = store_->append({to("lead-form", expected_version::exact(1), {}),
                               to("invite-1", expected_version::any(), {make_event()})});
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_EQ(store_->head_position(), 2u);
}

// ---- positions under concurrency ---------------------------------------------

TEST_F(store_test, PositionsAreGapFreeUnderSixteenConcurrentAppenders) {
  constexpr int kThreads = 16, kPerThread = 200;
  std::mutex mu;
  std::map<std::uint64_t, uuid> acknowledged;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto e = make_event("TestHappened", std::to_string(t) + ":" + std::to_string(i));
        // Half the threads share streams, half write their own.
        std::string stream = t % 2 ? "own-" + std::to_string(t) : "shared-" + std::to_string(i % 3);
        std::vector<stream_append> a{to(stream, expected_version::any(), {e})};
        if (i % 5 == 0)
          a.push_back(to("pair-" + std::to_string(t), expected_version::any(),
                         {make_event(), make_event()}));
        auto r = store_->append(std::move(a));
        ASSERT_TRUE(r) << r.error().message;
        std::lock_guard lk(mu);
        ASSERT_TRUE(acknowledged.emplace(r->first_position, e.event_id).second)
            << "position handed out twice";
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::uint64_t total = kThreads * kPerThread + kThreads * (kPerThread / 5) * 2;
  EXPECT_EQ(store_->head_position(), total);
  auto all = store_->read_all({}, total + 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), total);
  std::map<std::string, std::uint64_t> versions;
  for (std::size_t i = 0; i < all->size(); ++i) {
    const auto& e = (*all)[i];
    EXPECT_EQ(e.position, i + 1);
    EXPECT_EQ(e.stream_version, ++versions[e.stream]) << e.stream;
    if (i > 0) {
      EXPECT_GE(e.recorded_at, (*all)[i - 1].recorded_at);
    }
    if (auto it = acknowledged.find(e.position); it != acknowledged.end()) {
      EXPECT_EQ(it->second, e.event_id);
    }
  }
}

// ---- reads -------------------------------------------------------------------

TEST_F(store_test, ReadsOneStreamForwardAndBackward) {
  for (int i = 0; i < 5; ++i) {
    must_append({to("s-1", expected_version::any(), {make_event("T", std::to_string(i + 1))}),
                 to("s-2", expected_version::any(), {make_event()})});
  }
  auto fwd = store_->read_stream("s-1", 2, read_direction::forward, 3);
  ASSERT_TRUE(fwd);
  ASSERT_EQ(fwd->size(), 3u);
  EXPECT_EQ((*fwd)[0].stream_version, 2u);
  EXPECT_EQ((*fwd)[0].data, "2");
  EXPECT_EQ((*fwd)[2].stream_version, 4u);
  auto back = store_->read_stream("s-1", UINT64_MAX, read_direction::backward, 2);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].stream_version, 5u);
  EXPECT_EQ((*back)[1].stream_version, 4u);
  auto from3 = store_->read_stream("s-1", 3, read_direction::backward, 10);
  ASSERT_TRUE(from3);
  ASSERT_EQ(from3->size(), 3u);
  EXPECT_EQ((*from3)[2].stream_version, 1u);
  auto none = store_->read_stream("s-", 1, read_direction::forward, 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty()) << "a stream whose name prefixes others is empty";
  auto v = store_->stream_version("s-2");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 5u);
}

// The stream index's memtable places a stream's next entry from where its previous one
// went (an insert hint per stream, from its second event on). Streams appended to again
// and again among streams written once, with names that prefix each other and versions
// past one byte, read back whole and in order from the memtable and, after a reopen,
// from the table files. (A read-back check: RocksDB verifies every hint before it uses
// it, so a wrong hint would cost a search, not order; this guards the keys around it.)
TEST_F(store_test, StreamsAppendedAgainAndAgainAmongNewOnesReadBackInOrder) {
  const std::vector<std::string> busy = {"inv", "invite-a", "invite-ab", "invite-b"};
  constexpr std::uint64_t rounds = 300;
  for (std::uint64_t i = 1; i <= rounds; ++i) {
    std::vector<stream_append> appends;
    for (const auto& s : busy) {
      appends.push_back(
          to(s, expected_version::exact(i - 1), {make_event("T", std::to_string(i))}));
    }
    appends.push_back(
        to("invite-a-learner-" + std::to_string(i), expected_version::no_stream(), {make_event()}));
    must_append(std::move(appends));
  }
  auto check = [&] {
    for (const auto& s : busy) {
      auto v = store_->stream_version(s);
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, rounds) << s;
      auto fwd = store_->read_stream(s, 1, read_direction::forward, 1000);
      ASSERT_TRUE(fwd);
      ASSERT_EQ(fwd->size(), rounds) << s;
      for (std::uint64_t i = 0; i < rounds; ++i) {
        EXPECT_EQ((*fwd)[i].stream_version, i + 1) << s;
        EXPECT_EQ((*fwd)[i].stream, s);
        EXPECT_EQ((*fwd)[i].data, std::to_string(i + 1)) << s;
      }
      auto back = store_->read_stream(s, UINT64_MAX, read_direction::backward, 1000);
      ASSERT_TRUE(back);
      ASSERT_EQ(back->size(), rounds) << s;
      EXPECT_EQ(back->front().stream_version, rounds);
      EXPECT_EQ(back->back().stream_version, 1u);
    }
    auto learner = store_->read_stream("invite-a-learner-256", 1, read_direction::forward, 10);
    ASSERT_TRUE(learner);
    ASSERT_EQ(learner->size(), 1u);
    EXPECT_EQ(learner->front().stream_version, 1u);
  };
  check();
  reopen();
  check();
  auto next = must_append({to("invite-a", expected_version::exact(rounds), {make_event()})});
  EXPECT_EQ(next.streams[0].last_version, rounds + 1);
}

// A claim's shape: a busy invite stream and a new learner stream opened with two events in
// one append. The stream index takes versions 1 and 2 without a memtable insert hint and
// hints from version 3 on; streams growing one event at a time cross that line between
// appends. Every stream reads back whole in both directions, before and after a reopen.
TEST_F(store_test, StreamsOpenedWithTwoEventsAndGrowingOneByOneReadBackInOrder) {
  constexpr std::uint64_t rounds = 200;
  auto learner = [](std::uint64_t i) { return "learner-" + std::to_string(i * 7919 % 1000); };
  auto claim = [](std::uint64_t i) { return "claim-" + std::to_string(i % 10); };
  for (std::uint64_t i = 1; i <= rounds; ++i) {
    must_append({to("invite-1", expected_version::exact(i - 1), {make_event("Claimed")}),
                 to(learner(i), expected_version::no_stream(),
                    {make_event("Registered", std::to_string(i)), make_event("Setup")})});
    // claim-0..9: one event per append, so each passes versions 1, 2, 3... in turn.
    must_append({to(claim(i), expected_version::any(), {make_event("Played")})});
  }
  auto check = [&] {
    for (std::uint64_t i = 1; i <= rounds; ++i) {
      auto fwd = store_->read_stream(learner(i), 1, read_direction::forward, 10);
      ASSERT_TRUE(fwd);
      ASSERT_EQ(fwd->size(), 2u) << learner(i);
      EXPECT_EQ((*fwd)[0].type, "Registered");
      EXPECT_EQ((*fwd)[0].data, std::to_string(i));
      EXPECT_EQ((*fwd)[1].type, "Setup");
      EXPECT_EQ((*fwd)[1].stream_version, 2u);
      auto back = store_->read_stream(learner(i), UINT64_MAX, read_direction::backward, 10);
      ASSERT_TRUE(back);
      ASSERT_EQ(back->size(), 2u);
      EXPECT_EQ(back->front().stream_version, 2u);
      auto v = store_->stream_version(learner(i));
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, 2u);
    }
    for (std::uint64_t c = 0; c < 10; ++c) {
      const std::string s = "claim-" + std::to_string(c);
      auto fwd = store_->read_stream(s, 1, read_direction::forward, 1000);
      ASSERT_TRUE(fwd);
      ASSERT_EQ(fwd->size(), rounds / 10) << s;
      for (std::uint64_t k = 0; k < fwd->size(); ++k) EXPECT_EQ((*fwd)[k].stream_version, k + 1);
      auto back = store_->read_stream(s, UINT64_MAX, read_direction::backward, 1000);
      ASSERT_TRUE(back);
      ASSERT_EQ(back->size(), rounds / 10);
      EXPECT_EQ(back->front().stream_version, rounds / 10);
    }
    auto invite = store_->read_stream("invite-1", 1, read_direction::forward, 1000);
    ASSERT_TRUE(invite);
    ASSERT_EQ(invite->size(), rounds);
    EXPECT_EQ(invite->back().stream_version, rounds);
  };
  check();
  reopen();
  check();
  // A stream opened with two events appends its third and fourth on top.
  must_append({to(learner(1), expected_version::exact(2), {make_event("Third")})});
  must_append({to(learner(1), expected_version::exact(3), {make_event("Fourth")})});
  auto grown = store_->read_stream(learner(1), 1, read_direction::forward, 10);
  ASSERT_TRUE(grown);
  ASSERT_EQ(grown->size(), 4u);
  EXPECT_EQ((*grown)[2].type, "Third");
  EXPECT_EQ((*grown)[3].type, "Fourth");
  reopen();
  auto again = store_->read_stream(learner(1), UINT64_MAX, read_direction::backward, 10);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->size(), 4u);
  EXPECT_EQ(again->front().type, "Fourth");
  must_append({to(learner(1), expected_version::exact(4), {make_event("Fifth")})});
  auto v = store_->stream_version(learner(1));
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 5u);
}

// The writer encodes records and keys straight from the appended event; the bytes are
// those of the codec every reader and tool shares.
TEST(record_format, WritersEncodingMatchesTheRecordCodec) {
  new_event e = make_event("InviteClaimed", std::string(300, 'd') + "\x01\xff");
  e.schema_version = 3;
  e.causation_id = "cause";
  for (std::uint64_t position :
       std::initializer_list<std::uint64_t>{1, 255, 256, 1ull << 40, UINT64_MAX}) {
    recorded_event rec;
    rec.event_id = e.event_id;
    rec.type = e.type;
    rec.schema_version = e.schema_version;
    rec.stream = "invite-" + std::to_string(position);
    rec.stream_version = position / 3 + 1;
    rec.position = position;
    rec.recorded_at = from_unix_micros(static_cast<std::int64_t>(position % 1'000'000'000));
    rec.org_id = e.org_id;
    rec.correlation_id = e.correlation_id;
    rec.causation_id = e.causation_id;
    rec.actor = e.actor;
    rec.data = e.data;
    std::string expected, got = "stale bytes";
    format::encode_record(rec, expected);
    format::encode_new_record(e, rec.stream, rec.stream_version, position, rec.recorded_at, got);
    EXPECT_EQ(got, expected) << position;
    recorded_event back;
    EXPECT_EQ(format::decode_record(got, back), "");
    EXPECT_EQ(back.data, e.data);

    std::string key = "stale";
    format::log_key_into(position, key);
    EXPECT_EQ(key, format::log_key(position));
    format::stream_index_key_into(rec.stream, rec.stream_version, key);
    EXPECT_EQ(key, format::stream_index_key(rec.stream, rec.stream_version));
  }
}

// The checksum guards stored records; the store's tail cache decodes the bytes the writer
// just encoded without it, and every other field is still checked.
TEST(record_format, DecodesWithoutTheChecksumOnlyWhenAsked) {
  recorded_event rec;
  rec.event_id = uuid::random();
  rec.type = "InviteClaimed";
  rec.stream = "invite-1";
  rec.position = 7;
  rec.data = "{}";
  std::string bytes;
  format::encode_record(rec, bytes);
  bytes[1] = static_cast<char>(bytes[1] ^ 0x5a);  // the stored checksum
  recorded_event back;
  EXPECT_EQ(format::decode_record(bytes, back), "record checksum mismatch");
  EXPECT_EQ(format::decode_record(bytes, back, /*check_crc=*/false), "");
  EXPECT_EQ(back.position, 7u);
  EXPECT_EQ(back.stream, "invite-1");
  bytes.push_back('x');
  EXPECT_EQ(format::decode_record(bytes, back, /*check_crc=*/false), "record has trailing bytes");
}

TEST_F(store_test, StoresEveryFieldOfTheEnvelope) {
  auto e = make_event("InviteClaimed", R"({"claim":"c-1"})");
  e.schema_version = 3;
  e.org_id = "org-7";
  e.correlation_id = "corr-9";
  e.causation_id = "cause-8";
  e.actor = "api-key:k1";
  auto r = must_append({to("invite-9", expected_version::any(), {e})});
  auto got = store_->read_all({}, 10);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  const auto& s = (*got)[0];
  EXPECT_EQ(s.event_id, e.event_id);
  EXPECT_EQ(s.type, "InviteClaimed");
  EXPECT_EQ(s.schema_version, 3u);
  EXPECT_EQ(s.stream, "invite-9");
  EXPECT_EQ(s.stream_version, 1u);
  EXPECT_EQ(s.position, 1u);
  EXPECT_EQ(s.recorded_at, clock_.now());
  EXPECT_EQ(s.recorded_at, r.recorded_at);
  EXPECT_EQ(s.org_id, "org-7");
  EXPECT_EQ(s.correlation_id, "corr-9");
  EXPECT_EQ(s.causation_id, "cause-8");
  EXPECT_EQ(s.actor, "api-key:k1");
  EXPECT_EQ(s.data, R"({"claim":"c-1"})");
}

TEST_F(store_test, ReadsTheGlobalLogFilteredByTypeAndStreamPrefix) {
  for (int i = 0; i < 10; ++i) {
    must_append({to("invite-" + std::to_string(i % 3), expected_version::any(),
                    {make_event(i % 2 ? "InviteClaimed" : "ClaimRejected")}),
                 to("learner-" + std::to_string(i), expected_version::any(),
                    {make_event("LearnerRegistered")})});
  }
  auto claimed = store_->read_all({.types = {"InviteClaimed"}}, 100);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->size(), 5u);
  auto invite1 = store_->read_all({.stream_prefix = "invite-1"}, 100);
  ASSERT_TRUE(invite1);
  for (auto& e : *invite1) EXPECT_EQ(e.stream, "invite-1");
  EXPECT_EQ(invite1->size(), 3u);
  auto both = store_->read_all(
      {.types = {"InviteClaimed", "LearnerRegistered"}, .stream_prefix = "learner-"}, 100);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->size(), 10u);
  auto window = store_->read_all({.from_position = 5, .to_position = 8}, 100);
  ASSERT_TRUE(window);
  ASSERT_EQ(window->size(), 4u);
  EXPECT_EQ(window->front().position, 5u);
  EXPECT_EQ(window->back().position, 8u);
  auto limited = store_->read_all({.from_position = 0}, 3);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->size(), 3u);
}

// A one-pass scan (a rebuild's: its blocks skip the block cache) reads what any other
// scan reads, from table files as from the memtable, and leaves later scans unchanged.
TEST_F(store_test, OnePassScanReadsWhatAnyScanReads) {
  for (int i = 0; i < 40; ++i) {
    must_append({to("invite-" + std::to_string(i % 3), expected_version::any(),
                    {make_event(i % 2 ? "InviteClaimed" : "ClaimRejected", std::to_string(i))})});
  }
  reopen();  // the first 40 in table files, the next 10 in the memtable
  for (int i = 40; i < 50; ++i) {
    must_append({to("learner-" + std::to_string(i), expected_version::any(),
                    {make_event("LearnerRegistered", std::to_string(i))})});
  }
  auto same = [&](eventstore::log_filter f) {
    auto cached = store_->read_all(f, 1000);
    f.one_pass = true;
    auto once = store_->read_all(f, 1000);
    ASSERT_TRUE(cached);
    ASSERT_TRUE(once);
    ASSERT_EQ(once->size(), cached->size());
    for (std::size_t i = 0; i < once->size(); ++i) {
      EXPECT_EQ((*once)[i].position, (*cached)[i].position);
      EXPECT_EQ((*once)[i].stream, (*cached)[i].stream);
      EXPECT_EQ((*once)[i].data, (*cached)[i].data);
    }
  };
  same({});
  same({.from_position = 35, .to_position = 45});
  same({.types = {"InviteClaimed"}});
  same({.stream_prefix = "learner-"});
  auto all = store_->read_all({.one_pass = true}, 1000);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 50u);
  EXPECT_EQ(all->front().data, "0");
  EXPECT_EQ(all->back().data, "49");
}

// Scans of the newest events read them from the store's memory (tail_cache.h), those of
// events committed before the store was opened, or let go of, from RocksDB: each hands
// over the same events, filtered alike, as a one-pass scan (which always reads RocksDB).
TEST_F(store_test, ScansOfTheNewestEventsReadWhatTheLogHolds) {
  for (int i = 0; i < 20; ++i) {
    must_append({to("invite-" + std::to_string(i % 3), expected_version::any(),
                    {make_event(i % 2 ? "InviteClaimed" : "ClaimRejected", std::to_string(i))})});
  }
  reopen();  // positions 1-20 are not in memory, the ones appended from now on are
  for (int i = 20; i < 60; ++i) {
    clock_.advance(std::chrono::seconds(1));
    must_append({to("learner-" + std::to_string(i), expected_version::any(),
                    {make_event("LearnerRegistered", std::to_string(i)),
                     make_event(i % 2 ? "InviteClaimed" : "LeadCaptured", std::to_string(i))})});
  }
  // Three events of over 3 MiB: the memory lets the oldest commits go.
  for (int i = 0; i < 3; ++i) {
    must_append({to("big-" + std::to_string(i), expected_version::any(),
                    {make_event("BigHappened", std::string(3u << 20, char('a' + i)))})});
  }
  for (int i = 0; i < 5; ++i) {
    must_append({to("learner-x", expected_version::any(), {make_event("LearnerRegistered")})});
  }
  auto same = [&](eventstore::log_filter f, std::size_t max = 1000) {
    auto scanned = store_->read_all(f, max);
    f.one_pass = true;
    auto logged = store_->read_all(f, max);
    ASSERT_TRUE(scanned) << scanned.error().message;
    ASSERT_TRUE(logged);
    ASSERT_EQ(scanned->size(), logged->size());
    for (std::size_t i = 0; i < scanned->size(); ++i) {
      const auto& a = (*scanned)[i];
      const auto& b = (*logged)[i];
      EXPECT_EQ(a.position, b.position);
      EXPECT_EQ(a.stream, b.stream);
      EXPECT_EQ(a.stream_version, b.stream_version);
      EXPECT_EQ(a.event_id, b.event_id);
      EXPECT_EQ(a.type, b.type);
      EXPECT_EQ(a.recorded_at, b.recorded_at);
      EXPECT_EQ(a.data, b.data);
    }
  };
  const std::uint64_t head = store_->head_position();
  ASSERT_EQ(head, 20u + 80u + 3u + 5u);
  same({});
  same({.from_position = 15, .to_position = 30});
  same({.from_position = 21});
  same({.from_position = 50, .to_position = 90});
  same({.from_position = 101});
  same({.from_position = 103, .to_position = head});
  same({.from_position = head});
  same({.from_position = head + 1});
  same({.from_position = 30, .types = {"InviteClaimed"}});
  same({.from_position = 30, .stream_prefix = "learner-x"});
  same({.from_position = 25,
        .until = from_unix_micros(1'790'000'000'000'000) + std::chrono::seconds(30)});
  same({.from_position = 40}, 7);
  const auto scanned = store_->read_all({.from_position = 104}, 10);
  ASSERT_TRUE(scanned);
  ASSERT_EQ(scanned->size(), 5u);
  EXPECT_EQ(scanned->front().stream, "learner-x");
}

// Delegates everything but scan_taking, scan_records and decode_record, which it leaves
// to event_store's defaults.
using forwarding_store = passage::testing::forwarding_store;

// scan_taking hands over the store's own event: a caller that swaps each one with an
// event of its own (stale fields, other lengths) keeps exactly what scan() shows, and the
// store's next event is written over the buffers it got back. The default implementation
// (a store that does not override it) hands copies, with the same result.
TEST_F(store_test, ScanTakingHandsOverEachEventWhole) {
  for (int i = 0; i < 40; ++i) {
    auto e = make_event(i % 3 == 0 ? "InviteClaimed" : "TrackPlayed",
                        std::string(static_cast<std::size_t>(1 + (i * 37) % 300), 'a' + i % 26));
    e.causation_id = i % 2 ? "cause-" + std::to_string(i) : "";
    must_append({to("stream-" + std::to_string(i % 7), expected_version::any(), {e})});
  }
  for (eventstore::log_filter f : {eventstore::log_filter{.one_pass = true},
                                   eventstore::log_filter{.from_position = 5, .to_position = 30},
                                   eventstore::log_filter{.types = {"InviteClaimed"}}}) {
    auto expected = store_->read_all(f, 1000);
    ASSERT_TRUE(expected);
    forwarding_store copying(*store_);
    for (event_store* s :
         {static_cast<event_store*>(store_.get()), static_cast<event_store*>(&copying)}) {
      std::vector<recorded_event> kept;
      recorded_event stale;  // what the caller swaps in: fields the next event overwrites
      stale.type = "Stale";
      stale.stream = std::string(500, 's');
      stale.data = std::string(1000, 'd');
      stale.causation_id = "stale-cause";
      stale.position = 999;
      auto r = s->scan_taking(f, [&](recorded_event& e) {
        std::swap(stale, e);
        kept.push_back(stale);
        return true;
      });
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_EQ(kept.size(), expected->size());
      for (std::size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(kept[i], (*expected)[i]) << i;
      // The position scan() reports, not the one of the event swapped in.
      auto scanned = store_->scan(f, [](const recorded_event&) { return true; });
      ASSERT_TRUE(scanned);
      EXPECT_EQ(*r, *scanned);
    }
  }
  // Stopping early: the position of the last event examined, as scan(), also when the
  // visitor swapped an event of its own (an earlier one) into the store's.
  forwarding_store copying(*store_);
  for (event_store* s :
       {static_cast<event_store*>(store_.get()), static_cast<event_store*>(&copying)}) {
    for (bool swapping : {false, true}) {
      std::size_t seen = 0;
      recorded_event mine;
      mine.position = 999;
      auto stopped = s->scan_taking({}, [&](recorded_event& e) {
        if (swapping) std::swap(mine, e);
        return ++seen < 3;
      });
      ASSERT_TRUE(stopped);
      EXPECT_EQ(*stopped, 3u) << (swapping ? "swapping" : "");
      if (swapping) {
        EXPECT_EQ(mine.position, 3u);
      }
    }
  }
}

// The events scan_records() hands over as bytes, each decoded (decode_record) into the
// same event (stale fields, other lengths: its buffers reused), or the first failure.
store_result<std::vector<recorded_event>> records_of(event_store& s, const log_filter& f,
                                                     std::uint64_t& last) {
  std::vector<recorded_event> out;
  recorded_event e;  // what decoding writes over
  e.type = "Stale";
  e.stream = std::string(500, 's');
  e.data = std::string(1000, 'd');
  e.causation_id = "stale-cause";
  e.position = 999;
  std::optional<store_error> failed;
  auto r = s.scan_records(f, [&](std::uint64_t position, std::string_view bytes) {
    auto d = s.decode_record(position, bytes, e);
    if (!d) {
      failed = d.error();
      return false;
    }
    out.push_back(e);
    return true;
  });
  if (!r) return r.error();
  if (failed) return *failed;
  last = *r;
  return out;
}

// scan_records hands over each record's bytes, which decode_record turns into exactly
// what scan() shows, from table files as from the memtable, for a range of positions or a
// time bound; and it returns the position scan() returns. The defaults (a store that
// overrides neither) do the same.
TEST_F(store_test, ScanRecordsHandsOverWhatDecodesIntoScansEvents) {
  const auto t0 = clock_.now();
  for (int i = 0; i < 40; ++i) {
    if (i == 20) reopen();  // the first 20 in table files, the rest in the memtable
    clock_.set(t0 + std::chrono::minutes(i / 4));
    auto e = make_event(i % 3 == 0 ? "InviteClaimed" : "TrackPlayed",
                        std::string(static_cast<std::size_t>(1 + (i * 37) % 300), 'a' + i % 26));
    e.causation_id = i % 2 ? "cause-" + std::to_string(i) : "";
    must_append({to("stream-" + std::to_string(i % 7), expected_version::any(), {e})});
  }
  forwarding_store defaults(*store_);
  for (log_filter f :
       {log_filter{.one_pass = true}, log_filter{},
        log_filter{.from_position = 5, .to_position = 30},
        log_filter{.from_position = 38, .to_position = 100},
        log_filter{.until = t0 + std::chrono::minutes(6)}, log_filter{.from_position = 41}}) {
    auto expected = store_->read_all(f, 1000);
    ASSERT_TRUE(expected);
    auto scanned = store_->scan(f, [](const recorded_event&) { return true; });
    ASSERT_TRUE(scanned);
    for (event_store* s :
         {static_cast<event_store*>(store_.get()), static_cast<event_store*>(&defaults)}) {
      std::uint64_t last = 0;
      auto got = records_of(*s, f, last);
      ASSERT_TRUE(got) << got.error().message;
      ASSERT_EQ(got->size(), expected->size());
      for (std::size_t i = 0; i < got->size(); ++i) EXPECT_EQ((*got)[i], (*expected)[i]) << i;
      EXPECT_EQ(last, *scanned);
    }
  }
  EXPECT_EQ(store_->read_all({.until = t0 + std::chrono::minutes(6)}, 100)->size(), 24u);
  for (event_store* s :
       {static_cast<event_store*>(store_.get()), static_cast<event_store*>(&defaults)}) {
    // Stopping early: the position of the last record handed over, as scan().
    std::size_t seen = 0;
    auto stopped = s->scan_records({}, [&](std::uint64_t, std::string_view) { return ++seen < 3; });
    ASSERT_TRUE(stopped);
    EXPECT_EQ(*stopped, 3u);
    // Filters that need the decoded event are scan()'s.
    for (log_filter f : {log_filter{.types = {"InviteClaimed"}}, log_filter{.stream_prefix = "s"},
                         log_filter{.since = t0}}) {
      auto refused = s->scan_records(f, [](std::uint64_t, std::string_view) { return true; });
      ASSERT_FALSE(refused);
      EXPECT_EQ(refused.error().code, errc::invalid_argument);
    }
  }
}

// decode_record checks what scan() checks: the record's checksum and that it is the one
// stored at the position it was read at, and names the position in the error.
TEST_F(store_test, DecodeRecordRefusesDamagedOrMisplacedRecords) {
  must_append({to("s", expected_version::any(), {make_event("T", "hello")})});
  must_append({to("s", expected_version::any(), {make_event("T", "world")})});
  forwarding_store defaults(*store_);
  for (event_store* s :
       {static_cast<event_store*>(store_.get()), static_cast<event_store*>(&defaults)}) {
    std::vector<std::pair<std::uint64_t, std::string>> records;
    ASSERT_TRUE(s->scan_records({}, [&](std::uint64_t position, std::string_view bytes) {
      records.emplace_back(position, std::string(bytes));
      return true;
    }));
    ASSERT_EQ(records.size(), 2u);
    recorded_event e;
    ASSERT_TRUE(s->decode_record(2, records[1].second, e));
    EXPECT_EQ(e.data, "world");

    auto misplaced = s->decode_record(1, records[1].second, e);
    ASSERT_FALSE(misplaced);
    EXPECT_EQ(misplaced.error().code, errc::corruption);
    EXPECT_EQ(misplaced.error().position, 1u);
    EXPECT_NE(misplaced.error().message.find("claims position 2"), std::string::npos);

    std::string damaged = records[1].second;
    damaged.back() ^= 0x20;
    auto flipped = s->decode_record(2, damaged, e);
    ASSERT_FALSE(flipped);
    EXPECT_EQ(flipped.error().code, errc::corruption);
    EXPECT_EQ(flipped.error().position, 2u);
    EXPECT_NE(flipped.error().message.find("checksum mismatch"), std::string::npos);

    auto cut = s->decode_record(2, std::string_view(records[1].second).substr(0, 20), e);
    ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error().code, errc::corruption);
  }
}

TEST_F(store_test, ReadsByTimeRangeAndKeepsRecordedAtMonotonic) {
  const auto t0 = clock_.now();
  for (int minute = 0; minute < 10; ++minute) {
    clock_.set(t0 + std::chrono::minutes(minute));
    must_append({to("s", expected_version::any(), {make_event("T", std::to_string(minute))})});
  }
  auto mid = store_->read_all(
      {.since = t0 + std::chrono::minutes(3), .until = t0 + std::chrono::minutes(6)}, 100);
  ASSERT_TRUE(mid);
  ASSERT_EQ(mid->size(), 3u);
  EXPECT_EQ(mid->front().data, "3");
  EXPECT_EQ(mid->back().data, "5");
  auto between = store_->read_all({.since = t0 + std::chrono::seconds(90)}, 100);
  ASSERT_TRUE(between);
  EXPECT_EQ(between->front().data, "2");
  auto future = store_->read_all({.since = t0 + std::chrono::hours(1)}, 100);
  ASSERT_TRUE(future);
  EXPECT_TRUE(future->empty());

  // A clock that steps back never makes recorded_at go back.
  clock_.set(t0);
  must_append({to("s", expected_version::any(), {make_event()})});
  auto last = store_->read_stream("s", UINT64_MAX, read_direction::backward, 1);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->front().recorded_at, t0 + std::chrono::minutes(9));
}

TEST_F(store_test, StateSurvivesReopen) {
  for (int i = 0; i < 3; ++i) must_append({to("s", expected_version::any(), {make_event()})});
  reopen();
  EXPECT_EQ(store_->head_position(), 3u);
  auto r = must_append({to("s", expected_version::exact(3), {make_event()})});
  EXPECT_EQ(r.first_position, 4u);
  EXPECT_EQ(r.streams[0].last_version, 4u);
}

// A clean stop leaves the log in table files: nothing is left for the next open (or a
// secondary instance of `passage replay`) to replay from the write-ahead log.
TEST_F(store_test, CleanCloseLeavesNoWriteAheadLogToReplay) {
  for (int i = 0; i < 50; ++i) must_append({to("s", expected_version::any(), {make_event()})});
  auto wal_bytes = [&] {
    std::uintmax_t total = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir_.sub("events"))) {
      if (f.path().extension() == ".log") total += f.file_size();
    }
    return total;
  };
  ASSERT_GT(wal_bytes(), 0u);
  store_->close();
  EXPECT_EQ(wal_bytes(), 0u);
  reopen();
  EXPECT_EQ(store_->head_position(), 50u);
}

TEST_F(store_test, UpcastersRewriteOldShapesOnEveryRead) {
  auto old = make_event("InviteCreated", "v1");
  old.schema_version = 1;
  must_append({to("invite-1", expected_version::any(), {old})});
  auto reg = std::make_shared<upcaster_registry>();
  reg->add("InviteCreated", 1, [](recorded_event& e) { e.data += "->v2"; });
  reg->add("InviteCreated", 2, [](recorded_event& e) { e.data += "->v3"; });
  event_store_options o;
  o.upcasters = reg;
  reopen(o);
  auto all = store_->read_all({}, 10);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->front().data, "v1->v2->v3");
  EXPECT_EQ(all->front().schema_version, 3u);
  auto stream = store_->read_stream("invite-1", 1, read_direction::forward, 10);
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->front().data, "v1->v2->v3");
  // A record scanned as bytes, once decoded, too.
  recorded_event decoded;
  ASSERT_TRUE(store_->scan_records({}, [&](std::uint64_t position, std::string_view bytes) {
    EXPECT_TRUE(store_->decode_record(position, bytes, decoded));
    return true;
  }));
  EXPECT_EQ(decoded.data, "v1->v2->v3");
  EXPECT_EQ(decoded.schema_version, 3u);
}

TEST_F(store_test, BeforeCommitHookRunsPerCommitAndCanRefuseIt) {
  std::atomic<int> calls{0};
  std::atomic<bool> refuse{false};
  event_store_options o;
  o.before_commit = [&]() -> std::optional<std::string> {
    ++calls;
    if (refuse) return std::string("key store unavailable");
    return std::nullopt;
  };
  reopen(o);
  must_append({to("s", expected_version::any(), {make_event()})});
  EXPECT_EQ(calls, 1);
  refuse = true;
  auto r = store_->append({to("s", expected_version::any(), {make_event()})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::io_error);
  EXPECT_NE(r.error().message.find("key store unavailable"), std::string::npos);
  EXPECT_EQ(store_->head_position(), 1u) << "a refused commit stores nothing";
  refuse = false;
  auto third = make_event("Third", R"({"n":3})");
  auto again = must_append({to("s", expected_version::exact(1), {third})});
  EXPECT_EQ(again.first_position, 2u) << "positions stay gap-free after a refused commit";
  // Live scans read the newest commits from memory (the tail cache): the refused commit's
  // record must not be among them, nor shift the next commit's.
  auto tail = store_->read_all({.from_position = 2}, 10);
  ASSERT_TRUE(tail) << tail.error().message;
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].position, 2u);
  EXPECT_EQ((*tail)[0].event_id, third.event_id);
  EXPECT_EQ((*tail)[0].type, "Third");
  EXPECT_EQ((*tail)[0].data, R"({"n":3})");
}

TEST_F(store_test, AfterSyncHookTimesEachFsyncBeforeItsAppendsAreAnswered) {
  std::mutex mu;
  std::vector<std::chrono::nanoseconds> took;
  auto seen = [&] {
    std::lock_guard lk(mu);
    return took;
  };
  std::atomic<bool> fail_sync{false};
  event_store_options o;
  o.after_sync = [&](std::chrono::nanoseconds d) {
    std::lock_guard lk(mu);
    took.push_back(d);
  };
  o.before_sync = [&]() -> std::optional<std::string> {
    if (fail_sync) return std::string("disk gone");
    return std::nullopt;
  };
  reopen(o);
  for (std::size_t i = 1; i <= 3; ++i) {
    must_append({to("s", expected_version::any(), {make_event()})});
    // Answered only after its fsync, which was timed first.
    EXPECT_EQ(seen().size(), i);
  }
  for (auto d : seen()) EXPECT_GT(d.count(), 0);

  fail_sync = true;  // a failed sync is not timed
  EXPECT_FALSE(store_->append({to("s", expected_version::any(), {make_event()})}));
  EXPECT_EQ(seen().size(), 3u);

  took.clear();
  fail_sync = false;
  o.sync = false;  // nothing synced, nothing timed
  reopen(o);
  must_append({to("t", expected_version::any(), {make_event()})});
  EXPECT_TRUE(seen().empty());
}

// Holds the store's sync thread in before_sync until released (also when the test ends
// early, so the store can close), and counts commits written.
struct sync_gate {
  std::mutex mu;
  std::condition_variable cv;
  bool holding = false, release = false;
  int commits = 0;
  std::optional<std::string> sync_error;  // what the held sync then reports

  void install(event_store_options& o) {
    o.before_commit = [this]() -> std::optional<std::string> {
      std::lock_guard lk(mu);
      ++commits;
      cv.notify_all();
      return std::nullopt;
    };
    o.before_sync = [this]() -> std::optional<std::string> {
      std::unique_lock lk(mu);
      if (release) return std::nullopt;  // later syncs pass
      holding = true;
      cv.notify_all();
      cv.wait(lk, [&] { return release; });
      return sync_error;
    };
  }
  template <typename F>
  bool wait_for(F done) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(20), done);
  }
  void open() {
    std::lock_guard lk(mu);
    release = true;
    cv.notify_all();
  }
  ~sync_gate() { open(); }
};

// Answers of async appends, by name, in the order they came.
struct answer_log {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> answers;  // name, first position or error
  append_callback on(std::string name) {
    return [this, name](store_result<append_result> r) {
      std::lock_guard lk(mu);
      answers.emplace_back(name, r ? std::to_string(r->first_position) : "error");
    };
  }
  std::size_t size() {
    std::lock_guard lk(mu);
    return answers.size();
  }
  bool wait_for(std::size_t n) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (size() < n) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }
};

// Pipelined group commit: while one commit's fsync is held, the writer prepares and
// writes the next ones (a third commit's hook running proves the second was written),
// yet none is acknowledged, readable or counted in the head before the sync that covers
// it; once released, all are answered in position order with gap-free positions, each
// expecting the previous one's version.
TEST_F(store_test, NextCommitIsWrittenWhileOneIsSyncedAndAnsweredOnlyAfterItsSync) {
  sync_gate gate;
  event_store_options o;
  gate.install(o);
  reopen(o);
  answer_log log;

  store_->append_async({to("s", expected_version::no_stream(), {make_event()})}, log.on("first"));
  ASSERT_TRUE(gate.wait_for([&] { return gate.holding; })) << "the first sync never started";
  store_->append_async({to("s", expected_version::exact(1), {make_event(), make_event()})},
                       log.on("second"));
  ASSERT_TRUE(gate.wait_for([&] { return gate.commits == 2; }))
      << "the second commit was not prepared while the first one's sync was held";
  store_->append_async({to("s", expected_version::exact(3), {make_event()})}, log.on("third"));
  ASSERT_TRUE(gate.wait_for([&] { return gate.commits == 3; }))
      << "the third commit was not prepared while the first one's sync was held";

  EXPECT_EQ(log.size(), 0u) << "acknowledged before its fsync";
  EXPECT_EQ(store_->head_position(), 0u);
  auto seen = store_->read_all({}, 10);
  ASSERT_TRUE(seen);
  EXPECT_TRUE(seen->empty()) << "a scan saw events not yet durable";
  auto stream = store_->read_stream("s", 1, read_direction::forward, 10);
  ASSERT_TRUE(stream);
  EXPECT_TRUE(stream->empty()) << "a stream read saw events not yet durable";
  auto backward = store_->read_stream("s", UINT64_MAX, read_direction::backward, 10);
  ASSERT_TRUE(backward);
  EXPECT_TRUE(backward->empty());
  auto version = store_->stream_version("s");
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, 0u);

  gate.open();
  EXPECT_EQ(store_->wait_for_head(4, std::chrono::steady_clock::now() + 20s), 4u);
  ASSERT_TRUE(log.wait_for(3));
  {
    std::lock_guard lk(log.mu);
    EXPECT_EQ(log.answers, (std::vector<std::pair<std::string, std::string>>{
                               {"first", "1"}, {"second", "2"}, {"third", "4"}}));
  }
  auto all = store_->read_all({}, 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 4u);
  for (std::size_t i = 0; i < all->size(); ++i) {
    EXPECT_EQ((*all)[i].position, i + 1);
    EXPECT_EQ((*all)[i].stream_version, i + 1);
  }
  version = store_->stream_version("s");
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, 4u);
}

// A failed fsync fails the commit it covered and every later one — also an append that
// wrote nothing because it found its event in the unsynced commit (it must not be told
// "already stored"). None of it becomes readable or moves the head. (Whether a commit
// whose fsync failed is on disk is unknown: its callers get io_error, not "not stored".)
TEST_F(store_test, AFailedSyncFailsItsCommitsAndEveryAnswerRestingOnThem) {
  sync_gate gate;
  gate.sync_error = "disk gone";
  event_store_options o;
  gate.install(o);
  reopen(o);
  answer_log log;

  const auto event = make_event();
  store_->append_async({to("s", expected_version::any(), {event})}, log.on("first"));
  ASSERT_TRUE(gate.wait_for([&] { return gate.holding; })) << "the first sync never started";
  store_->append_async({to("s", expected_version::any(), {event})}, log.on("repeat"));
  // Gives the writer time to prepare the repeat on its own while the sync is held (the
  // case in question); should it come later, it fails at once and the test still holds.
  std::this_thread::sleep_for(50ms);
  gate.open();
  ASSERT_TRUE(log.wait_for(2));
  {
    std::lock_guard lk(log.mu);
    EXPECT_EQ(log.answers, (std::vector<std::pair<std::string, std::string>>{{"first", "error"},
                                                                             {"repeat", "error"}}));
  }
  EXPECT_EQ(store_->head_position(), 0u);
  auto seen = store_->read_all({}, 10);
  ASSERT_TRUE(seen);
  EXPECT_TRUE(seen->empty());
  auto later = store_->append({to("t", expected_version::any(), {make_event()})});
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().code, errc::io_error);
}

TEST_F(store_test, AppendAfterCloseFailsCleanly) {
  store_->close();
  auto r = store_->append({to("s", expected_version::any(), {make_event()})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::closed);
}

// ---- read-only (secondary) open ----------------------------------------------

TEST_F(store_test, ReadOnlyOpenFollowsTheWriter) {
  must_append({to("s", expected_version::any(), {make_event()})});
  auto ro = open_event_store({.path = dir_.sub("events"), .read_only = true});
  ASSERT_TRUE(ro) << ro.error().message;
  auto& reader = **ro;
  EXPECT_EQ(reader.head_position(), 1u);
  must_append({to("s", expected_version::any(), {make_event(), make_event()})});
  auto head = reader.refresh();
  ASSERT_TRUE(head) << head.error().message;
  EXPECT_EQ(*head, 3u);
  auto all = reader.read_all({}, 10);
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->size(), 3u);
  auto w = reader.append({to("s", expected_version::any(), {make_event()})});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, errc::read_only);
}

// ---- format version and corruption --------------------------------------------

// Opens the store's RocksDB directly, as a tool poking at the folder would.
class raw_db {
 public:
  explicit raw_db(const std::string& path) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n :
         {rocksdb::kDefaultColumnFamilyName.c_str(), format::kLogFamily, format::kStreamIndexFamily,
          format::kEventIdsFamily, format::kTimeIndexFamily}) {
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* db = nullptr;
    auto s = rocksdb::DB::Open(rocksdb::DBOptions(), path, cfs, &handles_, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~raw_db() {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  }
  void put(int cf, const std::string& k, const std::string& v) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), handles_[cf], k, v).ok());
  }
  void del(int cf, const std::string& k) {
    ASSERT_TRUE(db_->Delete(rocksdb::WriteOptions(), handles_[cf], k).ok());
  }
  std::string get(int cf, const std::string& k) {
    std::string v;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), handles_[cf], k, &v).ok());
    return v;
  }

 private:
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

TEST_F(store_test, RefusesAStoreWrittenByANewerFormat) {
  must_append({to("s", expected_version::any(), {make_event()})});
  store_.reset();
  {
    raw_db raw(dir_.sub("events"));
    raw.put(0, std::string(format::kFormatVersionKey), "2");
  }
  auto s = open_event_store({.path = dir_.sub("events")});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::unsupported_format);
  EXPECT_NE(s.error().message.find("format version 2"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("upgrade passage"), std::string::npos) << s.error().message;
}

TEST_F(store_test, RefusesAFolderThatIsNotAnEventStore) {
  store_.reset();
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, dir_.sub("other"), &db).ok());
  delete db;
  auto s = open_event_store({.path = dir_.sub("other"), .read_only = true});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::unsupported_format) << s.error().message;
}

struct damage_case {
  const char* name;
  std::function<void(std::string&)> damage;
  const char* expect;
};

class corruption_test : public store_test, public ::testing::WithParamInterface<damage_case> {};

TEST_P(corruption_test, DamagedRecordIsReportedWithItsPosition) {
  for (int i = 0; i < 5; ++i) {
    must_append(
        {to("s", expected_version::any(), {make_event("T", "payload-" + std::to_string(i))})});
  }
  store_.reset();
  {
    raw_db raw(dir_.sub("events"));
    auto v = raw.get(1, format::log_key(3));
    GetParam().damage(v);
    raw.put(1, format::log_key(3), v);
  }
  reopen();
  std::vector<std::uint64_t> seen;
  auto r = store_->scan({}, [&](const recorded_event& e) {
    seen.push_back(e.position);
    return true;
  });
  ASSERT_FALSE(r) << "a damaged record was skipped silently";
  EXPECT_EQ(r.error().code, errc::corruption);
  EXPECT_EQ(r.error().position, 3u);
  EXPECT_NE(r.error().message.find("position 3"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(GetParam().expect), std::string::npos) << r.error().message;
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1, 2}));
  // A rebuild's reader hands the damaged record over as bytes: decoding it fails as scan().
  std::vector<std::uint64_t> decoded;
  std::optional<store_error> failed;
  recorded_event e;
  auto records = store_->scan_records({}, [&](std::uint64_t position, std::string_view bytes) {
    auto d = store_->decode_record(position, bytes, e);
    if (!d) {
      failed = d.error();
      return false;
    }
    decoded.push_back(e.position);
    return true;
  });
  ASSERT_TRUE(records);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->code, errc::corruption);
  EXPECT_EQ(failed->position, 3u);
  EXPECT_EQ(failed->message, r.error().message);
  EXPECT_EQ(decoded, seen);
  auto stream = store_->read_stream("s", 1, read_direction::forward, 10);
  ASSERT_FALSE(stream);
  EXPECT_EQ(stream.error().position, 3u);
}

INSTANTIATE_TEST_SUITE_P(
    Damages, corruption_test,
    ::testing::Values(damage_case{"flipped_byte", [](std::string& v) { v[v.size() - 2] ^= 0x20; },
                                  "checksum mismatch"},
                      damage_case{"truncated", [](std::string& v) { v.resize(3); }, "truncated"},
                      damage_case{"unknown_record_version", [](std::string& v) { v[0] = 9; },
                                  "unknown record version"},
                      damage_case{"moved_record",
                                  [](std::string& v) {
                                    // A valid record of another position written under key 3.
                                    recorded_event e;
                                    ASSERT_EQ(format::decode_record(v, e), "");
                                    e.position = 4;
                                    format::encode_record(e, v);
                                  },
                                  "claims position 4"}),
    [](const auto& info) { return std::string(info.param.name); });

// Positions are dense from 1: a record missing from the log (a damaged or tampered folder)
// fails scan() and scan_records() at the missing position, whether it is the first one
// asked for or one after others, and is never skipped silently. A damaged record right
// after a gap is reported as damaged by both.
TEST_F(store_test, AMissingRecordFailsTheScanAtItsPosition) {
  for (int i = 0; i < 8; ++i) {
    must_append(
        {to("s", expected_version::any(), {make_event("T", "payload-" + std::to_string(i))})});
  }
  store_.reset();
  {
    raw_db raw(dir_.sub("events"));
    for (std::uint64_t p : {1, 3, 6}) raw.del(1, format::log_key(p));
    auto v = raw.get(1, format::log_key(7));
    v[v.size() - 2] ^= 0x20;
    raw.put(1, format::log_key(7), v);
  }
  reopen();
  // scan() and scan_records() over [from, to]: the error (if any) and the positions seen,
  // which both must agree on.
  auto scanned = [&](std::uint64_t from, std::uint64_t to) {
    log_filter f;
    f.from_position = from;
    f.to_position = to;
    std::vector<std::uint64_t> seen;
    auto r = store_->scan(f, [&](const recorded_event& e) {
      seen.push_back(e.position);
      return true;
    });
    std::vector<std::uint64_t> handed;
    auto records = store_->scan_records(f, [&](std::uint64_t position, std::string_view) {
      handed.push_back(position);
      return true;
    });
    EXPECT_EQ(handed, seen) << from << ".." << to;
    EXPECT_EQ(bool(records), bool(r)) << from << ".." << to;
    if (!r && !records) {
      EXPECT_EQ(records.error().message, r.error().message);
      EXPECT_EQ(records.error().position, r.error().position);
    }
    std::string error = r ? "" : r.error().message;
    std::uint64_t at = r ? 0 : r.error().position;
    return std::make_tuple(error, at, seen);
  };
  const std::vector<std::uint64_t> none;
  auto [first, first_at, first_seen] = scanned(1, 2);
  EXPECT_EQ(first_at, 1u) << "the missing first record was skipped";
  EXPECT_NE(first.find("first from position 1 is at 2"), std::string::npos) << first;
  EXPECT_EQ(first_seen, none);
  auto [middle, middle_at, middle_seen] = scanned(2, 5);
  EXPECT_EQ(middle_at, 3u);
  EXPECT_NE(middle.find("skips from position 2 to 4"), std::string::npos) << middle;
  EXPECT_EQ(middle_seen, (std::vector<std::uint64_t>{2}));
  auto [at_gap, at_gap_at, at_gap_seen] = scanned(3, 4);
  EXPECT_EQ(at_gap_at, 3u) << at_gap;
  EXPECT_EQ(at_gap_seen, none);
  auto [clean, clean_at, clean_seen] = scanned(4, 5);
  EXPECT_EQ(clean, "");
  EXPECT_EQ(clean_seen, (std::vector<std::uint64_t>{4, 5}));
  // Record 7, after the gap at 6, is damaged: both report the damage (scan() decodes the
  // record after a gap before it compares positions).
  auto [damaged, damaged_at, damaged_seen] = scanned(5, 8);
  EXPECT_EQ(damaged_at, 7u) << damaged;
  EXPECT_NE(damaged.find("checksum mismatch"), std::string::npos) << damaged;
  EXPECT_EQ(damaged_seen, (std::vector<std::uint64_t>{5}));
}

// A damaged entry of the event id index fails the append that looks the id up (all ids of
// a group commit are looked up together), and the error names the id.
TEST_F(store_test, DamagedEventIdEntryIsReportedWithTheId) {
  auto e = make_event();
  must_append({to("s", expected_version::any(), {e})});
  store_.reset();
  {
    raw_db raw(dir_.sub("events"));
    raw.put(3, std::string(e.event_id.as_bytes()), "bad");
  }
  reopen();
  auto r = store_->append({to("s", expected_version::any(), {make_event(), e})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::corruption);
  EXPECT_NE(r.error().message.find(e.event_id.to_string()), std::string::npos) << r.error().message;
  EXPECT_EQ(store_->head_position(), 1u);
}

}  // namespace
}  // namespace passage::eventstore::testing
