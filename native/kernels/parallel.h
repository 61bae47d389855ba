// A small process-wide worker pool for data-parallel kernels.
//
// Thread: ParallelFor may be called from any thread (a libuv worker, the main
// thread for small sync calls, or a pool thread). The calling thread always
// takes part in its own loop, so nested or concurrent calls cannot deadlock
// even when every pool thread is busy.
// Ownership: the pool owns nothing of the caller's; `fn` must outlive the call.
#pragma once
#include <cstddef>
#include <functional>

namespace coral {

// Number of threads a kernel may use (pool threads + the caller). Defaults to
// the hardware concurrency; CORAL_THREADS in the environment overrides it.
int MaxThreads();
// Set the thread budget (>= 1). Takes effect for loops started afterwards.
void SetMaxThreads(int n);

// Runs fn(i) for i in [0, n) on up to `threads` threads (0 = MaxThreads()).
// Returns when every call has finished. Each i runs at most once: if a call
// throws, the calls not yet started are skipped and the first exception is
// rethrown here, on the calling thread (never on a pool thread).
void ParallelFor(size_t n, const std::function<void(size_t)>& fn, int threads = 0);

}  // namespace coral
