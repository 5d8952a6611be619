// The event codec: every domain event round-trips through JSON; personal data is stored
// only as AES-256-GCM ciphertext bound to its event; destroying the subject's key makes
// it "forgotten" while the rest of the event stays readable; bad input is a codec_error.

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/hmac.h"
#include "common/time_format.h"
#include "domain/events.h"
#include "domain/text.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"

namespace passage::eventstore {
namespace {

using nlohmann::json;
namespace d = domain;

uuid id(std::uint8_t n) {
  uuid u;
  u.bytes = {0x6f, 0x1c, 0x2d, 0x3e, 0x4f, 0x50, 0x41, 0x62,
             0x83, 0x94, 0xa5, 0xb6, 0xc7, 0xd8, 0xe9, n};
  return u;
}
timestamp at(std::int64_t seconds, std::int64_t micros = 0) {
  return from_unix_micros(1795000000'000000 + seconds * 1000000 + micros);
}
const uuid org = id(1);
const std::string pepper(32, 'p');

d::personal_data ada() {
  return {"ada@example.com",
          "Ada",
          "Lovelace",
          {{"company", "Analytical Engines Ltd"}, {"consent", "yes"}}};
}
d::personal_data email_only(std::string email = "ada@example.com") { return {std::move(email)}; }
// A password hash block (LearnerPasswordSet); "Analytical" lets the leak checks find it.
d::personal_data hash_only() {
  d::personal_data p;
  p.password_hash_ = "scrypt$15$8$1$Analytical$00";
  return p;
}

d::invite_settings settings() {
  d::invite_settings s;
  s.type_ = d::invite_type::live_event;
  s.title_ = "Kubernetes 101 workshop";
  s.public_description_ = "Hands-on";
  s.internal_description_ = "Budget Q4";
  s.image_url_ = "https://example.com/k8s.png";
  s.tracks_ = {{"k8s-basics", true}, {"k8s-networking", false}};
  s.access_duration_ = *d::parse_access_duration("P1Y2M3DT4H5M6S");
  s.plays_per_track_ = 3;
  s.expires_at_ = at(100);
  s.claim_limit_ = 50;
  s.starts_at_ = at(200, 5);
  s.ends_at_ = at(300);
  s.access_ = d::access_mode::allowed;
  s.allowed_emails_ = {"bob@example.com"};
  s.allowed_domains_ = {"example.org"};
  s.require_account_ = true;
  s.show_share_button_ = true;
  s.capacity_warning_percent_ = 75;
  s.notify_on_claim_ = true;
  return s;
}

d::invite_claimed claimed() {
  return {org,
          id(2),
          id(3),
          id(4),
          false,
          at(10, 123456),
          {{{"k8s-basics", true}}, *d::parse_access_duration("P30D"), 3},
          at(10 + 30 * 86400, 123456),
          ada()};
}

// One sample of every event type, with every field set to a non-default value so a field
// the codec forgets makes the round trip fail.
std::map<std::string_view, d::event> samples() {
  std::vector<d::event> all = {
      d::organization_created{org, "Acme", at(1)},
      d::api_key_issued{org, id(9), d::role::professor, "ci key", std::string(64, 'a'), at(2),
                        "staff@example.org"},
      d::api_key_revoked{org, id(9), at(3)},
      d::lead_form_changed{
          org, {{{"company", "Company", false}, {"consent", "I agree", true}}}, at(4)},
      d::track_registered{org, "k8s-basics", "Basics", true, id(9), at(5)},
      d::track_updated{org, "k8s-basics", "Basics 2", true, id(10), at(6)},
      d::invite_created{org, id(2), "AB2K7MZ", settings(), id(11), at(7), id(12)},
      d::invite_updated{org, id(2), settings(), {"title", "claim_limit"}, at(8)},
      d::invite_deactivated{org, id(2), at(9)},
      d::invite_reactivated{org, id(2), at(10)},
      d::invite_deleted{org, id(2), at(11)},
      claimed(),
      d::claim_rejected{org, id(2), d::rejection_reason::details_missing, id(4), true, at(12),
                        email_only()},
      d::invite_capacity_warning{org, id(2), 40, 50, 80, at(13)},
      d::invite_filled{org, id(2), id(3), 50, at(14)},
      d::invite_expired{org, id(2), at(15), at(16)},
      d::private_invitation_sent{org, id(2), id(12), id(13), true, id(4), at(17), email_only()},
      d::track_played{org, id(2), id(3), id(4), "k8s-basics", 2, at(18)},
      d::track_paused{org, id(2), id(3), id(4), "k8s-basics", at(19)},
      d::track_resumed{org, id(2), id(3), id(4), "k8s-basics", at(20)},
      d::learner_registered{org, id(4), d::learner_role::student, false, at(21), ada()},
      d::lead_captured{org, id(4), id(2), at(22), ada()},
      d::learner_forgotten{org, id(4), at(23)},
      d::email_sent{org, id(13), id(14), id(12), id(4), at(24), email_only()},
      d::email_failed{org, id(13), id(14), id(12), id(4), "550 mailbox unavailable", at(25),
                      email_only()},
      d::password_setup_issued{org, id(4), id(15), id(2), at(26), at(27), email_only()},
      d::learner_password_set{org, id(4), id(15), at(28), hash_only()},
      d::api_key_email_changed{org, id(9), "desk@example.org", at(29)},
  };
  std::map<std::string_view, d::event> by_type;
  for (auto& e : all) by_type.emplace(d::event_type(e), std::move(e));
  return by_type;
}

recorded_event record(const new_event& n, std::uint64_t position = 1) {
  recorded_event r;
  r.event_id = n.event_id;
  r.type = n.type;
  r.schema_version = n.schema_version;
  r.stream = "s";
  r.stream_version = 1;
  r.position = position;
  r.recorded_at = at(1000);
  r.org_id = n.org_id;
  r.correlation_id = n.correlation_id;
  r.causation_id = n.causation_id;
  r.actor = n.actor;
  r.data = n.data;
  return r;
}

event_metadata meta(std::uint8_t n = 200) { return {id(n), "corr-1", "cause-1", "key:abc"}; }

class codec_test : public ::testing::Test {
 protected:
  std::unique_ptr<key_store> keys_ = make_memory_key_store();
  event_codec codec_{*keys_, pepper};

  recorded_event stored(const d::event& e, std::uint8_t n = 200) {
    auto enc = codec_.encode(e, meta(n));
    EXPECT_TRUE(enc) << (enc ? "" : enc.error().message);
    return record(*enc);
  }
};

TEST(codec_samples, every_event_type_has_a_sample) {
  auto s = samples();
  for (auto type : d::all_event_types()) {
    EXPECT_TRUE(s.contains(type)) << type << " has no codec sample";
  }
  EXPECT_EQ(s.size(), d::all_event_types().size());
}

TEST(codec_json, event_type_index_names_the_variant_alternative) {
  for (const auto& [type, e] : samples()) {
    auto i = event_type_index(type);
    ASSERT_TRUE(i) << type;
    EXPECT_EQ(*i, e.index()) << type;
  }
  for (std::string_view bad :
       {"", "Invite", "InviteClaimedX", "inviteClaimed", "InviteClaime", "InviteClaimex",
        "AnEventTypeNameFarLongerThanAnyKnownEventTypeName"}) {
    EXPECT_FALSE(event_type_index(bad)) << bad;
  }
}

TEST(codec_json, every_event_round_trips_through_plain_json) {
  for (const auto& [type, e] : samples()) {
    json j = to_json(e);
    auto back = event_from_json(type, j);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_TRUE(*back == e) << type << ": " << j.dump();
    // And through text, as stored.
    auto again = event_from_json(type, json::parse(j.dump()));
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_TRUE(*again == e) << type;
  }
}

// encode() writes its text directly; the bytes must stay nlohmann's (an idempotent
// re-append compares stored data byte for byte, and old and new builds share one log).
TEST(codec_json, direct_text_is_byte_for_byte_what_nlohmann_writes) {
  auto all = samples();
  // Strings that need escaping, non-ASCII text, an empty block, nulls, a hash beside
  // other personal data.
  auto tricky = claimed();
  tricky.personal_data_.first_name_ = "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \"q\" \\ /";
  tricky.personal_data_.last_name_ = std::string("ctl\x01\x1f\b\f\n\r\t\x7f end\0x", 17);
  tricky.personal_data_.answers_ = {{"z", "last"}, {"A", ""}, {"a\"b", "\xe2\x82\xac"}};
  tricky.personal_data_.password_hash_ = "scrypt$x";
  auto anonymous = claimed();
  anonymous.personal_data_ = {};
  auto sparse = samples().at("InviteCreated");
  std::get<d::invite_created>(sparse).duplicated_from_.reset();
  std::get<d::invite_created>(sparse).settings_.tracks_.clear();
  std::vector<d::event> events = {tricky, anonymous, sparse};
  // Times written digit by digit: before 1970, at a day's last microsecond, whole seconds,
  // outside years 0-9999 (written by format_rfc3339 itself).
  using namespace std::chrono;
  for (auto t : {timestamp(microseconds(-1)), timestamp(microseconds(-86'400'000'001)),
                 timestamp(sys_days(2026y / 12 / 31) + hours(23) + minutes(59) + seconds(59) +
                           microseconds(999'999)),
                 timestamp(sys_days(2026y / 1 / 1) + seconds(7)),
                 timestamp(sys_days(year(10000) / 1 / 1)), timestamp(sys_days(year(-1) / 1 / 1)),
                 timestamp(sys_days(year(1) / 2 / 3) + microseconds(10))}) {
    events.push_back(d::organization_created{org, "Acme", t});
  }
  for (const auto& [type, e] : all) events.push_back(e);
  for (const auto& e : events) {
    EXPECT_EQ(to_json_text(e), to_json(e).dump()) << d::event_type(e);
  }
}

TEST(codec_json, invite_claimed_has_the_contract_field_names) {
  json j = to_json(claimed());
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"org_id", "invite_id", "claim_id", "learner_id",
                                         "anonymous", "claimed_at", "restrictions",
                                         "access_expires_at", "personal_data"}));
  EXPECT_EQ(j["org_id"], org.to_string());
  EXPECT_EQ(j["claimed_at"], "2026-11-18T11:06:50.123456Z");
  EXPECT_EQ(j["restrictions"], json::parse(R"({"tracks":[{"track_id":"k8s-basics","pausable":true}],
                            "access_duration":"P30D","plays_per_track":3})"));
  EXPECT_EQ(j["personal_data"]["email"], "ada@example.com");

  auto forever = claimed();
  forever.restrictions_.access_duration_ = d::access_duration::forever();
  forever.access_expires_at_.reset();
  forever.personal_data_ = {};
  json f = to_json(forever);
  EXPECT_EQ(f["restrictions"]["access_duration"], "forever");
  EXPECT_TRUE(f["access_expires_at"].is_null());
  EXPECT_TRUE(f["personal_data"].is_null());
  auto back = event_from_json("InviteClaimed", f);
  ASSERT_TRUE(back);
  EXPECT_TRUE(*back == d::event{forever});
}

TEST(codec_json, invite_settings_use_the_post_invites_fields) {
  json j = to_json(d::invite_created{org, id(2), "AB2K7MZ", settings(), std::nullopt, at(7)});
  std::set<std::string> keys;
  for (const auto& [k, v] : j["settings"].items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{
                      "type", "title", "public_description", "internal_description", "image_url",
                      "tracks", "access_duration", "plays_per_track", "expires_at", "claim_limit",
                      "starts_at", "ends_at", "access", "allowed_emails", "allowed_domains",
                      "require_account", "show_share_button", "capacity_warning_percent",
                      "notify_on_claim"}));
  EXPECT_EQ(j["settings"]["type"], "live_event");
  EXPECT_EQ(j["settings"]["access"], "allowed");
  EXPECT_EQ(j["settings"]["access_duration"], "P1Y2M3DT4H5M6S");
  EXPECT_TRUE(j["duplicated_from"].is_null());
}

TEST(codec_json, enums_use_their_snake_case_names) {
  auto s = samples();
  EXPECT_EQ(to_json(s.at("ApiKeyIssued"))["role"], "professor");
  EXPECT_EQ(to_json(d::api_key_issued{org, id(9), d::role::operator_, "op", "x", at(1)})["role"],
            "operator");
  EXPECT_EQ(to_json(s.at("ClaimRejected"))["reason"], "details_missing");
  EXPECT_EQ(to_json(s.at("LearnerRegistered"))["role"], "student");
}

TEST_F(codec_test, every_event_round_trips_through_encode_and_decode) {
  for (const auto& [type, e] : samples()) {
    auto enc = codec_.encode(e, meta());
    ASSERT_TRUE(enc) << enc.error().message;
    EXPECT_EQ(enc->event_id, id(200));
    EXPECT_EQ(enc->type, type);
    EXPECT_EQ(enc->schema_version, 1u);
    EXPECT_EQ(enc->org_id, org.to_string());
    EXPECT_EQ(enc->correlation_id, "corr-1");
    EXPECT_EQ(enc->causation_id, "cause-1");
    EXPECT_EQ(enc->actor, "key:abc");
    auto dec = codec_.decode(record(*enc));
    ASSERT_TRUE(dec) << dec.error().message;
    EXPECT_FALSE(dec->forgotten);
    EXPECT_TRUE(dec->event == e) << type << ": " << enc->data;
  }
}

// Valid stored events, with their personal data opened or forgotten, decode through the
// fast reader (simdjson); the nlohmann path is only for what is wrong.
TEST_F(codec_test, stored_events_decode_without_the_nlohmann_fallback) {
  for (const auto& [type, e] : samples()) {
    auto r = stored(e);
    const auto before = text_decode_fallbacks();
    auto dec = codec_.decode(r);
    ASSERT_TRUE(dec) << dec.error().message;
    EXPECT_TRUE(dec->event == e) << type;
    EXPECT_EQ(text_decode_fallbacks(), before) << type << ": " << r.data;
  }
  auto e = claimed();
  auto r = stored(e, 201);
  ASSERT_TRUE(keys_->destroy(codec_.subject_of(e)));
  const auto before = text_decode_fallbacks();
  auto dec = codec_.decode(r);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(dec->forgotten);
  e.personal_data_ = {};
  EXPECT_TRUE(dec->event == d::event{e});
  EXPECT_EQ(text_decode_fallbacks(), before);
}

TEST_F(codec_test, stored_data_is_the_plain_json_with_the_envelope_in_place) {
  for (const auto& [type, e] : samples()) {
    auto enc = codec_.encode(e, meta());
    ASSERT_TRUE(enc) << enc.error().message;
    json expected = to_json(e);
    if (d::personal_data_of(e) != nullptr) {
      expected["personal_data"] = json::parse(enc->data)["personal_data"];
    }
    EXPECT_EQ(enc->data, expected.dump()) << type;
  }
}

TEST_F(codec_test, stored_data_holds_no_personal_data_in_clear) {
  for (const auto& [type, e] : samples()) {
    auto r = stored(e);
    // Short names are searched as JSON strings: a bare "Ada" turns up in random base64
    // (the IV and ciphertext) every few hundred runs.
    for (const char* secret : {"ada@example.com", "\"Ada\"", "Lovelace", "Analytical"}) {
      EXPECT_EQ(r.data.find(secret), std::string::npos) << type << " leaks " << secret;
    }
    json j = json::parse(r.data);
    if (d::personal_data_of(e) == nullptr) {
      EXPECT_FALSE(j.contains("personal_data")) << type;
      continue;
    }
    const auto& env = j["personal_data"];
    ASSERT_TRUE(env.is_object()) << type;
    EXPECT_EQ(env["alg"], "A256GCM");
    EXPECT_EQ(env["subject"], codec_.subject_of(e));
    EXPECT_EQ(env["iv"].get<std::string>().size(), 16u);  // 12 bytes in base64
    EXPECT_EQ(std::set<std::string>({"alg", "subject", "iv", "ct"}).size(), env.size());
  }
}

TEST_F(codec_test, empty_personal_data_is_stored_as_null) {
  auto anonymous = claimed();
  anonymous.anonymous_ = true;
  anonymous.personal_data_ = {};
  auto r = stored(anonymous);
  EXPECT_TRUE(json::parse(r.data)["personal_data"].is_null());
  auto dec = codec_.decode(r);
  ASSERT_TRUE(dec);
  EXPECT_FALSE(dec->forgotten);
  EXPECT_TRUE(dec->event == d::event{anonymous});
  auto pub = codec_.to_public_json(r);
  ASSERT_TRUE(pub);
  EXPECT_TRUE((*pub)["personal_data"].is_null());
}

TEST_F(codec_test, each_event_gets_a_fresh_iv) {
  auto a = json::parse(stored(claimed(), 1).data)["personal_data"];
  auto b = json::parse(stored(claimed(), 2).data)["personal_data"];
  EXPECT_NE(a["iv"], b["iv"]);
  EXPECT_NE(a["ct"], b["ct"]);
}

TEST_F(codec_test, events_sealed_in_a_row_under_one_key_each_open_only_as_themselves) {
  // A thread keeps the last key's schedule: messages in a row under one key, then under
  // others, opened out of order, after a failure, and from a fresh thread, all round-trip,
  // and none opens as another.
  std::vector<d::event> events;
  for (int round = 0; round < 2; ++round) {
    for (const auto& [type, e] : samples()) events.push_back(e);
  }
  std::vector<recorded_event> records;
  for (std::size_t i = 0; i < events.size(); ++i) {
    records.push_back(stored(events[i], static_cast<std::uint8_t>(i)));
  }
  auto tampered = stored(claimed(), 251);
  json j = json::parse(tampered.data);
  std::string ct = j["personal_data"]["ct"];
  ct[4] = ct[4] == 'A' ? 'B' : 'A';
  j["personal_data"]["ct"] = ct;
  tampered.data = j.dump();
  for (std::size_t k = records.size(); k-- > 0;) {
    auto dec = codec_.decode(records[k]);
    ASSERT_TRUE(dec) << dec.error().message;
    EXPECT_TRUE(dec->event == events[k]) << records[k].type;
    EXPECT_FALSE(codec_.decode(tampered));
    auto moved = records[k];
    moved.event_id = id(250);  // another event's id: its AAD no longer matches
    if (d::personal_data_of(events[k]) != nullptr && !d::personal_data_of(events[k])->empty()) {
      EXPECT_FALSE(codec_.decode(moved)) << records[k].type;
    }
  }
  std::thread other([&] {
    for (std::size_t k = 0; k < records.size(); ++k) {
      auto dec = codec_.decode(records[k]);
      ASSERT_TRUE(dec) << dec.error().message;
      EXPECT_TRUE(dec->event == events[k]) << records[k].type;
    }
  });
  other.join();
}

TEST_F(codec_test, a_thread_switching_keys_seals_and_opens_each_message_under_its_own_key) {
  // The thread's cipher keeps the last key it was given. Messages about two learners (A,
  // B, A, ...), an email whose key is destroyed and made anew in between, and the same
  // learner under another key store's key are sealed and opened on one thread, in both
  // orders. Each record is then opened on a fresh thread, whose first message loads its
  // key: a cipher that kept a key it should have replaced would have sealed some record
  // under another subject's key, and that record would not open there.
  auto about = [](std::uint8_t learner, const char* first_name) {
    auto e = claimed();
    e.learner_id_ = id(learner);
    e.personal_data_.first_name_ = first_name;
    return d::event{e};
  };
  d::claim_rejected eve{org,   id(2), d::rejection_reason::not_allowed, std::nullopt,
                        false, at(1), email_only("eve@example.com")};
  auto other_keys = make_memory_key_store();
  event_codec other(*other_keys, pepper);  // learner A again, under another key

  struct sealed_record {
    recorded_event record;
    d::event event;
    event_codec* codec;
    bool forgotten = false;
  };
  std::vector<sealed_record> all;
  std::uint8_t n = 100;
  auto seal_with = [&](event_codec& c, const d::event& e) {
    auto enc = c.encode(e, meta(n++));
    EXPECT_TRUE(enc) << (enc ? "" : enc.error().message);
    all.push_back({record(*enc), e, &c});
  };
  auto opens_as_sealed = [](const sealed_record& s) {
    auto dec = s.codec->decode(s.record);
    if (!dec) return ::testing::AssertionFailure() << dec.error().message;
    if (dec->forgotten != s.forgotten) return ::testing::AssertionFailure() << "forgotten?";
    if (!s.forgotten && !(dec->event == s.event)) {
      return ::testing::AssertionFailure() << "another event";
    }
    return ::testing::AssertionSuccess();
  };

  seal_with(codec_, about(4, "A1"));
  seal_with(codec_, about(5, "B1"));
  seal_with(codec_, about(4, "A2"));
  // Opened in both orders between seals.
  EXPECT_TRUE(opens_as_sealed(all[1]));
  EXPECT_TRUE(opens_as_sealed(all[0]));
  EXPECT_TRUE(opens_as_sealed(all[2]));
  seal_with(codec_, about(5, "B2"));
  seal_with(codec_, d::event{eve});
  EXPECT_TRUE(opens_as_sealed(all[4]));
  ASSERT_TRUE(codec_.forget_email(org, "eve@example.com"));  // destroys that key
  all[4].forgotten = true;
  EXPECT_TRUE(opens_as_sealed(all[4]));
  seal_with(codec_, d::event{eve});  // under a new key
  seal_with(other, about(4, "A3"));
  seal_with(codec_, about(4, "A4"));
  seal_with(codec_, d::event{eve});
  seal_with(other, about(4, "A5"));
  ASSERT_EQ(all.size(), 10u);

  for (const auto& s : all) EXPECT_TRUE(opens_as_sealed(s)) << s.record.event_id.to_string();
  for (std::size_t k = all.size(); k-- > 0;) {
    EXPECT_TRUE(opens_as_sealed(all[k])) << k;
  }
  // Learner A's records under one store's key do not open under the other's.
  EXPECT_FALSE(codec_.decode(all[6].record));
  EXPECT_FALSE(other.decode(all[0].record));
  for (std::size_t k = 0; k < all.size(); ++k) {
    std::thread fresh([&] { EXPECT_TRUE(opens_as_sealed(all[k])) << "on a fresh thread: " << k; });
    fresh.join();
  }
}

TEST_F(codec_test, seals_and_opens_alternating_keys_and_directions_each_under_its_own_key) {
  // The thread's cipher is re-keyed in place for each message under another key or in
  // the other direction. Seals and opens alternate between two key stores (one learner
  // has a different key in each, so the same subject and AAD) and three learners; every
  // record opens as itself under its own store and fails under the other store's key.
  auto other_keys = make_memory_key_store();
  event_codec other(*other_keys, pepper);
  event_codec* codecs[] = {&codec_, &other};
  for (std::uint8_t learner = 4; learner < 7; ++learner) {
    ASSERT_TRUE(keys_->get_or_create(learner_subject(id(learner))));
    ASSERT_TRUE(other_keys->get_or_create(learner_subject(id(learner))));
  }
  struct sealed_record {
    recorded_event record;
    d::event event;
    int store;
  };
  std::vector<sealed_record> all;
  for (int i = 0; i < 24; ++i) {
    auto e = claimed();
    e.learner_id_ = id(static_cast<std::uint8_t>(4 + i % 3));
    e.personal_data_.first_name_ = "N" + std::to_string(i);
    const int store = (i / 3) % 2;
    auto enc = codecs[store]->encode(d::event{e}, meta(static_cast<std::uint8_t>(100 + i)));
    ASSERT_TRUE(enc) << enc.error().message;
    all.push_back({record(*enc), d::event{e}, store});
    // Open an earlier record under its own key, then under the other store's key.
    const auto& s = all[(static_cast<std::size_t>(i) * 7) % all.size()];
    auto dec = codecs[s.store]->decode(s.record);
    ASSERT_TRUE(dec) << i << ": " << dec.error().message;
    EXPECT_FALSE(dec->forgotten) << i;
    EXPECT_TRUE(dec->event == s.event) << i;
    auto under_other = codecs[1 - s.store]->decode(s.record);
    ASSERT_FALSE(under_other) << i;
    EXPECT_EQ(under_other.error().field, "personal_data") << i;
  }
  for (std::size_t k = all.size(); k-- > 0;) {
    auto dec = codecs[all[k].store]->decode(all[k].record);
    ASSERT_TRUE(dec) << k << ": " << dec.error().message;
    EXPECT_TRUE(dec->event == all[k].event) << k;
  }
}

TEST_F(codec_test, opening_under_another_key_right_after_a_message_under_the_first_fails) {
  // Key A (this store's key for the learner), then key B (another store's key for the
  // same learner: same subject, same AAD) given A's ciphertext: a cipher that kept A's
  // schedule would open it. After an open, after a seal, and after the failure itself.
  auto other_keys = make_memory_key_store();
  event_codec other(*other_keys, pepper);
  ASSERT_TRUE(other_keys->get_or_create(learner_subject(claimed().learner_id_)));
  const auto sealed_under_a = stored(claimed(), 1);
  auto expect_clean_failure = [&](const char* after) {
    auto dec = other.decode(sealed_under_a);
    ASSERT_FALSE(dec) << after;
    EXPECT_EQ(dec.error().field, "personal_data") << after;
  };

  ASSERT_TRUE(codec_.decode(sealed_under_a));  // opened under A
  expect_clean_failure("an open under A");
  ASSERT_TRUE(codec_.encode(claimed(), meta(2)));  // sealed under A
  expect_clean_failure("a seal under A");
  expect_clean_failure("the failure itself");
  // B still works for its own records, and A again for A's.
  auto enc_b = other.encode(claimed(), meta(3));
  ASSERT_TRUE(enc_b) << enc_b.error().message;
  const auto sealed_under_b = record(*enc_b);
  ASSERT_TRUE(other.decode(sealed_under_b));
  EXPECT_FALSE(codec_.decode(sealed_under_b));
  auto dec = codec_.decode(sealed_under_a);
  ASSERT_TRUE(dec) << dec.error().message;
  EXPECT_TRUE(dec->event == d::event{claimed()});
}

TEST_F(codec_test, subjects_are_the_learner_else_a_keyed_hash_of_the_email) {
  EXPECT_EQ(codec_.subject_of(claimed()), "learner:" + id(4).to_string());
  d::claim_rejected unknown{org,   id(2), d::rejection_reason::not_allowed, std::nullopt,
                            false, at(1), email_only("Eve@Example.com ")};
  std::string s = codec_.subject_of(unknown);
  EXPECT_EQ(s, codec_.email_subject(org, "eve@example.com"));
  ASSERT_EQ(s.size(), 6u + 64u);
  EXPECT_EQ(s.substr(0, 6), "email:");
  EXPECT_EQ(s.find_first_not_of("0123456789abcdef", 6), std::string::npos);
  EXPECT_NE(codec_.email_subject(id(99), "eve@example.com"), s) << "scoped to the org";
  auto other_keys = make_memory_key_store();
  event_codec other(*other_keys, std::string(32, 'q'));
  EXPECT_NE(other.email_subject(org, "eve@example.com"), s) << "keyed by the pepper";
  EXPECT_EQ(codec_.subject_of(d::invite_deleted{org, id(2), at(1)}), "");
  // HMAC-SHA256(pepper, "<org>|<email>"), as any HMAC implementation computes it; two codecs
  // with their own peppers, used in turn on one thread and on another, keep their own key.
  const std::string p_hash = "69efb88998314ae5af9ccf10a780a80144f1607443efd339bea813b57f654ea4";
  const std::string q_hash = "d816ed89b6b7ff8502e2aa5f1aae3f7f45863ea45de1e0c0ce0000f45f4c7f4d";
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(codec_.email_subject(org, "eve@example.com"), "email:" + p_hash);
    EXPECT_EQ(other.email_subject(org, "eve@example.com"), "email:" + q_hash);
  }
  std::string on_thread;
  std::thread([&] { on_thread = other.email_subject(org, "eve@example.com"); }).join();
  EXPECT_EQ(on_thread, "email:" + q_hash);
  {
    auto gone = std::make_unique<event_codec>(*other_keys, std::string(40, 'z'));
    EXPECT_NE(gone->email_subject(org, "eve@example.com"), "email:" + q_hash);
  }
  event_codec again(*other_keys, std::string(32, 'q'));  // perhaps where `gone` was
  EXPECT_EQ(again.email_subject(org, "eve@example.com"), "email:" + q_hash);
  // email_hash(): the same HMAC's 32 bytes, whose hex email_subject() writes.
  const auto bytes = codec_.email_hash(org, " Eve@Example.COM");
  std::string hex;
  for (const auto b : bytes) {
    hex += "0123456789abcdef"[b >> 4];
    hex += "0123456789abcdef"[b & 0xf];
  }
  EXPECT_EQ(hex, p_hash);

  auto r = stored(unknown);
  auto dec = codec_.decode(r);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(dec->event == d::event{unknown});
}

TEST_F(codec_test, public_json_shows_personal_data_in_clear) {
  auto r = stored(claimed());
  auto pub = codec_.to_public_json(r);
  ASSERT_TRUE(pub) << pub.error().message;
  EXPECT_EQ(*pub, to_json(claimed()));
  auto plain = codec_.to_public_json(stored(samples().at("TrackPlayed")));
  ASSERT_TRUE(plain);
  EXPECT_EQ(*plain, to_json(samples().at("TrackPlayed")));
}

TEST_F(codec_test, a_password_hash_is_encrypted_and_never_shown) {
  auto e = samples().at("LearnerPasswordSet");
  auto r = stored(e);
  EXPECT_EQ(r.data.find("scrypt"), std::string::npos);
  auto dec = codec_.decode(r);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(dec->event == e) << "the node that checks passwords reads it back";
  auto pub = codec_.to_public_json(r);
  ASSERT_TRUE(pub);
  EXPECT_EQ(pub->dump().find("scrypt"), std::string::npos) << pub->dump();
  EXPECT_FALSE((*pub)["personal_data"].contains("password_hash"));
  // Blocks without a hash are encoded as before (no "password_hash" member).
  EXPECT_FALSE(
      to_json(samples().at("LearnerRegistered"))["personal_data"].contains("password_hash"));
}

TEST_F(codec_test, after_the_key_is_destroyed_the_learner_is_forgotten) {
  auto e = claimed();
  auto r = stored(e);
  ASSERT_TRUE(keys_->destroy(codec_.subject_of(e)));

  auto dec = codec_.decode(r);
  ASSERT_TRUE(dec) << dec.error().message;
  EXPECT_TRUE(dec->forgotten);
  auto expected = e;
  expected.personal_data_ = {};
  EXPECT_TRUE(dec->event == d::event{expected}) << "ids, times and restrictions stay intact";

  auto pub = codec_.to_public_json(r);
  ASSERT_TRUE(pub);
  EXPECT_EQ((*pub)["personal_data"], json({{"forgotten", true}}));
  json rest = *pub;
  json want = to_json(e);
  rest.erase("personal_data");
  want.erase("personal_data");
  EXPECT_EQ(rest, want);

  // Nothing new can be written for a forgotten subject.
  auto again = codec_.encode(e, meta(201));
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().forgotten);
  EXPECT_EQ(again.error().field, "personal_data");

