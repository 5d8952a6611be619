// Stored events -> CloudEvents 1.0 structured JSON (SPEC §5).

#include "consumers/cloudevent.h"

#include <gtest/gtest.h>

#include <regex>
#include <vector>

#include "common/time_format.h"

namespace passage::consumers {
namespace {

eventstore::recorded_event sample() {
  eventstore::recorded_event e;
  e.event_id = *uuid::parse("6f1c2a4e-8b1d-4c3e-9f00-112233445566");
  e.type = "InviteClaimed";
  e.schema_version = 2;
  e.stream = "invite-7d1e";
  e.stream_version = 3;
  e.position = 42;
  e.recorded_at = *parse_rfc3339("2026-11-20T09:00:00Z");
  e.org_id = "0b9c";
  e.correlation_id = "corr-1";
  e.causation_id = "cause-1";
  e.actor = "key:abc";
  e.data = R"({"personal_data":{"alg":"A256GCM","ct":"…"}})";  // never shown as is
  return e;
}

TEST(cloudevent, MapsTheEnvelopeToCloudEventsAttributes) {
  auto ce = to_cloudevent(sample(), nlohmann::json{{"invite_id", "7d1e"}});
  const nlohmann::json expected = {
      {"specversion", "1.0"},
      {"id", "6f1c2a4e-8b1d-4c3e-9f00-112233445566"},
      {"type", "io.passage.InviteClaimed.v2"},
      {"source", "/orgs/0b9c"},
      {"subject", "invite-7d1e"},
      {"time", "2026-11-20T09:00:00Z"},
      {"datacontenttype", "application/json"},
      {"position", 42},
      {"streamversion", 3},
      {"correlationid", "corr-1"},
      {"causationid", "cause-1"},
      {"actor", "key:abc"},
      {"data", {{"invite_id", "7d1e"}}},
  };
  EXPECT_EQ(ce, expected);
}

TEST(cloudevent, DataIsWhatTheCallerShowsNeverTheStoredBytes) {
  auto text =
      to_cloudevent_json(sample(), nlohmann::json{{"personal_data", {{"forgotten", true}}}});
  EXPECT_EQ(text.find("A256GCM"), std::string::npos);
  auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["data"]["personal_data"]["forgotten"], true);
}

TEST(cloudevent, EmptyOptionalExtensionsAreLeftOut) {
  auto e = sample();
  e.correlation_id.clear();
  e.causation_id.clear();
  e.actor.clear();
  auto ce = to_cloudevent(e, nlohmann::json::object());
  EXPECT_FALSE(ce.contains("correlationid"));
  EXPECT_FALSE(ce.contains("causationid"));
  EXPECT_FALSE(ce.contains("actor"));
  EXPECT_EQ(ce["data"], nlohmann::json::object());
}

TEST(cloudevent, UndecodableDataIsMarkedNotShown) {
  auto ce = to_cloudevent(sample(), nullptr);
  EXPECT_FALSE(ce.contains("data"));
  EXPECT_EQ(ce["dataerror"], "undecodable");
}

TEST(cloudevent, AttributeNamesAreLowerCaseAlphanumerics) {
  const std::regex name("[a-z0-9]{1,20}");
  const auto ce = to_cloudevent(sample(), nlohmann::json::object());
  for (const auto& [key, value] : ce.items()) EXPECT_TRUE(std::regex_match(key, name)) << key;
}

TEST(cloudevent, TimeKeepsMicroseconds) {
  auto e = sample();
  e.recorded_at += microseconds(123456);
  EXPECT_EQ(to_cloudevent(e, {})["time"], "2026-11-20T09:00:00.123456Z");
}

TEST(cloudevent, InvalidUtf8InTextIsReplacedNotThrown) {
  auto e = sample();
  e.actor = "key:\xff";
  std::string text;
  EXPECT_NO_THROW(text = to_cloudevent_json(e, nlohmann::json::object()));
  EXPECT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded());
}

// The serialised form is written by hand for speed; it must say exactly what
// to_cloudevent() says, whatever the text in the envelope.
TEST(cloudevent, SerialisedFormMatchesTheJsonModel) {
  const std::vector<std::string> texts = {"",
                                          "plain",
                                          "quote \" backslash \\ slash /",
                                          "tab\tnew\nline\rcr\b\f",
                                          std::string("nul\0ctl\x01\x1f", 9),
                                          "caf\xc3\xa9 \xe2\x82\xac",
                                          "bad \xff\xfe utf8"};
  for (const auto& text : texts) {
    auto e = sample();
    e.stream = "invite-" + text;
    e.org_id = text;
    e.type = "Invite" + text;
    e.correlation_id = text;
    e.causation_id = text;
    e.actor = text;
    e.recorded_at += microseconds(7);
    for (const auto& data : {nlohmann::json(nullptr), nlohmann::json::object(),
                             nlohmann::json{{"title", text}, {"n", 3}, {"list", {1, "x"}}}}) {
      SCOPED_TRACE(text);
      auto parsed = nlohmann::json::parse(to_cloudevent_json(e, data), nullptr, false);
      ASSERT_FALSE(parsed.is_discarded());
      auto model = nlohmann::json::parse(
          to_cloudevent(e, data).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      EXPECT_EQ(parsed, model);
    }
  }
}

TEST(cloudevent, TypeNamesEventAndSchemaVersion) {
  EXPECT_EQ(cloudevent_type("TrackPlayed", 1), "io.passage.TrackPlayed.v1");
}

}  // namespace
}  // namespace passage::consumers
