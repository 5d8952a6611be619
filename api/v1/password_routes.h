#pragma once
// The learner's password (issue 8): the page behind a welcome mail's one-time link
// (GET/POST /p/{token}, a plain form that works without scripts; GET of a used, expired,
// replaced or invalid link shows that instead of the form), the same as JSON
// (POST /v1/public/password/{token}), and logging in with it
// (POST /v1/public/learners/login -> the learner token claims and plays use).

#include <memory>
#include <string>

#include "api/router.h"
#include "api/v1/endpoints.h"

namespace passage::api::v1 {

void password_routes(router& r, std::shared_ptr<const endpoint_deps> d);

// The set-password page: the form, or what its post led to. `problem_code` is a problem
// code ("token_expired", "invalid_request", ...) with `detail`; `done` once the password
// is set.
std::string password_page(bool done, const std::string& problem_code, const std::string& detail);

}  // namespace passage::api::v1
