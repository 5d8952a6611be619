#include "domain/events.h"

#include <type_traits>

#include "domain/streams.h"

namespace passage::domain {

namespace {

template <typename E>
concept has_personal_data = requires(E e) {
  e.personal_data_;
};

template <typename E>
concept has_learner_id = requires(E e) {
  e.learner_id_;
};

template <std::size_t... I>
std::vector<std::string_view> type_names(std::index_sequence<I...>) {
  return {std::variant_alternative_t<I, event>::type_name...};
}

}  // namespace

std::string_view event_type(const event& e) {
  return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::type_name; }, e);
}

int event_schema_version(const event& e) {
  return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::schema_version; }, e);
}

std::vector<std::string_view> all_event_types() {
  return type_names(std::make_index_sequence<std::variant_size_v<event>>{});
}

uuid org_of(const event& e) {
  return std::visit([](const auto& v) { return v.org_id_; }, e);
}

std::string stream_of(const event& e) {
  return std::visit(
      [](const auto& v) -> std::string {
        using E = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<E, organization_created> ||
                      std::is_same_v<E, api_key_issued> || std::is_same_v<E, api_key_revoked> ||
                      std::is_same_v<E, api_key_email_changed> ||
                      std::is_same_v<E, lead_form_changed>) {
          return organization_stream(v.org_id_);
        } else if constexpr (std::is_same_v<E, track_registered> ||
                             std::is_same_v<E, track_updated>) {
          return track_stream(v.org_id_, v.track_id_);
        } else if constexpr (std::is_same_v<E, track_played> || std::is_same_v<E, track_paused> ||
                             std::is_same_v<E, track_resumed>) {
          return claim_stream(v.claim_id_);
        } else if constexpr (std::is_same_v<E, learner_registered> ||
                             std::is_same_v<E, lead_captured> ||
                             std::is_same_v<E, learner_forgotten> ||
                             std::is_same_v<E, password_setup_issued> ||
                             std::is_same_v<E, learner_password_set>) {
          return learner_stream(v.learner_id_);
        } else if constexpr (std::is_same_v<E, email_sent> || std::is_same_v<E, email_failed>) {
          return email_job_stream(v.job_id_);
        } else {
          return invite_stream(v.invite_id_);
        }
      },
      e);
}

std::optional<uuid> data_subject(const event& e) {
  return std::visit(
      [](const auto& v) -> std::optional<uuid> {
        using E = std::decay_t<decltype(v)>;
        if constexpr (has_personal_data<E> && has_learner_id<E>) {
          if (v.personal_data_.empty()) return std::nullopt;
          return v.learner_id_;  // uuid or optional<uuid>
        } else {
          return std::nullopt;
        }
      },
      e);
}

const personal_data* personal_data_of(const event& e) {
  return std::visit(
      [](const auto& v) -> const personal_data* {
        if constexpr (has_personal_data<std::decay_t<decltype(v)>>) {
          return &v.personal_data_;
        } else {
          return nullptr;
        }
      },
      e);
}

personal_data* personal_data_of(event& e) {
  return const_cast<personal_data*>(personal_data_of(static_cast<const event&>(e)));
}

}  // namespace passage::domain
