#include "util/registry.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace coral {

static std::vector<std::pair<std::string, InitFn>>& Registry() {
  static std::vector<std::pair<std::string, InitFn>> r;
  return r;
}

Registrar::Registrar(const char* name, InitFn fn) { Registry().emplace_back(name, fn); }

void InitAll(Napi::Env env, Napi::Object exports) {
  auto& r = Registry();
  // Deterministic order whatever the link order was.
  std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, fn] : r) fn(env, exports);
}

}  // namespace coral
