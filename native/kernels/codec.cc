// Container, lossless codecs, automatic choice. See codec.h for the contract
// and docs/codecs.md for the format.
#include "kernels/codec.h"


#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>

#include "kernels/codec_internal.h"
#include "kernels/parallel.h"
#include "kernels/planes.h"
#include "kernels/planes_impl.h"

namespace coral {

using namespace codec;

const char* CodecName(Codec c) {
  static const char* const kNames[kCodecCount] = {
      "RAW",        "ZSTD",        "PLANES",      "DELTA_XOR",       "DELTA_ORDERED", "DELTA_EXPMANT",
      "SPARSE_UPDATE", "QUANT_INT8", "QUANT_INT16", "SPARSE_TOPK", "PER_AXIS_SCALED", "LOW_RANK",
      "CAST",       "ROWS"};
  int i = static_cast<int>(c);
  return i < kCodecCount ? kNames[i] : "UNKNOWN";
}
bool CodecIsLossy(Codec c) {
  return static_cast<int>(c) >= static_cast<int>(Codec::QUANT_INT8) &&
         static_cast<int>(c) <= static_cast<int>(Codec::LOW_RANK);
}
bool CodecIsDerived(Codec c) { return c == Codec::CAST || c == Codec::ROWS; }
bool CodecNeedsBase(Codec c) {
  return c == Codec::DELTA_XOR || c == Codec::DELTA_ORDERED || c == Codec::DELTA_EXPMANT ||
         c == Codec::SPARSE_UPDATE || CodecIsDerived(c);
}

namespace {

constexpr uint8_t kMagic[4] = {'C', 'R', 'L', 'O'};
constexpr uint8_t kVersion = 1;
constexpr size_t kFixedHeader = 64;
constexpr uint32_t kMaxNdim = 32;
constexpr uint32_t kMaxParams = 4096;
enum : uint8_t { kFlagBase = 1, kFlagLossy = 2 };

// Codecs whose payload is framed in chunks of `chunk_elems` elements (header field).
bool IsChunked(Codec c) {
  return (c != Codec::RAW && !CodecIsLossy(c)) || c == Codec::SPARSE_TOPK || c == Codec::QUANT_INT8 ||
         c == Codec::QUANT_INT16;
}

// ---- element transforms --------------------------------------------------------------------
// T<U> and the transforms of the element codecs live in kernels/planes_impl.h;
// the fused transform + plane split and its inverse in kernels/planes.h.
using planes_impl::T;

template <typename U>
void Split(const U* tmp, size_t n, uint8_t* planes) {
  constexpr int w = sizeof(U);
  for (int p = 0; p < w; ++p) {
    const int shift = 8 * (w - 1 - p);
    uint8_t* dst = planes + size_t(p) * n;
    for (size_t i = 0; i < n; ++i) dst[i] = uint8_t(tmp[i] >> shift);
  }
}

template <typename U>
void Join(const uint8_t* const* planes, size_t n, U* tmp) {
  constexpr int w = sizeof(U);
  {
    const uint8_t* src = planes[0];
    const int shift = 8 * (w - 1);
    for (size_t i = 0; i < n; ++i) tmp[i] = U(U(src[i]) << shift);
  }
  for (int p = 1; p < w; ++p) {
    const int shift = 8 * (w - 1 - p);
    const uint8_t* src = planes[p];
    for (size_t i = 0; i < n; ++i) tmp[i] = U(tmp[i] | U(U(src[i]) << shift));
  }
}

struct Scratch {
  std::vector<uint8_t> a, b;
  std::vector<std::vector<uint8_t>> planes;
};
Scratch& Tls() {
  thread_local Scratch s;
  return s;
}

// Transforms a chunk against its base and splits it into byte planes in the
// calling thread's scratch: dst[p] (n bytes) is plane p, most significant first.
void SplitToScratch(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* dst[8]) {
  const size_t w = DTypeSize(d);
  Scratch& s = Tls();
  if (s.b.size() < n * w) s.b.resize(n * w);
  for (size_t p = 0; p < w; ++p) dst[p] = s.b.data() + p * n;
  coral::planes::ForwardSplit(c, d, t, b, n, dst);
}

// The stream hint of plane p: the top plane (exponents, signs of deltas) is
// always worth a coder; the others may be mantissa noise.
StreamHint PlaneHint(size_t p) { return p == 0 ? kHintCompress : kHintAuto; }

// The plane codecs (PLANES and the element deltas): transform + byte-plane
// split, then one stream per plane. With threads > 1 the planes of the chunk
// are coded on different threads (a tensor with fewer chunks than threads,
// see PlaneParallel); the bytes are the same either way.
void EncodePlanes(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, int level, int threads,
                  std::vector<uint8_t>* out) {
  const size_t w = DTypeSize(d);
  uint8_t* dst[8];
  SplitToScratch(c, d, t, b, n, dst);
  if (threads == 1) {
    for (size_t p = 0; p < w; ++p) PutStream(*out, dst[p], n, level, PlaneHint(p));
    return;
  }
  std::vector<std::vector<uint8_t>> streams(w);
  ParallelFor(w, [&](size_t p) { PutStream(streams[p], dst[p], n, level, PlaneHint(p)); }, threads);
  for (auto& st : streams) out->insert(out->end(), st.begin(), st.end());
}

Err DecodePlanes(Codec c, DType d, Reader& r, const uint8_t* b, size_t n, uint8_t* out, int threads) {
  const size_t w = DTypeSize(d);
  // Locate the w streams (u8 mode, u32 raw length, u32 stored length, bytes).
  std::vector<Reader> streams;
  for (size_t p = 0; p < w; ++p) {
    const size_t at = r.pos;
    uint8_t mode;
    uint32_t raw, stored;
    const uint8_t* body;
    if (!r.U8(&mode) || !r.U32(&raw) || !r.U32(&stored) || !r.Bytes(stored, &body)) return Corrupt("truncated stream");
    streams.emplace_back(r.p + at, r.pos - at);
  }
  // The calling thread's plane buffers (it waits for the loops), bound here:
  // naming Tls() inside the lambdas would give each pool thread its own.
  std::vector<std::vector<uint8_t>>& bufs = Tls().planes;
  if (bufs.size() < w) bufs.resize(w);
  const uint8_t* ptr[8];
  std::vector<Err> errs(w);
  ParallelFor(w, [&](size_t p) { errs[p] = GetStream(streams[p], n, bufs[p], &ptr[p]); }, threads);
  for (auto& e : errs) CORAL_TRY(e);
  // The join, in cache-sized element blocks across the threads.
  constexpr size_t kJoinBlock = size_t(1) << 15;
  ParallelFor(
      (n + kJoinBlock - 1) / kJoinBlock,
      [&](size_t k) {
        const size_t i = k * kJoinBlock, m = std::min(kJoinBlock, n - i);
        const uint8_t* src[8];
        for (size_t p = 0; p < w; ++p) src[p] = ptr[p] + i;
        coral::planes::JoinInverse(c, d, src, b ? b + i * w : nullptr, m, out + i * w);
      },
      threads);
  return Err::Ok();
}

// The plane codecs' size for a chunk, estimated plane by plane
// (EstimateStream) instead of encoding it: the automatic choice needs only
// their ranking.
StreamEstimate EstimateElemChunk(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, int level) {
  uint8_t* dst[8];
  SplitToScratch(c, d, t, b, n, dst);
  StreamEstimate total{0, 0};
  for (size_t p = 0; p < DTypeSize(d); ++p) {
    StreamEstimate e = EstimateStream(dst[p], n, level, PlaneHint(p));
    total.per_data += e.per_data;
    total.fixed += e.fixed;
  }
  return total;
}

template <typename U>
void XorPositions(const uint8_t* t, const uint8_t* b, uint64_t start, const std::vector<uint64_t>& pos, U* tmp) {
  for (size_t k = 0; k < pos.size(); ++k) {
    size_t i = size_t(pos[k] - start);
    tmp[k] = b ? U(T<U>::Load(t, i) ^ T<U>::Load(b, i)) : T<U>::Load(t, i);
  }
}

template <typename U>
void ApplyPositions(const U* tmp, uint64_t start, const std::vector<uint64_t>& pos, uint8_t* out) {
  for (size_t k = 0; k < pos.size(); ++k) {
    size_t i = size_t(pos[k] - start);
    T<U>::Store(out, i, U(T<U>::Load(out, i) ^ tmp[k]));
  }
}

#define CORAL_BY_WIDTH(w, FN, ...)                    \
  switch (w) {                                        \
    case 1: FN<uint8_t>(__VA_ARGS__); break;          \
    case 2: FN<uint16_t>(__VA_ARGS__); break;         \
    case 4: FN<uint32_t>(__VA_ARGS__); break;         \
    default: FN<uint64_t>(__VA_ARGS__); break;        \
  }

// Elements whose bytes differ between t and b (n elements of w bytes).
template <typename U>
size_t CountChangedT(const uint8_t* t, const uint8_t* b, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; ++i) c += T<U>::Load(t, i) != T<U>::Load(b, i);
  return c;
}
size_t CountChanged(const uint8_t* t, const uint8_t* b, size_t n, size_t w) {
  switch (w) {
    case 1: return CountChangedT<uint8_t>(t, b, n);
    case 2: return CountChangedT<uint16_t>(t, b, n);
    case 4: return CountChangedT<uint32_t>(t, b, n);
    default: return CountChangedT<uint64_t>(t, b, n);
  }
}

// Changed positions of a chunk, scanning 8 bytes at a time and skipping
// unchanged runs (the common case for sparse updates).
template <typename U>
void ChangedPositionsT(const uint8_t* t, const uint8_t* b, uint64_t start, size_t n, std::vector<uint64_t>* pos) {
  constexpr size_t per = 8 / sizeof(U);
  size_t i = 0;
  for (; i + per <= n; i += per) {
    uint64_t x, y;
    std::memcpy(&x, t + i * sizeof(U), 8);
    std::memcpy(&y, b + i * sizeof(U), 8);
    if (x == y) continue;
    for (size_t k = 0; k < per; ++k)
      if (T<U>::Load(t, i + k) != T<U>::Load(b, i + k)) pos->push_back(start + i + k);
  }
  for (; i < n; ++i)
    if (T<U>::Load(t, i) != T<U>::Load(b, i)) pos->push_back(start + i);
}

void EncodeChunk(Codec c, DType d, const uint8_t* t, const uint8_t* b, uint64_t start, size_t n, int level,
                 std::vector<uint8_t>* out) {
  const size_t w = DTypeSize(d);
  switch (c) {
    case Codec::ZSTD: PutStream(*out, t, n * w, level, kHintZstd); break;
    case Codec::SPARSE_UPDATE: {
      std::vector<uint64_t> pos;
      CORAL_BY_WIDTH(w, ChangedPositionsT, t, b, start, n, &pos);
      SparseEncodeChunk(t, b, d, start, n, pos, level, out);
      break;
    }
    default: EncodePlanes(c, d, t, b, n, level, 1, out);
  }
}

Err DecodeChunk(Codec c, DType d, Reader& r, const uint8_t* b, uint64_t start, size_t n, uint8_t* out) {
  const size_t w = DTypeSize(d);
  switch (c) {
    case Codec::ZSTD: {
      const uint8_t* p;
      Scratch& s = Tls();
      if (s.planes.empty()) s.planes.resize(1);
      CORAL_TRY(GetStream(r, n * w, s.planes[0], &p));
      std::memcpy(out, p, n * w);
      return Err::Ok();
    }
    case Codec::SPARSE_UPDATE:
    case Codec::SPARSE_TOPK: {
      Scratch& s = Tls();
      return SparseDecodeChunk(r, b, d, start, n, out, s.b);
    }
    default: return DecodePlanes(c, d, r, b, n, out, 1);
  }
}


uint64_t Numel(const std::vector<uint64_t>& shape, bool* overflow) {
  uint64_t n = 1;
  *overflow = false;
  for (uint64_t d : shape) {
    if (d != 0 && n > (uint64_t(1) << 53) / d) *overflow = true;
    n *= d;
  }
  if (*overflow) {
    // a zero dimension anywhere still makes it empty
    for (uint64_t d : shape)
      if (d == 0) {
        *overflow = false;
        return 0;
      }
  }
  return n;
}

// Chunk output buffers are recycled through a small process-wide pool: a
// fresh 1 MiB buffer per chunk and call meant first-touch page faults (and
// the kernel zeroing those pages) on every encode, which cost about as much
// as the entropy coding. The pool keeps at most kPoolBytes of capacity: two
// encodes of 16 MiB tensors in flight; more was resident memory that counted
// against a command's bound (3 x the largest tensor + 256 MiB) with 64 MiB tensors.
constexpr size_t kPoolBytes = size_t(32) << 20;
struct BufPool {
  std::mutex mu;
  std::vector<std::vector<uint8_t>> free;
  size_t bytes = 0;
};
BufPool& Pool() {
  static BufPool* p = new BufPool;  // never destroyed: pool threads may outlive static teardown
  return *p;
}
std::vector<uint8_t> TakeBuf(size_t want) {
  BufPool& p = Pool();
  std::lock_guard<std::mutex> lk(p.mu);
  for (size_t i = p.free.size(); i-- > 0;)
    if (p.free[i].capacity() >= want) {
      std::vector<uint8_t> v = std::move(p.free[i]);
      p.free.erase(p.free.begin() + std::ptrdiff_t(i));
      p.bytes -= v.capacity();
      v.clear();
      return v;
    }
  return {};
}
void GiveBufs(std::vector<std::vector<uint8_t>>* parts) {
  BufPool& p = Pool();
  std::lock_guard<std::mutex> lk(p.mu);
  for (auto& v : *parts)
    if (v.capacity() && p.bytes + v.capacity() <= kPoolBytes) {
      p.bytes += v.capacity();
      p.free.push_back(std::move(v));
    }
  parts->clear();
}

// A tensor with fewer chunks than threads would leave threads idle: its
// chunks are coded one at a time, each with its planes spread over the threads.
bool PlaneParallel(Codec c, DType d, uint64_t nchunks, int threads) {
  const bool planes = c == Codec::PLANES || c == Codec::DELTA_XOR || c == Codec::DELTA_ORDERED ||
                      c == Codec::DELTA_EXPMANT;
  const int t = threads ? threads : MaxThreads();
  return planes && DTypeSize(d) > 1 && nchunks < uint64_t(t);
}

// Chunked lossless payload; the chunk split depends only on chunk_elems.
void EncodeChunkedParts(Codec c, const TensorView& t, const uint8_t* b, uint32_t chunk, int level, int threads,
                        std::vector<std::vector<uint8_t>>* parts) {
  const size_t w = DTypeSize(t.dtype);
  const uint64_t n = t.nbytes / w;
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  parts->assign(nchunks, {});
  const bool by_plane = PlaneParallel(c, t.dtype, nchunks, threads);
  auto one = [&](size_t k) {
    uint64_t s = uint64_t(k) * chunk;
    size_t len = size_t(std::min<uint64_t>(chunk, n - s));
    const size_t want = len * w + 16 * w + 64;
    (*parts)[k] = TakeBuf(want);
    (*parts)[k].reserve(want);
    const uint8_t* tb = b ? b + s * w : nullptr;
    if (by_plane) EncodePlanes(c, t.dtype, t.data + s * w, tb, len, level, threads, &(*parts)[k]);
    else EncodeChunk(c, t.dtype, t.data + s * w, tb, s, len, level, &(*parts)[k]);
  };
  if (by_plane)
    for (size_t k = 0; k < nchunks; ++k) one(k);
  else
    ParallelFor(nchunks, one, threads);
}

Err DecodeChunked(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* b, uint8_t* out,
                  int threads) {
  const size_t w = DTypeSize(info.dtype);
  const uint64_t n = info.numel, chunk = info.chunk_elems;
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<std::pair<size_t, size_t>> spans;
  CORAL_TRY(SplitChunks(payload, pn, nchunks, &spans));
  std::vector<Err> errs(nchunks);
  std::atomic<bool> failed{false};
  const bool by_plane = PlaneParallel(info.codec, info.dtype, nchunks, threads);
  auto one = [&](size_t k) {
    if (failed.load(std::memory_order_relaxed)) return;
    uint64_t s = uint64_t(k) * chunk;
    size_t len = size_t(std::min<uint64_t>(chunk, n - s));
    Reader r(payload + spans[k].first, spans[k].second);
    Err e;
    try {
      const uint8_t* cb = b ? b + s * w : nullptr;
      e = by_plane ? DecodePlanes(info.codec, info.dtype, r, cb, len, out + s * w, threads)
                   : DecodeChunk(info.codec, info.dtype, r, cb, s, len, out + s * w);
      if (e.ok() && r.left() != 0) e = Corrupt("trailing bytes in chunk");
    } catch (const std::bad_alloc&) {
      e = Err::Make(Status::OutOfMemory, "out of memory decoding a chunk");
    }
    if (!e.ok()) {
      errs[k] = e;
      failed = true;
    }
  };
  if (by_plane)
    for (size_t k = 0; k < nchunks; ++k) one(k);
  else
    ParallelFor(nchunks, one, threads);
  for (auto& e : errs)
    if (!e.ok()) return e;
  return Err::Ok();
}

void WriteHeader(std::vector<uint8_t>* o, Codec c, const TensorView& t, bool has_base, bool lossy, int level,
                 uint32_t chunk, const Digest128& id, const Digest128& base_id, double max_abs, double rel,
                 const std::vector<uint8_t>& params, uint64_t payload_size, const uint8_t* fields = nullptr) {
  o->insert(o->end(), kMagic, kMagic + 4);
  PutU8(*o, kVersion);
  PutU8(*o, static_cast<uint8_t>(c));
  PutU8(*o, static_cast<uint8_t>(t.dtype));
  PutU8(*o, static_cast<uint8_t>(t.shape.size()));
  PutU8(*o, uint8_t((has_base ? kFlagBase : 0) | (lossy ? kFlagLossy : 0)));
  PutU8(*o, static_cast<uint8_t>(static_cast<int8_t>(std::max(-128, std::min(127, level)))));
  PutU16(*o, static_cast<uint16_t>(params.size()));
  PutU32(*o, chunk);
  o->insert(o->end(), id.bytes, id.bytes + 16);
  o->insert(o->end(), base_id.bytes, base_id.bytes + 16);
  if (fields) {
    o->insert(o->end(), fields, fields + 16);
  } else {
    PutF64(*o, max_abs);
    PutF64(*o, rel);
  }
  for (uint64_t d : t.shape) PutU64(*o, d);
  o->insert(o->end(), params.begin(), params.end());
  PutU64(*o, payload_size);
  uint32_t hc = static_cast<uint32_t>(Xxh3_64(o->data(), o->size()));
  PutU32(*o, hc);
}

bool SameId(const Digest128& a, const Digest128& b) { return std::memcmp(a.bytes, b.bytes, 16) == 0; }

// Samples for the automatic choice: about 1/64 of the tensor (at least 4Ki,
// at most 64Ki elements) in 4 evenly spaced windows, concatenated; the whole
// tensor when it is that small. Every candidate encodes the sample once, so
// the estimate costs roughly candidates/64 of an encode.
void BuildSample(const TensorView& t, const uint8_t* b, std::vector<uint8_t>* ts, std::vector<uint8_t>* bs) {
  const size_t w = DTypeSize(t.dtype);
  const uint64_t n = t.nbytes / w;
  const uint64_t nwin = 4;
  const uint64_t total = std::min<uint64_t>(65536, std::max<uint64_t>(4096, n / 64));
  if (n <= total) {
    ts->assign(t.data, t.data + t.nbytes);
    if (b) bs->assign(b, b + t.nbytes);
    return;
  }
  const uint64_t win = total / nwin;
  ts->reserve(total * w);
  if (b) bs->reserve(total * w);
  for (uint64_t k = 0; k < nwin; ++k) {
    uint64_t s = (n - win) * k / (nwin - 1);
    ts->insert(ts->end(), t.data + s * w, t.data + (s + win) * w);
    if (b) bs->insert(bs->end(), b + s * w, b + (s + win) * w);
  }
}

std::vector<Codec> Candidates(DType d, bool has_base) {
  std::vector<Codec> c = {Codec::ZSTD};
  if (DTypeSize(d) > 1 || IsFloat(d)) c.push_back(Codec::PLANES);
  if (has_base) {
    c.push_back(Codec::DELTA_XOR);
    c.push_back(Codec::DELTA_ORDERED);
    if (IsFloat(d)) c.push_back(Codec::DELTA_EXPMANT);
    c.push_back(Codec::SPARSE_UPDATE);
  }
  return c;
}

// prune: skip trials that cannot win (automatic choice); Estimate reports every candidate.
Err EstimateImpl(const TensorView& t, const uint8_t* b, const EncodeParams& p,
                 std::vector<std::pair<Codec, uint64_t>>* out, bool prune) {
  std::vector<uint8_t> ts, bs;
  BuildSample(t, b, &ts, &bs);
  const size_t w = DTypeSize(t.dtype);
  const uint64_t sn = ts.size() / w, n = t.nbytes / w;
  std::vector<Codec> cands = Candidates(t.dtype, b != nullptr);
  if (b && prune) {
    // SPARSE_UPDATE only pays when few elements changed; with more than half
    // of the sample changed it cannot win, so skip its (costly) trial.
    size_t changed = CountChanged(ts.data(), bs.data(), size_t(sn), w);
    if (changed * 2 > sn) cands.erase(std::remove(cands.begin(), cands.end(), Codec::SPARSE_UPDATE), cands.end());
  }
  std::vector<uint64_t> sizes(cands.size());
  const uint64_t chunk = p.chunk_elems ? p.chunk_elems : kDefaultChunkElems;
  const double nchunks = double(n ? (n + chunk - 1) / chunk : 0);
  ParallelFor(
      cands.size(),
      [&](size_t k) {
        const Codec c = cands[k];
        const uint8_t* sb = b ? bs.data() : nullptr;
        const double scale = sn ? double(n) / double(sn) : 0;
        if (c == Codec::ZSTD || c == Codec::SPARSE_UPDATE) {
          std::vector<uint8_t> o;
          EncodeChunk(c, t.dtype, ts.data(), sb, 0, size_t(sn), p.level, &o);
          sizes[k] = uint64_t(std::ceil(double(o.size()) * scale));
        } else {
          // Per-stream tables recur once per chunk of the real encode.
          const StreamEstimate e = EstimateElemChunk(c, t.dtype, ts.data(), sb, size_t(sn), p.level);
          sizes[k] = uint64_t(std::ceil(e.per_data * scale + e.fixed * double(nchunks)));
        }
      },
      p.threads);
  out->clear();
  out->push_back({Codec::RAW, t.nbytes});
  for (size_t k = 0; k < cands.size(); ++k) out->push_back({cands[k], sizes[k]});
  return Err::Ok();
}

Err CheckViews(const TensorView& t, const TensorView* base) {
  bool of = false;
  uint64_t n = Numel(t.shape, &of);
  if (of) return Err::Make(Status::InvalidArgument, "shape has more than 2^53 elements");
  if (t.shape.size() > kMaxNdim) return Err::Make(Status::InvalidArgument, "tensors are limited to 32 dimensions");
  if (n * DTypeSize(t.dtype) != t.nbytes)
    return Err::Make(Status::InvalidArgument, "tensor data has " + std::to_string(t.nbytes) + " bytes but " +
                                                  DTypeName(t.dtype) + " shape needs " +
                                                  std::to_string(n * DTypeSize(t.dtype)));
  if (base) {
    if (base->dtype != t.dtype || base->shape != t.shape)
      return Err::Make(Status::InvalidArgument, "base must have the tensor's dtype and shape");
    if (base->nbytes != t.nbytes) return Err::Make(Status::InvalidArgument, "base data size does not match");
  }
  return Err::Ok();
}

}  // namespace

