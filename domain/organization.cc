#include "domain/organization.h"

#include <set>

#include "domain/text.h"

namespace passage::domain {

namespace {

domain_error invalid(std::string field, std::string message) {
  return make_error(errc::invalid_request, std::move(field), std::move(message));
}

std::optional<domain_error> check_key(const uuid& key_id, role r, const std::string& name,
                                      const std::string& hash) {
  if (key_id.is_nil()) return invalid("id", "key id must not be nil");
  if (r == role::operator_) return invalid("role", "role must be owner, admin or professor");
  if (trim(name).empty()) return invalid("name", "name is required");
  if (name.size() > 200) return invalid("name", "name is longer than 200");
  if (!is_valid_key_hash(hash)) return invalid("key_hash", "expected a hex SHA-256 of the key");
  return std::nullopt;
}

}  // namespace

domain_result<std::map<std::string, std::string>> check_lead_submission(
    const lead_form& form, std::string_view first_name, std::string_view last_name,
    const std::map<std::string, std::string>& answers) {
  if (trim(first_name).empty()) {
    return make_error(errc::details_missing, "first_name", "first name is required");
  }
  if (trim(last_name).empty()) {
    return make_error(errc::details_missing, "last_name", "last name is required");
  }
  std::map<std::string, std::string> kept;
  for (const auto& f : form.fields_) {
    auto it = answers.find(f.name_);
    const bool answered = it != answers.end() && !trim(it->second).empty();
    if (f.name_ == consent_field_name) {
      const std::string v = answered ? to_lower_ascii(trim(it->second)) : "";
      if (v != "true" && v != "yes" && v != "on" && v != "1") {
        return make_error(errc::details_missing, f.name_, "consent is required");
      }
    } else if (f.required_ && !answered) {
      return make_error(errc::details_missing, f.name_, "\"" + f.name_ + "\" is required");
    }
    if (answered) kept[f.name_] = std::string(trim(it->second));
  }
  return kept;
}

bool is_valid_key_hash(std::string_view hash) {
  if (hash.size() != 64) return false;
  for (char c : hash) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

organization_state evolve(organization_state s, const event& e) {
  if (const auto* v = std::get_if<organization_created>(&e)) {
    s.exists_ = true;
    s.org_id_ = v->org_id_;
    s.name_ = v->name_;
    ++s.version_;
  } else if (const auto* k = std::get_if<api_key_issued>(&e)) {
    s.api_keys_[k->key_id_] = api_key_record{k->key_id_, k->role_,      k->name_, k->key_hash_,
                                             false,      k->issued_at_, k->email_};
    ++s.version_;
  } else if (const auto* r = std::get_if<api_key_revoked>(&e)) {
    if (auto it = s.api_keys_.find(r->key_id_); it != s.api_keys_.end()) it->second.revoked_ = true;
    ++s.version_;
  } else if (const auto* m = std::get_if<api_key_email_changed>(&e)) {
    if (auto it = s.api_keys_.find(m->key_id_); it != s.api_keys_.end())
      it->second.email_ = m->email_;
    ++s.version_;
  } else if (const auto* f = std::get_if<lead_form_changed>(&e)) {
    s.lead_form_ = f->form_;
    ++s.version_;
  }
  return s;
}

domain_result<lead_form> validate_lead_form(const lead_form& form) {
  if (form.fields_.size() > 50) return invalid("fields", "at most 50 fields");
  lead_form out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < form.fields_.size(); ++i) {
    const auto& f = form.fields_[i];
    const std::string path = "fields[" + std::to_string(i) + "]";
    if (!is_valid_field_name(f.name_)) {
      return invalid(path + ".name", "field names are 1-64 characters of [a-z0-9_.-]");
    }
    if (f.name_ == "first_name" || f.name_ == "last_name" || f.name_ == "email") {
      return invalid(path + ".name", "\"" + f.name_ + "\" is always collected; do not list it");
    }
    if (!seen.insert(f.name_).second) {
      return invalid(path + ".name", "field \"" + f.name_ + "\" is listed twice");
    }
    if (f.label_.size() > 200) return invalid(path + ".label", "label is longer than 200");
    lead_form_field field = f;
    if (field.name_ == consent_field_name) field.required_ = true;  // consent is never optional
    out.fields_.push_back(std::move(field));
  }
  return out;
}

domain_result<event_list> decide(const organization_state& s, const create_organization& c,
                                 timestamp now) {
  if (s.exists_) return make_error(errc::already_exists, "id", "the organization exists");
  if (c.org_id_.is_nil()) return invalid("id", "organization id must not be nil");
  if (trim(c.name_).empty()) return invalid("name", "name is required");
  if (c.name_.size() > 200) return invalid("name", "name is longer than 200");
  if (auto err = check_key(c.owner_key_id_, role::owner, c.owner_key_name_, c.owner_key_hash_)) {
    return *err;
  }
  return event_list{organization_created{c.org_id_, std::string(trim(c.name_)), now},
                    api_key_issued{c.org_id_, c.owner_key_id_, role::owner, c.owner_key_name_,
                                   c.owner_key_hash_, now}};
}

domain_result<event_list> decide(const organization_state& s, const issue_api_key& c,
                                 timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "", "no such organization");
  if (auto err = check_key(c.key_id_, c.role_, c.name_, c.key_hash_)) return *err;
  if (s.api_keys_.contains(c.key_id_)) {
    return make_error(errc::already_exists, "id", "an API key with this id exists");
  }
  std::optional<std::string> email;
  if (c.email_) {
    if (!is_valid_email(trim(*c.email_))) return invalid("email", "not a valid email address");
    email = normalize_email(*c.email_);
  }
  return event_list{
      api_key_issued{s.org_id_, c.key_id_, c.role_, c.name_, c.key_hash_, now, std::move(email)}};
}

