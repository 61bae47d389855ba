// XXH3 compiled for SSE2; selected at run time by kernels/hash.cc.
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_SSE2
#include <xxhash.h>

#include "kernels/hash_impl.h"

namespace coral {
namespace hash_impl {

void Xxh3_128_sse2(const void* data, size_t len, uint8_t out[16]) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
  for (int i = 0; i < 16; ++i) out[i] = c.digest[i];
}

uint64_t Xxh3_64_sse2(const void* data, size_t len, uint64_t seed) { return XXH3_64bits_withSeed(data, len, seed); }

void* Xxh3_128_new_sse2() {
  XXH3_state_t* st = XXH3_createState();
  if (st) XXH3_128bits_reset(st);
  return st;
}
void Xxh3_128_update_sse2(void* st, const void* data, size_t len) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(st), data, len);
}
void Xxh3_128_digest_sse2(void* st, uint8_t out[16]) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(static_cast<XXH3_state_t*>(st)));
  for (int i = 0; i < 16; ++i) out[i] = c.digest[i];
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(st));
}
void Xxh3_free_sse2(void* st) { XXH3_freeState(static_cast<XXH3_state_t*>(st)); }

}  // namespace hash_impl
}  // namespace coral
