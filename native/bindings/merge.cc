// Exports: mergeTensors, mergeTensorsAsync, convertDType, dareUniform, tiesKeepCount.
//
// mergeTensors(spec) takes one flat spec object (binding.d.ts MergeSpec):
//   { op, models: [{data, dtype, shape}], base?: {data, dtype, shape}, out?,
//     weights?, lambda?, density?, drop?, seed?, ties?, precision?, threads? }
// and returns `out` (or a new Buffer) holding the merged tensor bytes.
#include <napi.h>

#include <string>
#include <vector>

#include "kernels/convert.h"
#include "kernels/merge.h"
#include "util/napi_util.h"
#include "util/registry.h"
#include "workers/promise_worker.h"

namespace coral {
namespace {

struct TensorArg {
  ByteView bytes;
  DType dtype;
  std::vector<uint64_t> shape;
};

std::string ShapeStr(const std::vector<uint64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

TensorArg ReadTensor(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsObject()) ThrowInvalid(env, "Expected {data, dtype, shape} for " + what);
  auto o = v.As<Napi::Object>();
  TensorArg t;
  t.bytes = GetBytes(o.Get("data"), what.c_str());
  t.dtype = static_cast<DType>(GetDType(o.Get("dtype"), what.c_str()));
  t.shape = GetShape(o.Get("shape"), what.c_str());
  uint64_t n = 1;
  for (uint64_t d : t.shape) {
    if (d != 0 && n > UINT64_MAX / d) ThrowInvalid(env, "shape of " + what + " overflows");
    n *= d;
  }
  if (n > SIZE_MAX / DTypeSize(t.dtype) || n * DTypeSize(t.dtype) != t.bytes.size)
    ThrowInvalid(env, what + " has " + std::to_string(t.bytes.size) + " bytes but " + DTypeName(t.dtype) +
                          ShapeStr(t.shape) + " needs " + std::to_string(n * DTypeSize(t.dtype)));
  return t;
}

// Everything a merge needs, read on the JS thread; the spec's pointers borrow
// the JS buffers (kept alive by the worker for async calls).
struct MergeCall {
  MergeSpec spec;
  ByteView out;
  bool own_out = false;
  std::vector<uint8_t> owned;
};

void ReadCall(const Napi::CallbackInfo& info, MergeCall* call) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowInvalid(env, "Expected merge spec object");
  auto o = info[0].As<Napi::Object>();
  MergeSpec& s = call->spec;

  std::string op = GetString(o, "op", "");
  if (op == "linear") s.op = MergeOp::Linear;
  else if (op == "task-arithmetic") s.op = MergeOp::TaskArithmetic;
  else if (op == "ties") s.op = MergeOp::Ties;
  else if (op == "dare") s.op = MergeOp::Dare;
  else ThrowInvalid(env, "Expected one of linear task-arithmetic ties dare for op but received \"" + op + "\"");

  Napi::Value mv = o.Get("models");
  if (!mv.IsArray() || mv.As<Napi::Array>().Length() == 0)
    ThrowInvalid(env, "Expected non-empty array of tensors for models");
  auto arr = mv.As<Napi::Array>();
  std::vector<TensorArg> models;
  for (uint32_t i = 0; i < arr.Length(); ++i) models.push_back(ReadTensor(env, arr.Get(i), "models[" + std::to_string(i) + "]"));
  const TensorArg& first = models[0];
  auto check_same = [&](const TensorArg& t, const std::string& what) {
    if (t.dtype != first.dtype)
      ThrowInvalid(env, std::string("dtype mismatch: ") + what + " is " + DTypeName(t.dtype) + " but models[0] is " +
                            DTypeName(first.dtype) + "; a numeric merge cannot combine them");
    if (t.shape != first.shape)
      ThrowInvalid(env, "shape mismatch: " + what + " is " + ShapeStr(t.shape) + " but models[0] is " +
                            ShapeStr(first.shape) + "; a numeric merge cannot combine them");
  };
  for (size_t i = 1; i < models.size(); ++i) check_same(models[i], "models[" + std::to_string(i) + "]");
  s.dtype = first.dtype;
  s.n = first.bytes.size / DTypeSize(first.dtype);
  for (auto& m : models) s.models.push_back(m.bytes.data);

  Napi::Value bv = o.Get("base");
  if (!bv.IsUndefined() && !bv.IsNull()) {
    TensorArg b = ReadTensor(env, bv, "base");
    check_same(b, "base");
    s.base = b.bytes.data;
  }

  Napi::Value wv = o.Get("weights");
  if (!wv.IsUndefined()) {
    if (!wv.IsArray()) ThrowInvalid(env, "Expected array of numbers for weights");
    auto wa = wv.As<Napi::Array>();
    for (uint32_t i = 0; i < wa.Length(); ++i) {
      Napi::Value w = wa.Get(i);
      if (!w.IsNumber()) ThrowInvalid(env, "Expected array of numbers for weights");
      s.weights.push_back(w.As<Napi::Number>().DoubleValue());
    }
  }
  s.lambda = GetF64(o, "lambda", 1.0);
  s.density = GetF64(o, "density", 1.0);
  s.drop = GetF64(o, "drop", 0.0);
  s.dare_ties = GetBool(o, "ties", false);
  s.threads = GetI32(o, "threads", 0);
  if (s.threads < 0) ThrowInvalid(env, "Expected non-negative integer for threads");
  std::string prec = GetString(o, "precision", "f64");
  if (prec == "f64") s.precision = MergePrecision::F64;
  else if (prec == "f32") s.precision = MergePrecision::F32;
  else ThrowInvalid(env, "Expected \"f64\" or \"f32\" for precision but received \"" + prec + "\"");

