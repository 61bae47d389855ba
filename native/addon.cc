// Module init only: every exported family registers itself (util/registry.h).
#include <napi.h>

#include "util/registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  coral::InitAll(env, exports);
  return exports;
}

NODE_API_MODULE(coral, Init)
