#include "api/v1/live_tail.h"

#include <algorithm>
#include <chrono>
#include <list>
#include <utility>

namespace passage::api::v1 {

live_tail::live_tail(eventstore::event_store& store, render frame, live_tail_options options)
    : store_(store), frame_(std::move(frame)), options_(options) {
  options_.batch = std::max<std::size_t>(options_.batch, 1);
  thread_ = std::thread([this] { run(); });
}

live_tail::~live_tail() { stop(); }

std::optional<live_tail::place> live_tail::reserve() {
  std::lock_guard lk(mu_);
  if (stopping_ || count_ >= options_.max_clients) return std::nullopt;
  ++count_;
  return place(this);
}

live_tail::place::~place() {
  if (!tail_) return;
  std::lock_guard lk(tail_->mu_);
  --tail_->count_;
}

bool live_tail::add(place p, client c) {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;  // `p` gives its place back
    const std::uint64_t next = std::max<std::uint64_t>(c.from, 1);
    joining_.push_back({std::move(c), next});
    p.tail_ = nullptr;  // the place is the client's now; the thread frees it when it goes
  }
  cv_.notify_one();
  return true;
}

std::size_t live_tail::clients() const {
  std::lock_guard lk(mu_);
  return count_;
}

void live_tail::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<bool> live_tail::step(std::uint64_t from, const std::vector<member*>& group) {
  std::size_t seen = 0;
  auto last = store_.scan({.from_position = from}, [&](const eventstore::recorded_event& e) {
    std::optional<std::optional<std::string>> frame;  // rendered once, on first need
    for (member* m : group) {
      if (m->next > e.position || m->c.org != e.org_id) continue;
      if (!frame) frame = frame_(e);
      if (*frame && !m->c.stream->send(**frame)) m->c.stream->close();
    }
    return ++seen < options_.batch;
  });
  if (!last) return std::nullopt;
  if (*last >= from) {
    for (member* m : group) m->next = std::max(m->next, *last + 1);
  }
  return seen >= options_.batch;
}

live_tail::round_result live_tail::round(std::list<member>& members) {
  round_result r;
  // The live group: clients with nothing stored left to read. The others catch up one step
  // each, at most max_catch_up_steps clients a round (taken in turn), so that clients
  // resuming from far back never hold the live group up for long.
  const std::uint64_t head = store_.head_position();
  r.wait_after = head;
  std::vector<member*> live;
  std::uint64_t live_from = UINT64_MAX;
  std::vector<std::list<member>::iterator> behind;
  for (auto it = members.begin(); it != members.end(); ++it) {
    if (it->next > head) {
      live.push_back(&*it);
      live_from = std::min(live_from, it->next);
    } else {
      behind.push_back(it);
    }
  }
  std::size_t stepped = 0;
  for (auto it : behind) {
    if (stepped == options_.max_catch_up_steps) {
      r.more = true;
      break;
    }
    ++stepped;
    auto full = step(it->next, {&*it});
    if (!full) {
      it->c.stream->close();  // it resumes from its Last-Event-ID when it comes back
      r.failed = true;
    } else {
      r.more = r.more || *full;
    }
    members.splice(members.end(), members, it);  // the next round starts with the others
  }
  if (!live.empty()) {
    auto full = step(live_from, live);
    if (!full) {
      for (member* m : live) m->c.stream->close();
      r.failed = true;
    } else {
      r.more = r.more || *full;
    }
    r.wait_after = live_from - 1;
  }
  return r;
}

void live_tail::run() {
  std::list<member> members;  // stable addresses for the groups
  while (true) {
    {
      std::unique_lock lk(mu_);
      if (members.empty()) {
        cv_.wait(lk, [&] { return stopping_ || !joining_.empty(); });
      }
      if (stopping_) break;
      for (auto& j : joining_) members.push_back(std::move(j));
      joining_.clear();
    }
    // Drop clients that left; their count goes back.
    std::size_t dropped =
        std::erase_if(members, [](const member& m) { return !m.c.stream->is_open(); });
    if (dropped) {
      std::lock_guard lk(mu_);
      count_ -= dropped;
    }
    if (members.empty()) continue;

    round_result r;
    try {
      r = round(members);
    } catch (const std::exception&) {
      // An event that cannot be rendered, memory: these responses end (each client resumes
      // from its Last-Event-ID), the tail goes on.
      for (auto& m : members) m.c.stream->close();
      r.failed = true;
    }
    if (r.failed) {
      // The log could not be read (or rendered): the clients concerned were ended; wait a
      // little before reading again rather than spinning on a lasting fault.
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_; });
      continue;
    }
    if (r.more) continue;
    store_.wait_for_head(r.wait_after,
                         std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  }
  // Stopped: end every response.
  std::vector<member> left;
  {
    std::lock_guard lk(mu_);
    for (auto& j : joining_) left.push_back(std::move(j));
    joining_.clear();
    count_ -= members.size() + left.size();  // places still reserved are freed by their owners
  }
  for (auto& m : members) m.c.stream->close();
  for (auto& m : left) m.c.stream->close();
}

}  // namespace passage::api::v1
