// The Kafka-fed replica against the embedded broker over loopback: CloudEvents read back
// into stored events, personal data encrypted again under replica keys and shredded on
// LearnerForgotten, partitions read out of order and with repeats, restarts that resume
// from the stored offsets.

#include "consumers/replica.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <thread>

#include "common/time_format.h"
#include "consumers/cloudevent.h"
#include "consumers/embedded_broker.h"
#include "consumers/tests/kafka_reader.h"
#include "domain/events.h"
#include "domain/streams.h"
#include "eventstore/event_store.h"
#include "tests/support/temp_dir.h"

namespace passage::consumers {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::raw_producer;

const std::string pepper(32, 'p');
const std::string replica_pepper(32, 'r');

// ---- CloudEvents read back --------------------------------------------------------------

eventstore::recorded_event sample_event() {
  eventstore::recorded_event e;
  e.event_id = uuid::random();
  e.type = "InviteClaimed";
  e.schema_version = 1;
  e.stream = "invite-1";
  e.stream_version = 3;
  e.position = 42;
  e.recorded_at = *parse_rfc3339("2026-11-20T09:00:00.123456Z");
  e.org_id = uuid::random().to_string();
  e.correlation_id = "req-7";
  e.actor = "key:1";
  return e;
}

TEST(CloudEventIn, IsTheInverseOfThePublishedMessage) {
  auto e = sample_event();
  json data = {{"a", 1}, {"personal_data", {{"email", "ada@example.com"}}}};
  auto back = from_cloudevent_json(to_cloudevent_json(e, data));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->event, e) << "every attribute, data left empty";
  EXPECT_EQ(back->data, data);
}

TEST(CloudEventIn, RefusesWhatIsNotAPassageEventNamingTheAttribute) {
  auto e = sample_event();
  json good = to_cloudevent(e, json{{"a", 1}});
  for (const auto& [attribute, value] :
       std::vector<std::pair<std::string, json>>{{"specversion", "0.3"},
                                                 {"id", "not-a-uuid"},
                                                 {"type", "com.other.Thing"},
                                                 {"type", "io.passage.InviteClaimed.vx"},
                                                 {"source", "/teams/1"},
                                                 {"subject", ""},
                                                 {"time", "yesterday"},
                                                 {"position", 0},
                                                 {"position", "42"},
                                                 {"streamversion", -1},
                                                 {"data", "text"}}) {
    json bad = good;
    bad[attribute] = value;
    auto r = from_cloudevent_json(bad.dump());
    ASSERT_FALSE(r) << attribute;
    EXPECT_NE(r.error().find(attribute), std::string::npos) << r.error();
  }
  auto undecodable = from_cloudevent_json(to_cloudevent_json(e, json()));
  ASSERT_FALSE(undecodable);
  EXPECT_NE(undecodable.error().find("could not show"), std::string::npos);
  EXPECT_FALSE(from_cloudevent_json("[1]"));
  EXPECT_FALSE(from_cloudevent_json("{"));
}

// ---- the codec's inverse of to_public_json ---------------------------------------------

domain::event registered(const uuid& org, const uuid& learner, const std::string& email) {
  domain::learner_registered ev{.org_id_ = org, .learner_id_ = learner};
  ev.registered_at_ = *parse_rfc3339("2026-11-20T09:00:00Z");
  ev.personal_data_.email_ = email;
  ev.personal_data_.first_name_ = "Ada";
  return ev;
}

