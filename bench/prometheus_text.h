#pragma once
// One Prometheus histogram read from a /metrics page (text exposition format), for the
// benchmarks to report what the node measured itself between two scrapes:
//
//   auto before = bench::histogram_in(metrics_text, "passage_log_fsync_duration_seconds");
//   ... load ...
//   auto during = bench::histogram_in(later_text, "...").since(before);
//   during.count, during.mean(), during.quantile_bound(0.99)  // the bucket's upper bound
//
// Only an unlabelled histogram (the buckets' one label is `le`).

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace passage::bench {

struct histogram_counts {
  // (upper bound, observations at most that), ascending; the last bound is +Inf.
  std::vector<std::pair<double, double>> buckets;
  double count = 0;
  double sum = 0;

  // The observations made after `earlier` (a scrape of the same histogram before this one).
  histogram_counts since(const histogram_counts& earlier) const {
    histogram_counts d = *this;
    d.count -= earlier.count;
    d.sum -= earlier.sum;
    for (std::size_t i = 0; i < d.buckets.size() && i < earlier.buckets.size(); ++i) {
      d.buckets[i].second -= earlier.buckets[i].second;
    }
    return d;
  }
  double mean() const { return count > 0 ? sum / count : 0; }
  // The smallest bucket bound that at least the fraction `q` of observations is at most
  // (+Inf when they lie past the last finite bound; 0 with no observations).
  double quantile_bound(double q) const {
    if (count <= 0) return 0;
    for (const auto& [bound, n] : buckets) {
      if (n >= q * count) return bound;
    }
    return std::numeric_limits<double>::infinity();
  }
};

// The histogram `name` in `text`; empty (no buckets) when the page has none.
inline histogram_counts histogram_in(std::string_view text, std::string_view name) {
  histogram_counts h;
  const std::string bucket = std::string(name) + "_bucket{le=\"";
  const std::string count = std::string(name) + "_count ";
  const std::string sum = std::string(name) + "_sum ";
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    auto value_after = [&](std::size_t at) { return std::strtod(line.c_str() + at, nullptr); };
    if (line.rfind(bucket, 0) == 0) {
      const auto quote = line.find('"', bucket.size());
      const auto close = line.find("} ", bucket.size());
      if (quote == std::string::npos || close == std::string::npos) continue;
      const std::string le = line.substr(bucket.size(), quote - bucket.size());
      const double bound =
          le == "+Inf" ? std::numeric_limits<double>::infinity() : std::strtod(le.c_str(), nullptr);
      h.buckets.emplace_back(bound, value_after(close + 2));
    } else if (line.rfind(count, 0) == 0) {
      h.count = value_after(count.size());
    } else if (line.rfind(sum, 0) == 0) {
      h.sum = value_after(sum.size());
    }
  }
  std::sort(h.buckets.begin(), h.buckets.end());
  return h;
}

}  // namespace passage::bench
