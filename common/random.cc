#include "common/random.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <array>
#include <atomic>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace passage {
namespace {

void fill_from_openssl(std::span<std::uint8_t> out) {
  while (!out.empty()) {
    int n = out.size() > INT_MAX ? INT_MAX : static_cast<int>(out.size());
    if (RAND_bytes(out.data(), n) != 1) {
      throw std::runtime_error("OpenSSL RAND_bytes failed: no entropy available");
    }
    out = out.subspan(static_cast<size_t>(n));
  }
}

// Small requests (ids, tokens, keys: a few per request served) are cut from a per-thread
// block filled by one RAND_bytes call, which costs about as much as a call for 16 bytes.
// Bytes handed out are wiped from the block. A forked child starts a new block, so parent
// and child never hand out the same bytes.
constexpr std::size_t kBlock = 4096;
constexpr std::size_t kSmall = 64;
std::atomic<std::uint64_t> fork_generation{0};

struct random_block {
  std::array<std::uint8_t, kBlock> bytes{};
  std::size_t used = kBlock;
  std::uint64_t generation = 0;
  ~random_block() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

void on_fork_child() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

void secure_random_bytes(std::span<std::uint8_t> out) {
  if (out.size() > kSmall) return fill_from_openssl(out);
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, on_fork_child);
    return true;
  }();
  (void)registered;
  thread_local random_block block;
  const auto generation = fork_generation.load(std::memory_order_relaxed);
  if (block.generation != generation || block.used + out.size() > kBlock) {
    fill_from_openssl(block.bytes);
    block.used = 0;
    block.generation = generation;
  }
  std::memcpy(out.data(), block.bytes.data() + block.used, out.size());
  OPENSSL_cleanse(block.bytes.data() + block.used, out.size());
  block.used += out.size();
}

std::string secure_random_hex(std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::vector<std::uint8_t> buf(n);
  secure_random_bytes(buf);
  std::string s;
  s.reserve(2 * n);
  for (auto b : buf) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 0xF]);
  }
  return s;
}

}  // namespace passage
