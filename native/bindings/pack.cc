// Exports: PackWriter, PackReader (classes over kernels/h5pack.h).
//
// Both classes carry a napi type tag; every method checks the tag of `this`
// before unwrapping, so a PackReader can never be used as a PackWriter.
// Native state sits behind a shared_ptr: async workers hold their own
// reference, so close()/abort()/GC while work is pending only drops the JS
// side's reference and the HDF5 file is closed when the last worker ends.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/h5pack.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

const napi_type_tag kWriterTag = {0x6b1f2c9d4e3a5b70ULL, 0x91c3a8f2d6e4b105ULL};
const napi_type_tag kReaderTag = {0x2d7e9a1c5b3f4e60ULL, 0xa4b2c6d8e0f13579ULL};

template <class T>
T* UnwrapTagged(const Napi::CallbackInfo& info, const napi_type_tag& tag, const char* cls) {
  Napi::Env env = info.Env();
  Napi::Value self = info.This();
  bool ok = false;
  if (self.IsObject() && napi_check_object_type_tag(env, self, &tag, &ok) != napi_ok) ok = false;
  if (!ok) ThrowInvalid(env, std::string("Expected a ") + cls + " as this");
  T* p = T::Unwrap(self.As<Napi::Object>());
  if (!p) ThrowInvalid(env, std::string("Expected a ") + cls + " as this");
  return p;
}

std::string GetStr(const Napi::Value& v, const char* what) {
  if (!v.IsString()) ThrowInvalid(v.Env(), std::string("Expected string for ") + what);
  return v.As<Napi::String>().Utf8Value();
}

uint64_t GetU64Value(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowInvalid(v.Env(), std::string("Expected non-negative integer for ") + what);
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 9007199254740991.0 && static_cast<double>(static_cast<uint64_t>(d)) == d)
      return static_cast<uint64_t>(d);
  }
  ThrowInvalid(v.Env(), std::string("Expected non-negative integer for ") + what);
}

// put(id, data, {codec, dtype, shape, base?, rawSize, extra?})
PackObject ReadPutArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PackObject o;
  o.id = GetStr(info[0], "id");
  if (!info[2].IsObject()) ThrowInvalid(env, "Expected object for attrs");
  auto a = info[2].As<Napi::Object>();
  o.codec = GetStr(a.Get("codec"), "attrs.codec");
  o.dtype = GetStr(a.Get("dtype"), "attrs.dtype");
  for (uint64_t d : GetShape(a.Get("shape"), "attrs.shape")) {
    if (d > static_cast<uint64_t>(INT64_MAX)) ThrowInvalid(env, "dimension out of range in attrs.shape");
    o.shape.push_back(static_cast<int64_t>(d));
  }
  o.base = GetString(a, "base", "");
  o.raw_size = GetU64Value(a.Get("rawSize"), "attrs.rawSize");
  Napi::Value extra = a.Get("extra");
  if (!extra.IsUndefined() && !extra.IsNull()) {
    if (!extra.IsObject() || extra.IsArray()) ThrowInvalid(env, "Expected object of strings for attrs.extra");
    auto eo = extra.As<Napi::Object>();
    Napi::Array keys = eo.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
      if (!ValidExtraAttrName(k)) ThrowInvalid(env, "invalid extra attribute name \"" + k + "\"");
      o.extra.emplace_back(k, GetStr(eo.Get(k), "attrs.extra value"));
    }
  }
  return o;
}

Napi::Value OffsetValue(Napi::Env env, uint64_t off) {
  if (off == kPackNoOffset) return env.Null();
  return Napi::Number::New(env, static_cast<double>(off));
}

std::string DatasetName(const PackObject& o) {
  if (!o.small) return "/objects/" + o.id;
  return o.small_part < 0 ? "/small/data" : "/small/data" + std::to_string(o.small_part);
}

Napi::Object PutResult(Napi::Env env, const PackObject& o, uint64_t room) {
  auto r = Napi::Object::New(env);
  r.Set("checksum", o.checksum);
  r.Set("size", Napi::Number::New(env, static_cast<double>(o.size)));
  r.Set("offset", OffsetValue(env, o.offset));
  r.Set("dataset", DatasetName(o));
  r.Set("room", Napi::Number::New(env, static_cast<double>(room)));
  return r;
}

