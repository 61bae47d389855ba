#include "kernels/simhash.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/parallel.h"

namespace coral {
namespace {

constexpr uint32_t kGatherRuns = 256;       // runs per gather chunk (4096 samples)
constexpr uint32_t kGatherAll = 4096;       // elements per gather chunk when every element is used
constexpr uint32_t kProjectChunk = 4096;    // samples per projection chunk
constexpr uint64_t kCosineChunk = 1u << 16; // elements per cosine chunk
constexpr uint32_t kCosineBlock = 1024;     // decode block inside a cosine chunk

inline float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    float f = static_cast<float>(man) * (1.0f / 16777216.0f);  // man * 2^-24
    return sign ? -f : f;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// F8 E4M3 "fn" (OCP / PyTorch float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN.
inline float E4M3ToFloat(uint8_t b) {
  uint32_t exp = (b >> 3) & 0xfu, man = b & 7u;
  float v;
  if (exp == 15 && man == 7) v = NAN;
  else if (exp == 0) v = static_cast<float>(man) * (1.0f / 512.0f);  // man * 2^-9
  else v = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, static_cast<int>(exp) - 7);
  return (b & 0x80) ? -v : v;
}

struct F8Tables {
  float e4m3[256];
  float e5m2[256];
  F8Tables() {
    for (int i = 0; i < 256; ++i) {
      e4m3[i] = E4M3ToFloat(static_cast<uint8_t>(i));
      e5m2[i] = HalfToFloat(static_cast<uint16_t>(i << 8));  // E5M2 is the top byte of an F16
    }
  }
};
const F8Tables& F8() {
  static const F8Tables t;
  return t;
}

template <typename S>
inline S Load(const uint8_t* p) {
  S v;
  std::memcpy(&v, p, sizeof(S));
  return v;
}

// Converts elements [first, first + n) to T. Little-endian host assumed (as everywhere in coral).
template <typename T>
void Decode(const uint8_t* base, DType dt, uint64_t first, size_t n, T* out) {
  const size_t es = DTypeSize(dt);
  const uint8_t* p = base + first * es;
  switch (dt) {
    case DType::F64: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<double>(p + 8 * i)); break;
    case DType::F32: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<float>(p + 4 * i)); break;
    case DType::F16: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(HalfToFloat(Load<uint16_t>(p + 2 * i))); break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint32_t bits = static_cast<uint32_t>(Load<uint16_t>(p + 2 * i)) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        out[i] = static_cast<T>(f);
      }
      break;
    case DType::F8_E4M3: { const float* t = F8().e4m3; for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(t[p[i]]); break; }
    case DType::F8_E5M2: { const float* t = F8().e5m2; for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(t[p[i]]); break; }
    case DType::I64: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<int64_t>(p + 8 * i)); break;
    case DType::I32: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<int32_t>(p + 4 * i)); break;
    case DType::I16: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<int16_t>(p + 2 * i)); break;
    case DType::I8: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<int8_t>(p[i])); break;
    case DType::U64: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<uint64_t>(p + 8 * i)); break;
    case DType::U32: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<uint32_t>(p + 4 * i)); break;
    case DType::U16: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(Load<uint16_t>(p + 2 * i)); break;
    case DType::U8: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(p[i]); break;
    case DType::BOOL: for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(p[i] != 0); break;
  }
}

// Sign multipliers for one byte of hyperplane bits: bit j set -> -1.
struct SignTable {
  float m[256][8];
  SignTable() {
    for (int b = 0; b < 256; ++b)
      for (int j = 0; j < 8; ++j) m[b][j] = ((b >> j) & 1) ? -1.0f : 1.0f;
  }
};
const SignTable& Signs() {
  static const SignTable t;
  return t;
}

Err CheckBytes(size_t nbytes, DType dtype, uint64_t numel, const char* what) {
  unsigned __int128 want = static_cast<unsigned __int128>(numel) * DTypeSize(dtype);
  if (want != nbytes)
    return Err::Make(Status::InvalidArgument, std::string(what) + " has " + std::to_string(nbytes) +
                                                  " bytes but " + std::to_string(numel) + " elements of " +
                                                  DTypeName(dtype) + " need " +
                                                  std::to_string(static_cast<uint64_t>(want)));
  return Err::Ok();
}

}  // namespace

