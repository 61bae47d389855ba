// Lossy codecs: QUANT_INT8/16, SPARSE_TOPK, PER_AXIS_SCALED, LOW_RANK.
// The delta is target - base (base = zeros when the object has none), taken
// in double precision; decode rebuilds base + delta' and rounds once to the
// tensor dtype (round to nearest even). Quantisers never clip: each block's
// scale covers its largest |delta|.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/codec_internal.h"
#include "kernels/parallel.h"

namespace coral {
namespace codec {
namespace {

Err Invalid(const std::string& m) { return Err::Make(Status::InvalidArgument, m); }

inline double Delta(const TensorView& t, const uint8_t* b, size_t i) {
  double x = LoadF(t.data, t.dtype, i);
  return b ? x - LoadF(b, t.dtype, i) : x;
}

Err CheckFinite(const TensorView& t, const uint8_t* b, const char* codec, int threads) {
  const uint64_t n = t.nbytes / DTypeSize(t.dtype);
  const uint64_t blk = 1 << 16, nb = (n + blk - 1) / blk;
  std::vector<uint8_t> bad(nb, 0);
  ParallelFor(
      nb,
      [&](size_t k) {
        for (uint64_t i = k * blk, e = std::min(n, i + blk); i < e; ++i)
          if (!std::isfinite(Delta(t, b, i))) {
            bad[k] = 1;
            return;
          }
      },
      threads);
  for (auto x : bad)
    if (x)
      return Invalid(std::string("lossy codec ") + codec +
                     " needs finite values in the tensor and base (found NaN or Inf); use SPARSE_TOPK or a lossless codec");
  return Err::Ok();
}

// Rows and columns of the 2-D view: dim 0 by the product of the rest.
void Matrix(const std::vector<uint64_t>& shape, uint64_t n, uint64_t* rows, uint64_t* cols) {
  *rows = shape.empty() ? 1 : shape[0];
  *cols = *rows ? n / *rows : 0;
}

// ---- QUANT_INT8 / QUANT_INT16 --------------------------------------------------------------
// params: u32 block. payload: F32 planes of one scale per block, then a chunked
// array of signed integers (byte planes, MSB first) with chunk = header chunk.

Err QuantEncode(Codec c, const TensorView& t, const uint8_t* b, const EncodeParams& p, uint32_t chunk, int threads,
                std::vector<uint8_t>* params, std::vector<uint8_t>* payload) {
  CORAL_TRY(CheckFinite(t, b, CodecName(c), threads));
  const uint32_t block = p.block ? p.block : 4096;
  if (block < 16 || block > (1u << 24)) return Invalid("block must be between 16 and 2^24");
  const int qmax = c == Codec::QUANT_INT8 ? 127 : 32767;
  const size_t qw = c == Codec::QUANT_INT8 ? 1 : 2;
  const uint64_t n = t.nbytes / DTypeSize(t.dtype);
  const uint64_t nblocks = (n + block - 1) / block;
  std::vector<float> scales(nblocks);
  ParallelFor(
      nblocks,
      [&](size_t k) {
        double m = 0;
        for (uint64_t i = k * block, e = std::min<uint64_t>(n, i + block); i < e; ++i)
          m = std::max(m, std::fabs(Delta(t, b, i)));
        float s = float(m / qmax);
        // float rounding may leave s * qmax just below m: nudge up so no value clips
        while (double(s) * qmax < m) s = std::nextafter(s, INFINITY);
        scales[k] = s;
      },
      threads);
  PutU32(*params, block);
  PutF32Planes(*payload, scales.data(), scales.size(), p.level);
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<std::vector<uint8_t>> parts(nchunks);
  ParallelFor(
      nchunks,
      [&](size_t k) {
        uint64_t s = uint64_t(k) * chunk;
        size_t len = size_t(std::min<uint64_t>(chunk, n - s));
        std::vector<uint8_t> planes(len * qw);
        for (size_t j = 0; j < len; ++j) {
          uint64_t i = s + j;
          double sc = scales[i / block];
          double q = sc > 0 ? std::nearbyint(Delta(t, b, i) / sc) : 0.0;
          q = std::max(-double(qmax), std::min(double(qmax), q));
          int v = int(q);
          if (qw == 1) {
            planes[j] = uint8_t(int8_t(v));
          } else {
            uint16_t u = uint16_t(int16_t(v));
            planes[j] = uint8_t(u >> 8);
            planes[len + j] = uint8_t(u);
          }
        }
        for (size_t pl = 0; pl < qw; ++pl) PutStream(parts[k], planes.data() + pl * len, len, p.level, kHintCompress);
      },
      threads);
  JoinChunks(parts, payload);
  return Err::Ok();
}

Err QuantDecode(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* b, uint8_t* out,
                int threads) {
  Reader pr(info.params.data(), info.params.size());
  uint32_t block;
  if (!pr.U32(&block) || pr.left() != 0 || block < 16 || block > (1u << 24)) return Corrupt("bad quantiser params");
  const size_t qw = info.codec == Codec::QUANT_INT8 ? 1 : 2;
  const uint64_t n = info.numel;
  const uint64_t nblocks = (n + block - 1) / block;
  const uint32_t chunk = info.chunk_elems;
  Reader r(payload, pn);
  if (nblocks > pn) return Corrupt("scale table larger than the payload");
  std::vector<float> scales(nblocks);
  CORAL_TRY(GetF32Planes(r, nblocks, scales.data()));
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<std::pair<size_t, size_t>> spans;
  CORAL_TRY(SplitChunks(payload + r.pos, pn - r.pos, nchunks, &spans));
  const uint8_t* body = payload + r.pos;
  std::vector<Err> errs(nchunks);
  ParallelFor(
      nchunks,
      [&](size_t k) {
        uint64_t s = uint64_t(k) * chunk;
        size_t len = size_t(std::min<uint64_t>(chunk, n - s));
        Reader cr(body + spans[k].first, spans[k].second);
        std::vector<uint8_t> sc0, sc1;
        const uint8_t* pl[2] = {nullptr, nullptr};
        Err e = GetStream(cr, len, sc0, &pl[0]);
        if (e.ok() && qw == 2) e = GetStream(cr, len, sc1, &pl[1]);
        if (e.ok() && cr.left()) e = Corrupt("trailing bytes in chunk");
        if (!e.ok()) {
          errs[k] = e;
          return;
        }
        for (size_t j = 0; j < len; ++j) {
          uint64_t i = s + j;
          int v = qw == 1 ? int(int8_t(pl[0][j])) : int(int16_t(uint16_t((pl[0][j] << 8) | pl[1][j])));
          double d = double(v) * double(scales[i / block]);
          double base = b ? LoadF(b, info.dtype, i) : 0.0;
          StoreF(out, info.dtype, i, base + d);
        }
      },
      threads);
  for (auto& e : errs)
    if (!e.ok()) return e;
  return Err::Ok();
}

// ---- SPARSE_TOPK ---------------------------------------------------------------------------
// Same chunk body as SPARSE_UPDATE; positions are the largest |delta|.
// params: f64 threshold used, u64 elements kept (informational).

Err SparseEncode(const TensorView& t, const uint8_t* b, const EncodeParams& p, uint32_t chunk, int threads,
                 std::vector<uint8_t>* params, std::vector<uint8_t>* payload) {
  const size_t w = DTypeSize(t.dtype);
  const uint64_t n = t.nbytes / w;
  int modes = (p.fraction >= 0) + (p.topk >= 0) + (p.threshold >= 0);
  if (modes != 1) return Invalid("SPARSE_TOPK needs exactly one of fraction, topk or threshold");
  // Magnitude of each change; differing bits with a non-finite delta count as infinite.
  auto mag = [&](uint64_t i) -> double {
    if (b && std::memcmp(t.data + i * w, b + i * w, w) == 0) return -1;  // unchanged
    double d = std::fabs(Delta(t, b, i));
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    if (d == 0 && !b && std::memcmp(t.data + i * w, "\0\0\0\0\0\0\0\0", w) == 0) return -1;  // zero vs zeros
    return d;
  };
  double thr;
  bool none = false;
  if (p.threshold >= 0) {
    thr = p.threshold;
  } else {
    if (p.fraction > 1) return Invalid("fraction must be in [0, 1]");
    uint64_t k = p.topk >= 0 ? uint64_t(std::min<double>(p.topk, double(n))) : uint64_t(std::llround(p.fraction * double(n)));
    if (k == 0 || n == 0) {
      none = true;
      thr = std::numeric_limits<double>::infinity();
    } else {
      std::vector<double> m(n);
      ParallelFor(
          (n + 65535) / 65536,
          [&](size_t c) {
            for (uint64_t i = c * 65536, e = std::min<uint64_t>(n, i + 65536); i < e; ++i) m[i] = mag(i);
          },
          threads);
      std::nth_element(m.begin(), m.begin() + (k - 1), m.end(), std::greater<double>());
      thr = m[k - 1];
      if (thr < 0) thr = 0;  // fewer than k changed elements: keep every change
    }
  }
  const uint64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<std::vector<uint8_t>> parts(nchunks);
  std::vector<uint64_t> kept(nchunks, 0);
  ParallelFor(
      nchunks,
      [&](size_t c) {
        uint64_t s = uint64_t(c) * chunk;
        size_t len = size_t(std::min<uint64_t>(chunk, n - s));
        std::vector<uint64_t> pos;
        if (!none)
          for (size_t j = 0; j < len; ++j) {
            double m = mag(s + j);
            if (m >= 0 && m >= thr) pos.push_back(s + j);
          }
        kept[c] = pos.size();
        SparseEncodeChunk(t.data + s * w, b ? b + s * w : nullptr, t.dtype, s, len, pos, p.level, &parts[c]);
      },
      threads);
  uint64_t total = 0;
  for (auto k : kept) total += k;
  PutF64(*params, thr);
  PutU64(*params, total);
  JoinChunks(parts, payload);
  return Err::Ok();
}

// ---- PER_AXIS_SCALED -----------------------------------------------------------------------
// params: u8 axis (0 = one scale per row, 1 = per column), u64 groups.
// payload: stream of FP16 scales (little-endian u16), stream of sign bits
// (bit i%8 of byte i/8 set = negative).

Err AxisEncode(const TensorView& t, const uint8_t* b, const EncodeParams& p, int threads, std::vector<uint8_t>* params,
               std::vector<uint8_t>* payload) {
  CORAL_TRY(CheckFinite(t, b, "PER_AXIS_SCALED", threads));
  if (p.axis != 0 && p.axis != 1) return Invalid("axis must be 0 (rows) or 1 (columns)");
  const uint64_t n = t.nbytes / DTypeSize(t.dtype);
  uint64_t rows, cols;
  Matrix(t.shape, n, &rows, &cols);
  const uint64_t groups = n == 0 ? 0 : (p.axis == 0 ? rows : cols);
  if ((n + 7) / 8 > 0xffffffffull || groups * 2 > 0xffffffffull) return Invalid("tensor too large for PER_AXIS_SCALED");
  std::vector<double> sum(groups, 0);
  if (p.axis == 0) {
    ParallelFor(
        groups,
        [&](size_t r) {
          double s = 0;
          for (uint64_t j = 0; j < cols; ++j) s += std::fabs(Delta(t, b, r * cols + j));
          sum[r] = s;
        },
        threads);
  } else {
    for (uint64_t r = 0; r < rows; ++r)
      for (uint64_t j = 0; j < cols; ++j) sum[j] += std::fabs(Delta(t, b, r * cols + j));
  }
  const uint64_t per = p.axis == 0 ? cols : rows;
  std::vector<uint8_t> sc(groups * 2);
  for (uint64_t g = 0; g < groups; ++g) {
    // mean |delta| minimises the L2 error of scale * sign(delta)
    double m = per ? sum[g] / double(per) : 0;
    uint16_t h = DoubleToHalf(std::min(m, 65504.0));
    sc[2 * g] = uint8_t(h);
    sc[2 * g + 1] = uint8_t(h >> 8);
  }
  std::vector<uint8_t> signs((n + 7) / 8, 0);
  ParallelFor(
      signs.size() ? (signs.size() + 8191) / 8192 : 0,
      [&](size_t c) {
        for (uint64_t by = c * 8192, e = std::min<uint64_t>(signs.size(), by + 8192); by < e; ++by) {
          uint8_t v = 0;
          for (int k = 0; k < 8; ++k) {
            uint64_t i = by * 8 + k;
            if (i < n && Delta(t, b, i) < 0) v |= uint8_t(1u << k);
          }
          signs[by] = v;
        }
      },
      threads);
  PutU8(*params, uint8_t(p.axis));
  PutU64(*params, groups);
  PutStream(*payload, sc.data(), sc.size(), p.level, kHintCompress);
  PutStream(*payload, signs.data(), signs.size(), p.level, kHintAuto);
  return Err::Ok();
}

Err AxisDecode(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* b, uint8_t* out,
               int threads) {
  Reader pr(info.params.data(), info.params.size());
  uint8_t axis;
  uint64_t groups;
  if (!pr.U8(&axis) || !pr.U64(&groups) || pr.left() || axis > 1) return Corrupt("bad PER_AXIS_SCALED params");
  const uint64_t n = info.numel;
  uint64_t rows, cols;
  Matrix(info.shape, n, &rows, &cols);
  if (groups != (n == 0 ? 0 : (axis == 0 ? rows : cols))) return Corrupt("PER_AXIS_SCALED group count mismatch");
  if ((n + 7) / 8 > 0xffffffffull) return Corrupt("tensor too large");
  Reader r(payload, pn);
  std::vector<uint8_t> s0, s1;
  const uint8_t *sc, *sg;
  CORAL_TRY(GetStream(r, groups * 2, s0, &sc));
  CORAL_TRY(GetStream(r, (n + 7) / 8, s1, &sg));
  if (r.left()) return Corrupt("trailing bytes");
  ParallelFor(
      (n + 65535) / 65536,
      [&](size_t c) {
        for (uint64_t i = c * 65536, e = std::min<uint64_t>(n, i + 65536); i < e; ++i) {
          uint64_t g = axis == 0 ? i / cols : i % cols;
          double s = HalfToDouble(uint16_t(sc[2 * g] | (sc[2 * g + 1] << 8)));
          double d = (sg[i >> 3] >> (i & 7)) & 1 ? -s : s;
          double base = b ? LoadF(b, info.dtype, i) : 0.0;
          StoreF(out, info.dtype, i, base + d);
        }
      },
      threads);
  return Err::Ok();
}

// ---- LOW_RANK ------------------------------------------------------------------------------
// The 2-D delta D (rows x cols) ~= A (rows x r) * C (r x cols), found by
// randomized subspace iteration (oversampling 8, two power iterations) and a
// Jacobi eigensolve of the small Gram matrix. Rank: fixed, or the smallest r
// keeping `energy` of ||D||_F^2, capped at max_rank.
// params: u32 r. payload: F32 planes of A, then of C (row-major).

struct Mat {
  size_t r = 0, c = 0;
  std::vector<double> v;
  Mat(size_t rr = 0, size_t cc = 0) : r(rr), c(cc), v(rr * cc, 0.0) {}
  double* row(size_t i) { return v.data() + i * c; }
  const double* row(size_t i) const { return v.data() + i * c; }
};

// Y = D X, D: m x n floats, X: n x k.
void MulDX(const std::vector<float>& D, size_t m, size_t n, const Mat& X, Mat* Y, int threads) {
  const size_t k = X.c;
  *Y = Mat(m, k);
  ParallelFor(
      (m + 15) / 16,
      [&](size_t blk) {
        for (size_t i = blk * 16, e = std::min(m, blk * 16 + 16); i < e; ++i) {
          double* y = Y->row(i);
          const float* d = D.data() + i * n;
          for (size_t j = 0; j < n; ++j) {
            const double a = d[j];
            const double* x = X.row(j);
            for (size_t c = 0; c < k; ++c) y[c] += a * x[c];
          }
        }
      },
      threads);
}

// Z = D^T Y, Y: m x k -> Z: n x k. Column blocks of D run in parallel; each Z
// row accumulates in row order, so the result is thread-count independent.
void MulDtY(const std::vector<float>& D, size_t m, size_t n, const Mat& Y, Mat* Z, int threads) {
  const size_t k = Y.c;
  *Z = Mat(n, k);
  const size_t bs = 64;
  ParallelFor(
      (n + bs - 1) / bs,
      [&](size_t blk) {
        size_t j0 = blk * bs, j1 = std::min(n, j0 + bs);
        for (size_t i = 0; i < m; ++i) {
          const float* d = D.data() + i * n;
          const double* y = Y.row(i);
          for (size_t j = j0; j < j1; ++j) {
            const double a = d[j];
            double* z = Z->row(j);
            for (size_t c = 0; c < k; ++c) z[c] += a * y[c];
          }
        }
      },
      threads);
}

// Orthonormalises the columns of Y in place (modified Gram-Schmidt, twice).
void Orth(Mat* Y) {
  const size_t m = Y->r, k = Y->c;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t c = 0; c < k; ++c) {
      for (size_t q = 0; q < c; ++q) {
        double dot = 0;
        for (size_t i = 0; i < m; ++i) dot += Y->v[i * k + c] * Y->v[i * k + q];
        for (size_t i = 0; i < m; ++i) Y->v[i * k + c] -= dot * Y->v[i * k + q];
      }
      double nn = 0;
      for (size_t i = 0; i < m; ++i) nn += Y->v[i * k + c] * Y->v[i * k + c];
      nn = std::sqrt(nn);
      double inv = nn > 1e-300 ? 1.0 / nn : 0.0;
      for (size_t i = 0; i < m; ++i) Y->v[i * k + c] *= inv;
    }
}

// Eigen-decomposition of a symmetric k x k matrix (cyclic Jacobi). On return
// S holds the eigenvalues on its diagonal and V the eigenvectors as columns.
void Jacobi(Mat* S, Mat* V) {
  const size_t k = S->r;
  *V = Mat(k, k);
  for (size_t i = 0; i < k; ++i) V->v[i * k + i] = 1;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, tot = 0;
    for (size_t i = 0; i < k; ++i)
      for (size_t j = 0; j < k; ++j) {
        double x = S->v[i * k + j] * S->v[i * k + j];
        tot += x;
        if (i != j) off += x;
      }
    if (off <= 1e-30 * tot || off == 0) break;
    for (size_t p = 0; p < k; ++p)
      for (size_t q = p + 1; q < k; ++q) {
        double apq = S->v[p * k + q];
        if (std::fabs(apq) < 1e-300) continue;
        double app = S->v[p * k + p], aqq = S->v[q * k + q];
        double theta = (aqq - app) / (2 * apq);
        double t = (theta >= 0 ? 1 : -1) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t r = 0; r < k; ++r) {  // columns p, q
          double a = S->v[r * k + p], bq = S->v[r * k + q];
          S->v[r * k + p] = c * a - s * bq;
          S->v[r * k + q] = s * a + c * bq;
        }
        for (size_t r = 0; r < k; ++r) {  // rows p, q
          double a = S->v[p * k + r], bq = S->v[q * k + r];
          S->v[p * k + r] = c * a - s * bq;
          S->v[q * k + r] = s * a + c * bq;
        }
        for (size_t r = 0; r < k; ++r) {
          double a = V->v[r * k + p], bq = V->v[r * k + q];
          V->v[r * k + p] = c * a - s * bq;
          V->v[r * k + q] = s * a + c * bq;
        }
      }
  }
}

