#pragma once
// Ids for new learners drawn ahead of use, each with its data key already durable in
// the key store. A claim that registers a learner takes one, so the events it appends
// are encrypted with a key that was synced long before: the group commit then needs
// no key-store fsync before the log's own (without this, every commit by new learners
// pays two fsyncs in a row: the new keys', then the log's).
//
//   learner_ids_ahead ids(keys, 512);
//   uuid id = ids.take();    // "learner:<id>" has a durable key (or see take())
//   ids.give_back(id);       // taken but not used after all
//
// A background thread refills the pool with one synced key-store write per batch
// whenever it runs below half. Ids left in the pool when the process stops, and ids
// taken for a command that then failed, leave orphan keys: 32 random bytes under the
// subject of a learner that never existed, harmless (nothing is encrypted with them).

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/uuid.h"
#include "eventstore/key_store.h"

namespace passage::service {

class learner_ids_ahead {
 public:
  // `batch`: ids made per refill; 0 disables the pool (take() then makes each id).
  learner_ids_ahead(eventstore::key_store& keys, std::size_t batch);
  ~learner_ids_ahead();
  learner_ids_ahead(const learner_ids_ahead&) = delete;
  learner_ids_ahead& operator=(const learner_ids_ahead&) = delete;

  // A fresh id whose key is durable. When the pool is empty (a burst beyond the refill,
  // or a key-store error) one made now: its key is then made on first use and synced by
  // the event store's before_commit hook, as before.
  // Ids are time-ordered (uuid::time_ordered) and handed out oldest first, so each new
  // learner's keys (its stream's entries in the event store's index, its key-store
  // subject, read models keyed by learner) sort right after the previous learner's: a
  // sorted memtable places them beside the last insert instead of searching all of it
  // (with random ids, a search per new learner was ~1/5 of the event store's writer).
  uuid take();
  // An id take() returned that no event names: it goes back into the pool.
  void give_back(const uuid& id);
  // Ids ready now (for tests and metrics).
  std::size_t ready() const;

 private:
  void refill_loop();

  eventstore::key_store& keys_;
  const std::size_t batch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Oldest first: take() hands the ids out in the order they were made (see take()).
  std::deque<uuid> ready_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace passage::service
