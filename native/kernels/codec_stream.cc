// Compressed streams (the per-plane choice of coder, see MakePlan), index
// streams and chunk framing for the codec kernels.
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/codec_internal.h"
#include "kernels/entropy.h"

namespace coral {
namespace codec {
namespace {

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

ZSTD_CCtx* Cctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> c(ZSTD_createCCtx());
  return c.get();
}
ZSTD_DCtx* Dctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> c(ZSTD_createDCtx());
  return c.get();
}

enum : uint8_t { kModeRaw = 0, kModeZstd = 1, kModeRepeat = 2, kModeRans = 3 };

// u8 mode, u32 raw length, u32 stored length.
constexpr size_t kStreamHeader = 9;

void PutHeader(std::vector<uint8_t>& out, uint8_t mode, uint32_t raw, uint32_t stored) {
  PutU8(out, mode);
  PutU32(out, raw);
  PutU32(out, stored);
}

// zstd at `level` on the whole stream. Returns false when zstd does not make
// the stream smaller.
bool PutZstd(std::vector<uint8_t>& out, const uint8_t* data, size_t n, int level) {
  ZSTD_CCtx* cc = Cctx();
  ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
  size_t cap = ZSTD_compressBound(n);
  thread_local std::vector<uint8_t> zbuf;  // reused: no zero-fill per stream
  if (zbuf.size() < cap) zbuf.resize(cap);
  size_t z = ZSTD_compress2(cc, zbuf.data(), cap, data, n);
  if (ZSTD_isError(z) || z >= n) return false;
  PutHeader(out, kModeZstd, static_cast<uint32_t>(n), static_cast<uint32_t>(z));
  out.insert(out.end(), zbuf.data(), zbuf.data() + z);
  return true;
}

// The match trials: zstd on a window of up to kTrialBytes from the middle of
// the stream (*sn receives the window length). The full trial runs at the
// requested level but at most level 1, so its literals are entropy-coded like
// the real thing; the scan runs at a negative level (no literal coding, about
// 4x cheaper than level 1, which costs a fifth of a plane's rANS coding) and
// only asks whether matches exist at all.
constexpr size_t kTrialBytes = 8192;
constexpr size_t kQuickTrialBytes = 2048;
constexpr int kTrialMaxLevel = 1;
constexpr int kScanLevel = -3;
// A scan at or above this share of its window found (almost) no matches.
constexpr double kNoMatches = 0.9;
size_t ZstdTrial(const uint8_t* data, size_t n, int level, size_t* sn, size_t bytes = kTrialBytes) {
  *sn = std::min<size_t>(n, bytes);
  const size_t so = (n - *sn) / 2;
  const size_t cap = ZSTD_compressBound(*sn);
  thread_local std::vector<uint8_t> tmp;
  if (tmp.size() < cap) tmp.resize(cap);
  size_t z = ZSTD_compressCCtx(Cctx(), tmp.data(), cap, data + so, *sn, level);
  return ZSTD_isError(z) ? *sn : z;
}

// zstd is chosen over rANS when the trial is below this fraction of the
// window's order-0 entropy (its Huffman tables and frame are in the trial).
constexpr double kLzMinGain = 0.95;
// A window where one byte value holds this share hints the full histogram
// to count that value in bulk.
constexpr double kDominantShare = 0.75;
// A window where one byte value holds this share skips the full match trial.
constexpr double kDominantOnly = 0.95;

}  // namespace

double SampleEntropy(const uint8_t* data, size_t n, size_t samples) {
  if (n == 0) return 0;
  uint32_t hist[256] = {0};
  size_t step = n > samples ? n / samples : 1;
  size_t cnt = 0;
  for (size_t i = 0; i < n && cnt < samples; i += step, ++cnt) hist[data[i]]++;
  return entropy::Entropy(hist, cnt);
}

