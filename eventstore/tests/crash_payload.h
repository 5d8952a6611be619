#pragma once
// The deterministic events the crash-safety child appends, so that the parent
// can check byte for byte what an acknowledged position must hold.

#include <cstring>
#include <string>

#include "eventstore/event.h"

namespace passage::eventstore::testing {

struct crash_spec {
  std::string stream;
  new_event event;
};

inline crash_spec crash_event(int run, int thread, int seq) {
  crash_spec s;
  s.stream = "crash-" + std::to_string(run) + "-" + std::to_string(thread);
  uuid id;
  std::uint32_t parts[4] = {0xC0FFEEu, static_cast<std::uint32_t>(run),
                            static_cast<std::uint32_t>(thread), static_cast<std::uint32_t>(seq)};
  std::memcpy(id.bytes.data(), parts, 16);
  s.event.event_id = id;
  s.event.type = "CrashTested";
  s.event.org_id = "org-crash";
  s.event.actor = "child";
  // Sizes vary so records straddle WAL blocks differently.
  s.event.data =
      std::string(16 + (seq * 37 + thread * 11) % 700, static_cast<char>('a' + seq % 26));
  s.event.data +=
      ":" + std::to_string(run) + ":" + std::to_string(thread) + ":" + std::to_string(seq);
  return s;
}

}  // namespace passage::eventstore::testing