// ---- sparse chunks -------------------------------------------------------------------------

namespace codec {

void SparseEncodeChunk(const uint8_t* t, const uint8_t* b, DType d, uint64_t start, size_t n,
                       const std::vector<uint64_t>& pos, int level, std::vector<uint8_t>* out) {
  const size_t w = DTypeSize(d);
  PutU32(*out, static_cast<uint32_t>(pos.size()));
  if (pos.empty()) return;
  std::vector<uint8_t> idx;
  idx.reserve(pos.size() * 2);
  EncodeIndexStream(pos.data(), pos.size(), start, &idx);
  PutStream(*out, idx.data(), idx.size(), level, kHintCompress);
  std::vector<uint8_t> tmp(pos.size() * w), planes(pos.size() * w);
  switch (w) {
    case 1: XorPositions<uint8_t>(t, b, start, pos, tmp.data()); Split<uint8_t>(tmp.data(), pos.size(), planes.data()); break;
    case 2: XorPositions<uint16_t>(t, b, start, pos, reinterpret_cast<uint16_t*>(tmp.data()));
      Split<uint16_t>(reinterpret_cast<uint16_t*>(tmp.data()), pos.size(), planes.data()); break;
    case 4: XorPositions<uint32_t>(t, b, start, pos, reinterpret_cast<uint32_t*>(tmp.data()));
      Split<uint32_t>(reinterpret_cast<uint32_t*>(tmp.data()), pos.size(), planes.data()); break;
    default: XorPositions<uint64_t>(t, b, start, pos, reinterpret_cast<uint64_t*>(tmp.data()));
      Split<uint64_t>(reinterpret_cast<uint64_t*>(tmp.data()), pos.size(), planes.data()); break;
  }
  for (size_t p = 0; p < w; ++p) PutStream(*out, planes.data() + p * pos.size(), pos.size(), level, kHintAuto);
}

Err SparseDecodeChunk(Reader& r, const uint8_t* b, DType d, uint64_t start, size_t n, uint8_t* out,
                      std::vector<uint8_t>& scratch) {
  const size_t w = DTypeSize(d);
  uint32_t count;
  if (!r.U32(&count)) return Corrupt("truncated sparse chunk");
  if (count > n) return Corrupt("sparse chunk claims more positions than elements");
  if (b) {
    if (b != out) std::memcpy(out, b, n * w);  // CAST decodes with its cast already in out
  } else {
    std::memset(out, 0, n * w);
  }
  if (count == 0) return Err::Ok();
  const uint8_t* ip;
  size_t ilen;
  std::vector<uint8_t> iscratch;
  CORAL_TRY(GetStreamAnyLen(r, size_t(count) * 10, iscratch, &ip, &ilen));
  std::vector<uint64_t> pos;
  CORAL_TRY(DecodeIndexStream(ip, ilen, count, start, start + n, &pos));
  std::vector<std::vector<uint8_t>> ps(w);
  const uint8_t* ptr[8];
  for (size_t p = 0; p < w; ++p) CORAL_TRY(GetStream(r, count, ps[p], &ptr[p]));
  if (scratch.size() < size_t(count) * w) scratch.resize(size_t(count) * w);
  switch (w) {
    case 1: {
      auto* tmp = scratch.data();
      Join<uint8_t>(ptr, count, tmp);
      ApplyPositions<uint8_t>(tmp, start, pos, out);
      break;
    }
    case 2: {
      auto* tmp = reinterpret_cast<uint16_t*>(scratch.data());
      Join<uint16_t>(ptr, count, tmp);
      ApplyPositions<uint16_t>(tmp, start, pos, out);
      break;
    }
    case 4: {
      auto* tmp = reinterpret_cast<uint32_t*>(scratch.data());
      Join<uint32_t>(ptr, count, tmp);
      ApplyPositions<uint32_t>(tmp, start, pos, out);
      break;
    }
    default: {
      auto* tmp = reinterpret_cast<uint64_t*>(scratch.data());
      Join<uint64_t>(ptr, count, tmp);
      ApplyPositions<uint64_t>(tmp, start, pos, out);
      break;
    }
  }
  return Err::Ok();
}

}  // namespace codec

