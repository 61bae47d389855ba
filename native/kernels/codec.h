// Tensor codecs: lossless (bit-exact) and lossy encodings, standalone or as a
// delta against a base tensor of the same dtype and shape, or (CAST, ROWS:
// codec_derived.cc) a base of another float dtype or first dimension. See
// docs/codecs.md for the object format.
//
// Thread: any. Encode/Decode fan out over ParallelFor (kernels/parallel.h) in
// fixed-size chunks of elements; chunk boundaries never depend on the thread
// count, so the bytes produced and the tensor decoded are the same for 1 or N
// threads.
// Ownership: every input buffer is borrowed for the duration of the call and
// never written (decode writes only into `out`). Results are returned in
// caller-owned std::vectors / the caller's `out` span.
// Errors: InvalidArgument for bad parameters; Corrupt for malformed or
// truncated objects; ChecksumMismatch when the decoded bytes do not hash to
// the recorded content id; BaseMismatch when the base passed to Decode is not
// the one the object was made against. Decoding validates every length before
// reading, and never allocates more than the object's header claims after
// checking that claim against the input size where the codec allows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"
#include "kernels/dtype.h"
#include "kernels/hash.h"
#include "util/big_buffer.h"

namespace coral {

// Codec ids are part of the on-disk format: append only, never renumber.
enum class Codec : uint8_t {
  RAW = 0,             // stored bytes
  ZSTD = 1,            // zstd on the raw bytes
  PLANES = 2,          // sign-rotated byte planes (exponent / sign+mantissa split), per-plane entropy coding
  DELTA_XOR = 3,       // XOR of bit patterns with the base, then planes
  DELTA_ORDERED = 4,   // difference of order-preserving integer mappings (FM-Delta style), zigzag, planes
  DELTA_EXPMANT = 5,   // exponent difference stream + sign/mantissa XOR stream (floats only)
  SPARSE_UPDATE = 6,   // positions of changed elements + their bits (XOR with base)
  QUANT_INT8 = 7,      // lossy: per-block int8 quantized delta
  QUANT_INT16 = 8,     // lossy: per-block int16 quantized delta
  SPARSE_TOPK = 9,     // lossy: largest deltas kept exactly, the rest dropped
  PER_AXIS_SCALED = 10,  // lossy: sign bits + one FP16 scale per row or column
  LOW_RANK = 11,       // lossy: rank-r factorisation of the 2-D delta
  CAST = 12,           // lossless: base of another float dtype, cast with a named rounding + exact residual
  ROWS = 13,           // lossless: base with another first dimension; shared rows as a delta, new rows standalone
};
constexpr int kCodecCount = 14;
constexpr int kCodecAuto = 255;

const char* CodecName(Codec c);
bool CodecIsLossy(Codec c);
bool CodecNeedsBase(Codec c);  // true for the lossless delta codecs (CAST and ROWS too)
// CAST and ROWS: their base differs from the tensor in dtype or first
// dimension, and their payload is made of inner lossless payloads
// (codec_derived.cc; docs/codecs.md "Derived bases").
bool CodecIsDerived(Codec c);

struct TensorView {
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  DType dtype = DType::U8;
  std::vector<uint64_t> shape;
};

struct EncodeParams {
  int codec = kCodecAuto;
  int level = 3;             // zstd level, 1..19 (negative levels allowed down to -7)
  int threads = 0;           // 0 = MaxThreads()
  uint32_t chunk_elems = 0;  // 0 = default (kDefaultChunkElems)
  // Lossy knobs (ignored by lossless codecs); negative = unset.
  uint32_t block = 0;         // QUANT_*: elements per scale block (0 = 4096)
  double fraction = -1;       // SPARSE_TOPK: fraction of elements to keep
  double topk = -1;           // SPARSE_TOPK: number of elements to keep
  double threshold = -1;      // SPARSE_TOPK: keep |delta| >= threshold
  int axis = 0;               // PER_AXIS_SCALED: 0 = one scale per row (dim 0), 1 = per column
  int rank = -1;              // LOW_RANK: fixed rank
  int max_rank = -1;          // LOW_RANK: cap when choosing by energy (default 64)
  double energy = -1;         // LOW_RANK: fraction of delta energy to keep (default 0.9)
  // Verify an expected base id (hex) when non-empty.
  std::string base_id;
};

constexpr uint32_t kDefaultChunkElems = 1u << 18;
constexpr uint32_t kMaxChunkElems = 1u << 22;

struct EncodeResult {
  BigBuffer bytes;  // the encoded object (pooled memory, see util/big_buffer.h)
  Codec codec = Codec::RAW;
  bool lossy = false;
  double max_abs_error = 0;
  double rel_l2_error = 0;
  Digest128 id{};
};

// Encodes t (optionally against base). base must have t's dtype and shape,
// except for the derived codecs: a base of another float dtype and t's shape
// (CAST), or of t's dtype and trailing dimensions with another first
// dimension (ROWS). With the automatic choice such a base selects the derived
// codec, which falls back to a standalone object when that is smaller.
Err Encode(const TensorView& t, const TensorView* base, const EncodeParams& p, EncodeResult* out);

// The CAST object of a tensor that is exactly the cast of its base with `rounding`
// (0 RNE, 1 RTZ; an empty residual), built from the ids alone: neither tensor's
// bytes are needed. The caller vouches that `id` is the content id of that cast
// of the base `base_id` (dtype base_dtype, the tensor's shape), e.g. from the
// cast ids computed when the base was stored (ContentIdWithCasts); decode checks
// it as for every object. Same bytes as Encode writes for such a tensor.
Err EncodePureCast(DType dtype, const std::vector<uint64_t>& shape, const Digest128& id, DType base_dtype,
                   const Digest128& base_id, int rounding, const EncodeParams& p, EncodeResult* out);

struct ObjectInfo {
  uint8_t version = 0;
  Codec codec = Codec::RAW;
  DType dtype = DType::U8;
  std::vector<uint64_t> shape;
  bool has_base = false;
  bool lossy = false;
  uint8_t level = 0;
  uint32_t chunk_elems = 0;
  Digest128 id{};
  Digest128 base_id{};
  double max_abs_error = 0;
  double rel_l2_error = 0;
  std::vector<uint8_t> params;  // codec parameter bytes
  size_t header_size = 0;
  uint64_t payload_size = 0;
  uint64_t numel = 0;
  uint64_t nbytes = 0;  // decoded size
};

// Parses and validates the header (not the payload).
Err Inspect(const uint8_t* obj, size_t n, ObjectInfo* info);

// Decodes into out (exactly info.nbytes) and checks the result's content id.
// base_data/base_n: the base tensor's bytes when the object has a base, else
// null. A wrong base can only produce bytes that fail that check; the base is
// then hashed so the error says BaseMismatch (not hashed on success).
// verify = false skips that check (and only it): for a caller that verifies the
// decoded bytes another way before anything relies on them (checkout hashes the
// whole file it assembles against the committed sha256 before the rename).
Err Decode(const uint8_t* obj, size_t n, const uint8_t* base_data, size_t base_n, uint8_t* out, size_t out_n,
           int threads = 0, bool verify = true);

// Decodes chunk `k` alone of a chunked lossless object (ZSTD, PLANES, DELTA_XOR, DELTA_ORDERED,
// DELTA_EXPMANT, SPARSE_UPDATE): the elements [k * chunk_elems, min((k + 1) * chunk_elems, numel)),
// into `out` (exactly those bytes), given the base's bytes of the same elements (`base`, null for an
// object without a base). Only the framing is validated: a chunk has no content id, so the result is
// for estimates (e.g. which delta base to choose), never for data that is kept. Unsupported for the
// other codecs; InvalidArgument when k is out of range or a size disagrees.
Err DecodeChunkAt(const uint8_t* obj, size_t n, uint64_t k, const uint8_t* base, size_t base_n, uint8_t* out,
                  size_t out_n);

// Decodes the two links of a delta chain in one pass, without materialising the lower one:
// `upper` is a delta whose base is the object `lower`, and each chunk k of lower is decoded
// into a per-thread buffer (one chunk, about 1 MiB: it stays in cache) on which upper's chunk
// k is applied, into `out` (exactly upper's decoded size). lower_base/lower_base_n: lower's
// base tensor when lower is a delta itself (null otherwise). Every byte of `out` equals what
// Decode(lower) then Decode(upper, that) writes: both steps are the same per-chunk kernels
// (DecodeChunkAt), element for element, NaN payloads, -0.0 and subnormals included.
// Requirements, else Status::Unsupported and nothing written (the caller decodes the links one
// after the other): both objects use a codec DecodeChunkAt supports, have the same dtype,
// element count and chunk_elems, and upper's base id is lower's id (InvalidArgument when a
// size disagrees, BaseMismatch when lower_base is missing or of the wrong size).
// Neither content id is checked (lower's bytes never exist whole): for a caller that verifies
// the result another way before anything relies on it (checkout checks the file's sha256).
// threads: as Decode (chunks are spread over the threads; the bytes do not depend on it).
Err DecodePair(const uint8_t* lower, size_t lower_n, const uint8_t* lower_base, size_t lower_base_n,
               const uint8_t* upper, size_t upper_n, uint8_t* out, size_t out_n, int threads = 0);

// Estimated encoded size of each candidate codec on samples of the tensor, as
// used by the automatic choice. Pairs of (codec, estimated object bytes).
Err Estimate(const TensorView& t, const TensorView* base, const EncodeParams& p,
             std::vector<std::pair<Codec, uint64_t>>* out);

// The position stream of SPARSE_* codecs: strictly increasing u64 indices,
// each coded as the LEB128 varint of (index - expected), expected starting at
// `start` and becoming index + 1. Exposed for tests of indices past 2^32.
void EncodeIndexStream(const uint64_t* idx, size_t n, uint64_t start, std::vector<uint8_t>* out);
// Decodes exactly `count` indices, each < limit; Corrupt on malformed input.
Err DecodeIndexStream(const uint8_t* p, size_t n, size_t count, uint64_t start, uint64_t limit,
                      std::vector<uint64_t>* out);

}  // namespace coral
