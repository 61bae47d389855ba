#include "util/big_buffer.h"

#include <sys/mman.h>

#include <atomic>
#include <mutex>
#include <new>
#include <vector>

namespace coral {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

struct Pool {
  std::mutex mu;
  std::vector<BigBuffer::Raw> free;
  size_t bytes = 0;
  size_t limit = kBigPoolBytes;
  uint64_t hits = 0, misses = 0;
};
std::atomic<size_t> g_mapped{0};

Pool& ThePool() {
  static Pool* p = new Pool;  // never destroyed: finalizers may run during teardown
  return *p;
}

// Returns a mapping to the system and takes it off the mapped total.
void Unmap(const BigBuffer::Raw& r) {
  munmap(r.map, r.map_len);
  g_mapped.fetch_sub(r.map_len, std::memory_order_relaxed);
}

// Usable bytes of a mapping from its aligned start.
size_t Usable(const BigBuffer::Raw& r) {
  return r.map_len - size_t(r.p - static_cast<uint8_t*>(r.map));
}

}  // namespace

BigBuffer BigBuffer::Take(size_t n) {
  BigBuffer b;
  b.size_ = n;
  if (n < kBigBufferMin) {
    b.raw_.p = new (std::nothrow) uint8_t[n ? n : 1];
    if (!b.raw_.p) b.size_ = 0;
    return b;
  }
  std::vector<Raw> smaller;
  {
    // Best fit among pooled mappings no more than twice the need.
    Pool& pool = ThePool();
    std::lock_guard<std::mutex> lk(pool.mu);
    size_t best = pool.free.size();
    for (size_t i = 0; i < pool.free.size(); ++i) {
      const size_t u = Usable(pool.free[i]);
      if (u >= n && u <= 2 * n + kHuge && (best == pool.free.size() || u < Usable(pool.free[best]))) best = i;
    }
    if (best != pool.free.size()) {
      b.raw_ = pool.free[best];
      pool.free.erase(pool.free.begin() + std::ptrdiff_t(best));
      pool.bytes -= b.raw_.map_len;
      ++pool.hits;
      return b;
    }
    ++pool.misses;
    // A miss maps a new buffer. Pooled ones too small for this need go now: they stay resident, and
    // the work's sizes have outgrown them (the new, larger buffer will serve their size when it comes
    // back: best fit takes up to twice the need). Kept, they would add to the peak for nothing: with
    // 64 MiB tensors, 166 MiB of such buffers sat in the pool at the peak of an `add`.
    for (size_t i = pool.free.size(); i-- > 0;)
      if (Usable(pool.free[i]) < n) {
        smaller.push_back(pool.free[i]);
        pool.bytes -= pool.free[i].map_len;
        pool.free.erase(pool.free.begin() + std::ptrdiff_t(i));
      }
  }
  for (const Raw& r : smaller) Unmap(r);
  const size_t len = ((n + kHuge - 1) & ~(kHuge - 1)) + kHuge;
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    b.size_ = 0;
    return b;
  }
  const uintptr_t a = (reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~uintptr_t(kHuge - 1);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(a), (len - (a - reinterpret_cast<uintptr_t>(base))) & ~(kHuge - 1), MADV_HUGEPAGE);
#endif
  b.raw_ = Raw{reinterpret_cast<uint8_t*>(a), base, len};
  g_mapped.fetch_add(len, std::memory_order_relaxed);
  return b;
}

void BigBuffer::Give(const Raw& r) {
  if (!r.p) return;
  if (!r.map) {
    delete[] r.p;
    return;
  }
  Pool& pool = ThePool();
  {
    std::lock_guard<std::mutex> lk(pool.mu);
    if (pool.bytes + r.map_len <= pool.limit) {
#ifdef MADV_FREE
      madvise(r.p, Usable(r) & ~(kHuge - 1), MADV_FREE);
#endif
      pool.free.push_back(r);
      pool.bytes += r.map_len;
      return;
    }
  }
  Unmap(r);
}

size_t BigBuffer::SetPoolLimit(size_t bytes) {
  Pool& pool = ThePool();
  std::vector<Raw> drop;
  size_t prev;
  {
    std::lock_guard<std::mutex> lk(pool.mu);
    prev = pool.limit;
    pool.limit = bytes;
    // Largest mappings go first (the fewest unmaps to get under the bound).
    while (pool.bytes > bytes && !pool.free.empty()) {
      size_t big = 0;
      for (size_t i = 1; i < pool.free.size(); ++i)
        if (pool.free[i].map_len > pool.free[big].map_len) big = i;
      drop.push_back(pool.free[big]);
      pool.bytes -= pool.free[big].map_len;
      pool.free.erase(pool.free.begin() + std::ptrdiff_t(big));
    }
  }
  for (const Raw& r : drop) Unmap(r);
  return prev;
}

size_t BigBuffer::MappedBytes() { return g_mapped.load(std::memory_order_relaxed); }

BigBuffer::Stats BigBuffer::PoolStats() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lk(pool.mu);
  return Stats{pool.bytes, pool.hits, pool.misses};
}

}  // namespace coral
