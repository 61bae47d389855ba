#include "kernels/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/parallel.h"

namespace coral {
namespace {

inline uint64_t BitsOf(double x) {
  uint64_t b;
  std::memcpy(&b, &x, 8);
  return b;
}
inline double F64OfBits(uint64_t b) {
  double x;
  std::memcpy(&x, &b, 8);
  return x;
}

// Minifloat with E exponent bits and M fraction bits. FN = the "finite, NaN
// only" style of OCP e4m3fn: the all-ones exponent holds normal numbers and
// only S.1111.111 is NaN; there is no Inf.
template <int E, int M, bool FN>
struct Mini {
  static constexpr int kBias = (1 << (E - 1)) - 1;
  static constexpr int kEmin = 1 - kBias;                     // exponent of the smallest normal
  static constexpr uint32_t kSign = 1u << (E + M);
  static constexpr uint32_t kFracMask = (1u << M) - 1;
  static constexpr uint32_t kExpAll = ((1u << E) - 1) << M;
  static constexpr uint32_t kQuiet = 1u << (M - 1);
  static constexpr uint32_t kNaN = FN ? (kExpAll | kFracMask) : (kExpAll | kQuiet);
  static constexpr uint32_t kMaxFinite = FN ? kNaN - 1 : kExpAll - 1;

  // One rounding, to nearest, ties to even (see convert.h for the edge cases).
  static uint32_t Encode(double x) {
    uint64_t b = BitsOf(x);
    uint32_t sign = (b >> 63) ? kSign : 0;
    uint64_t a = b & 0x7FFFFFFFFFFFFFFFull;
    if (a > 0x7FF0000000000000ull) {
      if (FN) return sign | kNaN;
      // Keep the top payload bits that fit, force the quiet bit.
      return sign | kExpAll | kQuiet | static_cast<uint32_t>((a >> (52 - M)) & kFracMask);
    }
    if (a == 0x7FF0000000000000ull) return sign | (FN ? kNaN : kExpAll);
    int ef = static_cast<int>(a >> 52);
    if (ef >= 1023 + kEmin) {
      // Normal range of the target: round the f64 bit pattern at the target's
      // last fraction bit (adding half-1 plus the kept lsb carries exactly on
      // "above half" and on "tie with odd lsb"); a carry out of the fraction
      // lands in the exponent. Then rebias the exponent field.
      constexpr int kShift = 52 - M;
      uint64_t r = (a + ((uint64_t(1) << (kShift - 1)) - 1) + ((a >> kShift) & 1)) >> kShift;
      int64_t field = static_cast<int64_t>(r) - (static_cast<int64_t>(1023 - kBias) << M);
      if (field > static_cast<int64_t>(kMaxFinite)) return sign | (FN ? kNaN : kExpAll);
      return sign | static_cast<uint32_t>(field);
    }
    if (ef == 0) return sign;  // zero or an f64 subnormal: far below half the smallest target subnormal
    int e = ef - 1023;
    uint64_t m = (a & 0x000FFFFFFFFFFFFFull) | (uint64_t(1) << 52);  // value = m * 2^(e-52)
    int eq = e < kEmin ? kEmin : e;                                     // quantum = 2^(eq-M)
    int s = 52 - M + (eq - e);                                          // >= 52-M > 0
    uint64_t r;
    if (s > 53) {
      r = 0;  // m < 2^53 <= 2^(s-1): less than half a quantum
    } else {
      r = m >> s;
      uint64_t rem = m & ((uint64_t(1) << s) - 1);
      uint64_t half = uint64_t(1) << (s - 1);
      if (rem > half || (rem == half && (r & 1))) ++r;
    }
    // Normal: r holds the implicit bit, so (eq-emin)<<M + r = biased<<M | frac,
    // and a carry out of the fraction bumps the exponent. Subnormal: eq = emin.
    int64_t field = (static_cast<int64_t>(eq - kEmin) << M) + static_cast<int64_t>(r);
    if (field > static_cast<int64_t>(kMaxFinite)) return sign | (FN ? kNaN : kExpAll);
    return sign | static_cast<uint32_t>(field);
  }

