// Exports: FileWriter (class over kernels/direct_io.h AlignedFileWriter).
//
// new FileWriter(path, mode, flags) creates the file exclusively (flags: 1 = also hash the
// bytes with SHA-256 as they are copied, on the pool thread; sha256() returns it after finish); appendAsync(bytes) copies the
// bytes out and writes them on the libuv pool; finish() writes the rest, sets the exact
// size, fsyncs and closes, resolving with the byte count; abort() closes without fsync.
// One call at a time: a call made before the previous one's promise settled is refused
// (pool workers may run in any order), and a mutex keeps abort() from racing a write. The class carries a napi type tag.
#include <napi.h>

#include <memory>
#include <mutex>
#include <string>

#include "kernels/direct_io.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

const napi_type_tag kFileWriterTag = {0x3c5e7a9b1d2f4068ULL, 0xb7d9f1a3c5e70214ULL};

// Constructor flags.
constexpr uint32_t kFlagSha256 = 1;  // hash the appended bytes (AlignedFileWriter::EnableSha256)

struct Shared {
  std::mutex mu;
  std::unique_ptr<AlignedFileWriter> w;
  bool busy = false;
  bool hashing = false;
  std::string sha256;  // the digest, once finished
};

class JsFileWriter : public Napi::ObjectWrap<JsFileWriter> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function ctor = DefineClass(env, "FileWriter", {});
    auto proto = ctor.Get("prototype").As<Napi::Object>();
    proto.DefineProperty(
        Napi::PropertyDescriptor::Value("appendAsync", Napi::Function::New(env, JsAppendAsync, "appendAsync"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("finish", Napi::Function::New(env, JsFinish, "finish"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("abort", Napi::Function::New(env, JsAbort, "abort"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("direct", Napi::Function::New(env, JsDirect, "direct"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("sha256", Napi::Function::New(env, JsSha256, "sha256"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("hashing", Napi::Function::New(env, JsHashing, "hashing"), napi_writable));
    return ctor;
  }

  explicit JsFileWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsFileWriter>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) ThrowInvalid(env, "FileWriter must be called with new");
    if (!info[0].IsString()) ThrowInvalid(env, "Expected string for path");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    unsigned mode = 0644;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsNumber()) ThrowInvalid(env, "Expected number for mode");
      mode = info[1].As<Napi::Number>().Uint32Value() & 07777;
    }
    uint32_t flags = 0;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (!info[2].IsNumber()) ThrowInvalid(env, "Expected number for flags");
      flags = info[2].As<Napi::Number>().Uint32Value();
    }
    s_ = std::make_shared<Shared>();
    Err e = AlignedFileWriter::Create(path, mode, &s_->w);
    if (!e.ok()) ThrowErr(env, e);
    if (flags & kFlagSha256) s_->hashing = s_->w->EnableSha256();
    if (napi_type_tag_object(env, info.This(), &kFileWriterTag) != napi_ok) ThrowInvalid(env, "cannot tag FileWriter");
  }

 private:
  static JsFileWriter* Self(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool ok = false;
    if (info.This().IsObject() && napi_check_object_type_tag(env, info.This(), &kFileWriterTag, &ok) != napi_ok) ok = false;
    if (!ok) ThrowInvalid(env, "Expected a FileWriter as this");
    JsFileWriter* p = Unwrap(info.This().As<Napi::Object>());
    if (!p) ThrowInvalid(env, "Expected a FileWriter as this");
    return p;
  }

  // Claims the writer for one call; refuses overlapping calls and finished writers.
  static std::shared_ptr<Shared> Claim(const Napi::CallbackInfo& info) {
    JsFileWriter* f = Self(info);
    std::lock_guard<std::mutex> lock(f->s_->mu);
    if (!f->s_->w) ThrowInvalid(info.Env(), "FileWriter is already finished or aborted");
    if (f->s_->busy) ThrowInvalid(info.Env(), "FileWriter: await the previous call before the next");
    f->s_->busy = true;
    return f->s_;
  }

  static void Done(const std::shared_ptr<Shared>& s) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->busy = false;
  }

  class AppendWorker : public PromiseWorker {
   public:
    AppendWorker(Napi::Env env, std::shared_ptr<Shared> s, ByteView b)
        : PromiseWorker(env, "coral.fileAppend"), s_(std::move(s)), b_(b) {}
    // Runs on the JS thread once the promise has settled: the next call may come.
    ~AppendWorker() override { Done(s_); }

   protected:
    Err Run() override {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (!s_->w) return Err::Make(Status::InvalidArgument, "FileWriter was aborted");
      return s_->w->Append(b_.data, b_.size);
    }
    Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

   private:
    std::shared_ptr<Shared> s_;
    ByteView b_;
  };

  static Napi::Value JsAppendAsync(const Napi::CallbackInfo& info) {
    ByteView b = GetBytes(info[0], "data");
    auto s = Claim(info);
    auto* worker = new AppendWorker(info.Env(), std::move(s), b);
    worker->Keep(info[0]);
    return worker->Start();
  }

  class FinishWorker : public PromiseWorker {
   public:
    FinishWorker(Napi::Env env, std::shared_ptr<Shared> s) : PromiseWorker(env, "coral.fileFinish"), s_(std::move(s)) {}
    ~FinishWorker() override { Done(s_); }

   protected:
    Err Run() override {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (!s_->w) return Err::Make(Status::InvalidArgument, "FileWriter was aborted");
      Err e = s_->w->Finish(&size_);
      if (e.ok()) s_->sha256 = s_->w->sha256_hex();
      s_->w.reset();
      return e;
    }
    Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(size_)); }

   private:
    std::shared_ptr<Shared> s_;
    uint64_t size_ = 0;
  };

  static Napi::Value JsFinish(const Napi::CallbackInfo& info) {
    auto s = Claim(info);
    return (new FinishWorker(info.Env(), std::move(s)))->Start();
  }

  // Closes without fsync; a pending append fails. Idempotent.
  static Napi::Value JsAbort(const Napi::CallbackInfo& info) {
    JsFileWriter* f = Self(info);
    std::lock_guard<std::mutex> lock(f->s_->mu);
    f->s_->w.reset();
    return info.Env().Undefined();
  }

  static Napi::Value JsDirect(const Napi::CallbackInfo& info) {
    JsFileWriter* f = Self(info);
    std::lock_guard<std::mutex> lock(f->s_->mu);
    return Napi::Boolean::New(info.Env(), f->s_->w && f->s_->w->direct());
  }

  // The SHA-256 (hex) of what was written: after finish() resolved, when the writer was made
  // with the sha256 flag and the host offers SHA-256; else null.
  static Napi::Value JsSha256(const Napi::CallbackInfo& info) {
    JsFileWriter* f = Self(info);
    std::lock_guard<std::mutex> lock(f->s_->mu);
    if (f->s_->sha256.empty()) return info.Env().Null();
    return Napi::String::New(info.Env(), f->s_->sha256);
  }

  // True when made with the sha256 flag and the host offers SHA-256 (else the caller hashes).
  static Napi::Value JsHashing(const Napi::CallbackInfo& info) {
    JsFileWriter* f = Self(info);
    std::lock_guard<std::mutex> lock(f->s_->mu);
    return Napi::Boolean::New(info.Env(), f->s_->hashing);
  }

  std::shared_ptr<Shared> s_;
};

void InitFile(Napi::Env env, Napi::Object exports) { exports.Set("FileWriter", JsFileWriter::Define(env)); }

}  // namespace

CORAL_REGISTER(file, InitFile);

}  // namespace coral
