#pragma once
// Stored events as CloudEvents 1.0 in the structured JSON format (SPEC §5): the
// message body the relay publishes to Kafka. Pure: the caller supplies the data
// as shown outside (event_codec::to_public_json), so no ciphertext ever leaves.
//
//   auto shown = codec.to_public_json(recorded);
//   std::string body = to_cloudevent_json(recorded, shown ? *shown : nlohmann::json());
//   // {"specversion":"1.0","id":"…","type":"io.passage.InviteClaimed.v1",
//   //  "source":"/orgs/…","subject":"invite-…","time":"2026-11-20T09:00:00Z",
//   //  "datacontenttype":"application/json","position":42,"streamversion":3,…,"data":{…}}

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "common/result.h"
#include "eventstore/event.h"

namespace passage::consumers {

// Content type of a structured-mode CloudEvent; also the Kafka `content-type` header.
inline constexpr std::string_view cloudevents_content_type = "application/cloudevents+json";

// "io.passage.<event type>.v<schema version>", e.g. "io.passage.InviteClaimed.v1".
std::string cloudevent_type(std::string_view event_type, std::uint32_t schema_version);

// The CloudEvent for `e` whose `data` is `data`. Attributes: specversion, id (the
// event id), type, source ("/orgs/<org_id>"), subject (the stream), time
// (recorded_at, RFC 3339 UTC), datacontenttype, and the extensions position,
// streamversion (JSON integers) and correlationid, causationid, actor (strings,
// left out when empty). A null `data` is left out and marked by the extension
// `dataerror` = "undecodable": the event is still published (the log must reach
// consumers whole), but nothing unreadable is shown.
nlohmann::json to_cloudevent(const eventstore::recorded_event& e, nlohmann::json data);

// to_cloudevent() serialised (compact UTF-8; invalid UTF-8 replaced, never thrown).
std::string to_cloudevent_json(const eventstore::recorded_event& e, nlohmann::json data);

// A CloudEvent read back from Kafka (a replica's input): the stored event's envelope
// (`data` left empty) and its data as published, personal data in clear or
// {"forgotten": true}.
struct received_event {
  eventstore::recorded_event event;
  nlohmann::json data;
};

// The inverse of to_cloudevent_json(). Fails, naming the attribute, on anything that is
// not a Passage CloudEvent: another specversion or type prefix, a missing id, source,
// subject, time, position (>= 1) or streamversion, or no `data` (a `dataerror` message).
result<received_event, std::string> from_cloudevent_json(std::string_view body);

}  // namespace passage::consumers
