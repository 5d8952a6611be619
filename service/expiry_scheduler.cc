#include "service/expiry_scheduler.h"

#include "domain/invite.h"

namespace passage::service {

expiry_scheduler::expiry_scheduler(eventstore::event_store& store,
                                   const eventstore::event_codec& codec, command_service& commands,
                                   const clock& clock, expiry_scheduler_options options)
    : store_(store), codec_(codec), commands_(commands), clock_(clock), options_(options) {}

expiry_scheduler::~expiry_scheduler() { stop(); }

void expiry_scheduler::start() {
  subscription_ = std::make_unique<eventstore::subscription>(
      store_,
      eventstore::subscription_options{.filter = {.from_position = 1,
                                                  .types = {"InviteCreated", "InviteUpdated",
                                                            "InviteExpired", "InviteDeleted"}}},
      [this](std::span<const eventstore::recorded_event> batch) {
        for (const auto& e : batch) apply(e);
        cv_.notify_all();
        return true;
      });
  timer_ = std::thread([this] { run(); });
}

void expiry_scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (subscription_) subscription_->stop();
  if (timer_.joinable()) timer_.join();
}

std::size_t expiry_scheduler::pending() const {
  std::lock_guard lk(mu_);
  return due_.size();
}

void expiry_scheduler::reschedule(const uuid& id, entry& en) {
  // Drop whatever was scheduled for this invite, then schedule its current deadline.
  for (auto it = due_.begin(); it != due_.end();) {
    it = it->second == id ? due_.erase(it) : std::next(it);
  }
  if (!en.deleted && en.deadline && en.announced_for != en.deadline) {
    due_.insert({*en.deadline, id});
  }
}

void expiry_scheduler::apply(const eventstore::recorded_event& e) {
  auto decoded = codec_.decode(e);
  if (!decoded) return;  // undecodable events are the read side's to report
  std::lock_guard lk(mu_);
  std::visit(
      [&](const auto& ev) {
        using T = std::decay_t<decltype(ev)>;
        if constexpr (std::is_same_v<T, domain::invite_created> ||
                      std::is_same_v<T, domain::invite_updated>) {
          auto& en = invites_[ev.invite_id_];
          auto before = en.deadline;
          en.deadline = domain::claims_close_at(ev.settings_);
          if (en.deadline != before) reschedule(ev.invite_id_, en);
        } else if constexpr (std::is_same_v<T, domain::invite_expired>) {
          auto& en = invites_[ev.invite_id_];
          en.announced_for = ev.expired_at_;
          reschedule(ev.invite_id_, en);
        } else if constexpr (std::is_same_v<T, domain::invite_deleted>) {
          auto& en = invites_[ev.invite_id_];
          en.deleted = true;
          reschedule(ev.invite_id_, en);
          invites_.erase(ev.invite_id_);
        }
      },
      decoded->event);
}

void expiry_scheduler::run() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    // The clock may be a test's manual clock: look again every tick rather than
    // sleeping until the deadline.
    cv_.wait_for(lk, options_.tick);
    if (stopping_) break;
    const timestamp now = clock_.now();
    std::vector<uuid> due;
    for (const auto& [deadline, id] : due_) {
      if (deadline > now) break;
      auto& en = invites_[id];
      if (en.in_flight) continue;
      en.in_flight = true;
      due.push_back(id);
    }
    lk.unlock();
    for (const auto& id : due) {
      commands_.expire_invite(id, {"scheduler", ""}, [this, id](service_result<written> r) {
        std::lock_guard g(mu_);
        if (auto it = invites_.find(id); it != invites_.end()) {
          it->second.in_flight = false;
          // Nothing to announce (already announced, deleted, not due after all): forget
          // it until the log says otherwise. Success is seen through the log; anything
          // else (the log unavailable) is tried again next tick.
          bool settled = r ? r->position == 0
                           : (r.error().code == "deleted" || r.error().code == "not_found" ||
                              r.error().code == "invalid_state");
          if (settled) {
            for (auto d = due_.begin(); d != due_.end();) {
              d = d->second == id ? due_.erase(d) : std::next(d);
            }
          }
        }
      });
    }
    lk.lock();
  }
}

}  // namespace passage::service
