#pragma once
// The welcome mail of a new account (issue 8): for each PasswordSetupIssued (a learner a
// claim registered, by code or by a private invitation's personal link) one mail with the
// one-time set-password link, the invite's public title and the link's expiry. Template
// kind `welcome`, per organization like the others (`<dir>/<org>/welcome.subject|.txt|
// .html`). A link sent again by staff (the event names no invite) gets the kind
// `password_link` instead (own files, same values): the account was not created by it.
// Pure: the mailer (mailer.cc) sends it, ledgers it and records the outcome.
//
//   auto m = welcome_message(event, {.title = "Kubernetes 101", .link = url}, dir, from, id);

#include <string>

#include "consumers/mail_message.h"
#include "domain/events.h"

namespace passage::consumers {

struct welcome_facts {
  std::string title;  // the invite's public title ("" when unknown)
  std::string link;   // the full set-password URL
};

mail_message welcome_message(const domain::password_setup_issued& e, const welcome_facts& facts,
                             const std::string& templates_dir, std::string from,
                             std::string message_id);
// The kind of the mail for `e` (welcome or password_link), and the mail rendered with `tpl`
// (template_for() of that kind, read once for many mails).
mail_kind welcome_kind(const domain::password_setup_issued& e);
mail_message welcome_message(const domain::password_setup_issued& e, const welcome_facts& facts,
                             const mail_template& tpl, std::string from, std::string message_id);

}  // namespace passage::consumers
