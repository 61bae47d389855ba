// Native status codes and their stable JS error codes.
//
// Kernels never throw across their API: they return an Err. Bindings and
// workers turn an Err into a JS Error whose `code` comes from one table
// (errors.cc); lib/native.ts maps that code onto the CoralError hierarchy.
#pragma once
#include <string>
#include <utility>

namespace coral {

enum class Status : int {
  Ok = 0,
  InvalidArgument = 1,   // caller passed something malformed
  Corrupt = 2,           // encoded bytes fail structural checks
  ChecksumMismatch = 3,  // decoded bytes do not match the recorded checksum
  BaseMismatch = 4,      // a delta was applied to the wrong base
  Unsupported = 5,       // well-formed but not something this build handles
  OutOfMemory = 6,
  Io = 7,                // filesystem failure
  Hdf5 = 8,              // libhdf5 reported an error
  NotFound = 9,          // named thing (dataset, object) absent
  Internal = 10,
};

struct Err {
  Status status = Status::Ok;
  std::string message;

  bool ok() const { return status == Status::Ok; }
  static Err Ok() { return {}; }
  static Err Make(Status s, std::string m) { return Err{s, std::move(m)}; }
};

// Stable string code for a status ("CORAL_CORRUPT_OBJECT", ...). Unknown values
// map to "CORAL_NATIVE_UNKNOWN_<n>".
std::string StatusCode(Status s);

}  // namespace coral

#define CORAL_TRY(expr)               \
  do {                                \
    ::coral::Err coral_err_ = (expr); \
    if (!coral_err_.ok()) return coral_err_; \
  } while (0)
