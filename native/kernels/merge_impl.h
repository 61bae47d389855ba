// The merge loops (Merger), shared by merge.cc (baseline x86-64) and
// merge_avx2.cc (the same code compiled with -mavx2, chosen at run time).
// Everything here has internal linkage, so each translation unit keeps its
// own instantiation and the two builds can never be mixed up by the linker.
//
// The formulas are evaluated exactly as written: no FMA contraction, no
// reassociation. Wider vectors change neither: every operation is an
// elementwise IEEE operation and no floating-point reduction crosses
// elements, so both builds give bit-identical results.
// Not part of any public contract; include only from merge*.cc.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/convert.h"
#include "kernels/merge.h"
#include "kernels/parallel.h"

namespace coral {
namespace {


constexpr size_t kBlock = size_t(1) << 16;  // elements per parallel task (fixed)
constexpr size_t kChunk = 512;              // elements per decode/compute/encode step
constexpr size_t kParallelMin = 4 * kBlock; // below this, stay on the calling thread
constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <class A>
struct Io;
template <>
struct Io<double> {
  using Key = uint64_t;
  static void Dec(DType d, const uint8_t* s, size_t n, double* o) { DecodeToF64(d, s, n, o); }
  static void Enc(DType d, const double* s, size_t n, uint8_t* o) { EncodeFromF64(d, s, n, o); }
  // Magnitude as an order-preserving unsigned key; every NaN ranks above +Inf
  // and all NaNs are equal.
  static constexpr Key kAbs = 0x7FFFFFFFFFFFFFFFull, kInf = 0x7FF0000000000000ull, kQNaN = 0x7FF8000000000000ull;
  static Key MagKey(double t) {
    Key k = Bits(t) & kAbs;
    return k > kInf ? kQNaN : k;  // integer select: no data-dependent branch
  }
  static Key Bits(double t) {
    Key b;
    std::memcpy(&b, &t, 8);
    return b;
  }
  static double FromBits(Key b) {
    double t;
    std::memcpy(&t, &b, 8);
    return t;
  }
};
template <>
struct Io<float> {
  using Key = uint32_t;
  static void Dec(DType d, const uint8_t* s, size_t n, float* o) { DecodeToF32(d, s, n, o); }
  static void Enc(DType d, const float* s, size_t n, uint8_t* o) { EncodeFromF32(d, s, n, o); }
  static constexpr Key kAbs = 0x7FFFFFFFu, kInf = 0x7F800000u, kQNaN = 0x7FC00000u;
  static Key MagKey(float t) {
    Key k = Bits(t) & kAbs;
    return k > kInf ? kQNaN : k;
  }
  static Key Bits(float t) {
    Key b;
    std::memcpy(&b, &t, 4);
    return b;
  }
  static float FromBits(Key b) {
    float t;
    std::memcpy(&t, &b, 4);
    return t;
  }
};

// Which TIES entries survive trimming for one model: key > thr, or key == thr
// and index <= cut (ties at the threshold are kept in index order).
template <class Key>
struct Trim {
  bool all = true;
  Key thr = 0;
  size_t cut = 0;
  bool Keep(Key k, size_t j) const { return all || k > thr || (k == thr && j <= cut); }
};

// c ? a : b without a data-dependent branch (integer select on the bits).
template <class A>
inline A Select(bool c, A a, A b) {
  using K = typename Io<A>::Key;
  K m = K(0) - static_cast<K>(c);
  return Io<A>::FromBits((Io<A>::Bits(a) & m) | (Io<A>::Bits(b) & ~m));
}

template <class A>
class Merger {
 public:
  using Key = typename Io<A>::Key;

  Merger(const MergeSpec& s, uint8_t* out) : s_(s), out_(out), es_(DTypeSize(s.dtype)), m_(s.models.size()) {}

  void Run() {
    if (s_.op == MergeOp::Ties && s_.density < 1.0) ComputeTrims();
    size_t blocks = (s_.n + kBlock - 1) / kBlock;
    ParallelFor(blocks, [&](size_t b) { Block(b * kBlock, std::min(s_.n, (b + 1) * kBlock)); }, Threads());
  }

 private:
  int Threads() const { return s_.n < kParallelMin ? 1 : s_.threads; }