namespace codec {

void PutF32Planes(std::vector<uint8_t>& out, const float* v, size_t n, int level) {
  EncodePlanes(Codec::PLANES, DType::F32, reinterpret_cast<const uint8_t*>(v), nullptr, n, level, 1, &out);
}
Err GetF32Planes(Reader& r, size_t n, float* out) {
  return DecodePlanes(Codec::PLANES, DType::F32, r, nullptr, n, reinterpret_cast<uint8_t*>(out), 1);
}
Err DecodeChunkedPayload(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* b, uint8_t* out,
                         int threads) {
  return DecodeChunked(info, payload, pn, b, out, threads);
}
void EncodeLosslessChunks(Codec c, const TensorView& t, const uint8_t* b, uint32_t chunk, int level, int threads,
                          std::vector<std::vector<uint8_t>>* parts) {
  EncodeChunkedParts(c, t, b, chunk, level, threads, parts);
}
void ReleaseChunks(std::vector<std::vector<uint8_t>>* parts) { GiveBufs(parts); }
Err EstimateLossless(const TensorView& t, const uint8_t* b, const EncodeParams& p,
                     std::vector<std::pair<Codec, uint64_t>>* out) {
  return EstimateImpl(t, b, p, out, true);
}
void WriteObjectHeader(std::vector<uint8_t>* o, Codec c, const TensorView& t, bool has_base, int level,
                       uint32_t chunk, const Digest128& id, const Digest128& base_id,
                       const std::vector<uint8_t>& params, uint64_t payload_size, const uint8_t* fields) {
  WriteHeader(o, c, t, has_base, false, level, chunk, id, base_id, 0, 0, params, payload_size, fields);
}
uint64_t CountChangedElems(const uint8_t* t, const uint8_t* b, uint64_t n, size_t w, int threads) {
  constexpr uint64_t kBlock = uint64_t(1) << 18;
  const uint64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<uint64_t> c(nb, 0);
  ParallelFor(
      nb,
      [&](size_t k) {
        const uint64_t s = k * kBlock, len = std::min(kBlock, n - s);
        c[k] = CountChanged(t + s * w, b + s * w, size_t(len), w);
      },
      threads);
  uint64_t total = 0;
  for (uint64_t x : c) total += x;
  return total;
}

}  // namespace codec

