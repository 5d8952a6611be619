// The mailer over a real event store in a temporary folder whose reads can be made to
// fail: a failure ends its reading, and it starts again from its checkpoint by itself
// (before, it stayed stopped until the process restarted, and no mail went out).

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "common/clock.h"
#include "consumers/mail_transport.h"
#include "consumers/mailer.h"
#include "consumers/tests/failing_reads.h"
#include "domain/events.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "tests/support/temp_dir.h"

namespace passage::consumers {
namespace {

namespace d = passage::domain;
using namespace std::chrono_literals;

TEST(mailer_restart, AFailedReadOfTheLogIsFollowedByAFreshStartFromTheCheckpoint) {
  passage::testing::temp_dir dir;
  auto opened = eventstore::open_event_store({.path = dir.sub("events"), .sync = false});
  ASSERT_TRUE(opened) << opened.error().message;
  auto& store = **opened;
  testing::failing_reads reads(store);
  auto keys = eventstore::make_memory_key_store();
  eventstore::event_codec codec(*keys, std::string(32, 'p'));

  mailer_options o;
  o.state_path = dir.sub("mailer");
  o.personal_link = [](std::string_view, const uuid&, const uuid&) { return "http://x/i"; };
  o.reminder_poll = 20ms;
  mailer m(reads, codec, make_eml_transport(dir.sub("outbox")), o);
  ASSERT_TRUE(m.start());

  // An event the mailer reads (it follows invites' settings).
  auto invite_created = [&] {
    d::invite_created c;
    c.org_id_ = uuid::random();
    c.invite_id_ = uuid::random();
    c.code_ = "ABCD2345";
    c.settings_.title_ = "Onboarding";
    auto e = codec.encode(c, {uuid::random(), "c", "", "test"});
    EXPECT_TRUE(e);
    auto r = store.append({{d::stream_of(c), eventstore::expected_version::any(), {*e}}});
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->last_position : 0;
  };
  auto checkpoint_reaches = [&](std::uint64_t position) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (m.stats().checkpoint < position) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  };
  ASSERT_TRUE(checkpoint_reaches(invite_created()));
  EXPECT_EQ(m.stats().restarts, 0u);

  // Reading fails for a while: the mailer stops where it was and keeps trying.
  reads.fail_scans = true;
  const auto missed = invite_created();
  const auto failing_until = std::chrono::steady_clock::now() + 5s;
  while (m.stats().restarts < 2 && std::chrono::steady_clock::now() < failing_until) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(m.stats().restarts, 2u);
  EXPECT_LT(m.stats().checkpoint, missed);

  // Reading works again: it catches up with what it missed and what follows.
  reads.fail_scans = false;
  EXPECT_TRUE(checkpoint_reaches(missed));
  EXPECT_TRUE(checkpoint_reaches(invite_created()));
  m.stop();
}

}  // namespace
}  // namespace passage::consumers
