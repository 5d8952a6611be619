#include "projections/sealed_rows.h"

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <optional>
#include <string>

#include "domain/events.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "tests/support/test_values.h"

namespace passage::projections::sealed {
namespace {

using passage::testing::numbered_uuid;

// A codec with a key store of its own, and the ids and time of the events it seals here.
struct sealing {
  std::unique_ptr<eventstore::key_store> keys = eventstore::make_memory_key_store();
  eventstore::event_codec codec{*keys, std::string(48, 'p')};
  uuid org = numbered_uuid(1, 0xAB), invite = numbered_uuid(2, 0xAB);
  uuid learner = numbered_uuid(3, 0xAB), claim = numbered_uuid(4, 0xAB);
  timestamp t = from_unix_micros(1'790'000'000'000'000);
};

TEST(sealed_rows, the_personal_data_block_is_found_as_the_codec_writes_it) {
  const std::string envelope =
      R"({"alg":"A256GCM","ct":"a+b/c==","iv":"xyz","subject":"learner:0000"})";
  EXPECT_EQ(personal_data_block(R"({"a":1,"personal_data":)" + envelope + R"(,"z":[1,{}]})"),
            envelope);
  EXPECT_EQ(personal_data_block(R"({"personal_data":)" + envelope + "}"), envelope);
  EXPECT_EQ(personal_data_block(R"({"a":1,"personal_data":null,"z":2})"), "null");
  // Escaped quotes and braces inside the envelope's strings do not end it.
  EXPECT_EQ(personal_data_block(R"({"personal_data":{"s":"a\"}\\"},"z":1})"), R"({"s":"a\"}\\"})");
  // ... also in long strings (searched 16 bytes at a time), at every offset in a block of 16.
  for (std::size_t n = 0; n < 40; ++n) {
    const std::string run(n, 'x');
    const std::string block =
        R"({"ct":")" + run + R"(\"}{\\)" + run + R"(","iv":")" + run + R"("})";
    EXPECT_EQ(personal_data_block(R"({"a":1,"personal_data":)" + block + "}"), block) << n;
    // Unterminated: the string, then the block.
    EXPECT_FALSE(personal_data_block(R"({"personal_data":{"ct":")" + run)) << n;
    EXPECT_FALSE(personal_data_block(R"({"personal_data":{"ct":")" + run + "\"")) << n;
  }
}

TEST(sealed_rows, data_not_shaped_as_the_codec_writes_it_has_no_block) {
  EXPECT_FALSE(personal_data_block(R"({"a":1})"));
  EXPECT_FALSE(personal_data_block(""));
  // Named inside a string (its quotes escaped) or as the end of a longer name.
  EXPECT_FALSE(personal_data_block(R"({"a":"\"personal_data\":{}"})"));
  EXPECT_FALSE(personal_data_block(R"({"my_personal_data":{}})"));
  EXPECT_FALSE(personal_data_block(R"({"x":"\"personal_data\":{}"})"));
  // Twice, not an object, nested, unterminated.
  EXPECT_FALSE(personal_data_block(R"({"personal_data":{},"b":{"personal_data":{}}})"));
  EXPECT_FALSE(personal_data_block(R"({"personal_data":"clear"})"));
  EXPECT_FALSE(personal_data_block(R"({"personal_data":{"a":{"b":1}}})"));
  EXPECT_FALSE(personal_data_block(R"({"personal_data":{"a":[1]}})"));
  EXPECT_FALSE(personal_data_block(R"({"personal_data":{"a":"b)"));
}

// The name is found wherever it falls in longer data (the search checks 16 places at a
// time, then the last few one by one), and found twice anywhere.
TEST(sealed_rows, the_block_is_found_at_every_offset) {
  const std::string envelope = R"({"alg":"A256GCM","ct":"q:w\"e","iv":"x","subject":"s"})";
  for (std::size_t before = 0; before < 70; ++before) {
    // Escaped quotes and colons in the padding: some 15 bytes apart, as the name's are.
    std::string pad;
    for (std::size_t k = 0; k < before; ++k) pad += k % 15 == 0 ? "\\\"" : k % 5 == 0 ? ":" : "x";
    for (std::size_t after : {0, 1, 7, 15, 16, 17, 40}) {
      const std::string data = R"({"a":")" + pad + R"(","personal_data":)" + envelope +
                               R"(,"z":")" + std::string(after, 'z') + R"("})";
      ASSERT_EQ(personal_data_block(data), envelope) << data;
      const std::string twice = data.substr(0, data.size() - 1) + R"(,"c":{"personal_data":null}})";
      ASSERT_FALSE(personal_data_block(twice)) << twice;
    }
  }
}

