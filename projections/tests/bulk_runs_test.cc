#include "projections/bulk_runs.h"

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/sst_file_reader.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include "tests/support/temp_dir.h"

namespace passage::projections::bulk {
namespace {

using pairs = std::map<std::string, std::string, std::less<>>;

// Keys shaped as rows' (a prefix, 16 id bytes, an 8-byte position), drawn from a small
// set of ids so runs share ids and sometimes whole keys.
std::string row_key(std::mt19937_64& rng, int ids) {
  std::string k(1, "AHLR"[rng() % 4]);
  const std::uint64_t id = rng() % static_cast<std::uint64_t>(ids);
  for (int i = 0; i < 16; ++i)
    k.push_back(static_cast<char>((id * 0x9e3779b97f4a7c15ull) >> (i % 8 * 8)));
  const std::uint64_t position = rng() % 100;
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(position >> (8 * i)));
  return k;
}

class bulk_runs_test : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.sub(name); }

  // Writes `run` as the next run file; `expected` takes its pairs as a later run's do.
  run_file write_run(sorted_run& run, rocksdb::Env* env = nullptr) {
    run_file f;
    const auto st = run.write(env, path("run-" + std::to_string(++written_)), f);
    EXPECT_TRUE(st.ok()) << st.ToString();
    run.clear();
    return f;
  }

  // Every pair of the files in order, checking they hold ascending, distinct keys.
  pairs read_back(const std::vector<std::string>& files, const rocksdb::Options& options) {
    pairs got;
    std::string last;
    for (const auto& file : files) {
      rocksdb::SstFileReader reader(options);
      auto st = reader.Open(file);
      EXPECT_TRUE(st.ok()) << st.ToString();
      std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(rocksdb::ReadOptions()));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        const std::string k = it->key().ToString();
        EXPECT_TRUE(got.empty() || compare_keys(last, k) < 0) << "out of order in " << file;
        got.emplace(k, it->value().ToString());
        last = k;
      }
      EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    }
    return got;
  }

  passage::testing::temp_dir dir_;
  int written_ = 0;
};

// Overlapping runs, keys repeated within a run and across runs: the merge holds each key
// once, with the value added last (later run, later add), whatever the number of key
// ranges merged in parallel and however the output is cut into files.
TEST_F(bulk_runs_test, overlapping_runs_merge_in_key_order_and_the_latest_value_wins) {
  std::mt19937_64 rng(7);
  std::vector<run_file> runs;
  pairs expected;
  std::size_t repeated = 0;
  sorted_run run;
  for (int r = 0; r < 5; ++r) {
    for (int i = 0; i < 6000; ++i) {
      const auto k = row_key(rng, 400);
      const auto v =
          "run " + std::to_string(r) + " add " + std::to_string(i) + std::string(rng() % 200, 'x');
      run.add(k, v);
      if (auto [it, added] = expected.insert_or_assign(k, v); !added) ++repeated;
    }
    runs.push_back(write_run(run));
  }
  ASSERT_GT(repeated, 100u);  // the case under test happens
  EXPECT_GT(runs[0].index.size(), 2u);

  std::size_t most_files = 0;
  for (std::size_t ranges : {1, 2, 3}) {
    for (std::uint64_t file_bytes : {std::uint64_t{64} << 20, std::uint64_t{64} << 10}) {
      merge_options o;
      o.out_prefix = path("out-" + std::to_string(ranges) + "-" + std::to_string(file_bytes) + "-");
      o.ranges = ranges;
      o.file_bytes = file_bytes;
      std::vector<std::string> files;
      const auto st = merge_runs(runs, o, files);
      ASSERT_TRUE(st.ok()) << st.ToString();
      EXPECT_GE(files.size(), ranges);
      most_files = std::max(most_files, files.size());
      EXPECT_EQ(read_back(files, o.sst), expected) << ranges << " ranges";
    }
  }
  EXPECT_GT(most_files, 6u);  // small files: cut within each range
}

