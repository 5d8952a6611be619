#pragma once
// Set-password links of the welcome mail: "ps1." + base64url(learner id, setup id,
// HMAC-SHA256 tag under a server secret). Only the random setup id is stored (in
// PasswordSetupIssued); without the secret nobody can make the link from the log. The
// learner aggregate knows which setup id is current, used or expired.
//
//   password_setup_codec setups(derive_key(secret, "password-setup"));
//   std::string token = setups.issue({learner_id, setup_id});  // goes into the mail
//   auto ref = setups.verify(token);                            // nullopt: forged

#include <optional>
#include <string>
#include <string_view>

#include "common/uuid.h"

namespace passage::service {

struct password_setup_ref {
  uuid learner_id;
  uuid setup_id;
};

// Thread-safe (immutable after construction).
class password_setup_codec {
 public:
  explicit password_setup_codec(std::string secret) : secret_(std::move(secret)) {}

  std::string issue(const password_setup_ref& ref) const;
  // nullopt for anything not issued with this secret.
  std::optional<password_setup_ref> verify(std::string_view token) const;

 private:
  std::string secret_;
};

}  // namespace passage::service
