// Content ids and plain digests.
//
// Content id (format "coral.tensor.v1"), see docs/content-ids.md:
//   chunk digests  d_i = XXH3-128(bytes[i*C, min((i+1)*C, n)))   C = 1 MiB
//   descriptor     "coral.tensor.v1\0" dtype-name "\0" u32 ndim, u64 dims[ndim],
//                  u64 nbytes, u64 C                            (little-endian)
//   id             XXH3-128(descriptor || d_0 || d_1 || ...)   digests in canonical (big-endian) form
// Chunking is fixed, so the id is the same whatever number of threads hashed it.
//
// Thread: any. Large inputs fan out over ParallelFor. Buffers are borrowed,
// never retained or written.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"
#include "kernels/dtype.h"

namespace coral {

struct Digest128 {
  uint8_t bytes[16];  // canonical big-endian XXH128 form
  std::string Hex() const;
};

constexpr size_t kIdChunkBytes = size_t(1) << 20;

// XXH3-128 of one contiguous span (uses AVX2 when the CPU has it).
Digest128 Xxh3_128(const void* data, size_t len);
// XXH3-64 of one span.
uint64_t Xxh3_64(const void* data, size_t len, uint64_t seed = 0);

// The content id of a tensor. Fails if nbytes disagrees with dtype and shape.
Err ContentId(const void* data, size_t nbytes, DType dtype, const std::vector<uint64_t>& shape, Digest128* out,
              int threads = 0);

// True when `to` is half as wide as `from` among the casts (F32 -> BF16, F32 -> F16, F64 -> F32):
// the pairs ContentIdWithCasts handles.
bool CastIdSupported(DType from, DType to);

// The content id of a tensor (as ContentId) and, in the same pass over its bytes, the
// content ids its round-to-nearest-even casts to `targets` would have (the tensor of
// dtype targets[k], same shape, bytes CastSpan(..., kNearestEven) - what CAST decodes
// a pure RNE cast to). The casts are never materialised: each source block is cast
// into a small buffer and hashed. Each target must pass CastIdSupported (at most 4).
Err ContentIdWithCasts(const void* data, size_t nbytes, DType dtype, const std::vector<uint64_t>& shape,
                       const std::vector<DType>& targets, Digest128* out, std::vector<Digest128>* cast_ids,
                       int threads = 0);

// True when the CPU supports the AVX2 path.
bool HashUsesAvx2();

}  // namespace coral