  static double Decode(uint32_t v) {
    bool neg = (v & kSign) != 0;
    uint32_t ef = (v >> M) & ((1u << E) - 1);
    uint32_t frac = v & kFracMask;
    double mag;
    if (!FN && ef == (1u << E) - 1) {
      if (frac == 0) {
        mag = std::numeric_limits<double>::infinity();
      } else {
        // Payload moves to the top of the f64 fraction (quiet bit stays the quiet bit).
        mag = F64OfBits(0x7FF0000000000000ull | (uint64_t(frac) << (52 - M)));
      }
    } else if (FN && (v & ~kSign) == kNaN) {
      mag = std::numeric_limits<double>::quiet_NaN();
    } else if (ef == 0) {
      mag = std::ldexp(static_cast<double>(frac), kEmin - M);
    } else {
      mag = std::ldexp(static_cast<double>(frac | (1u << M)), static_cast<int>(ef) - kBias - M);
    }
    return neg ? -mag : mag;
  }
};

using F16M = Mini<5, 10, false>;
using BF16M = Mini<8, 7, false>;
using E4M3M = Mini<4, 3, true>;
using E5M2M = Mini<5, 2, false>;

const float* F16Table() {
  static const std::vector<float> t = [] {
    std::vector<float> v(65536);
    for (uint32_t i = 0; i < 65536; ++i) v[i] = static_cast<float>(F16M::Decode(i));
    return v;
  }();
  return t.data();
}
template <class MF>
const float* Byte8Table() {
  static const std::vector<float> t = [] {
    std::vector<float> v(256);
    for (uint32_t i = 0; i < 256; ++i) v[i] = static_cast<float>(MF::Decode(i));
    return v;
  }();
  return t.data();
}

template <class T>
inline T Load(const uint8_t* p, size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));
  return v;
}
template <class T>
inline void Store(uint8_t* p, size_t i, T v) {
  std::memcpy(p + i * sizeof(T), &v, sizeof(T));
}

template <class T>
void DecodeInt(const uint8_t* src, size_t n, double* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<double>(Load<T>(src, i));
}

// Round half to even, saturate, NaN -> 0.
template <class T>
inline T SatRound(double x) {
  if (x != x) return 0;
  double r = std::nearbyint(x);  // default rounding mode: nearest, ties to even
  constexpr int kBits = std::numeric_limits<T>::digits;  // value bits (excl. sign)
  const double hi = std::ldexp(1.0, kBits);             // exclusive upper bound (2^31, 2^64, ...)
  if (r >= hi) return std::numeric_limits<T>::max();
  if (std::numeric_limits<T>::is_signed) {
    if (r <= -hi) return std::numeric_limits<T>::min();
  } else if (r <= 0) {
    return 0;
  }
  return static_cast<T>(r);
}

template <class T>
void EncodeInt(const double* src, size_t n, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) Store<T>(dst, i, SatRound<T>(src[i]));
}

}  // namespace

double F16BitsToF64(uint16_t h) { return F16M::Decode(h); }
double BF16BitsToF64(uint16_t b) { return BF16BitsToF32(b); }
double E4M3BitsToF64(uint8_t v) { return E4M3M::Decode(v); }
double E5M2BitsToF64(uint8_t v) { return E5M2M::Decode(v); }
uint16_t F64ToF16Bits(double x) { return static_cast<uint16_t>(F16M::Encode(x)); }
uint16_t F64ToBF16Bits(double x) { return static_cast<uint16_t>(BF16M::Encode(x)); }
uint8_t F64ToE4M3Bits(double x) { return static_cast<uint8_t>(E4M3M::Encode(x)); }
uint8_t F64ToE5M2Bits(double x) { return static_cast<uint8_t>(E5M2M::Encode(x)); }

uint16_t F32ToBF16Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN, payload top bits
  // Classic RNE by bias: adding 0x7FFF + lsb carries exactly when the dropped
  // half is above a tie, or a tie with an odd kept part; overflow reaches Inf.
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

bool Int64FitsF64(const uint8_t* src, size_t n, bool is_unsigned) {
  const uint64_t lim = uint64_t(1) << 53;
  bool ok = true;
  if (is_unsigned) {
    for (size_t i = 0; i < n; ++i) ok &= Load<uint64_t>(src, i) <= lim;
  } else {
    for (size_t i = 0; i < n; ++i) {
      int64_t v = Load<int64_t>(src, i);
      ok &= v <= static_cast<int64_t>(lim) && v >= -static_cast<int64_t>(lim);
    }
  }
  return ok;
}

