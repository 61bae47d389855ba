// Exports: contentId, contentIdAsync, contentIdBatch, contentIdCasts, contentIdCastsAsync, xxh3_128, xxh3_128Async.
#include <napi.h>

#include <memory>
#include <vector>

#include "kernels/hash.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

struct IdJob {
  ByteView bytes;
  DType dtype;
  std::vector<uint64_t> shape;
  Digest128 out;
};

IdJob ReadIdJob(const Napi::Value& data, const Napi::Value& dtype, const Napi::Value& shape) {
  IdJob j;
  j.bytes = GetBytes(data, "data");
  j.dtype = static_cast<DType>(GetDType(dtype, "dtype"));
  j.shape = GetShape(shape, "shape");
  return j;
}

Napi::Value JsContentId(const Napi::CallbackInfo& info) {
  IdJob j = ReadIdJob(info[0], info[1], info[2]);
  Err e = ContentId(j.bytes.data, j.bytes.size, j.dtype, j.shape, &j.out);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return Napi::String::New(info.Env(), j.out.Hex());
}

class IdWorker : public PromiseWorker {
 public:
  IdWorker(Napi::Env env, std::vector<IdJob>&& jobs, bool single)
      : PromiseWorker(env, "coral.contentId"), jobs_(std::move(jobs)), single_(single) {}

 protected:
  Err Run() override {
    for (auto& j : jobs_) CORAL_TRY(ContentId(j.bytes.data, j.bytes.size, j.dtype, j.shape, &j.out));
    return Err::Ok();
  }
  Napi::Value Result(Napi::Env env) override {
    if (single_) return Napi::String::New(env, jobs_[0].out.Hex());
    auto arr = Napi::Array::New(env, jobs_.size());
    for (size_t i = 0; i < jobs_.size(); ++i) arr.Set(static_cast<uint32_t>(i), jobs_[i].out.Hex());
    return arr;
  }

 private:
  std::vector<IdJob> jobs_;
  bool single_;
};

Napi::Value JsContentIdAsync(const Napi::CallbackInfo& info) {
  std::vector<IdJob> jobs;
  jobs.push_back(ReadIdJob(info[0], info[1], info[2]));
  auto* w = new IdWorker(info.Env(), std::move(jobs), true);
  w->Keep(info[0]);
  return w->Start();
}

Napi::Value JsContentIdBatch(const Napi::CallbackInfo& info) {
  if (!info[0].IsArray()) ThrowInvalid(info.Env(), "Expected array of {data, dtype, shape} for items");
  auto arr = info[0].As<Napi::Array>();
  std::vector<IdJob> jobs;
  jobs.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) ThrowInvalid(info.Env(), "Expected {data, dtype, shape} in items");
    auto o = item.As<Napi::Object>();
    jobs.push_back(ReadIdJob(o.Get("data"), o.Get("dtype"), o.Get("shape")));
  }
  auto* w = new IdWorker(info.Env(), std::move(jobs), false);
  w->Keep(info[0]);
  return w->Start();
}

// contentIdCasts(data, dtype, shape, targets: dtype codes) -> {id, casts: hex[]}: the
// content id plus the ids of the tensor's RNE casts (ContentIdWithCasts).
struct CastIdJob {
  IdJob id;
  std::vector<DType> targets;
  std::vector<Digest128> casts;
};

std::unique_ptr<CastIdJob> ReadCastIdJob(const Napi::CallbackInfo& info) {
  auto j = std::make_unique<CastIdJob>();
  j->id = ReadIdJob(info[0], info[1], info[2]);
  if (!info[3].IsArray()) ThrowInvalid(info.Env(), "Expected array of dtype codes for targets");
  auto arr = info[3].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) j->targets.push_back(static_cast<DType>(GetDType(arr.Get(i), "targets")));
  return j;
}

Err RunCastIdJob(CastIdJob& j) {
  return ContentIdWithCasts(j.id.bytes.data, j.id.bytes.size, j.id.dtype, j.id.shape, j.targets, &j.id.out, &j.casts);
}

Napi::Value CastIdResult(Napi::Env env, const CastIdJob& j) {
  auto o = Napi::Object::New(env);
  o.Set("id", Napi::String::New(env, j.id.out.Hex()));
  auto arr = Napi::Array::New(env, j.casts.size());
  for (size_t i = 0; i < j.casts.size(); ++i) arr.Set(static_cast<uint32_t>(i), j.casts[i].Hex());
  o.Set("casts", arr);
  return o;
}

Napi::Value JsContentIdCasts(const Napi::CallbackInfo& info) {
  auto j = ReadCastIdJob(info);
  Err e = RunCastIdJob(*j);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return CastIdResult(info.Env(), *j);
}

class CastIdWorker : public PromiseWorker {
 public:
  CastIdWorker(Napi::Env env, std::unique_ptr<CastIdJob> j) : PromiseWorker(env, "coral.contentIdCasts"), j_(std::move(j)) {}

 protected:
  Err Run() override { return RunCastIdJob(*j_); }
  Napi::Value Result(Napi::Env env) override { return CastIdResult(env, *j_); }

 private:
  std::unique_ptr<CastIdJob> j_;
};

Napi::Value JsContentIdCastsAsync(const Napi::CallbackInfo& info) {
  auto* w = new CastIdWorker(info.Env(), ReadCastIdJob(info));
  w->Keep(info[0]);
  return w->Start();
}

Napi::Value JsXxh3(const Napi::CallbackInfo& info) {
  ByteView b = GetBytes(info[0], "data");
  return Napi::String::New(info.Env(), Xxh3_128(b.data, b.size).Hex());
}

class Xxh3Worker : public PromiseWorker {
 public:
  Xxh3Worker(Napi::Env env, ByteView b) : PromiseWorker(env, "coral.xxh3"), b_(b) {}

 protected:
  Err Run() override {
    out_ = Xxh3_128(b_.data, b_.size);
    return Err::Ok();
  }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, out_.Hex()); }

 private:
  ByteView b_;
  Digest128 out_;
};

Napi::Value JsXxh3Async(const Napi::CallbackInfo& info) {
  auto* w = new Xxh3Worker(info.Env(), GetBytes(info[0], "data"));
  w->Keep(info[0]);
  return w->Start();
}

void InitHash(Napi::Env env, Napi::Object exports) {
  exports.Set("contentId", Napi::Function::New(env, JsContentId, "contentId"));
  exports.Set("contentIdAsync", Napi::Function::New(env, JsContentIdAsync, "contentIdAsync"));
  exports.Set("contentIdBatch", Napi::Function::New(env, JsContentIdBatch, "contentIdBatch"));
  exports.Set("contentIdCasts", Napi::Function::New(env, JsContentIdCasts, "contentIdCasts"));
  exports.Set("contentIdCastsAsync", Napi::Function::New(env, JsContentIdCastsAsync, "contentIdCastsAsync"));
  exports.Set("xxh3_128", Napi::Function::New(env, JsXxh3, "xxh3_128"));
  exports.Set("xxh3_128Async", Napi::Function::New(env, JsXxh3Async, "xxh3_128Async"));
}

}  // namespace

CORAL_REGISTER(hash, InitHash);

}  // namespace coral