  // Task vector entries of model i over [lo, lo+len) into t (base decoded in bb).
  void Tau(size_t i, size_t lo, size_t len, const A* bb, A* t) const {
    Io<A>::Dec(s_.dtype, s_.models[i] + lo * es_, len, t);
    for (size_t j = 0; j < len; ++j) t[j] = t[j] - bb[j];
  }

  void Block(size_t lo, size_t hi) {
    std::vector<A> buf((m_ + 4) * kChunk);
    A* bb = buf.data();            // base
    A* acc = bb + kChunk;          // result / update
    A* s1 = acc + kChunk;          // scratch: agreeing sum
    A* s2 = s1 + kChunk;           // scratch: agreeing count
    A* xs = s2 + kChunk;           // m_ rows of inputs / task vectors
    for (size_t c = lo; c < hi; c += kChunk) {
      const size_t len = std::min(kChunk, hi - c);
      if (s_.op == MergeOp::Linear) {
        bool first = true;
        for (size_t i = 0; i < m_; ++i) {
          const A w = static_cast<A>(s_.weights[i]);
          if (s_.weights[i] == 0) continue;
          A* x = xs;
          Io<A>::Dec(s_.dtype, s_.models[i] + c * es_, len, x);
          if (first) {
            for (size_t j = 0; j < len; ++j) acc[j] = w * x[j];
          } else {
            for (size_t j = 0; j < len; ++j) acc[j] = acc[j] + w * x[j];
          }
          first = false;
        }
        if (first) std::fill(acc, acc + len, A(0));
        Io<A>::Enc(s_.dtype, acc, len, out_ + c * es_);
        continue;
      }
      Io<A>::Dec(s_.dtype, s_.base + c * es_, len, bb);
      for (size_t i = 0; i < m_; ++i) Tau(i, c, len, bb, xs + i * kChunk);
      if (s_.op == MergeOp::Ties && !trims_.empty()) {
        for (size_t i = 0; i < m_; ++i) {
          const Trim<Key>& tr = trims_[i];
          if (tr.all) continue;
          A* t = xs + i * kChunk;
          const Key thr = tr.thr;
          const size_t cut = tr.cut;
          for (size_t j = 0; j < len; ++j) {  // branch-free: keep is data-dependent
            const Key k = Io<A>::MagKey(t[j]);
            const bool keep = (k > thr) | ((k == thr) & (c + j <= cut));
            t[j] = Select(keep, t[j], A(0));
          }
        }
      } else if (s_.op == MergeOp::Dare && s_.drop > 0) {
        const A q = static_cast<A>(1.0 - s_.drop);
        // u < drop  <=>  (x >> 11) < drop * 2^53  <=>  (x >> 11) < ceil(drop * 2^53) (exact: power-of-two scaling)
        const uint64_t drop_below = static_cast<uint64_t>(std::ceil(s_.drop * 0x1.0p53));
        for (size_t i = 0; i < m_; ++i) {
          A* t = xs + i * kChunk;
          const uint64_t k = Mix64(s_.seed + kGamma * (uint64_t(i) + 1));
          for (size_t j = 0; j < len; ++j) {
            const bool dropped = (Mix64(k + kGamma * (uint64_t(c + j) + 1)) >> 11) < drop_below;
            const A kept = t[j] / q;
            t[j] = Select(dropped, A(0), kept);
          }
        }
      }
      // Sum of the (trimmed / dropped) task vectors, in model order.
      std::fill(acc, acc + len, A(0));
      for (size_t i = 0; i < m_; ++i) {
        const A* t = xs + i * kChunk;
        for (size_t j = 0; j < len; ++j) acc[j] = acc[j] + t[j];
      }
      if (s_.op == MergeOp::Ties || (s_.op == MergeOp::Dare && s_.dare_ties)) {
        // Elected sign = sign of the sum; disjoint mean over the entries that
        // agree with it. Non-agreeing entries add +0, which never changes the
        // agreeing sum (same-signed nonzero terms cannot cancel to -0).
        std::fill(s1, s1 + len, A(0));
        std::fill(s2, s2 + len, A(0));
        for (size_t i = 0; i < m_; ++i) {
          const A* t = xs + i * kChunk;
          for (size_t j = 0; j < len; ++j) {
            // agree: v and the sum both nonzero with the same sign bit (a NaN
            // sum is resolved below whatever this says).
            using K = typename Io<A>::Key;
            const K bv = Io<A>::Bits(t[j]), bs = Io<A>::Bits(acc[j]);
            const bool agree = ((bv & Io<A>::kAbs) != 0) & ((bs & Io<A>::kAbs) != 0) & (((bv ^ bs) & ~Io<A>::kAbs) == 0);
            s1[j] = s1[j] + Select(agree, t[j], A(0));
            s2[j] = s2[j] + static_cast<A>(agree);
          }
        }
        // NaN sum -> NaN; zero sum (no majority) -> no update; else the mean
        // (a nonzero sum always has at least one agreeing entry).
        for (size_t j = 0; j < len; ++j) {
          const A sum = acc[j], mean = s1[j] / s2[j];  // 0/0 when no agreement: never selected
          const auto mag = Io<A>::Bits(sum) & Io<A>::kAbs;
          acc[j] = Select(mag > Io<A>::kInf, sum, Select(mag == 0, A(0), mean));
        }
      }
      // r = b + lambda * update, except that an exactly zero update keeps b (and so -0.0).
      const A lambda = static_cast<A>(s_.lambda);
      for (size_t j = 0; j < len; ++j) {
        const A d = lambda * acc[j];
        acc[j] = Select((Io<A>::Bits(d) & Io<A>::kAbs) == 0, bb[j], bb[j] + d);
      }
      Io<A>::Enc(s_.dtype, acc, len, out_ + c * es_);
    }
  }