// The block of a real event, put back into its type's template, decrypts to the event's
// personal data: the round trip every A, R and L row takes. Another type has no template.
TEST(sealed_rows, a_block_in_its_types_template_decrypts_as_the_whole_event) {
  const sealing s;
  const auto& codec = s.codec;
  const auto &org = s.org, &invite = s.invite, &learner = s.learner, &claim = s.claim;
  const auto& t = s.t;
  domain::personal_data pd;
  pd.email_ = "ada@example.com";
  pd.first_name_ = "Ada \"the\" {first}";
  pd.last_name_ = "Lovelace";
  domain::personal_data lead_pd = pd;
  lead_pd.answers_ = {{"company", "Analytical"}, {"role", "}\\"}};
  domain::claim_snapshot snap;
  snap.tracks_.push_back({"k8s", true});
  const domain::event events[] = {
      domain::invite_claimed{org, invite, claim, learner, false, t, snap, t, pd},
      domain::claim_rejected{org, invite, domain::rejection_reason::full, learner, false, t, pd},
      domain::claim_rejected{org, invite, domain::rejection_reason::full, std::nullopt, true, t,
                             domain::personal_data{.email_ = "eve@example.com"}},
      domain::lead_captured{org, learner, invite, t, lead_pd},
      domain::invite_claimed{org, invite, claim, learner, true, t, snap, std::nullopt, {}},
  };
  std::uint64_t position = 0;
  for (const auto& ev : events) {
    SCOPED_TRACE(std::string(domain::event_type(ev)));
    auto stored = codec.encode(ev, {.event_id = numbered_uuid(++position, 0xEE)});
    ASSERT_TRUE(stored) << stored.error().message;
    const auto block = personal_data_block(stored->data);
    ASSERT_TRUE(block);
    EXPECT_LT(block->size(), stored->data.size());
    const auto* t = template_of(stored->type);
    ASSERT_NE(t, nullptr);
    eventstore::recorded_event rebuilt;
    rebuilt.event_id = stored->event_id;
    rebuilt.type = stored->type;
    rebuilt.schema_version = t->schema_version;
    rebuilt.data = t->around(*block);
    auto decoded = codec.decode(rebuilt);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_FALSE(decoded->forgotten);
    const auto* want = domain::personal_data_of(ev);
    const auto* got = domain::personal_data_of(decoded->event);
    ASSERT_TRUE(want && got);
    EXPECT_EQ(*got, *want);
    EXPECT_EQ(decoded->event.index(), ev.index());

    // In another row type's template, under the same id: the type is bound as well.
    for (std::string_view other :
         {domain::invite_claimed::type_name, domain::claim_rejected::type_name,
          domain::lead_captured::type_name}) {
      if (other == stored->type || want->empty()) continue;
      const auto* o = template_of(other);
      ASSERT_NE(o, nullptr);
      eventstore::recorded_event moved;
      moved.event_id = stored->event_id;
      moved.type = std::string(other);
      moved.schema_version = o->schema_version;
      moved.data = o->around(*block);
      EXPECT_FALSE(codec.decode(moved)) << other;
    }

    // Under another event's id the ciphertext fails authentication: never shown.
    rebuilt.event_id = numbered_uuid(99, 0xEE);
    if (!want->empty()) {
      EXPECT_FALSE(codec.decode(rebuilt));
    }
  }
  EXPECT_EQ(template_of(domain::learner_registered::type_name), nullptr);
  EXPECT_EQ(template_of("NoSuchEvent"), nullptr);
}

