#include "kernels/sha256.h"

#include <dlfcn.h>

#include <mutex>

namespace coral {
namespace {

// The EVP entry points, with their OpenSSL (1.1, 3.x) signatures; contexts stay opaque.
struct Evp {
  void* (*ctx_new)();
  void (*ctx_free)(void*);
  const void* (*sha256)();
  int (*init)(void*, const void*, void*);
  int (*update)(void*, const void*, size_t);
  int (*final)(void*, unsigned char*, unsigned int*);
  bool ok;
};

const Evp& TheEvp() {
  static Evp evp;
  static std::once_flag once;
  std::call_once(once, [] {
    auto sym = [](const char* name) { return dlsym(RTLD_DEFAULT, name); };
    evp.ctx_new = reinterpret_cast<void* (*)()>(sym("EVP_MD_CTX_new"));
    evp.ctx_free = reinterpret_cast<void (*)(void*)>(sym("EVP_MD_CTX_free"));
    evp.sha256 = reinterpret_cast<const void* (*)()>(sym("EVP_sha256"));
    evp.init = reinterpret_cast<int (*)(void*, const void*, void*)>(sym("EVP_DigestInit_ex"));
    evp.update = reinterpret_cast<int (*)(void*, const void*, size_t)>(sym("EVP_DigestUpdate"));
    evp.final = reinterpret_cast<int (*)(void*, unsigned char*, unsigned int*)>(sym("EVP_DigestFinal_ex"));
    evp.ok = evp.ctx_new && evp.ctx_free && evp.sha256 && evp.init && evp.update && evp.final;
  });
  return evp;
}

}  // namespace

std::unique_ptr<Sha256> Sha256::Create() {
  const Evp& evp = TheEvp();
  if (!evp.ok) return nullptr;
  std::unique_ptr<Sha256> h(new Sha256());
  h->ctx_ = evp.ctx_new();
  if (!h->ctx_) return nullptr;
  const void* md = evp.sha256();
  if (!md || evp.init(h->ctx_, md, nullptr) != 1) return nullptr;
  return h;
}

Sha256::~Sha256() {
  if (ctx_) TheEvp().ctx_free(ctx_);
}

void Sha256::Update(const void* data, size_t n) {
  if (ok_ && n > 0 && TheEvp().update(ctx_, data, n) != 1) ok_ = false;
}

bool Sha256::FinalHex(std::string* hex) {
  unsigned char md[32];
  unsigned int len = 0;
  if (!ok_ || TheEvp().final(ctx_, md, &len) != 1 || len != sizeof md) return ok_ = false;
  static const char* digits = "0123456789abcdef";
  hex->resize(64);
  for (unsigned i = 0; i < 32; ++i) {
    (*hex)[2 * i] = digits[md[i] >> 4];
    (*hex)[2 * i + 1] = digits[md[i] & 15];
  }
  ok_ = false;  // final once
  return true;
}

}  // namespace coral
