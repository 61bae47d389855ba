// Order-0 static rANS coder; see entropy.h for the stream layout.
#include "kernels/entropy.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu.h"
#include "kernels/entropy_impl.h"

namespace coral {
namespace entropy {
namespace {

constexpr int kScaleBits = 12;
constexpr uint32_t kScale = 1u << kScaleBits;  // frequencies sum to this
constexpr uint32_t kLow = 1u << 16;            // states live in [kLow, 2^32)
constexpr int kLanes = 32;
constexpr size_t kBitmapBytes = 32;
constexpr size_t kStateBytes = 4 * kLanes;
// A symbol with at least 15/16 of the scale is "dominant": runs of 8 lanes
// holding it are common enough for the AVX2 loops' fast paths to pay.
constexpr double kDominantShare = 1.0 - 1.0 / 16;

bool UseAvx2() { return CpuUseAvx2(); }

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void Store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void Store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// log2(k) for k in [0, 4096] (entry 0 unused).
const double* Log2Table() {
  static const std::vector<double> t = [] {
    std::vector<double> v(kScale + 1, 0.0);
    for (uint32_t k = 1; k <= kScale; ++k) v[k] = std::log2(double(k));
    return v;
  }();
  return t.data();
}

// Frequencies summing to kScale, >= 1 for every present symbol, chosen to keep
// the coded size (sum of hist[s] * -log2(f[s] / kScale)) close to its minimum:
// proportional rounding, then greedy unit moves by their exact cost.
void Normalize(const uint32_t hist[256], size_t n, uint32_t f[256]) {
  const double* lg = Log2Table();
  int64_t sum = 0;
  for (int s = 0; s < 256; ++s) {
    f[s] = 0;
    if (!hist[s]) continue;
    uint64_t v = (uint64_t(hist[s]) * kScale + n / 2) / n;
    f[s] = v ? uint32_t(v) : 1;
    sum += f[s];
  }
  while (sum < int64_t(kScale)) {
    int best = -1;
    double gain = -1;
    for (int s = 0; s < 256; ++s) {
      if (!hist[s] || f[s] >= kScale - 1) continue;
      double g = double(hist[s]) * (lg[f[s] + 1] - lg[f[s]]);
      if (g > gain) gain = g, best = s;
    }
    f[best]++;
    sum++;
  }
  while (sum > int64_t(kScale)) {
    int best = -1;
    double loss = 0;
    for (int s = 0; s < 256; ++s) {
      if (f[s] <= 1) continue;
      double l = double(hist[s]) * (lg[f[s]] - lg[f[s] - 1]);
      if (best < 0 || l < loss) loss = l, best = s;
    }
    f[best]--;
    sum--;
  }
}

void PutTable(const uint32_t f[256], std::vector<uint8_t>* out) {
  uint8_t bm[kBitmapBytes] = {0};
  int last = -1;
  for (int s = 0; s < 256; ++s)
    if (f[s]) bm[s >> 3] |= uint8_t(1u << (s & 7)), last = s;
  out->insert(out->end(), bm, bm + kBitmapBytes);
  for (int s = 0; s < last; ++s) {
    if (!f[s]) continue;
    if (f[s] < 128) {
      out->push_back(uint8_t(f[s]));
    } else {
      out->push_back(uint8_t(0x80 | (f[s] >> 8)));
      out->push_back(uint8_t(f[s] & 0xff));
    }
  }
}

using entropy_impl::EncTable;
using entropy_impl::kInfoBiasMask;
using entropy_impl::kInfoFreqShift;
using entropy_impl::kInfoShiftShift;

void BuildEnc(const uint32_t f[256], EncTable* et) {
  uint32_t cum = 0;
  for (int s = 0; s < 256; ++s) {
    et->sym[s][0] = 0;
    et->sym[s][1] = 0;
    if (!f[s]) continue;
    uint32_t magic, shift, bias = cum;
    if (f[s] == 1) {
      magic = ~0u;  // t = q = x - 1 (x >= 1); the bias adds the missing 4095
      shift = 0;
      bias = cum + kScale - 1;
    } else {
      uint32_t l = 0;
      while ((1u << l) < f[s]) ++l;  // l = ceil(log2 f), 1..12
      // floor(2^(32 + l) / f) + 1 - 2^32: the low 32 bits of the 33-bit reciprocal
      magic = uint32_t((uint64_t(1) << (32 + l)) / f[s] + 1);
      shift = l - 1;
    }
    et->sym[s][0] = magic;
    et->sym[s][1] = bias | f[s] << kInfoFreqShift | shift << kInfoShiftShift;
    cum += f[s];
  }
}

inline uint32_t EncStep(uint32_t x, const uint32_t sym[2], uint8_t*& p) {
  const uint32_t magic = sym[0], info = sym[1];
  // Always store the low word; keep it only when renormalising. Written
  // without branches: whether a lane renormalises is close to a coin flip.
  Store16(p - 2, uint16_t(x));
  const uint32_t f = (info >> kInfoFreqShift) & kInfoBiasMask;
  const uint32_t r = x >= f << (32 - kScaleBits);  // x / f must stay below 2^20 = 2^32 / 4096
  p -= 2 * r;
  x >>= 16 * r;
  const uint32_t t = uint32_t((uint64_t(x) * magic) >> 32);
  const uint32_t q = (t + ((x - t) >> 1)) >> (info >> kInfoShiftShift);
  return x + (info & kInfoBiasMask) + q * (kScale - f);
}

}  // namespace

void Histogram(const uint8_t* p, size_t n, uint32_t hist[256], int likely) {
  if (likely >= 0 && likely < 256) {
    // Low-entropy planes: count the dominant byte in bulk, the rest one by one.
    std::memset(hist, 0, 256 * sizeof(uint32_t));
    const uint8_t d = uint8_t(likely);
    size_t i = 0, dom = 0;
    if (UseAvx2()) {
      i = n & ~size_t(31);
      dom = entropy_impl::HistogramDominantAvx2(p, i, d, hist);
    }
    const uint64_t dd = 0x0101010101010101ull * d;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w == dd) {
        dom += 8;
        continue;
      }
      for (int k = 0; k < 8; ++k) hist[p[i + k]]++;
    }
    for (; i < n; ++i) hist[p[i]]++;
    hist[d] += uint32_t(dom);
    return;
  }
  // Eight sub-histograms: consecutive bytes hit different counters even when
  // one symbol dominates (low-entropy planes), so increments do not queue on
  // one memory location (1.7x faster than four on such planes).
  constexpr int kSub = 8;
  uint32_t h[kSub][256];
  std::memset(h, 0, sizeof(h));
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint64_t a, b;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    for (int k = 0; k < 8; ++k) h[k][uint8_t(a >> (8 * k))]++;
    for (int k = 0; k < 8; ++k) h[k][uint8_t(b >> (8 * k))]++;
  }
  for (; i < n; ++i) h[0][p[i]]++;
  for (int s = 0; s < 256; ++s) {
    uint32_t t = 0;
    for (int k = 0; k < kSub; ++k) t += h[k][s];
    hist[s] = t;
  }
}