domain_result<event_list> decide(const organization_state& s, const revoke_api_key& c,
                                 timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "", "no such organization");
  auto it = s.api_keys_.find(c.key_id_);
  if (it == s.api_keys_.end()) return make_error(errc::not_found, "id", "no such API key");
  if (it->second.revoked_) return event_list{};
  if (it->second.role_ == role::owner) {
    int active_owners = 0;
    for (const auto& [id, k] : s.api_keys_) {
      if (k.role_ == role::owner && !k.revoked_) ++active_owners;
    }
    if (active_owners <= 1) {
      return make_error(errc::invalid_state, "id", "cannot revoke the last owner key");
    }
  }
  return event_list{api_key_revoked{s.org_id_, c.key_id_, now}};
}

domain_result<event_list> decide(const organization_state& s, const change_api_key_email& c,
                                 timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "", "no such organization");
  auto it = s.api_keys_.find(c.key_id_);
  if (it == s.api_keys_.end()) return make_error(errc::not_found, "id", "no such API key");
  if (it->second.revoked_) return make_error(errc::invalid_state, "id", "the key is revoked");
  std::optional<std::string> email;
  if (c.email_) {
    if (!is_valid_email(trim(*c.email_))) return invalid("email", "not a valid email address");
    email = normalize_email(*c.email_);
  }
  if (email == it->second.email_) return event_list{};
  return event_list{api_key_email_changed{s.org_id_, c.key_id_, std::move(email), now}};
}

domain_result<event_list> decide(const organization_state& s, const change_lead_form& c,
                                 timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "", "no such organization");
  if (c.expected_version_ && *c.expected_version_ != s.version_) {
    return make_error(errc::version_conflict, "", "the organization changed meanwhile");
  }
  auto form = validate_lead_form(c.form_);
  if (!form) return form.error();
  if (*form == s.lead_form_) return event_list{};
  return event_list{lead_form_changed{s.org_id_, std::move(*form), now}};
}

}  // namespace passage::domain
