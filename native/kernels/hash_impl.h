// Internal: one XXH3 entry point per instruction set. hash_sse2.cc and
// hash_avx2.cc each include xxhash.h inline with a fixed vector width.
#pragma once
#include <cstddef>
#include <cstdint>

namespace coral {
namespace hash_impl {
void Xxh3_128_sse2(const void* data, size_t len, uint8_t out[16]);
void Xxh3_128_avx2(const void* data, size_t len, uint8_t out[16]);
uint64_t Xxh3_64_sse2(const void* data, size_t len, uint64_t seed);
uint64_t Xxh3_64_avx2(const void* data, size_t len, uint64_t seed);
}  // namespace hash_impl
}  // namespace coral