// ---- public API ----------------------------------------------------------------------------

Err Estimate(const TensorView& t, const TensorView* base, const EncodeParams& given,
             std::vector<std::pair<Codec, uint64_t>>* out) {
  CORAL_TRY(CheckViews(t, base));
  EncodeParams p = given;
  p.threads = ThreadsFor(t.nbytes, p.threads);
  return EstimateImpl(t, base ? base->data : nullptr, p, out, false);
}

Err Encode(const TensorView& t, const TensorView* base, const EncodeParams& given, EncodeResult* res) {
  EncodeParams p = given;
  p.threads = ThreadsFor(t.nbytes, p.threads);
  // A base of another dtype or first dimension, or a derived codec by name: codec_derived.cc.
  if ((base && (base->dtype != t.dtype || base->shape != t.shape)) ||
      (base && (p.codec == int(Codec::CAST) || p.codec == int(Codec::ROWS))))
    return DerivedEncode(t, *base, p, res);
  if (p.codec == int(Codec::CAST) || p.codec == int(Codec::ROWS))
    return Err::Make(Status::InvalidArgument, std::string("codec ") + CodecName(Codec(p.codec)) + " needs a base tensor");
  CORAL_TRY(CheckViews(t, base));
  if (p.codec != kCodecAuto && (p.codec < 0 || p.codec >= kCodecCount))
    return Err::Make(Status::InvalidArgument, "unknown codec id " + std::to_string(p.codec));
  uint32_t chunk = p.chunk_elems ? p.chunk_elems : kDefaultChunkElems;
  if (chunk > kMaxChunkElems) return Err::Make(Status::InvalidArgument, "chunkElems must be at most 2^22");
  const int threads = p.threads;
  const uint8_t* b = base ? base->data : nullptr;

  Digest128 id{}, base_id{};
  CORAL_TRY(ContentId(t.data, t.nbytes, t.dtype, t.shape, &id, threads));
  if (base) {
    CORAL_TRY(ContentId(base->data, base->nbytes, base->dtype, base->shape, &base_id, threads));
    if (!p.base_id.empty() && p.base_id != base_id.Hex())
      return Err::Make(Status::InvalidArgument,
                       "base id " + p.base_id + " does not match the base tensor (its id is " + base_id.Hex() + ")");
  }

  Codec c;
  bool automatic = p.codec == kCodecAuto;
  if (automatic) {
    std::vector<std::pair<Codec, uint64_t>> est;
    CORAL_TRY(EstimateImpl(t, b, p, &est, true));
    c = Codec::RAW;
    uint64_t best = t.nbytes;
    for (auto& e : est)
      if (e.second < best) {
        best = e.second;
        c = e.first;
      }
  } else {
    c = static_cast<Codec>(p.codec);
  }
  if (CodecNeedsBase(c) && !base)
    return Err::Make(Status::InvalidArgument, std::string("codec ") + CodecName(c) + " needs a base tensor");
  if (c == Codec::DELTA_EXPMANT && !IsFloat(t.dtype))
    return Err::Make(Status::InvalidArgument, "DELTA_EXPMANT needs a floating-point dtype");
  if (CodecIsLossy(c) && !LossyDType(t.dtype))
    return Err::Make(Status::InvalidArgument,
                     std::string("lossy codec ") + CodecName(c) + " supports F64, F32, F16 and BF16 only");

  res->codec = c;
  res->lossy = CodecIsLossy(c);
  res->max_abs_error = 0;
  res->rel_l2_error = 0;
  std::vector<uint8_t> params, payload;
  bool has_base = base != nullptr && (CodecNeedsBase(c) || CodecIsLossy(c));
  if (!has_base) base_id = Digest128{};
  if (!has_base) b = nullptr;

  if (CodecIsLossy(c)) {
    CORAL_TRY(LossyEncode(c, t, b, p, chunk, threads, &params, &payload));
    ObjectInfo tmp;
    tmp.codec = c;
    tmp.dtype = t.dtype;
    tmp.shape = t.shape;
    tmp.numel = t.nbytes / DTypeSize(t.dtype);
    tmp.nbytes = t.nbytes;
    tmp.chunk_elems = IsChunked(c) ? chunk : 0;
    tmp.params = params;
    tmp.lossy = true;
    tmp.has_base = b != nullptr;
    std::vector<uint8_t> recon(t.nbytes);
    CORAL_TRY(LossyDecode(tmp, payload.data(), payload.size(), b, recon.data(), threads));
    Digest128 rid{};
    CORAL_TRY(ContentId(recon.data(), recon.size(), t.dtype, t.shape, &rid, threads));
    id = rid;
    // Measured error of what decode will return, in double precision; NaN/Inf
    // positions reproduced bit-exactly count as zero error.
    const size_t w = DTypeSize(t.dtype);
    const uint64_t n = t.nbytes / w;
    const uint64_t blk = 1 << 16, nb = (n + blk - 1) / blk;
    std::vector<double> mx(nb, 0), se(nb, 0), st(nb, 0);
    ParallelFor(
        nb,
        [&](size_t k) {
          uint64_t s = k * blk, e = std::min<uint64_t>(n, s + blk);
          double m = 0, a = 0, q = 0;
          for (uint64_t i = s; i < e; ++i) {
            double x = LoadF(t.data, t.dtype, i);
            double y = LoadF(recon.data(), t.dtype, i);
            if (std::isfinite(x)) q += x * x;
            if (std::memcmp(t.data + i * w, recon.data() + i * w, w) == 0) continue;
            double d = std::fabs(y - x);
            if (std::isnan(d)) d = std::numeric_limits<double>::infinity();
            m = std::max(m, d);
            a += d * d;
          }
          mx[k] = m;
          se[k] = a;
          st[k] = q;
        },
        threads);
    double m = 0, a = 0, q = 0;
    for (uint64_t k = 0; k < nb; ++k) {
      m = std::max(m, mx[k]);
      a += se[k];
      q += st[k];
    }
    res->max_abs_error = m;
    res->rel_l2_error = a == 0 ? 0 : (q == 0 ? std::numeric_limits<double>::infinity() : std::sqrt(a / q));
  }
  // Lossless chunked codecs: the chunks go straight into the object (one copy).
  std::vector<std::vector<uint8_t>> parts;
  const uint8_t* raw_payload = nullptr;
  uint64_t payload_size = payload.size();
  if (c == Codec::RAW) {
    raw_payload = t.data;
    payload_size = t.nbytes;
  } else if (!CodecIsLossy(c)) {
    EncodeChunkedParts(c, t, b, chunk, p.level, threads, &parts);
    payload_size = 4 * parts.size();
    for (auto& x : parts) payload_size += x.size();
    if (automatic && payload_size > t.nbytes) {
      c = Codec::RAW;
      res->codec = c;
      has_base = false;
      base_id = Digest128{};
      GiveBufs(&parts);
      raw_payload = t.data;
      payload_size = t.nbytes;
    }
  }
  if (params.size() > kMaxParams) return Err::Make(Status::Internal, "codec params too large");
  uint32_t hdr_chunk = IsChunked(c) ? chunk : 0;
  std::vector<uint8_t> head;
  WriteHeader(&head, c, t, has_base, res->lossy, p.level, hdr_chunk, id, base_id, res->max_abs_error,
              res->rel_l2_error, params, payload_size);
  res->bytes = BigBuffer::Take(head.size() + payload_size);
  if (!res->bytes.data()) {
    GiveBufs(&parts);
    return Err::Make(Status::OutOfMemory, "cannot allocate " + std::to_string(head.size() + payload_size) +
                                              " bytes for the encoded object");
  }
  uint8_t* o = res->bytes.data();
  std::memcpy(o, head.data(), head.size());
  o += head.size();
  if (raw_payload) {
    if (t.nbytes) std::memcpy(o, raw_payload, t.nbytes);
  } else if (!CodecIsLossy(c)) {
    // Chunk table, then the chunks, copied in parallel straight into the object.
    std::vector<size_t> at(parts.size());
    size_t pos = 4 * parts.size();
    for (size_t k = 0; k < parts.size(); ++k) {
      const uint32_t sz = static_cast<uint32_t>(parts[k].size());
      for (int i = 0; i < 4; ++i) o[4 * k + i] = uint8_t(sz >> (8 * i));
      at[k] = pos;
      pos += parts[k].size();
    }
    ParallelFor(
        parts.size(), [&](size_t k) { std::memcpy(o + at[k], parts[k].data(), parts[k].size()); }, threads);
    GiveBufs(&parts);
  } else {
    if (!payload.empty()) std::memcpy(o, payload.data(), payload.size());
  }
  res->id = id;
  return Err::Ok();
}

