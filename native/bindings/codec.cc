// Exports: codecNames, codecEncode, codecEncodeAsync, codecDecode, codecDecodeAsync, codecDecodeChunk,
// codecDecodePair, codecDecodePairAsync,
// codecInspect, codecEstimate, codecPureCast, codecEncodeIndexStream, codecDecodeIndexStream, codecCast, codecCastAsync.
// Thin layer over kernels/codec.h: unpack arguments, run, pack results.
#include <napi.h>

#include <memory>
#include <new>
#include <vector>

#include "kernels/cast.h"
#include "kernels/codec.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

struct Job {
  TensorView t;
  TensorView b;
  bool has_base = false;
  EncodeParams p;
  EncodeResult res;
};

EncodeParams ReadParams(const Napi::Value& v) {
  EncodeParams p;
  if (v.IsUndefined() || v.IsNull()) return p;
  if (!v.IsObject()) ThrowInvalid(v.Env(), "Expected object for options");
  auto o = v.As<Napi::Object>();
  p.codec = GetI32(o, "codec", kCodecAuto);
  p.level = GetI32(o, "level", 3);
  if (p.level < -7 || p.level > 22) ThrowInvalid(v.Env(), "Expected integer -7..22 for level");
  p.threads = static_cast<int>(GetU32(o, "threads", 0));
  p.chunk_elems = GetU32(o, "chunkElems", 0);
  p.block = GetU32(o, "block", 0);
  p.fraction = GetF64(o, "fraction", -1);
  p.topk = GetF64(o, "topk", -1);
  p.threshold = GetF64(o, "threshold", -1);
  p.axis = GetI32(o, "axis", 0);
  p.rank = GetI32(o, "rank", -1);
  p.max_rank = GetI32(o, "maxRank", -1);
  p.energy = GetF64(o, "energy", -1);
  p.base_id = GetString(o, "baseId", "");
  return p;
}

std::unique_ptr<Job> ReadJob(const Napi::CallbackInfo& info) {
  auto j = std::make_unique<Job>();
  ByteView d = GetBytes(info[0], "data");
  j->t.data = d.data;
  j->t.nbytes = d.size;
  j->t.dtype = static_cast<DType>(GetDType(info[1], "dtype"));
  j->t.shape = GetShape(info[2], "shape");
  if (!info[3].IsUndefined() && !info[3].IsNull()) {
    ByteView b = GetBytes(info[3], "base");
    j->b = j->t;
    j->b.data = b.data;
    j->b.nbytes = b.size;
    j->has_base = true;
  }
  j->p = ReadParams(info[4]);
  // A base of another dtype (CAST) or first dimension (ROWS): options baseDtype, baseShape.
  if (j->has_base && info[4].IsObject()) {
    auto o = info[4].As<Napi::Object>();
    if (o.Has("baseDtype")) j->b.dtype = static_cast<DType>(GetDType(o.Get("baseDtype"), "baseDtype"));
    if (o.Has("baseShape")) j->b.shape = GetShape(o.Get("baseShape"), "baseShape");
  }
  return j;
}

Napi::Value EncodeResultToJs(Napi::Env env, EncodeResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("bytes", BufferFromBig(env, std::move(r.bytes)));
  o.Set("codec", Napi::Number::New(env, static_cast<int>(r.codec)));
  o.Set("lossy", Napi::Boolean::New(env, r.lossy));
  o.Set("maxAbsError", Napi::Number::New(env, r.max_abs_error));
  o.Set("relL2Error", Napi::Number::New(env, r.rel_l2_error));
  o.Set("id", Napi::String::New(env, r.id.Hex()));
  return o;
}

bool HexDigest(const std::string& s, Digest128* d) {
  if (s.size() != 32) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (int i = 0; i < 16; ++i) {
    const int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    d->bytes[i] = uint8_t(hi << 4 | lo);
  }
  return true;
}

