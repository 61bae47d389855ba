// Element conversion between the dtype table and f64 / f32, with one rounding.
//
// Contract
//   Thread: any; pure functions, no global state except lazily built constant
//   lookup tables (thread-safe static init).
//   Buffers: borrowed; byte pointers may have any alignment (loads and stores
//   go through memcpy). Little-endian element bytes, as everywhere in coral.
//   Errors: none; every input has a defined result (documented below).
//
// Semantics (docs/merge-strategies.md, "Rounding"):
//   Decode (dtype -> f64) is exact for every float dtype and for integers of at
//   most 32 bits. I64/U64 values beyond 2^53 round to nearest even f64
//   (callers that need exactness check with Int64FitsF64 first). BOOL -> 0/1.
//   Decode to f32 is exact for F32/F16/BF16/F8 (not offered for F64/ints).
//
//   Encode (f64 or f32 -> dtype) rounds ONCE, to nearest, ties to even:
//   - F32 / F64: the C++ cast (IEEE RNE); NaN payload bits that fit are kept.
//   - F16, BF16, F8_E5M2 (IEEE-like): overflow past the largest finite value
//     (after rounding) gives +-Inf; subnormals are produced with correct
//     rounding; -0.0 stays -0.0; NaN -> the canonical quiet NaN of the target
//     with the sign kept (F16 0x7E00, BF16 0x7FC0, E5M2 0x7E; OR 0x80.. sign).
//   - F8_E4M3 (OCP "e4m3fn": no Inf, NaN = S.1111.111, max 448): torch's
//     float8_e4m3fn semantics: a value whose rounded magnitude exceeds 448
//     (i.e. |x| > 464, 464 itself ties to 448) becomes NaN, and so does +-Inf;
//     NaN -> 0x7F | sign. No saturation.
//   - Integers: nearest, ties to even; saturate to the dtype range; NaN -> 0.
//     BOOL: nonzero (and NaN) -> 1, zero -> 0.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"

namespace coral {

// ---- scalar helpers ---------------------------------------------------------

// Exact decodes of the small float formats.
double F16BitsToF64(uint16_t h);
double BF16BitsToF64(uint16_t b);
double E4M3BitsToF64(uint8_t v);
double E5M2BitsToF64(uint8_t v);
inline float BF16BitsToF32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even encodes from f64 (one rounding; see semantics above).
uint16_t F64ToF16Bits(double x);
uint16_t F64ToBF16Bits(double x);
uint8_t F64ToE4M3Bits(double x);
uint8_t F64ToE5M2Bits(double x);
// The same from f32 (identical to widening to f64 first; provided for speed).
uint16_t F32ToBF16Bits(float x);

// True when every I64 (is_unsigned = false) or U64 element of the span lies
// within +-2^53 and therefore decodes to f64 exactly.
bool Int64FitsF64(const uint8_t* src, size_t n, bool is_unsigned);

// ---- span conversions -------------------------------------------------------

// dst[i] = value of element i of src (n elements of dtype d). See "Decode".
void DecodeToF64(DType d, const uint8_t* src, size_t n, double* dst);
// Float dtypes of at most 32 bits only (F32 F16 BF16 F8_*); returns false otherwise.
bool DecodeToF32(DType d, const uint8_t* src, size_t n, float* dst);
// Writes n elements of dtype d to dst, each rounded once from src[i]. See "Encode".
void EncodeFromF64(DType d, const double* src, size_t n, uint8_t* dst);
// Float dtypes of at most 32 bits only; returns false otherwise.
bool EncodeFromF32(DType d, const float* src, size_t n, uint8_t* dst);

// Converts n elements between any two dtypes through f64 (one rounding into
// dst_type; exact whenever the source value is representable in dst_type).
// Thread: runs on the caller's thread plus ParallelFor helpers for large n;
// results do not depend on the thread count.
void ConvertDType(DType src_type, const uint8_t* src, DType dst_type, uint8_t* dst, size_t n, int threads = 0);

}  // namespace coral