namespace {

// What PutStream does with a stream, decided once for PutStream and
// EstimateStream alike.
struct Plan {
  enum Kind { kRepeat, kRaw, kRans, kZstd } kind = kRaw;
  uint32_t hist[256];  // kRans: the whole stream's histogram
  size_t rans_limit = 0;  // kRans: give up (zstd or raw) at this coded size
  bool zstd_fallback = false;  // kRans: on giving up, try zstd (small streams) instead of raw
  size_t trial = 0, window = 0;  // the match trial's size and window (0: no trial)
};

// estimating: the stream is a sample of a larger one (EstimateStream), so the
// small-stream rule (a full trial to weigh zstd's smaller tables) does not
// apply; only the scan decides.
Plan MakePlan(const uint8_t* data, size_t n, int level, StreamHint hint, bool estimating = false) {
  Plan pl;
  if (n > 0) {
    bool same = true;
    for (size_t i = 1; i < n && same; ++i) same = data[i] == data[0];
    if (same) {
      pl.kind = Plan::kRepeat;
      return pl;
    }
  }
  if (n < 64) return pl;
  if (hint == kHintAuto && SampleEntropy(data, n) > 7.92) {
    // Near-uniform bytes are mantissa bits, stored raw, unless they repeat
    // (a counter, a tiled pattern): a 2 KiB match trial tells them apart.
    size_t w = 0;
    if (double(ZstdTrial(data, n, kScanLevel, &w, kQuickTrialBytes)) >= kNoMatches * double(w)) return pl;
  }
  if (hint == kHintZstd) {
    pl.kind = Plan::kZstd;
    return pl;
  }
  // Order-0 rANS codes i.i.d. symbols (exponents, small deltas) within ~0.01
  // bit/byte of their entropy, where Huffman loses up to ~0.1 and cannot go
  // below 1 bit/byte, at no cost in speed (docs/codecs.md). zstd is used
  // instead only when a trial shows LZ matches beating the order-0 entropy
  // (runs, repeated rows, integer patterns). The trial and the window's
  // order-0 entropy see the same bytes, so only real matches (not a small
  // sample's optimistic statistics) pick zstd.
  // The cheap scan first: most planes (i.i.d. exponents and deltas) have no
  // matches, and only small streams need the full trial's size anyway.
  size_t scan_window = 0;
  bool matches = (n <= kTrialBytes && !estimating) ||
                 double(ZstdTrial(data, n, kScanLevel, &scan_window)) < kNoMatches * double(scan_window);
  bool window_hist = false;
  if (matches && n > kTrialBytes) {
    // Runs of one dominant byte (the top plane of a delta) are matches too,
    // but order-0 rANS codes them in a fraction of a bit each: no full trial.
    entropy::Histogram(data + (n - scan_window) / 2, scan_window, pl.hist);
    window_hist = true;
    matches = entropy::DominantSymbol(pl.hist, scan_window, kDominantOnly) < 0;
  }
  if (matches) {
    pl.trial = ZstdTrial(data, n, std::min(level, kTrialMaxLevel), &pl.window);
    entropy::Histogram(data + (n - pl.window) / 2, pl.window, pl.hist);
    const double window_bytes = entropy::Entropy(pl.hist, pl.window) * double(pl.window) / 8.0;
    if (double(pl.trial) < kLzMinGain * window_bytes) {
      pl.kind = Plan::kZstd;
      return pl;
    }
  } else {
    pl.window = scan_window;
    if (!window_hist) entropy::Histogram(data + (n - pl.window) / 2, pl.window, pl.hist);
  }
  // When the trial saw the whole stream (small streams), its size is the bar:
  // rANS's table (up to ~700 bytes) can outweigh zstd's compact Huffman
  // header there, and then zstd is kept.
  pl.kind = Plan::kRans;
  const bool whole = pl.window == n && !estimating;
  if (pl.window != n) entropy::Histogram(data, n, pl.hist, entropy::DominantSymbol(pl.hist, pl.window, kDominantShare));
  pl.rans_limit = whole ? std::min(n, pl.trial) : n;
  pl.zstd_fallback = whole;
  return pl;
}

void PutRaw(std::vector<uint8_t>& out, const uint8_t* data, size_t n) {
  PutHeader(out, kModeRaw, static_cast<uint32_t>(n), static_cast<uint32_t>(n));
  out.insert(out.end(), data, data + n);
}

}  // namespace

void PutStream(std::vector<uint8_t>& out, const uint8_t* data, size_t n, int level, StreamHint hint) {
  // Streams are at most one chunk plane (<= 2^26 * 8 bytes), so u32 lengths suffice.
  const uint32_t raw = static_cast<uint32_t>(n);
  Plan pl = MakePlan(data, n, level, hint);
  switch (pl.kind) {
    case Plan::kRepeat:
      PutHeader(out, kModeRepeat, raw, 1);
      PutU8(out, data[0]);
      return;
    case Plan::kRaw: PutRaw(out, data, n); return;
    case Plan::kRans: {
      const size_t at = out.size();
      PutHeader(out, kModeRans, raw, 0);
      if (entropy::RansEncode(data, n, pl.hist, pl.rans_limit, &out)) {
        const uint32_t stored = static_cast<uint32_t>(out.size() - at - kStreamHeader);
        for (int i = 0; i < 4; ++i) out[at + 5 + i] = uint8_t(stored >> (8 * i));
        return;
      }
      out.resize(at);
      if (!pl.zstd_fallback) {
        PutRaw(out, data, n);
        return;
      }
      break;
    }
    case Plan::kZstd: break;
  }
  if (!PutZstd(out, data, n, level)) PutRaw(out, data, n);
}

StreamEstimate EstimateStream(const uint8_t* data, size_t n, int level, StreamHint hint) {
  constexpr double kHeader = kStreamHeader;
  Plan pl = MakePlan(data, n, level, hint, true);
  switch (pl.kind) {
    case Plan::kRepeat: return {0, kHeader + 1};
    case Plan::kRaw: return {double(n), kHeader};
    case Plan::kZstd:
      // The trial's rate (a ZSTD-codec stream has no trial: never estimated here).
      return {pl.window ? double(std::min(n, pl.trial * n / pl.window)) : double(n), kHeader};
    case Plan::kRans: {
      // bitmap, at most 2 bytes per frequency and the final states, then the words
      const double table = 32 + 2 * entropy::DistinctSymbols(pl.hist) + 128;
      const double words = entropy::Entropy(pl.hist, n) * double(n) / 8.0;
      if (words + table >= double(pl.rans_limit)) return {double(std::min(n, pl.rans_limit)), kHeader};
      return {words, kHeader + table};
    }
  }
  return {double(n), kHeader};
}