// codecPureCast(dtype, shape, id, baseDtype, baseId, rounding, {level, chunkElems}) -> encode result:
// the CAST object of an exact cast from the ids alone (EncodePureCast; small, runs inline).
Napi::Value JsPureCast(const Napi::CallbackInfo& info) {
  const DType dtype = static_cast<DType>(GetDType(info[0], "dtype"));
  const std::vector<uint64_t> shape = GetShape(info[1], "shape");
  Digest128 id{}, base_id{};
  if (!info[2].IsString() || !HexDigest(info[2].As<Napi::String>().Utf8Value(), &id))
    ThrowInvalid(info.Env(), "Expected 32 lowercase hex characters for id");
  const DType base_dtype = static_cast<DType>(GetDType(info[3], "baseDtype"));
  if (!info[4].IsString() || !HexDigest(info[4].As<Napi::String>().Utf8Value(), &base_id))
    ThrowInvalid(info.Env(), "Expected 32 lowercase hex characters for baseId");
  if (!info[5].IsNumber()) ThrowInvalid(info.Env(), "Expected 0 (RNE) or 1 (RTZ) for rounding");
  const int rounding = info[5].As<Napi::Number>().Int32Value();
  EncodeParams p = ReadParams(info[6]);
  EncodeResult res;
  Err e = EncodePureCast(dtype, shape, id, base_dtype, base_id, rounding, p, &res);
  if (!e.ok()) ThrowErr(info.Env(), e);
  res.id = id;
  return EncodeResultToJs(info.Env(), res);
}

Napi::Value JsEncode(const Napi::CallbackInfo& info) {
  auto j = ReadJob(info);
  Err e = Encode(j->t, j->has_base ? &j->b : nullptr, j->p, &j->res);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return EncodeResultToJs(info.Env(), j->res);
}

class EncodeWorker : public PromiseWorker {
 public:
  EncodeWorker(Napi::Env env, std::unique_ptr<Job> j) : PromiseWorker(env, "coral.codecEncode"), j_(std::move(j)) {}

 protected:
  Err Run() override { return Encode(j_->t, j_->has_base ? &j_->b : nullptr, j_->p, &j_->res); }
  Napi::Value Result(Napi::Env env) override { return EncodeResultToJs(env, j_->res); }

 private:
  std::unique_ptr<Job> j_;
};

Napi::Value JsEncodeAsync(const Napi::CallbackInfo& info) {
  auto j = ReadJob(info);
  auto* w = new EncodeWorker(info.Env(), std::move(j));
  w->Keep(info[0]);
  if (!info[3].IsUndefined() && !info[3].IsNull()) w->Keep(info[3]);
  return w->Start();
}

struct DecodeJob {
  ByteView obj;
  ByteView base;
  bool has_base = false;
  ByteView out;  // caller's buffer, or null
  bool own = false;
  BigBuffer owned;  // uninitialised: every byte is written by the decoder
  size_t nbytes = 0;
  int threads = 0;
  bool verify = true;
};

std::unique_ptr<DecodeJob> ReadDecode(const Napi::CallbackInfo& info) {
  auto j = std::make_unique<DecodeJob>();
  j->obj = GetBytes(info[0], "bytes");
  if (!info[1].IsUndefined() && !info[1].IsNull()) {
    j->base = GetBytes(info[1], "base");
    j->has_base = true;
    static uint8_t empty = 0;
    if (!j->base.data) j->base.data = &empty;  // zero-size base: still "a base"

  }
  if (!info[2].IsUndefined() && !info[2].IsNull()) j->out = GetBytes(info[2], "out");
  else j->own = true;
  if (!info[3].IsUndefined() && !info[3].IsNull()) {
    if (!info[3].IsNumber()) ThrowInvalid(info.Env(), "Expected non-negative integer for threads");
    j->threads = info[3].As<Napi::Number>().Int32Value();
    if (j->threads < 0) ThrowInvalid(info.Env(), "Expected non-negative integer for threads");
  }
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!info[4].IsBoolean()) ThrowInvalid(info.Env(), "Expected boolean for verify");
    j->verify = info[4].As<Napi::Boolean>().Value();
  }
  ObjectInfo oi;
  Err e = Inspect(j->obj.data, j->obj.size, &oi);
  if (!e.ok()) ThrowErr(info.Env(), e);
  j->nbytes = oi.nbytes;
  if (!j->own && j->out.size != oi.nbytes)
    ThrowInvalid(info.Env(), "out has " + std::to_string(j->out.size) + " bytes but the object decodes to " +
                                 std::to_string(oi.nbytes));
  return j;
}

