// Bit-exact casts between F64, F32, F16 and BF16. See cast.h for the contract
// and the semantics; cast_avx2.cc holds the AVX2 twins of the hot pairs.
#include "kernels/cast.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/parallel.h"

namespace coral {

// The AVX2 span kernels (cast_avx2.cc). Each handles a prefix of the span in
// whole vectors and returns how many elements it wrote; the caller finishes
// the tail with the portable loop. Returns 0 for pairs it does not handle.
size_t CastSpanAvx2(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r);

namespace {

struct Fmt {
  int e;  // exponent bits
  int m;  // fraction bits
};
Fmt FmtOf(DType d) {
  switch (d) {
    case DType::F64: return {11, 52};
    case DType::F32: return {8, 23};
    case DType::F16: return {5, 10};
    default: return {8, 7};  // BF16
  }
}

template <typename U>
U LoadU(const uint8_t* p, size_t i) {
  U v;
  std::memcpy(&v, p + i * sizeof(U), sizeof(U));
  return v;
}
template <typename U>
void StoreU(uint8_t* p, size_t i, U v) {
  std::memcpy(p + i * sizeof(U), &v, sizeof(U));
}

// F32 -> BF16 by bit arithmetic (equal to CastBits for every input).
inline uint16_t F32ToBf16(uint32_t u, CastRounding r) {
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);  // NaN: keep sign + top payload, quiet
  if (r == CastRounding::kTowardZero) return uint16_t(u >> 16);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);  // a carry into the exponent is the right result
}

// F32 -> F16 by bit arithmetic when the result is a normal F16 or overflows
// (the common case), CastBits otherwise (subnormal or zero results, NaN):
// equal to CastBits for every input.
inline uint16_t F32ToF16(uint32_t u, CastRounding r) {
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t sign = (u >> 16) & 0x8000u;
  if (a >= 0x38800000u && a < 0x7F800000u) {  // |x| in [2^-14, Inf): normal F16, or past its range
    const uint32_t t = r == CastRounding::kNearestEven ? a + 0x0FFFu + ((a >> 13) & 1u) : a;
    const uint32_t f = (t >> 13) - (uint32_t(127 - 15) << 10);  // rebias; a carry lands in the exponent
    if (f >= 0x7C00u) return uint16_t(sign | (r == CastRounding::kNearestEven ? 0x7C00u : 0x7BFFu));
    return uint16_t(sign | f);
  }
  if (a == 0x7F800000u) return uint16_t(sign | 0x7C00u);
  return uint16_t(CastBits(DType::F32, u, DType::F16, r));
}

// F32 -> F64 by bit arithmetic for normal numbers, CastBits otherwise.
inline uint64_t F32ToF64(uint32_t u) {
  const uint32_t ef = (u >> 23) & 0xFFu;
  if (ef == 0 || ef == 0xFFu) return CastBits(DType::F32, u, DType::F64, CastRounding::kNearestEven);
  return (uint64_t(u >> 31) << 63) | (uint64_t(ef - 127 + 1023) << 52) | (uint64_t(u & 0x7FFFFFu) << 29);
}

// F64 -> F32 by bit arithmetic when the result is a normal F32 (the common
// case), CastBits otherwise (equal to CastBits for every input).
inline uint32_t F64ToF32(uint64_t u, CastRounding r) {
  const uint64_t a = u & 0x7FFFFFFFFFFFFFFFull;
  const uint32_t sign = uint32_t(u >> 32) & 0x80000000u;
  // |x| in [2^-126, 2^128): exponent field 897..1150 keeps the result normal or lets it round up
  // to Inf (RNE) / saturate (RTZ); both checked below.
  if (a >= 0x3810000000000000ull && a < 0x47F0000000000000ull) {
    const uint64_t t = r == CastRounding::kNearestEven ? a + 0x0FFFFFFFull + ((a >> 29) & 1u) : a;
    const uint64_t f = (t >> 29) - (uint64_t(1023 - 127) << 23);  // rebias; a carry lands in the exponent
    if (f >= 0x7F800000ull) return sign | (r == CastRounding::kNearestEven ? 0x7F800000u : 0x7F7FFFFFu);
    return sign | uint32_t(f);
  }
  return uint32_t(CastBits(DType::F64, u, DType::F32, r));
}