int DominantSymbol(const uint32_t hist[256], size_t n, double share) {
  int top = 0;
  for (int s = 1; s < 256; ++s)
    if (hist[s] > hist[top]) top = s;
  return n && double(hist[top]) >= share * double(n) ? top : -1;
}

double Entropy(const uint32_t hist[256], size_t n) {
  // c * log2(c) from a table for small counts: sampled and small-plane
  // histograms are computed many times per encode, and 256 log2 calls cost
  // more than counting a few thousand bytes.
  constexpr uint32_t kTable = 4096;
  static const std::vector<double> clog = [] {
    std::vector<double> v(kTable, 0.0);
    for (uint32_t c = 1; c < kTable; ++c) v[c] = double(c) * std::log2(double(c));
    return v;
  }();
  if (n == 0) return 0;
  double acc = 0;
  for (int s = 0; s < 256; ++s) {
    const uint32_t c = hist[s];
    acc += c < kTable ? clog[c] : double(c) * std::log2(double(c));
  }
  return std::log2(double(n)) - acc / double(n);
}

int DistinctSymbols(const uint32_t hist[256]) {
  int k = 0;
  for (int s = 0; s < 256; ++s) k += hist[s] != 0;
  return k;
}

bool RansEncode(const uint8_t* data, size_t n, const uint32_t hist[256], size_t limit, std::vector<uint8_t>* out) {
  if (n == 0 || DistinctSymbols(hist) < 2) return false;
  uint32_t f[256];
  Normalize(hist, n, f);
  const size_t start = out->size();
  PutTable(f, out);
  const size_t head = out->size() - start + kStateBytes;
  if (head + 2 * kLanes >= limit) {
    out->resize(start);
    return false;
  }
  // Words are written backwards into a scratch buffer that holds at most
  // limit - head bytes; running out means the result would not be smaller.
  const size_t cap = limit - head;
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < cap + 2) buf.resize(cap + 2);
  uint8_t* const lo = buf.data() + 2;  // Store16(p - 2) may touch lo - 2 .. lo - 1 only when p == lo
  uint8_t* const hi = lo + cap;
  uint8_t* p = hi;
  EncTable et;
  BuildEnc(f, &et);
  uint32_t x[kLanes];
  for (int j = 0; j < kLanes; ++j) x[j] = kLow;
  // Symbols are encoded in reverse decode order: the tail first, then whole
  // groups of 8 from the last, lanes 7..0.
  const size_t groups = n / kLanes;
  bool ok = true;
  for (size_t i = n; i > groups * kLanes;) {
    --i;
    if (size_t(p - lo) < 2) {
      ok = false;
      break;
    }
    x[i % kLanes] = EncStep(x[i % kLanes], et.sym[data[i]], p);
  }
  size_t g = groups;
  if (ok && UseAvx2()) {
    g = entropy_impl::RansEncodeGroupsAvx2(et, x, &p, lo, data, groups, DominantSymbol(f, kScale, kDominantShare));
  }
  while (ok && g > 0) {
    --g;
    if (size_t(p - lo) < 2 * kLanes) {
      ok = false;
      break;
    }
    const uint8_t* s = data + g * kLanes;
    for (int j = kLanes - 1; j >= 0; --j) x[j] = EncStep(x[j], et.sym[s[j]], p);
  }
  const size_t words = size_t(hi - p);
  if (!ok || head + words >= limit) {
    out->resize(start);
    return false;
  }
  const size_t at = out->size();
  out->resize(at + kStateBytes + words);
  uint8_t* o = out->data() + at;
  for (int j = 0; j < kLanes; ++j) Store32(o + 4 * j, x[j]);
  std::memcpy(o + kStateBytes, p, words);
  return true;
}