TEST(EncodePublicJson, PersonalDataIsEncryptedUnderTheReplicaKeysAndShreddable) {
  auto primary_keys = eventstore::make_memory_key_store();
  auto replica_keys = eventstore::make_memory_key_store();
  eventstore::event_codec primary(*primary_keys, pepper), replica(*replica_keys, replica_pepper);
  const auto org = uuid::random(), learner = uuid::random();
  auto ev = registered(org, learner, "ada@example.com");
  auto stored = primary.encode(ev, {.event_id = uuid::random()});
  ASSERT_TRUE(stored);
  eventstore::recorded_event rec{.event_id = stored->event_id,
                                 .type = stored->type,
                                 .schema_version = 1,
                                 .data = stored->data};
  auto shown = primary.to_public_json(rec);
  ASSERT_TRUE(shown);

  auto again = replica.encode_public_json(rec.event_id, rec.type, 1, *shown);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->find("ada@example.com"), std::string::npos) << "never stored in clear";
  auto copy = rec;
  copy.data = *again;
  auto decoded = replica.decode(copy);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_FALSE(decoded->forgotten);
  EXPECT_EQ(decoded->event, ev);
  EXPECT_EQ(*replica.to_public_json(copy), *shown);

  ASSERT_TRUE(replica_keys->destroy("learner:" + learner.to_string()));
  decoded = replica.decode(copy);
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->forgotten);
  // Clear data arriving for a learner already forgotten here is stored as forgotten.
  auto late = replica.encode_public_json(uuid::random(), rec.type, 1, *shown);
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(late->find("ada@example.com"), std::string::npos);
}

TEST(EncodePublicJson, AForgottenMarkerDecodesAsForgottenAndBadDataIsRefused) {
  auto keys = eventstore::make_memory_key_store();
  eventstore::event_codec replica(*keys, replica_pepper);
  json data = eventstore::to_json(registered(uuid::random(), uuid::random(), "x@example.com"));
  data["personal_data"] = {{"forgotten", true}};
  const auto id = uuid::random();
  auto stored = replica.encode_public_json(id, "LearnerRegistered", 1, data);
  ASSERT_TRUE(stored) << stored.error().message;
  eventstore::recorded_event rec{
      .event_id = id, .type = "LearnerRegistered", .schema_version = 1, .data = *stored};
  auto decoded = replica.decode(rec);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(decoded->forgotten);
  EXPECT_EQ(*replica.to_public_json(rec), data) << "shown as the primary showed it";

  EXPECT_FALSE(replica.encode_public_json(id, "NoSuchEvent", 1, data));
  EXPECT_FALSE(replica.encode_public_json(id, "LearnerRegistered", 2, data));
  data.erase("learner_id");
  auto missing = replica.encode_public_json(id, "LearnerRegistered", 1, data);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().field, "learner_id");
}

// ---- the replica over Kafka ---------------------------------------------------------------

struct message {
  std::string key, value;
  std::uint64_t position;
};

