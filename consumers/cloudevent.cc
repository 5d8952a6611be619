#include "consumers/cloudevent.h"

#include <optional>
#include <utility>

#include "common/time_format.h"
#include "eventstore/json_text.h"

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

namespace {

void append_member(std::string& out, std::string_view name, std::string_view value) {
  out += ",\"";
  out += name;
  out += "\":";
  eventstore::append_json_string(out, value, eventstore::invalid_utf8::replace);
}

}  // namespace

// Written by hand rather than through to_cloudevent(): building and dumping a
// nlohmann object per message was most of the relay's CPU. Same members and
// values (a test holds the two together); members in CloudEvents order.
std::string to_cloudevent_json(const eventstore::recorded_event& e, nlohmann::json data) {
  std::string out;
  out.reserve(320 + e.stream.size() + e.org_id.size() + e.data.size());
  out += R"({"specversion":"1.0","id":")";
  out += e.event_id.to_string();
  out += '"';
  append_member(out, "type", cloudevent_type(e.type, e.schema_version));
  append_member(out, "source", "/orgs/" + e.org_id);
  append_member(out, "subject", e.stream);
  append_member(out, "time", format_rfc3339(e.recorded_at));
  out += R"(,"datacontenttype":"application/json","position":)";
  out += std::to_string(e.position);
  out += R"(,"streamversion":)";
  out += std::to_string(e.stream_version);
  if (!e.correlation_id.empty()) append_member(out, "correlationid", e.correlation_id);
  if (!e.causation_id.empty()) append_member(out, "causationid", e.causation_id);
  if (!e.actor.empty()) append_member(out, "actor", e.actor);
  if (data.is_null()) {
    out += R"(,"dataerror":"undecodable"})";
  } else {
    out += R"(,"data":)";
    out += data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '}';
  }
  return out;
}

namespace {

const std::string* string_attribute(const nlohmann::json& ce, const char* name) {
  auto it = ce.find(name);
  return it != ce.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

std::optional<std::uint64_t> unsigned_attribute(const nlohmann::json& ce, const char* name) {
  auto it = ce.find(name);
  if (it == ce.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

// "io.passage.InviteClaimed.v1" -> ("InviteClaimed", 1)
std::optional<std::pair<std::string, std::uint32_t>> split_type(std::string_view t) {
  constexpr std::string_view prefix = "io.passage.";
  if (!t.starts_with(prefix)) return std::nullopt;
  t.remove_prefix(prefix.size());
  auto dot = t.rfind(".v");
  if (dot == std::string_view::npos || dot == 0 || dot + 2 >= t.size()) return std::nullopt;
  std::uint32_t version = 0;
  for (char c : t.substr(dot + 2)) {
    if (c < '0' || c > '9' || version > 100'000) return std::nullopt;
    version = version * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return std::pair{std::string(t.substr(0, dot)), version};
}

}  // namespace

result<received_event, std::string> from_cloudevent_json(std::string_view body) {
  auto ce = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (ce.is_discarded() || !ce.is_object()) return fail(std::string("not a JSON object"));
  auto missing = [](const char* name) {
    return std::string("missing or invalid \"") + name + "\"";
  };
  const std::string* spec = string_attribute(ce, "specversion");
  if (spec == nullptr || *spec != "1.0") return fail(missing("specversion"));
  received_event r;
  auto& e = r.event;
  const std::string* id = string_attribute(ce, "id");
  auto parsed_id = id ? uuid::parse(*id) : std::nullopt;
  if (!parsed_id) return fail(missing("id"));
  e.event_id = *parsed_id;
  const std::string* type = string_attribute(ce, "type");
  auto split = type ? split_type(*type) : std::nullopt;
  if (!split) return fail(missing("type"));
  e.type = std::move(split->first);
  e.schema_version = split->second;
  const std::string* source = string_attribute(ce, "source");
  if (source == nullptr || !source->starts_with("/orgs/") || source->size() == 6)
    return fail(missing("source"));
  e.org_id = source->substr(6);
  const std::string* subject = string_attribute(ce, "subject");
  if (subject == nullptr || subject->empty()) return fail(missing("subject"));
  e.stream = *subject;
  const std::string* time = string_attribute(ce, "time");
  auto at = time ? parse_rfc3339(*time) : std::nullopt;
  if (!at) return fail(missing("time"));
  e.recorded_at = *at;
  auto position = unsigned_attribute(ce, "position");
  if (!position || *position == 0) return fail(missing("position"));
  e.position = *position;
  auto stream_version = unsigned_attribute(ce, "streamversion");
  if (!stream_version || *stream_version == 0) return fail(missing("streamversion"));
  e.stream_version = *stream_version;
  for (auto [name, slot] :
       {std::pair{"correlationid", &e.correlation_id}, std::pair{"causationid", &e.causation_id},
        std::pair{"actor", &e.actor}}) {
    if (const std::string* v = string_attribute(ce, name)) *slot = *v;
  }
  auto data = ce.find("data");
  if (data == ce.end() || !data->is_object()) {
    return fail(std::string(ce.contains("dataerror")
                                ? "the publisher could not show this event's data"
                                : "missing or invalid \"data\""));
  }
  r.data = std::move(*data);
  return r;
}

}  // namespace passage::consumers
