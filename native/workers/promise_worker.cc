#include "workers/promise_worker.h"

#include <new>

#include "util/napi_util.h"

namespace coral {

WorkerCounters& Counters() {
  static WorkerCounters c;
  return c;
}

PromiseWorker::PromiseWorker(Napi::Env env, const char* name)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {
  keep_ = Napi::Persistent(Napi::Object::New(env));
}

PromiseWorker::~PromiseWorker() = default;

Napi::Promise PromiseWorker::Start() {
  Counters().queued++;
  Queue();
  return deferred_.Promise();
}

void PromiseWorker::Keep(const Napi::Value& v) { keep_.Value().Set(kept_++, v); }

void PromiseWorker::Execute() {
  Counters().queued--;
  Counters().running++;
  started_running_ = true;
  try {
    err_ = Run();
  } catch (const std::bad_alloc&) {
    err_ = Err::Make(Status::OutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    err_ = Err::Make(Status::Internal, e.what());
  } catch (...) {
    err_ = Err::Make(Status::Internal, "unknown native exception");
  }
  Counters().running--;
}

// Completion callbacks may run while the environment is being torn down (a
// worker thread terminated with work in flight). JS calls then fail and
// node-addon-api throws; nothing can be delivered, so swallow instead of
// letting the exception escape into libuv (std::terminate).
void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  try {
    Napi::HandleScope scope(env);
    if (!err_.ok()) {
      deferred_.Reject(MakeError(env, err_).Value());
      return;
    }
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  } catch (...) {
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  if (!started_running_) Counters().queued--;
  try {
    deferred_.Reject(e.Value());
  } catch (...) {
  }
}

}  // namespace coral
