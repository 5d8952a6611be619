#pragma once
// The v1 HTTP API of SPEC §4: every route, wired to the command service (writes)
// and the read models (queries). Handlers answer asynchronously: a command's
// response is sent once its events are durable and the read models have applied
// them, so the next GET by the same client sees the write.
//
//   router r;
//   register_routes(r, deps);          // deps outlive the router
//   http_server server(ioc, options, r.as_handler());

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/router.h"
#include "api/v1/applied_wait.h"
#include "api/v1/idempotency.h"
#include "api/v1/invite_body_cache.h"
#include "api/work_queue.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "projections/read_models.h"
#include "service/command_service.h"

namespace passage::api::v1 {

// A claim rate limit: nullopt allows the claim, else how long to wait.
using limit_check = std::function<std::optional<std::chrono::seconds>(std::string_view key)>;

// What the routes need; owned by the app, all outliving the router.
struct endpoint_deps {
  service::command_service* commands = nullptr;
  projections::read_models* reads = nullptr;
  const eventstore::event_codec* codec = nullptr;
  eventstore::event_store* store = nullptr;
  idempotency_store* idempotency = nullptr;
  const passage::clock* clock = nullptr;
  // SHA-256 hex of the operator key (may only create organizations).
  std::string operator_key_hash;
  // Claim abuse limits per client IP and per email; empty: unlimited.
  limit_check claims_per_ip;
  limit_check claims_per_email;
  // Learner logins: the same limits, counted apart (logins spend no claims, and failed
  // logins for someone's address cannot keep them from claiming); empty: unlimited.
  limit_check logins_per_ip;
  limit_check logins_per_email;
  // What /v1/system reports besides positions (e.g. the Kafka bootstrap address).
  std::function<nlohmann::json()> system_info;
  // "" when the node is ready (read models caught up at start, still applying), else
  // what /readyz reports as its status: "starting" or "failed" (applying stopped).
  std::function<std::string()> not_ready;
  // Private invitations: told of each recorded bulk send (the mailer registers the job);
  // job_status answers GET /v1/jobs/{id} (nullopt: unknown in this organization).
  std::function<void(const service::invitation_job&)> on_invitation_job;
  std::function<std::optional<nlohmann::json>(const uuid& org_id, const uuid& job_id)> job_status;
  // Told of each forgotten learner before the forget is answered (the mailer removes the
  // .eml copies of their mails).
  std::function<void(const uuid& learner_id)> on_learner_forgotten;
  // A read replica (`passage replica`): no command service and no event log. Names where
  // the primary answers; commands get 409 read_only_replica and the reads only the log
  // can answer (events, streams, learner views) 421 primary_only, both naming it.
  std::optional<std::string> primary;
  // The newest log position this node knows of, when it has no event log (a replica:
  // the last position seen on Kafka). Default: the event log's head.
  std::function<std::uint64_t()> log_position;
  // Where answers rebuilt from the log (`as_of`) run, off the I/O threads; a full queue
  // answers 503 with Retry-After. nullptr: on the calling thread (tests).
  work_queue* slow_queries = nullptr;
  // Where password hashes (scrypt: set-password, login) are computed, off the I/O threads;
  // a full queue answers 503. nullptr: on the calling thread (tests).
  work_queue* password_hashing = nullptr;
  // Clients of GET /v1/events/live connected at once; more get 503 with Retry-After.
  std::size_t live_tail_max_clients = 1024;
  // Log positions one GET /v1/events page examines at most (server_options).
  std::uint64_t events_page_scan = 20'000;
  // Bounds how long a command's answer waits for the read models (503
  // read_model_lagging past it). Default: none (waits as long as it takes).
  std::shared_ptr<applied_wait> applied;
  // Serialized GET /v1/invites/{id} bodies of unchanged invites (one per node).
  std::shared_ptr<invite_body_cache> invite_bodies = std::make_shared<invite_body_cache>();
};

void register_routes(router& r, const endpoint_deps& deps);

// The OpenAPI 3 document describing the registered routes.
nlohmann::json openapi_document(const router& r);

}  // namespace passage::api::v1