  // Exact K-th largest magnitude per model by 16-bit-digit radix select over
  // streamed task vectors (no copy; all models share each pass), then the tie
  // cut in index order. Counts are integers, so the split into slots cannot
  // change the result.
  void ComputeTrims() {
    trims_.assign(m_, Trim<Key>{});
    const size_t keep = TiesKeepCount(s_.n, s_.density);
    if (keep >= s_.n) return;
    const int slots = std::max(1, std::min(Threads() > 0 ? Threads() : MaxThreads(), 64));
    constexpr size_t kBins = 65536;
    constexpr int kBits = static_cast<int>(sizeof(Key) * 8);
    std::vector<Key> prefix(m_, 0);
    std::vector<size_t> remaining(m_, keep), equal(m_, 0);
    Key mask = 0;
    std::vector<uint64_t> hist(static_cast<size_t>(slots) * m_ * kBins);
    for (int shift = kBits - 16; shift >= 0; shift -= 16) {
      std::fill(hist.begin(), hist.end(), 0);
      ParallelFor(
          static_cast<size_t>(slots),
          [&](size_t sl) {
            uint64_t* h = hist.data() + sl * m_ * kBins;
            size_t lo = s_.n * sl / slots, hi = s_.n * (sl + 1) / slots;
            std::vector<A> tmp(2 * kChunk);
            A* bb = tmp.data();
            A* t = bb + kChunk;
            for (size_t c = lo; c < hi; c += kChunk) {
              size_t len = std::min(kChunk, hi - c);
              Io<A>::Dec(s_.dtype, s_.base + c * es_, len, bb);
              for (size_t i = 0; i < m_; ++i) {
                Tau(i, c, len, bb, t);
                uint64_t* hm = h + i * kBins;
                const Key p = prefix[i];
                for (size_t j = 0; j < len; ++j) {
                  Key k = Io<A>::MagKey(t[j]);
                  if ((k & mask) == p) ++hm[(k >> shift) & 0xFFFF];
                }
              }
            }
          },
          slots);
      for (size_t i = 0; i < m_; ++i) {
        uint64_t* h0 = hist.data() + i * kBins;
        for (int sl = 1; sl < slots; ++sl) {
          const uint64_t* hs = hist.data() + (static_cast<size_t>(sl) * m_ + i) * kBins;
          for (size_t d = 0; d < kBins; ++d) h0[d] += hs[d];
        }
        size_t d = kBins;
        while (d-- > 0) {
          if (h0[d] >= remaining[i]) break;
          remaining[i] -= h0[d];
        }
        prefix[i] |= static_cast<Key>(static_cast<Key>(d) << shift);
        equal[i] = h0[d];
      }
      mask |= static_cast<Key>(static_cast<Key>(0xFFFF) << shift);
      if (shift > 0) {
        // Few candidates left in every model: gather their keys once and
        // select among them, instead of streaming the tensors again.
        size_t most = 0;
        for (size_t i = 0; i < m_; ++i) most = std::max(most, equal[i]);
        if (most <= s_.n / 16) {
          GatherSelect(mask, slots, &prefix, &remaining, &equal);
          break;
        }
      }
    }
    for (size_t i = 0; i < m_; ++i) {
      Trim<Key>& tr = trims_[i];
      tr.all = false;
      tr.thr = prefix[i];
      tr.cut = s_.n;  // keep every entry equal to thr ...
      if (remaining[i] < equal[i]) tr.cut = TieCut(i, prefix[i], remaining[i]);  // ... unless only some fit
    }
  }

