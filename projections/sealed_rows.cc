#include "projections/sealed_rows.h"

#include <string.h>  // memmem

#include <utility>
#include <vector>

#include "domain/events.h"
#include "eventstore/event_codec.h"

namespace passage::projections::sealed {

std::optional<std::string_view> personal_data_block(std::string_view data) {
  constexpr std::string_view name = "\"personal_data\":";
  // A quote inside a JSON string is escaped, so the name with its quotes is a member's;
  // found once and right after '{' or ',' (not inside a longer name).
  // (memmem: string_view::find stops at every quote of the data, its first character.)
  auto find = [&](std::size_t from) -> std::size_t {
    const void* p = ::memmem(data.data() + from, data.size() - from, name.data(), name.size());
    return p == nullptr ? std::string_view::npos : static_cast<const char*>(p) - data.data();
  };
  const auto at = find(0);
  if (at == std::string_view::npos || at == 0 || (data[at - 1] != ',' && data[at - 1] != '{') ||
      find(at + name.size()) != std::string_view::npos) {
    return std::nullopt;
  }
  const auto rest = data.substr(at + name.size());
  if (rest.starts_with("null")) return rest.substr(0, 4);
  if (!rest.starts_with('{')) return std::nullopt;
  bool in_string = false;
  for (std::size_t i = 1; i < rest.size(); ++i) {
    const char c = rest[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      return std::nullopt;  // an envelope holds strings only
    } else if (c == '}') {
      return rest.substr(0, i + 1);
    }
  }
  return std::nullopt;  // unterminated
}

std::string event_template::around(std::string_view block) const {
  std::string data;
  data.reserve(before.size() + block.size() + after.size());
  data.append(before).append(block).append(after);
  return data;
}

const event_template* template_of(std::string_view type) {
  static const auto templates = [] {
    std::vector<std::pair<std::string, event_template>> all;
    for (const domain::event& e :
         {domain::event(domain::invite_claimed{}), domain::event(domain::claim_rejected{}),
          domain::event(domain::lead_captured{})}) {
      const std::string text = eventstore::to_json_text(e);
      constexpr std::string_view empty = "\"personal_data\":null";
      const auto at = text.find(empty);
      if (at == std::string::npos) continue;  // (each has one: tested)
      const std::size_t value_at = at + empty.size() - 4;
      all.emplace_back(std::string(domain::event_type(e)),
                       event_template{text.substr(0, value_at), text.substr(at + empty.size()),
                                      static_cast<std::uint32_t>(domain::event_schema_version(e))});
    }
    return all;
  }();
  for (const auto& [name, t] : templates) {
    if (name == type) return &t;
  }
  return nullptr;
}

}  // namespace passage::projections::sealed
