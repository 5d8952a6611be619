#include "domain/duration.h"

#include <algorithm>
#include <chrono>

namespace passage::domain {

namespace {

domain_error bad(std::string_view field, std::string message) {
  return make_error(errc::invalid_request, std::string(field), std::move(message));
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

domain_result<access_duration> parse_access_duration(std::string_view text,
                                                     std::string_view field) {
  if (text == "forever") return access_duration::forever();
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty() || text.front() != 'P') {
    return bad(field, "expected an ISO-8601 duration such as P30D or \"forever\", got " + quoted);
  }
  access_duration d;
  d.forever_ = false;
  // Designators allowed in each part, in the order they must appear.
  constexpr std::string_view date_order = "YMWD";
  constexpr std::string_view time_order = "HMS";
  bool in_time = false;
  bool any_part = false;
  bool any_time_part = false;
  bool weeks_seen = false;
  bool other_date_seen = false;
  std::size_t next_date = 0;
  std::size_t next_time = 0;
  std::size_t i = 1;
  while (i < text.size()) {
    if (text[i] == 'T') {
      if (in_time) return bad(field, "duplicate 'T' in " + quoted);
      in_time = true;
      ++i;
      continue;
    }
    std::size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == start) return bad(field, "expected a number in " + quoted);
    if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
      return bad(field, "fractional values are not supported in " + quoted);
    }
    if (i - start > 6) return bad(field, "number too large in " + quoted);
    if (i == text.size()) return bad(field, "number without designator in " + quoted);
    std::int64_t value = 0;
    for (std::size_t k = start; k < i; ++k) value = value * 10 + (text[k] - '0');
    const char designator = text[i++];
    if (!in_time) {
      auto pos = date_order.find(designator);
      if (pos == std::string_view::npos || pos < next_date) {
        return bad(field, std::string("unexpected designator '") + designator + "' in " + quoted);
      }
      next_date = pos + 1;
      switch (designator) {
        case 'Y':
          d.years_ = value;
          other_date_seen = true;
          break;
        case 'M':
          d.months_ = value;
          other_date_seen = true;
          break;
        case 'W':
          d.weeks_ = value;
          weeks_seen = true;
          break;
        case 'D':
          d.days_ = value;
          other_date_seen = true;
          break;
      }
    } else {
      auto pos = time_order.find(designator);
      if (pos == std::string_view::npos || pos < next_time) {
        return bad(field, std::string("unexpected designator '") + designator + "' in " + quoted);
      }
      next_time = pos + 1;
      any_time_part = true;
      switch (designator) {
        case 'H':
          d.hours_ = value;
          break;
        case 'M':
          d.minutes_ = value;
          break;
        case 'S':
          d.seconds_ = value;
          break;
      }
    }
    any_part = true;
  }
  if (in_time && !any_time_part)
    return bad(field, "'T' must be followed by a time part in " + quoted);
  if (!any_part) return bad(field, "empty duration " + quoted);
  // ISO 8601-1 allows weeks only on their own (PnW).
  if (weeks_seen && (other_date_seen || any_time_part)) {
    return bad(field, "weeks (W) cannot be combined with other parts in " + quoted);
  }
  const double approx_seconds =
      static_cast<double>(d.years_) * 31556952.0 + static_cast<double>(d.months_) * 2629746.0 +
      static_cast<double>(d.weeks_) * 604800.0 + static_cast<double>(d.days_) * 86400.0 +
      static_cast<double>(d.hours_) * 3600.0 + static_cast<double>(d.minutes_) * 60.0 +
      static_cast<double>(d.seconds_);
  if (approx_seconds <= 0) {
    return bad(field, "duration must be positive (use \"forever\" for unlimited), got " + quoted);
  }
  if (approx_seconds > 1000.0 * 31556952.0) {
    return bad(field, "duration longer than 1000 years: " + quoted);
  }
  return d;
}

std::string format_access_duration(const access_duration& d) {
  if (d.forever_) return "forever";
  std::string out = "P";
  auto part = [&out](std::int64_t v, char designator) {
    if (v != 0) out += std::to_string(v) + designator;
  };
  part(d.years_, 'Y');
  part(d.months_, 'M');
  part(d.weeks_, 'W');
  part(d.days_, 'D');
  if (d.hours_ != 0 || d.minutes_ != 0 || d.seconds_ != 0) {
    out += 'T';
    part(d.hours_, 'H');
    part(d.minutes_, 'M');
    part(d.seconds_, 'S');
  }
  if (out == "P") out = "PT0S";
  return out;
}

timestamp add_duration(timestamp t, const access_duration& d) {
  using namespace std::chrono;
  const sys_days midnight = floor<days>(t);
  const auto time_of_day = t - midnight;
  const year_month_day ymd{midnight};
  const std::int64_t month_index = static_cast<std::int64_t>(static_cast<int>(ymd.year())) * 12 +
                                   static_cast<std::int64_t>(static_cast<unsigned>(ymd.month())) -
                                   1 + d.years_ * 12 + d.months_;
  const year y{static_cast<int>(month_index / 12)};
  const month m{static_cast<unsigned>(month_index % 12 + 1)};
  const day last = year_month_day_last{y, month_day_last{m}}.day();
  const year_month_day target{y, m, std::min(ymd.day(), last)};
  timestamp out = sys_days{target} + time_of_day;
  out += days{d.weeks_ * 7 + d.days_};
  out += hours{d.hours_} + minutes{d.minutes_} + seconds{d.seconds_};
  return out;
}

std::optional<timestamp> access_expires_at(timestamp start, const access_duration& d) {
  if (d.forever_) return std::nullopt;
  return add_duration(start, d);
}

}  // namespace passage::domain