  // Events without personal data of that learner are unaffected.
  auto played = codec_.decode(stored(samples().at("TrackPlayed")));
  ASSERT_TRUE(played);
  EXPECT_FALSE(played->forgotten);
}

TEST_F(codec_test, a_forgotten_email_is_unreadable_yet_can_be_recorded_again) {
  d::claim_rejected before{org,   id(2), d::rejection_reason::not_allowed, std::nullopt,
                           false, at(1), email_only("eve@example.com")};
  auto first = stored(before, 1);
  ASSERT_TRUE(codec_.forget_email(org, "EVE@example.com"));
  auto dec = codec_.decode(first);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(dec->forgotten);

  // Eve comes back: the audit record of a new rejection must still be writable.
  auto second = stored(before, 2);
  EXPECT_EQ(json::parse(second.data)["personal_data"]["subject"],
            codec_.email_subject(org, "eve@example.com") + ".2");
  dec = codec_.decode(second);
  ASSERT_TRUE(dec);
  EXPECT_FALSE(dec->forgotten);
  EXPECT_TRUE(dec->event == d::event{before});

  // Forgotten again: both records are gone, and a third life gets a third key.
  ASSERT_TRUE(codec_.forget_email(org, "eve@example.com"));
  for (const auto* r : {&first, &second}) {
    auto again = codec_.decode(*r);
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->forgotten);
  }
  auto third = stored(before, 3);
  EXPECT_EQ(json::parse(third.data)["personal_data"]["subject"],
            codec_.email_subject(org, "eve@example.com") + ".3");
  ASSERT_TRUE(codec_.forget_email(org, "nobody@example.com")) << "forgetting is total";
  EXPECT_TRUE(keys_->is_destroyed(codec_.email_subject(org, "nobody@example.com")));
}