Err Inspect(const uint8_t* obj, size_t n, ObjectInfo* info) {
  Reader r(obj, n);
  const uint8_t* magic;
  if (!r.Bytes(4, &magic) || std::memcmp(magic, kMagic, 4) != 0) return Corrupt("bad magic (not a coral object)");
  uint8_t ver, codec, dtype, ndim, flags, level;
  uint16_t plen;
  uint32_t chunk;
  if (!r.U8(&ver)) return Corrupt("truncated header");
  if (ver != kVersion)
    return Err::Make(ver > kVersion ? Status::Unsupported : Status::Corrupt,
                     "codec object format version " + std::to_string(ver) + " is not supported (this build reads 1)");
  if (!r.U8(&codec) || !r.U8(&dtype) || !r.U8(&ndim) || !r.U8(&flags) || !r.U8(&level) || !r.U16(&plen) ||
      !r.U32(&chunk))
    return Corrupt("truncated header");
  if (codec >= kCodecCount) return Corrupt("unknown codec id " + std::to_string(codec));
  if (!ValidDType(dtype)) return Corrupt("unknown dtype code " + std::to_string(dtype));
  if (ndim > kMaxNdim) return Corrupt("too many dimensions");
  if (flags & ~(kFlagBase | kFlagLossy)) return Corrupt("unknown header flags");
  if (plen > kMaxParams) return Corrupt("codec params too large");
  info->version = ver;
  info->codec = static_cast<Codec>(codec);
  info->dtype = static_cast<DType>(dtype);
  info->has_base = flags & kFlagBase;
  info->lossy = flags & kFlagLossy;
  info->level = level;
  info->chunk_elems = chunk;
  const uint8_t* p;
  if (!r.Bytes(16, &p)) return Corrupt("truncated header");
  std::memcpy(info->id.bytes, p, 16);
  if (!r.Bytes(16, &p)) return Corrupt("truncated header");
  std::memcpy(info->base_id.bytes, p, 16);
  const uint8_t* fields;
  if (!r.Bytes(16, &fields)) return Corrupt("truncated header");
  Reader fr(fields, 16);
  fr.F64(&info->max_abs_error);
  fr.F64(&info->rel_l2_error);
  info->shape.resize(ndim);
  for (auto& d : info->shape)
    if (!r.U64(&d)) return Corrupt("truncated header");
  if (!r.Bytes(plen, &p)) return Corrupt("truncated header");
  info->params.assign(p, p + plen);
  if (info->codec == Codec::CAST && plen == 0) {
    // CAST params kept in the (otherwise unused) error fields: see CastParamsFromHeaderFields.
    if (!CastParamsFromHeaderFields(fields, &info->params)) return Corrupt("CAST params in the header are malformed");
    info->max_abs_error = info->rel_l2_error = 0;
  }
  uint64_t psize;
  if (!r.U64(&psize)) return Corrupt("truncated header");
  size_t hashed = r.pos;
  uint32_t hc;
  if (!r.U32(&hc)) return Corrupt("truncated header");
  if (hc != static_cast<uint32_t>(Xxh3_64(obj, hashed))) return Corrupt("header checksum mismatch");
  info->header_size = r.pos;
  info->payload_size = psize;
  if (psize != r.left())
    return Corrupt(psize > r.left() ? "object truncated (payload shorter than its header says)"
                                    : "trailing bytes after the payload");
  bool of = false;
  info->numel = Numel(info->shape, &of);
  if (of) return Corrupt("shape too large");
  info->nbytes = info->numel * DTypeSize(info->dtype);
  // Consistency between codec, flags and chunking.
  Codec c = info->codec;
  if (CodecIsLossy(c) != info->lossy) return Corrupt("lossy flag disagrees with the codec");
  if (CodecNeedsBase(c) && !info->has_base) return Corrupt("delta object without a base id");
  if (!CodecNeedsBase(c) && !CodecIsLossy(c) && info->has_base) return Corrupt("standalone object with a base id");
  if (c == Codec::DELTA_EXPMANT && !IsFloat(info->dtype)) return Corrupt("DELTA_EXPMANT on a non-float dtype");
  if (CodecIsLossy(c) && !LossyDType(info->dtype)) return Corrupt("lossy codec on an unsupported dtype");
  if (IsChunked(c)) {
    if (chunk == 0 || chunk > kMaxChunkElems) return Corrupt("bad chunk size");
  } else if (chunk != 0) {
    return Corrupt("chunk size on an unchunked codec");
  }
  if (c == Codec::RAW && psize != info->nbytes) return Corrupt("raw payload size does not match the shape");
  if (CodecIsDerived(c)) {
    DerivedInfo d;
    CORAL_TRY(ParseDerived(*info, &d));
  }
  if (IsChunked(c)) {
    // Every chunk has a 4-byte entry in the chunk table: bounds the claimed size
    // by the input before anyone allocates an output for it.
    uint64_t nchunks = (info->numel + chunk - 1) / chunk;
    if (nchunks > psize / 4) return Corrupt("shape claims more chunks than the payload holds");
  }
  return Err::Ok();
}

