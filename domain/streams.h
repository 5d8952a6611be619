#pragma once
// Stream names, one per aggregate instance. The invite stream serialises claims (claim
// limit, one claim per learner); each claim's plays live in their own stream so plays never
// contend with claims. See README.md.

#include <string>
#include <string_view>

#include "common/uuid.h"

namespace passage::domain {

std::string organization_stream(const uuid& org_id);                      // org-<uuid>
std::string track_stream(const uuid& org_id, std::string_view track_id);  // track-<org>-<id>
std::string invite_stream(const uuid& invite_id);                         // invite-<uuid>
std::string claim_stream(const uuid& claim_id);                           // claim-<uuid>
std::string learner_stream(const uuid& learner_id);                       // learner-<uuid>
std::string email_job_stream(const uuid& job_id);                         // job-<uuid>

}  // namespace passage::domain
