#include "kernels/cpu.h"

#include <cstdlib>

namespace coral {

static bool DetectAvx2() {
  if (const char* v = std::getenv("CORAL_NO_AVX2"); v && *v && *v != '0') return false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

bool CpuUseAvx2() {
  static const bool v = DetectAvx2();
  return v;
}

}  // namespace coral
