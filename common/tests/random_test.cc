// The per-thread random block of secure_random_bytes (common/random.cc).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "common/random.h"

namespace passage {
namespace {

using bytes16 = std::array<std::uint8_t, 16>;

bytes16 draw() {
  bytes16 b{};
  secure_random_bytes(b);
  return b;
}

TEST(SecureRandom, SmallDrawsNeverRepeatAcrossBlocksAndThreads) {
  std::set<bytes16> seen;
  for (int i = 0; i < 2000; ++i) EXPECT_TRUE(seen.insert(draw()).second);  // spans 8 blocks
  std::vector<bytes16> other(1000);
  std::thread t([&] {
    for (auto& b : other) b = draw();
  });
  t.join();
  for (const auto& b : other) EXPECT_TRUE(seen.insert(b).second);
  // Large draws bypass the block and are random too.
  std::vector<std::uint8_t> big(1000), big2(1000);
  secure_random_bytes(big);
  secure_random_bytes(big2);
  EXPECT_NE(big, big2);
}

TEST(SecureRandom, AForkedChildDoesNotRepeatItsParentsBytes) {
  draw();  // the parent has a block with bytes left
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto b = draw();
    ssize_t w = write(fds[1], b.data(), b.size());
    _exit(w == static_cast<ssize_t>(b.size()) ? 0 : 1);
  }
  close(fds[1]);
  bytes16 child{};
  ASSERT_EQ(read(fds[0], child.data(), child.size()), static_cast<ssize_t>(child.size()));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(child, draw());
}

}  // namespace
}  // namespace passage