TEST_F(codec_test, a_key_that_never_existed_reads_as_forgotten) {
  auto r = stored(claimed());
  auto fresh_keys = make_memory_key_store();
  event_codec elsewhere(*fresh_keys, pepper);
  auto dec = elsewhere.decode(r);
  ASSERT_TRUE(dec);
  EXPECT_TRUE(dec->forgotten);
  EXPECT_TRUE(fresh_keys->find(codec_.subject_of(claimed()))->has_value() == false)
      << "decoding must not create keys";
}

TEST_F(codec_test, tampered_ciphertext_is_an_error) {
  auto r = stored(claimed());
  json j = json::parse(r.data);
  std::string ct = j["personal_data"]["ct"];
  ct[4] = ct[4] == 'A' ? 'B' : 'A';
  j["personal_data"]["ct"] = ct;
  r.data = j.dump();
  auto dec = codec_.decode(r);
  ASSERT_FALSE(dec);
  EXPECT_EQ(dec.error().field, "personal_data");
  EXPECT_NE(dec.error().message.find("InviteClaimed"), std::string::npos);
  EXPECT_FALSE(codec_.to_public_json(r));
}

TEST_F(codec_test, ciphertext_moved_to_another_event_is_an_error) {
  auto r = stored(claimed(), 1);
  r.event_id = id(2);  // same bytes, claimed to be another event
  EXPECT_FALSE(codec_.decode(r));

  // The envelope of one learner's event pasted into another event of the same learner.
  auto registered = stored(samples().at("LearnerRegistered"), 3);
  auto claim = stored(claimed(), 4);
  json j = json::parse(claim.data);
  j["personal_data"] = json::parse(registered.data)["personal_data"];
  claim.data = j.dump();
  auto dec = codec_.decode(claim);
  ASSERT_FALSE(dec);
  EXPECT_EQ(dec.error().field, "personal_data");
}

