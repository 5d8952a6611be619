#include "consumers/welcome_mail.h"

#include "common/time_format.h"

namespace passage::consumers {

mail_kind welcome_kind(const domain::password_setup_issued& e) {
  // A claim's registration names its invite; a link staff sent again
  // (POST /v1/learners/{id}/password-setup) names none: the account exists already.
  return e.invite_id_ ? mail_kind::welcome : mail_kind::password_link;
}

mail_message welcome_message(const domain::password_setup_issued& e, const welcome_facts& facts,
                             const std::string& templates_dir, std::string from,
                             std::string message_id) {
  return welcome_message(e, facts,
                         template_for(welcome_kind(e), templates_dir, e.org_id_.to_string()),
                         std::move(from), std::move(message_id));
}

mail_message welcome_message(const domain::password_setup_issued& e, const welcome_facts& facts,
                             const mail_template& tpl, std::string from, std::string message_id) {
  const auto& first = e.personal_data_.first_name_;
  const std::string expires_at = format_rfc3339(e.expires_at_);
  const template_value values[] = {
      {"title", facts.title.empty() ? std::string_view("your invite") : facts.title},
      {"name", first.empty() ? std::string_view("there") : first},
      {"link", facts.link},
      {"expires_at", expires_at}};
  return render_views(tpl, values, std::move(from), e.personal_data_.email_, std::move(message_id));
}

}  // namespace passage::consumers
