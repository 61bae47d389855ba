// The dtype table shared by every kernel. Codes are part of the on-disk object
// format (codec headers store them): append only, never renumber.
// Names follow safetensors.
#pragma once
#include <cstddef>
#include <cstdint>

namespace coral {

enum class DType : uint8_t {
  F64 = 0, F32 = 1, F16 = 2, BF16 = 3, F8_E4M3 = 4, F8_E5M2 = 5,
  I64 = 6, I32 = 7, I16 = 8, I8 = 9, U64 = 10, U32 = 11, U16 = 12, U8 = 13, BOOL = 14,
};
constexpr int kDTypeCount = 15;

inline bool ValidDType(int code) { return code >= 0 && code < kDTypeCount; }

inline size_t DTypeSize(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    default: return 1;
  }
}

inline const char* DTypeName(DType d) {
  static const char* const kNames[kDTypeCount] = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "I32",
                                                  "I16", "I8",  "U64", "U32", "U16",  "U8",   "BOOL"};
  return kNames[static_cast<int>(d)];
}

inline bool IsFloat(DType d) { return static_cast<int>(d) <= static_cast<int>(DType::F8_E5M2); }

}  // namespace coral
