// Near-duplicate primitives: SimHash fingerprints and an exact cosine.
//
// Fingerprint ("coral.simhash.v1"), see docs/similarity.md:
//   x      the tensor's elements converted to float (non-finite values count as 0)
//   S      the sampled positions: every element when numel <= max_samples, else
//          R = max_samples/16 runs of 16 consecutive elements, one run at a
//          pseudo-random offset inside each of R equal strata of [0, numel).
//          S depends only on (seed, numel, max_samples): equal shapes compare
//          like with like, and an F32 tensor and its BF16 copy sample the same
//          positions.
//   h_k(i) = +-1, bit (k mod 64) of Mix64(WordSeed(seed, k / 64) ^ i)  (never materialised)
//   bit k  = [ sum_{i in S} h_k(i) * (x_i - c) > 0 ]  with c = sample mean if center, else 0
// P(bit differs) = angle(x_S, y_S) / pi, so Hamming distance estimates cosine:
//   cos ~= cos(pi * hamming / bits).
// Sums are float within fixed chunks of samples, chunk partials are added in
// chunk order in double: the fingerprint is bit-identical for any thread count
// and for the SSE2 and AVX2 builds (lanes are independent bits, no FMA).
//
// Thread: any. Work fans out over ParallelFor. Buffers are borrowed, never
// retained or written. Errors: InvalidArgument for bad parameters or a byte
// length that disagrees with dtype and numel.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "errors.h"
#include "kernels/dtype.h"

namespace coral {

constexpr uint32_t kSimHashRun = 16;            // elements per sampled run
constexpr uint32_t kSimHashMinBits = 64;
constexpr uint32_t kSimHashMaxBits = 1024;
constexpr uint32_t kSimHashMinSamples = 256;
constexpr uint32_t kSimHashMaxSamples = 1u << 22;

struct SimHashParams {
  uint32_t bits = 256;            // multiple of 64 in [64, 1024]
  uint64_t seed = 0x636f72616c534831ull;  // "coralSH1"
  uint32_t max_samples = 16384;   // multiple of 16 in [256, 2^22]
  bool center = false;            // project x - mean (Pearson) instead of x (cosine)
};

struct SimHashResult {
  std::vector<uint8_t> signature;  // bits/8 bytes; bit k is byte k/8, bit k%8 (LSB first)
  uint64_t numel = 0;
  uint64_t samples = 0;            // elements projected
  uint64_t nonfinite = 0;          // sampled elements that were NaN/Inf (projected as 0)
  double mean = 0;                 // over finite sampled elements
  double rms = 0;                  // sqrt(mean of squares) over finite sampled elements
};

Err ValidateSimHashParams(const SimHashParams& p);

// Fingerprint of `numel` elements of `dtype` at `data` (nbytes must equal numel * size).
Err SimHash(const void* data, size_t nbytes, DType dtype, uint64_t numel, const SimHashParams& p,
            SimHashResult* out, int threads = 0);

struct CosineResult {
  double cosine = 0;     // 0 when either vector has zero norm
  double norm_a = 0;     // L2 norms (centered when center)
  double norm_b = 0;
  double norm_delta = 0; // ||a - b|| (raw, never centered)
  uint64_t count = 0;    // element pairs used (both finite)
  uint64_t skipped = 0;  // pairs with a non-finite member
};

// Exact cosine (or Pearson correlation when center) of two tensors with the
// same element count, any dtypes. Fixed 64 Ki-element chunks, reduced in order.
Err Cosine(const void* a, size_t a_bytes, DType a_dtype, const void* b, size_t b_bytes, DType b_dtype,
           uint64_t numel, bool center, CosineResult* out, int threads = 0);

// Hamming distance between two signatures of `bytes` bytes.
uint32_t HammingDistance(const uint8_t* a, const uint8_t* b, size_t bytes);

// The 64-bit mixer used for hyperplanes and sample offsets (splitmix64 finaliser).
inline uint64_t SimMix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace coral