TEST_F(codec_test, a_substituted_subject_is_an_error) {
  auto r = stored(claimed());
  ASSERT_TRUE(keys_->get_or_create("learner:someone-else"));
  json j = json::parse(r.data);
  j["personal_data"]["subject"] = "learner:someone-else";
  r.data = j.dump();
  EXPECT_FALSE(codec_.decode(r));
}

TEST_F(codec_test, malformed_envelopes_are_errors) {
  auto r = stored(claimed());
  for (const char* bad : {R"({"alg":"A128GCM","subject":"x","iv":"AAAAAAAAAAAAAAAA","ct":"AAAA"})",
                          R"({"alg":"A256GCM","subject":"x","iv":"!!!","ct":"AAAA"})",
                          R"({"alg":"A256GCM","iv":"AAAAAAAAAAAAAAAA","ct":"AAAA"})",
                          R"({"email":"ada@example.com"})", R"("clear text")"}) {
    json j = json::parse(r.data);
    j["personal_data"] = json::parse(bad);
    recorded_event m = r;
    m.data = j.dump();
    const auto before = text_decode_fallbacks();
    auto dec = codec_.decode(m);
    ASSERT_FALSE(dec) << bad;
    EXPECT_EQ(dec.error().field, "personal_data") << bad;
    EXPECT_GT(text_decode_fallbacks(), before) << "nlohmann words the error";
  }
}