Err RunDecode(DecodeJob& j) {
  if (j.own) {
    j.owned = BigBuffer::Take(j.nbytes);
    if (!j.owned.data())
      return Err::Make(Status::OutOfMemory, "cannot allocate " + std::to_string(j.nbytes) + " bytes to decode into");
    j.out.data = j.owned.data();
    j.out.size = j.nbytes;
  }
  return Decode(j.obj.data, j.obj.size, j.has_base ? j.base.data : nullptr, j.base.size, j.out.data, j.out.size,
                j.threads, j.verify);
}

Napi::Value DecodeResult(Napi::Env env, DecodeJob& j, const Napi::Value& out) {
  if (!j.own) return out;
  return BufferFromBig(env, std::move(j.owned));
}

Napi::Value JsDecode(const Napi::CallbackInfo& info) {
  auto j = ReadDecode(info);
  Err e = RunDecode(*j);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return DecodeResult(info.Env(), *j, info[2]);
}

class DecodeWorker : public PromiseWorker {
 public:
  DecodeWorker(Napi::Env env, std::unique_ptr<DecodeJob> j, const Napi::Value& out)
      : PromiseWorker(env, "coral.codecDecode"), j_(std::move(j)) {
    if (!j_->own) out_ = Napi::Persistent(out);
  }

 protected:
  Err Run() override { return RunDecode(*j_); }
  Napi::Value Result(Napi::Env env) override {
    return DecodeResult(env, *j_, j_->own ? env.Undefined() : out_.Value());
  }

 private:
  std::unique_ptr<DecodeJob> j_;
  Napi::Reference<Napi::Value> out_;
};

Napi::Value JsDecodeAsync(const Napi::CallbackInfo& info) {
  auto j = ReadDecode(info);
  bool has_base = j->has_base, own = j->own;
  auto* w = new DecodeWorker(info.Env(), std::move(j), info[2]);
  w->Keep(info[0]);
  if (has_base) w->Keep(info[1]);
  if (!own) w->Keep(info[2]);
  return w->Start();
}

// codecDecodeChunk(bytes, k, base | null, out): one chunk, on the calling thread (about 1 MiB of work).
Napi::Value JsDecodeChunk(const Napi::CallbackInfo& info) {
  ByteView obj = GetBytes(info[0], "bytes");
  if (!info[1].IsNumber()) ThrowInvalid(info.Env(), "Expected non-negative integer for k");
  const double k = info[1].As<Napi::Number>().DoubleValue();
  if (!(k >= 0) || k != double(uint64_t(k))) ThrowInvalid(info.Env(), "Expected non-negative integer for k");
  ByteView base{};
  const bool has_base = !info[2].IsUndefined() && !info[2].IsNull();
  static uint8_t empty = 0;
  if (has_base) {
    base = GetBytes(info[2], "base");
    if (!base.data) base.data = &empty;
  }
  ByteView out = GetBytes(info[3], "out");
  static uint8_t none = 0;
  Err e = DecodeChunkAt(obj.data, obj.size, uint64_t(k), has_base ? base.data : nullptr, base.size,
                        out.data ? out.data : &none, out.size);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return info[3];
}

