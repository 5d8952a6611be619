#pragma once
// Point-in-time answers: what the read models answered about an invite at an earlier
// instant, rebuilt from the log rather than approximated. The events that feed the
// invite's views (its own stream and the streams of its claims) recorded at or before
// `as_of` are applied, by the same read-model code as the live projection, to scratch
// read models kept in memory; queries on them answer as the system did at `as_of`.
// Personal data is decrypted with today's keys, so a learner forgotten since shows as
// `forgotten` (SPEC §6).
//
//   auto then = invite_as_of(store, codec, invite_id, *parse_rfc3339("2026-11-20T09:00:00Z"));
//   if (!then) die(then.error().message);
//   if (!*then) return not_found();                 // no such invite at that instant
//   auto usage = (*then)->usage();                  // == live usage() asked at that instant

#include <memory>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/uuid.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "projections/read_models.h"

namespace passage::projections {

// One invite as it stood at an instant. Owns its scratch read models; not thread-safe to
// build, its queries are const.
class invite_snapshot {
 public:
  invite_snapshot(std::unique_ptr<read_models> models, uuid org_id, uuid invite_id,
                  timestamp as_of);

  const uuid& org_id() const { return org_id_; }
  const uuid& invite_id() const { return invite_id_; }
  timestamp as_of() const { return as_of_; }

  usage_view usage() const;
  std::vector<acceptance_row> acceptance_list() const;
  std::vector<rejection_row> rejections() const;

 private:
  std::unique_ptr<read_models> models_;
  uuid org_id_;
  uuid invite_id_;
  timestamp as_of_;
};

// The invite as of `as_of` (events recorded at or before it). nullopt when the invite did
// not exist yet (or never did). `codec` must outlive the snapshot.
result<std::optional<invite_snapshot>, projection_error> invite_as_of(
    eventstore::event_store& store, const eventstore::event_codec& codec, const uuid& invite_id,
    timestamp as_of);

}  // namespace passage::projections
