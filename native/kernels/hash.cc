#include "kernels/hash.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/cast.h"
#include "kernels/cpu.h"
#include "kernels/hash_impl.h"
#include "kernels/parallel.h"

namespace coral {

bool HashUsesAvx2() { return CpuUseAvx2(); }

std::string Digest128::Hex() const {
  static const char* d = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[2 * i] = d[bytes[i] >> 4];
    s[2 * i + 1] = d[bytes[i] & 15];
  }
  return s;
}

Digest128 Xxh3_128(const void* data, size_t len) {
  Digest128 out;
  if (HashUsesAvx2()) hash_impl::Xxh3_128_avx2(data, len, out.bytes);
  else hash_impl::Xxh3_128_sse2(data, len, out.bytes);
  return out;
}

uint64_t Xxh3_64(const void* data, size_t len, uint64_t seed) {
  return HashUsesAvx2() ? hash_impl::Xxh3_64_avx2(data, len, seed) : hash_impl::Xxh3_64_sse2(data, len, seed);
}

static void PutU32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
static void PutU64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The descriptor of docs/content-ids.md, with room for `chunks` digests after it; returns its length.
static size_t Descriptor(std::string& desc, DType dtype, const std::vector<uint64_t>& shape, size_t nbytes,
                         size_t chunks) {
  desc = "coral.tensor.v1";
  desc.push_back('\0');
  desc += DTypeName(dtype);
  desc.push_back('\0');
  PutU32(desc, static_cast<uint32_t>(shape.size()));
  for (uint64_t d : shape) PutU64(desc, d);
  PutU64(desc, nbytes);
  PutU64(desc, kIdChunkBytes);
  const size_t head = desc.size();
  desc.resize(head + 16 * chunks);
  return head;
}

static Err CheckShape(size_t nbytes, DType dtype, const std::vector<uint64_t>& shape) {
  if (!ValidDType(static_cast<int>(dtype))) return Err::Make(Status::InvalidArgument, "unknown dtype code");
  // Element count with overflow checks: a hostile shape must not wrap around.
  unsigned __int128 count = 1;
  for (uint64_t d : shape) {
    count *= d;
    if (count > (static_cast<unsigned __int128>(1) << 62))
      return Err::Make(Status::InvalidArgument, "shape describes more than 2^62 elements");
  }
  unsigned __int128 expect = count * DTypeSize(dtype);
  if (expect != nbytes)
    return Err::Make(Status::InvalidArgument, "tensor byte length " + std::to_string(nbytes) +
                                                  " does not match dtype and shape (" +
                                                  std::to_string(static_cast<uint64_t>(expect)) + " bytes)");
  return Err::Ok();
}

Err ContentId(const void* data, size_t nbytes, DType dtype, const std::vector<uint64_t>& shape, Digest128* out,
              int threads) {
  CORAL_TRY(CheckShape(nbytes, dtype, shape));
  const size_t chunks = nbytes == 0 ? 0 : (nbytes + kIdChunkBytes - 1) / kIdChunkBytes;
  std::string desc;
  const size_t head = Descriptor(desc, dtype, shape, nbytes, chunks);

  const auto* src = static_cast<const uint8_t*>(data);
  char* digests = &desc[head];
  auto one = [&](size_t i) {
    size_t off = i * kIdChunkBytes;
    size_t len = std::min(kIdChunkBytes, nbytes - off);
    Digest128 d = Xxh3_128(src + off, len);
    std::memcpy(digests + 16 * i, d.bytes, 16);
  };
  // Below ~8 MiB the fan-out costs more than it saves.
  ParallelFor(chunks, one, chunks >= 8 ? threads : 1);
  *out = Xxh3_128(desc.data(), desc.size());
  return Err::Ok();
}

