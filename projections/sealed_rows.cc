#include "projections/sealed_rows.h"

#include <string.h>  // memmem (POSIX), memcmp

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <array>
#include <charconv>
#include <utility>
#include <vector>

#include "common/encoding.h"
#include "common/uuid_text.h"
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

// The sealed envelope's text around its three values, as the codec writes it (members
// sorted, no spaces).
constexpr std::string_view before_ct = R"({"alg":"A256GCM","ct":")";
constexpr std::string_view before_iv = R"(","iv":")";
constexpr std::string_view before_subject = R"(","subject":")";
constexpr std::string_view after_subject = R"("})";
constexpr std::string_view learner_prefix = "learner:";
constexpr std::string_view email_prefix = "email:";

// The binary form's subject kinds.
enum subject_kind : std::uint64_t {
  owner_learner = 0,  // "learner:<the row's learner>": nothing more
  other_learner = 1,  // "learner:<id>": its 16 bytes
  email_hash = 2,     // "email:<64 hex>[.<generation>]": 32 bytes, the generation (0: none)
};

// Values of base64's and lower-case hex's digits; -1 for any other byte.
constexpr std::array<std::int8_t, 256> base64_values = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (std::size_t i = 0; i < base64_alphabet.size(); ++i) {
    t[static_cast<unsigned char>(base64_alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}();
constexpr std::array<std::int8_t, 256> hex_values = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::int8_t>(c - 'a' + 10);
  return t;
}();
constexpr std::string_view hex_digits = "0123456789abcdef";

// The bytes `text` holds as padded base64, written as a varint length and the bytes; false
// (w left as it was) unless the text is the one base64_append writes for them (length a
// multiple of 4, '=' only as padding, the last digit's unused bits zero): the text is
// then given back exactly. (Not EVP_DecodeBlock: it skips whitespace and ignores unused
// bits, so it cannot tell the canonical text from others that decode alike.)
bool put_base64(record_writer& w, std::string_view text) {
  if (text.size() % 4 != 0) return false;
  const std::size_t pad = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;
  const std::size_t n = text.size() / 4 * 3 - pad;
  const std::size_t mark = w.size();
  w.u64(n);
  char* out = w.extend(n);
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t quanta = text.size() / 4 - (pad != 0 ? 1 : 0);
  int bad = 0;
  for (std::size_t q = 0; q < quanta; ++q, in += 4, out += 3) {
    const int a = base64_values[in[0]], b = base64_values[in[1]], c = base64_values[in[2]],
              d = base64_values[in[3]];
    bad |= a | b | c | d;  // a -1 sets the sign bit
    const auto x = static_cast<std::uint32_t>(a << 18 | b << 12 | c << 6 | d);
    out[0] = static_cast<char>(x >> 16);
    out[1] = static_cast<char>(x >> 8);
    out[2] = static_cast<char>(x);
  }
  if (pad != 0) {
    const int a = base64_values[in[0]], b = base64_values[in[1]];
    bad |= a | b;
    if (pad == 1) {
      const int c = base64_values[in[2]];
      bad |= c | -(c & 0x3);  // unused bits set: not the canonical text
      out[0] = static_cast<char>(a << 2 | b >> 4);
      out[1] = static_cast<char>((b & 0xf) << 4 | c >> 2);
    } else {
      bad |= -(b & 0xf);
      out[0] = static_cast<char>(a << 2 | b >> 4);
    }
  }
  if (bad < 0) {
    w.truncate(mark);
    return false;
  }
  return true;
}

// The id of a canonical lower-case uuid text (what the codec writes); nullopt otherwise.
std::optional<uuid> parse_lower_uuid(std::string_view text) {
  auto id = uuid::parse(text);
  if (!id) return std::nullopt;
  const auto canonical = uuid_chars(*id);
  if (text != std::string_view(canonical.data(), canonical.size())) return std::nullopt;
  return id;
}

// The subject in binary form; false (w as it was) for a subject the codec does not write.
bool put_subject(record_writer& w, std::string_view subject, const std::optional<uuid>& owner) {
  if (subject.starts_with(learner_prefix)) {
    const auto id = parse_lower_uuid(subject.substr(learner_prefix.size()));
    if (!id) return false;
    if (owner && *owner == *id) {
      w.u64(owner_learner);
    } else {
      w.u64(other_learner);
      w.id(*id);
    }
    return true;
  }
  if (!subject.starts_with(email_prefix)) return false;
  auto rest = subject.substr(email_prefix.size());
  if (rest.size() < 64) return false;
  char bytes[32];
  int bad = 0;
  for (std::size_t i = 0; i < sizeof bytes; ++i) {
    const int hi = hex_values[static_cast<unsigned char>(rest[2 * i])];
    const int lo = hex_values[static_cast<unsigned char>(rest[2 * i + 1])];
    bad |= hi | lo;
    bytes[i] = static_cast<char>(hi << 4 | lo);
  }
  if (bad < 0) return false;
  rest.remove_prefix(64);
  std::uint64_t generation = 0;
  if (!rest.empty()) {
    // ".<n>": decimal without a leading zero, so that it is written back the same.
    if (rest.size() < 2 || rest[0] != '.' || rest[1] == '0') return false;
    const auto digits = rest.substr(1);
    const auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), generation);
    if (ec != std::errc() || end != digits.data() + digits.size() || generation == 0) return false;
  }
  w.u64(email_hash);
  w.raw(std::string_view(bytes, sizeof bytes));
  w.u64(generation);
  return true;
}

}  // namespace

