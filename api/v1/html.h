#pragma once
// The plain learner page behind an invite link (/i/{code}): the invite's public
// fields, the form its access rule needs, and the result with the track list.
// Works without JavaScript (the invite, why it is closed, the form); web/static/
// learner.js, an embedded module, adds claiming, playing and pausing through the
// public JSON API. No inline code, no CDN; accessible (labels, live region).

#include <nlohmann/json.hpp>

#include "common/encoding.h"

#include <string>
#include <utility>
#include <vector>

namespace passage::api::v1 {

// What the page's own form post (POST /i/{code}, no scripts) led to.
struct claim_page_outcome {
  nlohmann::json submitted;   // the claim request built from the form (fields are kept)
  nlohmann::json claim;       // the claim answer (as POST .../claims returns), or null
  bool again = false;         // the learner had claimed before
  std::string rejection;      // a problem code when refused
  std::string missing_field;  // with details_missing
};

// `invite` is the public invite JSON, `lead_form` the org's form JSON;
// `outcome` when the page answers its own form post; `invitation` the personal
// link token (private invitation, `?invitation=`) the page was opened with, kept
// in the form's target so that its post claims through that link.
std::string claim_page(const nlohmann::json& invite, const nlohmann::json& lead_form,
                       const claim_page_outcome* outcome = nullptr,
                       std::string_view invitation = {});

// The JSON claim request from the form's fields (email, names, answer.<name>;
// a checked checkbox is "true").
nlohmann::json claim_form_body(const std::vector<std::pair<std::string, std::string>>& form);
std::string not_found_page();

}  // namespace passage::api::v1
