#include "app/export.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "app/offline.h"
#include "common/time_format.h"
#include "domain/events.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/csv.h"

namespace passage::app {
namespace {

using nlohmann::json;

std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// The personal data block as shown: decrypted, or forgotten.
std::string person(const json& data, const char* field) {
  auto it = data.find("personal_data");
  if (it == data.end() || !it->is_object()) return {};
  if (it->value("forgotten", false)) return std::string(field) == "email" ? "forgotten" : "";
  return text(*it, field);
}

std::vector<std::string> header(export_kind k) {
  switch (k) {
    case export_kind::claims:
      return {"position",
              "recorded_at",
              "org_id",
              "invite_id",
              "claim_id",
              "learner_id",
              "anonymous",
              "claimed_at",
              "access_expires_at",
              "email",
              "seconds_since_invite_created"};
    case export_kind::rejections:
      return {"position", "recorded_at", "org_id", "invite_id", "reason", "learner_id", "email"};
    case export_kind::leads:
      return {"position", "recorded_at", "org_id",    "learner_id", "invite_id",
              "email",    "first_name",  "last_name", "answers"};
    case export_kind::events:
      return {"position",       "recorded_at", "type",   "stream",
              "stream_version", "event_id",    "org_id", "data"};
  }
  return {};
}

std::vector<std::string> row(export_kind k, const eventstore::recorded_event& e, const json& d) {
  std::string position = std::to_string(e.position), at = format_rfc3339(e.recorded_at);
  switch (k) {
    case export_kind::claims:
      return {position,
              at,
              e.org_id,
              text(d, "invite_id"),
              text(d, "claim_id"),
              text(d, "learner_id"),
              text(d, "anonymous"),
              text(d, "claimed_at"),
              text(d, "access_expires_at"),
              person(d, "email")};
    case export_kind::rejections:
      return {position,          at,
              e.org_id,          text(d, "invite_id"),
              text(d, "reason"), text(d, "learner_id"),
              person(d, "email")};
    case export_kind::leads: {
      auto pd = d.find("personal_data");
      std::string answers = pd != d.end() && pd->is_object() && pd->contains("answers")
                                ? (*pd)["answers"].dump()
                                : "";
      return {position,
              at,
              e.org_id,
              text(d, "learner_id"),
              text(d, "invite_id"),
              person(d, "email"),
              person(d, "first_name"),
              person(d, "last_name"),
              answers};
    }
    case export_kind::events:
      return {position,
              at,
              e.type,
              e.stream,
              std::to_string(e.stream_version),
              e.event_id.to_string(),
              e.org_id,
              d.dump()};
  }
  return {};
}

// Seconds from the invite's creation to the claim; "" when the creation is not exported
// (a --since after it).
std::string since_created(const std::unordered_map<std::string, timestamp>& created,
                          const json& claim) {
  auto c = created.find(text(claim, "invite_id"));
  auto at = parse_rfc3339(text(claim, "claimed_at"));
  if (c == created.end() || !at) return {};
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*at - c->second).count());
}

json ndjson_line(export_kind k, const eventstore::recorded_event& e, const json& d,
                 const std::vector<std::string>& cells) {
  if (k == export_kind::events) {
    return {{"position", e.position},
            {"recorded_at", format_rfc3339(e.recorded_at)},
            {"type", e.type},
            {"stream", e.stream},
            {"stream_version", e.stream_version},
            {"event_id", e.event_id.to_string()},
            {"org_id", e.org_id},
            {"correlation_id", e.correlation_id},
            {"actor", e.actor},
            {"data", d}};
  }
  json j = json::object();
  auto names = header(k);
  for (std::size_t i = 0; i < names.size(); ++i) j[names[i]] = cells[i];
  j["position"] = e.position;
  return j;
}

// What is wrong with `o` as a request (a type that is no event type, types for a kind
// other than events); "" when nothing.
std::string check_export_options(const export_options& o) {
  if (!o.types.empty() && o.kind != export_kind::events) {
    return "--type applies to `export events` only";
  }
  const auto known = domain::all_event_types();
  for (const auto& t : o.types) {
    if (std::find(known.begin(), known.end(), t) != known.end()) continue;
    std::string names;
    for (auto k : known) names += (names.empty() ? "" : ", ") + std::string(k);
    return "--type: '" + t + "' is not an event type (known: " + names + ")";
  }
  return {};
}

// The export could not write all its rows to `name`: `error` is errno.
std::string cannot_write(const std::string& name, int error) {
  std::string why = error != 0 ? std::string(" (") + std::strerror(error) + ")" : "";
  return "cannot write " + name + why + ": the export is incomplete";
}

unexpected<export_error> failed(std::string message) {
  return fail(export_error{false, std::move(message)});
}

}  // namespace

