#include "errors.h"

namespace coral {

std::string StatusCode(Status s) {
  switch (s) {
    case Status::Ok: return "CORAL_OK";
    case Status::InvalidArgument: return "CORAL_INVALID_ARGUMENT";
    case Status::Corrupt: return "CORAL_CORRUPT_OBJECT";
    case Status::ChecksumMismatch: return "CORAL_CHECKSUM_MISMATCH";
    case Status::BaseMismatch: return "CORAL_BASE_MISMATCH";
    case Status::Unsupported: return "CORAL_UNSUPPORTED";
    case Status::OutOfMemory: return "CORAL_OUT_OF_MEMORY";
    case Status::Io: return "CORAL_IO";
    case Status::Hdf5: return "CORAL_HDF5";
    case Status::NotFound: return "CORAL_NOT_FOUND";
    case Status::Internal: return "CORAL_INTERNAL";
  }
  return "CORAL_NATIVE_UNKNOWN_" + std::to_string(static_cast<int>(s));
}

}  // namespace coral
