// The claim digest on its own, over a real event store in a temporary folder that can be
// told to fail its reads: a read that fails never turns into "no digest wanted", "no
// recipient" or a claim left out of the list. The batch waits, and the next poll sends it
// whole. (Digests through a whole node: tests/e2e/claim_digest_test.cc.)

#include "consumers/claim_digest.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/time_format.h"
#include "consumers/tests/failing_reads.h"
#include "domain/events.h"
#include "domain/streams.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "tests/support/temp_dir.h"

namespace passage::consumers {
namespace {

namespace d = passage::domain;
using testing::failing_reads;
using namespace std::chrono_literals;

class claim_digest_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = eventstore::open_event_store({.path = dir_.sub("events"), .sync = false});
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    reads_ = std::make_unique<failing_reads>(*store_);
    keys_ = eventstore::make_memory_key_store();
    codec_ = std::make_unique<eventstore::event_codec>(*keys_, std::string(32, 'p'));
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    auto s = rocksdb::DB::Open(o, dir_.sub("mailer"), &db);
    ASSERT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
    clk_.set(*parse_rfc3339("2026-03-01T09:00:00Z"));
    digest_ = std::make_unique<claim_digest>(
        *reads_, *codec_, *db_, clk_, claim_digest_options{.window = 15min, .from = "p@x.test"},
        [this](const mail_message& m, const std::vector<named_address>&) {
          sent_.push_back(m);
          return std::optional<digest_delivery>(digest_delivery{true, "", clk_.now()});
        },
        [this](const std::string& stream, eventstore::new_event e) {
          return bool(store_->append({{stream, eventstore::expected_version::any(), {e}}}));
        });
  }

  // Appends one domain event to its stream and hands it to the digest when it wants it.
  bool record(const d::event& e) {
    auto encoded = codec_->encode(e, {uuid::random(), "c", "", "test"});
    EXPECT_TRUE(encoded);
    if (!encoded) return false;
    auto r = store_->append(
        {{d::stream_of(e), eventstore::expected_version::any(), {std::move(*encoded)}}});
    EXPECT_TRUE(r) << r.error().message;
    auto read = store_->read_all({.from_position = r->last_position}, 1);
    EXPECT_TRUE(read && read->size() == 1);
    if (!claim_digest::wants(read->front().type)) return true;
    rocksdb::WriteBatch with;
    return digest_->on_event(read->front(), with);
  }

  // An org whose key (with a contact email) created an invite that asks for digests.
  void an_invite_asking_for_digests() {
    d::api_key_issued k;
    k.org_id_ = org_;
    k.key_id_ = key_;
    k.name_ = "staff";
    k.key_hash_ = std::string(64, 'a');
    k.issued_at_ = clk_.now();
    k.email_ = "staff@x.test";
    ASSERT_TRUE(record(k));
    d::invite_created c;
    c.org_id_ = org_;
    c.invite_id_ = invite_;
    c.code_ = "ABCD2345";
    c.settings_.title_ = "Onboarding";
    c.settings_.notify_on_claim_ = true;
    c.created_at_ = clk_.now();
    c.created_by_ = key_;
    ASSERT_TRUE(record(c));
  }

  d::invite_claimed claim_by(const std::string& email) {
    d::invite_claimed c;
    c.org_id_ = org_;
    c.invite_id_ = invite_;
    c.claim_id_ = uuid::random();
    c.learner_id_ = uuid::random();
    c.claimed_at_ = clk_.now();
    c.personal_data_.email_ = email;
    c.personal_data_.first_name_ = "Ada";
    return c;
  }

  passage::testing::temp_dir dir_;
  std::unique_ptr<eventstore::event_store> store_;
  std::unique_ptr<failing_reads> reads_;
  std::unique_ptr<eventstore::key_store> keys_;
  std::unique_ptr<eventstore::event_codec> codec_;
  std::unique_ptr<rocksdb::DB> db_;
  manual_clock clk_;
  std::unique_ptr<claim_digest> digest_;
  std::vector<mail_message> sent_;
  const uuid org_ = uuid::random(), key_ = uuid::random(), invite_ = uuid::random();
};

TEST_F(claim_digest_test, AFailedReadOfTheInviteOrItsRecipientKeepsTheBatchForTheNextPoll) {
  an_invite_asking_for_digests();
  ASSERT_TRUE(record(claim_by("ada@x.test")));
  EXPECT_EQ(digest_->claims_batched(), 1u);
  clk_.advance(16min);

  // The invite's stream cannot be read, then only the organization's (the recipient's
  // key): nothing is decided either time.
  for (const char* failing : {"invite-", "org-"}) {
    reads_->fail_streams = failing;
    EXPECT_FALSE(digest_->send_due()) << failing;
    EXPECT_TRUE(sent_.empty()) << failing;
    EXPECT_EQ(digest_->batches_dropped(), 0u) << failing;
    EXPECT_EQ(store_->read_all({.types = {"EmailFailed"}}, 10)->size(), 0u) << failing;
  }

  reads_->fail_streams.reset();
  EXPECT_TRUE(digest_->send_due());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].to, "staff@x.test");
  EXPECT_NE(sent_[0].text.find("ada@x.test"), std::string::npos) << sent_[0].text;
  EXPECT_EQ(digest_->digests_sent(), 1u);
  EXPECT_EQ(store_->read_all({.types = {"EmailSent"}}, 10)->size(), 1u);
}

TEST_F(claim_digest_test, AClaimThatCannotBeReadIsNotLeftOutOfItsDigest) {
  an_invite_asking_for_digests();
  ASSERT_TRUE(record(claim_by("ada@x.test")));
  ASSERT_TRUE(record(claim_by("bob@x.test")));
  clk_.advance(16min);

  reads_->fail_scans = true;
  EXPECT_FALSE(digest_->send_due());
  EXPECT_TRUE(sent_.empty());

  reads_->fail_scans = false;
  EXPECT_TRUE(digest_->send_due());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_NE(sent_[0].text.find("ada@x.test"), std::string::npos) << sent_[0].text;
  EXPECT_NE(sent_[0].text.find("bob@x.test"), std::string::npos) << sent_[0].text;
}

TEST_F(claim_digest_test, AClaimWhoseInviteCannotBeReadIsRefusedNotSkipped) {
  an_invite_asking_for_digests();
  // The digest first meets this invite at the claim (a fresh mailer state): its settings
  // must be read. A failure must not be taken for "no digest wanted".
  digest_ = std::make_unique<claim_digest>(
      *reads_, *codec_, *db_, clk_, claim_digest_options{.window = 15min, .from = "p@x.test"},
      [](const mail_message&, const std::vector<named_address>&) {
        return std::optional<digest_delivery>();
      },
      [](const std::string&, eventstore::new_event) { return true; });
  reads_->fail_streams = "invite-";
  EXPECT_FALSE(record(claim_by("ada@x.test")));
  EXPECT_EQ(digest_->claims_batched(), 0u);

  // The subscription delivers it again later.
  reads_->fail_streams.reset();
  auto again = store_->read_all({.types = {"InviteClaimed"}}, 1);
  ASSERT_TRUE(again && again->size() == 1);
  rocksdb::WriteBatch with;
  EXPECT_TRUE(digest_->on_event(again->front(), with));
  EXPECT_EQ(digest_->claims_batched(), 1u);
}

}  // namespace
}  // namespace passage::consumers
