// Internal helpers shared by the codec kernels (codec*.cc): bounded byte
// reader/writer, compressed streams, float bit layouts and conversions.
// Not part of any public contract.
//
// Thread: every function is reentrant; zstd contexts are thread_local.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "errors.h"
#include "kernels/codec.h"
#include "kernels/dtype.h"

namespace coral {
namespace codec {

// ---- threads -------------------------------------------------------------------------------

// A tensor up to this size is coded on the calling thread alone. It is at most
// one default chunk (kDefaultChunkElems F32), so more threads could only split
// its planes, its candidate trials and its block joins, and waking a pool
// thread and waiting for it cost more than that saved at every size up to this
// one (F32, 16 KiB to 1 MiB: encode 1.1-1.7x and decode up to 1.4x slower on 2
// threads). Callers coding many small tensors run them side by side instead.
constexpr uint64_t kSerialMaxBytes = uint64_t(1) << 20;
inline int ThreadsFor(uint64_t nbytes, int threads) { return nbytes <= kSerialMaxBytes ? 1 : threads; }

// ---- bytes ---------------------------------------------------------------------------------

inline void PutU8(std::vector<uint8_t>& o, uint8_t v) { o.push_back(v); }
inline void PutU16(std::vector<uint8_t>& o, uint16_t v) {
  uint8_t b[2] = {uint8_t(v), uint8_t(v >> 8)};
  o.insert(o.end(), b, b + 2);
}
inline void PutU32(std::vector<uint8_t>& o, uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; ++i) b[i] = uint8_t(v >> (8 * i));
  o.insert(o.end(), b, b + 4);
}
inline void PutU64(std::vector<uint8_t>& o, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = uint8_t(v >> (8 * i));
  o.insert(o.end(), b, b + 8);
}
inline void PutF64(std::vector<uint8_t>& o, double d) {
  uint64_t v;
  std::memcpy(&v, &d, 8);
  PutU64(o, v);
}
inline void PutVarint(std::vector<uint8_t>& o, uint64_t v) {
  while (v >= 0x80) {
    o.push_back(uint8_t(v) | 0x80);
    v >>= 7;
  }
  o.push_back(uint8_t(v));
}

// Bounded little-endian reader: every read checks the remaining length.
struct Reader {
  const uint8_t* p;
  size_t n;
  size_t pos = 0;
  Reader(const uint8_t* d, size_t len) : p(d), n(len) {}
  size_t left() const { return n - pos; }
  bool Need(size_t k) const { return k <= n - pos; }
  bool U8(uint8_t* v) {
    if (!Need(1)) return false;
    *v = p[pos++];
    return true;
  }
  bool U16(uint16_t* v) {
    if (!Need(2)) return false;
    *v = uint16_t(p[pos] | (p[pos + 1] << 8));
    pos += 2;
    return true;
  }
  bool U32(uint32_t* v) {
    if (!Need(4)) return false;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r |= uint32_t(p[pos + i]) << (8 * i);
    *v = r;
    pos += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    if (!Need(8)) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= uint64_t(p[pos + i]) << (8 * i);
    *v = r;
    pos += 8;
    return true;
  }
  bool F64(double* d) {
    uint64_t v;
    if (!U64(&v)) return false;
    std::memcpy(d, &v, 8);
    return true;
  }
  bool Bytes(size_t k, const uint8_t** out) {
    if (!Need(k)) return false;
    *out = p + pos;
    pos += k;
    return true;
  }
};

inline Err Corrupt(const std::string& what) { return Err::Make(Status::Corrupt, "corrupt codec object: " + what); }

// ---- compressed streams --------------------------------------------------------------------
// A stream is: u8 mode, u32 raw length, u32 stored length, stored bytes.
// mode 0 = stored raw, 1 = zstd frame, 2 = one repeated byte (stored length 1),
// 3 = order-0 rANS (kernels/entropy.h).

// kHintAuto: a plane (stored raw when it samples above 7.92 bits/byte);
// kHintCompress: always try to compress; kHintZstd: zstd only (the ZSTD codec).
enum StreamHint { kHintAuto = 0, kHintCompress = 1, kHintZstd = 2 };

// Appends one stream holding data[0..n). With kHintAuto, a sample entropy test
// skips zstd for planes that look incompressible (stored raw).
void PutStream(std::vector<uint8_t>& out, const uint8_t* data, size_t n, int level, StreamHint hint = kHintAuto);

// About the size PutStream would write for data[0..n), from the same choice
// of coder but without running it (rANS sized by the order-0 entropy, zstd by
// its trial): the automatic codec choice ranks the plane codecs with it.
// Split in bytes that grow with the stream and fixed bytes (header, tables),
// so an estimate on a sample scales only the first.
struct StreamEstimate {
  double per_data;
  double fixed;
};
StreamEstimate EstimateStream(const uint8_t* data, size_t n, int level, StreamHint hint = kHintAuto);

// Reads one stream whose raw length must equal `expect`. *data points either
// into the object (raw mode) or into `scratch` (decoded).
Err GetStream(Reader& r, size_t expect, std::vector<uint8_t>& scratch, const uint8_t** data);
// Same, for streams whose raw length is not known in advance (bounded by max_raw).
Err GetStreamAnyLen(Reader& r, size_t max_raw, std::vector<uint8_t>& scratch, const uint8_t** data, size_t* len);

// Order-0 entropy (bits per byte) of up to `samples` bytes spread over data
// (4096 estimate it within ~0.05 bit: enough to tell mantissa bits from the rest).
double SampleEntropy(const uint8_t* data, size_t n, size_t samples = 4096);

// ---- float layouts -------------------------------------------------------------------------

struct FloatLayout {
  int bits;      // total width
  int exp_bits;  // exponent field width
  int man_bits;  // mantissa field width
};
inline FloatLayout LayoutOf(DType d) {
  switch (d) {
    case DType::F64: return {64, 11, 52};
    case DType::F32: return {32, 8, 23};
    case DType::F16: return {16, 5, 10};
    case DType::BF16: return {16, 8, 7};
    case DType::F8_E4M3: return {8, 4, 3};
    case DType::F8_E5M2: return {8, 5, 2};
    default: return {0, 0, 0};
  }
}

// ---- scalar conversions (round to nearest even) --------------------------------------------

inline float BitsToF32(uint32_t v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline uint32_t F32ToBits(float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  return v;
}
inline double HalfToDouble(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? std::nan("") : INFINITY;
  else v = std::ldexp(double(m | 1024), e - 25);
  return s ? -v : v;
}
// Round-to-nearest-even conversion of a double to an IEEE-style binary format
// with E exponent bits and M mantissa bits (F16: 5/10, BF16: 8/7).
inline uint32_t DoubleToSmallFloat(double d, int E, int M) {
  uint32_t sign = std::signbit(d) ? (1u << (E + M)) : 0u;
  uint32_t expmask = (1u << E) - 1;
  if (std::isnan(d)) return sign | (expmask << M) | (1u << (M - 1));
  if (std::isinf(d)) return sign | (expmask << M);
  double a = std::fabs(d);
  int bias = (1 << (E - 1)) - 1;
  int emin = 1 - bias;
  if (a < std::ldexp(1.0, emin)) {  // subnormal: units of 2^(emin - M); q == 2^M is the smallest normal
    double q = std::nearbyint(std::ldexp(a, M - emin));
    return sign | uint32_t(q);
  }
  int e;
  double fr = std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
  double m = std::nearbyint(std::ldexp(fr, M + 1));
  if (m >= std::ldexp(1.0, M + 1)) {
    m /= 2;
    e += 1;
  }
  int be = e - 1 + bias;
  if (be >= int(expmask)) return sign | (expmask << M);
  return sign | (uint32_t(be) << M) | (uint32_t(m) - (1u << M));
}
inline uint16_t DoubleToHalf(double d) { return uint16_t(DoubleToSmallFloat(d, 5, 10)); }
inline double Bf16ToDouble(uint16_t h) { return BitsToF32(uint32_t(h) << 16); }
inline uint16_t DoubleToBf16(double d) { return uint16_t(DoubleToSmallFloat(d, 8, 7)); }

// Element i of a float tensor as a double (F64/F32/F16/BF16 only).
inline double LoadF(const uint8_t* p, DType d, size_t i) {
  switch (d) {
    case DType::F64: {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      return v;
    }
    case DType::F32: {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return HalfToDouble(h);
    }
    default: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return Bf16ToDouble(h);
    }
  }
}
inline void StoreF(uint8_t* p, DType d, size_t i, double v) {
  switch (d) {
    case DType::F64: std::memcpy(p + 8 * i, &v, 8); break;
    case DType::F32: {
      float f = float(v);
      std::memcpy(p + 4 * i, &f, 4);
      break;
    }
    case DType::F16: {
      uint16_t h = DoubleToHalf(v);
      std::memcpy(p + 2 * i, &h, 2);
      break;
    }
    default: {
      uint16_t h = DoubleToBf16(v);
      std::memcpy(p + 2 * i, &h, 2);
      break;
    }
  }
}
inline bool LossyDType(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16;
}

// ---- lossy codecs (codec_lossy.cc) ---------------------------------------------------------
// Encodes the payload and params of a lossy codec. The caller decodes the
// result with LossyDecode to hash it and measure the error, so the recorded
// error is exactly that of what decode returns.
Err LossyEncode(Codec c, const TensorView& t, const uint8_t* base, const EncodeParams& p, uint32_t chunk,
                int threads, std::vector<uint8_t>* params, std::vector<uint8_t>* payload);

// F32 arrays as sign-rotated byte planes (used for scales and factors).
void PutF32Planes(std::vector<uint8_t>& out, const float* v, size_t n, int level);
Err GetF32Planes(Reader& r, size_t n, float* out);
// The chunked payload decoder (SPARSE_TOPK shares it with SPARSE_UPDATE).
Err DecodeChunkedPayload(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* b, uint8_t* out,
                         int threads);
// Decode a lossy payload into out (base may be null when the object has none).
Err LossyDecode(const ObjectInfo& info, const uint8_t* payload, size_t payload_n, const uint8_t* base, uint8_t* out,
                int threads);

// Sparse chunk engine shared by SPARSE_UPDATE and SPARSE_TOPK (codec.cc).
// `positions` are the global indices (within [start, start+n)) stored; base may be null (zeros).
void SparseEncodeChunk(const uint8_t* t, const uint8_t* b, DType d, uint64_t start, size_t n,
                       const std::vector<uint64_t>& positions, int level, std::vector<uint8_t>* out);
Err SparseDecodeChunk(Reader& r, const uint8_t* b, DType d, uint64_t start, size_t n, uint8_t* out,
                      std::vector<uint8_t>& scratch);

// Chunked payload framing: u32 size per chunk, then the chunk bodies.
Err SplitChunks(const uint8_t* payload, size_t n, uint64_t nchunks, std::vector<std::pair<size_t, size_t>>* spans);
void JoinChunks(const std::vector<std::vector<uint8_t>>& chunks, std::vector<uint8_t>* payload);

// ---- shared with the derived codecs (codec_derived.cc) ------------------------------------
// The lossless chunked coder of codec.cc: parts[k] is chunk k's body.
void EncodeLosslessChunks(Codec c, const TensorView& t, const uint8_t* b, uint32_t chunk, int level, int threads,
                          std::vector<std::vector<uint8_t>>* parts);
// Returns chunk buffers to the encoder's pool.
void ReleaseChunks(std::vector<std::vector<uint8_t>>* parts);
// The automatic choice's estimates (RAW first), for t against b (null: standalone).
Err EstimateLossless(const TensorView& t, const uint8_t* b, const EncodeParams& p,
                     std::vector<std::pair<Codec, uint64_t>>* out);
// The object header (docs/codecs.md), lossless, for the given fields. `fields`: the 16 bytes at
// offset 48 (the error fields, zero in a lossless object), or null for zeros; a CAST object keeps
// its params there (CastHeaderFields).
void WriteObjectHeader(std::vector<uint8_t>* o, Codec c, const TensorView& t, bool has_base, int level,
                       uint32_t chunk, const Digest128& id, const Digest128& base_id,
                       const std::vector<uint8_t>& params, uint64_t payload_size, const uint8_t* fields = nullptr);
// Elements whose bytes differ between t and b (n elements of w bytes), over threads.
uint64_t CountChangedElems(const uint8_t* t, const uint8_t* b, uint64_t n, size_t w, int threads);

// ---- derived codecs: CAST and ROWS (codec_derived.cc) --------------------------------------
struct DerivedInfo {
  DType base_dtype = DType::U8;
  std::vector<uint64_t> base_shape;
  uint64_t base_nbytes = 0;
  uint64_t residual = 0;  // CAST: elements differing from the cast; ROWS: differing shared elements
  // CAST
  uint8_t rounding = 0;
  Codec inner = Codec::RAW;
  // ROWS: target rows [t_start, t_start + shared) are coded against base rows [b_start, ...).
  uint64_t t_start = 0, b_start = 0, shared = 0;
  Codec inner_prefix = Codec::PLANES, inner_suffix = Codec::PLANES;
};
// Parses and checks the params of a CAST or ROWS object against its header.
Err ParseDerived(const ObjectInfo& info, DerivedInfo* d);
// A CAST object written with no params (P = 0) keeps them in the header's 16 error-field bytes,
// which a lossless object never uses: byte 0 the compact tag (1 d d r 0 0 i i), bytes 1-8 the
// residual (u64), bytes 9-15 zero. Inspect turns them back into the compact params (tag + LEB128
// residual), so everything past Inspect sees one layout. False when the fields are malformed.
bool CastParamsFromHeaderFields(const uint8_t fields[16], std::vector<uint8_t>* params);
// Encodes t against a base of another dtype or first dimension (Encode calls
// it whenever the base differs; it may produce a standalone object instead).
Err DerivedEncode(const TensorView& t, const TensorView& base, const EncodeParams& p, EncodeResult* res);
// Decodes a CAST/ROWS payload into out; base holds d.base_nbytes bytes.
Err DerivedDecode(const ObjectInfo& info, const DerivedInfo& d, const uint8_t* payload, size_t pn,
                  const uint8_t* base, uint8_t* out, int threads);

}  // namespace codec
}  // namespace coral
