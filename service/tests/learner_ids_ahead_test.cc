// New learners' ids drawn ahead with durable keys: what take() hands out already has its
// key (so a claim's commit needs no key fsync), in the order the ids were made, refills
// keep up, and a disabled pool makes each id as it is taken.

#include "service/learner_ids_ahead.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "tests/support/temp_dir.h"

namespace passage::service {
namespace {

// Waits (bounded) for the background refill; the tests then check states, not times.
void wait_ready(const learner_ids_ahead& ids, std::size_t at_least) {
  for (int i = 0; i < 1000 && ids.ready() < at_least; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool has_key(eventstore::key_store& keys, const uuid& id) {
  auto k = keys.find(eventstore::learner_subject(id));
  return k && k->has_value();
}

TEST(learner_ids_ahead, hands_out_distinct_ids_whose_keys_exist_and_refills) {
  auto keys = eventstore::make_memory_key_store();
  learner_ids_ahead ids(*keys, 8);
  wait_ready(ids, 8);
  ASSERT_EQ(ids.ready(), 8u);
  std::set<uuid> seen;
  for (int i = 0; i < 8; ++i) {
    uuid id = ids.take();
    EXPECT_TRUE(has_key(*keys, id)) << "id " << i << " came without a key";
    EXPECT_TRUE(seen.insert(id).second);
  }
  // Drained below half: the pool refills by itself.
  wait_ready(ids, 1);
  ASSERT_GT(ids.ready(), 0u);
  uuid next = ids.take();
  EXPECT_TRUE(has_key(*keys, next));
  EXPECT_FALSE(seen.count(next));
}

// Each new learner's entries then go into sorted stores (the event store's stream index,
// the key store) beside the previous learner's, not at a random place searched for.
TEST(learner_ids_ahead, hands_out_time_ordered_ids_in_the_order_made_across_refills) {
  auto keys = eventstore::make_memory_key_store();
  learner_ids_ahead ids(*keys, 8);
  std::vector<uuid> taken;
  for (int i = 0; i < 40; ++i) {
    wait_ready(ids, 1);
    taken.push_back(ids.take());
    EXPECT_EQ(taken.back().bytes[6] >> 4, 7) << i;
    EXPECT_TRUE(has_key(*keys, taken.back())) << i;
  }
  EXPECT_TRUE(std::is_sorted(taken.begin(), taken.end()));
  EXPECT_EQ(std::set<uuid>(taken.begin(), taken.end()).size(), taken.size());
}

TEST(learner_ids_ahead, an_id_given_back_is_handed_out_again) {
  auto keys = eventstore::make_memory_key_store();
  learner_ids_ahead ids(*keys, 8);
  wait_ready(ids, 8);
  uuid id = ids.take();
  std::size_t before = ids.ready();
  ids.give_back(id);
  EXPECT_EQ(ids.ready(), before + 1);
  EXPECT_EQ(ids.take(), id);
}

TEST(learner_ids_ahead, disabled_it_makes_each_id_and_no_key) {
  auto keys = eventstore::make_memory_key_store();
  learner_ids_ahead ids(*keys, 0);
  uuid a = ids.take(), b = ids.take();
  EXPECT_NE(a, b);
  EXPECT_FALSE(has_key(*keys, a));
  ids.give_back(a);
  EXPECT_EQ(ids.ready(), 0u);
}

// With new keys' syncing deferred to the log's commit (as the server runs), keys made
// ahead are written (synced) by create_ahead itself, never waiting for that sync.
TEST(learner_ids_ahead, keys_handed_out_survive_a_reopen_without_a_key_store_sync) {
  testing::temp_dir dir;
  std::set<uuid> taken;
  {
    auto keys = eventstore::open_key_store({.path = dir.sub("keys"), .sync_new_keys = false});
    ASSERT_TRUE(keys);
    learner_ids_ahead ids(**keys, 16);
    wait_ready(ids, 16);
    for (int i = 0; i < 16; ++i) taken.insert(ids.take());
  }
  auto keys = eventstore::open_key_store({.path = dir.sub("keys")});
  ASSERT_TRUE(keys);
  for (const auto& id : taken) EXPECT_TRUE(has_key(**keys, id)) << id.to_string();
}

}  // namespace
}  // namespace passage::service