void DecodeToF64(DType d, const uint8_t* src, size_t n, double* dst) {
  switch (d) {
    case DType::F64: std::memcpy(dst, src, n * 8); break;
    case DType::F32:
      for (size_t i = 0; i < n; ++i) dst[i] = Load<float>(src, i);
      break;
    case DType::F16: {
      const float* t = F16Table();
      for (size_t i = 0; i < n; ++i) dst[i] = t[Load<uint16_t>(src, i)];
      break;
    }
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) dst[i] = BF16BitsToF32(Load<uint16_t>(src, i));
      break;
    case DType::F8_E4M3: {
      const float* t = Byte8Table<E4M3M>();
      for (size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
      break;
    }
    case DType::F8_E5M2: {
      const float* t = Byte8Table<E5M2M>();
      for (size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
      break;
    }
    case DType::I64: DecodeInt<int64_t>(src, n, dst); break;
    case DType::I32: DecodeInt<int32_t>(src, n, dst); break;
    case DType::I16: DecodeInt<int16_t>(src, n, dst); break;
    case DType::I8: DecodeInt<int8_t>(src, n, dst); break;
    case DType::U64: DecodeInt<uint64_t>(src, n, dst); break;
    case DType::U32: DecodeInt<uint32_t>(src, n, dst); break;
    case DType::U16: DecodeInt<uint16_t>(src, n, dst); break;
    case DType::U8: DecodeInt<uint8_t>(src, n, dst); break;
    case DType::BOOL:
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] ? 1.0 : 0.0;
      break;
  }
}

bool DecodeToF32(DType d, const uint8_t* src, size_t n, float* dst) {
  switch (d) {
    case DType::F32: std::memcpy(dst, src, n * 4); return true;
    case DType::F16: {
      const float* t = F16Table();
      for (size_t i = 0; i < n; ++i) dst[i] = t[Load<uint16_t>(src, i)];
      return true;
    }
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) dst[i] = BF16BitsToF32(Load<uint16_t>(src, i));
      return true;
    case DType::F8_E4M3: {
      const float* t = Byte8Table<E4M3M>();
      for (size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
      return true;
    }
    case DType::F8_E5M2: {
      const float* t = Byte8Table<E5M2M>();
      for (size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
      return true;
    }
    default: return false;
  }
}

void EncodeFromF64(DType d, const double* src, size_t n, uint8_t* dst) {
  switch (d) {
    case DType::F64: std::memcpy(dst, src, n * 8); break;
    case DType::F32:
      for (size_t i = 0; i < n; ++i) Store<float>(dst, i, static_cast<float>(src[i]));
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) Store<uint16_t>(dst, i, static_cast<uint16_t>(F16M::Encode(src[i])));
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) Store<uint16_t>(dst, i, static_cast<uint16_t>(BF16M::Encode(src[i])));
      break;
    case DType::F8_E4M3:
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(E4M3M::Encode(src[i]));
      break;
    case DType::F8_E5M2:
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(E5M2M::Encode(src[i]));
      break;
    case DType::I64: EncodeInt<int64_t>(src, n, dst); break;
    case DType::I32: EncodeInt<int32_t>(src, n, dst); break;
    case DType::I16: EncodeInt<int16_t>(src, n, dst); break;
    case DType::I8: EncodeInt<int8_t>(src, n, dst); break;
    case DType::U64: EncodeInt<uint64_t>(src, n, dst); break;
    case DType::U32: EncodeInt<uint32_t>(src, n, dst); break;
    case DType::U16: EncodeInt<uint16_t>(src, n, dst); break;
    case DType::U8: EncodeInt<uint8_t>(src, n, dst); break;
    case DType::BOOL:
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0.0 ? 1 : 0;  // NaN != 0 -> 1
      break;
  }
}

bool EncodeFromF32(DType d, const float* src, size_t n, uint8_t* dst) {
  switch (d) {
    case DType::F32: std::memcpy(dst, src, n * 4); return true;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) Store<uint16_t>(dst, i, F32ToBF16Bits(src[i]));
      return true;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) Store<uint16_t>(dst, i, static_cast<uint16_t>(F16M::Encode(src[i])));
      return true;
    case DType::F8_E4M3:
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(E4M3M::Encode(src[i]));
      return true;
    case DType::F8_E5M2:
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(E5M2M::Encode(src[i]));
      return true;
    default: return false;
  }
}

void ConvertDType(DType src_type, const uint8_t* src, DType dst_type, uint8_t* dst, size_t n, int threads) {
  constexpr size_t kBlock = size_t(1) << 16;  // fixed: the split never changes a result (elementwise anyway)
  constexpr size_t kChunk = 1024;
  const size_t ss = DTypeSize(src_type), ds = DTypeSize(dst_type);
  if (src_type == dst_type) {
    std::memmove(dst, src, n * ss);  // identity: bit-exact, NaN payloads included
    return;
  }
  size_t blocks = (n + kBlock - 1) / kBlock;
  ParallelFor(
      blocks,
      [&](size_t b) {
        double buf[kChunk];
        size_t end = std::min(n, (b + 1) * kBlock);
        for (size_t i = b * kBlock; i < end; i += kChunk) {
          size_t m = std::min(kChunk, end - i);
          DecodeToF64(src_type, src + i * ss, m, buf);
          EncodeFromF64(dst_type, buf, m, dst + i * ds);
        }
      },
      n < 4 * kBlock ? 1 : threads);
}

}  // namespace coral
