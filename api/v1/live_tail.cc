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

bool live_tail::add(client c) {
  {
    std::lock_guard lk(mu_);
    if (stopping_ || count_ >= options_.max_clients) return false;
    std::uint64_t next = std::max<std::uint64_t>(c.from, 1);
    joining_.push_back({std::move(c), next});
    ++count_;
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

    // The live group: clients with nothing stored left to read. The others each take one
    // catch-up step this round and join the group once they reach the head.
    const std::uint64_t head = store_.head_position();
    std::vector<member*> live;
    std::uint64_t live_from = UINT64_MAX;
    bool more = false;  // a step filled its batch: read again without waiting
    bool failed = false;
    for (auto& m : members) {
      if (m.next > head) {
        live.push_back(&m);
        live_from = std::min(live_from, m.next);
        continue;
      }
      auto full = step(m.next, {&m});
      if (!full) {
        failed = true;
        break;
      }
      more = more || *full;
    }
    if (failed) break;
    if (!live.empty()) {
      auto full = step(live_from, live);
      if (!full) break;
      more = more || *full;
    }
    if (more) continue;
    std::uint64_t wait_after = live.empty() ? head : live_from - 1;
    store_.wait_for_head(wait_after,
                         std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  }
  // Stopped, or the log cannot be read (the store closed): end every response.
  std::vector<member> left;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& j : joining_) left.push_back(std::move(j));
    joining_.clear();
    count_ = 0;
  }
  for (auto& m : members) m.c.stream->close();
  for (auto& m : left) m.c.stream->close();
}

}  // namespace passage::api::v1
