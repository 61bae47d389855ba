// SHA-256 through the host process's OpenSSL.
//
// Node.js exports its libcrypto (EVP_*) to addons. The functions are looked up at run time
// (dlsym), not linked, so the addon still loads in a host that does not export them (an
// embedder with another crypto library): Sha256::Create() then returns null and the caller
// hashes elsewhere (lib/worktree/materialize.ts falls back to node:crypto). Used where bytes
// are already on a pool thread (the FileWriter hashes what it writes, in order), so a
// checkout's file hash runs beside the decode instead of on the event loop.
//
// Thread: a Sha256 is used by one thread at a time; Create from any thread.
// Ownership: Update borrows its input for the call.
// Errors: none reported: Create returns null when the functions are missing or a context
// cannot be made; Final returns false when the library reports a failure.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace coral {

class Sha256 {
 public:
  // A fresh hasher, or null when the host's OpenSSL is not available.
  static std::unique_ptr<Sha256> Create();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t n);
  // The digest as 64 lowercase hex characters; false when the library failed (then and
  // after any failed Update). Call once.
  bool FinalHex(std::string* hex);

 private:
  Sha256() = default;
  void* ctx_ = nullptr;
  bool ok_ = true;
};

}  // namespace coral
