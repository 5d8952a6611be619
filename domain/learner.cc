#include "domain/learner.h"

#include "domain/organization.h"
#include "domain/password.h"
#include "domain/text.h"

namespace passage::domain {

learner_state evolve(learner_state s, const event& e) {
  if (const auto* r = std::get_if<learner_registered>(&e)) {
    s.exists_ = true;
    s.org_id_ = r->org_id_;
    s.learner_id_ = r->learner_id_;
    s.role_ = r->role_;
    s.must_change_password_ = r->must_change_password_;
    s.email_ = r->personal_data_.email_;
    ++s.version_;
  } else if (std::holds_alternative<lead_captured>(e)) {
    s.lead_submitted_ = true;
    ++s.version_;
  } else if (const auto* p = std::get_if<password_setup_issued>(&e)) {
    s.setup_id_ = p->setup_id_;
    s.setup_expires_at_ = p->expires_at_;
    s.setup_used_ = false;
    ++s.version_;
  } else if (const auto* p = std::get_if<learner_password_set>(&e)) {
    if (s.setup_id_ == p->setup_id_) s.setup_used_ = true;
    s.password_hash_ = p->personal_data_.password_hash_;
    s.must_change_password_ = false;
    ++s.version_;
  } else if (std::holds_alternative<learner_forgotten>(e)) {
    s.forgotten_ = true;
    s.email_.clear();
    s.password_hash_.clear();
    ++s.version_;
  }
  return s;
}

domain_result<event_list> decide(const learner_state& s, const register_learner& c, timestamp now) {
  if (s.forgotten_) return make_error(errc::forgotten, "id", "the learner was forgotten");
  if (s.exists_) return make_error(errc::already_exists, "id", "the learner exists already");
  if (c.learner_id_.is_nil()) return make_error(errc::invalid_request, "id", "nil learner id");
  if (!is_valid_email(c.email_)) {
    return make_error(errc::invalid_request, "email", "not an email address");
  }
  learner_registered e;
  e.org_id_ = c.org_id_;
  e.learner_id_ = c.learner_id_;
  e.registered_at_ = now;
  e.personal_data_.email_ = normalize_email(c.email_);
  e.personal_data_.first_name_ = std::string(trim(c.first_name_));
  e.personal_data_.last_name_ = std::string(trim(c.last_name_));
  return event_list{std::move(e)};
}

domain_result<event_list> decide(const learner_state& s, const capture_lead& c, timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "id", "no such learner");
  if (s.forgotten_) return make_error(errc::forgotten, "id", "the learner was forgotten");
  auto answers = check_lead_submission(c.lead_form_, c.first_name_, c.last_name_, c.answers_);
  if (!answers) return answers.error();
  lead_captured e;
  e.org_id_ = s.org_id_;
  e.learner_id_ = s.learner_id_;
  e.invite_id_ = c.invite_id_;
  e.captured_at_ = now;
  e.personal_data_.email_ = s.email_;
  e.personal_data_.first_name_ = std::string(trim(c.first_name_));
  e.personal_data_.last_name_ = std::string(trim(c.last_name_));
  e.personal_data_.answers_ = std::move(*answers);
  return event_list{std::move(e)};
}

domain_result<event_list> decide(const learner_state& s, const forget_learner&, timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "id", "no such learner");
  if (s.forgotten_) return event_list{};
  return event_list{learner_forgotten{s.org_id_, s.learner_id_, now}};
}

domain_result<event_list> decide(const learner_state& s, const issue_password_setup& c,
                                 timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "id", "no such learner");
  if (s.forgotten_) return make_error(errc::forgotten, "id", "the learner was forgotten");
  if (c.setup_id_.is_nil()) return make_error(errc::invalid_request, "setup_id", "nil setup id");
  password_setup_issued e;
  e.org_id_ = s.org_id_;
  e.learner_id_ = s.learner_id_;
  e.setup_id_ = c.setup_id_;
  e.invite_id_ = c.invite_id_;
  e.issued_at_ = now;
  e.expires_at_ = now + password_setup_validity;
  e.personal_data_.email_ = s.email_;
  return event_list{std::move(e)};
}

domain_result<event_list> decide(const learner_state& s, const set_password& c, timestamp now) {
  if (!s.exists_ || s.forgotten_ || !s.setup_id_) {
    return make_error(errc::token_invalid, "token", "this set-password link is not valid");
  }
  if (*s.setup_id_ != c.setup_id_) {
    return make_error(errc::token_replaced, "token",
                      "a newer set-password link was sent; use the latest mail");
  }
  if (s.setup_used_) {
    return make_error(errc::token_used, "token", "this set-password link was used already");
  }
  if (now >= s.setup_expires_at_) {
    return make_error(errc::token_expired, "token", "this set-password link has expired");
  }
  if (c.password_hash_.empty()) {
    return make_error(errc::invalid_request, "password", "no password hash");
  }
  learner_password_set e;
  e.org_id_ = s.org_id_;
  e.learner_id_ = s.learner_id_;
  e.setup_id_ = c.setup_id_;
  e.set_at_ = now;
  e.personal_data_.password_hash_ = c.password_hash_;
  return event_list{std::move(e)};
}

}  // namespace passage::domain
