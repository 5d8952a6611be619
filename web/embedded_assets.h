#pragma once
// The files of web/static/ as compiled into the binary by web/embed_assets.cmake
// (the generated embedded_assets.cc defines these). Use static_assets.h instead.

#include <cstddef>

namespace passage::web::embedded {

struct file {
  const char* name;            // "console.js"
  const unsigned char* bytes;  // the file's content
  std::size_t size;
  const char* sha256_prefix;  // first 20 hex digits of the content's SHA-256
};

extern const file files[];
extern const std::size_t file_count;
// A hash over every file's name and content: the URL prefix of the whole set.
extern const char version[];

}  // namespace passage::web::embedded
