// Exports: simhash, simhashAsync, simhashBatch, cosine, cosineAsync, hamming, SimIndex.
#include <napi.h>

#include <cmath>
#include <memory>
#include <vector>

#include "kernels/simhash.h"
#include "kernels/simhash_index.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

uint64_t ElementCount(Napi::Env env, const std::vector<uint64_t>& shape) {
  unsigned __int128 n = 1;
  for (uint64_t d : shape) {
    n *= d;
    if (n > (static_cast<unsigned __int128>(1) << 62)) ThrowInvalid(env, "shape describes more than 2^62 elements");
  }
  return static_cast<uint64_t>(n);
}

uint64_t GetSeed(const Napi::Object& o) {
  Napi::Value v = o.Get("seed");
  SimHashParams def;
  if (v.IsUndefined()) return def.seed;
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowInvalid(o.Env(), "Expected unsigned 64-bit bigint for seed");
    return s;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || std::floor(d) != d || d > 9007199254740991.0) ThrowInvalid(o.Env(), "Expected non-negative safe integer for seed");
    return static_cast<uint64_t>(d);
  }
  ThrowInvalid(o.Env(), "Expected bigint or number for seed");
}

SimHashParams ReadParams(const Napi::Value& v) {
  SimHashParams p;
  if (v.IsUndefined() || v.IsNull()) return p;
  if (!v.IsObject()) ThrowInvalid(v.Env(), "Expected object for fingerprint options");
  auto o = v.As<Napi::Object>();
  p.bits = GetU32(o, "bits", p.bits);
  p.max_samples = GetU32(o, "maxSamples", p.max_samples);
  p.center = GetBool(o, "center", p.center);
  p.seed = GetSeed(o);
  Err e = ValidateSimHashParams(p);
  if (!e.ok()) ThrowErr(v.Env(), e);
  return p;
}

struct FpJob {
  ByteView bytes;
  DType dtype;
  uint64_t numel;
  SimHashResult out;
};

FpJob ReadFpJob(const Napi::Value& data, const Napi::Value& dtype, const Napi::Value& shape) {
  FpJob j;
  j.bytes = GetBytes(data, "data");
  j.dtype = static_cast<DType>(GetDType(dtype, "dtype"));
  j.numel = ElementCount(data.Env(), GetShape(shape, "shape"));
  return j;
}

Napi::Object FpToJs(Napi::Env env, SimHashResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("signature", BufferFromVector(env, std::move(r.signature)));
  o.Set("numel", Napi::Number::New(env, static_cast<double>(r.numel)));
  o.Set("samples", Napi::Number::New(env, static_cast<double>(r.samples)));
  o.Set("nonfinite", Napi::Number::New(env, static_cast<double>(r.nonfinite)));
  o.Set("mean", Napi::Number::New(env, r.mean));
  o.Set("rms", Napi::Number::New(env, r.rms));
  return o;
}

Napi::Value JsSimHash(const Napi::CallbackInfo& info) {
  FpJob j = ReadFpJob(info[0], info[1], info[2]);
  SimHashParams p = ReadParams(info[3]);
  Err e = SimHash(j.bytes.data, j.bytes.size, j.dtype, j.numel, p, &j.out);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return FpToJs(info.Env(), j.out);
}

class FpWorker : public PromiseWorker {
 public:
  FpWorker(Napi::Env env, std::vector<FpJob>&& jobs, SimHashParams p, bool single)
      : PromiseWorker(env, "coral.simhash"), jobs_(std::move(jobs)), p_(p), single_(single) {}

 protected:
  Err Run() override {
    for (auto& j : jobs_) CORAL_TRY(SimHash(j.bytes.data, j.bytes.size, j.dtype, j.numel, p_, &j.out));
    return Err::Ok();
  }
  Napi::Value Result(Napi::Env env) override {
    if (single_) return FpToJs(env, jobs_[0].out);
    auto arr = Napi::Array::New(env, jobs_.size());
    for (size_t i = 0; i < jobs_.size(); ++i) arr.Set(static_cast<uint32_t>(i), FpToJs(env, jobs_[i].out));
    return arr;
  }

 private:
  std::vector<FpJob> jobs_;
  SimHashParams p_;
  bool single_;
};

