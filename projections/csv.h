#pragma once
// CSV of the acceptance list (GET /v1/invites/{id}/claims with Accept: text/csv):
// RFC 4180 (CRLF rows, fields quoted when they hold a comma, quote, CR or LF, quotes
// doubled) with spreadsheet formula injection neutralised: a cell starting with
// = + - @ (or a tab or CR) gets a leading single quote so Excel and friends show it as text.
//
//   std::string body = acceptance_csv(*models->acceptance_list(org, invite));

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "projections/read_models.h"

namespace passage::projections {

// One cell, neutralised and quoted as needed.
std::string csv_cell(std::string_view value);
// One row of cells, terminated by CRLF.
std::string csv_row(const std::vector<std::string>& cells);

// Header: claim_id,learner_id,anonymous,email,first_name,last_name,claimed_at,access_expires_at,
// seconds_since_invite_created
// A forgotten learner's email reads "forgotten"; anonymous claims have an empty email.
std::string acceptance_csv(std::span<const acceptance_row> rows);

}  // namespace passage::projections
