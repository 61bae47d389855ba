// Fused element transform + byte-plane split, and its inverse, for the
// lossless element codecs PLANES, DELTA_XOR, DELTA_ORDERED and DELTA_EXPMANT
// (docs/codecs.md). Element i of a chunk is transformed (against base element
// i) and byte (w-1-p) of the result goes to plane p, MSB first.
//
// Thread: any; reentrant, no shared state. Uses AVX2 when CpuUseAvx2() (off
// with CORAL_NO_AVX2=1); both paths write identical bytes.
// Buffers: all borrowed, never retained. t, b and out hold n elements of
// w = DTypeSize(d) bytes; dst and src are w plane pointers of n bytes each.
// Any alignment; output buffers must not overlap the inputs.
// Errors: none. b must be non-null for the delta codecs (ignored for PLANES);
// any other codec is a no-op (nothing is written).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/codec.h"
#include "kernels/dtype.h"

namespace coral {
namespace planes {

// Transforms t (against b) and writes byte (w-1-p) of element i to dst[p][i].
void ForwardSplit(Codec c, DType d, const uint8_t* t, const uint8_t* b, size_t n, uint8_t* const* dst);

// The exact inverse: joins src[0..w) into elements and undoes the transform
// against b, writing n elements to out.
void JoinInverse(Codec c, DType d, const uint8_t* const* src, const uint8_t* b, size_t n, uint8_t* out);

}  // namespace planes
}  // namespace coral
