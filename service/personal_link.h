#pragma once
// Personal links of private invitations: "pl1." + base64url(invite id, invitation id,
// HMAC-SHA256 tag under a server secret). Unforgeable, and nothing secret is stored: the
// invitation id alone names the link in events, and the invite aggregate knows which
// invitation id is current for each address, so "issue a new link" revokes the old one.
//
//   personal_link_codec links(derive_key(secret, "personal-link"));
//   std::string token = links.issue({invite_id, invitation_id});   // goes into the mail
//   auto ref = links.verify(token);                                 // nullopt: forged

#include <optional>
#include <string>
#include <string_view>

#include "common/uuid.h"

namespace passage::service {

struct personal_link_ref {
  uuid invite_id;
  uuid invitation_id;
};

// Thread-safe (immutable after construction).
class personal_link_codec {
 public:
  explicit personal_link_codec(std::string secret) : secret_(std::move(secret)) {}

  std::string issue(const personal_link_ref& link) const;
  // nullopt for anything not issued with this secret.
  std::optional<personal_link_ref> verify(std::string_view token) const;

 private:
  std::string secret_;
};

}  // namespace passage::service