// The messages of a damaged envelope are the nlohmann path's, word for word.
TEST_F(codec_test, envelope_errors_keep_their_messages) {
  auto r = stored(claimed());
  auto with = [&](const std::function<void(json&)>& change) {
    json j = json::parse(r.data);
    change(j["personal_data"]);
    recorded_event m = r;
    m.data = j.dump();
    auto dec = codec_.decode(m);
    EXPECT_FALSE(dec);
    return dec ? std::string() : dec.error().message;
  };
  EXPECT_EQ(with([](json& pd) { pd["alg"] = "A128GCM"; }),
            "InviteClaimed: personal_data: unsupported algorithm \"A128GCM\"");
  EXPECT_EQ(with([](json& pd) { pd["iv"] = "!!!"; }),
            "InviteClaimed: personal_data: malformed envelope");
  EXPECT_EQ(with([](json& pd) { pd.erase("ct"); }),
            "InviteClaimed: personal_data: expected an encrypted envelope {alg, subject, iv, ct}");
  EXPECT_EQ(with([](json& pd) { pd["subject"] = ""; }),
            "InviteClaimed: personal_data: malformed envelope subject");
  EXPECT_EQ(with([](json& pd) {
              std::string ct = pd["ct"];
              ct[4] = ct[4] == 'A' ? 'B' : 'A';
              pd["ct"] = ct;
            }),
            "InviteClaimed: personal_data: authentication failed (tampered, or moved from "
            "another event)");
  EXPECT_EQ(with([](json& pd) { pd = 7; }),
            "InviteClaimed: personal_data: expected an encrypted envelope or null");
}

TEST_F(codec_test, malformed_json_is_an_error) {
  auto r = stored(claimed());
  for (const char* data : {"{not json", "", "[1,2]", "null", "{\"org_id\":"}) {
    r.data = data;
    auto dec = codec_.decode(r);
    ASSERT_FALSE(dec) << data;
    EXPECT_NE(dec.error().message.find("InviteClaimed"), std::string::npos);
    EXPECT_FALSE(codec_.to_public_json(r)) << data;
  }
}

TEST_F(codec_test, unknown_types_and_versions_are_errors) {
  auto r = stored(claimed());
  r.type = "InviteExploded";
  EXPECT_FALSE(codec_.decode(r));
  EXPECT_FALSE(event_from_json("InviteExploded", json::object()));
  r = stored(claimed());
  r.schema_version = 2;
  auto dec = codec_.decode(r);
  ASSERT_FALSE(dec);
  EXPECT_NE(dec.error().message.find("schema_version"), std::string::npos);
}

struct bad_field_case {
  std::string type;
  std::string pointer;  // JSON pointer to change
  json value;           // null with erase = true: remove the field
  bool erase;
  std::string field;  // expected codec_error::field
};

