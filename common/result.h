#pragma once
// result<T, E>: a value or an error, returned by every fallible call in Passage.
// A small stand-in for C++23 std::expected (g++ 12 in C++20 mode lacks it).
//
//   result<int> parse(std::string_view s);
//   auto r = parse("42");
//   if (!r) return r.error();
//   use(*r);

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace passage {

// Wraps an error so that result<T, E> can be built from it even when T == E.
template <typename E>
struct unexpected {
  E error;
};
template <typename E>
unexpected(E) -> unexpected<E>;

template <typename E>
[[nodiscard]] unexpected<std::decay_t<E>> fail(E&& e) {
  return {std::forward<E>(e)};
}

template <typename T, typename E>
class [[nodiscard]] result {
 public:
  using value_type = T;
  using error_type = E;

  result(const T& v) : v_(std::in_place_index<0>, v) {}        // NOLINT: implicit by design
  result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT
  template <typename G>
  requires std::is_constructible_v<E, G> result(unexpected<G> u)
      : v_(std::in_place_index<1>, std::move(u.error)) {}  // NOLINT
  result(const E& e)                                       // NOLINT
      requires(!std::is_same_v<T, E>)
      : v_(std::in_place_index<1>, e) {}
  result(E&& e)  // NOLINT
      requires(!std::is_same_v<T, E>)
      : v_(std::in_place_index<1>, std::move(e)) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  const E& error() const& {
    assert(!has_value());
    return std::get<1>(v_);
  }
  E&& error() && {
    assert(!has_value());
    return std::get<1>(std::move(v_));
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, E> v_;
};

// result<void, E>: success carries nothing.
template <typename E>
class [[nodiscard]] result<void, E> {
 public:
  result() = default;
  template <typename G>
  requires std::is_constructible_v<E, G> result(unexpected<G> u)
      : err_(std::move(u.error)), ok_(false) {}      // NOLINT
  result(const E& e) : err_(e), ok_(false) {}        // NOLINT
  result(E&& e) : err_(std::move(e)), ok_(false) {}  // NOLINT

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const E& error() const& {
    assert(!ok_);
    return err_;
  }

 private:
  E err_{};
  bool ok_ = true;
};

}  // namespace passage
