#pragma once
// Named string parameters of a request: route parameters ("/v1/invites/{id}")
// and query parameters ("?limit=20"), already percent-decoded. When a name
// occurs twice the first value wins.
//
//   param_map q;
//   q.add("limit", "20");
//   if (auto v = q.get("limit")) use(*v);

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace passage::api {

// A small ordered map of decoded parameters. Plain value type; not synchronized.
class param_map {
 public:
  using value_type = std::pair<std::string, std::string>;

  // Adds `name` = `value` unless `name` is present already. Returns whether it was added.
  bool add(std::string name, std::string value) {
    if (contains(name)) return false;
    items_.emplace_back(std::move(name), std::move(value));
    return true;
  }

  std::optional<std::string_view> get(std::string_view name) const {
    for (const auto& [k, v] : items_) {
      if (k == name) return std::string_view(v);
    }
    return std::nullopt;
  }

  // The value of `name`, or `fallback` when absent.
  std::string_view get_or(std::string_view name, std::string_view fallback) const {
    auto v = get(name);
    return v ? *v : fallback;
  }

  bool contains(std::string_view name) const { return get(name).has_value(); }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<value_type> items_;
};

}  // namespace passage::api