Err ValidateSimHashParams(const SimHashParams& p) {
  if (p.bits < kSimHashMinBits || p.bits > kSimHashMaxBits || p.bits % 64 != 0)
    return Err::Make(Status::InvalidArgument, "bits must be a multiple of 64 in [64, 1024], got " + std::to_string(p.bits));
  if (p.max_samples < kSimHashMinSamples || p.max_samples > kSimHashMaxSamples || p.max_samples % kSimHashRun != 0)
    return Err::Make(Status::InvalidArgument,
                     "maxSamples must be a multiple of 16 in [256, 4194304], got " + std::to_string(p.max_samples));
  return Err::Ok();
}

uint32_t HammingDistance(const uint8_t* a, const uint8_t* b, size_t bytes) {
  uint32_t h = 0;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) h += static_cast<uint32_t>(__builtin_popcountll(Load<uint64_t>(a + i) ^ Load<uint64_t>(b + i)));
  for (; i < bytes; ++i) h += static_cast<uint32_t>(__builtin_popcount(a[i] ^ b[i]));
  return h;
}

Err SimHash(const void* data, size_t nbytes, DType dtype, uint64_t numel, const SimHashParams& p, SimHashResult* out,
            int threads) {
  CORAL_TRY(ValidateSimHashParams(p));
  if (!ValidDType(static_cast<int>(dtype))) return Err::Make(Status::InvalidArgument, "unknown dtype code");
  if (numel > (uint64_t(1) << 62)) return Err::Make(Status::InvalidArgument, "more than 2^62 elements");
  CORAL_TRY(CheckBytes(nbytes, dtype, numel, "tensor data"));
  const auto* base = static_cast<const uint8_t*>(data);
  const uint32_t words = p.bits / 64;

  // Sample positions. With every element used, position s is s; otherwise run r
  // covers [run_start[r], run_start[r] + 16).
  const bool all = numel <= p.max_samples;
  const uint64_t m = all ? numel : p.max_samples;
  std::vector<uint64_t> run_start;
  if (!all) {
    const uint64_t runs = m / kSimHashRun;
    run_start.resize(runs);
    const uint64_t offset_seed = SimMix64(p.seed ^ 0x53414d504c45ull /* "SAMPLE" */);
    for (uint64_t r = 0; r < runs; ++r) {
      uint64_t lo = static_cast<uint64_t>(static_cast<unsigned __int128>(numel) * r / runs);
      uint64_t hi = static_cast<uint64_t>(static_cast<unsigned __int128>(numel) * (r + 1) / runs);
      uint64_t span = hi - lo - kSimHashRun + 1;  // hi - lo >= floor(numel / runs) >= 16
      run_start[r] = lo + SimMix64(offset_seed + r) % span;
    }
  }
  auto pos = [&](uint64_t s) -> uint64_t { return all ? s : run_start[s / kSimHashRun] + s % kSimHashRun; };

  // Phase 1: gather and convert the samples, with per-chunk statistics.
  std::vector<float> vals(m);
  const uint64_t gather_chunk = all ? kGatherAll : uint64_t(kGatherRuns) * kSimHashRun;
  const size_t gchunks = static_cast<size_t>((m + gather_chunk - 1) / gather_chunk);
  struct Stat { double sum = 0, sumsq = 0; uint64_t bad = 0; };
  std::vector<Stat> stats(gchunks);
  ParallelFor(gchunks, [&](size_t c) {
    const uint64_t s0 = c * gather_chunk, s1 = std::min<uint64_t>(m, s0 + gather_chunk);
    if (all) {
      Decode(base, dtype, s0, s1 - s0, vals.data() + s0);
    } else {
      for (uint64_t s = s0; s < s1; s += kSimHashRun) Decode(base, dtype, run_start[s / kSimHashRun], kSimHashRun, vals.data() + s);
    }
    Stat st;
    for (uint64_t s = s0; s < s1; ++s) {
      float v = vals[s];
      if (!std::isfinite(v)) { vals[s] = NAN; ++st.bad; continue; }  // zeroed below
      st.sum += v;
      st.sumsq += static_cast<double>(v) * v;
    }
    stats[c] = st;
  }, gchunks >= 4 ? threads : 1);
  Stat total;
  for (const Stat& s : stats) { total.sum += s.sum; total.sumsq += s.sumsq; total.bad += s.bad; }
  const uint64_t good = m - total.bad;
  const double mean = good ? total.sum / static_cast<double>(good) : 0.0;
  const double rms = good ? std::sqrt(total.sumsq / static_cast<double>(good)) : 0.0;
  // Non-finite samples project as 0 (not -mean): they carry no information either way.
  const float shift = p.center ? static_cast<float>(mean) : 0.0f;
  if (p.center || total.bad) {
    for (uint64_t s = 0; s < m; ++s) vals[s] = std::isnan(vals[s]) ? 0.0f : vals[s] - shift;
  }

  // Phase 2: project. Per chunk and per group g of 8 hyperplanes, sample x is
  // added to bucket[g][byte] where byte holds its 8 sign bits; afterwards
  // acc[8g + j] = sum_b sign_j(b) * bucket[g][b]. That is one scalar add per
  // sample and group instead of eight. Lanes j are independent, so the
  // summation order (and the result) is the same on every ISA.
  uint64_t word_seed[kSimHashMaxBits / 64];
  for (uint32_t w = 0; w < words; ++w) word_seed[w] = SimMix64(p.seed + 0x9e3779b97f4a7c15ull * (w + 1));
  const size_t pchunks = static_cast<size_t>((m + kProjectChunk - 1) / kProjectChunk);
  std::vector<float> partial(pchunks * p.bits, 0.0f);
  const SignTable& st = Signs();
  ParallelFor(pchunks, [&](size_t c) {
    std::vector<float> bucket(static_cast<size_t>(words) * 8 * 256, 0.0f);
    const uint64_t s0 = c * kProjectChunk, s1 = std::min<uint64_t>(m, s0 + kProjectChunk);
    for (uint64_t s = s0; s < s1; ++s) {
      const float x = vals[s];
      if (x == 0.0f) continue;  // adds nothing
      const uint64_t i = pos(s);
      for (uint32_t w = 0; w < words; ++w) {
        const uint64_t h = SimMix64(word_seed[w] ^ i);
        float* bw = bucket.data() + static_cast<size_t>(w) * 8 * 256;
        for (int byte = 0; byte < 8; ++byte) bw[byte * 256 + ((h >> (8 * byte)) & 0xff)] += x;
      }
    }
    float* acc = partial.data() + c * p.bits;
    for (uint32_t g = 0; g < words * 8; ++g) {
      const float* bg = bucket.data() + static_cast<size_t>(g) * 256;
      float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int b = 0; b < 256; ++b) {
        const float v = bg[b];
        const float* sg = st.m[b];
        for (int j = 0; j < 8; ++j) a[j] += v * sg[j];
      }
      for (int j = 0; j < 8; ++j) acc[8 * g + j] = a[j];
    }
  }, pchunks >= 4 ? threads : 1);

  out->signature.assign(p.bits / 8, 0);
  for (uint32_t k = 0; k < p.bits; ++k) {
    double sum = 0;
    for (size_t c = 0; c < pchunks; ++c) sum += partial[c * p.bits + k];
    if (sum > 0) out->signature[k / 8] |= static_cast<uint8_t>(1u << (k % 8));
  }
  out->numel = numel;
  out->samples = m;
  out->nonfinite = total.bad;
  out->mean = mean;
  out->rms = rms;
  return Err::Ok();
}

