// AVX2 fused transform + byte-plane split and join + inverse (compiled with
// -mavx2; called only when the CPU has it). Writes exactly the bytes of the
// portable loops in planes_impl.h. See planes.h.
//
// Blocks of 32 elements of w bytes (w = 2, 4, 8) sit in w registers, built
// from two 16-byte halves: register j holds bytes [16j, 16j+16) of elements
// 0..15 in its low lane and of elements 16..31 in its high lane. The element
// transform runs on those registers; then a per-lane byte shuffle gathers the
// bytes of each plane (16/w elements per lane), and a w x w transpose of
// (16/w)-byte groups (unpack lo/hi) leaves plane p in register p, elements
// 0..15 in the low lane and 16..31 in the high one: one 32-byte store per
// plane. The join runs the same steps backwards (the transpose is its own
// inverse). The tail (n mod 32) and 1-byte elements use the portable loops,
// auto-vectorised here with AVX2.
#include <immintrin.h>

#include "kernels/planes_impl.h"

namespace coral {
namespace planes_impl {
namespace {

// ---- lane-wise integer ops per element width -----------------------------------------------

template <typename U>
struct V;
template <>
struct V<uint16_t> {
  static __m256i Set1(uint16_t x) { return _mm256_set1_epi16(short(x)); }
  static __m256i Add(__m256i a, __m256i b) { return _mm256_add_epi16(a, b); }
  static __m256i Sub(__m256i a, __m256i b) { return _mm256_sub_epi16(a, b); }
  static __m256i Sign(__m256i v) { return _mm256_srai_epi16(v, 15); }
  static __m256i Shl1(__m256i v) { return _mm256_slli_epi16(v, 1); }
  static __m256i Shr1(__m256i v) { return _mm256_srli_epi16(v, 1); }
  static __m256i ShlTop(__m256i v) { return _mm256_slli_epi16(v, 15); }
  static __m256i ShrTop(__m256i v) { return _mm256_srli_epi16(v, 15); }
  static __m256i Sll(__m256i v, __m128i c) { return _mm256_sll_epi16(v, c); }
  static __m256i Srl(__m256i v, __m128i c) { return _mm256_srl_epi16(v, c); }
};
template <>
struct V<uint32_t> {
  static __m256i Set1(uint32_t x) { return _mm256_set1_epi32(int(x)); }
  static __m256i Add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
  static __m256i Sub(__m256i a, __m256i b) { return _mm256_sub_epi32(a, b); }
  static __m256i Sign(__m256i v) { return _mm256_srai_epi32(v, 31); }
  static __m256i Shl1(__m256i v) { return _mm256_slli_epi32(v, 1); }
  static __m256i Shr1(__m256i v) { return _mm256_srli_epi32(v, 1); }
  static __m256i ShlTop(__m256i v) { return _mm256_slli_epi32(v, 31); }
  static __m256i ShrTop(__m256i v) { return _mm256_srli_epi32(v, 31); }
  static __m256i Sll(__m256i v, __m128i c) { return _mm256_sll_epi32(v, c); }
  static __m256i Srl(__m256i v, __m128i c) { return _mm256_srl_epi32(v, c); }
};
template <>
struct V<uint64_t> {
  static __m256i Set1(uint64_t x) { return _mm256_set1_epi64x(static_cast<long long>(x)); }
  static __m256i Add(__m256i a, __m256i b) { return _mm256_add_epi64(a, b); }
  static __m256i Sub(__m256i a, __m256i b) { return _mm256_sub_epi64(a, b); }
  static __m256i Sign(__m256i v) { return _mm256_cmpgt_epi64(_mm256_setzero_si256(), v); }
  static __m256i Shl1(__m256i v) { return _mm256_slli_epi64(v, 1); }
  static __m256i Shr1(__m256i v) { return _mm256_srli_epi64(v, 1); }
  static __m256i ShlTop(__m256i v) { return _mm256_slli_epi64(v, 63); }
  static __m256i ShrTop(__m256i v) { return _mm256_srli_epi64(v, 63); }
  static __m256i Sll(__m256i v, __m128i c) { return _mm256_sll_epi64(v, c); }
  static __m256i Srl(__m256i v, __m128i c) { return _mm256_srl_epi64(v, c); }
};

// The transforms of Elem<U, K>, 32/w elements at a time (same results lane by lane).
template <typename U, Kind K>
struct VElem {
  using O = V<U>;
  __m256i S, one, ones, mm, em;
  __m128i cM, cM1;
  explicit VElem(const Elem<U, K>& e)
      : S(O::Set1(T<U>::S)),
        one(O::Set1(1)),
        ones(_mm256_set1_epi32(-1)),
        mm(O::Set1(e.mm)),
        em(O::Set1(e.em)),
        cM(_mm_cvtsi32_si128(e.M)),
        cM1(_mm_cvtsi32_si128(e.M + 1)) {}
  __m256i Rotl(__m256i v) const { return _mm256_or_si256(O::Shl1(v), O::ShrTop(v)); }
  __m256i Rotr(__m256i v) const { return _mm256_or_si256(O::Shr1(v), O::ShlTop(v)); }
  __m256i Ord(__m256i v) const { return _mm256_xor_si256(v, _mm256_or_si256(O::Sign(v), S)); }
  __m256i Unord(__m256i u) const {
    return _mm256_xor_si256(u, _mm256_or_si256(_mm256_andnot_si256(O::Sign(u), ones), S));
  }
  __m256i Zig(__m256i d) const { return _mm256_xor_si256(O::Shl1(d), O::Sign(d)); }
  __m256i Unzig(__m256i z) const {
    return _mm256_xor_si256(O::Shr1(z), O::Sub(_mm256_setzero_si256(), _mm256_and_si256(z, one)));
  }
  __m256i Fwd(__m256i t, __m256i b) const {
    switch (K) {
      case Kind::kCopy: return t;
      case Kind::kRot: return Rotl(t);
      case Kind::kXor: return _mm256_xor_si256(t, b);
      case Kind::kXorRot: return Rotl(_mm256_xor_si256(t, b));
      case Kind::kSub: return Zig(O::Sub(t, b));
      case Kind::kOrd: return Zig(O::Sub(Ord(t), Ord(b)));
      default: {  // kExpMant
        __m256i ed = _mm256_and_si256(O::Sub(O::Srl(t, cM), O::Srl(b, cM)), em);
        __m256i x = _mm256_xor_si256(t, b);
        return _mm256_or_si256(_mm256_or_si256(O::Sll(ed, cM1), O::Shl1(_mm256_and_si256(x, mm))), O::ShrTop(x));
      }
    }
  }
  __m256i Inv(__m256i v, __m256i b) const {
    switch (K) {
      case Kind::kCopy: return v;
      case Kind::kRot: return Rotr(v);
      case Kind::kXor: return _mm256_xor_si256(v, b);
      case Kind::kXorRot: return _mm256_xor_si256(Rotr(v), b);
      case Kind::kSub: return O::Add(b, Unzig(v));
      case Kind::kOrd: return Unord(O::Add(Ord(b), Unzig(v)));
      default: {  // kExpMant
        __m256i ed = _mm256_and_si256(O::Srl(v, cM1), em);
        __m256i e = _mm256_and_si256(O::Add(O::Srl(b, cM), ed), em);
        __m256i sgn = _mm256_xor_si256(O::ShlTop(v), _mm256_and_si256(b, S));
        __m256i man = _mm256_and_si256(_mm256_xor_si256(b, O::Shr1(v)), mm);
        return _mm256_or_si256(_mm256_or_si256(sgn, O::Sll(e, cM)), man);
      }
    }
  }
};

// ---- 32-element block layout ---------------------------------------------------------------

inline __m256i Load2(const uint8_t* lo, const uint8_t* hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1);
}
inline void Store2(uint8_t* lo, uint8_t* hi, __m256i v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), _mm256_castsi256_si128(v));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(hi), _mm256_extracti128_si256(v, 1));
}