namespace {

// One streaming XXH3-128 state of the instruction set hash.cc uses.
class Stream {
 public:
  explicit Stream(bool avx2)
      : avx2_(avx2), st_(avx2 ? hash_impl::Xxh3_128_new_avx2() : hash_impl::Xxh3_128_new_sse2()) {}
  ~Stream() {
    if (st_) avx2_ ? hash_impl::Xxh3_free_avx2(st_) : hash_impl::Xxh3_free_sse2(st_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  bool ok() const { return st_ != nullptr; }
  void Update(const void* p, size_t n) {
    avx2_ ? hash_impl::Xxh3_128_update_avx2(st_, p, n) : hash_impl::Xxh3_128_update_sse2(st_, p, n);
  }
  void Digest(uint8_t out[16]) {
    avx2_ ? hash_impl::Xxh3_128_digest_avx2(st_, out) : hash_impl::Xxh3_128_digest_sse2(st_, out);
  }

 private:
  bool avx2_;
  void* st_;
};

}  // namespace

bool CastIdSupported(DType from, DType to) {
  return CastSupported(from, to) && DTypeSize(from) == 2 * DTypeSize(to);
}

Err ContentIdWithCasts(const void* data, size_t nbytes, DType dtype, const std::vector<uint64_t>& shape,
                       const std::vector<DType>& targets, Digest128* out, std::vector<Digest128>* cast_ids,
                       int threads) {
  CORAL_TRY(CheckShape(nbytes, dtype, shape));
  if (targets.size() > 4) return Err::Make(Status::InvalidArgument, "at most 4 cast targets");
  for (DType t : targets)
    if (!ValidDType(static_cast<int>(t)) || !CastIdSupported(dtype, t))
      return Err::Make(Status::InvalidArgument, std::string("no cast id from ") + DTypeName(dtype) + " to " +
                                                    (ValidDType(static_cast<int>(t)) ? DTypeName(t) : "?") +
                                                    " (F32 -> BF16/F16, F64 -> F32)");
  const size_t ws = DTypeSize(dtype);
  const size_t chunks = nbytes == 0 ? 0 : (nbytes + kIdChunkBytes - 1) / kIdChunkBytes;
  const size_t nn = nbytes / 2;  // every target is half as wide
  const size_t units = nn == 0 ? 0 : (nn + kIdChunkBytes - 1) / kIdChunkBytes;  // chunks of each cast
  std::string desc;
  const size_t head = Descriptor(desc, dtype, shape, nbytes, chunks);
  std::vector<std::string> cdesc(targets.size());
  std::vector<size_t> chead(targets.size());
  for (size_t k = 0; k < targets.size(); ++k) chead[k] = Descriptor(cdesc[k], targets[k], shape, nn, units);

  // Unit j: the cast chunk j of every target, i.e. source chunks 2j and 2j+1.
  // Blocks of kBlock elements (16 or 32 KiB of source, a divisor of a chunk) are
  // hashed into their source chunk's stream, and cast (RNE, the CAST codec's
  // kernels) into a small buffer hashed into each target's stream: the source
  // is read once and no cast tensor is ever built.
  constexpr size_t kBlock = 4096;
  const bool avx2 = HashUsesAvx2();
  const auto* src = static_cast<const uint8_t*>(data);
  std::vector<uint8_t> failed(units, 0);
  auto unit = [&](size_t j) {
    Stream base(avx2);
    std::vector<std::unique_ptr<Stream>> cs;
    bool ok = base.ok();
    for (size_t k = 0; k < targets.size(); ++k) {
      cs.emplace_back(new Stream(avx2));
      ok = ok && cs.back()->ok();
    }
    if (!ok) {
      failed[j] = 1;
      return;
    }
    alignas(64) uint8_t buf[kBlock * 4];
    const size_t begin = j * 2 * kIdChunkBytes, end = std::min(nbytes, begin + 2 * kIdChunkBytes);
    for (size_t off = begin; off < end;) {
      const size_t chunk_end = std::min(end, (off / kIdChunkBytes + 1) * kIdChunkBytes);
      const size_t len = std::min(kBlock * ws, chunk_end - off);
      base.Update(src + off, len);
      for (size_t k = 0; k < targets.size(); ++k) {
        CastSpan(dtype, src + off, targets[k], buf, len / ws, CastRounding::kNearestEven);
        cs[k]->Update(buf, len / 2);
      }
      off += len;
      if (off == chunk_end) base.Digest(reinterpret_cast<uint8_t*>(&desc[head + 16 * ((off - 1) / kIdChunkBytes)]));
    }
    for (size_t k = 0; k < targets.size(); ++k) cs[k]->Digest(reinterpret_cast<uint8_t*>(&cdesc[k][chead[k] + 16 * j]));
  };
  ParallelFor(units, unit, units >= 4 ? threads : 1);
  for (uint8_t f : failed)
    if (f) return Err::Make(Status::OutOfMemory, "cannot allocate hash states");
  *out = Xxh3_128(desc.data(), desc.size());
  cast_ids->resize(targets.size());
  for (size_t k = 0; k < targets.size(); ++k) (*cast_ids)[k] = Xxh3_128(cdesc[k].data(), cdesc[k].size());
  return Err::Ok();
}

}  // namespace coral
