#include "projections/sealed_rows.h"

#include <string.h>  // memmem (POSIX), memcmp

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <utility>
#include <vector>

#include "domain/events.h"
#include "eventstore/event_codec.h"

namespace passage::projections::sealed {

namespace {

constexpr std::string_view member_name = "\"personal_data\":";

// Where `member_name` is in `data` from `from` on (npos: nowhere). The data has a quote
// every few bytes, which is what a plain search stops at; this one checks 16 places at
// once for the name's first and last characters, a pair 15 bytes apart that is rare in
// JSON. Rows are built on the applying thread, which bounds a rebuild's rate.
std::size_t find_member(std::string_view data, std::size_t from) {
  constexpr std::size_t n = member_name.size();
  std::size_t i = from;
#if defined(__SSE2__)
  const __m128i first = _mm_set1_epi8(member_name.front());
  const __m128i last = _mm_set1_epi8(member_name.back());
  for (; i + (n - 1) + 16 <= data.size(); i += 16) {
    const auto* at = data.data() + i;
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at + n - 1));
    auto mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last))));
    while (mask != 0) {
      const auto bit = static_cast<std::size_t>(__builtin_ctz(mask));
      if (::memcmp(at + bit + 1, member_name.data() + 1, n - 2) == 0) return i + bit;
      mask &= mask - 1;
    }
  }
#endif
  if (i >= data.size()) return std::string_view::npos;
  const void* p = ::memmem(data.data() + i, data.size() - i, member_name.data(), n);
  return p == nullptr ? std::string_view::npos
                      : static_cast<std::size_t>(static_cast<const char*>(p) - data.data());
}

// The first quote or backslash in `s` from `from` on (s.size(): none): the end of a
// string's plain run. The block's strings are mostly base64 ciphertext, ~100 bytes
// without either, which this skips 16 bytes at a time.
std::size_t next_quote_or_escape(std::string_view s, std::size_t from) {
  std::size_t i = from;
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i escape = _mm_set1_epi8('\\');
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    const auto mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, quote), _mm_cmpeq_epi8(a, escape))));
    if (mask != 0) return i + static_cast<std::size_t>(__builtin_ctz(mask));
  }
#endif
  while (i < s.size() && s[i] != '"' && s[i] != '\\') ++i;
  return i;
}

}  // namespace

std::optional<std::string_view> personal_data_block(std::string_view data) {
  constexpr std::string_view name = member_name;
  // A quote inside a JSON string is escaped, so the name with its quotes is a member's;
  // found once and right after '{' or ',' (not inside a longer name).
  const auto at = find_member(data, 0);
  if (at == std::string_view::npos || at == 0 || (data[at - 1] != ',' && data[at - 1] != '{') ||
      find_member(data, at + name.size()) != std::string_view::npos) {
    return std::nullopt;
  }
  const auto rest = data.substr(at + name.size());
  if (rest.starts_with("null")) return rest.substr(0, 4);
  if (!rest.starts_with('{')) return std::nullopt;
  bool in_string = false;
  for (std::size_t i = 1; i < rest.size(); ++i) {
    if (in_string) i = next_quote_or_escape(rest, i);
    if (i >= rest.size()) break;
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
