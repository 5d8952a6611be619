#pragma once
// CRC-32C (Castagnoli) for record checksums in the event log. Uses the SSE4.2
// instruction when the CPU has it, a table otherwise; both give the same value.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace passage {

std::uint32_t crc32c(std::string_view data, std::uint32_t seed = 0);

}  // namespace passage
