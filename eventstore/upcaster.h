#pragma once
// The one place where old event shapes become current ones. An upcaster turns
// an event of (type, schema_version) into the next version; the store applies
// the chain on every read, so readers only ever see current shapes while the log
// itself stays as it was written.

#include <functional>
#include <map>
#include <string>
#include <utility>

#include "eventstore/event.h"

namespace passage::eventstore {

// Built at start-up, then read-only (and so safe to share between threads).
class upcaster_registry {
 public:
  // `fn` must rewrite e.data from `from_version` to `from_version + 1`; the
  // registry bumps e.schema_version itself.
  using upcast_fn = std::function<void(recorded_event& e)>;

  void add(std::string type, std::uint32_t from_version, upcast_fn fn) {
    fns_[{std::move(type), from_version}] = std::move(fn);
  }

  // Applies every registered step that matches, in order.
  void upcast(recorded_event& e) const {
    if (fns_.empty()) return;
    for (auto it = fns_.find({e.type, e.schema_version}); it != fns_.end();
         it = fns_.find({e.type, e.schema_version})) {
      it->second(e);
      ++e.schema_version;
    }
  }

  bool empty() const { return fns_.empty(); }

 private:
  std::map<std::pair<std::string, std::uint32_t>, upcast_fn> fns_;
};

}  // namespace passage::eventstore
