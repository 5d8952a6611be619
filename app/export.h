#pragma once
// `passage export`: claims, rejections, leads or raw events as CSV or NDJSON,
// straight from the event log. It opens the log and the key store read-only (RocksDB
// secondary instances), so it runs while the server writes; it exports the prefix
// of the log that existed when it started (a consistent cut), streaming, in bounded
// memory. Personal data is decrypted, or shown as "forgotten". Claims carry the seconds
// from the invite's creation to the claim.

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/uuid.h"

namespace passage::app {

enum class export_kind { events, claims, rejections, leads };
enum class export_format { ndjson, csv };

struct export_options {
  std::string data_dir = "data";
  export_kind kind = export_kind::claims;
  export_format format = export_format::csv;
  std::optional<uuid> org;  // only this organization
  // Only this invite's events: those of its stream, and others that name it (a claim's
  // plays, pauses and resumes, its leads).
  std::optional<uuid> invite;
  std::optional<timestamp> since, until;  // recorded_at in [since, until)
  // Only events recorded at or before this instant: the claims export then lists exactly
  // the acceptance lists as the server showed them at that instant (GET ...?as_of=).
  std::optional<timestamp> as_of;
  std::vector<std::string> types;  // events only: these types (known event type names)
  std::FILE* out = stdout;
  // Progress on stderr (events scanned, events/s). Default: off.
  bool progress = false;
};

struct export_summary {
  std::uint64_t rows = 0;
  std::uint64_t scanned = 0;
  std::uint64_t up_to_position = 0;  // the log's head when the export started
  double seconds = 0;
};

// What is wrong with `options` as a request (a type that is no event type, types for a
// kind other than events); "" when nothing.
std::string check_export_options(const export_options& options);

result<export_summary, std::string> run_export(const export_options& options);

}  // namespace passage::app
