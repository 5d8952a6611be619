#include "consumers/cloudevent.h"

#include "common/time_format.h"

namespace passage::consumers {

std::string cloudevent_type(std::string_view event_type, std::uint32_t schema_version) {
  std::string t = "io.passage.";
  t.append(event_type);
  t.append(".v");
  t.append(std::to_string(schema_version));
  return t;
}

nlohmann::json to_cloudevent(const eventstore::recorded_event& e, nlohmann::json data) {
  nlohmann::json ce = {
      {"specversion", "1.0"},
      {"id", e.event_id.to_string()},
      {"type", cloudevent_type(e.type, e.schema_version)},
      {"source", "/orgs/" + e.org_id},
      {"subject", e.stream},
      {"time", format_rfc3339(e.recorded_at)},
      {"datacontenttype", "application/json"},
      // Extension names: lower-case ASCII letters and digits only (CloudEvents 1.0 §3.1.1).
      {"position", e.position},
      {"streamversion", e.stream_version},
  };
  if (!e.correlation_id.empty()) ce["correlationid"] = e.correlation_id;
  if (!e.causation_id.empty()) ce["causationid"] = e.causation_id;
  if (!e.actor.empty()) ce["actor"] = e.actor;
  if (data.is_null()) {
    ce["dataerror"] = "undecodable";
  } else {
    ce["data"] = std::move(data);
  }
  return ce;
}

std::string to_cloudevent_json(const eventstore::recorded_event& e, nlohmann::json data) {
  return to_cloudevent(e, std::move(data))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace passage::consumers
