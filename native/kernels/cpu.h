// CPU feature selection shared by every kernel with an AVX2 variant.
//
// Thread: any (the answer is computed once, thread-safely, on first use).
// CORAL_NO_AVX2=1 in the environment forces the portable paths everywhere
// (benchmarks, debugging, checking that both paths agree).
#pragma once

namespace coral {

// True when the CPU has AVX2 and CORAL_NO_AVX2 is not set.
bool CpuUseAvx2();

}  // namespace coral
