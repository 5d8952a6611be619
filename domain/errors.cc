#include "domain/errors.h"

namespace passage::domain {

std::string_view to_string(errc code) {
  switch (code) {
    case errc::invalid_request:
      return "invalid_request";
    case errc::not_found:
      return "not_found";
    case errc::forbidden:
      return "forbidden";
    case errc::version_conflict:
      return "version_conflict";
    case errc::already_exists:
      return "already_exists";
    case errc::expired:
      return "expired";
    case errc::not_open_yet:
      return "not_open_yet";
    case errc::full:
      return "full";
    case errc::not_allowed:
      return "not_allowed";
    case errc::deactivated:
      return "deactivated";
    case errc::deleted:
      return "deleted";
    case errc::details_missing:
      return "details_missing";
    case errc::access_expired:
      return "access_expired";
    case errc::play_limit_reached:
      return "play_limit_reached";
    case errc::not_pausable:
      return "not_pausable";
    case errc::invalid_state:
      return "invalid_state";
    case errc::forgotten:
      return "forgotten";
    case errc::token_invalid:
      return "token_invalid";
    case errc::token_used:
      return "token_used";
    case errc::token_expired:
      return "token_expired";
    case errc::token_replaced:
      return "token_replaced";
    case errc::notify_email_missing:
      return "notify_email_missing";
  }
  return "unknown";
}

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "passage.domain"; }
  std::string message(int ev) const override {
    return std::string(to_string(static_cast<errc>(ev)));
  }
};

}  // namespace

const std::error_category& domain_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace passage::domain
