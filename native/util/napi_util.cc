#include "util/napi_util.h"

#include <mutex>
#include <unordered_map>

#include <cmath>

#include "kernels/dtype.h"

namespace coral {

bool IsBytes(const Napi::Value& v) {
  return v.IsBuffer() || v.IsTypedArray() || v.IsDataView() || v.IsArrayBuffer();
}

ByteView GetBytes(const Napi::Value& v, const char* what) {
  ByteView out;
  if (v.IsTypedArray()) {  // covers Buffer
    auto ta = v.As<Napi::TypedArray>();
    auto ab = ta.ArrayBuffer();
    out.data = static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
    out.size = ta.ByteLength();
  } else if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    out.data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    out.size = dv.ByteLength();
  } else if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    out.data = static_cast<uint8_t*>(ab.Data());
    out.size = ab.ByteLength();
  } else {
    ThrowInvalid(v.Env(), std::string("Expected Buffer, TypedArray, DataView or ArrayBuffer for ") + what);
  }
  return out;
}

Napi::Error MakeError(Napi::Env env, const Err& e) {
  Napi::Error err = e.status == Status::InvalidArgument ? Napi::TypeError::New(env, e.message)
                                                         : Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, StatusCode(e.status)));
  return err;
}

void ThrowErr(Napi::Env env, const Err& e) { throw MakeError(env, e); }

void ThrowInvalid(Napi::Env env, const std::string& msg) {
  ThrowErr(env, Err::Make(Status::InvalidArgument, msg));
}

static Napi::Value Field(const Napi::Object& o, const char* key) { return o.Get(key); }

uint32_t GetU32(const Napi::Object& o, const char* key, uint32_t fallback) {
  Napi::Value v = Field(o, key);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!v.IsNumber() || d < 0 || d > 4294967295.0 || std::floor(d) != d)
    ThrowInvalid(o.Env(), std::string("Expected unsigned 32-bit integer for ") + key);
  return static_cast<uint32_t>(d);
}

int32_t GetI32(const Napi::Object& o, const char* key, int32_t fallback) {
  Napi::Value v = Field(o, key);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0.5;
  if (!v.IsNumber() || d < -2147483648.0 || d > 2147483647.0 || std::floor(d) != d)
    ThrowInvalid(o.Env(), std::string("Expected 32-bit integer for ") + key);
  return static_cast<int32_t>(d);
}

double GetF64(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = Field(o, key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) ThrowInvalid(o.Env(), std::string("Expected number for ") + key);
  return v.As<Napi::Number>().DoubleValue();
}

bool GetBool(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = Field(o, key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) ThrowInvalid(o.Env(), std::string("Expected boolean for ") + key);
  return v.As<Napi::Boolean>().Value();
}

std::string GetString(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = Field(o, key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) ThrowInvalid(o.Env(), std::string("Expected string for ") + key);
  return v.As<Napi::String>().Utf8Value();
}

std::vector<uint64_t> GetShape(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) ThrowInvalid(v.Env(), std::string("Expected array of dimensions for ") + what);
  auto arr = v.As<Napi::Array>();
  std::vector<uint64_t> shape(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    if (d.IsBigInt()) {
      bool lossless = false;
      shape[i] = d.As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) ThrowInvalid(v.Env(), std::string("dimension out of range in ") + what);
    } else if (d.IsNumber()) {
      double x = d.As<Napi::Number>().DoubleValue();
      if (x < 0 || std::floor(x) != x || x > 9007199254740991.0)
        ThrowInvalid(v.Env(), std::string("Expected non-negative integer dimensions for ") + what);
      shape[i] = static_cast<uint64_t>(x);
    } else {
      ThrowInvalid(v.Env(), std::string("Expected non-negative integer dimensions for ") + what);
    }
  }
  return shape;
}

int GetDType(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) ThrowInvalid(v.Env(), std::string("Expected dtype code for ") + what);
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::floor(d) != d || !ValidDType(static_cast<int>(d)))
    ThrowInvalid(v.Env(), std::string("unknown dtype code for ") + what);
  return static_cast<int>(d);
}