class replica_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = eventstore::open_event_store({.path = dir_.sub("events"), .sync = false});
    ASSERT_TRUE(store);
    store_ = std::move(*store);
    primary_keys_ = eventstore::make_memory_key_store();
    primary_ = std::make_unique<eventstore::event_codec>(*primary_keys_, pepper);
    auto broker = embedded_broker::start({.partitions = 4});
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
    open_replica_side();
  }

  void open_replica_side() {
    auto keys = eventstore::open_key_store({.path = dir_.sub("replica-keys")});
    ASSERT_TRUE(keys) << keys.error().message;
    keys_ = std::move(*keys);
    codec_ = std::make_unique<eventstore::event_codec>(*keys_, replica_pepper);
    auto models = projections::read_models::open({.path = dir_.sub("replica-models")}, *codec_);
    ASSERT_TRUE(models) << models.error().message;
    models_ = std::move(*models);
  }

  void close_replica_side() {
    replica_.reset();
    models_.reset();
    codec_.reset();
    keys_.reset();
  }

  std::unique_ptr<replica> start_replica() {
    auto r = std::make_unique<replica>(
        *models_, *keys_, *codec_,
        replica_options{.brokers = broker_->bootstrap_servers(), .state_path = dir_.sub("state")});
    auto ok = r->start();
    EXPECT_TRUE(ok) << ok.error().message;
    return r;
  }

  // Appends on the "primary" and returns the message the relay would publish now.
  message append(const domain::event& ev) {
    auto stored = primary_->encode(ev, {.event_id = uuid::random()});
    EXPECT_TRUE(stored) << stored.error().message;
    auto stream = domain::stream_of(ev);
    auto r = store_->append({{stream, eventstore::expected_version::any(), {*stored}}});
    EXPECT_TRUE(r);
    auto rec = store_->read_all({.from_position = r->last_position}, 1);
    EXPECT_TRUE(rec && rec->size() == 1);
    auto shown = primary_->to_public_json(rec->front());
    EXPECT_TRUE(shown);
    return {stream, to_cloudevent_json(rec->front(), *shown), r->last_position};
  }

  bool wait_for(const std::function<bool(const replica_stats&)>& done) {
    for (int i = 0; i < 1500; ++i) {
      if (done(replica_->stats())) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  passage::testing::temp_dir dir_;
  std::unique_ptr<eventstore::event_store> store_;
  std::unique_ptr<eventstore::key_store> primary_keys_;
  std::unique_ptr<eventstore::event_codec> primary_;
  std::unique_ptr<embedded_broker> broker_;
  std::unique_ptr<eventstore::key_store> keys_;
  std::unique_ptr<eventstore::event_codec> codec_;
  std::unique_ptr<projections::read_models> models_;
  std::unique_ptr<replica> replica_;
};

TEST_F(replica_test, OutOfOrderPartitionsAndRepeatsAreAppliedOnceInLogOrder) {
  const auto org = uuid::random();
  std::vector<uuid> learners;
  std::vector<message> msgs;
  for (int i = 0; i < 40; ++i) {
    learners.push_back(uuid::random());
    msgs.push_back(append(registered(org, learners.back(), "l" + std::to_string(i) + "@x.org")));
  }
  raw_producer out(broker_->bootstrap_servers());
  // The second half first, into partitions 1-3: the replica must hold it.
  for (std::size_t i = 20; i < msgs.size(); ++i)
    out.produce(1 + int(i % 3), msgs[i].key, msgs[i].value);
  out.flush();
  replica_ = start_replica();
  ASSERT_TRUE(wait_for([](const replica_stats& s) { return s.buffered == 20; }))
      << replica_->stats().last_error;
  EXPECT_EQ(replica_->stats().applied_position, 0u);
  EXPECT_EQ(replica_->stats().last_seen_position, 40u);
  EXPECT_EQ(replica_->stats().lag_events, 40u);
  EXPECT_EQ(replica_->stats().waiting_for_position, 1u);
  EXPECT_GE(replica_->stats().lag_seconds, 0.0);
  EXPECT_FALSE(replica_->stats().caught_up);
  // Then the first half into partition 0, with every message of it published twice.
  for (std::size_t i = 0; i < 20; ++i) out.produce(0, msgs[i].key, msgs[i].value);
  for (std::size_t i = 0; i < 20; ++i) out.produce(0, msgs[i].key, msgs[i].value);
  out.flush();
  ASSERT_TRUE(wait_for([](const replica_stats& s) {
    return s.messages == 60 && s.applied_position == 40;
  })) << replica_->stats().last_error;
  auto st = replica_->stats();
  EXPECT_EQ(st.applied_position, 40u);
  EXPECT_EQ(st.duplicates, 20u);
  EXPECT_EQ(st.buffered, 0u);
  EXPECT_EQ(st.waiting_for_position, 0u);
  EXPECT_EQ(st.lag_events, 0u);
  EXPECT_FALSE(st.failed) << st.last_error;
  EXPECT_EQ(models_->applied_position(), 40u);
  for (int i = 0; i < 40; ++i) {
    auto l = models_->learner(org, learners[i]);
    ASSERT_TRUE(l) << i;
    EXPECT_FALSE(l->forgotten);
    // Found by the replica's own keyed email hash.
    auto ref = models_->learner_by_email(
        org, codec_->email_subject(org, "l" + std::to_string(i) + "@x.org"));
    ASSERT_TRUE(ref) << i;
    EXPECT_EQ(ref->learner_id, learners[i]);
  }
}

TEST_F(replica_test, LearnerForgottenShredsTheReplicaKeysBeforeItIsApplied) {
  const auto org = uuid::random(), ada = uuid::random(), bob = uuid::random();
  std::vector<message> msgs;
  msgs.push_back(append(registered(org, ada, "ada@example.com")));
  msgs.push_back(append(registered(org, bob, "bob@example.com")));
  domain::claim_rejected rejected{.org_id_ = org, .invite_id_ = uuid::random()};
  rejected.personal_data_.email_ = "ada@example.com";
  msgs.push_back(append(rejected));  // keyed by the email, not the learner
  ASSERT_TRUE(primary_keys_->destroy("learner:" + ada.to_string()));
  ASSERT_TRUE(primary_->forget_email(org, "ada@example.com"));
  msgs.push_back(append(domain::learner_forgotten{.org_id_ = org, .learner_id_ = ada}));
  raw_producer out(broker_->bootstrap_servers());
  for (const auto& m : msgs) out.produce(int(m.position % 4), m.key, m.value);
  out.flush();
  replica_ = start_replica();
  ASSERT_TRUE(wait_for([](const replica_stats& s) { return s.applied_position == 4; }))
      << replica_->stats().last_error;

  auto forgotten = models_->learner(org, ada);
  ASSERT_TRUE(forgotten);
  EXPECT_TRUE(forgotten->forgotten);
  EXPECT_FALSE(models_->learner_email_subject(ada));
  EXPECT_FALSE(models_->learner_by_email(org, codec_->email_subject(org, "ada@example.com")));
  EXPECT_FALSE(*keys_->find("learner:" + ada.to_string())) << "the learner key is destroyed";
  EXPECT_TRUE(keys_->is_destroyed(codec_->email_subject(org, "ada@example.com")));
  EXPECT_TRUE(*keys_->find("learner:" + bob.to_string())) << "others keep theirs";
  EXPECT_TRUE(models_->learner_by_email(org, codec_->email_subject(org, "bob@example.com")));
}

TEST_F(replica_test, ARestartResumesFromTheStoredOffsetsWithoutReapplying) {
  const auto org = uuid::random();
  raw_producer out(broker_->bootstrap_servers());
  for (int i = 0; i < 30; ++i) {
    auto m = append(registered(org, uuid::random(), std::to_string(i) + "@x.org"));
    out.produce(int(m.position % 4), m.key, m.value);
  }
  out.flush();
  replica_ = start_replica();
  ASSERT_TRUE(wait_for([](const replica_stats& s) {
    return s.applied_position == 30 && s.caught_up;
  })) << replica_->stats().last_error;
  close_replica_side();

  for (int i = 30; i < 40; ++i) {
    auto m = append(registered(org, uuid::random(), std::to_string(i) + "@x.org"));
    out.produce(int(m.position % 4), m.key, m.value);
  }
  out.flush();
  open_replica_side();
  EXPECT_EQ(models_->applied_position(), 30u);
  replica_ = start_replica();
  ASSERT_TRUE(wait_for([](const replica_stats& s) { return s.applied_position == 40; }))
      << replica_->stats().last_error;
  auto st = replica_->stats();
  EXPECT_EQ(st.messages, 10u) << "only what was published since";
  EXPECT_EQ(st.duplicates, 0u);
  EXPECT_TRUE(st.caught_up);
}

TEST_F(replica_test, BadConfigurationIsRefusedAtStart) {
  replica r(*models_, *keys_, *codec_, replica_options{.brokers = "", .state_path = dir_.sub("s")});
  auto ok = r.start();
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().code, errc::invalid_config);
  replica r2(*models_, *keys_, *codec_,
             replica_options{.brokers = broker_->bootstrap_servers(), .state_path = ""});
  EXPECT_FALSE(r2.start());
}

}  // namespace
}  // namespace passage::consumers
