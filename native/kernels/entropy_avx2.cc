// AVX2 rANS encode and decode loops (compiled with -mavx2; called only when the
// CPU has it). They produce and consume exactly the scalar coder's streams.
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

// For each 8-bit mask of lanes that emit a word: a byte shuffle that moves
// those lanes' words (8 words in, lane order) to the top of 16 bytes, so a
// store ending at the write point puts them just below it in lane order.
struct CompressTable {
  alignas(16) uint8_t idx[256][16];
  CompressTable() {
    for (int m = 0; m < 256; ++m) {
      std::memset(idx[m], 0x80, 16);
      const int cnt = __builtin_popcount(unsigned(m));
      int k = 16 - 2 * cnt;
      for (int j = 0; j < 8; ++j)
        if ((m >> j) & 1) {
          idx[m][k++] = uint8_t(2 * j);
          idx[m][k++] = uint8_t(2 * j + 1);
        }
    }
  }
};

}  // namespace

size_t HistogramDominantAvx2(const uint8_t* p, size_t n, uint8_t d, uint32_t hist[256]) {
  const __m256i D = _mm256_set1_epi8(char(d));
  size_t dom = 0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    uint32_t other = ~uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, D)));
    dom += 32 - size_t(__builtin_popcount(other));
    for (; other; other &= other - 1) hist[p[i + size_t(__builtin_ctz(other))]]++;
  }
  return dom;
}

namespace {

template <bool kDom>
size_t EncodeGroups(const EncTable& et, uint32_t x[32], uint8_t** pp, const uint8_t* lo, const uint8_t* data,
                    size_t groups, uint8_t dom) {
  static const CompressTable ct;
  uint8_t* p = *pp;
  __m256i X[4];
  for (int v = 0; v < 4; ++v) X[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 8 * v));
  const __m256i m13 = _mm256_set1_epi32(int(kInfoBiasMask));
  const __m256i scale = _mm256_set1_epi32(4096);
  // Low 16 bits of each 32-bit lane to the bottom 8 bytes of each 128-bit half.
  const __m256i pick16 = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                          0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const uint64_t dom8 = 0x0101010101010101ull * dom;
  const __m256i dom_m = _mm256_set1_epi32(int(et.sym[dom][0]));
  const __m256i dom_i = _mm256_set1_epi32(int(et.sym[dom][1]));
  size_t g = groups;
  while (g > 0 && p - lo >= 80) {
    --g;
    const uint8_t* s = data + 32 * g;
    for (int v = 3; v >= 0; --v) {
      // The 8 lanes' {magic, info} entries by scalar loads (faster than two
      // gathers), then split into a magic and an info vector.
      uint64_t sy;
      std::memcpy(&sy, s + 8 * v, 8);
      __m256i M, I;
      if (kDom && sy == dom8) {
        M = dom_m;
        I = dom_i;
      } else {
      const auto entry = [&](int k) {
        return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(et.sym[(sy >> (8 * k)) & 255]));
      };
      const auto pair = [&](int k) {
        return _mm_unpacklo_epi64(entry(k), entry(k + 1));  // m_k i_k m_k+1 i_k+1
      };
      const __m256 A = _mm256_castsi256_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(pair(0)), pair(4), 1));
      const __m256 B = _mm256_castsi256_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(pair(2)), pair(6), 1));
      M = _mm256_castps_si256(_mm256_shuffle_ps(A, B, 0x88));  // m0 m1 m2 m3 | m4 m5 m6 m7
      I = _mm256_castps_si256(_mm256_shuffle_ps(A, B, 0xDD));
      }
      const __m256i f = _mm256_and_si256(_mm256_srli_epi32(I, kInfoFreqShift), m13);
      // Renormalise lanes with x >= f << 20: emit their low words, shift them down.
      __m256i x = X[v];
      const __m256i xmax = _mm256_slli_epi32(f, 20);
      const __m256i need = _mm256_cmpeq_epi32(_mm256_max_epu32(x, xmax), x);
      const int m = _mm256_movemask_ps(_mm256_castsi256_ps(need));
      const __m256i w = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(x, pick16), 0x08);
      const __m128i out =
          _mm_shuffle_epi8(_mm256_castsi256_si128(w), _mm_load_si128(reinterpret_cast<const __m128i*>(ct.idx[m])));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p - 16), out);
      p -= 2 * __builtin_popcount(unsigned(m));
      x = _mm256_blendv_epi8(x, _mm256_srli_epi32(x, 16), need);
      // q = x / f by the table's reciprocal (see EncTable).
      const __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(x, M), 32);
      const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(M, 32));
      const __m256i t = _mm256_blend_epi32(even, odd, 0xAA);
      const __m256i q = _mm256_srlv_epi32(_mm256_add_epi32(t, _mm256_srli_epi32(_mm256_sub_epi32(x, t), 1)),
                                          _mm256_srli_epi32(I, kInfoShiftShift));
      const __m256i bias = _mm256_and_si256(I, m13);
      X[v] = _mm256_add_epi32(_mm256_add_epi32(x, bias), _mm256_mullo_epi32(q, _mm256_sub_epi32(scale, f)));
    }
  }
  for (int v = 0; v < 4; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + 8 * v), X[v]);
  *pp = p;
  return g;
}

}  // namespace

size_t RansEncodeGroupsAvx2(const EncTable& et, uint32_t x[32], uint8_t** pp, const uint8_t* lo, const uint8_t* data,
                            size_t groups, int dom) {
  return dom >= 0 ? EncodeGroups<true>(et, x, pp, lo, data, groups, uint8_t(dom))
                  : EncodeGroups<false>(et, x, pp, lo, data, groups, 0);
}

namespace {

// kDom: the dominant-symbol fast path (see entropy_impl.h), compiled as its own
// loop so the plain loop keeps its schedule.
template <bool kDom>
size_t DecodeGroups(const uint32_t* tab, uint32_t x[32], const uint8_t** pp, const uint8_t* end, uint8_t* dst,
                    size_t groups, uint32_t dom_cum, uint32_t dom_f, uint32_t dom_entry) {
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
  const __m256i dcum = _mm256_set1_epi32(int(dom_cum));
  const __m256i dlast = _mm256_set1_epi32(int(dom_f ? dom_f - 1 : 0));  // rel <= dlast (unsigned): in range
  const __m256i dentry = _mm256_set1_epi32(int(dom_entry));
  size_t g = 0;
  for (; g < groups && end - p >= 64; ++g) {
    __m256i need[4];
    int m[4];
    for (int v = 0; v < 4; ++v) {
      const __m256i slot = _mm256_and_si256(X[v], m12);
      __m256i e;
      const __m256i rel = _mm256_sub_epi32(slot, dcum);
      if (kDom && _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_min_epu32(rel, dlast), rel))) == 0xFF)
        e = _mm256_add_epi32(dentry, _mm256_slli_epi32(rel, 8));  // every lane decodes the dominant symbol
      else
        e = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tab), slot, 4);
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

}  // namespace

size_t RansDecodeGroupsAvx2(const uint32_t* tab, uint32_t x[32], const uint8_t** pp, const uint8_t* end, uint8_t* dst,
                            size_t groups, uint32_t dom_cum, uint32_t dom_f, uint32_t dom_entry) {
  return dom_f ? DecodeGroups<true>(tab, x, pp, end, dst, groups, dom_cum, dom_f, dom_entry)
               : DecodeGroups<false>(tab, x, pp, end, dst, groups, 0, 0, 0);
}

}  // namespace entropy_impl
}  // namespace coral
