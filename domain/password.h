#pragma once
// Learner passwords (issue 8): a learner a claim registers gets a one-time set-password
// link (PasswordSetupIssued, mailed in the welcome mail), valid for 7 days. Using it
// records the password's slow salted hash (LearnerPasswordSet) and clears
// must_change_password. A link stops working once used, once a newer one is issued for
// the learner, after its 7 days, and when the learner is forgotten.
//
// The domain sees only the setup id (random; the signed link is made outside) and the
// hash (made by the service, service/password_hash.h): no secrets, no I/O.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/errors.h"
#include "domain/events.h"

namespace passage::domain {

// How long a set-password link works after it was issued.
inline constexpr std::chrono::hours password_setup_validity{24 * 7};
// Password policy: at least 10 characters (code points), at most 256 bytes, well-formed
// UTF-8 without control characters.
inline constexpr std::size_t password_min_chars = 10;
inline constexpr std::size_t password_max_bytes = 256;

// invalid_request (field "password") naming the rule a password breaks.
domain_result<bool> check_password_policy(std::string_view password);

// The link of a learner registered just now (by a claim), for the same append as its
// LearnerRegistered: valid from the registration for password_setup_validity, addressed
// to the registration's email.
password_setup_issued issue_password_setup_for(const learner_registered& registered,
                                               const uuid& setup_id, std::optional<uuid> invite_id);

}  // namespace passage::domain
