#pragma once
// Emits InviteExpired on time: follows the log for invites' deadlines (expires_at
// of self-paced invites, ends_at of live events) and, once a deadline has passed,
// asks the command service to expire the invite. Its state is rebuilt from the
// log at start, so a restart that straddles a deadline still emits the event;
// the domain emits it at most once per deadline, so nothing is ever doubled.
//
//   expiry_scheduler s(store, codec, commands, clock);
//   s.start();   // ... s.stop();

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/clock.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/subscription.h"
#include "service/command_service.h"

namespace passage::service {

struct expiry_scheduler_options {
  // How often due deadlines are looked for. Default: 200 ms, so InviteExpired lands
  // well within a second of its deadline.
  std::chrono::milliseconds tick{200};
};

// Owned by the app; start() and stop() from one thread. Everything else runs on
// the scheduler's own threads (its subscription and its timer).
class expiry_scheduler {
 public:
  expiry_scheduler(eventstore::event_store& store, const eventstore::event_codec& codec,
                   command_service& commands, const clock& clock,
                   expiry_scheduler_options options = {});
  ~expiry_scheduler();
  expiry_scheduler(const expiry_scheduler&) = delete;
  expiry_scheduler& operator=(const expiry_scheduler&) = delete;

  void start();
  void stop();

  // Invites whose deadline is known and not yet announced (for tests and metrics).
  std::size_t pending() const;

 private:
  struct entry {
    std::optional<timestamp> deadline;
    std::optional<timestamp> announced_for;
    bool deleted = false;
    bool in_flight = false;
  };
  void apply(const eventstore::recorded_event& e);
  void reschedule(const uuid& id, entry& en);
  void run();

  eventstore::event_store& store_;
  const eventstore::event_codec& codec_;
  command_service& commands_;
  const clock& clock_;
  expiry_scheduler_options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uuid, entry> invites_;
  std::set<std::pair<timestamp, uuid>> due_;  // (deadline, invite) not yet announced
  bool stopping_ = false;
  std::unique_ptr<eventstore::subscription> subscription_;
  std::thread timer_;
};

}  // namespace passage::service