Napi::Value JsSimHashAsync(const Napi::CallbackInfo& info) {
  std::vector<FpJob> jobs;
  jobs.push_back(ReadFpJob(info[0], info[1], info[2]));
  SimHashParams p = ReadParams(info[3]);
  auto* w = new FpWorker(info.Env(), std::move(jobs), p, true);
  w->Keep(info[0]);
  return w->Start();
}

Napi::Value JsSimHashBatch(const Napi::CallbackInfo& info) {
  if (!info[0].IsArray()) ThrowInvalid(info.Env(), "Expected array of {data, dtype, shape} for items");
  auto arr = info[0].As<Napi::Array>();
  std::vector<FpJob> jobs;
  jobs.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) ThrowInvalid(info.Env(), "Expected {data, dtype, shape} in items");
    auto o = item.As<Napi::Object>();
    jobs.push_back(ReadFpJob(o.Get("data"), o.Get("dtype"), o.Get("shape")));
  }
  SimHashParams p = ReadParams(info[1]);
  auto* w = new FpWorker(info.Env(), std::move(jobs), p, false);
  w->Keep(info[0]);
  return w->Start();
}

struct CosJob {
  ByteView a, b;
  DType da, db;
  uint64_t numel;
  bool center;
  CosineResult out;
};

CosJob ReadCosJob(const Napi::CallbackInfo& info) {
  CosJob j;
  j.a = GetBytes(info[0], "a");
  j.da = static_cast<DType>(GetDType(info[1], "aDtype"));
  j.b = GetBytes(info[2], "b");
  j.db = static_cast<DType>(GetDType(info[3], "bDtype"));
  j.numel = ElementCount(info.Env(), GetShape(info[4], "shape"));
  j.center = false;
  if (!info[5].IsUndefined() && !info[5].IsNull()) {
    if (!info[5].IsObject()) ThrowInvalid(info.Env(), "Expected object for cosine options");
    j.center = GetBool(info[5].As<Napi::Object>(), "center", false);
  }
  return j;
}

Napi::Object CosToJs(Napi::Env env, const CosineResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("cosine", r.cosine);
  o.Set("normA", r.norm_a);
  o.Set("normB", r.norm_b);
  o.Set("normDelta", r.norm_delta);
  o.Set("count", static_cast<double>(r.count));
  o.Set("skipped", static_cast<double>(r.skipped));
  return o;
}

Napi::Value JsCosine(const Napi::CallbackInfo& info) {
  CosJob j = ReadCosJob(info);
  Err e = Cosine(j.a.data, j.a.size, j.da, j.b.data, j.b.size, j.db, j.numel, j.center, &j.out);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return CosToJs(info.Env(), j.out);
}

class CosWorker : public PromiseWorker {
 public:
  CosWorker(Napi::Env env, CosJob j) : PromiseWorker(env, "coral.cosine"), j_(j) {}

 protected:
  Err Run() override { return Cosine(j_.a.data, j_.a.size, j_.da, j_.b.data, j_.b.size, j_.db, j_.numel, j_.center, &j_.out); }
  Napi::Value Result(Napi::Env env) override { return CosToJs(env, j_.out); }

 private:
  CosJob j_;
};

Napi::Value JsCosineAsync(const Napi::CallbackInfo& info) {
  auto* w = new CosWorker(info.Env(), ReadCosJob(info));
  w->Keep(info[0]);
  w->Keep(info[2]);
  return w->Start();
}

Napi::Value JsHamming(const Napi::CallbackInfo& info) {
  ByteView a = GetBytes(info[0], "a"), b = GetBytes(info[1], "b");
  if (a.size != b.size) ThrowInvalid(info.Env(), "signatures differ in length");
  return Napi::Number::New(info.Env(), HammingDistance(a.data, b.data, a.size));
}

// ---- SimIndex ------------------------------------------------------------------------------

const napi_type_tag kSimIndexTag = {0x636f72616c534958ull, 0x53696d496e646578ull};

