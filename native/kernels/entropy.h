// Order-0 entropy coding of byte streams (the planes of the plane codecs):
// byte histograms, order-0 entropy, and a static, 8-way interleaved rANS coder
// (32-bit states, 16-bit renormalisation words, 12-bit frequencies).
//
// rANS stream layout (all little-endian; docs/codecs.md, "rANS planes"):
//   32-byte bitmap of the symbols present (bit s & 7 of byte s >> 3), at least 2;
//   the frequency of every present symbol but the last, in symbol order, as one
//   byte f (1..127) or two bytes 0x80 | f >> 8, f & 0xff (128..4095); the last
//   symbol takes 4096 minus their sum (must be >= 1);
//   8 final encoder states (u32, each >= 2^16);
//   the 16-bit renormalisation words in the order the decoder reads them.
// Symbol i belongs to lane i % 8. Decoding symbol i from lane state x: slot =
// x & 4095, s = the symbol whose cumulative range holds slot, x = f_s * (x >> 12)
// + slot - cum_s, then if x < 2^16, x = x << 16 | next word. A valid stream ends
// with every word consumed and every state back at 2^16.
//
// Thread: every function is reentrant (the encoder uses a thread_local buffer).
// Ownership: inputs are borrowed for the call; outputs go into caller buffers.
// Errors: RansDecode returns Corrupt for any inconsistency (bad table, state out
// of range, too few or too many words, states not back at their start) and
// never reads or writes outside [src, src + sn) and [dst, dst + n).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "errors.h"

namespace coral {
namespace entropy {

// hist[s] = number of bytes equal to s in p[0..n). `likely`, when 0..255, is
// a byte value expected to fill most of the data (a low-entropy plane): runs of
// it are then counted many bytes at a time. The result never depends on it.
void Histogram(const uint8_t* p, size_t n, uint32_t hist[256], int likely = -1);

// The most frequent byte value of a histogram when it holds at least
// `share` of the n counted bytes, else -1 (a hint for Histogram).
int DominantSymbol(const uint32_t hist[256], size_t n, double share);

// Order-0 entropy of the histogram (total n), in bits per byte.
double Entropy(const uint32_t hist[256], size_t n);

// Number of distinct symbols in the histogram.
int DistinctSymbols(const uint32_t hist[256]);

// Appends the rANS coding of data[0..n) (hist must be its histogram) to *out
// and returns true, unless the coded size would reach `limit` bytes or the
// data has fewer than 2 distinct symbols: then returns false and leaves *out
// unchanged.
bool RansEncode(const uint8_t* data, size_t n, const uint32_t hist[256], size_t limit, std::vector<uint8_t>* out);

// Decodes exactly n bytes into dst from the coded bytes src[0..sn).
Err RansDecode(const uint8_t* src, size_t sn, uint8_t* dst, size_t n);

}  // namespace entropy
}  // namespace coral
