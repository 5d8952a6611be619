#pragma once
// A fresh directory under the system temp folder, removed with everything in it
// when the object goes away. For tests that need a real RocksDB on disk.

#include <filesystem>
#include <string>

#include "common/random.h"

namespace passage::testing {

class temp_dir {
 public:
  temp_dir()
      : path_(std::filesystem::temp_directory_path() / ("passage-test-" + secure_random_hex(8))) {
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace passage::testing
