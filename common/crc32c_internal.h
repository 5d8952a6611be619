#pragma once
// The two ways crc32c() computes its value, each callable on its own: crc32c() picks
// one by the CPU, so tests reach the other (and both on any machine) only through these.
// Not for other callers: crc32c() is the interface.

#include <cstdint>
#include <string_view>

namespace passage::crc32c_internal {

// Byte by byte through a 256-entry table: any CPU.
std::uint32_t by_table(std::string_view data, std::uint32_t seed = 0);
// Whether this CPU has SSE4.2's CRC32 instruction (always false off x86-64).
bool have_sse42();
// Through that instruction, three blocks at once on long inputs. Only when have_sse42().
std::uint32_t by_sse42(std::string_view data, std::uint32_t seed = 0);

}  // namespace passage::crc32c_internal