// The binary form of blocks the codec seals (format 7's rows) gives back the same text,
// in about half the bytes; the subject is implied when it is the row's own learner.
TEST(sealed_rows, a_sealed_block_in_binary_form_reads_back_as_the_same_text) {
  const sealing s;
  const auto& codec = s.codec;
  const auto &org = s.org, &invite = s.invite, &learner = s.learner, &claim = s.claim;
  const auto& t = s.t;
  domain::personal_data pd;
  pd.email_ = "ada@example.com";
  pd.first_name_ = "Ada";
  pd.last_name_ = "Lovelace";
  domain::claim_snapshot snap;
  const domain::event events[] = {
      domain::invite_claimed{org, invite, claim, learner, false, t, snap, t, pd},
      // No learner: sealed under the email's subject.
      domain::claim_rejected{org, invite, domain::rejection_reason::full, std::nullopt, true, t,
                             domain::personal_data{.email_ = "eve@example.com"}},
      domain::lead_captured{org, learner, invite, t, pd},
  };
  std::uint64_t n = 0;
  for (const auto& ev : events) {
    SCOPED_TRACE(std::string(domain::event_type(ev)));
    auto stored = codec.encode(ev, {.event_id = numbered_uuid(++n, 0xEE)});
    ASSERT_TRUE(stored) << stored.error().message;
    const auto block = personal_data_block(stored->data);
    ASSERT_TRUE(block);
    for (const std::optional<uuid>& owner : {std::optional<uuid>(learner), std::optional<uuid>(),
                                             std::optional(numbered_uuid(9, 1))}) {
      record_writer w;
      w.u64(7);  // something before, as in a row
      ASSERT_TRUE(put_binary_block(w, *block, owner));
      w.boolean(true);  // and after
      EXPECT_LT(w.size(), block->size() * 6 / 10) << w.size() << " of " << block->size();
      record_reader r(w.data());
      EXPECT_EQ(r.u64(), 7u);
      std::string text = "kept ";
      auto read = get_binary_block(r, owner, text);
      ASSERT_TRUE(read) << read.error();
      EXPECT_EQ(text, "kept " + std::string(*block));
      EXPECT_TRUE(r.boolean());
      EXPECT_TRUE(r.ok() && r.at_end());
    }
  }
}

std::string envelope(std::string_view ct, std::string_view iv, std::string_view subject) {
  return R"({"alg":"A256GCM","ct":")" + std::string(ct) + R"(","iv":")" + std::string(iv) +
         R"(","subject":")" + std::string(subject) + R"("})";
}

const std::string hash64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(sealed_rows, every_subject_and_base64_length_the_codec_writes_round_trips) {
  const std::string learner_text = "learner:" + numbered_uuid(5, 0xCD).to_string();
  for (const std::string& subject : {learner_text, "email:" + hash64, "email:" + hash64 + ".2",
                                     "email:" + hash64 + ".1234567890123"}) {
    // Ciphertexts of 0 to 5 bytes: no padding, one '=', two.
    for (const std::string ct : {"", "QQ==", "QUI=", "QUJD", "QUJDRA==", "/+/+/w=="}) {
      const auto block = envelope(ct, "AAECAwQFBgcICQoL", subject);
      record_writer w;
      ASSERT_TRUE(put_binary_block(w, block, std::nullopt)) << block;
      record_reader r(w.data());
      std::string text;
      ASSERT_TRUE(get_binary_block(r, std::nullopt, text)) << block;
      EXPECT_EQ(text, block);
      EXPECT_TRUE(r.at_end());
    }
  }
}

