// Internal to the byte-plane kernels (planes.cc, planes_avx2.cc) and codec.cc:
// the element transforms of the lossless codecs, defined once, and the
// portable fused transform + split / join + inverse loops.
// Not part of any public contract; see planes.h and docs/codecs.md.
//
// Everything below that is compiled into code lives in an anonymous namespace
// on purpose: planes_avx2.cc includes this header under -mavx2, and inline
// functions or templates shared by name between that TU and the baseline ones
// would let the linker keep the AVX2 copy for everybody (ODR), which would
// crash on CPUs without AVX2. Each TU gets its own copy instead.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels/codec.h"
#include "kernels/codec_internal.h"
#include "kernels/dtype.h"

namespace coral {
namespace planes_impl {

// The AVX2 entry points (planes_avx2.cc); called only when CpuUseAvx2().
void ForwardSplitAvx2(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* const* dst);
void JoinInverseAvx2(Codec c, DType d, const uint8_t* const* src, const uint8_t* b, size_t n, uint8_t* out);

namespace {

// ---- element transforms --------------------------------------------------------------------
// One U per element. Rotl/Rotr move the sign bit to the bottom (not for 8-bit
// elements); Ord maps float bits to an unsigned order; Zig folds a signed
// difference so small magnitudes of either sign get small codes.
template <typename U>
struct T {
  static constexpr int W = int(sizeof(U) * 8);
  static constexpr U S = U(U(1) << (W - 1));
  static U Load(const uint8_t* p, size_t i) {
    U v;
    std::memcpy(&v, p + i * sizeof(U), sizeof(U));
    return v;
  }
  static void Store(uint8_t* p, size_t i, U v) { std::memcpy(p + i * sizeof(U), &v, sizeof(U)); }
  static U Rotl(U v) { return W == 8 ? v : U(U(v << 1) | U(v >> (W - 1))); }
  static U Rotr(U v) { return W == 8 ? v : U(U(v >> 1) | U(v << (W - 1))); }
  static U Ord(U v) { return (v & S) ? U(~v) : U(v | S); }
  static U Unord(U u) { return (u & S) ? U(u ^ S) : U(~u); }
  static U Zig(U d) {
    using Sg = typename std::make_signed<U>::type;
    return U(U(d << 1) ^ U(Sg(d) >> (W - 1)));
  }
  static U Unzig(U z) { return U(U(z >> 1) ^ U(U(0) - U(z & 1))); }
};

// The transform of a (codec, float or not) pair:
//   kCopy     PLANES, integer            v
//   kRot      PLANES, float              Rotl(t)
//   kXor      DELTA_XOR, integer         t ^ b
//   kXorRot   DELTA_XOR, float           Rotl(t ^ b)
//   kSub      DELTA_ORDERED, integer     Zig(t - b)
//   kOrd      DELTA_ORDERED, float       Zig(Ord(t) - Ord(b))
//   kExpMant  DELTA_EXPMANT              exponent difference | mantissa xor | sign xor
enum class Kind { kCopy, kRot, kXor, kXorRot, kSub, kOrd, kExpMant, kNone };

constexpr bool KindNeedsBase(Kind k) { return k != Kind::kCopy && k != Kind::kRot; }

inline Kind KindOf(Codec c, DType d) {
  const bool fl = IsFloat(d);
  switch (c) {
    case Codec::PLANES: return fl ? Kind::kRot : Kind::kCopy;
    case Codec::DELTA_XOR: return fl ? Kind::kXorRot : Kind::kXor;
    case Codec::DELTA_ORDERED: return fl ? Kind::kOrd : Kind::kSub;
    case Codec::DELTA_EXPMANT: return Kind::kExpMant;
    default: return Kind::kNone;
  }
}

// Scalar transform of kind K; M/mm/em are the DELTA_EXPMANT field parameters
// (mantissa bits, mantissa mask, exponent mask) from the dtype's FloatLayout.
template <typename U, Kind K>
struct Elem {
  using X = T<U>;
  int M = 0;
  U mm = 0, em = 0;
  explicit Elem(DType d) {
    if (K == Kind::kExpMant) {
      const codec::FloatLayout L = codec::LayoutOf(d);
      M = L.man_bits;
      mm = U((U(1) << M) - 1);
      em = U((U(1) << L.exp_bits) - 1);
    }
  }
  U Fwd(U t, U b) const {
    switch (K) {
      case Kind::kCopy: return t;
      case Kind::kRot: return X::Rotl(t);
      case Kind::kXor: return U(t ^ b);
      case Kind::kXorRot: return X::Rotl(U(t ^ b));
      case Kind::kSub: return X::Zig(U(t - b));
      case Kind::kOrd: return X::Zig(U(X::Ord(t) - X::Ord(b)));
      case Kind::kExpMant: {
        U ed = U((U(t >> M) - U(b >> M)) & em);
        U x = U(t ^ b);
        return U(U(ed << (M + 1)) | U((x & mm) << 1) | U(x >> (X::W - 1)));
      }
      default: return 0;
    }
  }
  U Inv(U v, U b) const {
    switch (K) {
      case Kind::kCopy: return v;
      case Kind::kRot: return X::Rotr(v);
      case Kind::kXor: return U(v ^ b);
      case Kind::kXorRot: return U(X::Rotr(v) ^ b);
      case Kind::kSub: return U(b + X::Unzig(v));
      case Kind::kOrd: return X::Unord(U(X::Ord(b) + X::Unzig(v)));
      case Kind::kExpMant: {
        U ed = U(U(v >> (M + 1)) & em);
        U e = U((U(b >> M) + ed) & em);
        U sgn = U(U(U(v & 1) << (X::W - 1)) ^ U(b & X::S));
        U man = U((b & mm) ^ (U(v >> 1) & mm));
        return U(sgn | U(e << M) | man);
      }
      default: return 0;
    }
  }
};

// Calls f(Elem<U, K>) for the element width and transform of (c, d). Returns
// false (without calling f) for a codec that is not an element codec.
template <typename F>
bool WithElem(Codec c, DType d, F&& f) {
  const Kind k = KindOf(c, d);
  if (k == Kind::kNone) return false;
  auto by_kind = [&](auto u) {
    using U = decltype(u);
    switch (k) {
      case Kind::kCopy: f(Elem<U, Kind::kCopy>(d)); break;
      case Kind::kRot: f(Elem<U, Kind::kRot>(d)); break;
      case Kind::kXor: f(Elem<U, Kind::kXor>(d)); break;
      case Kind::kXorRot: f(Elem<U, Kind::kXorRot>(d)); break;
      case Kind::kSub: f(Elem<U, Kind::kSub>(d)); break;
      case Kind::kOrd: f(Elem<U, Kind::kOrd>(d)); break;
      default: f(Elem<U, Kind::kExpMant>(d)); break;
    }
  };
  switch (DTypeSize(d)) {
    case 1: by_kind(uint8_t()); break;
    case 2: by_kind(uint16_t()); break;
    case 4: by_kind(uint32_t()); break;
    default: by_kind(uint64_t()); break;
  }
  return true;
}

// ---- portable fused loops ------------------------------------------------------------------
// Over blocks of kBlock elements, so the transformed block stays in L1 between
// the transform and the plane loops. The transform works on a local copy of
// the Elem and a local block, the plane loops on restrict-qualified pointers
// with compile-time shifts, so the compiler vectorises them (SSE2 in the
// baseline TU; AVX2 in planes_avx2.cc, which uses them for 1-byte elements
// and tails).
constexpr size_t kBlock = 2048;

// Elements [i0, n) of the transform, split into planes.
template <typename U, Kind K>
void ForwardSplitRange(const Elem<U, K>& e_, const uint8_t* t, const uint8_t* b, size_t i0, size_t n,
                       uint8_t* const* dst) {
  using X = T<U>;
  constexpr size_t w = sizeof(U);
  const Elem<U, K> e = e_;  // a local copy: byte stores cannot alias its fields
  if (w == 1) {
    const uint8_t* __restrict tp = t;
    const uint8_t* __restrict bp = b;
    uint8_t* __restrict o = dst[0];
    if (KindNeedsBase(K))
      for (size_t i = i0; i < n; ++i) o[i] = uint8_t(e.Fwd(U(tp[i]), U(bp[i])));
    else
      for (size_t i = i0; i < n; ++i) o[i] = uint8_t(e.Fwd(U(tp[i]), U(0)));
    return;
  }
  alignas(64) U tmp[kBlock];
  for (size_t i = i0; i < n; i += kBlock) {
    const size_t m = std::min(kBlock, n - i);
    const uint8_t* tp = t + i * w;
    if (KindNeedsBase(K)) {
      const uint8_t* bp = b + i * w;
      for (size_t k = 0; k < m; ++k) tmp[k] = e.Fwd(X::Load(tp, k), X::Load(bp, k));
    } else {
      for (size_t k = 0; k < m; ++k) tmp[k] = e.Fwd(X::Load(tp, k), U(0));
    }
    for (size_t p = 0; p < w; ++p) {
      const int shift = int(8 * (w - 1 - p));
      uint8_t* __restrict o = dst[p] + i;
      const U* __restrict s = tmp;
      for (size_t k = 0; k < m; ++k) o[k] = uint8_t(s[k] >> shift);
    }
  }
}

// tmp[k] = element i + k of the planes, all plane shifts known at compile time.
template <typename U, size_t... P>
void JoinBlock(const uint8_t* const* src, size_t i, size_t m, U* __restrict tmp, std::index_sequence<P...>) {
  constexpr size_t w = sizeof(U);
  const uint8_t* s[w] = {(src[P] + i)...};
  for (size_t k = 0; k < m; ++k) tmp[k] = U((U(U(s[P][k]) << (8 * (w - 1 - P))) | ...));
}

// Elements [i0, n): join the planes and invert the transform.
template <typename U, Kind K>
void JoinInverseRange(const Elem<U, K>& e_, const uint8_t* const* src, const uint8_t* b, size_t i0, size_t n,
                      uint8_t* out) {
  using X = T<U>;
  constexpr size_t w = sizeof(U);
  const Elem<U, K> e = e_;  // a local copy: byte stores cannot alias its fields
  if (w == 1) {
    const uint8_t* __restrict sp = src[0];
    const uint8_t* __restrict bp = b;
    uint8_t* __restrict o = out;
    if (KindNeedsBase(K))
      for (size_t i = i0; i < n; ++i) o[i] = uint8_t(e.Inv(U(sp[i]), U(bp[i])));
    else
      for (size_t i = i0; i < n; ++i) o[i] = uint8_t(e.Inv(U(sp[i]), U(0)));
    return;
  }
  alignas(64) U tmp[kBlock];
  for (size_t i = i0; i < n; i += kBlock) {
    const size_t m = std::min(kBlock, n - i);
    JoinBlock<U>(src, i, m, tmp, std::make_index_sequence<sizeof(U)>());
    uint8_t* op = out + i * w;
    if (KindNeedsBase(K)) {
      const uint8_t* bp = b + i * w;
      for (size_t k = 0; k < m; ++k) X::Store(op, k, e.Inv(tmp[k], X::Load(bp, k)));
    } else {
      for (size_t k = 0; k < m; ++k) X::Store(op, k, e.Inv(tmp[k], U(0)));
    }
  }
}

}  // namespace
}  // namespace planes_impl
}  // namespace coral
