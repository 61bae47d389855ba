// The derived-base codecs CAST and ROWS (docs/codecs.md, "Derived bases"):
// the base is turned into a prediction of the tensor (cast to its dtype with
// a named rounding, or its rows aligned with the tensor's), and what differs
// is coded by the ordinary lossless chunked coder. See codec_internal.h for
// the entry points and codec.h for the threading and ownership contract.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#include "kernels/cast.h"
#include "kernels/codec_internal.h"
#include "kernels/hash.h"
#include "kernels/parallel.h"

namespace coral {
namespace codec {
namespace {

// CAST params, three layouts (docs/codecs.md, "CAST"), all still decoded: the original 12 bytes
// (u8 base dtype, u8 rounding, u8 inner codec, u8 0, u64 residual); the compact one: one byte
// 1 d d r 0 0 i i (bit 7 set, which the original's dtype byte never has; d: base dtype code 0-3,
// r: rounding, i: inner codec - DELTA_XOR), then the residual as LEB128; and the one every encoder
// writes now: no params (P = 0), the compact tag and the residual (u64) in the header's 16
// error-field bytes, which a lossless object leaves zero -- so a CAST object with a residual is
// exactly as large as a delta against the stored cast would be. Inspect turns the last form back
// into the compact params (CastParamsFromHeaderFields), which is what ParseDerived and callers see.
constexpr size_t kCastParamsV0 = 12;
constexpr uint8_t kCastCompact = 0x80;
constexpr size_t kRowsParams = 44;  // u64 base rows, t start, b start, shared; u8 x3 inner codecs, u8 0; u64 residual

bool IsDeltaCodec(Codec c) {
  return c == Codec::DELTA_XOR || c == Codec::DELTA_ORDERED || c == Codec::DELTA_EXPMANT || c == Codec::SPARSE_UPDATE;
}
bool IsStandaloneChunked(Codec c) { return c == Codec::ZSTD || c == Codec::PLANES; }

// The compact CAST tag byte (see kCastCompact).
uint8_t CastTag(DType base, CastRounding r, Codec inner) {
  return uint8_t(kCastCompact | (uint8_t(base) << 5) | (uint8_t(r) << 4) | (uint8_t(inner) - uint8_t(Codec::DELTA_XOR)));
}

// The compact CAST params: the tag, then the residual as minimal LEB128.
std::vector<uint8_t> CompactCastParams(uint8_t tag, uint64_t residual) {
  std::vector<uint8_t> p;
  p.push_back(tag);
  do {
    const uint8_t b = residual & 0x7F;
    residual >>= 7;
    p.push_back(residual ? uint8_t(b | 0x80) : b);
  } while (residual);
  return p;
}

// The 16 header bytes that hold a CAST object's params (see the layouts above).
struct CastFields {
  uint8_t b[16] = {};
  CastFields(DType base, CastRounding r, Codec inner, uint64_t residual) {
    b[0] = CastTag(base, r, inner);
    for (int i = 0; i < 8; ++i) b[1 + i] = uint8_t(residual >> (8 * i));
  }
};

uint64_t Numel(const std::vector<uint64_t>& s) {
  uint64_t n = 1;
  for (uint64_t d : s) n *= d;
  return n;
}

Err CheckView(const TensorView& v, const char* what) {
  if (v.shape.size() > 32) return Err::Make(Status::InvalidArgument, "tensors are limited to 32 dimensions");
  uint64_t n = 1;
  for (uint64_t d : v.shape) {
    if (d != 0 && n > (uint64_t(1) << 53) / d) return Err::Make(Status::InvalidArgument, "shape too large");
    n *= d;
  }
  if (n * DTypeSize(v.dtype) != v.nbytes)
    return Err::Make(Status::InvalidArgument, std::string(what) + " data has " + std::to_string(v.nbytes) +
                                                  " bytes but its shape needs " +
                                                  std::to_string(n * DTypeSize(v.dtype)));
  return Err::Ok();
}

// Spread sample positions (up to 4 windows of 4Ki elements) for the rounding trial.
template <typename Fn>
void SampleWindows(uint64_t n, Fn fn) {
  constexpr uint64_t kWin = 4096, kWins = 4;
  if (n <= kWin * kWins) return fn(0, n);
  for (uint64_t k = 0; k < kWins; ++k) fn((n - kWin) * k / (kWins - 1), kWin);
}

// The rounding whose cast of the base reproduces most sampled elements of t.
CastRounding ChooseRounding(const TensorView& t, const TensorView& base) {
  if (CastIsWidening(base.dtype, t.dtype)) return CastRounding::kNearestEven;
  const size_t wt = DTypeSize(t.dtype), wb = DTypeSize(base.dtype);
  const uint64_t n = t.nbytes / wt;
  uint64_t miss[kCastRoundingCount] = {0, 0};
  std::vector<uint8_t> tmp;
  SampleWindows(n, [&](uint64_t s, uint64_t len) {
    tmp.resize(size_t(len) * wt);
    for (int r = 0; r < kCastRoundingCount; ++r) {
      CastSpan(base.dtype, base.data + s * wb, t.dtype, tmp.data(), size_t(len), CastRounding(r));
      miss[r] += CountChangedElems(t.data + s * wt, tmp.data(), len, wt, 1);
    }
  });
  return miss[1] < miss[0] ? CastRounding::kTowardZero : CastRounding::kNearestEven;
}

// Elements of t that differ from the cast of base, cast block by block into
// per-thread scratch (no tensor-sized buffer): the common case, a pure cast,
// needs nothing else.
uint64_t CastMismatches(const TensorView& t, const TensorView& base, CastRounding r, int threads) {
  constexpr size_t kBlock = size_t(1) << 15;
  const size_t wt = DTypeSize(t.dtype), wb = DTypeSize(base.dtype);
  const size_t n = t.nbytes / wt, nb = (n + kBlock - 1) / kBlock;
  std::vector<uint64_t> miss(nb, 0);
  ParallelFor(
      nb,
      [&](size_t k) {
        thread_local std::vector<uint8_t> tmp;
        const size_t i = k * kBlock, len = std::min(kBlock, n - i);
        if (tmp.size() < len * wt) tmp.resize(kBlock * wt);
        CastSpan(base.dtype, base.data + i * wb, t.dtype, tmp.data(), len, r);
        if (std::memcmp(tmp.data(), t.data + i * wt, len * wt) != 0)
          miss[k] = CountChangedElems(t.data + i * wt, tmp.data(), len, wt, 1);
      },
      threads);
  uint64_t total = 0;
  for (uint64_t m : miss) total += m;
  return total;
}

// Uninitialised scratch for a prediction (every byte is written before use).
struct Scratch {
  std::unique_ptr<uint8_t[]> p;
  explicit Scratch(size_t n) : p(n ? new (std::nothrow) uint8_t[n] : nullptr) {}
};

// Best delta codec and best standalone codec among the estimates.
void Best(const std::vector<std::pair<Codec, uint64_t>>& est, Codec* delta, uint64_t* delta_size, Codec* alone,
          uint64_t* alone_size) {
  *delta_size = *alone_size = UINT64_MAX;
  for (auto& e : est) {
    if (IsDeltaCodec(e.first) && e.second < *delta_size) {
      *delta = e.first;
      *delta_size = e.second;
    }
    if (!IsDeltaCodec(e.first) && e.second < *alone_size) {
      *alone = e.first;
      *alone_size = e.second;
    }
  }
}

// Encodes t without a base (the automatic fallback), with codec c (or auto).
Err Standalone(const TensorView& t, const EncodeParams& p, int codec, EncodeResult* res) {
  EncodeParams q = p;
  q.codec = codec;
  q.base_id.clear();
  return Encode(t, nullptr, q, res);
}

// One chunked section: u64 length, then the chunk table and bodies.
void PutSection(std::vector<uint8_t>* payload, Codec c, const TensorView& t, const uint8_t* b, uint32_t chunk,
                int level, int threads) {
  std::vector<std::vector<uint8_t>> parts;
  if (t.nbytes) EncodeLosslessChunks(c, t, b, chunk, level, threads, &parts);
  size_t len = 4 * parts.size();
  for (auto& x : parts) len += x.size();
  PutU64(*payload, len);
  JoinChunks(parts, payload);
  ReleaseChunks(&parts);
}

Err Finish(Codec c, const TensorView& t, const Digest128& id, const Digest128& base_id, const EncodeParams& p,
           uint32_t chunk, const std::vector<uint8_t>& params, const std::vector<uint8_t>& payload,
           EncodeResult* res, const uint8_t* fields = nullptr) {
  std::vector<uint8_t> head;
  WriteObjectHeader(&head, c, t, true, p.level, chunk, id, base_id, params, payload.size(), fields);
  res->bytes = BigBuffer::Take(head.size() + payload.size());
  if (!res->bytes.data())
    return Err::Make(Status::OutOfMemory, "cannot allocate " + std::to_string(head.size() + payload.size()) +
                                              " bytes for the encoded object");
  std::memcpy(res->bytes.data(), head.data(), head.size());
  if (!payload.empty()) std::memcpy(res->bytes.data() + head.size(), payload.data(), payload.size());
  res->codec = c;
  res->lossy = false;
  res->max_abs_error = res->rel_l2_error = 0;
  res->id = id;
  return Err::Ok();
}

// A pure cast (empty residual): SPARSE_UPDATE chunks with no positions (a u32 0
// each); decode casts straight into its output and has nothing to patch. Needs
// only t's dtype and shape (not its data, nor the base's).
Err PureCastObject(const TensorView& t, DType base_dtype, CastRounding rounding, const Digest128& id,
                   const Digest128& base_id, const EncodeParams& p, uint32_t chunk, EncodeResult* res) {
  const uint64_t n = t.nbytes / DTypeSize(t.dtype);
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<uint8_t> payload;
  payload.reserve(size_t(8 * nchunks));
  for (uint64_t k = 0; k < nchunks; ++k) PutU32(payload, 4);
  for (uint64_t k = 0; k < nchunks; ++k) PutU32(payload, 0);
  const CastFields f(base_dtype, rounding, Codec::SPARSE_UPDATE, 0);
  return Finish(Codec::CAST, t, id, base_id, p, chunk, {}, payload, res, f.b);
}

Err EncodeCast(const TensorView& t, const TensorView& base, const EncodeParams& p, uint32_t chunk,
               const Digest128& id, const Digest128& base_id, EncodeResult* res) {
  const bool automatic = p.codec == kCodecAuto;
  const size_t w = DTypeSize(t.dtype);
  const uint64_t n = t.nbytes / w;
  const CastRounding rounding = ChooseRounding(t, base);
  const uint64_t residual = CastMismatches(t, base, rounding, p.threads);
  if (residual == 0) return PureCastObject(t, base.dtype, rounding, id, base_id, p, chunk, res);
  Scratch pred(t.nbytes);
  if (t.nbytes && !pred.p) return Err::Make(Status::OutOfMemory, "cannot allocate the cast of the base");
  CastTensor(base.dtype, base.data, t.dtype, pred.p.get(), size_t(n), rounding, p.threads);
  std::vector<std::pair<Codec, uint64_t>> est;
  CORAL_TRY(EstimateLossless(t, pred.p.get(), p, &est));
  Codec inner = Codec::SPARSE_UPDATE, alone = Codec::RAW;
  uint64_t inner_size, alone_size;
  Best(est, &inner, &inner_size, &alone, &alone_size);
  if (automatic && alone_size < inner_size) return Standalone(t, p, int(alone), res);
  const CastFields fields(base.dtype, rounding, inner, residual);
  std::vector<std::vector<uint8_t>> parts;
  EncodeLosslessChunks(inner, t, pred.p.get(), chunk, p.level, p.threads, &parts);
  std::vector<uint8_t> payload;
  JoinChunks(parts, &payload);
  ReleaseChunks(&parts);
  if (automatic && payload.size() > t.nbytes) return Standalone(t, p, int(Codec::RAW), res);
  return Finish(Codec::CAST, t, id, base_id, p, chunk, {}, payload, res, fields.b);
}

// Mean differing bits per sampled element of target rows [ts, ts+k) against
// base rows [bs, bs+k): up to 64 spread rows, up to 256 elements each.
double AlignmentCost(const TensorView& t, const TensorView& base, uint64_t row, uint64_t ts, uint64_t bs,
                     uint64_t k) {
  const size_t w = DTypeSize(t.dtype);
  const uint64_t rows = std::min<uint64_t>(64, k), elems = std::min<uint64_t>(256, row);
  uint64_t bits = 0, count = 0;
  for (uint64_t j = 0; j < rows; ++j) {
    const uint64_t r = rows == 1 ? 0 : (k - 1) * j / (rows - 1);
    const uint8_t* a = t.data + (ts + r) * row * w;
    const uint8_t* b = base.data + (bs + r) * row * w;
    for (uint64_t i = 0; i < elems * w; ++i) bits += uint64_t(__builtin_popcount(unsigned(a[i] ^ b[i])));
    count += elems;
  }
  return count ? double(bits) / double(count) : 1e9;
}

// The shared block of rows: offset candidates are "aligned at the start",
// "aligned at the end", and the offsets where the first or last row of one
// tensor is nearest a row of the other (fewest differing bits over its first
// bytes: a fine-tuned row stays near its original); the one whose shared rows
// differ least (sampled) wins, the longer block on ties.
void ChooseRows(const TensorView& t, const TensorView& base, uint64_t row, uint64_t* ts, uint64_t* bs, uint64_t* k) {
  const size_t rb = size_t(row) * DTypeSize(t.dtype);
  const size_t probe = std::min<size_t>(rb, 128);
  const int64_t vt = int64_t(t.shape[0]), vb = int64_t(base.shape[0]);
  std::vector<int64_t> offs = {0, vb - vt};  // offset d: target row i <-> base row i + d
  auto nearest = [&](const uint8_t* needle, const uint8_t* hay, int64_t rows) -> int64_t {
    int64_t best_row = -1;
    uint64_t best = UINT64_MAX;
    for (int64_t r = 0; r < rows && best; ++r) {
      const uint8_t* h = hay + size_t(r) * rb;
      uint64_t bits = 0;
      for (size_t i = 0; i < probe; ++i) bits += uint64_t(__builtin_popcount(unsigned(needle[i] ^ h[i])));
      if (bits < best) {
        best = bits;
        best_row = r;
      }
    }
    return best_row;
  };
  if (vt > 0 && vb > 0) {
    int64_t r = nearest(t.data, base.data, vb);  // target row 0 ~ base row r
    if (r >= 0) offs.push_back(r);
    r = nearest(base.data, t.data, vt);  // base row 0 ~ target row r
    if (r >= 0) offs.push_back(-r);
    r = nearest(t.data + size_t(vt - 1) * rb, base.data, vb);  // last target row ~ base row r
    if (r >= 0) offs.push_back(r - (vt - 1));
  }
  double best = 0;
  *k = 0;
  for (int64_t d : offs) {
    const int64_t lo = std::max<int64_t>(0, -d), hi = std::min<int64_t>(vt, vb - d);
    if (hi <= lo) continue;
    const uint64_t kk = uint64_t(hi - lo);
    const double c = AlignmentCost(t, base, row, uint64_t(lo), uint64_t(lo + d), kk);
    if (*k == 0 || c < best || (c == best && kk > *k)) {
      best = c;
      *k = kk;
      *ts = uint64_t(lo);
      *bs = uint64_t(lo + d);
    }
  }
}

TensorView Rows(const TensorView& v, uint64_t start, uint64_t count) {
  TensorView r;
  r.dtype = v.dtype;
  r.shape = v.shape;
  r.shape[0] = count;
  const size_t rb = v.shape[0] ? v.nbytes / v.shape[0] : 0;
  r.data = v.data + start * rb;
  r.nbytes = count * rb;
  return r;
}

// The standalone codec for new rows (PLANES or ZSTD, by estimate).
Codec NewRowsCodec(const TensorView& v, const EncodeParams& p) {
  if (!v.nbytes) return Codec::PLANES;
  std::vector<std::pair<Codec, uint64_t>> est;
  if (!EstimateLossless(v, nullptr, p, &est).ok()) return Codec::PLANES;
  Codec c = Codec::PLANES;
  uint64_t best = UINT64_MAX;
  for (auto& e : est)
    if (IsStandaloneChunked(e.first) && e.second < best) {
      best = e.second;
      c = e.first;
    }
  return c;
}

Err EncodeRows(const TensorView& t, const TensorView& base, const EncodeParams& p, uint32_t chunk,
               const Digest128& id, const Digest128& base_id, EncodeResult* res) {
  const bool automatic = p.codec == kCodecAuto;
  const uint64_t row = t.shape[0] ? Numel(t.shape) / t.shape[0] : 0;
  uint64_t ts = 0, bs = 0, k = 0;
  if (row) ChooseRows(t, base, row, &ts, &bs, &k);
  if (k == 0) {
    if (automatic) return Standalone(t, p, kCodecAuto, res);
    return Err::Make(Status::InvalidArgument, "ROWS: the tensor and its base share no rows");
  }
  const TensorView shared = Rows(t, ts, k), pre = Rows(t, 0, ts), suf = Rows(t, ts + k, t.shape[0] - ts - k);
  const uint8_t* sb = Rows(base, bs, k).data;
  std::vector<std::pair<Codec, uint64_t>> est;
  CORAL_TRY(EstimateLossless(shared, sb, p, &est));
  Codec inner = Codec::SPARSE_UPDATE, alone = Codec::RAW;
  uint64_t inner_size, alone_size;
  Best(est, &inner, &inner_size, &alone, &alone_size);
  if (automatic && alone_size < inner_size) return Standalone(t, p, kCodecAuto, res);
  const Codec cpre = NewRowsCodec(pre, p), csuf = NewRowsCodec(suf, p);
  std::vector<uint8_t> params;
  PutU64(params, base.shape[0]);
  PutU64(params, ts);
  PutU64(params, bs);
  PutU64(params, k);
  PutU8(params, uint8_t(cpre));
  PutU8(params, uint8_t(inner));
  PutU8(params, uint8_t(csuf));
  PutU8(params, 0);
  PutU64(params, CountChangedElems(shared.data, sb, Numel(shared.shape), DTypeSize(t.dtype), p.threads));
  std::vector<uint8_t> payload;
  PutSection(&payload, cpre, pre, nullptr, chunk, p.level, p.threads);
  PutSection(&payload, inner, shared, sb, chunk, p.level, p.threads);
  PutSection(&payload, csuf, suf, nullptr, chunk, p.level, p.threads);
  if (automatic && payload.size() > t.nbytes) return Standalone(t, p, int(Codec::RAW), res);
  return Finish(Codec::ROWS, t, id, base_id, p, chunk, params, payload, res);
}

uint64_t GetU64At(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(b[at + i]) << (8 * i);
  return v;
}

// Decodes one chunked section of `rows` rows into out (base rows at b, or none).
Err GetSection(Reader& r, const ObjectInfo& info, Codec c, uint64_t rows, const uint8_t* b, uint8_t* out,
               int threads) {
  uint64_t len;
  const uint8_t* body;
  if (!r.U64(&len) || len > r.left() || !r.Bytes(size_t(len), &body)) return Corrupt("truncated ROWS section");
  ObjectInfo sub = info;
  sub.codec = c;
  sub.shape[0] = rows;
  sub.numel = info.shape[0] ? info.numel / info.shape[0] * rows : 0;
  sub.nbytes = sub.numel * DTypeSize(info.dtype);
  if (sub.numel == 0) return len == 0 ? Err::Ok() : Corrupt("ROWS section for no rows is not empty");
  return DecodeChunkedPayload(sub, body, size_t(len), b, out, threads);
}

}  // namespace

bool CastParamsFromHeaderFields(const uint8_t fields[16], std::vector<uint8_t>* params) {
  if (!(fields[0] & kCastCompact)) return false;
  uint64_t residual = 0;
  for (int i = 0; i < 8; ++i) residual |= uint64_t(fields[1 + i]) << (8 * i);
  for (int i = 9; i < 16; ++i)
    if (fields[i]) return false;
  *params = CompactCastParams(fields[0], residual);
  return true;
}

Err ParseDerived(const ObjectInfo& info, DerivedInfo* d) {
  const auto& pr = info.params;
  d->base_shape = info.shape;
  d->base_dtype = info.dtype;
  if (info.codec == Codec::CAST) {
    if (pr.empty()) return Corrupt("CAST params are empty");
    if (pr[0] & kCastCompact) {
      // Compact layout: 1 d d r 0 0 i i, then the residual as minimal LEB128 filling the params.
      if (pr[0] & 0x0C) return Corrupt("CAST params have reserved bits set");
      d->base_dtype = DType((pr[0] >> 5) & 3);
      d->rounding = (pr[0] >> 4) & 1;
      d->inner = Codec(uint8_t(Codec::DELTA_XOR) + (pr[0] & 3));
      uint64_t v = 0;
      size_t i = 1;
      for (int shift = 0;; shift += 7, ++i) {
        if (i >= pr.size() || shift > 63) return Corrupt("CAST residual is truncated");
        const uint64_t b = pr[i] & 0x7F;
        if (shift == 63 && b > 1) return Corrupt("CAST residual overflows");
        v |= b << shift;
        if (!(pr[i] & 0x80)) {
          if (b == 0 && i > 1) return Corrupt("CAST residual is not minimally encoded");
          break;
        }
      }
      if (i + 1 != pr.size()) return Corrupt("CAST params have the wrong size");
      d->residual = v;
    } else {
      if (pr.size() != kCastParamsV0) return Corrupt("CAST params have the wrong size");
      if (!ValidDType(pr[0])) return Corrupt("CAST base dtype is unknown");
      d->base_dtype = DType(pr[0]);
      if (pr[1] >= kCastRoundingCount) return Corrupt("CAST rounding is unknown");
      d->rounding = pr[1];
      if (!IsDeltaCodec(Codec(pr[2])) || pr[3] != 0) return Corrupt("CAST inner codec is not a delta codec");
      d->inner = Codec(pr[2]);
      d->residual = GetU64At(pr, 4);
    }
    if (!CastSupported(d->base_dtype, info.dtype)) return Corrupt("CAST between unsupported dtypes");
    if (d->residual > info.numel) return Corrupt("CAST residual larger than the tensor");
  } else if (info.codec == Codec::ROWS) {
    if (pr.size() != kRowsParams) return Corrupt("ROWS params have the wrong size");
    if (info.shape.empty()) return Corrupt("ROWS object without a first dimension");
    const uint64_t base_rows = GetU64At(pr, 0);
    d->t_start = GetU64At(pr, 8);
    d->b_start = GetU64At(pr, 16);
    d->shared = GetU64At(pr, 24);
    const uint64_t vt = info.shape[0];
    if (d->shared == 0 || d->t_start > vt || d->shared > vt - d->t_start || d->b_start > base_rows ||
        d->shared > base_rows - d->b_start)
      return Corrupt("ROWS row ranges out of bounds");
    d->inner_prefix = Codec(pr[32]);
    d->inner = Codec(pr[33]);
    d->inner_suffix = Codec(pr[34]);
    if (!IsStandaloneChunked(d->inner_prefix) || !IsStandaloneChunked(d->inner_suffix) ||
        !(IsDeltaCodec(d->inner) || IsStandaloneChunked(d->inner)) || pr[35] != 0)
      return Corrupt("ROWS inner codecs are invalid");
    d->residual = GetU64At(pr, 36);
    d->base_shape[0] = base_rows;
  } else {
    return Err::Make(Status::Internal, "not a derived codec");
  }
  uint64_t bn = info.numel;
  if (info.codec == Codec::ROWS) {
    // Elements per row: the product of the trailing dimensions (never zero-sized here:
    // the encoder makes no ROWS object for empty rows, and then any base size works).
    uint64_t row = 1;
    for (size_t i = 1; i < info.shape.size(); ++i) row *= info.shape[i];
    if (row && d->base_shape[0] > (uint64_t(1) << 53) / row) return Corrupt("base shape too large");
    bn = row * d->base_shape[0];
  }
  d->base_nbytes = bn * DTypeSize(d->base_dtype);
  return Err::Ok();
}

Err DerivedEncode(const TensorView& t, const TensorView& base, const EncodeParams& p, EncodeResult* res) {
  CORAL_TRY(CheckView(t, "tensor"));
  CORAL_TRY(CheckView(base, "base"));
  if (p.codec != kCodecAuto && p.codec != int(Codec::CAST) && p.codec != int(Codec::ROWS))
    return Err::Make(Status::InvalidArgument, std::string("codec ") +
                                                  (p.codec >= 0 && p.codec < kCodecCount ? CodecName(Codec(p.codec)) : "?") +
                                                  " needs a base of the tensor's dtype and shape");
  uint32_t chunk = p.chunk_elems ? p.chunk_elems : kDefaultChunkElems;
  if (chunk > kMaxChunkElems) return Err::Make(Status::InvalidArgument, "chunkElems must be at most 2^22");
  bool cast = base.dtype != t.dtype;
  if (cast) {
    if (!CastSupported(base.dtype, t.dtype))
      return Err::Make(Status::InvalidArgument, std::string("no cast from ") + DTypeName(base.dtype) + " to " +
                                                    DTypeName(t.dtype) + " (CAST takes F64, F32, F16, BF16)");
    if (base.shape != t.shape) return Err::Make(Status::InvalidArgument, "a CAST base must have the tensor's shape");
    if (p.codec == int(Codec::ROWS)) return Err::Make(Status::InvalidArgument, "a ROWS base must have the tensor's dtype");
  } else {
    if (p.codec == int(Codec::CAST)) return Err::Make(Status::InvalidArgument, "a CAST base must have another dtype");
    bool rows_ok = !t.shape.empty() && base.shape.size() == t.shape.size() &&
                   std::equal(t.shape.begin() + 1, t.shape.end(), base.shape.begin() + 1);
    if (!rows_ok)
      return Err::Make(Status::InvalidArgument,
                       "base must have the tensor's dtype and shape, another float dtype (CAST) or another first "
                       "dimension (ROWS)");
  }
  Digest128 id{}, base_id{};
  CORAL_TRY(ContentId(t.data, t.nbytes, t.dtype, t.shape, &id, p.threads));
  CORAL_TRY(ContentId(base.data, base.nbytes, base.dtype, base.shape, &base_id, p.threads));
  if (!p.base_id.empty() && p.base_id != base_id.Hex())
    return Err::Make(Status::InvalidArgument,
                     "base id " + p.base_id + " does not match the base tensor (its id is " + base_id.Hex() + ")");
  try {
    return cast ? EncodeCast(t, base, p, chunk, id, base_id, res) : EncodeRows(t, base, p, chunk, id, base_id, res);
  } catch (const std::bad_alloc&) {
    return Err::Make(Status::OutOfMemory, "out of memory encoding a derived delta");
  }
}

Err DerivedDecode(const ObjectInfo& info, const DerivedInfo& d, const uint8_t* payload, size_t pn,
                  const uint8_t* base, uint8_t* out, int threads) {
  if (info.codec == Codec::CAST) {
    ObjectInfo sub = info;
    sub.codec = d.inner;
    if (d.inner == Codec::SPARSE_UPDATE) {
      // The cast goes straight into out; the sparse residual patches it in place.
      CastTensor(d.base_dtype, base, info.dtype, out, size_t(info.numel), CastRounding(d.rounding), threads);
      return DecodeChunkedPayload(sub, payload, pn, out, out, threads);
    }
    Scratch pred(size_t(info.nbytes));
    if (info.nbytes && !pred.p) return Err::Make(Status::OutOfMemory, "cannot allocate the cast of the base");
    CastTensor(d.base_dtype, base, info.dtype, pred.p.get(), size_t(info.numel), CastRounding(d.rounding), threads);
    return DecodeChunkedPayload(sub, payload, pn, pred.p.get(), out, threads);
  }
  const size_t rb = info.shape[0] ? size_t(info.nbytes / info.shape[0]) : 0;
  Reader r(payload, pn);
  const uint64_t suffix = info.shape[0] - d.t_start - d.shared;
  CORAL_TRY(GetSection(r, info, d.inner_prefix, d.t_start, nullptr, out, threads));
  CORAL_TRY(GetSection(r, info, d.inner, d.shared, IsDeltaCodec(d.inner) ? base + d.b_start * rb : nullptr,
                       out + d.t_start * rb, threads));
  CORAL_TRY(GetSection(r, info, d.inner_suffix, suffix, nullptr, out + (d.t_start + d.shared) * rb, threads));
  if (r.left() != 0) return Corrupt("trailing bytes after the ROWS sections");
  return Err::Ok();
}

}  // namespace codec

Err EncodePureCast(DType dtype, const std::vector<uint64_t>& shape, const Digest128& id, DType base_dtype,
                   const Digest128& base_id, int rounding, const EncodeParams& p, EncodeResult* res) {
  if (!ValidDType(int(base_dtype)) || !CastSupported(base_dtype, dtype))
    return Err::Make(Status::InvalidArgument, "a pure CAST object needs two distinct float dtypes (F64, F32, F16, BF16)");
  if (rounding < 0 || rounding >= kCastRoundingCount) return Err::Make(Status::InvalidArgument, "unknown cast rounding");
  if (CastIsWidening(base_dtype, dtype) && rounding != int(CastRounding::kNearestEven))
    return Err::Make(Status::InvalidArgument, "a widening cast records RNE");
  uint32_t chunk = p.chunk_elems ? p.chunk_elems : kDefaultChunkElems;
  if (chunk > kMaxChunkElems) return Err::Make(Status::InvalidArgument, "chunkElems must be at most 2^22");
  TensorView t;
  t.dtype = dtype;
  t.shape = shape;
  uint64_t n = 1;
  for (uint64_t d : shape) {
    if (d != 0 && n > (uint64_t(1) << 53) / d) return Err::Make(Status::InvalidArgument, "shape too large");
    n *= d;
  }
  if (shape.size() > 32) return Err::Make(Status::InvalidArgument, "tensors are limited to 32 dimensions");
  t.nbytes = size_t(n * DTypeSize(dtype));
  try {
    return codec::PureCastObject(t, base_dtype, CastRounding(rounding), id, base_id, p, chunk, res);
  } catch (const std::bad_alloc&) {
    return Err::Make(Status::OutOfMemory, "out of memory writing a CAST object");
  }
}

}  // namespace coral
