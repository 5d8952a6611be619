// Password hashes (scrypt, constant-time check) and set-password link tokens.
#include <gtest/gtest.h>

#include "service/learner_token.h"
#include "service/password_hash.h"
#include "service/password_setup.h"
#include "service/signed_ids.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/encoding.h"

namespace passage::service {
namespace {

// The cheapest cost the format allows keeps these tests quick; the default is checked once.
constexpr scrypt_cost cheap{1, 1, 1};

TEST(PasswordHash, VerifiesOnlyTheSamePassword) {
  auto h = hash_password("correct horse battery", cheap);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->starts_with("scrypt$1$1$1$"));
  EXPECT_EQ(h->find("correct"), std::string::npos);
  EXPECT_TRUE(verify_password("correct horse battery", *h));
  EXPECT_FALSE(verify_password("correct horse batterY", *h));
  EXPECT_FALSE(verify_password("", *h));
  auto again = hash_password("correct horse battery", cheap);
  ASSERT_TRUE(again);
  EXPECT_NE(*h, *again) << "a fresh salt per hash";
}

TEST(PasswordHash, DefaultCostIsScryptTwoToTheFifteen) {
  auto h = hash_password("correct horse battery");
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->starts_with("scrypt$15$8$1$")) << *h;
  EXPECT_TRUE(verify_password("correct horse battery", *h));
}

TEST(PasswordHash, MalformedHashesNeverVerify) {
  auto h = *hash_password("correct horse battery", cheap);
  for (std::string bad : {std::string(), std::string("scrypt"), h.substr(0, h.size() - 2),
                          "bcrypt" + h.substr(6), "scrypt$40$8$1$00$" + std::string(64, '0'),
                          h + "$", "scrypt$1$1$1$zz$" + std::string(64, '0')}) {
    EXPECT_FALSE(verify_password("correct horse battery", bad)) << bad;
  }
}

TEST(PasswordSetupToken, RoundTripsAndRefusesForgeries) {
  password_setup_codec setups(std::string(32, 's'));
  const password_setup_ref ref{uuid::random(), uuid::random()};
  auto token = setups.issue(ref);
  EXPECT_TRUE(token.starts_with("ps1."));
  auto back = setups.verify(token);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->learner_id, ref.learner_id);
  EXPECT_EQ(back->setup_id, ref.setup_id);
  EXPECT_FALSE(password_setup_codec(std::string(32, 'x')).verify(token)) << "other secret";
  std::string tampered = token;
  tampered[6] = tampered[6] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(setups.verify(tampered));
  // A learner token with the same secret is not a set-password link.
  learner_token_codec tokens(std::string(32, 's'));
  auto lt = tokens.issue({ref.learner_id, ref.setup_id});
  EXPECT_FALSE(setups.verify("ps1." + lt.substr(4)));
}

// The tag is HMAC-SHA256(secret, context || a || b), truncated to 16 bytes: tokens issued
// before the per-thread MAC contexts still verify, whichever secrets a thread used between.
TEST(SignedIds, TagIsTheHmacOfContextAndIdsUnderEachSecret) {
  const uuid a = uuid::random(), b = uuid::random();
  std::vector<std::string> secrets;
  for (char c = 'a'; c < 'a' + 7; ++c) secrets.emplace_back(32, c);  // more than a thread keeps
  for (int round = 0; round < 3; ++round) {
    for (const auto& secret : secrets) {
      const std::string context = round == 1 ? "ctx" : "";
      auto token = sign_ids(secret, "t1.", context, a, b);  // a new context (7 > 4 slots)
      EXPECT_EQ(sign_ids(secret, "t1.", context, a, b), token) << "through the kept context";
      std::string b64 = token.substr(3);
      for (auto& ch : b64) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
      while (b64.size() % 4 != 0) b64 += '=';
      auto raw = base64_decode(b64);
      ASSERT_TRUE(raw);
      ASSERT_EQ(raw->size(), 48u);
      std::string input = context;
      input.append(reinterpret_cast<const char*>(a.bytes.data()), 16);
      input.append(reinterpret_cast<const char*>(b.bytes.data()), 16);
      unsigned char tag[32];
      unsigned int len = 0;
      HMAC(EVP_sha256(), secret.data(), int(secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), tag, &len);
      EXPECT_EQ(raw->substr(32), std::string(reinterpret_cast<const char*>(tag), 16));
      auto back = verify_ids(secret, "t1.", context, token);
      ASSERT_TRUE(back);
      EXPECT_EQ(back->first, a);
      EXPECT_EQ(back->second, b);
      for (const auto& other : secrets) {
        if (other != secret) {
          EXPECT_FALSE(verify_ids(other, "t1.", context, token));
        }
      }
      EXPECT_FALSE(verify_ids(secret, "t1.", context + "x", token)) << "other context";
    }
  }
}

}  // namespace
}  // namespace passage::service