  // Finishes the radix select: collects every key matching prefix[i] under
  // mask, then picks the remaining[i]-th largest exactly (nth_element).
  void GatherSelect(Key mask, int slots, std::vector<Key>* prefix, std::vector<size_t>* remaining,
                    std::vector<size_t>* equal) {
    std::vector<std::vector<std::vector<Key>>> got(slots, std::vector<std::vector<Key>>(m_));
    ParallelFor(
        static_cast<size_t>(slots),
        [&](size_t sl) {
          size_t lo = s_.n * sl / slots, hi = s_.n * (sl + 1) / slots;
          std::vector<A> tmp(2 * kChunk);
          A* bb = tmp.data();
          A* t = bb + kChunk;
          for (size_t c = lo; c < hi; c += kChunk) {
            size_t len = std::min(kChunk, hi - c);
            Io<A>::Dec(s_.dtype, s_.base + c * es_, len, bb);
            for (size_t i = 0; i < m_; ++i) {
              Tau(i, c, len, bb, t);
              const Key p = (*prefix)[i];
              auto& out = got[sl][i];
              for (size_t j = 0; j < len; ++j) {
                Key k = Io<A>::MagKey(t[j]);
                if ((k & mask) == p) out.push_back(k);
              }
            }
          }
        },
        slots);
    for (size_t i = 0; i < m_; ++i) {
      std::vector<Key> keys;
      for (int sl = 0; sl < slots; ++sl) keys.insert(keys.end(), got[sl][i].begin(), got[sl][i].end());
      size_t r = (*remaining)[i];  // 1-based rank from the top, r <= keys.size()
      std::nth_element(keys.begin(), keys.begin() + (r - 1), keys.end(), std::greater<Key>());
      Key thr = keys[r - 1];
      size_t above = 0, same = 0;
      for (Key k : keys) {
        above += k > thr;
        same += k == thr;
      }
      (*prefix)[i] = thr;
      (*remaining)[i] = r - above;
      (*equal)[i] = same;
    }
  }

  // Index of the need-th (1-based) entry whose key equals thr, in index order.
  size_t TieCut(size_t i, Key thr, size_t need) {
    size_t blocks = (s_.n + kBlock - 1) / kBlock;
    std::vector<size_t> counts(blocks, 0);
    auto scan = [&](size_t b, size_t stop_at, size_t* found) {
      size_t lo = b * kBlock, hi = std::min(s_.n, lo + kBlock), cnt = 0;
      A bb[kChunk], t[kChunk];
      for (size_t c = lo; c < hi; c += kChunk) {
        size_t len = std::min(kChunk, hi - c);
        Io<A>::Dec(s_.dtype, s_.base + c * es_, len, bb);
        Tau(i, c, len, bb, t);
        for (size_t j = 0; j < len; ++j) {
          if (Io<A>::MagKey(t[j]) == thr && ++cnt == stop_at) {
            *found = c + j;
            return cnt;
          }
        }
      }
      return cnt;
    };
    size_t dummy = 0;
    ParallelFor(blocks, [&](size_t b) { counts[b] = scan(b, 0, &dummy); }, Threads());
    size_t before = 0;
    for (size_t b = 0; b < blocks; ++b) {
      if (before + counts[b] >= need) {
        size_t at = s_.n;
        scan(b, need - before, &at);
        return at;
      }
      before += counts[b];
    }
    return s_.n;  // unreachable: the radix pass counted `need` equal entries
  }

  const MergeSpec& s_;
  uint8_t* out_;
  size_t es_;
  size_t m_;
  std::vector<Trim<Key>> trims_;
};


// Runs the merge (spec already validated) with the f32 or f64 accumulator.
inline void RunMerger(const MergeSpec& s, uint8_t* out, bool f32) {
  if (f32) {
    Merger<float>(s, out).Run();
  } else {
    Merger<double>(s, out).Run();
  }
}

}  // namespace
}  // namespace coral