Napi::Buffer<uint8_t> BufferFromVector(Napi::Env env, std::vector<uint8_t>&& v) {
  auto* heap = new std::vector<uint8_t>(std::move(v));
  int64_t size = static_cast<int64_t>(heap->size());
  if (heap->empty()) {
    delete heap;
    return Napi::Buffer<uint8_t>::New(env, 0);
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, size);
  return Napi::Buffer<uint8_t>::New(env, heap->data(), heap->size(),
                                    [size](Napi::Env e, uint8_t*, std::vector<uint8_t>* p) {
                                      Napi::MemoryManagement::AdjustExternalMemory(e, -size);
                                      delete p;
                                    },
                                    heap);
}

namespace {

// One Buffer made by BufferFromBig. `given` is set once its memory went back to the pool
// (by RecycleBig or the finalizer, whichever comes first); the registry maps live data
// pointers to their record so RecycleBig can find it.
struct BigOwned {
  BigBuffer::Raw raw;
  int64_t size = 0;
  bool given = false;
};

// External memory as the JS engine sees it. A small (new[]) buffer is reported
// on its own, from creation to release. Mappings are reported as one total,
// BigBuffer::MappedBytes(): pooled ones included, since their pages stay
// resident. Handing a pooled mapping to JavaScript and taking it back then
// leaves the total unchanged, so the engine is prompted to collect only when
// the process's memory really grows (a pool miss), not once per 64 MiB of
// tensors passed through, which cost a tenth of an `add` in collections.
// Each thread reports what it last saw; with several JS threads the total is
// counted by each (more collections, never fewer).
void SyncMapped(Napi::Env env) {
  thread_local int64_t reported = 0;
  const int64_t now = static_cast<int64_t>(BigBuffer::MappedBytes());
  if (now != reported) {
    Napi::MemoryManagement::AdjustExternalMemory(env, now - reported);
    reported = now;
  }
}

// Gives an owned buffer's memory back and updates what the engine is told.
void GiveOwned(Napi::Env env, const BigOwned& o) {
  const bool mapped = o.raw.map != nullptr;
  BigBuffer::Give(o.raw);
  if (mapped)
    SyncMapped(env);
  else
    Napi::MemoryManagement::AdjustExternalMemory(env, -o.size);
}
struct BigRegistry {
  std::mutex mu;
  std::unordered_map<const uint8_t*, BigOwned*> live;
};
BigRegistry& Registry() {
  static BigRegistry* r = new BigRegistry;  // never destroyed: finalizers may run during teardown
  return *r;
}

}  // namespace

Napi::Buffer<uint8_t> BufferFromBig(Napi::Env env, BigBuffer&& b) {
  const size_t n = b.size();
  if (n == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  auto* owned = new BigOwned{b.Release(), static_cast<int64_t>(n), false};
  {
    BigRegistry& reg = Registry();
    std::lock_guard<std::mutex> lk(reg.mu);
    reg.live[owned->raw.p] = owned;
  }
  if (owned->raw.map)
    SyncMapped(env);
  else
    Napi::MemoryManagement::AdjustExternalMemory(env, owned->size);
  return Napi::Buffer<uint8_t>::New(
      env, owned->raw.p, n,
      [](Napi::Env e, uint8_t*, BigOwned* o) {
        bool give = false;
        {
          BigRegistry& reg = Registry();
          std::lock_guard<std::mutex> lk(reg.mu);
          auto it = reg.live.find(o->raw.p);
          if (it != reg.live.end() && it->second == o) reg.live.erase(it);
          give = !o->given;
          o->given = true;
        }
        if (give) GiveOwned(e, *o);
        delete o;
      },
      owned);
}

bool RecycleBig(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray()) return false;
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value ab = nullptr;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok || type != napi_uint8_array ||
      offset != 0 || data == nullptr)
    return false;
  BigOwned* o = nullptr;
  {
    BigRegistry& reg = Registry();
    std::lock_guard<std::mutex> lk(reg.mu);
    auto it = reg.live.find(static_cast<const uint8_t*>(data));
    if (it == reg.live.end() || it->second->given || static_cast<int64_t>(length) != it->second->size) return false;
    o = it->second;
  }
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) return false;
  if (napi_detach_arraybuffer(env, ab) != napi_ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    return false;
  }
  {
    BigRegistry& reg = Registry();
    std::lock_guard<std::mutex> lk(reg.mu);
    if (o->given) return true;
    o->given = true;
    auto it = reg.live.find(o->raw.p);
    if (it != reg.live.end() && it->second == o) reg.live.erase(it);
  }
  GiveOwned(env, *o);
  return true;
}

}  // namespace coral