  Napi::Value sv = o.Get("seed");
  if (sv.IsBigInt()) {
    bool lossless = false;
    s.seed = sv.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowInvalid(env, "Expected seed in 0..2^64-1");
  } else if (sv.IsNumber()) {
    double d = sv.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
      ThrowInvalid(env, "Expected non-negative safe integer or bigint for seed");
    s.seed = static_cast<uint64_t>(d);
  } else if (!sv.IsUndefined()) {
    ThrowInvalid(env, "Expected non-negative safe integer or bigint for seed");
  }

  Err e = ValidateMergeSpec(s);
  if (!e.ok()) ThrowErr(env, e);

  size_t nbytes = first.bytes.size;
  Napi::Value ov = o.Get("out");
  if (!ov.IsUndefined() && !ov.IsNull()) {
    call->out = GetBytes(ov, "out");
    if (call->out.size != nbytes)
      ThrowInvalid(env, "out has " + std::to_string(call->out.size) + " bytes but the merged tensor needs " +
                            std::to_string(nbytes));
  } else {
    call->own_out = true;
    call->owned.resize(nbytes);
    call->out = ByteView{call->owned.data(), nbytes};
  }
}

Napi::Value Output(Napi::Env env, MergeCall* call, const Napi::Value& out_arg) {
  if (call->own_out) return BufferFromVector(env, std::move(call->owned));
  return out_arg;
}

Napi::Value OutArg(const Napi::CallbackInfo& info) { return info[0].As<Napi::Object>().Get("out"); }

Napi::Value JsMergeTensors(const Napi::CallbackInfo& info) {
  MergeCall call;
  ReadCall(info, &call);
  Err e = Merge(call.spec, call.out.data);
  if (!e.ok()) ThrowErr(info.Env(), e);
  return Output(info.Env(), &call, OutArg(info));
}

class MergeWorker : public PromiseWorker {
 public:
  MergeWorker(Napi::Env env) : PromiseWorker(env, "coral.merge") {}
  MergeCall call;
  Napi::Reference<Napi::Value> out_ref;

 protected:
  Err Run() override { return Merge(call.spec, call.out.data); }
  Napi::Value Result(Napi::Env env) override {
    if (call.own_out) return BufferFromVector(env, std::move(call.owned));
    return out_ref.Value();
  }
};

Napi::Value JsMergeTensorsAsync(const Napi::CallbackInfo& info) {
  auto* w = new MergeWorker(info.Env());
  try {
    ReadCall(info, &w->call);
  } catch (...) {
    delete w;
    throw;
  }
  w->Keep(info[0]);  // the spec object holds every input (and out) alive
  if (!w->call.own_out) w->out_ref = Napi::Persistent(OutArg(info));
  return w->Start();
}

// convertDType(src, srcDtype, dstDtype, out?) -> out or new Buffer
Napi::Value JsConvertDType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView src = GetBytes(info[0], "src");
  DType st = static_cast<DType>(GetDType(info[1], "srcDtype"));
  DType dt = static_cast<DType>(GetDType(info[2], "dstDtype"));
  if (src.size % DTypeSize(st) != 0)
    ThrowInvalid(env, "src has " + std::to_string(src.size) + " bytes, not a whole number of " + DTypeName(st) + " elements");
  size_t n = src.size / DTypeSize(st);
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    ByteView out = GetBytes(info[3], "out");
    if (out.size != n * DTypeSize(dt))
      ThrowInvalid(env, "out has " + std::to_string(out.size) + " bytes but needs " + std::to_string(n * DTypeSize(dt)));
    ConvertDType(st, src.data, dt, out.data, n);
    return info[3];
  }
  std::vector<uint8_t> v(n * DTypeSize(dt));
  ConvertDType(st, src.data, dt, v.data(), n);
  return BufferFromVector(env, std::move(v));
}

Napi::Value JsDareUniform(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t a[3];
  for (int i = 0; i < 3; ++i) {
    bool lossless = false;
    if (!info[i].IsBigInt()) ThrowInvalid(env, "Expected bigint arguments (seed, model, index)");
    a[i] = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowInvalid(env, "Expected bigint in 0..2^64-1");
  }
  return Napi::Number::New(env, DareUniform(a[0], a[1], a[2]));
}

Napi::Value JsTiesKeepCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) ThrowInvalid(env, "Expected (n, density) numbers");
  double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 0 && n <= 9007199254740991.0) || n != static_cast<double>(static_cast<uint64_t>(n)))
    ThrowInvalid(env, "Expected non-negative safe integer for n");
  return Napi::Number::New(env, static_cast<double>(TiesKeepCount(static_cast<size_t>(n), info[1].As<Napi::Number>().DoubleValue())));
}

void InitMerge(Napi::Env env, Napi::Object exports) {
  exports.Set("mergeTensors", Napi::Function::New(env, JsMergeTensors, "mergeTensors"));
  exports.Set("mergeTensorsAsync", Napi::Function::New(env, JsMergeTensorsAsync, "mergeTensorsAsync"));
  exports.Set("convertDType", Napi::Function::New(env, JsConvertDType, "convertDType"));
  exports.Set("dareUniform", Napi::Function::New(env, JsDareUniform, "dareUniform"));
  exports.Set("tiesKeepCount", Napi::Function::New(env, JsTiesKeepCount, "tiesKeepCount"));
}

}  // namespace

CORAL_REGISTER(merge, InitMerge);

}  // namespace coral