// Anything but the codec's exact layout stays text: put_binary_block writes nothing.
TEST(sealed_rows, a_block_in_another_layout_has_no_binary_form) {
  const std::string learner_text = "learner:" + numbered_uuid(5, 0xCD).to_string();
  std::string upper = learner_text.substr(8);  // the uuid in upper case: not the codec's
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string refused[] = {
      "null",
      "{}",
      R"({"alg":"A256GCM","ct":"QUJD","iv":"QUJD","subject":")" + learner_text + R"(","x":"y"})",
      R"({"alg":"A128GCM","ct":"QUJD","iv":"QUJD","subject":")" + learner_text + R"("})",
      R"({"ct":"QUJD","alg":"A256GCM","iv":"QUJD","subject":")" + learner_text + R"("})",
      R"({"alg": "A256GCM","ct":"QUJD","iv":"QUJD","subject":")" + learner_text + R"("})",
      envelope("QUJD", "QUJD", "learner:" + upper),
      envelope("QUJD", "QUJD", "learner:" + learner_text.substr(9)),  // short uuid
      envelope("QUJD", "QUJD", learner_text + "0"),                   // long uuid
      envelope("QUJD", "QUJD", "email:" + hash64.substr(1)),          // short hash
      envelope("QUJD", "QUJD", "email:" + hash64 + "00"),             // long hash
      envelope("QUJD", "QUJD", "email:" + hash64 + ".0"),             // generation 0
      envelope("QUJD", "QUJD", "email:" + hash64 + ".02"),            // a leading zero
      envelope("QUJD", "QUJD", "email:" + hash64 + "."),
      envelope("QUJD", "QUJD", "email:" + hash64 + ".99999999999999999999"),  // > 2^64
      envelope("QUJD", "QUJD", "key:" + hash64),
      envelope("QUJD", "QUJD", "learner:" + learner_text.substr(8) + "\\u0030"),
      envelope("QUI", "QUJD", learner_text),   // not a multiple of 4
      envelope("QR==", "QUJD", learner_text),  // unused bits set: not canonical
      envelope("QUN=", "QUJD", learner_text),  // (the same with one '=')
      envelope("Q===", "QUJD", learner_text),
      envelope("QU=D", "QUJD", learner_text),  // '=' inside
      envelope("QUJD", "QU-D", learner_text),  // not the standard alphabet
      envelope("QUJD", "QUJ\\", learner_text),
      envelope("QUJD\",\"iv\":\"QUJD", "QUJD", learner_text),  // a member twice
  };
  for (const auto& block : refused) {
    record_writer w;
    w.u64(3);
    EXPECT_FALSE(put_binary_block(w, block, std::nullopt)) << block;
    EXPECT_EQ(w.size(), 1u) << block;
  }
}

// Short or malformed binary input: an error saying what is wrong, the reader no longer
// ok(), never a crash or a read past the input.
TEST(sealed_rows, a_short_or_malformed_binary_block_is_refused) {
  const uuid learner = numbered_uuid(5, 0xCD);
  for (const std::optional<uuid>& owner : {std::optional<uuid>(learner), std::optional<uuid>()}) {
    for (const std::string& subject :
         {"learner:" + learner.to_string(), "email:" + hash64 + ".3"}) {
      record_writer w;
      ASSERT_TRUE(put_binary_block(w, envelope("QUJDRA==", "AAECAwQFBgcICQoL", subject), owner));
      const std::string whole = w.data();
      for (std::size_t n = 0; n < whole.size(); ++n) {
        record_reader r(std::string_view(whole).substr(0, n));
        std::string text;
        auto read = get_binary_block(r, owner, text);
        ASSERT_FALSE(read) << n << " of " << whole.size();
        EXPECT_TRUE(read.error().starts_with("sealed block: ")) << read.error();
        EXPECT_FALSE(r.ok());
      }
    }
  }
  {
    record_writer w;
    w.u64(9);
    record_reader r(w.data());
    std::string text;
    auto read = get_binary_block(r, std::nullopt, text);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error(), "sealed block: unknown subject kind 9");
    EXPECT_FALSE(r.ok());
  }
  {
    // The row's own learner as subject, read for a row without one.
    record_writer w;
    ASSERT_TRUE(
        put_binary_block(w, envelope("QUJD", "QUJD", "learner:" + learner.to_string()), learner));
    record_reader r(w.data());
    std::string text;
    auto read = get_binary_block(r, std::nullopt, text);
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().find("names none"), std::string::npos) << read.error();
  }
  {
    // A length far past the input (and past any size_t).
    record_writer w;
    w.u64(1);
    w.id(learner);
    w.u64(~std::uint64_t{0});
    record_reader r(w.data());
    std::string text;
    auto read = get_binary_block(r, std::nullopt, text);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error(), "sealed block: input ends inside its iv");
  }
}

}  // namespace
}  // namespace passage::projections::sealed
