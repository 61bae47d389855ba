// Element-wise comparison metrics of two tensors (used by diff / compare).
//
// Thread: any; large inputs fan out over ParallelFor with fixed 64 Ki-element
// chunks and an in-order reduction, so results do not depend on thread count.
// Buffers: borrowed, read only, any alignment.
// Errors: none (callers check dtype/shape equality first).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"

namespace coral {

struct DiffStats {
  uint64_t changed = 0;    // elements whose bit patterns differ
  uint64_t nonFinite = 0;  // element pairs with a NaN/Inf on either side (excluded from the sums)
  double maxAbs = 0;       // max |a - b| over finite pairs
  double sumSqDiff = 0;    // sum (a - b)^2 over finite pairs
  double sumSqA = 0;       // sum a^2 over finite pairs
  double sumSqB = 0;
  double dot = 0;          // sum a*b over finite pairs (cosine similarity)
};

DiffStats ComputeDiffStats(DType d, const uint8_t* a, const uint8_t* b, size_t n, int threads = 0);

}  // namespace coral