Err DecodeChunkAt(const uint8_t* obj, size_t n, uint64_t k, const uint8_t* base, size_t base_n, uint8_t* out,
                  size_t out_n) {
  ObjectInfo info;
  CORAL_TRY(Inspect(obj, n, &info));
  const Codec c = info.codec;
  if (c == Codec::RAW || info.lossy || CodecIsDerived(c))
    return Err::Make(Status::Unsupported, std::string("a chunk of a ") + CodecName(c) + " object cannot be decoded alone");
  const size_t w = DTypeSize(info.dtype);
  const uint64_t numel = info.numel, chunk = info.chunk_elems;
  const uint64_t nchunks = (numel + chunk - 1) / chunk;
  if (k >= nchunks)
    return Err::Make(Status::InvalidArgument, "chunk " + std::to_string(k) + " of " + std::to_string(nchunks));
  const uint64_t s = k * chunk;
  const size_t len = size_t(std::min<uint64_t>(chunk, numel - s));
  if (out_n != len * w)
    return Err::Make(Status::InvalidArgument, "output buffer has " + std::to_string(out_n) + " bytes, chunk needs " +
                                                  std::to_string(len * w));
  if (info.has_base != (base != nullptr) || (base && base_n != len * w))
    return Err::Make(Status::BaseMismatch, "the base chunk does not match the object (base " + info.base_id.Hex() + ")");
  std::vector<std::pair<size_t, size_t>> spans;
  const uint8_t* payload = obj + info.header_size;
  CORAL_TRY(SplitChunks(payload, size_t(info.payload_size), nchunks, &spans));
  Reader r(payload + spans[k].first, spans[k].second);
  Err e;
  try {
    // On the calling thread (a chunk's bytes do not depend on how it was split over threads).
    e = DecodeChunk(c, info.dtype, r, base, s, len, out);
  } catch (const std::bad_alloc&) {
    return Err::Make(Status::OutOfMemory, "out of memory decoding a chunk");
  }
  CORAL_TRY(e);
  if (r.left() != 0) return Corrupt("trailing bytes in chunk");
  return Err::Ok();
}

