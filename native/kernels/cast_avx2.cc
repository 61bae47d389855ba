// AVX2 twins of the hot casts (see cast.h): F32 -> BF16 (both roundings),
// BF16 -> F32, and F32 -> F16 (both roundings, through F16C, which every
// AVX2 CPU has). Each writes exactly the bytes of the portable kernel; the
// caller finishes the tail. Compiled with -mavx2 (F16C enabled per function).
// Everything is file-local (see planes_impl.h on why no inline code is
// shared by name with the baseline translation units).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cast.h"

namespace coral {

size_t CastSpanAvx2(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r);

namespace {

size_t F32ToBf16(const uint8_t* src, uint8_t* dst, size_t n, CastRounding r) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i inf = _mm256_set1_epi32(0x7F800000);
  const __m256i quiet = _mm256_set1_epi32(0x00400000);
  const __m256i bias = _mm256_set1_epi32(0x7FFF);
  const __m256i one = _mm256_set1_epi32(1);
  const bool rne = r == CastRounding::kNearestEven;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i out[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 4 * (i + 8 * h)));
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);  // signed compare: |u| < 2^31
      __m256i v = u;
      if (rne) v = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
      v = _mm256_blendv_epi8(v, _mm256_or_si256(u, quiet), nan);
      out[h] = _mm256_srli_epi32(v, 16);
    }
    // Pack 2x8 u32 (each < 2^16) to 16 u16 in order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(out[0], out[1]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * i), packed);
  }
  return i;
}

size_t Bf16ToF32(const uint8_t* src, uint8_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    const __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 4 * i), w);
  }
  return i;
}

// F16C rounds per its immediate, not MXCSR, and keeps NaN sign and top
// payload bits with the quiet bit set: the semantics of cast.h.
__attribute__((target("avx2,f16c"))) size_t F32ToF16(const uint8_t* src, uint8_t* dst, size_t n, CastRounding r) {
  size_t i = 0;
  if (r == CastRounding::kNearestEven) {
    for (; i + 8 <= n; i += 8) {
      const __m256 f = _mm256_loadu_ps(reinterpret_cast<const float*>(src + 4 * i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i),
                       _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      const __m256 f = _mm256_loadu_ps(reinterpret_cast<const float*>(src + 4 * i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i),
                       _mm256_cvtps_ph(f, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
    }
  }
  return i;
}

}  // namespace

size_t CastSpanAvx2(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r) {
  if (from == DType::F32 && to == DType::BF16) return F32ToBf16(src, dst, n, r);
  if (from == DType::BF16 && to == DType::F32) return Bf16ToF32(src, dst, n);
  if (from == DType::F32 && to == DType::F16) return F32ToF16(src, dst, n, r);
  return 0;
}

}  // namespace coral
