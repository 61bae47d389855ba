// Self-registration of exported families. Each bindings/*.cc file declares
//   CORAL_REGISTER(hash, InitHash);
// and addon.cc calls InitAll once; no shared list to edit when adding a family.
#pragma once
#include <napi.h>

namespace coral {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);

struct Registrar {
  Registrar(const char* name, InitFn fn);
};

void InitAll(Napi::Env env, Napi::Object exports);

}  // namespace coral

#define CORAL_REGISTER(name, fn) static ::coral::Registrar coral_registrar_##name(#name, fn)
