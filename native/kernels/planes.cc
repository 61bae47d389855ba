// Portable fused transform + plane split / join + inverse, and the run-time
// choice of the AVX2 variant (planes_avx2.cc). See planes.h.
#include "kernels/planes.h"

#include "kernels/cpu.h"
#include "kernels/planes_impl.h"

namespace coral {
namespace planes {

using namespace planes_impl;

void ForwardSplit(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* const* dst) {
  if (n == 0) return;
  if (CpuUseAvx2()) return ForwardSplitAvx2(c, d, t, b, n, dst);
  WithElem(c, d, [&](const auto& e) { ForwardSplitRange(e, t, b, 0, n, dst); });
}

void JoinInverse(Codec c, DType d, const uint8_t* const* src, const uint8_t* b, size_t n, uint8_t* out) {
  if (n == 0) return;
  if (CpuUseAvx2()) return JoinInverseAvx2(c, d, src, b, n, out);
  WithElem(c, d, [&](const auto& e) { JoinInverseRange(e, src, b, 0, n, out); });
}

}  // namespace planes
}  // namespace coral