TEST(codec_json, missing_or_mistyped_fields_name_the_type_and_field) {
  auto s = samples();
  const std::vector<bad_field_case> cases = {
      {"InviteClaimed", "/claimed_at", nullptr, true, "claimed_at"},
      {"InviteClaimed", "/claimed_at", 17, false, "claimed_at"},
      {"InviteClaimed", "/claimed_at", "yesterday", false, "claimed_at"},
      {"InviteClaimed", "/org_id", "not-a-uuid", false, "org_id"},
      {"InviteClaimed", "/anonymous", "false", false, "anonymous"},
      {"InviteClaimed", "/access_expires_at", nullptr, true, "access_expires_at"},
      {"InviteClaimed", "/restrictions/tracks/0/pausable", "yes", false,
       "restrictions.tracks[0].pausable"},
      {"InviteClaimed", "/restrictions/tracks/0/track_id", nullptr, true,
       "restrictions.tracks[0].track_id"},
      {"InviteClaimed", "/restrictions/access_duration", "P0D", false,
       "restrictions.access_duration"},
      {"InviteClaimed", "/restrictions/plays_per_track", 1.5, false,
       "restrictions.plays_per_track"},
      {"InviteClaimed", "/restrictions/plays_per_track", 18446744073709551615ull, false,
       "restrictions.plays_per_track"},
      {"InviteClaimed", "/restrictions", json::array(), false, "restrictions"},
      {"InviteClaimed", "/personal_data/answers/consent", true, false,
       "personal_data.answers.consent"},
      {"InviteClaimed", "/personal_data/email", nullptr, true, "personal_data.email"},
      {"ClaimRejected", "/reason", "bored", false, "reason"},
      {"ClaimRejected", "/learner_id", 5, false, "learner_id"},
      {"ApiKeyIssued", "/role", "root", false, "role"},
      {"LearnerRegistered", "/role", "teacher", false, "role"},
      {"InviteCreated", "/settings/type", "webinar", false, "settings.type"},
      {"InviteCreated", "/settings/access", "everyone", false, "settings.access"},
      {"InviteCreated", "/settings/allowed_emails/0", 1, false, "settings.allowed_emails[0]"},
      {"InviteCreated", "/settings/tracks", json::object(), false, "settings.tracks"},
      {"InviteUpdated", "/changed_fields", "title", false, "changed_fields"},
      {"LeadFormChanged", "/form/fields/1/required", nullptr, true, "form.fields[1].required"},
      {"TrackPlayed", "/play_number", "2", false, "play_number"},
  };
  for (const auto& c : cases) {
    json j = to_json(s.at(c.type));
    auto ptr = json::json_pointer(c.pointer);
    if (c.erase) {
      j[ptr.parent_pointer()].erase(ptr.back());
    } else {
      j[ptr] = c.value;
    }
    auto r = event_from_json(c.type, j);
    ASSERT_FALSE(r) << c.type << c.pointer;
    EXPECT_EQ(r.error().field, c.field) << c.type << c.pointer << ": " << r.error().message;
    // Decoding the text (the replay path) refuses it with the same message.
    auto t = event_from_json_text(c.type, j.dump());
    ASSERT_FALSE(t) << c.type << c.pointer;
    EXPECT_EQ(t.error().message, r.error().message);
    EXPECT_EQ(t.error().field, c.field);
    EXPECT_NE(r.error().message.find(c.type), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(c.field), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(event_from_json("TrackPlayed", json("a string")));
  EXPECT_FALSE(event_from_json("TrackPlayed", json()));
}

TEST(codec_json, every_event_decodes_the_same_from_its_text) {
  for (const auto& [type, e] : samples()) {
    json j = to_json(e);
    auto r = event_from_json_text(type, j.dump());
    ASSERT_TRUE(r) << type << ": " << r.error().message;
    EXPECT_TRUE(*r == e) << type;
    // Without personal data: as if the block were null.
    json without = j;
    if (without.contains("personal_data")) without["personal_data"] = nullptr;
    auto expected = event_from_json(type, without);
    ASSERT_TRUE(expected) << type;
    auto w = event_from_json_text(type, j.dump(), /*without_personal_data=*/true);
    ASSERT_TRUE(w) << type << ": " << w.error().message;
    EXPECT_TRUE(*w == *expected) << type;
  }
}

TEST(codec_json, text_that_is_not_an_event_object_is_an_error) {
  for (std::string text : {"", "{", "[]", "\"a string\"", "null", "{\"org_id\": 1}"}) {
    auto r = event_from_json_text("TrackPlayed", text);
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.error().message.find("TrackPlayed"), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(event_from_json_text("NoSuchEvent", to_json(samples().at("TrackPlayed")).dump()));
  // Without personal data the block is still required, as event_from_json requires it.
  json j = to_json(samples().at("InviteClaimed"));
  j.erase("personal_data");
  EXPECT_FALSE(event_from_json_text("InviteClaimed", j.dump(), true));
}

// Fields added after events were stored (created_by, notify_on_claim, a key's email) may be
// absent: older events decode with their neutral default, under the same schema version.
TEST(codec_json, fields_added_later_may_be_absent_in_older_events) {
  auto s = samples();
  json created = to_json(s.at("InviteCreated"));
  created.erase("created_by");
  created["settings"].erase("notify_on_claim");
  auto c = event_from_json("InviteCreated", created);
  ASSERT_TRUE(c) << c.error().message;
  const auto& ic = std::get<d::invite_created>(*c);
  EXPECT_FALSE(ic.created_by_);
  EXPECT_FALSE(ic.settings_.notify_on_claim_);
  EXPECT_EQ(ic.settings_.title_,
            std::get<d::invite_created>(s.at("InviteCreated")).settings_.title_);

  json key = to_json(s.at("ApiKeyIssued"));
  key.erase("email");
  auto k = event_from_json("ApiKeyIssued", key);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_FALSE(std::get<d::api_key_issued>(*k).email_);

  // The text readers (replay, codec) take them the fast way, with the same result.
  const auto before = text_decode_fallbacks();
  auto ct = event_from_json_text("InviteCreated", created.dump());
  ASSERT_TRUE(ct) << ct.error().message;
  EXPECT_TRUE(*ct == *c);
  auto kt = event_from_json_text("ApiKeyIssued", key.dump(), /*without_personal_data=*/true);
  ASSERT_TRUE(kt) << kt.error().message;
  EXPECT_TRUE(*kt == *k);
  EXPECT_EQ(text_decode_fallbacks(), before) << "older events must not need nlohmann";
  auto keys = make_memory_key_store();
  event_codec codec(*keys, pepper);
  auto enc = codec.encode(s.at("InviteCreated"), meta());
  ASSERT_TRUE(enc);
  enc->data = created.dump();
  auto dc = codec.decode(record(*enc));
  ASSERT_TRUE(dc) << dc.error().message;
  EXPECT_TRUE(dc->event == *c);
  EXPECT_EQ(text_decode_fallbacks(), before);

  // Present but mistyped is still an error; fields that were always there stay required.
  created["settings"]["notify_on_claim"] = "yes";
  auto bad = event_from_json("InviteCreated", created);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "settings.notify_on_claim");
  json old_required = to_json(s.at("InviteCreated"));
  old_required["settings"].erase("show_share_button");
  EXPECT_FALSE(event_from_json("InviteCreated", old_required));
  auto bad_text = event_from_json_text("InviteCreated", created.dump());
  ASSERT_FALSE(bad_text);
  EXPECT_EQ(bad_text.error().message, bad.error().message);
  auto old_text = event_from_json_text("InviteCreated", old_required.dump());
  ASSERT_FALSE(old_text);
  EXPECT_EQ(old_text.error().message, "InviteCreated: settings.show_share_button: missing");
}

TEST(codec_json, unknown_fields_are_ignored) {
  json j = to_json(samples().at("TrackPlayed"));
  j["added_in_a_later_build"] = 1;
  auto r = event_from_json("TrackPlayed", j);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r == samples().at("TrackPlayed"));
  auto t = event_from_json_text("TrackPlayed", j.dump());
  ASSERT_TRUE(t);
  EXPECT_TRUE(*t == samples().at("TrackPlayed"));
}

TEST_F(codec_test, invalid_utf8_is_an_encode_error_not_an_exception) {
  auto e = claimed();
  e.personal_data_.first_name_ = "\xff\xfe";
  auto r = codec_.encode(e, meta());
  ASSERT_FALSE(r);
  d::organization_created o{org, "\xc3", at(1)};
  EXPECT_FALSE(codec_.encode(o, meta()));
}

TEST(codec_construction, a_short_pepper_is_refused_at_start_up) {
  auto keys = make_memory_key_store();
  EXPECT_THROW(event_codec(*keys, "short"), std::invalid_argument);
}

// The subject is the HMAC of "<org>|<normalize_email(email)>" whatever the email's case,
// surrounding space or bytes beyond ASCII (left as they are).
TEST_F(codec_test, email_subjects_hash_the_org_and_the_normalized_email) {
  for (std::string email :
       std::vector<std::string>{"eve@example.com", " \tEVE@Example.COM\r\n", "Zoë@Exämple.org", "",
                                "   ", "A@B", std::string(300, 'X')}) {
    for (const uuid& o : {org, id(255), uuid{}}) {
      std::array<unsigned char, 32> md{};
      ASSERT_TRUE(hmac_sha256(pepper, {o.to_string() + "|" + d::normalize_email(email)}, md));
      std::string expected = "email:";
      for (unsigned char c : md) {
        expected += "0123456789abcdef"[c >> 4];
        expected += "0123456789abcdef"[c & 0xf];
      }
      EXPECT_EQ(codec_.email_subject(o, email), expected) << email;
    }
  }
}

// Email subjects are stored keys: the bytes hashed may never change. Pinned value:
// HMAC-SHA256(pepper, "6f1c2d3e-4f50-4162-8394-a5b6c7d8e901|ada@example.com") as
// `openssl dgst -sha256 -hmac <32 x 'p'>` gives it (and the code before the one-buffer
// rewrite did).
TEST_F(codec_test, an_email_subject_is_pinned) {
  constexpr std::string_view expected =
      "email:69035fed72279aaf84f75128957c4ea05d2fd10deab8c3450a3279793656faa4";
  EXPECT_EQ(org.to_string(), "6f1c2d3e-4f50-4162-8394-a5b6c7d8e901");
  EXPECT_EQ(codec_.email_subject(org, " Ada@Example.COM "), expected);
  EXPECT_EQ(codec_.email_subject(org, "ada@example.com"), expected);
  EXPECT_EQ(d::normalize_email(" \tAda@Example.COM\r\n"), "ada@example.com");
}

bool operator==(const decoded_event& a, const decoded_event& b) {
  return a.forgotten == b.forgotten && a.event == b.event;
}

// `e` with other values in every member it can: uuids, times, numbers, booleans, array
// lengths, and free text where the type allows it. The same type: a slot holding it is
// what decoding into a used slot writes over.
d::event altered(std::string_view type, const d::event& e) {
  auto alter = [](json j, bool strings, bool nulls) {
    std::function<void(json&)> walk = [&](json& v) {
      if (v.is_object()) {
        for (auto& [k, x] : v.items()) walk(x);
      } else if (v.is_array()) {
        for (auto& x : v) walk(x);
        if (!v.empty()) v.push_back(v.front());
      } else if (v.is_boolean()) {
        v = !v.get<bool>();
      } else if (v.is_number_integer()) {
        v = v.get<std::int64_t>() + 7;
      } else if (v.is_string()) {
        const auto text = v.get<std::string>();
        if (uuid::parse(text)) {
          v = id(77).to_string();
        } else if (parse_rfc3339(text)) {
          v = format_rfc3339(at(5000, 42));
        } else if (strings) {
          v = text + " (earlier)";
        }
      } else if (v.is_null() && nulls) {
        v = id(78).to_string();  // an optional uuid or time: set (or refused below)
      }
    };
    walk(j);
    return j;
  };
  for (auto [strings, nulls] :
       {std::pair{true, true}, {false, true}, {true, false}, {false, false}}) {
    if (auto r = event_from_json(type, alter(to_json(e), strings, nulls))) return *r;
  }
  return d::event{};  // the caller sees another type
}

// Decoding into a slot that holds an earlier event of the same type (a rebuild's reused
// batches) writes every member: the same result as into a fresh one, through the layout
// reader and through the general one.
TEST_F(codec_test, decoding_into_a_used_slot_gives_what_a_fresh_one_gets) {
  for (bool layout : {true, false}) {
    set_layout_reader(layout);
    for (const auto& [type, e] : samples()) {
      const d::event stale = altered(type, e);
      ASSERT_EQ(stale.index(), e.index()) << type;
      EXPECT_FALSE(stale == e) << type;
      const auto r = stored(e);
      decoded_event slot{stale, true};
      auto into = codec_.decode_into(r, slot);
      ASSERT_TRUE(into) << type << ": " << into.error().message;
      auto fresh = codec_.decode(r);
      ASSERT_TRUE(fresh);
      EXPECT_TRUE(slot == *fresh) << type << (layout ? "" : " (general reader)");
      const std::string text = to_json_text(e);
      for (bool without : {false, true}) {
        d::event ev = stale;
        auto t = event_from_json_text_into(*event_type_index(type), type, text, without, ev);
        ASSERT_TRUE(t) << type << ": " << t.error().message;
        auto expected = event_from_json_text(type, text, without);
        ASSERT_TRUE(expected);
        EXPECT_TRUE(ev == *expected) << type << (without ? " without personal data" : "");
      }
    }
    // Into a slot of another type, and a forgotten block into one that held clear data.
    auto keys = make_memory_key_store();
    event_codec codec(*keys, pepper);
    const d::event registered = samples().at("LearnerRegistered");
    auto enc = codec.encode(registered, meta(210));
    ASSERT_TRUE(enc) << enc.error().message;
    decoded_event other{samples().at("TrackPlayed"), false};
    ASSERT_TRUE(codec.decode_into(record(*enc), other));
    EXPECT_TRUE(other.event == registered);
    EXPECT_FALSE(other.forgotten);
    ASSERT_TRUE(keys->destroy(codec.subject_of(registered)));
    ASSERT_TRUE(codec.decode_into(record(*enc), other));
    EXPECT_TRUE(other.forgotten);
    EXPECT_TRUE(std::get<d::learner_registered>(other.event).personal_data_.empty());
  }
  set_layout_reader(true);
}

// The event of e's type with every member at its default (empty strings and lists, unset
// optionals, no personal data).
d::event default_of(const d::event& e) {
  return std::visit([](const auto& v) { return d::event{std::remove_cvref_t<decltype(v)>{}}; }, e);
}

// A slot holding values the new event lacks (a set optional, personal data, a password
// hash, a second answer) keeps none of them: the same result as a fresh decode, from the
// stored record and from to_json_text(), through both readers.
TEST_F(codec_test, decoding_into_a_used_slot_drops_what_the_new_event_lacks) {
  auto expect_fresh = [&](const d::event& held, const d::event& next, const std::string& what) {
    const auto r = stored(next);
    decoded_event slot{held, true};
    auto into = codec_.decode_into(r, slot);
    ASSERT_TRUE(into) << what << ": " << into.error().message;
    auto fresh = codec_.decode(r);
    ASSERT_TRUE(fresh) << what;
    EXPECT_TRUE(slot == *fresh) << what << " (stored)";
    EXPECT_TRUE(fresh->event == next) << what << " (stored)";
    const std::string type(d::event_type(next));
    const std::string text = to_json_text(next);
    for (bool without : {false, true}) {
      d::event ev = held;
      auto t = event_from_json_text_into(*event_type_index(type), type, text, without, ev);
      ASSERT_TRUE(t) << what << ": " << t.error().message;
      auto expected = event_from_json_text(type, text, without);
      ASSERT_TRUE(expected) << what;
      EXPECT_TRUE(ev == *expected)
          << what << (without ? " (text without personal data)" : " (text)");
      if (!without) {
        EXPECT_TRUE(ev == next) << what << " (text)";
      }
    }
  };
  d::learner_password_set with_hash =
      std::get<d::learner_password_set>(samples().at("LearnerPasswordSet"));
  with_hash.personal_data_ = ada();
  with_hash.personal_data_.password_hash_ = hash_only().password_hash_;
  d::learner_password_set without_hash = with_hash;
  without_hash.personal_data_.password_hash_.clear();
  d::lead_captured two_answers = std::get<d::lead_captured>(samples().at("LeadCaptured"));
  ASSERT_EQ(two_answers.personal_data_.answers_.size(), 2U);
  d::lead_captured one_answer = two_answers;
  one_answer.personal_data_.answers_.erase(one_answer.personal_data_.answers_.begin());
  for (bool layout : {true, false}) {
    set_layout_reader(layout);
    const std::string reader = layout ? "" : " (general reader)";
    const auto misses = layout_decode_misses();
    for (const auto& [type, e] : samples()) {
      expect_fresh(e, default_of(e), std::string(type) + " {} over the sample" + reader);
    }
    expect_fresh(with_hash, without_hash, "a password hash, then none" + reader);
    expect_fresh(two_answers, one_answer, "answers {a, b}, then {a}" + reader);
    // All of it read by the layout reader when on (its resets are what is tested).
    if (layout) {
      EXPECT_EQ(layout_decode_misses(), misses);
    }
  }
  set_layout_reader(true);
}

// --- the layout reader: the exact bytes encode() writes, read without a parse tree ------

// Turns the layout reader off for a scope (the general reader decodes everything).
struct general_reader_only {
  general_reader_only() { set_layout_reader(false); }
  ~general_reader_only() { set_layout_reader(true); }
  general_reader_only(const general_reader_only&) = delete;
  general_reader_only& operator=(const general_reader_only&) = delete;
};

// Both readers give the same answer: the same event, or the same error.
template <typename R>
void expect_same(const R& layout, const R& general, const std::string& what) {
  ASSERT_EQ(static_cast<bool>(layout), static_cast<bool>(general)) << what;
  if (layout) {
    EXPECT_TRUE(*layout == *general) << what;
  } else {
    EXPECT_EQ(layout.error().message, general.error().message) << what;
    EXPECT_EQ(layout.error().field, general.error().field) << what;
  }
}

// The same text in other valid spellings (none of them the encoder's exact layout).
std::vector<std::pair<std::string, std::string>> respellings(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  auto replace_all = [](std::string s, std::string_view from, std::string_view to) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
    return s;
  };
  out.emplace_back("indented", json::parse(text).dump(2));
  out.emplace_back("space after colons", replace_all(text, "\":", "\" :"));
  out.emplace_back("trailing newline", text + "\n");
  {
    // Members in reverse order, at the top level.
    auto ordered = nlohmann::ordered_json::parse(text);
    nlohmann::ordered_json reversed = nlohmann::ordered_json::object();
    std::vector<std::string> names;
    for (auto it = ordered.begin(); it != ordered.end(); ++it) names.push_back(it.key());
    for (auto it = names.rbegin(); it != names.rend(); ++it) reversed[*it] = ordered[*it];
    out.emplace_back("reversed members", reversed.dump());
  }
  out.emplace_back("unknown member", "{\"a_later_member\":[1,{\"x\":null}]," + text.substr(1));
  out.emplace_back("escaped dashes", replace_all(text, "-", "\\u002d"));
  out.emplace_back("escaped slashes", replace_all(text, "/", "\\/"));
  out.emplace_back("escaped names", replace_all(text, "_id\"", "\\u005fid\""));
  out.emplace_back("a member twice", "{\"org_id\":\"not a uuid\"," + text.substr(1));
  return out;
}