// Keys of any length sort bytewise: shorter than the 32 bytes compared in place (zero
// bytes at their end included), longer, and with bytes above 0x7f.
// Also merged from several runs (the merge compares their keys by the same 32 bytes), in
// any number of ranges.
TEST_F(bulk_runs_test, keys_of_any_length_sort_bytewise) {
  std::mt19937_64 rng(3);
  const std::string alphabet("\x00\x01\x7f\x80\xff", 5);
  std::vector<sorted_run> runs_in_memory(3);
  pairs expected, in_first;
  for (int i = 0; i < 6000; ++i) {
    std::string k;
    const std::size_t size = rng() % 40;
    for (std::size_t j = 0; j < size; ++j) k.push_back(alphabet[rng() % alphabet.size()]);
    const std::string v = std::to_string(i);
    runs_in_memory[i / 2000].add(k, v);  // a later run, or later in the same one
    expected[k] = v;                     // the last added wins
    if (i < 2000) in_first[k] = v;
  }
  // Keys alike in their first 32 bytes (the merge compares those as integers, and only
  // then the rest): shorter and longer ones, one in two runs (the later run's value wins).
  const std::string a31(31, 'A'), a32(32, 'A');
  const std::vector<std::string> alike{a31,        a31 + '\0',   a32,
                                       a32 + '\0', a32 + '\xff', std::string(33, 'A')};
  for (std::size_t j = 0; j < alike.size(); ++j) {
    runs_in_memory[1 + j % 2].add(alike[j], "alike" + std::to_string(j));
    expected[alike[j]] = "alike" + std::to_string(j);
  }
  runs_in_memory[1].add(a32 + '\x01', "earlier run");
  runs_in_memory[2].add(a32 + '\x01', "later run");
  expected[a32 + '\x01'] = "later run";
  ASSERT_LT(in_first.size(), 2000u);  // some keys added twice to one run
  std::vector<run_file> runs{write_run(runs_in_memory[0])};
  std::vector<std::string> files;
  merge_options o{.out_prefix = path("any-")};
  auto st = merge_runs(runs, o, files);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(read_back(files, o.sst), in_first);
  runs.push_back(write_run(runs_in_memory[1]));
  runs.push_back(write_run(runs_in_memory[2]));
  for (std::size_t ranges = 1; ranges <= 4; ++ranges) {
    files.clear();
    merge_options more{.out_prefix = path("any-" + std::to_string(ranges) + "-"), .ranges = ranges};
    st = merge_runs(runs, more, files);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(read_back(files, more.sst), expected) << ranges << " ranges";
  }
}

// The read models' live batches: a run visited in key order (each key once, with the value
// added last), cleared and filled again batch after batch, its sort order reused.
TEST_F(bulk_runs_test, a_run_visits_its_pairs_in_key_order_batch_after_batch) {
  std::mt19937_64 rng(11);
  sorted_run run;
  for (int batch = 0; batch < 4; ++batch) {
    pairs expected;
    const int n = batch == 2 ? 0 : 50 + batch * 300;  // an empty batch among them
    for (int i = 0; i < n; ++i) {
      // Rows and records: keys of 9, 17 and 25 bytes, some added twice.
      std::string k = row_key(rng, 30);
      k.resize(std::array<std::size_t, 3>{9, 17, 25}[rng() % 3]);
      const std::string v = std::to_string(batch) + "/" + std::to_string(i);
      run.add(k, v);
      expected[k] = v;
    }
    std::vector<std::pair<std::string, std::string>> visited;
    run.for_each_in_key_order([&](std::string_view k, std::string_view v) {
      visited.emplace_back(std::string(k), std::string(v));
    });
    run.clear();
    const std::vector<std::pair<std::string, std::string>> in_order(expected.begin(),
                                                                    expected.end());
    EXPECT_EQ(visited, in_order) << "batch " << batch;
  }
}

// Nothing to merge: no file (RocksDB refuses empty SST files).
TEST_F(bulk_runs_test, no_rows_make_no_file) {
  std::vector<std::string> files;
  EXPECT_TRUE(merge_runs({}, {.out_prefix = path("none-")}, files).ok());
  EXPECT_TRUE(files.empty());
  sorted_run empty;
  std::vector<run_file> runs{write_run(empty)};
  EXPECT_TRUE(merge_runs(runs, {.out_prefix = path("empty-")}, files).ok());
  EXPECT_TRUE(files.empty());
}

// Values bigger than the merge's read buffer come through whole.
TEST_F(bulk_runs_test, values_bigger_than_a_read_chunk) {
  sorted_run run;
  pairs expected;
  for (int i = 0; i < 3; ++i) {
    std::string k = "H" + std::string(24, static_cast<char>('a' + i));
    std::string v(3u << 20, static_cast<char>('0' + i));
    v.back() = '!';
    run.add(k, v);
    expected[k] = v;
  }
  std::vector<run_file> runs{write_run(run)};
  run.add("A-small", "s");
  expected["A-small"] = "s";
  runs.push_back(write_run(run));
  std::vector<std::string> files;
  merge_options o{.out_prefix = path("big-")};
  ASSERT_TRUE(merge_runs(runs, o, files).ok());
  EXPECT_EQ(read_back(files, o.sst), expected);
}