Err GetStreamAnyLen(Reader& r, size_t max_raw, std::vector<uint8_t>& scratch, const uint8_t** data, size_t* len) {
  uint8_t mode;
  uint32_t raw, stored;
  if (!r.U8(&mode) || !r.U32(&raw) || !r.U32(&stored)) return Corrupt("truncated stream header");
  if (raw > max_raw) return Corrupt("stream longer than its chunk allows");
  const uint8_t* src;
  if (!r.Bytes(stored, &src)) return Corrupt("truncated stream");
  *len = raw;
  switch (mode) {
    case kModeRaw:
      if (stored != raw) return Corrupt("raw stream length mismatch");
      *data = src;
      return Err::Ok();
    case kModeRepeat:
      if (stored != 1) return Corrupt("repeat stream length mismatch");
      if (scratch.size() < raw) scratch.resize(raw);
      std::memset(scratch.data(), src[0], raw);
      *data = scratch.data();
      return Err::Ok();
    case kModeRans: {
      if (scratch.size() < raw) scratch.resize(raw);
      CORAL_TRY(entropy::RansDecode(src, stored, scratch.data(), raw));
      *data = scratch.data();
      return Err::Ok();
    }
    case kModeZstd: {
      unsigned long long fcs = ZSTD_getFrameContentSize(src, stored);
      if (fcs != raw) return Corrupt("zstd frame size mismatch");
      if (scratch.size() < raw) scratch.resize(raw);
      size_t got = ZSTD_decompressDCtx(Dctx(), scratch.data(), raw, src, stored);
      if (ZSTD_isError(got) || got != raw) return Corrupt("bad zstd frame");
      *data = scratch.data();
      return Err::Ok();
    }
    default: return Corrupt("unknown stream mode");
  }
}

Err GetStream(Reader& r, size_t expect, std::vector<uint8_t>& scratch, const uint8_t** data) {
  size_t len = 0;
  CORAL_TRY(GetStreamAnyLen(r, expect, scratch, data, &len));
  if (len != expect) return Corrupt("stream length mismatch");
  return Err::Ok();
}

Err SplitChunks(const uint8_t* payload, size_t n, uint64_t nchunks, std::vector<std::pair<size_t, size_t>>* spans) {
  if (nchunks > n / 4) return Corrupt("chunk table larger than the payload");
  Reader r(payload, n);
  spans->resize(nchunks);
  size_t at = 4 * nchunks;
  for (uint64_t i = 0; i < nchunks; ++i) {
    uint32_t sz = 0;
    r.U32(&sz);
    if (sz > n - at) return Corrupt("chunk extends past the payload");
    (*spans)[i] = {at, sz};
    at += sz;
  }
  if (at != n) return Corrupt("trailing bytes after the last chunk");
  return Err::Ok();
}

void JoinChunks(const std::vector<std::vector<uint8_t>>& chunks, std::vector<uint8_t>* payload) {
  size_t total = 4 * chunks.size();
  for (auto& c : chunks) total += c.size();
  size_t at = payload->size();
  payload->reserve(at + total);
  for (auto& c : chunks) PutU32(*payload, static_cast<uint32_t>(c.size()));
  for (auto& c : chunks) payload->insert(payload->end(), c.begin(), c.end());
}

}  // namespace codec

void EncodeIndexStream(const uint64_t* idx, size_t n, uint64_t start, std::vector<uint8_t>* out) {
  uint64_t expect = start;
  for (size_t i = 0; i < n; ++i) {
    codec::PutVarint(*out, idx[i] - expect);
    expect = idx[i] + 1;
  }
}

Err DecodeIndexStream(const uint8_t* p, size_t n, size_t count, uint64_t start, uint64_t limit,
                      std::vector<uint64_t>* out) {
  out->clear();
  if (count > n) return codec::Corrupt("index stream shorter than its count");
  out->reserve(count);
  size_t pos = 0;
  uint64_t expect = start;
  for (size_t i = 0; i < count; ++i) {
    uint64_t v = 0;
    int shift = 0;
    for (;;) {
      if (pos >= n) return codec::Corrupt("truncated index stream");
      uint8_t b = p[pos++];
      if (shift == 63 && (b & 0x7e)) return codec::Corrupt("index varint overflow");
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
      shift += 7;
      if (shift > 63) return codec::Corrupt("index varint too long");
    }
    if (v >= limit - expect || expect >= limit) return codec::Corrupt("index out of range");
    uint64_t idx = expect + v;
    out->push_back(idx);
    expect = idx + 1;
  }
  if (pos != n) return codec::Corrupt("trailing bytes in index stream");
  return Err::Ok();
}

}  // namespace coral
