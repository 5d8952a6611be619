#pragma once
// Access durations: how long a claim grants access, as an ISO-8601 duration
// ("P1Y2M3DT4H5M", "P2W", "PT90M") or "forever". Calendar arithmetic is in UTC.
//
//   auto d = parse_access_duration("P1M");           // domain_result<access_duration>
//   auto until = access_expires_at(claimed_at, *d);  // nullopt when forever

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "domain/errors.h"

namespace passage::domain {

// Components are kept as written so that formatting round-trips ("P2W" stays "P2W",
// "PT90M" stays "PT90M").
struct access_duration {
  bool forever_ = true;
  std::int64_t years_ = 0;
  std::int64_t months_ = 0;
  std::int64_t weeks_ = 0;
  std::int64_t days_ = 0;
  std::int64_t hours_ = 0;
  std::int64_t minutes_ = 0;
  std::int64_t seconds_ = 0;

  static access_duration forever() { return {}; }
  friend bool operator==(const access_duration&, const access_duration&) = default;
};

// Accepts "forever" or PnYnMnDTnHnMnS (each part optional, at least one, upper-case
// designators, integers of at most 6 digits) or PnW alone. Rejects fractions, empty
// parts ("P", "PT", "P1DT"), zero durations (use forever or a positive length) and
// durations longer than 1000 years. `field` names the command field in errors.
domain_result<access_duration> parse_access_duration(std::string_view text,
                                                     std::string_view field = "access_duration");

// Canonical text: "forever" or the ISO form with zero parts omitted.
std::string format_access_duration(const access_duration& d);

// t + d in UTC calendar terms: years and months first with the day clamped to the end
// of the target month (Jan 31 + P1M = Feb 28/29; Feb 29 + P1Y = Feb 28), then weeks
// and days, then hours, minutes and seconds. Precondition: !d.forever_.
timestamp add_duration(timestamp t, const access_duration& d);

// When access granted at `start` ends; nullopt for forever. Access is over when
// now >= the returned instant.
std::optional<timestamp> access_expires_at(timestamp start, const access_duration& d);

}  // namespace passage::domain