// A run spans many chunks of memory; cleared, it fills its kept chunks again (skipping
// those too small for a big pair): every pair keeps its bytes, and bytes() counts them.
TEST_F(bulk_runs_test, a_run_refilled_after_clear_keeps_every_pair) {
  std::mt19937_64 rng(5);
  sorted_run run;
  std::vector<run_file> runs;
  pairs expected;
  for (int r = 0; r < 3; ++r) {
    std::size_t bytes = 0;
    for (int i = 0; i < 4000; ++i) {
      const auto k = row_key(rng, 100000);
      std::string v(rng() % 2000, static_cast<char>('a' + r));
      if (i == 2000 && r > 0) v.assign((1u << 20) + 7, 'B');  // bigger than a chunk
      v += std::to_string(i);
      run.add(k, v);
      expected[k] = v;
      bytes += k.size() + v.size();
    }
    EXPECT_GE(run.bytes(), bytes);
    runs.push_back(write_run(run));
    EXPECT_TRUE(run.empty());
  }
  std::vector<std::string> files;
  merge_options o{.out_prefix = path("refill-")};
  ASSERT_TRUE(merge_runs(runs, o, files).ok());
  EXPECT_EQ(read_back(files, o.sst), expected);
}

// A bulk load's two runs swap their pairs (swap_rows) each time one goes to be written,
// while the one written keeps its sort buffer: each file holds exactly the pairs of the
// run swapped in, also after a bigger one (nothing of the earlier sort left over) and
// after a run took the other's memory and gave it back.
TEST_F(bulk_runs_test, runs_swapping_their_pairs_write_each_others_rows) {
  std::mt19937_64 rng(11);
  sorted_run filling, writing;
  std::vector<run_file> runs;
  std::vector<pairs> filled;
  for (int r = 0; r < 5; ++r) {
    pairs expected;
    const int n = r == 1 ? 9000 : 3000 - 500 * r;  // bigger, then smaller runs
    for (int i = 0; i < n; ++i) {
      const auto k = row_key(rng, 100000);
      std::string v = std::to_string(r) + "/" + std::to_string(i) + std::string(rng() % 50, 'v');
      filling.add(k, v);
      expected[k] = v;
    }
    filling.swap_rows(writing);
    EXPECT_TRUE(filling.empty());
    EXPECT_FALSE(writing.empty());
    runs.push_back(write_run(writing));
    filled.push_back(std::move(expected));
  }
  for (std::size_t r = 0; r < runs.size(); ++r) {
    std::vector<std::string> files;
    merge_options o{.out_prefix = path("swapped-" + std::to_string(r) + "-")};
    ASSERT_TRUE(merge_runs({runs[r]}, o, files).ok());
    EXPECT_EQ(read_back(files, o.sst), filled[r]) << "run " << r;
  }
}

// A run file cut short (a damaged disk) fails the merge instead of losing rows quietly.
TEST_F(bulk_runs_test, a_truncated_run_fails_the_merge) {
  sorted_run run;
  for (int i = 0; i < 100; ++i) run.add("H" + std::to_string(1000 + i), std::string(50, 'v'));
  std::vector<run_file> runs{write_run(run)};
  std::filesystem::resize_file(runs[0].path, std::filesystem::file_size(runs[0].path) - 10);
  std::vector<std::string> files;
  const auto st = merge_runs(runs, {.out_prefix = path("cut-")}, files);
  EXPECT_TRUE(st.IsCorruption()) << st.ToString();

  // Cut inside the last entry's head (8 bytes: key and value lengths; 5 + 50 after it).
  run.clear();
  for (int i = 0; i < 100; ++i) run.add("H" + std::to_string(1000 + i), std::string(50, 'v'));
  runs = {write_run(run)};
  const auto whole = std::filesystem::file_size(runs[0].path);
  ASSERT_EQ(whole % (8 + 5 + 50), 0u) << "no file header: entries only";
  std::filesystem::resize_file(runs[0].path, whole - (8 + 5 + 50) + 3);
  files.clear();
  const auto head_cut = merge_runs(runs, {.out_prefix = path("head-")}, files);
  EXPECT_TRUE(head_cut.IsCorruption()) << head_cut.ToString();

  std::filesystem::remove(runs[0].path);
  files.clear();
  EXPECT_FALSE(merge_runs(runs, {.out_prefix = path("gone-")}, files).ok());
}

// Runs and merged files go through the environment given (the in-memory one of
// read_models_options::in_memory): nothing on disk.
TEST_F(bulk_runs_test, files_go_through_the_environment_given) {
  std::unique_ptr<rocksdb::Env> mem(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  std::mt19937_64 rng(11);
  std::vector<run_file> runs;
  pairs expected;
  sorted_run run;
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 3000; ++i) {
      const auto k = row_key(rng, 100);
      run.add(k, std::to_string(r * 10000 + i));
      expected[k] = std::to_string(r * 10000 + i);
    }
    runs.push_back(write_run(run, mem.get()));
  }
  merge_options o{.out_prefix = path("mem-"), .ranges = 2};
  o.sst.env = mem.get();
  std::vector<std::string> files;
  const auto st = merge_runs(runs, o, files);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(read_back(files, o.sst), expected);
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path()));
}

}  // namespace
}  // namespace passage::projections::bulk
