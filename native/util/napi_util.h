// Boundary helpers: zero-copy views of JS byte containers, argument checks,
// and Err -> JS Error conversion. Only bindings/ and workers/ include this.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"
#include "util/big_buffer.h"

namespace coral {

// A borrowed byte range inside a JS Buffer / TypedArray / DataView / ArrayBuffer.
struct ByteView {
  uint8_t* data = nullptr;
  size_t size = 0;
};

// Throws a TypeError (code CORAL_INVALID_ARGUMENT) when v holds no bytes.
ByteView GetBytes(const Napi::Value& v, const char* what);
bool IsBytes(const Napi::Value& v);

// Creates a JS Error with .code from an Err.
Napi::Error MakeError(Napi::Env env, const Err& e);
[[noreturn]] void ThrowErr(Napi::Env env, const Err& e);
[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& msg);

// Option readers for flat option objects: absent -> fallback, wrong type -> throw.
uint32_t GetU32(const Napi::Object& o, const char* key, uint32_t fallback);
int32_t GetI32(const Napi::Object& o, const char* key, int32_t fallback);
double GetF64(const Napi::Object& o, const char* key, double fallback);
bool GetBool(const Napi::Object& o, const char* key, bool fallback);
std::string GetString(const Napi::Object& o, const char* key, const std::string& fallback);
// Shape: array of non-negative safe integers (or bigints).
std::vector<uint64_t> GetShape(const Napi::Value& v, const char* what);
// Dtype code (number) validated against the dtype table.
int GetDType(const Napi::Value& v, const char* what);

// Wraps a std::vector<uint8_t> into a Buffer without copying (the Buffer owns it)
// and reports the size to the GC.
Napi::Buffer<uint8_t> BufferFromVector(Napi::Env env, std::vector<uint8_t>&& v);
// The same for a BigBuffer: the Buffer's finalizer gives the memory back to its pool.
Napi::Buffer<uint8_t> BufferFromBig(Napi::Env env, BigBuffer&& b);
// Gives the memory of a whole Buffer made by BufferFromBig back to the pool now, before the
// GC would: its ArrayBuffer is detached first, so every JS view of it becomes empty and
// nothing can reach the memory again. False (and nothing changes) for any other value, a
// view of part of one, or an ArrayBuffer that cannot be detached.
bool RecycleBig(Napi::Env env, const Napi::Value& v);

}  // namespace coral