Err Cosine(const void* a, size_t a_bytes, DType a_dtype, const void* b, size_t b_bytes, DType b_dtype, uint64_t numel,
           bool center, CosineResult* out, int threads) {
  if (!ValidDType(static_cast<int>(a_dtype)) || !ValidDType(static_cast<int>(b_dtype)))
    return Err::Make(Status::InvalidArgument, "unknown dtype code");
  if (numel > (uint64_t(1) << 62)) return Err::Make(Status::InvalidArgument, "more than 2^62 elements");
  CORAL_TRY(CheckBytes(a_bytes, a_dtype, numel, "a"));
  CORAL_TRY(CheckBytes(b_bytes, b_dtype, numel, "b"));
  const auto* pa = static_cast<const uint8_t*>(a);
  const auto* pb = static_cast<const uint8_t*>(b);

  enum { SA, SB, SAA, SBB, SAB, SDD, NQ };
  struct Part { double q[NQ]; uint64_t skipped; };
  const size_t chunks = static_cast<size_t>((numel + kCosineChunk - 1) / kCosineChunk);
  std::vector<Part> parts(chunks);
  // One chunk; `checked` masks non-finite pairs out. The fast unchecked pass
  // runs first and a chunk is redone checked only if its sums are not finite,
  // which depends on the data alone (so results stay thread-count independent).
  auto chunk = [&](size_t c, bool checked, Part* pt) {
    constexpr int L = 4;  // independent lanes: fixed order, vectorisable
    alignas(64) double xa[kCosineBlock], xb[kCosineBlock];
    double acc[NQ][L] = {};
    uint64_t skipped = 0;
    const uint64_t e0 = c * kCosineChunk, e1 = std::min<uint64_t>(numel, e0 + kCosineChunk);
    for (uint64_t e = e0; e < e1; e += kCosineBlock) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kCosineBlock, e1 - e));
      Decode(pa, a_dtype, e, n, xa);
      Decode(pb, b_dtype, e, n, xb);
      const size_t padded = (n + L - 1) / L * L;
      for (size_t i = n; i < padded; ++i) xa[i] = xb[i] = 0.0;
      if (checked) {
        for (size_t i = 0; i < padded; ++i) {
          if (std::fabs(xa[i]) <= DBL_MAX && std::fabs(xb[i]) <= DBL_MAX) continue;
          xa[i] = xb[i] = 0.0;
          ++skipped;
        }
      }
      for (size_t i = 0; i < padded; i += L) {
        for (int l = 0; l < L; ++l) {
          const double x = xa[i + l], y = xb[i + l], d = x - y;
          acc[SA][l] += x;
          acc[SB][l] += y;
          acc[SAA][l] += x * x;
          acc[SBB][l] += y * y;
          acc[SAB][l] += x * y;
          acc[SDD][l] += d * d;
        }
      }
    }
    bool finite = true;
    for (int q = 0; q < NQ; ++q) {
      double s = 0;
      for (int l = 0; l < L; ++l) s += acc[q][l];
      pt->q[q] = s;
      finite = finite && std::fabs(s) <= DBL_MAX;
    }
    pt->skipped = skipped;
    return finite;
  };
  ParallelFor(chunks, [&](size_t c) {
    if (!chunk(c, false, &parts[c])) chunk(c, true, &parts[c]);
  }, chunks >= 8 ? threads : 1);

  double q[NQ] = {};
  uint64_t skipped = 0;
  for (const Part& p : parts) {
    for (int i = 0; i < NQ; ++i) q[i] += p.q[i];
    skipped += p.skipped;
  }
  const uint64_t n = numel - skipped;
  double saa = q[SAA], sbb = q[SBB], sab = q[SAB];
  if (center && n > 0) {
    const double ma = q[SA] / static_cast<double>(n), mb = q[SB] / static_cast<double>(n);
    saa = std::max(0.0, saa - ma * q[SA]);
    sbb = std::max(0.0, sbb - mb * q[SB]);
    sab = sab - ma * q[SB];
  }
  out->norm_a = std::sqrt(saa);
  out->norm_b = std::sqrt(sbb);
  out->norm_delta = std::sqrt(q[SDD]);
  const double den = out->norm_a * out->norm_b;
  out->cosine = den > 0 ? std::max(-1.0, std::min(1.0, sab / den)) : 0.0;
  out->count = n;
  out->skipped = skipped;
  return Err::Ok();
}

}  // namespace coral
