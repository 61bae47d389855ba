// AVX2 rANS decode loop (compiled with -mavx2; called only when the CPU has it).
#include <immintrin.h>

#include <cstring>

#include "kernels/entropy_impl.h"

namespace coral {
namespace entropy_impl {
namespace {

// For each 8-bit mask of lanes that need a word: lane j takes word number
// popcount(mask & ((1 << j) - 1)) of the 8 loaded (lanes without a word get 0).
struct PermTable {
  alignas(32) uint32_t idx[256][8];
  PermTable() {
    for (int m = 0; m < 256; ++m) {
      uint32_t k = 0;
      for (int j = 0; j < 8; ++j) idx[m][j] = (m >> j) & 1 ? k++ : 0;
    }
  }
};

}  // namespace

size_t RansDecodeGroupsAvx2(const uint32_t* tab, uint32_t x[8], const uint8_t** pp, const uint8_t* end, uint8_t* dst,
                            size_t groups) {
  static const PermTable perm;
  const uint8_t* p = *pp;
  __m256i X[4];
  for (int v = 0; v < 4; ++v) X[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 8 * v));
  const __m256i m12 = _mm256_set1_epi32(4095);
  const __m256i zero = _mm256_setzero_si256();
  // Low byte of each 32-bit lane to the bottom 4 bytes of each 128-bit half.
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i join = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
  size_t g = 0;
  for (; g < groups && end - p >= 64; ++g) {
    __m256i need[4];
    int m[4];
    for (int v = 0; v < 4; ++v) {
      const __m256i slot = _mm256_and_si256(X[v], m12);
      const __m256i e = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tab), slot, 4);
      const __m256i f = _mm256_srli_epi32(e, 20);
      const __m256i off = _mm256_and_si256(_mm256_srli_epi32(e, 8), m12);
      X[v] = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(X[v], 12)), off);
      const __m256i sym = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(e, pick), join);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 32 * g + 8 * v), _mm256_castsi256_si128(sym));
      need[v] = _mm256_cmpeq_epi32(_mm256_srli_epi32(X[v], 16), zero);
      m[v] = _mm256_movemask_ps(_mm256_castsi256_ps(need[v]));
    }
    for (int v = 0; v < 4; ++v) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      const __m256i wl =
          _mm256_permutevar8x32_epi32(w, _mm256_load_si256(reinterpret_cast<const __m256i*>(perm.idx[m[v]])));
      X[v] = _mm256_blendv_epi8(X[v], _mm256_or_si256(_mm256_slli_epi32(X[v], 16), wl), need[v]);
      p += 2 * __builtin_popcount(unsigned(m[v]));
    }
  }
  for (int v = 0; v < 4; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + 8 * v), X[v]);
  *pp = p;
  return g;
}

}  // namespace entropy_impl
}  // namespace coral