Err RankEncode(const TensorView& t, const uint8_t* b, const EncodeParams& p, int threads, std::vector<uint8_t>* params,
               std::vector<uint8_t>* payload) {
  CORAL_TRY(CheckFinite(t, b, "LOW_RANK", threads));
  const uint64_t n = t.nbytes / DTypeSize(t.dtype);
  uint64_t rows, cols;
  Matrix(t.shape, n, &rows, &cols);
  const size_t m = size_t(rows), nc = size_t(cols);
  if (p.rank == 0 || p.max_rank == 0) return Invalid("rank must be at least 1");
  int maxr = p.rank > 0 ? p.rank : (p.max_rank > 0 ? p.max_rank : 64);
  double energy = p.energy >= 0 ? p.energy : 0.9;
  if (energy > 1) return Invalid("energy must be in [0, 1]");
  size_t lim = std::min(m, nc);
  size_t want = std::min<size_t>(size_t(maxr), lim);
  size_t k = std::min(want + 8, lim);
  size_t r = 0;
  Mat A, C;
  if (n > 0 && k > 0) {
    std::vector<float> D(n);
    double total = 0;
    for (uint64_t i = 0; i < n; ++i) {
      double d = Delta(t, b, i);
      D[i] = float(d);
      total += double(D[i]) * double(D[i]);
    }
    // Deterministic Gaussian test matrix (splitmix64 + Box-Muller).
    Mat X(nc, k);
    uint64_t st = 0x9e3779b97f4a7c15ull;
    auto next = [&]() {
      uint64_t z = (st += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      return double((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
    };
    for (auto& v : X.v) {
      double u1 = next(), u2 = next();
      v = std::sqrt(-2 * std::log(u1 + 1e-300)) * std::cos(6.283185307179586 * u2);
    }
    Mat Y, Z;
    MulDX(D, m, nc, X, &Y, threads);
    Orth(&Y);
    for (int it = 0; it < 2; ++it) {
      MulDtY(D, m, nc, Y, &Z, threads);
      Orth(&Z);
      MulDX(D, m, nc, Z, &Y, threads);
      Orth(&Y);
    }
    Mat Bt;  // (Q^T D)^T: nc x k
    MulDtY(D, m, nc, Y, &Bt, threads);
    Mat S(k, k), V;
    for (size_t j = 0; j < nc; ++j) {
      const double* br = Bt.row(j);
      for (size_t a = 0; a < k; ++a)
        for (size_t c = a; c < k; ++c) S.v[a * k + c] += br[a] * br[c];
    }
    for (size_t a = 0; a < k; ++a)
      for (size_t c = 0; c < a; ++c) S.v[a * k + c] = S.v[c * k + a];
    Jacobi(&S, &V);
    std::vector<size_t> order(k);
    for (size_t i = 0; i < k; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      double ex = S.v[x * k + x], ey = S.v[y * k + y];
      return ex != ey ? ex > ey : x < y;
    });
    if (p.rank > 0) {
      r = want;
    } else {
      double acc = 0;
      r = want;
      for (size_t i = 0; i < want; ++i) {
        acc += std::max(0.0, S.v[order[i] * k + order[i]]);
        if (acc >= energy * total) {
          r = i + 1;
          break;
        }
      }
      if (total == 0) r = 0;
    }
    A = Mat(m, r);
    C = Mat(r, nc);
    for (size_t i = 0; i < m; ++i)
      for (size_t c = 0; c < r; ++c) {
        double s = 0;
        for (size_t a = 0; a < k; ++a) s += Y.v[i * k + a] * V.v[a * k + order[c]];
        A.v[i * r + c] = s;
      }
    for (size_t j = 0; j < nc; ++j)
      for (size_t c = 0; c < r; ++c) {
        double s = 0;
        for (size_t a = 0; a < k; ++a) s += Bt.v[j * k + a] * V.v[a * k + order[c]];
        C.v[c * nc + j] = s;
      }
  }
  if (double(m) * double(r) > 4e9 || double(r) * double(nc) > 4e9) return Invalid("LOW_RANK factors too large");
  std::vector<float> af(A.v.begin(), A.v.end()), cf(C.v.begin(), C.v.end());
  PutU32(*params, uint32_t(r));
  PutF32Planes(*payload, af.data(), af.size(), p.level);
  PutF32Planes(*payload, cf.data(), cf.size(), p.level);
  return Err::Ok();
}

Err RankDecode(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* b, uint8_t* out,
               int threads) {
  Reader pr(info.params.data(), info.params.size());
  uint32_t r;
  if (!pr.U32(&r) || pr.left()) return Corrupt("bad LOW_RANK params");
  const uint64_t n = info.numel;
  uint64_t rows, cols;
  Matrix(info.shape, n, &rows, &cols);
  if (r > std::min(rows, cols)) return Corrupt("LOW_RANK rank larger than the matrix");
  const size_t m = size_t(rows), nc = size_t(cols);
  Reader rd(payload, pn);
  // Each factor is 4 planes of >= 9-byte stream headers; bound the claimed
  // sizes by the output size (r <= min(rows, cols)) before allocating.
  std::vector<float> A(size_t(m) * r), C(size_t(r) * nc);
  CORAL_TRY(GetF32Planes(rd, A.size(), A.data()));
  CORAL_TRY(GetF32Planes(rd, C.size(), C.data()));
  if (rd.left()) return Corrupt("trailing bytes");
  ParallelFor(
      (m + 15) / 16,
      [&](size_t blk) {
        std::vector<double> acc(nc);
        for (size_t i = blk * 16, e = std::min(m, blk * 16 + 16); i < e; ++i) {
          std::fill(acc.begin(), acc.end(), 0.0);
          for (size_t c = 0; c < r; ++c) {
            const double a = A[i * r + c];
            const float* cr = C.data() + c * nc;
            for (size_t j = 0; j < nc; ++j) acc[j] += a * double(cr[j]);
          }
          for (size_t j = 0; j < nc; ++j) {
            size_t idx = i * nc + j;
            double base = b ? LoadF(b, info.dtype, idx) : 0.0;
            StoreF(out, info.dtype, idx, base + acc[j]);
          }
        }
      },
      threads);
  return Err::Ok();
}

}  // namespace

Err LossyEncode(Codec c, const TensorView& t, const uint8_t* base, const EncodeParams& p, uint32_t chunk,
                int threads, std::vector<uint8_t>* params, std::vector<uint8_t>* payload) {
  switch (c) {
    case Codec::QUANT_INT8:
    case Codec::QUANT_INT16: return QuantEncode(c, t, base, p, chunk, threads, params, payload);
    case Codec::SPARSE_TOPK: return SparseEncode(t, base, p, chunk, threads, params, payload);
    case Codec::PER_AXIS_SCALED: return AxisEncode(t, base, p, threads, params, payload);
    case Codec::LOW_RANK: return RankEncode(t, base, p, threads, params, payload);
    default: return Err::Make(Status::Internal, "not a lossy codec");
  }
}

Err LossyDecode(const ObjectInfo& info, const uint8_t* payload, size_t pn, const uint8_t* base, uint8_t* out,
                int threads) {
  switch (info.codec) {
    case Codec::QUANT_INT8:
    case Codec::QUANT_INT16: return QuantDecode(info, payload, pn, base, out, threads);
    case Codec::SPARSE_TOPK: return DecodeChunkedPayload(info, payload, pn, base, out, threads);
    case Codec::PER_AXIS_SCALED: return AxisDecode(info, payload, pn, base, out, threads);
    case Codec::LOW_RANK: return RankDecode(info, payload, pn, base, out, threads);
    default: return Err::Make(Status::Internal, "not a lossy codec");
  }
}

}  // namespace codec
}  // namespace coral