namespace {

// The codecs DecodeChunkAt (and DecodePair) decode chunk by chunk.
bool ChunkDecodable(Codec c) { return c != Codec::RAW && !CodecIsLossy(c) && !CodecIsDerived(c) && IsChunked(c); }

}  // namespace

Err DecodePair(const uint8_t* lower, size_t lower_n, const uint8_t* lower_base, size_t lower_base_n,
               const uint8_t* upper, size_t upper_n, uint8_t* out, size_t out_n, int threads) {
  ObjectInfo lo, up;
  CORAL_TRY(Inspect(lower, lower_n, &lo));
  CORAL_TRY(Inspect(upper, upper_n, &up));
  if (!ChunkDecodable(lo.codec) || !ChunkDecodable(up.codec) || !up.has_base || !SameId(up.base_id, lo.id) ||
      lo.dtype != up.dtype || lo.numel != up.numel || lo.chunk_elems != up.chunk_elems)
    return Err::Make(Status::Unsupported, std::string("a ") + CodecName(up.codec) + " object on a " +
                                              CodecName(lo.codec) + " base cannot be decoded as a pair");
  if (out_n != up.nbytes)
    return Err::Make(Status::InvalidArgument, "output buffer has " + std::to_string(out_n) + " bytes, object needs " +
                                                  std::to_string(up.nbytes));
  if (lo.has_base != (lower_base != nullptr) || (lower_base && lower_base_n != lo.nbytes))
    return Err::Make(Status::BaseMismatch, "the lower object needs its base " + lo.base_id.Hex());
  const size_t w = DTypeSize(up.dtype);
  const uint64_t n = up.numel, chunk = up.chunk_elems;
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<std::pair<size_t, size_t>> lspans, uspans;
  const uint8_t* lp = lower + lo.header_size;
  const uint8_t* upp = upper + up.header_size;
  CORAL_TRY(SplitChunks(lp, size_t(lo.payload_size), nchunks, &lspans));
  CORAL_TRY(SplitChunks(upp, size_t(up.payload_size), nchunks, &uspans));
  std::vector<Err> errs(nchunks);
  std::atomic<bool> failed{false};
  ParallelFor(
      nchunks,
      [&](size_t k) {
        if (failed.load(std::memory_order_relaxed)) return;
        const uint64_t s = uint64_t(k) * chunk;
        const size_t len = size_t(std::min<uint64_t>(chunk, n - s));
        // Lower's chunk k, in this thread's buffer (its plane buffers are Tls().planes, used
        // by one DecodeChunk at a time).
        thread_local std::vector<uint8_t> mid;
        Err e;
        try {
          if (mid.size() < len * w) mid.resize(len * w);
          Reader lr(lp + lspans[k].first, lspans[k].second);
          e = DecodeChunk(lo.codec, lo.dtype, lr, lower_base ? lower_base + s * w : nullptr, s, len, mid.data());
          if (e.ok() && lr.left() != 0) e = Corrupt("trailing bytes in chunk");
          if (e.ok()) {
            Reader ur(upp + uspans[k].first, uspans[k].second);
            e = DecodeChunk(up.codec, up.dtype, ur, mid.data(), s, len, out + s * w);
            if (e.ok() && ur.left() != 0) e = Corrupt("trailing bytes in chunk");
          }
        } catch (const std::bad_alloc&) {
          e = Err::Make(Status::OutOfMemory, "out of memory decoding a chunk");
        }
        if (!e.ok()) {
          errs[k] = e;
          failed = true;
        }
      },
      threads);
  for (auto& e : errs)
    if (!e.ok()) return e;
  return Err::Ok();
}