// codecDecodePair(lower, lowerBase | null, upper, out, threads?) and codecDecodePairAsync: the two
// links of a delta chain in one pass, into `out` (kernels DecodePair); nothing verified.
struct PairJob {
  ByteView lower, lower_base, upper, out;
  bool has_lower_base = false;
  int threads = 0;
};

std::unique_ptr<PairJob> ReadPair(const Napi::CallbackInfo& info) {
  auto j = std::make_unique<PairJob>();
  j->lower = GetBytes(info[0], "lower");
  if (!info[1].IsUndefined() && !info[1].IsNull()) {
    j->lower_base = GetBytes(info[1], "lowerBase");
    j->has_lower_base = true;
    static uint8_t empty = 0;
    if (!j->lower_base.data) j->lower_base.data = &empty;  // zero-size base: still "a base"
  }
  j->upper = GetBytes(info[2], "upper");
  j->out = GetBytes(info[3], "out");
  static uint8_t none = 0;
  if (!j->out.data) j->out.data = &none;
  if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
    if (!info[4].IsNumber()) ThrowInvalid(info.Env(), "Expected non-negative integer for threads");
    j->threads = info[4].As<Napi::Number>().Int32Value();
    if (j->threads < 0) ThrowInvalid(info.Env(), "Expected non-negative integer for threads");
  }
  return j;
}

Err RunPair(const PairJob& j) {
  return DecodePair(j.lower.data, j.lower.size, j.has_lower_base ? j.lower_base.data : nullptr, j.lower_base.size,
                    j.upper.data, j.upper.size, j.out.data, j.out.size, j.threads);
}

Napi::Value JsDecodePair(const Napi::CallbackInfo& info) {
  auto j = ReadPair(info);
  Err e = RunPair(*j);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return info[3];
}

class PairWorker : public PromiseWorker {
 public:
  PairWorker(Napi::Env env, std::unique_ptr<PairJob> j, const Napi::Value& out)
      : PromiseWorker(env, "coral.codecDecodePair"), j_(std::move(j)), out_(Napi::Persistent(out)) {}

 protected:
  Err Run() override { return RunPair(*j_); }
  Napi::Value Result(Napi::Env env) override { return out_.Value(); }

 private:
  std::unique_ptr<PairJob> j_;
  Napi::Reference<Napi::Value> out_;
};

Napi::Value JsDecodePairAsync(const Napi::CallbackInfo& info) {
  auto j = ReadPair(info);
  const bool has_lower_base = j->has_lower_base;
  auto* w = new PairWorker(info.Env(), std::move(j), info[3]);
  w->Keep(info[0]);
  if (has_lower_base) w->Keep(info[1]);
  w->Keep(info[2]);
  w->Keep(info[3]);
  return w->Start();
}

Napi::Value JsInspect(const Napi::CallbackInfo& info) {
  ByteView b = GetBytes(info[0], "bytes");
  ObjectInfo oi;
  Err e = Inspect(b.data, b.size, &oi);
  if (!e.ok()) ThrowErr(info.Env(), e);
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("version", Napi::Number::New(env, oi.version));
  o.Set("codec", Napi::Number::New(env, static_cast<int>(oi.codec)));
  o.Set("dtype", Napi::Number::New(env, static_cast<int>(oi.dtype)));
  auto shape = Napi::Array::New(env, oi.shape.size());
  for (size_t i = 0; i < oi.shape.size(); ++i) {
    if (oi.shape[i] > 9007199254740991ull) shape.Set(uint32_t(i), Napi::BigInt::New(env, uint64_t(oi.shape[i])));
    else shape.Set(uint32_t(i), Napi::Number::New(env, double(oi.shape[i])));
  }
  o.Set("shape", shape);
  o.Set("hasBase", Napi::Boolean::New(env, oi.has_base));
  o.Set("lossy", Napi::Boolean::New(env, oi.lossy));
  o.Set("level", Napi::Number::New(env, static_cast<int8_t>(oi.level)));
  o.Set("chunkElems", Napi::Number::New(env, oi.chunk_elems));
  o.Set("id", Napi::String::New(env, oi.id.Hex()));
  o.Set("baseId", oi.has_base ? Napi::Value(Napi::String::New(env, oi.base_id.Hex())) : env.Null());
  o.Set("maxAbsError", Napi::Number::New(env, oi.max_abs_error));
  o.Set("relL2Error", Napi::Number::New(env, oi.rel_l2_error));
  o.Set("params", Napi::Buffer<uint8_t>::Copy(env, oi.params.data(), oi.params.size()));
  o.Set("headerSize", Napi::Number::New(env, double(oi.header_size)));
  o.Set("payloadSize", Napi::Number::New(env, double(oi.payload_size)));
  o.Set("nbytes", Napi::Number::New(env, double(oi.nbytes)));
  return o;
}