// Per-lane byte shuffles. Forward: byte q = G*p + e of a lane (G = 16/w
// elements per lane) takes byte (w-1-p) of element e. Inverse: the reverse.
template <size_t w>
__m256i ForwardMask() {
  constexpr size_t G = 16 / w;
  alignas(32) uint8_t m[32];
  for (size_t q = 0; q < 16; ++q) m[q] = m[q + 16] = uint8_t(w * (q % G) + (w - 1 - q / G));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
}
template <size_t w>
__m256i InverseMask() {
  constexpr size_t G = 16 / w;
  alignas(32) uint8_t m[32];
  for (size_t e = 0; e < G; ++e)
    for (size_t k = 0; k < w; ++k) m[w * e + k] = m[w * e + k + 16] = uint8_t(G * (w - 1 - k) + e);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
}

// Transpose of the w x w matrix of (16/w)-byte groups in each lane: group j of
// r[p] becomes group p of r[j]. Its own inverse.
inline void Transpose(__m256i* r, std::integral_constant<size_t, 2>) {
  __m256i a = _mm256_unpacklo_epi64(r[0], r[1]), b = _mm256_unpackhi_epi64(r[0], r[1]);
  r[0] = a;
  r[1] = b;
}
inline void Transpose(__m256i* r, std::integral_constant<size_t, 4>) {
  __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
  __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
  r[0] = _mm256_unpacklo_epi64(t0, t2);
  r[1] = _mm256_unpackhi_epi64(t0, t2);
  r[2] = _mm256_unpacklo_epi64(t1, t3);
  r[3] = _mm256_unpackhi_epi64(t1, t3);
}
inline void Transpose(__m256i* r, std::integral_constant<size_t, 8>) {
  __m256i a0 = _mm256_unpacklo_epi16(r[0], r[1]), a1 = _mm256_unpackhi_epi16(r[0], r[1]);
  __m256i a2 = _mm256_unpacklo_epi16(r[2], r[3]), a3 = _mm256_unpackhi_epi16(r[2], r[3]);
  __m256i a4 = _mm256_unpacklo_epi16(r[4], r[5]), a5 = _mm256_unpackhi_epi16(r[4], r[5]);
  __m256i a6 = _mm256_unpacklo_epi16(r[6], r[7]), a7 = _mm256_unpackhi_epi16(r[6], r[7]);
  __m256i b0 = _mm256_unpacklo_epi32(a0, a2), b1 = _mm256_unpackhi_epi32(a0, a2);
  __m256i b2 = _mm256_unpacklo_epi32(a1, a3), b3 = _mm256_unpackhi_epi32(a1, a3);
  __m256i b4 = _mm256_unpacklo_epi32(a4, a6), b5 = _mm256_unpackhi_epi32(a4, a6);
  __m256i b6 = _mm256_unpacklo_epi32(a5, a7), b7 = _mm256_unpackhi_epi32(a5, a7);
  r[0] = _mm256_unpacklo_epi64(b0, b4);
  r[1] = _mm256_unpackhi_epi64(b0, b4);
  r[2] = _mm256_unpacklo_epi64(b1, b5);
  r[3] = _mm256_unpackhi_epi64(b1, b5);
  r[4] = _mm256_unpacklo_epi64(b2, b6);
  r[5] = _mm256_unpackhi_epi64(b2, b6);
  r[6] = _mm256_unpacklo_epi64(b3, b7);
  r[7] = _mm256_unpackhi_epi64(b3, b7);
}