// F16 -> F32, all 65536 results.
const uint32_t* F16ToF32Table() {
  static const std::vector<uint32_t> t = [] {
    std::vector<uint32_t> v(65536);
    for (uint32_t i = 0; i < 65536; ++i)
      v[i] = uint32_t(CastBits(DType::F16, i, DType::F32, CastRounding::kNearestEven));
    return v;
  }();
  return t.data();
}

template <typename S, typename D>
void Generic(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r) {
  for (size_t i = 0; i < n; ++i) StoreU<D>(dst, i, D(CastBits(from, LoadU<S>(src, i), to, r)));
}

void Portable(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r) {
  if (from == DType::F32 && to == DType::BF16) {
    for (size_t i = 0; i < n; ++i) StoreU<uint16_t>(dst, i, F32ToBf16(LoadU<uint32_t>(src, i), r));
    return;
  }
  if (from == DType::BF16 && to == DType::F32) {
    for (size_t i = 0; i < n; ++i) StoreU<uint32_t>(dst, i, uint32_t(LoadU<uint16_t>(src, i)) << 16);
    return;
  }
  if (from == DType::F32 && to == DType::F16) {
    for (size_t i = 0; i < n; ++i) StoreU<uint16_t>(dst, i, F32ToF16(LoadU<uint32_t>(src, i), r));
    return;
  }
  if (from == DType::F16 && to == DType::F32) {
    const uint32_t* t = F16ToF32Table();
    for (size_t i = 0; i < n; ++i) StoreU<uint32_t>(dst, i, t[LoadU<uint16_t>(src, i)]);
    return;
  }
  if (from == DType::F64 && to == DType::F32) {
    for (size_t i = 0; i < n; ++i) StoreU<uint32_t>(dst, i, F64ToF32(LoadU<uint64_t>(src, i), r));
    return;
  }
  if (from == DType::F32 && to == DType::F64) {
    for (size_t i = 0; i < n; ++i) StoreU<uint64_t>(dst, i, F32ToF64(LoadU<uint32_t>(src, i)));
    return;
  }
  if ((from == DType::F16 && to == DType::BF16) || (from == DType::BF16 && to == DType::F16)) {
    // Through F32 (exact), then one rounding: the same as CastBits directly.
    for (size_t i = 0; i < n; ++i) StoreU<uint16_t>(dst, i, uint16_t(CastBits(from, LoadU<uint16_t>(src, i), to, r)));
    return;
  }
  const size_t ws = DTypeSize(from), wd = DTypeSize(to);
  if (ws == 8 && wd == 4) return Generic<uint64_t, uint32_t>(from, src, to, dst, n, r);
  if (ws == 8 && wd == 2) return Generic<uint64_t, uint16_t>(from, src, to, dst, n, r);
  if (ws == 4 && wd == 2) return Generic<uint32_t, uint16_t>(from, src, to, dst, n, r);
  if (ws == 2 && wd == 8) return Generic<uint16_t, uint64_t>(from, src, to, dst, n, r);
  if (ws == 2 && wd == 4) return Generic<uint16_t, uint32_t>(from, src, to, dst, n, r);
  if (ws == 4 && wd == 8) return Generic<uint32_t, uint64_t>(from, src, to, dst, n, r);
}

}  // namespace

bool CastSupported(DType from, DType to) {
  auto ok = [](DType d) { return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16; };
  return from != to && ok(from) && ok(to);
}

bool CastIsWidening(DType from, DType to) {
  if (!CastSupported(from, to)) return false;
  const Fmt s = FmtOf(from), d = FmtOf(to);
  return d.e >= s.e && d.m >= s.m;
}

