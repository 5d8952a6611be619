// invite_body_cache: a stored body is handed back only for a view that would serialize the
// same; any change of what the body is made of misses.

#include "api/v1/invite_body_cache.h"

#include <gtest/gtest.h>

#include "tests/support/test_values.h"

namespace passage::api::v1 {
namespace {

projections::invite_view view(std::uint64_t n) {
  projections::invite_view v;
  v.org_id = passage::testing::numbered_uuid(1, 0xAB);
  v.invite_id = passage::testing::numbered_uuid(n, 0xAB);
  v.code = "code" + std::to_string(n);
  v.version = 1;
  v.claims_count = 0;
  v.remaining_spots = 10;
  return v;
}

TEST(invite_body_cache, hits_only_while_nothing_the_body_shows_changed) {
  invite_body_cache cache;
  auto v = view(1);
  EXPECT_EQ(cache.find(v), nullptr);
  auto stored = cache.store(v, "{\"v\":1}");
  ASSERT_NE(cache.find(v), nullptr);
  EXPECT_EQ(*cache.find(v), "{\"v\":1}");
  EXPECT_EQ(cache.find(v), stored);

  auto changed = [&](auto edit) {
    auto w = v;
    edit(w);
    return cache.find(w) == nullptr;
  };
  EXPECT_TRUE(changed([](auto& w) { w.version = 2; }));  // any event of the invite's stream
  EXPECT_TRUE(changed([](auto& w) { w.claims_count = 1; }));
  EXPECT_TRUE(changed([](auto& w) { w.remaining_spots = 9; }));
  EXPECT_TRUE(changed([](auto& w) { w.status.status_ = domain::invite_status::expired; }));
  EXPECT_TRUE(changed([](auto& w) { w.status.days_left_ = 3; }));  // computed from "now"
  EXPECT_TRUE(changed([](auto& w) { w.share_button_visible = true; }));
  EXPECT_TRUE(changed([](auto& w) { w.org_id = passage::testing::numbered_uuid(2, 0xAB); }));
  EXPECT_EQ(cache.find(view(2)), nullptr);  // another invite

  // A newer body replaces the older one.
  auto newer = v;
  newer.version = 2;
  cache.store(newer, "{\"v\":2}");
  EXPECT_EQ(cache.find(v), nullptr);
  EXPECT_EQ(*cache.find(newer), "{\"v\":2}");
}

TEST(invite_body_cache, starts_over_when_full) {
  invite_body_cache cache(2);
  cache.store(view(1), "1");
  cache.store(view(2), "2");
  cache.store(view(2), "2b");  // replacing an entry does not count as growing
  EXPECT_NE(cache.find(view(1)), nullptr);
  cache.store(view(3), "3");
  EXPECT_EQ(cache.find(view(1)), nullptr);
  EXPECT_EQ(cache.find(view(2)), nullptr);
  EXPECT_EQ(*cache.find(view(3)), "3");
}

}  // namespace
}  // namespace passage::api::v1