bool put_binary_block(record_writer& w, std::string_view block, const std::optional<uuid>& owner) {
  if (!block.starts_with(before_ct) || !block.ends_with(after_subject)) return false;
  const auto inside =
      block.substr(before_ct.size(), block.size() - before_ct.size() - after_subject.size());
  const auto iv_at = inside.find(before_iv);
  if (iv_at == std::string_view::npos) return false;
  const auto ct = inside.substr(0, iv_at);
  const auto subject_at = inside.find(before_subject, iv_at + before_iv.size());
  if (subject_at == std::string_view::npos) return false;
  const auto iv = inside.substr(iv_at + before_iv.size(), subject_at - iv_at - before_iv.size());
  const auto subject = inside.substr(subject_at + before_subject.size());
  const std::size_t mark = w.size();
  // (base64 and the subjects taken have no quote or backslash: a value that had one is
  // refused, so no text between the markers was a string's escaped content.)
  if (!put_subject(w, subject, owner) || !put_base64(w, iv) || !put_base64(w, ct)) {
    w.truncate(mark);
    return false;
  }
  return true;
}

result<void, std::string> get_binary_block(record_reader& r, const std::optional<uuid>& owner,
                                           std::string& out) {
  auto malformed = [&r](std::string what) -> result<void, std::string> {
    r.corrupt();
    return fail("sealed block: " + std::move(what));
  };
  const std::uint64_t kind = r.u64();
  uuid learner;
  std::string_view hash;
  std::uint64_t generation = 0;
  if (kind == owner_learner) {
    if (!r.ok()) return malformed("no subject");
    if (!owner) return malformed("the row's own learner is its subject, but the row names none");
    learner = *owner;
  } else if (kind == other_learner) {
    learner = r.id();
  } else if (kind == email_hash) {
    hash = r.raw(32);
    generation = r.u64();
  } else {
    return malformed("unknown subject kind " + std::to_string(kind));
  }
  if (!r.ok()) return malformed("input ends inside its subject");
  const std::uint64_t iv_size = r.u64();
  const auto iv = r.raw(static_cast<std::size_t>(std::min<std::uint64_t>(iv_size, SIZE_MAX)));
  if (!r.ok()) return malformed("input ends inside its iv");
  const std::uint64_t ct_size = r.u64();
  const auto ct = r.raw(static_cast<std::size_t>(std::min<std::uint64_t>(ct_size, SIZE_MAX)));
  if (!r.ok()) return malformed("input ends inside its ciphertext");
  out.reserve(out.size() + before_ct.size() + before_iv.size() + before_subject.size() +
              after_subject.size() + 4 * ((ct.size() + 2) / 3) + 4 * ((iv.size() + 2) / 3) +
              email_prefix.size() + 64 + 21);
  out.append(before_ct);
  base64_append(out, ct);
  out.append(before_iv);
  base64_append(out, iv);
  out.append(before_subject);
  if (hash.empty()) {
    out.append(learner_prefix);
    const auto chars = uuid_chars(learner);
    out.append(chars.data(), chars.size());
  } else {
    out.append(email_prefix);
    for (const char c : hash) {
      out.push_back(hex_digits[static_cast<std::uint8_t>(c) >> 4]);
      out.push_back(hex_digits[static_cast<std::uint8_t>(c) & 0xf]);
    }
    if (generation != 0) out.append(".").append(std::to_string(generation));
  }
  out.append(after_subject);
  return {};
}

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