// Every event type as encode() stores it takes the layout reader, and reads (decrypted
// personal data included) exactly as the general reader reads it.
TEST_F(codec_test, stored_events_take_the_layout_reader_and_decode_as_the_general_one) {
  for (const auto& [type, e] : samples()) {
    auto r = stored(e);
    const auto missed = layout_decode_misses();
    const auto slow = text_decode_fallbacks();
    auto fast = codec_.decode(r);
    ASSERT_TRUE(fast) << type << ": " << fast.error().message;
    EXPECT_TRUE(fast->event == e) << type;
    EXPECT_EQ(layout_decode_misses(), missed) << type << ": " << r.data;
    EXPECT_EQ(text_decode_fallbacks(), slow) << type;
    general_reader_only off;
    auto general = codec_.decode(r);
    expect_same(fast, general, std::string(type));
  }
}

TEST(codec_json, plain_text_takes_the_layout_reader_and_decodes_as_the_general_one) {
  for (const auto& [type, e] : samples()) {
    const std::string text = to_json_text(e);
    for (bool without : {false, true}) {
      const auto missed = layout_decode_misses();
      auto fast = event_from_json_text(type, text, without);
      EXPECT_EQ(layout_decode_misses(), missed) << type << ": " << text;
      general_reader_only off;
      auto general = event_from_json_text(type, text, without);
      expect_same(fast, general, std::string(type) + (without ? " without" : ""));
      // The same through the type's index (looked up once by a caller that dispatches).
      auto by_index = event_from_json_text(*event_type_index(type), type, text, without);
      expect_same(by_index, general, std::string(type) + " by index");
    }
  }
  // An index that is not the type's is an error, not another type's reading.
  const std::string text = to_json_text(samples().at("TrackPlayed"));
  EXPECT_FALSE(event_from_json_text(*event_type_index("TrackPaused"), "TrackPlayed", text, true));
  EXPECT_FALSE(event_from_json_text(std::size_t{1000}, "TrackPlayed", text, true));
  EXPECT_FALSE(event_from_json_text(*event_type_index("TrackPlayed"), "NoSuchType", text, true));
  EXPECT_FALSE(event_from_json_text(*event_type_index("TrackPlayed"), "TrackPlaye", text, true));
}

// Valid JSON in another spelling than the encoder's is left to the general reader: the
// same events (or errors) as before, whichever reader would have taken them.
TEST_F(codec_test, other_spellings_decode_as_the_general_reader_decodes_them) {
  for (const auto& [type, e] : samples()) {
    const auto r = stored(e);
    for (const auto& [how, text] : respellings(r.data)) {
      auto odd = r;
      odd.data = text;
      const std::string what = std::string(type) + ", " + how + ": " + text;
      const auto missed = layout_decode_misses();
      auto fast = codec_.decode(odd);
      if (text != r.data) {  // (no slash to escape: the same text)
        EXPECT_GT(layout_decode_misses(), missed) << what;
      }
      auto fast_plain = event_from_json_text(type, text, /*without_personal_data=*/true);
      general_reader_only off;
      expect_same(fast, codec_.decode(odd), what);
      expect_same(fast_plain, event_from_json_text(type, text, true), what);
    }
    // The same for the plain (clear) text.
    for (const auto& [how, text] : respellings(to_json_text(e))) {
      const std::string what = std::string(type) + " plain, " + how + ": " + text;
      auto fast = event_from_json_text(type, text);
      general_reader_only off;
      expect_same(fast, event_from_json_text(type, text), what);
    }
  }
}

// Text beyond ASCII: valid UTF-8 is read the fast way; invalid UTF-8, control characters
// and numbers the encoder never writes fail or decode exactly as with the general reader.
TEST_F(codec_test, unicode_numbers_and_odd_bytes_read_as_the_general_reader_reads_them) {
  d::learner_registered lr{org, id(4), d::learner_role::student, false, at(21), ada()};
  lr.personal_data_.first_name_ = "Zoë 日本 \xf0\x9f\x8e\xb5";
  lr.personal_data_.answers_["naïve"] = "café";
  d::track_registered tr{org, "piste-é", "Écoute — 🎧", true, id(9), at(5)};
  for (const d::event& e : {d::event{lr}, d::event{tr}}) {
    auto r = stored(e);
    const auto missed = layout_decode_misses();
    auto fast = codec_.decode(r);
    ASSERT_TRUE(fast) << fast.error().message;
    EXPECT_TRUE(fast->event == e);
    EXPECT_EQ(layout_decode_misses(), missed) << "valid UTF-8 needs no general reader";
    general_reader_only off;
    expect_same(fast, codec_.decode(r), r.data);
  }

  const std::string played = to_json_text(samples().at("TrackPlayed"));
  ASSERT_NE(played.find("\"play_number\":2"), std::string::npos);
  auto with_number = [&](std::string_view n) {
    std::string t = played;
    t.replace(t.find("\"play_number\":2") + 14, 1, n);
    return t;
  };
  std::vector<std::string> odd = {
      with_number("2.0"),
      with_number("2e0"),
      with_number("-0"),
      with_number("02"),
      with_number("-7"),
      with_number("123456789012345678"),
      with_number("1234567890123456789"),
      with_number("9223372036854775807"),
      with_number("9223372036854775808"),
      with_number("-9223372036854775808"),
      with_number("true"),
      with_number("\"2\""),
      with_number("null"),
  };
  std::string t = played;
  t.replace(t.find("k8s-basics"), 3, "\xff\xfe\x41");  // invalid UTF-8 in a string
  odd.push_back(t);
  t = played;
  t.replace(t.find("k8s-basics"), 1, "\x01");  // a raw control character
  odd.push_back(t);
  t = played;
  t.replace(t.find("k8s-basics"), 1, "\xc3\xa9");  // valid two-byte character
  odd.push_back(t);
  odd.push_back(played.substr(0, played.size() - 1));  // cut short
  odd.push_back(played + "x");                         // trailing garbage
  odd.push_back(played + played);                      // two documents
  for (const auto& text : odd) {
    auto fast = event_from_json_text("TrackPlayed", text);
    general_reader_only off;
    expect_same(fast, event_from_json_text("TrackPlayed", text), text);
  }
}

