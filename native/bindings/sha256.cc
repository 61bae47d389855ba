// Exports: Sha256 (class over kernels/sha256.h), sha256Available.
//
// new Sha256() starts a SHA-256 of bytes given in order; updateAsync(bytes) hashes them on
// the libuv pool (the bytes must not change until it settles); digestHex() returns the hex
// digest, once. One call at a time: a call made before the previous one's promise settled is
// refused (pool workers may run in any order). The constructor throws CORAL_UNSUPPORTED when
// the host exports no SHA-256 (sha256Available() tells first). The class carries a napi type tag.
#include <napi.h>

#include <memory>
#include <mutex>
#include <string>

#include "kernels/sha256.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

const napi_type_tag kSha256Tag = {0x5d1c9e3a7b2f4c61ULL, 0x8e4a2d6c1f3b5a79ULL};

struct HashState {
  std::mutex mu;
  std::unique_ptr<Sha256> h;  // null once digested
  bool busy = false;
};

class JsSha256 : public Napi::ObjectWrap<JsSha256> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function ctor = DefineClass(env, "Sha256", {});
    auto proto = ctor.Get("prototype").As<Napi::Object>();
    proto.DefineProperty(
        Napi::PropertyDescriptor::Value("updateAsync", Napi::Function::New(env, JsUpdateAsync, "updateAsync"), napi_writable));
    proto.DefineProperty(
        Napi::PropertyDescriptor::Value("digestHex", Napi::Function::New(env, JsDigestHex, "digestHex"), napi_writable));
    return ctor;
  }

  explicit JsSha256(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsSha256>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) ThrowInvalid(env, "Sha256 must be called with new");
    s_ = std::make_shared<HashState>();
    s_->h = Sha256::Create();
    if (!s_->h) ThrowErr(env, Err::Make(Status::Unsupported, "SHA-256 is not available to native code in this host"));
    if (napi_type_tag_object(env, info.This(), &kSha256Tag) != napi_ok) ThrowInvalid(env, "cannot tag Sha256");
  }

 private:
  static JsSha256* Self(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool ok = false;
    if (info.This().IsObject() && napi_check_object_type_tag(env, info.This(), &kSha256Tag, &ok) != napi_ok) ok = false;
    if (!ok) ThrowInvalid(env, "Expected a Sha256 as this");
    JsSha256* p = Unwrap(info.This().As<Napi::Object>());
    if (!p) ThrowInvalid(env, "Expected a Sha256 as this");
    return p;
  }

  // Claims the hasher for one call; refuses overlapping calls and finished hashers.
  static std::shared_ptr<HashState> Claim(const Napi::CallbackInfo& info) {
    JsSha256* f = Self(info);
    std::lock_guard<std::mutex> lock(f->s_->mu);
    if (!f->s_->h) ThrowInvalid(info.Env(), "Sha256 is already digested");
    if (f->s_->busy) ThrowInvalid(info.Env(), "Sha256: await the previous call before the next");
    f->s_->busy = true;
    return f->s_;
  }

  class UpdateWorker : public PromiseWorker {
   public:
    UpdateWorker(Napi::Env env, std::shared_ptr<HashState> s, ByteView b)
        : PromiseWorker(env, "coral.sha256Update"), s_(std::move(s)), b_(b) {}
    // Runs on the JS thread once the promise has settled: the next call may come.
    ~UpdateWorker() override {
      std::lock_guard<std::mutex> lock(s_->mu);
      s_->busy = false;
    }

   protected:
    Err Run() override {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (s_->h) s_->h->Update(b_.data, b_.size);
      return Err::Ok();
    }
    Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

   private:
    std::shared_ptr<HashState> s_;
    ByteView b_;
  };

  static Napi::Value JsUpdateAsync(const Napi::CallbackInfo& info) {
    ByteView b = GetBytes(info[0], "data");
    auto s = Claim(info);
    auto* worker = new UpdateWorker(info.Env(), std::move(s), b);
    worker->Keep(info[0]);
    return worker->Start();
  }

  static Napi::Value JsDigestHex(const Napi::CallbackInfo& info) {
    auto s = Claim(info);
    std::string hex;
    bool ok;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      ok = s->h->FinalHex(&hex);
      s->h.reset();
      s->busy = false;
    }
    if (!ok) ThrowErr(info.Env(), Err::Make(Status::Io, "SHA-256 failed"));
    return Napi::String::New(info.Env(), hex);
  }

  std::shared_ptr<HashState> s_;
};

Napi::Value JsSha256Available(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Sha256::Create() != nullptr);
}

void InitSha256(Napi::Env env, Napi::Object exports) {
  exports.Set("Sha256", JsSha256::Define(env));
  exports.Set("sha256Available", Napi::Function::New(env, JsSha256Available, "sha256Available"));
}

}  // namespace

CORAL_REGISTER(sha256, InitSha256);

}  // namespace coral
