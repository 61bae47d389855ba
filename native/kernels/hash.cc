#include "kernels/hash.h"

#include <cstdlib>
#include <cstring>

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

Err ContentId(const void* data, size_t nbytes, DType dtype, const std::vector<uint64_t>& shape, Digest128* out,
              int threads) {
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
  const size_t chunks = nbytes == 0 ? 0 : (nbytes + kIdChunkBytes - 1) / kIdChunkBytes;

  std::string desc = "coral.tensor.v1";
  desc.push_back('\0');
  desc += DTypeName(dtype);
  desc.push_back('\0');
  PutU32(desc, static_cast<uint32_t>(shape.size()));
  for (uint64_t d : shape) PutU64(desc, d);
  PutU64(desc, nbytes);
  PutU64(desc, kIdChunkBytes);
  const size_t head = desc.size();
  desc.resize(head + 16 * chunks);

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

}  // namespace coral
