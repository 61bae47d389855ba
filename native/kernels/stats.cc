#include "kernels/stats.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/convert.h"
#include "kernels/parallel.h"

namespace coral {

static constexpr size_t kChunk = size_t(1) << 16;

DiffStats ComputeDiffStats(DType d, const uint8_t* a, const uint8_t* b, size_t n, int threads) {
  const size_t es = DTypeSize(d);
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<DiffStats> parts(chunks);
  auto one = [&](size_t c) {
    const size_t lo = c * kChunk, cnt = std::min(kChunk, n - lo);
    const uint8_t* pa = a + lo * es;
    const uint8_t* pb = b + lo * es;
    DiffStats s;
    // Bitwise change count first: cheap, and exact for every dtype.
    for (size_t i = 0; i < cnt; ++i)
      if (std::memcmp(pa + i * es, pb + i * es, es) != 0) ++s.changed;
    if (s.changed == 0) {
      // Identical chunk: only the norms need computing.
      std::vector<double> va(cnt);
      DecodeToF64(d, pa, cnt, va.data());
      for (size_t i = 0; i < cnt; ++i) {
        double x = va[i];
        if (!std::isfinite(x)) { ++s.nonFinite; continue; }
        s.sumSqA += x * x;
        s.dot += x * x;
      }
      s.sumSqB = s.sumSqA;
    } else {
      std::vector<double> va(cnt), vb(cnt);
      DecodeToF64(d, pa, cnt, va.data());
      DecodeToF64(d, pb, cnt, vb.data());
      for (size_t i = 0; i < cnt; ++i) {
        double x = va[i], y = vb[i];
        if (!std::isfinite(x) || !std::isfinite(y)) { ++s.nonFinite; continue; }
        double df = x - y;
        double ad = std::fabs(df);
        if (ad > s.maxAbs) s.maxAbs = ad;
        s.sumSqDiff += df * df;
        s.sumSqA += x * x;
        s.sumSqB += y * y;
        s.dot += x * y;
      }
    }
    parts[c] = s;
  };
  ParallelFor(chunks, one, chunks >= 16 ? threads : 1);
  DiffStats t;
  for (const DiffStats& s : parts) {
    t.changed += s.changed;
    t.nonFinite += s.nonFinite;
    if (s.maxAbs > t.maxAbs) t.maxAbs = s.maxAbs;
    t.sumSqDiff += s.sumSqDiff;
    t.sumSqA += s.sumSqA;
    t.sumSqB += s.sumSqB;
    t.dot += s.dot;
  }
  return t;
}

}  // namespace coral