Napi::Value JsEstimate(const Napi::CallbackInfo& info) {
  auto j = ReadJob(info);
  std::vector<std::pair<Codec, uint64_t>> est;
  Err e = Estimate(j->t, j->has_base ? &j->b : nullptr, j->p, &est);
  if (!e.ok()) ThrowErr(info.Env(), e);
  auto arr = Napi::Array::New(info.Env(), est.size());
  for (size_t i = 0; i < est.size(); ++i) {
    auto o = Napi::Object::New(info.Env());
    o.Set("codec", Napi::Number::New(info.Env(), static_cast<int>(est[i].first)));
    o.Set("bytes", Napi::Number::New(info.Env(), double(est[i].second)));
    arr.Set(uint32_t(i), o);
  }
  return arr;
}

uint64_t GetU64Arg(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowInvalid(v.Env(), std::string("Expected unsigned 64-bit integer for ") + what);
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
      ThrowInvalid(v.Env(), std::string("Expected unsigned 64-bit integer for ") + what);
    return static_cast<uint64_t>(d);
  }
  ThrowInvalid(v.Env(), std::string("Expected bigint for ") + what);
}

Napi::Value JsEncodeIndexStream(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array)
    ThrowInvalid(info.Env(), "Expected BigUint64Array for indices");
  auto ta = info[0].As<Napi::BigUint64Array>();
  uint64_t start = GetU64Arg(info[1], "start");
  const uint64_t* idx = ta.Data();
  for (size_t i = 0; i < ta.ElementLength(); ++i)
    if (idx[i] < (i ? idx[i - 1] + 1 : start) || (i && idx[i] == 0))
      ThrowInvalid(info.Env(), "indices must be strictly increasing and >= start");
  std::vector<uint8_t> out;
  EncodeIndexStream(idx, ta.ElementLength(), start, &out);
  return BufferFromVector(info.Env(), std::move(out));
}

Napi::Value JsDecodeIndexStream(const Napi::CallbackInfo& info) {
  ByteView b = GetBytes(info[0], "bytes");
  uint64_t count = GetU64Arg(info[1], "count");
  uint64_t start = GetU64Arg(info[2], "start");
  uint64_t limit = GetU64Arg(info[3], "limit");
  std::vector<uint64_t> out;
  Err e = DecodeIndexStream(b.data, b.size, size_t(count), start, limit, &out);
  if (!e.ok()) ThrowErr(info.Env(), e);
  auto arr = Napi::BigUint64Array::New(info.Env(), out.size());
  if (!out.empty()) std::memcpy(arr.Data(), out.data(), out.size() * 8);
  return arr;
}

struct CastJob {
  ByteView src;
  DType from = DType::F32, to = DType::F32;
  CastRounding r = CastRounding::kNearestEven;
  size_t n = 0;
  BigBuffer out;  // every byte is written by the cast
};

