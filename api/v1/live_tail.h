#pragma once
// The live tail behind GET /v1/events/live: one reading thread for every connected
// client, however many there are. Clients at the head form the live group and share
// one scan of each new batch, each event rendered once (its frame reused for every
// client of its organization); a client resuming from an older position (Last-Event-ID,
// ?from=) catches up on its own, one bounded step per round, and joins the live group
// when it reaches it; a few catch-up steps a round, so clients resuming from far back
// delay the live group little. At most `max_clients` at once, checked in one place:
// reserve() takes a place before the response starts (none left: the route answers 503),
// and add() gives it to the client, so an admitted client is never cut off for want of
// room. A client whose events cannot be read (a fault of the log) is ended and resumes
// from its Last-Event-ID when it reconnects; the tail goes on.
//
//   live_tail tail(store, [&](const recorded_event& e) { return frame_of(e); });
//   auto place = tail.reserve();
//   if (!place) return refuse();  // 503, Retry-After
//   tail.add(std::move(*place), {.org = org, .from = start, .stream = start_stream()});
//
// Every event is delivered to a client at most once and in log order, from its start
// position on with no gap. A client whose stream closes (it left, it was too slow, the
// server stopped) is dropped at the next round.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/http_types.h"
#include "eventstore/event_store.h"

namespace passage::api::v1 {

struct live_tail_options {
  std::size_t max_clients = 1024;
  std::size_t batch = 512;             // events per scan step (live group, and each catch-up step)
  std::size_t max_catch_up_steps = 8;  // catch-up clients stepped per round, in turn
};

class live_tail {
 public:
  // The SSE frame of an event ("id: …\nevent: …\ndata: …\n\n"); nullopt: not shown.
  using render = std::function<std::optional<std::string>(const eventstore::recorded_event&)>;

  struct client {
    std::string org;         // only events of this organization
    std::uint64_t from = 1;  // the first position to deliver
    std::shared_ptr<event_stream> stream;
  };

  live_tail(eventstore::event_store& store, render frame, live_tail_options options = {});
  ~live_tail();  // stop()
  live_tail(const live_tail&) = delete;
  live_tail& operator=(const live_tail&) = delete;

  // One of the max_clients places, held for a client about to be added; given back when
  // dropped without add(). Used on the thread that reserved it, within the tail's life.
  class place {
   public:
    place(place&& o) noexcept : tail_(std::exchange(o.tail_, nullptr)) {}
    place& operator=(place&&) = delete;
    ~place();

   private:
    friend class live_tail;
    explicit place(live_tail* t) : tail_(t) {}
    live_tail* tail_;
  };
  // A place, or nullopt when max_clients are connected or reserved (or it stopped).
  std::optional<place> reserve();
  // Adds a client in its reserved place; false only when it stopped (the place is freed).
  bool add(place p, client c);
  // Ends the thread; streams of remaining clients are closed. Not from an I/O thread.
  void stop();
  // Clients connected (live or catching up), and places reserved for clients being added.
  std::size_t clients() const;

 private:
  struct member {
    client c;
    std::uint64_t next = 1;
  };
  struct round_result {
    bool more = false;    // a step filled its batch, or catch-up clients wait their turn
    bool failed = false;  // a step could not read the log (its clients were ended)
    std::uint64_t wait_after = 0;
  };
  void run();
  // One round: a catch-up step for some of the clients behind, one step for the live group.
  round_result round(std::list<member>& members);
  // One scan step from `from` for `group` (a client gets the events at or after its
  // `next`), moving each one's `next` past what was examined. Returns whether the step
  // filled its batch (more may be waiting), or nullopt when the log could not be read.
  std::optional<bool> step(std::uint64_t from, const std::vector<member*>& group);

  eventstore::event_store& store_;
  render frame_;
  live_tail_options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<member> joining_;  // added, not yet taken by the thread
  std::size_t count_ = 0;        // reserved places + joining_ + the thread's members
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace passage::api::v1
