#pragma once
// Which files of a folder hold some bytes: for tests that check a secret (a destroyed key,
// a forgotten email) is gone from every file RocksDB or a consumer left on disk.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace passage::testing {

// The names of the files under `dir` (recursively) that contain `bytes`.
inline std::vector<std::string> files_holding(const std::string& dir, std::string_view bytes) {
  std::vector<std::string> hits;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (all.find(bytes) != std::string::npos) hits.push_back(entry.path().filename());
  }
  return hits;
}

}  // namespace passage::testing
