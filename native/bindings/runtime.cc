// Exports: sourceDigest, features, threads, setThreads, counters, allocBuffer, recycleBuffer,
// setPoolLimit.
#include <H5public.h>
#include <cmath>
#include <string>
#include <napi.h>
#include <zstd.h>

#include "coral_digest.h"
#include "kernels/hash.h"
#include "kernels/parallel.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

Napi::Value JsThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), MaxThreads()); }

Napi::Value JsSetThreads(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) ThrowInvalid(info.Env(), "Expected positive integer for threads");
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1 || n > 256) ThrowInvalid(info.Env(), "Expected integer 1..256 for threads");
  SetMaxThreads(n);
  return info.Env().Undefined();
}

Napi::Value JsCounters(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("queued", Napi::Number::New(info.Env(), static_cast<double>(Counters().queued.load())));
  o.Set("running", Napi::Number::New(info.Env(), static_cast<double>(Counters().running.load())));
  const BigBuffer::Stats st = BigBuffer::PoolStats();
  o.Set("pooledBytes", Napi::Number::New(info.Env(), static_cast<double>(st.pooled_bytes)));
  o.Set("poolHits", Napi::Number::New(info.Env(), static_cast<double>(st.hits)));
  o.Set("poolMisses", Napi::Number::New(info.Env(), static_cast<double>(st.misses)));
  return o;
}

// allocBuffer(n): n uninitialised bytes from the large-buffer pool
// (util/big_buffer.h), returned to it when the Buffer is collected.
Napi::Value JsAllocBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) ThrowInvalid(info.Env(), "Expected non-negative integer for size");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
    ThrowInvalid(info.Env(), "Expected non-negative integer for size");
  BigBuffer b = BigBuffer::Take(static_cast<size_t>(d));
  if (d > 0 && !b.data()) ThrowErr(info.Env(), Err::Make(Status::OutOfMemory, "cannot allocate " + std::to_string(static_cast<uint64_t>(d)) + " bytes"));
  return BufferFromBig(info.Env(), std::move(b));
}

// recycleBuffer(buf): gives a whole pooled buffer (allocBuffer, decode and encode results)
// back to the pool now; buf (and every view of its ArrayBuffer) becomes empty. Returns
// false, changing nothing, for any other value.
Napi::Value JsRecycleBuffer(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), RecycleBig(info.Env(), info[0]));
}

// setPoolLimit(bytes): bounds the large-buffer pool (util/big_buffer.h); the surplus is unmapped
// now. Returns the previous bound.
Napi::Value JsSetPoolLimit(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) ThrowInvalid(info.Env(), "Expected non-negative integer for pool limit");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
    ThrowInvalid(info.Env(), "Expected non-negative integer for pool limit");
  return Napi::Number::New(info.Env(), static_cast<double>(BigBuffer::SetPoolLimit(static_cast<size_t>(d))));
}

void InitRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("sourceDigest", Napi::String::New(env, CORAL_SOURCE_DIGEST));
  auto f = Napi::Object::New(env);
  f.Set("avx2", Napi::Boolean::New(env, HashUsesAvx2()));
  f.Set("zstdVersion", Napi::String::New(env, ZSTD_versionString()));
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  f.Set("hdf5Version", Napi::String::New(env, std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel)));
  exports.Set("features", f);
  exports.Set("threads", Napi::Function::New(env, JsThreads, "threads"));
  exports.Set("setThreads", Napi::Function::New(env, JsSetThreads, "setThreads"));
  exports.Set("counters", Napi::Function::New(env, JsCounters, "counters"));
  exports.Set("allocBuffer", Napi::Function::New(env, JsAllocBuffer, "allocBuffer"));
  exports.Set("recycleBuffer", Napi::Function::New(env, JsRecycleBuffer, "recycleBuffer"));
  exports.Set("setPoolLimit", Napi::Function::New(env, JsSetPoolLimit, "setPoolLimit"));
}

}  // namespace

CORAL_REGISTER(runtime, InitRuntime);

}  // namespace coral
