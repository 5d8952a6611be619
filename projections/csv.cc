#include "projections/csv.h"

#include "common/time_format.h"

namespace passage::projections {

std::string csv_cell(std::string_view value) {
  std::string cell;
  if (!value.empty()) {
    const char c = value.front();
    if (c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r')
      cell.push_back('\'');
  }
  cell.append(value);
  if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
  std::string quoted = "\"";
  for (char c : cell) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

std::string csv_row(const std::vector<std::string>& cells) {
  std::string row;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) row.push_back(',');
    row += csv_cell(cells[i]);
  }
  row += "\r\n";
  return row;
}

std::string acceptance_csv(std::span<const acceptance_row> rows) {
  std::string out =
      csv_row({"claim_id", "learner_id", "anonymous", "email", "first_name", "last_name",
               "claimed_at", "access_expires_at", "seconds_since_invite_created"});
  for (const auto& r : rows) {
    out += csv_row({r.claim_id.to_string(), r.learner_id.to_string(),
                    r.anonymous ? "true" : "false", r.who.forgotten ? "forgotten" : r.who.email,
                    r.who.first_name, r.who.last_name, format_rfc3339(r.claimed_at),
                    r.access_expires_at ? format_rfc3339(*r.access_expires_at) : "",
                    std::to_string(r.seconds_since_invite_created)});
  }
  return out;
}

}  // namespace passage::projections
