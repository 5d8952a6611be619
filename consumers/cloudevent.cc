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

namespace {

// Appends `s` as a JSON string. ASCII goes through a small escaper (the common
// case, and the hot path of the relay); anything else through nlohmann, which
// replaces invalid UTF-8 instead of throwing.
void append_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    if (c >= 0x80) {
      out += nlohmann::json(std::string(s))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
  }
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void append_member(std::string& out, std::string_view name, std::string_view value) {
  out += ",\"";
  out += name;
  out += "\":";
  append_string(out, value);
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

}  // namespace passage::consumers
