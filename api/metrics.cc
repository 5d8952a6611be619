#include "api/metrics.h"

#include <atomic>
#include <charconv>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include "api/problem.h"

namespace passage::api {
namespace {

template <typename T, typename Builder>
prometheus::Family<T>& family(std::map<std::string, prometheus::Family<T>*, std::less<>>& cache,
                              prometheus::Registry& registry, Builder builder,
                              const std::string& name, const std::string& help) {
  if (auto it = cache.find(name); it != cache.end()) return *it->second;
  if (!prometheus::CheckMetricName(name)) {
    throw std::invalid_argument("metrics: invalid metric name '" + name + "'");
  }
  try {
    auto& f = builder.Name(name).Help(help).Register(registry);
    cache.emplace(name, &f);
    return f;
  } catch (const std::exception& e) {
    throw std::invalid_argument("metrics: cannot register '" + name + "': " + e.what());
  }
}

void check_labels(const prometheus::Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (!prometheus::CheckLabelName(k)) {
      throw std::invalid_argument("metrics: invalid label name '" + k + "'");
    }
  }
}

std::atomic<std::uint64_t> next_metrics_id{1};

// The series one request updates.
struct request_series {
  prometheus::Counter* counter = nullptr;
  prometheus::Histogram* histogram = nullptr;
};

// The method label: the standard methods as they are, every other token the client may
// send as "other", so clients cannot add series (memory, scrape size) by inventing methods.
std::string_view method_label(std::string_view method) {
  static constexpr std::string_view known[] = {"GET",    "HEAD",    "POST",  "PUT",    "PATCH",
                                               "DELETE", "OPTIONS", "TRACE", "CONNECT"};
  for (auto k : known) {
    if (method == k) return k;
  }
  return "other";
}

}  // namespace

metrics::metrics(metrics_options options)
    : id_(next_metrics_id.fetch_add(1)),
      registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("passage_http_requests_total")
                    .Help("HTTP requests answered, by route template, method and status")
                    .Register(*registry_)),
      durations_(prometheus::BuildHistogram()
                     .Name("passage_http_request_duration_seconds")
                     .Help("Time from a request fully read to its response written, by route")
                     .Register(*registry_)),
      open_connections_(prometheus::BuildGauge()
                            .Name("passage_http_open_connections")
                            .Help("Open HTTP connections")
                            .Register(*registry_)
                            .Add({})),
      duration_buckets_(std::move(options.duration_buckets)) {}

void metrics::observe_request(std::string_view route, std::string_view method, unsigned status,
                              std::chrono::duration<double> duration) {
  if (route.empty()) route = "unmatched";
  method = method_label(method);
  // Each I/O thread remembers the series it has updated, keyed by this object's id (never
  // reused, unlike its address), route, method and status: a request then updates its
  // counter and histogram without the lock or an allocation.
  thread_local std::string key;
  thread_local std::unordered_map<std::string, request_series> seen;
  char digits[16];
  auto id_end = std::to_chars(digits, digits + sizeof digits, id_).ptr;
  key.assign(digits, id_end).append(1, ' ').append(route).append(1, ' ').append(method);
  auto status_end = std::to_chars(digits, digits + sizeof digits, status).ptr;
  key.append(1, ' ').append(digits, status_end);
  if (auto it = seen.find(key); it != seen.end()) {
    it->second.counter->Increment();
    it->second.histogram->Observe(duration.count());
    return;
  }
  auto [counter, histogram] = request_series_for(route, method, status);
  if (seen.size() >= 4096) seen.clear();  // routes x methods x statuses: a backstop only
  seen.emplace(key, request_series{counter, histogram});
  counter->Increment();
  histogram->Observe(duration.count());
}

std::pair<prometheus::Counter*, prometheus::Histogram*> metrics::request_series_for(
    std::string_view route, std::string_view method, unsigned status) {
  std::string status_text = std::to_string(status);
  std::string key;
  key.reserve(route.size() + method.size() + 6);
  key.append(route).append(1, ' ').append(method).append(1, ' ').append(status_text);

  prometheus::Counter* counter = nullptr;
  prometheus::Histogram* histogram = nullptr;
  {
    std::lock_guard lock(mu_);
    if (auto it = request_counters_.find(key); it != request_counters_.end()) {
      counter = it->second;
    } else {
      counter = &requests_.Add({{"route", std::string(route)},
                                {"method", std::string(method)},
                                {"status", status_text}});
      request_counters_.emplace(std::move(key), counter);
    }
    if (auto it = route_durations_.find(route); it != route_durations_.end()) {
      histogram = it->second;
    } else {
      histogram = &durations_.Add({{"route", std::string(route)}},
                                  prometheus::Histogram::BucketBoundaries(duration_buckets_));
      route_durations_.emplace(std::string(route), histogram);
    }
  }
  return {counter, histogram};
}

void metrics::connection_opened() { open_connections_.Increment(); }
void metrics::connection_closed() { open_connections_.Decrement(); }

prometheus::Counter& metrics::counter(const std::string& name, const std::string& help,
                                      const prometheus::Labels& labels) {
  check_labels(labels);
  std::lock_guard lock(mu_);
  return family(counters_, *registry_, prometheus::BuildCounter(), name, help).Add(labels);
}

prometheus::Gauge& metrics::gauge(const std::string& name, const std::string& help,
                                  const prometheus::Labels& labels) {
  check_labels(labels);
  std::lock_guard lock(mu_);
  return family(gauges_, *registry_, prometheus::BuildGauge(), name, help).Add(labels);
}

prometheus::Histogram& metrics::histogram(const std::string& name, const std::string& help,
                                          const std::vector<double>& buckets,
                                          const prometheus::Labels& labels) {
  check_labels(labels);
  std::lock_guard lock(mu_);
  return family(histograms_, *registry_, prometheus::BuildHistogram(), name, help)
      .Add(labels, prometheus::Histogram::BucketBoundaries(buckets));
}

std::string metrics::text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

handler metrics::metrics_handler() const {
  return [this](const request&, request_context&, responder respond) {
    respond(text_response(http::status::ok, text(), "text/plain; version=0.0.4; charset=utf-8"));
  };
}

}  // namespace passage::api
