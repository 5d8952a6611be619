#include "projections/point_in_time.h"

#include <algorithm>
#include <atomic>

#include "domain/streams.h"

namespace passage::projections {
namespace {

// Every event of `stream` recorded at or before `as_of`, oldest first.
result<std::vector<eventstore::recorded_event>, projection_error> stream_until(
    eventstore::event_store& store, const std::string& stream, timestamp as_of) {
  constexpr std::size_t page = 4096;
  std::vector<eventstore::recorded_event> out;
  for (std::uint64_t from = 1;;) {
    auto events = store.read_stream(stream, from, eventstore::read_direction::forward, page);
    if (!events) return projection_error{"reading " + stream + ": " + events.error().message};
    for (auto& e : *events) {
      // recorded_at never decreases along the log, so neither along a stream.
      if (e.recorded_at > as_of) return out;
      out.push_back(std::move(e));
    }
    if (events->size() < page) return out;
    from = out.back().stream_version + 1;
  }
}

}  // namespace

invite_snapshot::invite_snapshot(std::unique_ptr<read_models> models, uuid org_id, uuid invite_id,
                                 timestamp as_of)
    : models_(std::move(models)), org_id_(org_id), invite_id_(invite_id), as_of_(as_of) {}

usage_view invite_snapshot::usage() const {
  return models_->usage(org_id_, invite_id_).value_or(usage_view{invite_id_});
}

std::vector<acceptance_row> invite_snapshot::acceptance_list() const {
  return models_->acceptance_list(org_id_, invite_id_).value_or(std::vector<acceptance_row>{});
}

std::vector<rejection_row> invite_snapshot::rejections() const {
  return models_->rejections(org_id_, invite_id_).value_or(std::vector<rejection_row>{});
}

result<std::optional<invite_snapshot>, projection_error> invite_as_of(
    eventstore::event_store& store, const eventstore::event_codec& codec, const uuid& invite_id,
    timestamp as_of) {
  auto events = stream_until(store, domain::invite_stream(invite_id), as_of);
  if (!events) return events.error();
  if (events->empty()) return std::optional<invite_snapshot>{};
  auto org_id = uuid::parse(events->front().org_id);
  if (!org_id) return projection_error{"invite " + invite_id.to_string() + ": no organization"};
  // Plays, pauses and resumes live in the claims' own streams. Only the claim's id is
  // wanted here: its personal data stays sealed (apply() below reads the event again).
  std::vector<std::string> claim_streams;
  for (const auto& e : *events) {
    if (e.type != domain::invite_claimed::type_name) continue;
    auto decoded = eventstore::event_from_json_text(e.type, e.data, /*without_personal_data=*/true);
    if (!decoded)
      return projection_error{"invite " + invite_id.to_string() + ": " + decoded.error().message};
    const auto& c = std::get<domain::invite_claimed>(*decoded);
    claim_streams.push_back(domain::claim_stream(c.claim_id_));
  }
  for (const auto& stream : claim_streams) {
    auto more = stream_until(store, stream, as_of);
    if (!more) return more.error();
    for (auto& e : *more) {
      if (e.type != domain::invite_claimed::type_name) events->push_back(std::move(e));
    }
  }
  std::sort(events->begin(), events->end(),
            [](const auto& a, const auto& b) { return a.position < b.position; });
  static std::atomic<std::uint64_t> scratch_count{0};
  auto models = read_models::open(
      {.path = "/as-of-" + std::to_string(++scratch_count), .in_memory = true}, codec);
  if (!models) return models.error();
  if (auto applied = (*models)->apply(*events); !applied) return applied.error();
  return std::optional<invite_snapshot>{
      invite_snapshot(std::move(*models), *org_id, invite_id, as_of)};
}

}  // namespace passage::projections
