#include "bench/bench_args.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace passage::bench {
namespace {

struct parsed {
  bench_args::outcome got;
  double seconds = 5;
  std::uint64_t events = 100;
  int connections = 64;
  std::string mode = "both";
  bool keep = false;
};

parsed parse(std::vector<const char*> argv) {
  parsed p;
  bench_args args("x_bench", "A benchmark.");
  args.value("--seconds", p.seconds, "length of each run");
  args.value("--events", p.events, "events to write");
  args.value("--connections", p.connections, "client connections");
  args.value("--mode", p.mode, "claims, reads or both");
  args.flag("--keep", p.keep, "keep the folder");
  argv.insert(argv.begin(), "x_bench");
  p.got = args.parse(static_cast<int>(argv.size()), argv.data());
  return p;
}

TEST(bench_args, values_and_switches_are_read_and_the_rest_keep_their_defaults) {
  auto p = parse({"--seconds", "2.5", "--keep", "--mode", "claims"});
  EXPECT_EQ(p.got.what, bench_args::outcome::run) << p.got.message;
  EXPECT_EQ(p.seconds, 2.5);
  EXPECT_TRUE(p.keep);
  EXPECT_EQ(p.mode, "claims");
  EXPECT_EQ(p.events, 100u);
  EXPECT_EQ(p.connections, 64);
}

TEST(bench_args, help_asks_for_the_usage_which_lists_every_flag) {
  auto p = parse({"--seconds", "1", "--help"});
  EXPECT_EQ(p.got.what, bench_args::outcome::help);
  double seconds = 0;
  bench_args args("x_bench", "A benchmark.");
  args.value("--seconds", seconds, "length of each run");
  const auto usage = args.usage();
  EXPECT_NE(usage.find("usage: x_bench"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--seconds V"), std::string::npos) << usage;
  EXPECT_NE(usage.find("length of each run"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--help"), std::string::npos) << usage;
}

TEST(bench_args, an_unknown_flag_is_an_error_naming_it) {
  auto p = parse({"--seconds", "1", "--sconds", "2"});
  EXPECT_EQ(p.got.what, bench_args::outcome::error);
  EXPECT_EQ(p.got.message, "unknown argument '--sconds'");
}

TEST(bench_args, a_value_that_is_missing_or_not_a_number_is_an_error_naming_the_flag) {
  auto missing = parse({"--events"});
  EXPECT_EQ(missing.got.what, bench_args::outcome::error);
  EXPECT_EQ(missing.got.message, "--events needs a value");
  for (const char* bad : {"ten", "10k", "-5", ""}) {
    auto p = parse({"--events", bad});
    EXPECT_EQ(p.got.what, bench_args::outcome::error) << bad;
    EXPECT_EQ(p.got.message, std::string("--events needs a number, not '") + bad + "'");
    EXPECT_EQ(p.events, 100u) << "left as it was";
  }
  auto fraction = parse({"--connections", "1.5"});
  EXPECT_EQ(fraction.got.what, bench_args::outcome::error);
}

}  // namespace
}  // namespace passage::bench
