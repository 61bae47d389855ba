// Base class for every async native operation.
//
// Thread contract: the constructor and Result() run on the JS thread; Run()
// runs on a libuv pool thread and must not touch Napi values or the Env.
// Ownership: Keep() pins JS input buffers for the lifetime of the worker, so
// the borrowed pointers a subclass holds stay valid until the promise settles;
// callers must not mutate those buffers meanwhile.
// Errors: Run() returns an Err; any C++ exception escaping it is caught here
// and reported as CORAL_INTERNAL / CORAL_OUT_OF_MEMORY.
#pragma once
#include <napi.h>

#include <atomic>

#include "errors.h"

namespace coral {

struct WorkerCounters {
  std::atomic<int64_t> queued{0};
  std::atomic<int64_t> running{0};
};
WorkerCounters& Counters();

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name);
  ~PromiseWorker() override;

  // Queues the worker and returns its promise.
  Napi::Promise Start();
  // Holds v alive until the worker is destroyed.
  void Keep(const Napi::Value& v);

 protected:
  virtual Err Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
  uint32_t kept_ = 0;
  Err err_;
  bool started_running_ = false;
};

}  // namespace coral
