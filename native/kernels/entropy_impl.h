// Internal to the entropy coder (entropy.cc, entropy_avx2.cc): the encoder's
// symbol table and the vector encode and decode loops, selected at run time.
// Not part of any public contract.
#pragma once
#include <cstddef>
#include <cstdint>

namespace coral {
namespace entropy_impl {

// Encoder symbol table, shared by the scalar and the AVX2 encoder. Encoding
// symbol s (frequency f, cumulative start cum) into state x needs q = x / f
// for any 32-bit x; it is computed without a division as
//   t = (x * magic[s]) >> 32,  q = (t + ((x - t) >> 1)) >> shift
// (the round-up reciprocal with a 33rd bit folded into the add, exact for
// every 32-bit x). For f == 1 the table gives q = x - 1 and bias = cum + 4095,
// which yields the same state. sym[s] = {magic, info} with
// info = bias | f << 13 | shift << 26: one 8-byte load per symbol (the AVX2
// encoder builds its vectors from scalar loads, which beat gathers here).
struct EncTable {
  alignas(32) uint32_t sym[256][2];
};
constexpr uint32_t kInfoBiasMask = (1u << 13) - 1;
constexpr int kInfoFreqShift = 13;
constexpr int kInfoShiftShift = 26;

// Encodes whole groups of 32 symbols (symbol i of a group in lane i), from
// group `groups - 1` down to group 0, into the word stream that grows down
// from *p, while at least 80 bytes remain above `lo` (a group writes at most
// 64 bytes and each 8-lane store may touch 16 bytes below the write point).
// Updates x[32] and *p; returns the number of groups left to encode (the
// groups 0 .. result - 1).
// dom >= 0 names a dominant symbol: 8 lanes that all carry it take its table
// entry from registers instead of 8 loads.
size_t RansEncodeGroupsAvx2(const EncTable& et, uint32_t x[32], uint8_t** p, const uint8_t* lo, const uint8_t* data,
                            size_t groups, int dom);

// Decodes whole groups of 32 symbols (one per lane) with AVX2 while at least 64
// bytes of words remain (a group reads at most 32 words), starting at group 0.
// tab is the 4096-entry slot table (symbol | (slot - cum) << 8 | f << 20).
// Updates x[32] and *p; returns the number of groups decoded (<= groups).
// Adds the bytes of p[0..n) that differ from d to hist (one by one) and
// returns how many equal d (counted 32 at a time).
size_t HistogramDominantAvx2(const uint8_t* p, size_t n, uint8_t d, uint32_t hist[256]);

// dom_f > 0 names a dominant symbol (slots [dom_cum, dom_cum + dom_f), slot
// table entries dom_entry + (slot - dom_cum) << 8): a vector whose 8 lanes all
// fall in its range skips the table gather, which is most of the cost.
size_t RansDecodeGroupsAvx2(const uint32_t* tab, uint32_t x[32], const uint8_t** p, const uint8_t* end, uint8_t* dst,
                            size_t groups, uint32_t dom_cum, uint32_t dom_f, uint32_t dom_entry);

}  // namespace entropy_impl
}  // namespace coral