Err RansDecode(const uint8_t* src, size_t sn, uint8_t* dst, size_t n) {
  auto bad = [](const char* what) {
    return Err::Make(Status::Corrupt, std::string("corrupt codec object: rANS stream: ") + what);
  };
  if (sn < kBitmapBytes) return bad("truncated frequency table");
  const uint8_t* bm = src;
  int present[256];
  int k = 0;
  for (int s = 0; s < 256; ++s)
    if (bm[s >> 3] & (1u << (s & 7))) present[k++] = s;
  if (k < 2) return bad("fewer than two symbols");
  size_t pos = kBitmapBytes;
  uint32_t f[256] = {0};
  uint32_t sum = 0;
  for (int j = 0; j + 1 < k; ++j) {
    if (pos >= sn) return bad("truncated frequency table");
    uint32_t v = src[pos++];
    if (v & 0x80) {
      if (pos >= sn) return bad("truncated frequency table");
      v = ((v & 0x7f) << 8) | src[pos++];
    }
    if (v == 0 || v >= kScale) return bad("frequency out of range");
    sum += v;
    if (sum >= kScale) return bad("frequencies exceed the scale");
    f[present[j]] = v;
  }
  f[present[k - 1]] = kScale - sum;
  if (sn - pos < kStateBytes) return bad("truncated states");
  uint32_t x[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    x[j] = Load32(src + pos + 4 * j);
    if (x[j] < kLow) return bad("state out of range");
  }
  pos += kStateBytes;
  if ((sn - pos) & 1) return bad("odd word stream length");
  // Slot table: symbol | (slot - cum) << 8 | f << 20.
  uint32_t tab[kScale];
  {
    uint32_t cum = 0;
    for (int j = 0; j < k; ++j) {
      const uint32_t s = uint32_t(present[j]), fs = f[s];
      for (uint32_t o = 0; o < fs; ++o) tab[cum + o] = s | (o << 8) | (fs << 20);
      cum += fs;
    }
  }
  const uint8_t* p = src + pos;
  const uint8_t* const end = src + sn;
  const size_t groups = n / kLanes;
  size_t g = 0;
  if (UseAvx2()) {
    // A dominant symbol (low-entropy planes) lets most vectors skip the
    // table gather.
    const int top = DominantSymbol(f, kScale, kDominantShare);
    uint32_t dom_cum = 0;
    for (int s = 0; s < top; ++s) dom_cum += f[s];
    g = entropy_impl::RansDecodeGroupsAvx2(tab, x, &p, end, dst, groups, dom_cum, top < 0 ? 0 : f[top],
                                           top < 0 ? 0 : uint32_t(top) | (f[top] << 20));
  }
  // Fast path: at most one word per symbol, so 2 * kLanes bytes left cover a group.
  for (; g < groups && size_t(end - p) >= 2 * kLanes; ++g) {
    uint8_t* o = dst + g * kLanes;
    for (int j = 0; j < kLanes; ++j) {
      uint32_t xs = x[j];
      const uint32_t e = tab[xs & (kScale - 1)];
      o[j] = uint8_t(e);
      xs = (e >> 20) * (xs >> kScaleBits) + ((e >> 8) & (kScale - 1));
      const uint32_t w = Load16(p);
      const uint32_t need = xs < kLow;  // branch-free, as in the encoder
      x[j] = (xs << (16 * need)) | (w & (0u - need));
      p += 2 * need;
    }
  }
  // Checked path for the rest (end of the word stream, tail symbols).
  for (size_t i = g * kLanes; i < n; ++i) {
    uint32_t& xs = x[i % kLanes];
    const uint32_t e = tab[xs & (kScale - 1)];
    dst[i] = uint8_t(e);
    xs = (e >> 20) * (xs >> kScaleBits) + ((e >> 8) & (kScale - 1));
    if (xs < kLow) {
      if (end - p < 2) return bad("word stream too short");
      xs = (xs << 16) | Load16(p);
      p += 2;
    }
  }
  if (p != end) return bad("unused words at the end");
  for (int j = 0; j < kLanes; ++j)
    if (x[j] != kLow) return bad("final state mismatch");
  return Err::Ok();
}

}  // namespace entropy
}  // namespace coral
