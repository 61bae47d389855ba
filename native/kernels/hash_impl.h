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
// Streaming XXH3-128 (same digest as the one-shot call over the concatenated
// input): a state from _new_ (null when out of memory), fed by _update_, read
// (and reset) by _digest_, freed by _free_ of the same instruction set.
void* Xxh3_128_new_sse2();
void Xxh3_128_update_sse2(void* st, const void* data, size_t len);
void Xxh3_128_digest_sse2(void* st, uint8_t out[16]);
void Xxh3_free_sse2(void* st);
void* Xxh3_128_new_avx2();
void Xxh3_128_update_avx2(void* st, const void* data, size_t len);
void Xxh3_128_digest_avx2(void* st, uint8_t out[16]);
void Xxh3_free_avx2(void* st);
}  // namespace hash_impl
}  // namespace coral
