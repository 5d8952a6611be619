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
  // When set, rows go to this file instead of `out`: created (or truncated) by run_export
  // once the options are known to be usable, and closed when it returns.
  std::optional<std::string> output_path;
  // Progress on stderr (events scanned, events/s). Default: off.
  bool progress = false;
};

struct export_summary {
  std::uint64_t rows = 0;
  std::uint64_t scanned = 0;
  std::uint64_t up_to_position = 0;  // the log's head when the export started
  double seconds = 0;
};

// Why run_export() failed. `usage`: the options ask for no export there can be (a type that
// is no event type, types for a kind other than events), found before anything is opened or
// written (`passage export` exits 2); otherwise the export itself failed (the data folder,
// the output file, the log: exits 1).
struct export_error {
  bool usage = false;
  std::string message;
};

result<export_summary, export_error> run_export(const export_options& options);

}  // namespace passage::app
