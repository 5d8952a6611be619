// Password hashes (scrypt, constant-time check) and set-password link tokens.
#include <gtest/gtest.h>

#include "service/learner_token.h"
#include "service/password_hash.h"
#include "service/password_setup.h"

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

}  // namespace
}  // namespace passage::service
