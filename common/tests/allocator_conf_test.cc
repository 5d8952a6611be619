// The options of common/allocator_conf.cc reach jemalloc in an executable linked with
// passage_allocator (a jemalloc built with a symbol prefix, or a misspelt name, would
// ignore them silently). Built only when jemalloc is found.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <string_view>

// jemalloc's control interface (unprefixed, as the library linked in).
extern "C" int mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp,
                       std::size_t newlen);

TEST(allocator_conf, jemalloc_asks_for_transparent_huge_pages) {
  void* warm = std::malloc(64);  // jemalloc reads its options at the first allocation
  std::free(warm);
  const char* thp = nullptr;
  std::size_t len = sizeof thp;
  ASSERT_EQ(mallctl("opt.thp", &thp, &len, nullptr, 0), 0);
  ASSERT_NE(thp, nullptr);
  // MALLOC_CONF overrides the built-in string; the test runs without it.
  if (std::getenv("MALLOC_CONF") == nullptr) {
    EXPECT_EQ(std::string_view(thp), "always");
  }
}
