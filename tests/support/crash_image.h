#pragma once
// A copy of a folder that a process still has open, as a crash at that moment would leave
// it: for tests that reopen a RocksDB folder's crash image.

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>

namespace passage::testing {

// Each entry's name (relative to `dir`) and size; a listing cut short by an entry going
// away under it is shorter, and so differs from the one taken before.
inline std::map<std::string, std::uintmax_t> folder_listing(const std::filesystem::path& dir) {
  std::map<std::string, std::uintmax_t> files;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code size_ec;
    const auto size = it->is_regular_file(size_ec) ? it->file_size(size_ec) : 0;
    files[std::filesystem::relative(it->path(), dir).string()] =
        size_ec ? ~std::uintmax_t{0} : size;
  }
  return files;
}

// Copies the files under `from` into `to` as one moment's state. A background job of the
// open folder (RocksDB's compaction: new table files, a MANIFEST entry, the old files
// deleted) may run during a file-by-file copy and leave a copy no crash could (a MANIFEST
// naming a file deleted before it was copied); so the copy is taken again until nothing
// changed while it was taken: the same names and sizes before and after, nothing gone.
inline void copy_open_folder(const std::filesystem::path& from, const std::filesystem::path& to) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::filesystem::remove_all(to);
    std::filesystem::create_directories(to);
    const auto before = folder_listing(from);
    bool whole = true;
    for (const auto& [name, size] : before) {
      std::error_code ec;
      const auto source = from / name;
      if (std::filesystem::is_directory(source, ec)) {
        std::filesystem::create_directories(to / name);
        continue;
      }
      std::filesystem::copy_file(source, to / name, ec);
      if (ec) {
        if (std::filesystem::exists(source))
          throw std::filesystem::filesystem_error("cannot copy", source, to / name, ec);
        whole = false;
        break;
      }
    }
    if (whole && folder_listing(from) == before) return;
  }
  throw std::runtime_error("copy_open_folder: " + from.string() + " kept changing");
}

}  // namespace passage::testing