Err Decode(const uint8_t* obj, size_t n, const uint8_t* base, size_t base_n, uint8_t* out, size_t out_n,
           int threads, bool verify) {
  threads = ThreadsFor(out_n, threads);
  ObjectInfo info;
  CORAL_TRY(Inspect(obj, n, &info));
  if (out_n != info.nbytes)
    return Err::Make(Status::InvalidArgument, "output buffer has " + std::to_string(out_n) + " bytes, object needs " +
                                                  std::to_string(info.nbytes));
  const uint8_t* b = nullptr;
  // The base's dtype and shape: the object's own, except for CAST and ROWS.
  DerivedInfo derived;
  DType base_dtype = info.dtype;
  std::vector<uint64_t> base_shape = info.shape;
  uint64_t base_nbytes = info.nbytes;
  if (CodecIsDerived(info.codec)) {
    CORAL_TRY(ParseDerived(info, &derived));
    base_dtype = derived.base_dtype;
    base_shape = derived.base_shape;
    base_nbytes = derived.base_nbytes;
  }
  if (info.has_base) {
    if (!base) return Err::Make(Status::BaseMismatch, "object is a delta against base " + info.base_id.Hex() + "; pass that base");
    if (base_n != base_nbytes) return Err::Make(Status::BaseMismatch, "base size does not match the object (needs base " + info.base_id.Hex() + ")");
    // The base is not hashed up front: a wrong base can only change the
    // decoded bytes, which the content id check below catches, and only then
    // is the base hashed to name the cause.
    b = base;
  }
  const uint8_t* payload = obj + info.header_size;
  const size_t pn = size_t(info.payload_size);
  if (info.codec == Codec::RAW) {
    if (out_n) std::memcpy(out, payload, out_n);
  } else if (info.lossy) {
    CORAL_TRY(LossyDecode(info, payload, pn, b, out, threads));
  } else if (CodecIsDerived(info.codec)) {
    CORAL_TRY(DerivedDecode(info, derived, payload, pn, b, out, threads));
  } else {
    CORAL_TRY(DecodeChunked(info, payload, pn, b, out, threads));
  }
  if (!verify) return Err::Ok();
  Digest128 got{};
  CORAL_TRY(ContentId(out, out_n, info.dtype, info.shape, &got, threads));
  if (!SameId(got, info.id)) {
    if (b) {
      Digest128 bid{};
      CORAL_TRY(ContentId(base, base_n, base_dtype, base_shape, &bid, threads));
      if (!SameId(bid, info.base_id))
        return Err::Make(Status::BaseMismatch,
                         "wrong base: object was made against " + info.base_id.Hex() + ", got " + bid.Hex());
    }
    return Err::Make(Status::ChecksumMismatch,
                     "decoded tensor has id " + got.Hex() + " but the object records " + info.id.Hex());
  }
  return Err::Ok();
}

}  // namespace coral
