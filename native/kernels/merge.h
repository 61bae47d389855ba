// Per-tensor merge math: linear (average / weighted), task arithmetic, TIES, DARE.
//
// Contract
//   Thread: any (a libuv worker for async calls). Large tensors fan out over
//   ParallelFor in fixed blocks; every result is bit-identical for any thread
//   count (elementwise math, integer-only reductions, fixed tie order).
//   Buffers: every input pointer is borrowed for the call and never written;
//   `out` (n * DTypeSize(dtype) bytes) is written and may alias an input.
//   Pointers may have any alignment.
//   Errors: InvalidArgument for malformed specs (missing base, no models,
//   parameter out of range, weight count), Unsupported for BOOL tensors and for
//   I64/U64 tensors holding values beyond +-2^53 (not exact in f64). On error
//   `out` is untouched.
//
// Math (exact definitions in docs/merge-strategies.md): every element of every
// input is decoded exactly to the accumulator type A (f64 by default; f32 on
// request for float dtypes of <= 32 bits), the formula is evaluated in A in the
// order written, and the result is rounded ONCE to the tensor dtype with
// kernels/convert.h (nearest, ties to even; integers saturate).
//   Linear:         r = sum_i w_i * x_i              (terms with w_i == 0 omitted)
//   TaskArithmetic: r = b + lambda * sum_i (x_i - b)
//   Ties:           t_i = trim_k(x_i - b); s = sign(sum_i t_i);
//                   r = b + lambda * mean{ t_i : sign(t_i) == s, t_i != 0 }
//   Dare:           t_i = keep_ij ? (x_i - b) / (1 - p) : 0, keep_ij = U(seed,i,j) >= p;
//                   r = b + lambda * sum_i t_i       (or the TIES election over t_i)
//   For the three base-relative ops, an exactly zero update leaves b's value
//   (so -0.0 in the base survives).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "errors.h"
#include "kernels/dtype.h"

namespace coral {

enum class MergeOp : int { Linear = 0, TaskArithmetic = 1, Ties = 2, Dare = 3 };
enum class MergePrecision : int { F64 = 0, F32 = 1 };

struct MergeSpec {
  MergeOp op = MergeOp::Linear;
  DType dtype = DType::F32;
  size_t n = 0;                        // elements in each tensor
  const uint8_t* base = nullptr;       // common ancestor; required by all ops but Linear
  std::vector<const uint8_t*> models;  // >= 1 tensors, same dtype and element count
  std::vector<double> weights;         // Linear: one finite weight per model
  double lambda = 1.0;                 // TaskArithmetic / Ties / Dare: finite
  double density = 1.0;                // Ties: 0 < density <= 1
  double drop = 0.0;                   // Dare: 0 <= drop < 1
  uint64_t seed = 0;                   // Dare
  bool dare_ties = false;              // Dare: TIES sign election + disjoint mean instead of a sum
  MergePrecision precision = MergePrecision::F64;  // F32 applies to F32/F16/BF16/F8 only
  int threads = 0;                     // 0 = MaxThreads()
};

// Checks the spec (not the data). Ok or InvalidArgument / Unsupported.
Err ValidateMergeSpec(const MergeSpec& spec);

// Runs the merge into out. See the contract above.
Err Merge(const MergeSpec& spec, uint8_t* out);

// Number of entries TIES keeps per task vector of n elements at `density`:
// the largest K with fl(K / n) <= density, at least 1 (0 when n == 0).
size_t TiesKeepCount(size_t n, double density);

// DARE's uniform draw in [0, 1) for (seed, model, element): counter-based, so
// independent of thread count and traversal order.
//   k = Mix64(seed + G * (model + 1)); u = (Mix64(k + G * (index + 1)) >> 11) * 2^-53
// with G = 0x9E3779B97F4A7C15 and Mix64 the SplitMix64 finaliser (all mod 2^64).
double DareUniform(uint64_t seed, uint64_t model, uint64_t index);

}  // namespace coral