// The layout reader looks at 16 bytes at a time for what ends or breaks a string, and
// compares member names (with their quotes, colon and comma) without memcmp: every byte
// that matters, at every place of strings of every length around those widths, and any
// byte put anywhere in an event's text, is taken or refused exactly as the general reader
// takes or refuses it (the same event, or the same error).
TEST_F(codec_test, every_odd_byte_at_every_place_reads_as_the_general_reader_reads_it) {
  const std::vector<std::string> odd_bytes = {"\"",
                                              "\\",
                                              "\\n",
                                              "\\u0041",
                                              "\x01",
                                              "\x1f",
                                              " ",
                                              "\x7f",
                                              "\x80",
                                              "\xc3\xa9",
                                              "\xc3",
                                              "\xff",
                                              "\xf0\x9f\x8e\xb5",
                                              "A",
                                              "0",
                                              "-",
                                              ":",
                                              ",",
                                              "}",
                                              "{",
                                              std::string(1, '\0')};
  auto expect_same_reading = [&](const std::string& type, const std::string& text,
                                 const std::string& what) {
    for (bool without : {false, true}) {
      auto fast = event_from_json_text(type, text, without);
      general_reader_only off;
      expect_same(fast, event_from_json_text(type, text, without), what);
    }
  };
  // Titles of 0 to 40 characters, each odd byte at each place of it.
  for (std::size_t len = 0; len <= 40; ++len) {
    std::string title;
    for (std::size_t i = 0; i < len; ++i) title += static_cast<char>('a' + i % 26);
    const d::track_registered tr{org, "k8s-basics", title, true, id(9), at(5)};
    const std::string text = to_json_text(d::event{tr});
    const auto at_title = text.find("\"" + title + "\"") + 1;
    ASSERT_NE(at_title, std::string::npos);
    expect_same_reading("TrackRegistered", text, text);
    for (std::size_t i = 0; i <= len; ++i) {
      for (const auto& b : odd_bytes) {
        std::string t = text;
        t.insert(at_title + i, b);
        expect_same_reading("TrackRegistered", t, t);
        if (i < len) {
          t = text;
          t.replace(at_title + i, 1, b);
          expect_same_reading("TrackRegistered", t, t);
        }
      }
    }
  }
  // Any odd byte in place of any byte of a whole event (names, numbers, ids, times, the
  // envelope), in plain text and in a stored record (decrypted, or refused, the same way).
  for (const std::string type : {"TrackPlayed", "InviteClaimed", "LearnerRegistered"}) {
    const d::event e = samples().at(type);
    const std::string text = to_json_text(e);
    const auto r = stored(e);
    for (std::size_t i = 0; i < std::max(text.size(), r.data.size()); ++i) {
      for (const auto& b : odd_bytes) {
        if (i < text.size()) {
          std::string t = text;
          t.replace(i, 1, b);
          expect_same_reading(type, t, t);
        }
        if (i < r.data.size()) {
          auto odd = r;
          odd.data.replace(i, 1, b);
          auto fast = codec_.decode(odd);
          general_reader_only off;
          expect_same(fast, codec_.decode(odd), odd.data);
        }
      }
    }
  }
}

// Answers are a map: the encoder writes its names in order, once each; any other order
// or a repeated name leaves it to the general reader (whose rule for repeats stays).
TEST(codec_json, personal_data_answers_in_another_order_or_repeated_read_as_before) {
  const std::string text = to_json_text(samples().at("LeadCaptured"));
  const std::string in_order = "{\"company\":\"Analytical Engines Ltd\",\"consent\":\"yes\"}";
  ASSERT_NE(text.find(in_order), std::string::npos) << text;
  for (std::string answers : {std::string("{\"consent\":\"yes\",\"company\":\"A\"}"),
                              std::string("{\"company\":\"A\",\"company\":\"B\"}"),
                              std::string("{}"), std::string("{\"x\":1}")}) {
    std::string t = text;
    t.replace(t.find(in_order), in_order.size(), answers);
    auto fast = event_from_json_text("LeadCaptured", t);
    general_reader_only off;
    expect_same(fast, event_from_json_text("LeadCaptured", t), t);
  }
}

// A key store that counts get_or_create() per subject (the rest goes to a memory store).
class counting_keys final : public key_store {
 public:
  std::map<std::string, int> asked;
  result<data_key, key_store_error> get_or_create(std::string_view subject) override {
    ++asked[std::string(subject)];
    return inner_->get_or_create(subject);
  }
  result<std::optional<data_key>, key_store_error> find(std::string_view subject) override {
    return inner_->find(subject);
  }
  bool is_destroyed(std::string_view subject) override { return inner_->is_destroyed(subject); }
  result<void, key_store_error> destroy(std::string_view subject) override {
    return inner_->destroy(subject);
  }
  result<void, key_store_error> sync() override { return inner_->sync(); }
  result<void, key_store_error> create_ahead(const std::vector<std::string>& subjects) override {
    return inner_->create_ahead(subjects);
  }
  bool preload() override { return inner_->preload(); }
  void end_preload() override { inner_->end_preload(); }

 private:
  std::unique_ptr<key_store> inner_ = make_memory_key_store();
};

TEST(codec_encode_keys, a_commands_events_about_one_learner_look_its_key_up_once) {
  counting_keys keys;
  event_codec codec(keys, pepper);
  const d::learner_registered registered{org,   id(4),  d::learner_role::student,
                                         false, at(21), ada()};
  const d::password_setup_issued setup{org, id(4), id(15), id(2), at(26), at(27), email_only()};
  const d::invite_claimed claim = claimed();  // learner id(4) too
  encode_keys kept;
  std::vector<new_event> encoded;
  std::uint8_t n = 200;
  for (const d::event& e : std::vector<d::event>{registered, setup, claim}) {
    auto enc = codec.encode(e, meta(n++), kept);
    ASSERT_TRUE(enc) << enc.error().message;
    encoded.push_back(std::move(*enc));
  }
  EXPECT_EQ(keys.asked[learner_subject(id(4))], 1);
  // Each decodes as it was, under the learner's key, and is what encode() without kept
  // stores (but for the random IV): the same subject in the envelope.
  const std::vector<d::event> want = {registered, setup, claim};
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    auto back = codec.decode(record(encoded[i]));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_FALSE(back->forgotten);
    EXPECT_EQ(back->event, want[i]);
    EXPECT_EQ(json::parse(encoded[i].data)["personal_data"]["subject"], learner_subject(id(4)));
  }
  // Without kept, every event looks its key up.
  ASSERT_TRUE(codec.encode(claim, meta(210)));
  EXPECT_EQ(keys.asked[learner_subject(id(4))], 2);
}

TEST(codec_encode_keys, an_event_about_another_subject_uses_its_own_key) {
  counting_keys keys;
  event_codec codec(keys, pepper);
  encode_keys kept;
  const d::learner_registered ada_registered{org,   id(4),  d::learner_role::student,
                                             false, at(21), ada()};
  const d::learner_registered bob_registered{org,   id(5),  d::learner_role::student,
                                             false, at(22), email_only("bob@example.com")};
  // No learner: keyed by the email's subject.
  const d::claim_rejected rejected{org,   id(2),  d::rejection_reason::not_allowed, std::nullopt,
                                   false, at(12), email_only("eve@example.com")};
  std::uint8_t n = 200;
  for (const d::event& e :
       std::vector<d::event>{ada_registered, bob_registered, rejected, ada_registered}) {
    auto enc = codec.encode(e, meta(n++), kept);
    ASSERT_TRUE(enc) << enc.error().message;
    auto back = codec.decode(record(*enc));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->event, e);
    EXPECT_EQ(json::parse(enc->data)["personal_data"]["subject"], codec.subject_of(e));
  }
  EXPECT_EQ(keys.asked[learner_subject(id(4))], 2);  // kept holds one subject: bob's came between
  EXPECT_EQ(keys.asked[learner_subject(id(5))], 1);
  EXPECT_EQ(keys.asked[codec.email_subject(org, "eve@example.com")], 1);
}

TEST(codec_encode_keys, a_forgotten_emails_next_generation_is_kept_with_its_subject) {
  counting_keys keys;
  event_codec codec(keys, pepper);
  ASSERT_TRUE(codec.forget_email(org, "eve@example.com"));
  // No learner: keyed by the email's subject.
  const d::claim_rejected rejected{org,   id(2),  d::rejection_reason::not_allowed, std::nullopt,
                                   false, at(12), email_only("eve@example.com")};
  const std::string base = codec.email_subject(org, "eve@example.com");
  encode_keys kept;
  for (std::uint8_t n = 200; n < 202; ++n) {
    auto enc = codec.encode(rejected, meta(n), kept);
    ASSERT_TRUE(enc) << enc.error().message;
    EXPECT_EQ(json::parse(enc->data)["personal_data"]["subject"], base + ".2");
    auto back = codec.decode(record(*enc));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_FALSE(back->forgotten);
    EXPECT_EQ(back->event, d::event{rejected});
  }
  EXPECT_EQ(keys.asked[base], 1);
  EXPECT_EQ(keys.asked[base + ".2"], 1);
}

}  // namespace
}  // namespace passage::eventstore