result<export_summary, export_error> run_export(const export_options& o) {
  if (auto wrong = check_export_options(o); !wrong.empty()) {
    return fail(export_error{true, std::move(wrong)});
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(nullptr, &std::fclose);
  std::FILE* out = o.out;
  const std::string out_name = o.output_path ? *o.output_path : "standard output";
  if (o.output_path) {
    file.reset(std::fopen(o.output_path->c_str(), "w"));
    if (!file) return failed("cannot write " + *o.output_path);
    out = file.get();
  }
  auto data = open_offline(o.data_dir);
  if (!data) return failed(data.error());
  auto& store = (*data)->store;
  const auto& codec = *(*data)->codec;

  eventstore::log_filter f;
  f.to_position = store->head_position();  // a consistent cut: what existed at the start
  // Claims: the invites' creations are read whatever --since says (the time from creation
  // to each claim); the claims before it are left out below.
  if (o.kind != export_kind::claims) f.since = o.since;
  f.until = o.until;
  if (o.as_of) {
    auto after = *o.as_of + std::chrono::microseconds(1);
    f.until = f.until ? std::min(*f.until, after) : after;
  }
  switch (o.kind) {
    case export_kind::claims:
      // InviteCreated for the time from an invite's creation to each claim.
      f.types = {"InviteClaimed", "InviteCreated"};
      break;
    case export_kind::rejections:
      f.types = {"ClaimRejected"};
      break;
    case export_kind::leads:
      f.types = {"LeadCaptured"};
      break;
    case export_kind::events:
      f.types = o.types;
      break;
  }
  // Claims and rejections are events of the invite's stream; leads, plays, pauses and
  // resumes belong to learners' and claims' streams and name the invite in their data.
  const std::string invite = o.invite ? o.invite->to_string() : "";
  const bool invite_stream_only =
      o.kind == export_kind::claims || o.kind == export_kind::rejections;
  if (o.invite && invite_stream_only) f.stream_prefix = "invite-" + invite;
  const std::string org = o.org ? o.org->to_string() : "";

  export_summary sum;
  sum.up_to_position = f.to_position;
  // A full disk or a closed pipe: the first write that fails ends the export (the rows
  // after it would be lost too), and the export fails rather than leave a truncated file
  // behind a success.
  std::optional<std::string> write_failure;
  auto write = [&](const std::string& line) {
    if (std::fwrite(line.data(), 1, line.size(), out) == line.size()) return true;
    write_failure = cannot_write(out_name, errno);
    return false;
  };
  if (o.format == export_format::csv && !write(projections::csv_row(header(o.kind)))) {
    return failed(*write_failure);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto last_report = t0;
  std::optional<std::string> failure;
  std::unordered_map<std::string, timestamp> invite_created;  // claims: invite id -> created_at
  auto scanned = store->scan(f, [&](const eventstore::recorded_event& e) {
    ++sum.scanned;
    if (!org.empty() && e.org_id != org) return true;
    // Claims are read from the start for the invites' creations: the claims before
    // --since are left out here.
    if (o.since && e.recorded_at < *o.since && e.type != "InviteCreated") return true;
    auto data = codec.to_public_json(e);
    if (!data) {
      failure = "event at position " + std::to_string(e.position) +
                " cannot be decoded: " + data.error().message;
      return false;
    }
    if (!invite.empty() && !invite_stream_only && e.stream != "invite-" + invite &&
        text(*data, "invite_id") != invite) {
      return true;
    }
    if (o.kind == export_kind::claims && e.type == "InviteCreated") {
      if (auto t = parse_rfc3339(text(*data, "created_at"))) {
        invite_created[text(*data, "invite_id")] = *t;
      }
      return true;
    }
    auto cells = row(o.kind, e, *data);
    if (o.kind == export_kind::claims) cells.push_back(since_created(invite_created, *data));
    std::string line = o.format == export_format::csv
                           ? projections::csv_row(cells)
                           : ndjson_line(o.kind, e, *data, cells).dump() + "\n";
    if (!write(line)) return false;
    ++sum.rows;
    if (o.progress) {
      auto now = std::chrono::steady_clock::now();
      if (now - last_report > std::chrono::milliseconds(500)) {
        last_report = now;
        double s = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "\rexported %llu rows, position %llu of %llu, %.0f events/s",
                     static_cast<unsigned long long>(sum.rows),
                     static_cast<unsigned long long>(e.position),
                     static_cast<unsigned long long>(f.to_position), double(e.position) / s);
      }
    }
    return true;
  });
  if (write_failure) return failed(*write_failure);
  errno = 0;
  // Buffered rows reach the output here: their errors are the output's too.
  if (std::fflush(out) != 0 || std::ferror(out)) return failed(cannot_write(out_name, errno));
  if (file && std::fclose(file.release()) != 0) return failed(cannot_write(out_name, errno));
  if (!scanned) return failed(scanned.error().message);
  if (failure) return failed(*failure);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.progress) std::fprintf(stderr, "\n");
  return sum;
}

}  // namespace passage::app