std::unique_ptr<CastJob> ReadCast(const Napi::CallbackInfo& info) {
  auto j = std::make_unique<CastJob>();
  j->src = GetBytes(info[0], "src");
  j->from = static_cast<DType>(GetDType(info[1], "fromDtype"));
  j->to = static_cast<DType>(GetDType(info[2], "toDtype"));
  if (!info[3].IsNumber()) ThrowInvalid(info.Env(), "Expected 0 or 1 for rounding");
  const int r = info[3].As<Napi::Number>().Int32Value();
  if (r < 0 || r >= kCastRoundingCount) ThrowInvalid(info.Env(), "Expected 0 or 1 for rounding");
  j->r = static_cast<CastRounding>(r);
  if (!CastSupported(j->from, j->to))
    ThrowInvalid(info.Env(), "Expected two distinct dtypes among F64, F32, F16, BF16");
  if (j->src.size % DTypeSize(j->from)) ThrowInvalid(info.Env(), "src length is not a whole number of elements");
  j->n = j->src.size / DTypeSize(j->from);
  j->out = BigBuffer::Take(j->n * DTypeSize(j->to));
  if (j->n && !j->out.data()) ThrowInvalid(info.Env(), "out of memory for the cast");
  return j;
}

Err RunCast(CastJob& j) {
  if (j.n) CastTensor(j.from, j.src.data, j.to, j.out.data(), j.n, j.r);
  return Err::Ok();
}

Napi::Value JsCast(const Napi::CallbackInfo& info) {
  auto j = ReadCast(info);
  RunCast(*j);
  return BufferFromBig(info.Env(), std::move(j->out));
}

class CastWorker : public PromiseWorker {
 public:
  CastWorker(Napi::Env env, std::unique_ptr<CastJob> j) : PromiseWorker(env, "coral.codecCast"), j_(std::move(j)) {}

 protected:
  Err Run() override { return RunCast(*j_); }
  Napi::Value Result(Napi::Env env) override { return BufferFromBig(env, std::move(j_->out)); }

 private:
  std::unique_ptr<CastJob> j_;
};

Napi::Value JsCastAsync(const Napi::CallbackInfo& info) {
  auto* w = new CastWorker(info.Env(), ReadCast(info));
  w->Keep(info[0]);
  return w->Start();
}

void InitCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("codecCast", Napi::Function::New(env, JsCast, "codecCast"));
  exports.Set("codecCastAsync", Napi::Function::New(env, JsCastAsync, "codecCastAsync"));
  auto names = Napi::Array::New(env, kCodecCount);
  for (int i = 0; i < kCodecCount; ++i) names.Set(uint32_t(i), CodecName(static_cast<Codec>(i)));
  exports.Set("codecNames", names);
  exports.Set("codecEncode", Napi::Function::New(env, JsEncode, "codecEncode"));
  exports.Set("codecEncodeAsync", Napi::Function::New(env, JsEncodeAsync, "codecEncodeAsync"));
  exports.Set("codecDecode", Napi::Function::New(env, JsDecode, "codecDecode"));
  exports.Set("codecDecodeAsync", Napi::Function::New(env, JsDecodeAsync, "codecDecodeAsync"));
  exports.Set("codecDecodeChunk", Napi::Function::New(env, JsDecodeChunk, "codecDecodeChunk"));
  exports.Set("codecDecodePair", Napi::Function::New(env, JsDecodePair, "codecDecodePair"));
  exports.Set("codecDecodePairAsync", Napi::Function::New(env, JsDecodePairAsync, "codecDecodePairAsync"));
  exports.Set("codecPureCast", Napi::Function::New(env, JsPureCast, "codecPureCast"));
  exports.Set("codecInspect", Napi::Function::New(env, JsInspect, "codecInspect"));
  exports.Set("codecEstimate", Napi::Function::New(env, JsEstimate, "codecEstimate"));
  exports.Set("codecEncodeIndexStream", Napi::Function::New(env, JsEncodeIndexStream, "codecEncodeIndexStream"));
  exports.Set("codecDecodeIndexStream", Napi::Function::New(env, JsDecodeIndexStream, "codecDecodeIndexStream"));
}

}  // namespace

CORAL_REGISTER(codec, InitCodec);

}  // namespace coral