uint64_t CastBits(DType from, uint64_t bits, DType to, CastRounding r) {
  const Fmt s = FmtOf(from), d = FmtOf(to);
  const uint64_t sign = (bits >> (s.e + s.m)) & 1u;
  const uint64_t s_exp_all = (uint64_t(1) << s.e) - 1;
  const uint64_t ef = (bits >> s.m) & s_exp_all;
  const uint64_t frac = bits & ((uint64_t(1) << s.m) - 1);
  const uint64_t dsign = sign << (d.e + d.m);
  const uint64_t d_exp_all = ((uint64_t(1) << d.e) - 1) << d.m;
  if (ef == s_exp_all) {
    if (frac == 0) return dsign | d_exp_all;                             // +-Inf
    if (d.m >= s.m) return dsign | d_exp_all | (frac << (d.m - s.m));  // NaN, payload kept exactly
    return dsign | d_exp_all | (uint64_t(1) << (d.m - 1)) | (frac >> (s.m - d.m));  // quiet, top payload
  }
  const int s_bias = (1 << (s.e - 1)) - 1;
  uint64_t m;
  int q;  // value = m * 2^q
  if (ef == 0) {
    m = frac;
    q = 1 - s_bias - s.m;
  } else {
    m = frac | (uint64_t(1) << s.m);
    q = int(ef) - s_bias - s.m;
  }
  if (m == 0) return dsign;  // +-0
  const int top = 63 - __builtin_clzll(m);
  const int e = top + q;  // value in [2^e, 2^(e+1))
  const int d_bias = (1 << (d.e - 1)) - 1;
  const int d_emin = 1 - d_bias;
  const int eq = std::max(e, d_emin);  // the target's quantum is 2^(eq - d.m)
  const int shift = (eq - d.m) - q;    // low bits of m that do not fit
  uint64_t rr;
  if (shift <= 0) {
    rr = m << (-shift);  // exact (at most d.m + 1 bits)
  } else if (shift >= 64) {
    rr = 0;  // m < 2^53 <= half a quantum: rounds to zero either way
  } else {
    rr = m >> shift;
    if (r == CastRounding::kNearestEven) {
      const uint64_t rem = m & ((uint64_t(1) << shift) - 1);
      const uint64_t half = uint64_t(1) << (shift - 1);
      if (rem > half || (rem == half && (rr & 1))) ++rr;
    }
  }
  // Normal: rr holds the implicit bit, so (eq - emin) << m + rr is the biased
  // exponent and fraction (a rounding carry bumps the exponent). Subnormal:
  // eq == emin and rr < 2^m (a carry gives the smallest normal).
  const uint64_t field = (uint64_t(eq - d_emin) << d.m) + rr;
  const uint64_t max_finite = d_exp_all - 1;
  if (field > max_finite) return dsign | (r == CastRounding::kNearestEven ? d_exp_all : max_finite);
  return dsign | field;
}

void CastSpan(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r) {
  if (!CastSupported(from, to)) return;
  size_t done = 0;
  if (CpuUseAvx2()) done = CastSpanAvx2(from, src, to, dst, n, r);
  Portable(from, src + done * DTypeSize(from), to, dst + done * DTypeSize(to), n - done, r);
}

void CastTensor(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n, CastRounding r, int threads) {
  constexpr size_t kBlock = size_t(1) << 16;
  const size_t nb = (n + kBlock - 1) / kBlock;
  const size_t ws = DTypeSize(from), wd = DTypeSize(to);
  if (nb <= 1) return CastSpan(from, src, to, dst, n, r);
  ParallelFor(
      nb,
      [&](size_t k) {
        const size_t i = k * kBlock, len = std::min(kBlock, n - i);
        CastSpan(from, src + i * ws, to, dst + i * wd, len, r);
      },
      threads);
}

}  // namespace coral
