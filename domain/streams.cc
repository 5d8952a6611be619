#include "domain/streams.h"

namespace passage::domain {

std::string organization_stream(const uuid& org_id) { return "org-" + org_id.to_string(); }

std::string track_stream(const uuid& org_id, std::string_view track_id) {
  // Track ids are chosen by each org ("k8s-basics"), so the org is part of the name.
  return "track-" + org_id.to_string() + "-" + std::string(track_id);
}

std::string invite_stream(const uuid& invite_id) { return "invite-" + invite_id.to_string(); }
std::string claim_stream(const uuid& claim_id) { return "claim-" + claim_id.to_string(); }
std::string learner_stream(const uuid& learner_id) { return "learner-" + learner_id.to_string(); }
std::string email_job_stream(const uuid& job_id) { return "job-" + job_id.to_string(); }

}  // namespace passage::domain