Napi::Object EntryValue(Napi::Env env, const PackObject& o) {
  auto r = Napi::Object::New(env);
  r.Set("id", o.id);
  r.Set("codec", o.codec);
  r.Set("dtype", o.dtype);
  auto shape = Napi::Array::New(env, o.shape.size());
  for (size_t i = 0; i < o.shape.size(); ++i)
    shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(o.shape[i])));
  r.Set("shape", shape);
  r.Set("base", o.base);
  r.Set("rawSize", Napi::Number::New(env, static_cast<double>(o.raw_size)));
  r.Set("checksum", o.checksum);
  r.Set("size", Napi::Number::New(env, static_cast<double>(o.size)));
  r.Set("offset", OffsetValue(env, o.offset));
  r.Set("dataset", DatasetName(o));
  auto extra = Napi::Object::New(env);
  for (auto& kv : o.extra) extra.Set(kv.first, kv.second);
  r.Set("extra", extra);
  return r;
}

// ---- PackWriter ---------------------------------------------------------------------------

class JsPackWriter : public Napi::ObjectWrap<JsPackWriter> {
 public:
  static Napi::Function Define(Napi::Env env) {
    // Methods are plain functions on the prototype so each can check the type tag
    // of `this` before unwrapping.
    Napi::Function ctor = DefineClass(env, "PackWriter", {});
    auto proto = ctor.Get("prototype").As<Napi::Object>();
    proto.DefineProperty(Napi::PropertyDescriptor::Value("put", Napi::Function::New(env, JsPut, "put"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("putAsync", Napi::Function::New(env, JsPutAsync, "putAsync"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("finish", Napi::Function::New(env, JsFinish, "finish"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("abort", Napi::Function::New(env, JsAbort, "abort"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("count", Napi::Function::New(env, JsCount, "count"), napi_writable));
    return ctor;
  }

  explicit JsPackWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsPackWriter>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) ThrowInvalid(env, "PackWriter must be called with new");
    std::string path = GetStr(info[0], "path");
    uint64_t small_max = kPackDefaultSmallMax;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsObject() || info[1].IsArray()) ThrowInvalid(env, "Expected object for options");
      Napi::Value v = info[1].As<Napi::Object>().Get("smallObjectMax");
      if (!v.IsUndefined()) small_max = GetU64Value(v, "options.smallObjectMax");
    }
    std::unique_ptr<PackWriterFile> f;
    Err e = PackWriterFile::Create(path, small_max, &f);
    if (!e.ok()) ThrowErr(env, e);
    file_ = std::shared_ptr<PackWriterFile>(std::move(f));
    if (napi_type_tag_object(env, info.This(), &kWriterTag) != napi_ok) ThrowInvalid(env, "cannot tag PackWriter");
  }

 private:
  static JsPackWriter* Self(const Napi::CallbackInfo& info) {
    auto* w = UnwrapTagged<JsPackWriter>(info, kWriterTag, "PackWriter");
    if (!w->file_) ThrowInvalid(info.Env(), "PackWriter is already finished or aborted");
    return w;
  }

  static Napi::Value JsPut(const Napi::CallbackInfo& info) {
    JsPackWriter* w = Self(info);
    ByteView b = GetBytes(info[1], "data");
    PackObject o = ReadPutArgs(info);
    uint64_t room = 0;
    Err e = w->file_->Put(&o, b.data, b.size, &room);
    if (!e.ok()) ThrowErr(info.Env(), e);
    return PutResult(info.Env(), o, room);
  }

  class PutWorker : public PromiseWorker {
   public:
    PutWorker(Napi::Env env, std::shared_ptr<PackWriterFile> f, PackObject&& o, ByteView b)
        : PromiseWorker(env, "coral.packPut"), f_(std::move(f)), o_(std::move(o)), b_(b) {}

   protected:
    Err Run() override { return f_->Put(&o_, b_.data, b_.size, &room_); }
    Napi::Value Result(Napi::Env env) override { return PutResult(env, o_, room_); }

   private:
    std::shared_ptr<PackWriterFile> f_;
    PackObject o_;
    ByteView b_;
    uint64_t room_ = 0;
  };

  static Napi::Value JsPutAsync(const Napi::CallbackInfo& info) {
    JsPackWriter* w = Self(info);
    ByteView b = GetBytes(info[1], "data");
    PackObject o = ReadPutArgs(info);
    auto* worker = new PutWorker(info.Env(), w->file_, std::move(o), b);
    worker->Keep(info[1]);
    return worker->Start();
  }

  class FinishWorker : public PromiseWorker {
   public:
    FinishWorker(Napi::Env env, std::shared_ptr<PackWriterFile> f)
        : PromiseWorker(env, "coral.packFinish"), f_(std::move(f)) {}

   protected:
    Err Run() override { return f_->Finish(&size_, &entries_); }
    Napi::Value Result(Napi::Env env) override {
      auto r = Napi::Object::New(env);
      r.Set("size", Napi::Number::New(env, static_cast<double>(size_)));
      auto arr = Napi::Array::New(env, entries_.size());
      for (size_t i = 0; i < entries_.size(); ++i) arr.Set(static_cast<uint32_t>(i), EntryValue(env, entries_[i]));
      r.Set("entries", arr);
      return r;
    }

   private:
    std::shared_ptr<PackWriterFile> f_;
    uint64_t size_ = 0;
    std::vector<PackObject> entries_;
  };

  // Resolves with {size, entries}: the final file size and every object with its final
  // offset, sorted by id. Afterwards the writer is unusable.
  static Napi::Value JsFinish(const Napi::CallbackInfo& info) {
    JsPackWriter* w = Self(info);
    auto* worker = new FinishWorker(info.Env(), std::move(w->file_));
    w->file_.reset();
    return worker->Start();
  }

  static Napi::Value JsAbort(const Napi::CallbackInfo& info) {
    auto* w = UnwrapTagged<JsPackWriter>(info, kWriterTag, "PackWriter");
    if (w->file_) {
      // Pending putAsync workers keep their own reference; Abort makes their
      // remaining calls fail fast, and the file closes now.
      w->file_->Abort();
      w->file_.reset();
    }
    return info.Env().Undefined();
  }

  static Napi::Value JsCount(const Napi::CallbackInfo& info) {
    JsPackWriter* w = Self(info);
    return Napi::Number::New(info.Env(), static_cast<double>(w->file_->count()));
  }

  std::shared_ptr<PackWriterFile> file_;
};

// ---- PackReader ---------------------------------------------------------------------------

class JsPackReader : public Napi::ObjectWrap<JsPackReader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    // Methods are plain functions on the prototype so each can check the type tag
    // of `this` before unwrapping.
    Napi::Function ctor = DefineClass(env, "PackReader", {});
    auto proto = ctor.Get("prototype").As<Napi::Object>();
    proto.DefineProperty(Napi::PropertyDescriptor::Value("meta", Napi::Function::New(env, JsMeta, "meta"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("stat", Napi::Function::New(env, JsStat, "stat"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("list", Napi::Function::New(env, JsList, "list"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("read", Napi::Function::New(env, JsRead, "read"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("readSync", Napi::Function::New(env, JsReadSync, "readSync"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("readInto", Napi::Function::New(env, JsReadInto, "readInto"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("readIntoSync", Napi::Function::New(env, JsReadIntoSync, "readIntoSync"), napi_writable));
    proto.DefineProperty(Napi::PropertyDescriptor::Value("close", Napi::Function::New(env, JsClose, "close"), napi_writable));
    return ctor;
  }

  explicit JsPackReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsPackReader>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) ThrowInvalid(env, "PackReader must be called with new");
    std::string path = GetStr(info[0], "path");
    std::unique_ptr<PackReaderFile> f;
    Err e = PackReaderFile::Open(path, &f);
    if (!e.ok()) ThrowErr(env, e);
    file_ = std::shared_ptr<PackReaderFile>(std::move(f));
    if (napi_type_tag_object(env, info.This(), &kReaderTag) != napi_ok) ThrowInvalid(env, "cannot tag PackReader");
  }

 private:
  static JsPackReader* Self(const Napi::CallbackInfo& info) {
    auto* r = UnwrapTagged<JsPackReader>(info, kReaderTag, "PackReader");
    if (!r->file_) ThrowInvalid(info.Env(), "PackReader is closed");
    return r;
  }

  static Napi::Value JsMeta(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    const PackMeta& m = r->file_->meta();
    auto o = Napi::Object::New(info.Env());
    o.Set("format", m.format);
    o.Set("created", m.created);
    o.Set("createdUnixMs", Napi::Number::New(info.Env(), static_cast<double>(m.created_unix_ms)));
    return o;
  }

  static Napi::Value JsStat(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    std::string id = GetStr(info[0], "id");
    PackObject o;
    Err e = r->file_->Stat(id, &o);
    if (!e.ok()) ThrowErr(info.Env(), e);
    return EntryValue(info.Env(), o);
  }

  class ListWorker : public PromiseWorker {
   public:
    ListWorker(Napi::Env env, std::shared_ptr<PackReaderFile> f) : PromiseWorker(env, "coral.packList"), f_(std::move(f)) {}

   protected:
    Err Run() override { return f_->List(&out_); }
    Napi::Value Result(Napi::Env env) override {
      auto arr = Napi::Array::New(env, out_.size());
      for (size_t i = 0; i < out_.size(); ++i) arr.Set(static_cast<uint32_t>(i), EntryValue(env, out_[i]));
      return arr;
    }

   private:
    std::shared_ptr<PackReaderFile> f_;
    std::vector<PackObject> out_;
  };

  static Napi::Value JsList(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    return (new ListWorker(info.Env(), r->file_))->Start();
  }

  class ReadWorker : public PromiseWorker {
   public:
    ReadWorker(Napi::Env env, std::shared_ptr<PackReaderFile> f, std::string id, ByteView dst, bool into)
        : PromiseWorker(env, "coral.packRead"), f_(std::move(f)), id_(std::move(id)), dst_(dst), into_(into) {}

   protected:
    Err Run() override {
      if (into_) return f_->ReadInto(id_, dst_.data, dst_.size, &size_);
      return f_->Read(id_, &buf_, &size_);
    }
    Napi::Value Result(Napi::Env env) override {
      if (into_) return Napi::Number::New(env, static_cast<double>(size_));
      return BufferFromBig(env, std::move(buf_));
    }

   private:
    std::shared_ptr<PackReaderFile> f_;
    std::string id_;
    ByteView dst_;
    bool into_;
    BigBuffer buf_;
    uint64_t size_ = 0;
  };

  static Napi::Value JsRead(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    std::string id = GetStr(info[0], "id");
    return (new ReadWorker(info.Env(), r->file_, id, ByteView{}, false))->Start();
  }

  static Napi::Value JsReadSync(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    std::string id = GetStr(info[0], "id");
    BigBuffer buf;
    uint64_t size = 0;
    Err e = r->file_->Read(id, &buf, &size);
    if (!e.ok()) ThrowErr(info.Env(), e);
    return BufferFromBig(info.Env(), std::move(buf));
  }

  static Napi::Value JsReadInto(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    std::string id = GetStr(info[0], "id");
    ByteView dst = GetBytes(info[1], "dst");
    auto* w = new ReadWorker(info.Env(), r->file_, id, dst, true);
    w->Keep(info[1]);
    return w->Start();
  }

  static Napi::Value JsReadIntoSync(const Napi::CallbackInfo& info) {
    JsPackReader* r = Self(info);
    std::string id = GetStr(info[0], "id");
    ByteView dst = GetBytes(info[1], "dst");
    uint64_t size = 0;
    Err e = r->file_->ReadInto(id, dst.data, dst.size, &size);
    if (!e.ok()) ThrowErr(info.Env(), e);
    return Napi::Number::New(info.Env(), static_cast<double>(size));
  }

  // Drops this handle's reference; the file closes once pending reads finish.
  static Napi::Value JsClose(const Napi::CallbackInfo& info) {
    auto* r = UnwrapTagged<JsPackReader>(info, kReaderTag, "PackReader");
    r->file_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<PackReaderFile> file_;
};

void InitPack(Napi::Env env, Napi::Object exports) {
  exports.Set("PackWriter", JsPackWriter::Define(env));
  exports.Set("PackReader", JsPackReader::Define(env));
}

}  // namespace

CORAL_REGISTER(pack, InitPack);

}  // namespace coral
