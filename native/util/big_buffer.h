// Large result buffers (decoded tensors, encoded objects) that end up owned by
// JavaScript Buffers.
//
// Buffers of at least kBigBufferMin bytes are 2 MiB-aligned anonymous
// mappings with transparent huge pages requested, recycled through a small
// process-wide pool (at most kBigPoolBytes, or the bound SetPoolLimit sets): the first-touch page faults and
// the kernel's zeroing of fresh pages cost a third of a fast decode, and a
// recycled mapping has neither. Returned mappings are marked MADV_FREE, so
// under memory pressure the kernel may take their pages back (the next user
// then faults them in again, zeroed). Smaller buffers come from new[].
//
// Thread: any (the pool is locked). Ownership: a BigBuffer owns its bytes
// until it is destroyed or Release()d; the contents of a taken buffer are
// unspecified (callers write every byte).
#pragma once
#include <cstddef>
#include <cstdint>

namespace coral {

constexpr size_t kBigBufferMin = size_t(4) << 20;
constexpr size_t kBigPoolBytes = size_t(256) << 20;

class BigBuffer {
 public:
  // The raw parts, for an owner outside C++ (a JS finalizer gives them back).
  struct Raw {
    uint8_t* p = nullptr;
    void* map = nullptr;  // mapping base; null when p came from new[]
    size_t map_len = 0;
  };

  BigBuffer() = default;
  ~BigBuffer() { Give(raw_); }
  BigBuffer(BigBuffer&& o) noexcept : raw_(o.raw_), size_(o.size_) { o.raw_ = Raw{}, o.size_ = 0; }
  BigBuffer& operator=(BigBuffer&& o) noexcept {
    if (this != &o) {
      Give(raw_);
      raw_ = o.raw_, size_ = o.size_;
      o.raw_ = Raw{}, o.size_ = 0;
    }
    return *this;
  }
  BigBuffer(const BigBuffer&) = delete;
  BigBuffer& operator=(const BigBuffer&) = delete;

  // n uninitialised bytes; data() is null when memory ran out (n > 0).
  static BigBuffer Take(size_t n);
  // Returns a released buffer's memory (to the pool or the system).
  static void Give(const Raw& r);

  // Pool statistics: bytes of mappings held, and how many large Takes were
  // served from the pool (hits) or by a new mapping (misses).
  struct Stats {
    size_t pooled_bytes;
    uint64_t hits, misses;
  };
  static Stats PoolStats();
  // Bytes of all live mappings: handed out, or held by the pool. Small
  // (new[]) buffers are not counted. This is what the JS engine is told
  // about as external memory (napi_util.cc): handing a pooled mapping to
  // JavaScript or taking it back does not change it, so only real growth of
  // the process's memory prompts a garbage collection.
  static size_t MappedBytes();
  // Bound of the pool's bytes (default kBigPoolBytes); lowering it unmaps the
  // surplus at once. Returns the previous bound.
  static size_t SetPoolLimit(size_t bytes);

  uint8_t* data() const { return raw_.p; }
  size_t size() const { return size_; }
  Raw Release() {
    Raw r = raw_;
    raw_ = Raw{}, size_ = 0;
    return r;
  }

 private:
  Raw raw_;
  size_t size_ = 0;
};

}  // namespace coral
