// The formulas are evaluated exactly as written: no FMA contraction, no
// reassociation (the build has no -ffast-math; contraction is pinned off here
// so a future -mfma elsewhere cannot change merge results).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "kernels/merge.h"
#include "kernels/merge_impl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/parallel.h"

namespace coral {

// merge_avx2.cc: RunMerger compiled with -mavx2.
void MergeRunAvx2(const MergeSpec& s, uint8_t* out, bool f32);

namespace {

bool MergeUsesAvx2() { return CpuUseAvx2(); }

bool Finite(double x) { return std::isfinite(x); }

}  // namespace

size_t TiesKeepCount(size_t n, double density) {
  if (n == 0) return 0;
  if (!(density < 1.0)) return n;
  double nd = static_cast<double>(n);
  double g = std::floor(density * nd);
  size_t k = g <= 0 ? 0 : g >= nd ? n : static_cast<size_t>(g);
  while (k < n && static_cast<double>(k + 1) / nd <= density) ++k;
  while (k > 0 && static_cast<double>(k) / nd > density) --k;
  return std::max<size_t>(k, 1);
}

double DareUniform(uint64_t seed, uint64_t model, uint64_t index) {
  uint64_t k = Mix64(seed + kGamma * (model + 1));
  return static_cast<double>(Mix64(k + kGamma * (index + 1)) >> 11) * 0x1.0p-53;
}

Err ValidateMergeSpec(const MergeSpec& s) {
  auto bad = [](const std::string& m) { return Err::Make(Status::InvalidArgument, m); };
  if (s.models.empty()) return bad("merge needs at least one input tensor");
  if (s.dtype == DType::BOOL)
    return Err::Make(Status::Unsupported, "numeric merge of BOOL tensors is not defined; use ours or theirs");
  if (s.n > 0) {
    for (auto* p : s.models)
      if (!p) return bad("merge input without data");
  }
  switch (s.op) {
    case MergeOp::Linear:
      if (s.weights.size() != s.models.size())
        return bad("linear merge needs one weight per input (" + std::to_string(s.models.size()) + " inputs, " +
                   std::to_string(s.weights.size()) + " weights)");
      for (double w : s.weights)
        if (!Finite(w)) return bad("merge weights must be finite numbers");
      break;
    case MergeOp::Ties:
      if (!(s.density > 0.0 && s.density <= 1.0)) return bad("Expected density in (0, 1] for ties");
      [[fallthrough]];
    case MergeOp::Dare:
      if (s.op == MergeOp::Dare && !(s.drop >= 0.0 && s.drop < 1.0)) return bad("Expected drop in [0, 1) for dare");
      [[fallthrough]];
    case MergeOp::TaskArithmetic:
      if (!Finite(s.lambda)) return bad("Expected finite number for lambda");
      if (!s.base && s.n > 0) return bad("this merge strategy needs the common ancestor (base) tensor");
      break;
    default:
      return bad("unknown merge op " + std::to_string(static_cast<int>(s.op)));
  }
  return Err::Ok();
}

Err Merge(const MergeSpec& s, uint8_t* out) {
  CORAL_TRY(ValidateMergeSpec(s));
  if (s.n == 0) return Err::Ok();
  if (s.dtype == DType::I64 || s.dtype == DType::U64) {
    bool u = s.dtype == DType::U64;
    bool ok = !s.base || Int64FitsF64(s.base, s.n, u);
    for (auto* p : s.models) ok = ok && Int64FitsF64(p, s.n, u);
    if (!ok)
      return Err::Make(Status::Unsupported, std::string(DTypeName(s.dtype)) +
                                                " tensor holds values beyond 2^53, which a numeric merge cannot "
                                                "combine exactly; use ours or theirs");
  }
  bool f32 = s.precision == MergePrecision::F32 && IsFloat(s.dtype) && s.dtype != DType::F64;
  try {
    if (MergeUsesAvx2()) MergeRunAvx2(s, out, f32);
    else RunMerger(s, out, f32);
  } catch (const std::bad_alloc&) {
    return Err::Make(Status::OutOfMemory, "out of memory in merge");
  }
  return Err::Ok();
}

}  // namespace coral
