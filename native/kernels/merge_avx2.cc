// The merge loops compiled with -mavx2 (see merge_impl.h; dispatched from
// merge.cc when the CPU has AVX2). Results are bit-identical to the baseline
// build: same elementwise IEEE operations, no contraction, no reassociation.
#include "kernels/merge_impl.h"

namespace coral {

void MergeRunAvx2(const MergeSpec& s, uint8_t* out, bool f32) { RunMerger(s, out, f32); }

}  // namespace coral