template <typename U, Kind K>
void ForwardSplitVec(const Elem<U, K>& e, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* const* dst) {
  constexpr size_t w = sizeof(U);
  const VElem<U, K> v(e);
  const __m256i mask = ForwardMask<w>();
  uint8_t* o[w];
  for (size_t p = 0; p < w; ++p) o[p] = dst[p];
  const size_t nv = n & ~size_t(31);
  for (size_t i = 0; i < nv; i += 32) {
    const uint8_t* tp = t + i * w;
    __m256i r[w];
    for (size_t j = 0; j < w; ++j) {
      __m256i x = Load2(tp + 16 * j, tp + 16 * (w + j));
      __m256i y = KindNeedsBase(K) ? Load2(b + i * w + 16 * j, b + i * w + 16 * (w + j)) : x;
      r[j] = _mm256_shuffle_epi8(v.Fwd(x, y), mask);
    }
    Transpose(r, std::integral_constant<size_t, w>());
    for (size_t p = 0; p < w; ++p) _mm256_storeu_si256(reinterpret_cast<__m256i*>(o[p] + i), r[p]);
  }
  ForwardSplitRange(e, t, b, nv, n, dst);
}

template <typename U, Kind K>
void JoinInverseVec(const Elem<U, K>& e, const uint8_t* const* src, const uint8_t* b, size_t n, uint8_t* out) {
  constexpr size_t w = sizeof(U);
  const VElem<U, K> v(e);
  const __m256i mask = InverseMask<w>();
  const uint8_t* s[w];
  for (size_t p = 0; p < w; ++p) s[p] = src[p];
  const size_t nv = n & ~size_t(31);
  for (size_t i = 0; i < nv; i += 32) {
    __m256i r[w];
    for (size_t p = 0; p < w; ++p) r[p] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s[p] + i));
    Transpose(r, std::integral_constant<size_t, w>());
    uint8_t* op = out + i * w;
    for (size_t j = 0; j < w; ++j) {
      __m256i x = _mm256_shuffle_epi8(r[j], mask);
      __m256i y = KindNeedsBase(K) ? Load2(b + i * w + 16 * j, b + i * w + 16 * (w + j)) : x;
      Store2(op + 16 * j, op + 16 * (w + j), v.Inv(x, y));
    }
  }
  JoinInverseRange(e, src, b, nv, n, out);
}

template <typename U, Kind K>
void ForwardSplitAny(const Elem<U, K>& e, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* const* dst) {
  if constexpr (sizeof(U) == 1) ForwardSplitRange(e, t, b, 0, n, dst);
  else ForwardSplitVec(e, t, b, n, dst);
}
template <typename U, Kind K>
void JoinInverseAny(const Elem<U, K>& e, const uint8_t* const* src, const uint8_t* b, size_t n, uint8_t* out) {
  if constexpr (sizeof(U) == 1) JoinInverseRange(e, src, b, 0, n, out);
  else JoinInverseVec(e, src, b, n, out);
}

}  // namespace

void ForwardSplitAvx2(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* const* dst) {
  WithElem(c, d, [&](const auto& e) { ForwardSplitAny(e, t, b, n, dst); });
}

void JoinInverseAvx2(Codec c, DType d, const uint8_t* const* src, const uint8_t* b, size_t n, uint8_t* out) {
  WithElem(c, d, [&](const auto& e) { JoinInverseAny(e, src, b, n, out); });
}

}  // namespace planes_impl
}  // namespace coral
