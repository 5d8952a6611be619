#pragma once
// Errors of the command side, in one vocabulary for every caller: a stable
// snake_case code (the domain's codes plus a few of the service's own), the
// offending field, a message for humans. The api module maps codes to HTTP
// statuses in one table.

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"
#include "domain/errors.h"

namespace passage::service {

struct service_error {
  std::string code;   // "not_found", "full", "version_conflict", "unavailable", ...
  std::string field;  // may be empty
  std::string message;
  // version_conflict: the aggregate's current version, for a client to retry with.
  std::optional<std::uint64_t> current_version;
};

inline service_error from_domain(const domain::domain_error& e) {
  return {std::string(domain::to_string(e.code_)), e.field_, e.message_, std::nullopt};
}

inline service_error make_service_error(std::string code, std::string message,
                                        std::string field = {}) {
  return {std::move(code), std::move(field), std::move(message), std::nullopt};
}

template <typename T>
using service_result = result<T, service_error>;

}  // namespace passage::service
