// Internal to the entropy coder (entropy.cc, entropy_avx2.cc): the vector
// decode loop, selected at run time. Not part of any public contract.
#pragma once
#include <cstddef>
#include <cstdint>

namespace coral {
namespace entropy_impl {

// Decodes whole groups of 32 symbols (one per lane) with AVX2 while at least 64
// bytes of words remain (a group reads at most 32 words), starting at group 0.
// tab is the 4096-entry slot table (symbol | (slot - cum) << 8 | f << 20).
// Updates x[32] and *p; returns the number of groups decoded (<= groups).
size_t RansDecodeGroupsAvx2(const uint32_t* tab, uint32_t x[32], const uint8_t** p, const uint8_t* end, uint8_t* dst,
                            size_t groups);

}  // namespace entropy_impl
}  // namespace coral