class SimIndexWrap : public Napi::ObjectWrap<SimIndexWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SimIndex",
                       {
                           InstanceMethod("insert", &SimIndexWrap::Insert),
                           InstanceMethod("remove", &SimIndexWrap::Remove),
                           InstanceMethod("has", &SimIndexWrap::Has),
                           InstanceMethod("get", &SimIndexWrap::Get),
                           InstanceMethod("query", &SimIndexWrap::Query),
                           InstanceMethod("serialize", &SimIndexWrap::Serialize),
                           InstanceMethod("ids", &SimIndexWrap::Ids),
                           InstanceMethod("memoryBytes", &SimIndexWrap::MemoryBytes),
                           InstanceAccessor("size", &SimIndexWrap::Size, nullptr),
                           InstanceAccessor("bits", &SimIndexWrap::Bits, nullptr),
                           InstanceAccessor("bandBits", &SimIndexWrap::BandBits, nullptr),
                           InstanceAccessor("bands", &SimIndexWrap::Bands, nullptr),
                           InstanceAccessor("scheme", &SimIndexWrap::Scheme, nullptr),
                       });
  }

  // new SimIndex({bits, bandBits, scheme}) or new SimIndex(serializedBytes)
  explicit SimIndexWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SimIndexWrap>(info) {
    Napi::Env env = info.Env();
    if (IsBytes(info[0])) {
      ByteView b = GetBytes(info[0], "serialized index");
      Err e = SimIndex::Deserialize(b.data, b.size, &idx_);
      if (!e.ok()) ThrowErr(env, e);
    } else if (info[0].IsObject()) {
      auto o = info[0].As<Napi::Object>();
      uint32_t bits = GetU32(o, "bits", 256);
      uint32_t band_bits = GetU32(o, "bandBits", 16);
      std::string scheme = GetString(o, "scheme", "");
      Err e = SimIndex::Create(bits, band_bits, scheme, &idx_);
      if (!e.ok()) ThrowErr(env, e);
    } else {
      ThrowInvalid(env, "Expected {bits, bandBits, scheme} or serialized bytes for SimIndex");
    }
    info.This().As<Napi::Object>().TypeTag(&kSimIndexTag);
    Account(env);
  }

  void Finalize(Napi::Env env) override {
    if (reported_) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_);
    reported_ = 0;
  }

 private:
  // Reports the index's heap size to the GC (in coarse steps to keep calls rare).
  void Account(Napi::Env env) {
    int64_t now = static_cast<int64_t>(idx_->MemoryBytes());
    int64_t diff = now - reported_;
    if (diff > (1 << 16) || diff < -(1 << 16) || (now == 0) != (reported_ == 0)) {
      Napi::MemoryManagement::AdjustExternalMemory(env, diff);
      reported_ = now;
    }
  }

  static std::string GetId(const Napi::Value& v) {
    if (!v.IsString()) ThrowInvalid(v.Env(), "Expected string for id");
    return v.As<Napi::String>().Utf8Value();
  }

  static Napi::Object MetaToJs(Napi::Env env, const SimEntryMeta& m) {
    auto o = Napi::Object::New(env);
    o.Set("dtype", Napi::Number::New(env, m.dtype));
    auto shape = Napi::Array::New(env, m.shape.size());
    for (size_t i = 0; i < m.shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), static_cast<double>(m.shape[i]));
    o.Set("shape", shape);
    o.Set("numel", static_cast<double>(m.numel));
    o.Set("rms", static_cast<double>(m.rms));
    return o;
  }

  // insert(id, signature, dtype, shape, rms)
  Napi::Value Insert(const Napi::CallbackInfo& info) {
    std::string id = GetId(info[0]);
    ByteView sig = GetBytes(info[1], "signature");
    SimEntryMeta m;
    m.dtype = static_cast<uint8_t>(GetDType(info[2], "dtype"));
    m.shape = GetShape(info[3], "shape");
    m.numel = ElementCount(info.Env(), m.shape);
    if (!info[4].IsUndefined() && !info[4].IsNumber()) ThrowInvalid(info.Env(), "Expected number for rms");
    m.rms = info[4].IsNumber() ? static_cast<float>(info[4].As<Napi::Number>().DoubleValue()) : 0.0f;
    Err e = idx_->Insert(id, sig.data, sig.size, m);
    if (!e.ok()) ThrowErr(info.Env(), e);
    Account(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Remove(const Napi::CallbackInfo& info) {
    bool r = idx_->Remove(GetId(info[0]));
    Account(info.Env());
    return Napi::Boolean::New(info.Env(), r);
  }

  Napi::Value Has(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), idx_->Has(GetId(info[0]))); }

  Napi::Value Get(const Napi::CallbackInfo& info) {
    std::vector<uint8_t> sig;
    SimEntryMeta m;
    if (!idx_->Get(GetId(info[0]), &sig, &m)) return info.Env().Null();
    auto o = MetaToJs(info.Env(), m);
    o.Set("signature", BufferFromVector(info.Env(), std::move(sig)));
    return o;
  }

  // query(signature, {numel, k, maxHamming, shape?, dtype?, probes, exhaustive})
  Napi::Value Query(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ByteView sig = GetBytes(info[0], "signature");
    if (!info[1].IsObject()) ThrowInvalid(env, "Expected object for query options");
    auto o = info[1].As<Napi::Object>();
    SimQuery q;
    Napi::Value numel = o.Get("numel");
    if (!numel.IsNumber()) ThrowInvalid(env, "Expected non-negative integer for numel");
    double nd = numel.As<Napi::Number>().DoubleValue();
    if (nd < 0 || std::floor(nd) != nd || nd > 9007199254740991.0) ThrowInvalid(env, "Expected non-negative integer for numel");
    q.numel = static_cast<uint64_t>(nd);
    q.k = GetU32(o, "k", 10);
    q.max_hamming = GetU32(o, "maxHamming", idx_->bits());
    q.probes = GetU32(o, "probes", 0);
    q.exhaustive = GetBool(o, "exhaustive", false);
    q.dtype = GetI32(o, "dtype", -1);
    Napi::Value shape = o.Get("shape");
    if (!shape.IsUndefined() && !shape.IsNull()) {
      q.match_shape = true;
      q.shape = GetShape(shape, "shape");
    }
    std::vector<SimHit> hits;
    Err e = idx_->Query(sig.data, sig.size, q, &hits);
    if (!e.ok()) ThrowErr(env, e);
    auto arr = Napi::Array::New(env, hits.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      auto h = MetaToJs(env, idx_->MetaOf(hits[i].slot));
      h.Set("id", idx_->IdOf(hits[i].slot));
      h.Set("hamming", Napi::Number::New(env, hits[i].hamming));
      arr.Set(static_cast<uint32_t>(i), h);
    }
    return arr;
  }

  Napi::Value Serialize(const Napi::CallbackInfo& info) {
    std::vector<uint8_t> out;
    idx_->Serialize(&out);
    return BufferFromVector(info.Env(), std::move(out));
  }

  Napi::Value Ids(const Napi::CallbackInfo& info) {
    auto arr = Napi::Array::New(info.Env(), idx_->size());
    uint32_t i = 0;
    idx_->ForEach([&](uint32_t s) { arr.Set(i++, idx_->IdOf(s)); });
    return arr;
  }

  Napi::Value MemoryBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(idx_->MemoryBytes()));
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(idx_->size())); }
  Napi::Value Bits(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), idx_->bits()); }
  Napi::Value BandBits(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), idx_->band_bits()); }
  Napi::Value Bands(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), idx_->bands()); }
  Napi::Value Scheme(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), idx_->scheme()); }

  std::unique_ptr<SimIndex> idx_;
  int64_t reported_ = 0;
};

void InitSimHash(Napi::Env env, Napi::Object exports) {
  exports.Set("simhash", Napi::Function::New(env, JsSimHash, "simhash"));
  exports.Set("simhashAsync", Napi::Function::New(env, JsSimHashAsync, "simhashAsync"));
  exports.Set("simhashBatch", Napi::Function::New(env, JsSimHashBatch, "simhashBatch"));
  exports.Set("cosine", Napi::Function::New(env, JsCosine, "cosine"));
  exports.Set("cosineAsync", Napi::Function::New(env, JsCosineAsync, "cosineAsync"));
  exports.Set("hamming", Napi::Function::New(env, JsHamming, "hamming"));
  exports.Set("SimIndex", SimIndexWrap::Init(env));
}

}  // namespace

CORAL_REGISTER(simhash, InitSimHash);

}  // namespace coral
