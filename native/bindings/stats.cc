// Exports: diffStats, diffStatsAsync.
#include <napi.h>

#include "kernels/stats.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

struct StatsArgs {
  DType dtype;
  ByteView a, b;
  size_t n;
};

StatsArgs ReadArgs(const Napi::CallbackInfo& info) {
  StatsArgs s;
  s.dtype = static_cast<DType>(GetDType(info[0], "dtype"));
  s.a = GetBytes(info[1], "a");
  s.b = GetBytes(info[2], "b");
  size_t es = DTypeSize(s.dtype);
  if (s.a.size != s.b.size || s.a.size % es != 0)
    ThrowInvalid(info.Env(), "diffStats: a and b must have the same whole number of elements");
  s.n = s.a.size / es;
  return s;
}

Napi::Value Pack(Napi::Env env, const DiffStats& d) {
  auto o = Napi::Object::New(env);
  o.Set("changed", static_cast<double>(d.changed));
  o.Set("nonFinite", static_cast<double>(d.nonFinite));
  o.Set("maxAbs", d.maxAbs);
  o.Set("sumSqDiff", d.sumSqDiff);
  o.Set("sumSqA", d.sumSqA);
  o.Set("sumSqB", d.sumSqB);
  o.Set("dot", d.dot);
  return o;
}

Napi::Value JsDiffStats(const Napi::CallbackInfo& info) {
  StatsArgs s = ReadArgs(info);
  return Pack(info.Env(), ComputeDiffStats(s.dtype, s.a.data, s.b.data, s.n));
}

class StatsWorker : public PromiseWorker {
 public:
  StatsWorker(Napi::Env env, StatsArgs s) : PromiseWorker(env, "coral.diffStats"), s_(s) {}

 protected:
  Err Run() override {
    out_ = ComputeDiffStats(s_.dtype, s_.a.data, s_.b.data, s_.n);
    return Err::Ok();
  }
  Napi::Value Result(Napi::Env env) override { return Pack(env, out_); }

 private:
  StatsArgs s_;
  DiffStats out_;
};

Napi::Value JsDiffStatsAsync(const Napi::CallbackInfo& info) {
  auto* w = new StatsWorker(info.Env(), ReadArgs(info));
  w->Keep(info[1]);
  w->Keep(info[2]);
  return w->Start();
}

void InitStats(Napi::Env env, Napi::Object exports) {
  exports.Set("diffStats", Napi::Function::New(env, JsDiffStats, "diffStats"));
  exports.Set("diffStatsAsync", Napi::Function::New(env, JsDiffStatsAsync, "diffStatsAsync"));
}

}  // namespace

CORAL_REGISTER(stats, InitStats);

}  // namespace coral
