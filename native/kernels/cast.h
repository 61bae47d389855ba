// Bit-exact dtype casts between the IEEE-style float formats (F64, F32, F16,
// BF16), the prediction of the CAST codec (docs/codecs.md, "CAST").
//
// Contract
//   Thread: any; pure functions, no global state except one lazily built
//   constant table (thread-safe static init). CastTensor fans out over
//   ParallelFor; its result does not depend on the thread count.
//   Buffers: borrowed; src and dst hold n elements of their dtypes, any
//   alignment, must not overlap. Little-endian element bytes.
//   Errors: none; every input bit pattern has one defined result. Callers
//   check CastSupported first (other pairs are a no-op).
//   AVX2: the hot pairs (F32->BF16, F32->F16, F64->F32, BF16->F32) have AVX2
//   twins in cast_avx2.cc, used when CpuUseAvx2() (off with CORAL_NO_AVX2=1);
//   both write identical bytes for every input.
//
// Semantics, for source value x and target format (E exponent bits, M
// fraction bits):
//   - Widening (every value of the source is representable: F16/BF16 -> F32,
//     F16/BF16/F32 -> F64) is exact, rounding is irrelevant, and a NaN keeps
//     its sign and payload bit for bit (moved to the top of the wider
//     fraction, a signalling NaN stays signalling).
//   - Narrowing rounds once, with the named rounding:
//       kNearestEven  IEEE round to nearest, ties to even; a result past the
//                     largest finite value is +-Inf.
//       kTowardZero   IEEE round toward zero ("truncation"): drops the bits
//                     that do not fit; a finite value past the largest finite
//                     value saturates to +-max finite. (For F32 -> BF16 this is
//                     taking the top 16 bits, except for NaNs, below.)
//     Subnormal results are rounded correctly, -0.0 stays -0.0, +-Inf stays
//     +-Inf. A NaN keeps its sign and the top M bits of its payload with the
//     quiet bit set (what F16C, AVX-512 BF16 and most hardware do); encoders
//     that write a canonical NaN differ only there, which the CAST residual
//     records exactly.
//   - BF16 <-> F16 go through F32 (exact), so they round once.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"

namespace coral {

enum class CastRounding : uint8_t { kNearestEven = 0, kTowardZero = 1 };
constexpr int kCastRoundingCount = 2;

// True for distinct from/to among F64, F32, F16, BF16.
bool CastSupported(DType from, DType to);
// True when every value of `from` is representable in `to` (rounding unused).
bool CastIsWidening(DType from, DType to);

// dst[i] = cast of src[i] (n elements), on the calling thread.
void CastSpan(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r);
// The same over ParallelFor blocks (threads: 0 = MaxThreads()).
void CastTensor(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r, int threads = 0);

// The scalar definition every span kernel must match (tests compare them).
uint64_t CastBits(DType from, uint64_t bits, DType to, CastRounding r);

}  // namespace coral
