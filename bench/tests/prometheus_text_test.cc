#include "bench/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>

namespace passage::bench {
namespace {

std::string page(double b1, double b2, double inf, double sum) {
  auto n = [](double v) { return std::to_string(v); };
  return "# HELP passage_log_fsync_duration_seconds Time one fsync takes\n"
         "# TYPE passage_log_fsync_duration_seconds histogram\n"
         "passage_log_fsync_duration_seconds_count " +
         n(inf) +
         "\n"
         "passage_log_fsync_duration_seconds_sum " +
         n(sum) +
         "\n"
         "passage_log_fsync_duration_seconds_bucket{le=\"0.002\"} " +
         n(b1) +
         "\n"
         "passage_log_fsync_duration_seconds_bucket{le=\"0.008\"} " +
         n(b2) +
         "\n"
         "passage_log_fsync_duration_seconds_bucket{le=\"+Inf\"} " +
         n(inf) +
         "\n"
         "passage_log_fsync_duration_seconds_other_bucket{le=\"1\"} 99\n"
         "passage_append_duration_seconds_count 7\n";
}

TEST(PrometheusText, ReadsOneHistogramsBucketsCountAndSum) {
  auto h = histogram_in(page(3, 9, 10, 0.05), "passage_log_fsync_duration_seconds");
  ASSERT_EQ(h.buckets.size(), 3u);
  EXPECT_DOUBLE_EQ(h.buckets[0].first, 0.002);
  EXPECT_DOUBLE_EQ(h.buckets[0].second, 3);
  EXPECT_DOUBLE_EQ(h.buckets[1].first, 0.008);
  EXPECT_TRUE(std::isinf(h.buckets[2].first));
  EXPECT_DOUBLE_EQ(h.count, 10);
  EXPECT_DOUBLE_EQ(h.sum, 0.05);
  EXPECT_DOUBLE_EQ(h.mean(), 0.005);
  EXPECT_DOUBLE_EQ(h.quantile_bound(0.3), 0.002);
  EXPECT_DOUBLE_EQ(h.quantile_bound(0.5), 0.008);
  EXPECT_DOUBLE_EQ(h.quantile_bound(0.9), 0.008);
  EXPECT_TRUE(std::isinf(h.quantile_bound(0.99)));
}

TEST(PrometheusText, TheObservationsBetweenTwoScrapes) {
  auto before = histogram_in(page(3, 9, 10, 0.05), "passage_log_fsync_duration_seconds");
  auto after = histogram_in(page(3, 19, 21, 0.105), "passage_log_fsync_duration_seconds");
  auto d = after.since(before);
  EXPECT_DOUBLE_EQ(d.count, 11);  // ten at most 8 ms, one past the last bound
  EXPECT_DOUBLE_EQ(d.mean(), 0.005);
  EXPECT_DOUBLE_EQ(d.quantile_bound(0.01), 0.008) << "none of the new ones were under 2 ms";
  EXPECT_DOUBLE_EQ(d.quantile_bound(0.9), 0.008);
  EXPECT_TRUE(std::isinf(d.quantile_bound(0.99)));
}

TEST(PrometheusText, AMissingHistogramIsEmpty) {
  auto h = histogram_in(page(1, 2, 3, 0.1), "passage_no_such_seconds");
  EXPECT_TRUE(h.buckets.empty());
  EXPECT_EQ(h.count, 0);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_EQ(h.quantile_bound(0.99), 0);
  EXPECT_EQ(histogram_in("", "x").count, 0);
}

}  // namespace
}  // namespace passage::bench
