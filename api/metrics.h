#pragma once
// Prometheus metrics of the process: the HTTP server's own
// (passage_http_requests_total{route,method,status},
// passage_http_request_duration_seconds{route}, passage_http_open_connections)
// and whatever other modules register through it (append latency, log
// position, projection lag). Exposed in text format by metrics_handler().
//
//   auto m = std::make_shared<metrics>();
//   prometheus::Gauge& pos = m->gauge("passage_log_position", "Last stored position");
//   pos.Set(42);
//   r.add(http::verb::get, "/metrics", m->metrics_handler());
//   http_server server(ioc, {.metrics = m}, r.as_handler());

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "api/http_types.h"

namespace passage::api {

struct metrics_options {
  // Upper bounds (seconds) of the request duration histogram buckets.
  // Default: 0.5 ms ... 10 s, roughly 2.5x apart.
  std::vector<double> duration_buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
};

// Shared (std::shared_ptr) by the server, the modules that register metrics and
// the /metrics handler. Every method is safe to call from any thread; the
// references returned stay valid as long as this object.
class metrics {
 public:
  explicit metrics(metrics_options options = {});
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // Counts one answered request. `route` is the route template (never the raw
  // path, whose ids would explode the label set); empty becomes "unmatched".
  void observe_request(std::string_view route, std::string_view method, unsigned status,
                       std::chrono::duration<double> duration);
  void connection_opened();
  void connection_closed();

  // Get-or-create a metric of another module. Names follow Prometheus rules
  // (passage_<module>_<what>[_unit]); the same name and labels give the same
  // metric. Throws std::invalid_argument for an invalid name or a name
  // registered with another type (start-up errors).
  prometheus::Counter& counter(const std::string& name, const std::string& help,
                               const prometheus::Labels& labels = {});
  prometheus::Gauge& gauge(const std::string& name, const std::string& help,
                           const prometheus::Labels& labels = {});
  prometheus::Histogram& histogram(const std::string& name, const std::string& help,
                                   const std::vector<double>& buckets,
                                   const prometheus::Labels& labels = {});

  // The underlying registry, for collectables that prometheus-cpp builds itself.
  prometheus::Registry& registry() { return *registry_; }

  // Every metric in the Prometheus text exposition format (version 0.0.4).
  std::string text() const;

  // A handler answering with text(); this object must outlive it.
  handler metrics_handler() const;

 private:
  // The request counter and duration histogram of a route, method and status, created on
  // first use.
  std::pair<prometheus::Counter*, prometheus::Histogram*> request_series_for(
      std::string_view route, std::string_view method, unsigned status);

  const std::uint64_t id_;  // tells instances apart in observe_request's per-thread cache
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Gauge& open_connections_;
  std::vector<double> duration_buckets_;

  std::mutex mu_;  // guards the family caches below and the request cache
  std::map<std::string, prometheus::Family<prometheus::Counter>*, std::less<>> counters_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*, std::less<>> gauges_;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*, std::less<>> histograms_;
  std::map<std::string, prometheus::Counter*, std::less<>> request_counters_;
  std::map<std::string, prometheus::Histogram*, std::less<>> route_durations_;
};

}  // namespace passage::api
