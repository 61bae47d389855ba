// An LSH index over SimHash signatures: banding with optional 1-bit multi-probe,
// exact Hamming re-ranking, and a compact checksummed serialisation.
//
// Banding: signature bits [j*r, (j+1)*r) form band j (bands = bits / r). Each
// band keeps a sorted array of (key32 << 32 | slot) plus a small unsorted tail
// merged when it grows; key32 mixes the band value with the entry's element
// count, so tensors of different sizes (whose signatures are not comparable:
// they sample different positions) never share a bucket. A query collects
// slots from its buckets (and, with probes = 1, the r buckets one bit away),
// drops dead and filtered slots, and ranks the rest by exact Hamming distance.
//
// Serialised form ("CORALLSH", version 1), little-endian:
//   magic[8] u32 version u32 bits u32 band_bits u32 scheme_len scheme[] u64 count
//   count x { u16 id_len id[] u8 dtype u8 ndim u64 dims[ndim] u64 numel f32 rms
//             u64 signature[bits/64] }
//   u64 XXH3-64 of every preceding byte
// Bands are rebuilt on load (one sort per band), so the file holds only entries.
//
// Thread: not internally synchronised. Any number of concurrent const calls
// (Query, Get, Serialize) is safe; mutation needs exclusive access (the binding
// runs everything on the JS thread). Buffers passed in are copied. Errors:
// InvalidArgument for bad input, Corrupt / Unsupported from Deserialize.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace coral {

struct SimEntryMeta {
  uint8_t dtype = 0;
  std::vector<uint64_t> shape;
  uint64_t numel = 0;
  float rms = 0;
};

struct SimQuery {
  uint32_t k = 10;                  // 0 = all matches
  uint32_t max_hamming = 0;         // keep entries with hamming <= this
  uint64_t numel = 0;               // always required to match
  bool match_shape = false;
  std::vector<uint64_t> shape;
  int dtype = -1;                   // -1 = any dtype
  uint32_t probes = 0;              // 0 = exact band match, 1 = also buckets at 1-bit distance
  bool exhaustive = false;          // scan every entry instead of the bands
};

struct SimHit {
  uint32_t slot;
  uint32_t hamming;
};

class SimIndex {
 public:
  // bits: multiple of 64 in [64, 1024]; band_bits in [4, 32] and <= bits.
  static Err Create(uint32_t bits, uint32_t band_bits, std::string scheme, std::unique_ptr<SimIndex>* out);
  static Err Deserialize(const uint8_t* data, size_t size, std::unique_ptr<SimIndex>* out);

  // Adds or replaces the entry for id. signature must hold bits/8 bytes.
  Err Insert(const std::string& id, const uint8_t* signature, size_t sig_bytes, const SimEntryMeta& meta);
  // Returns false when id is absent.
  bool Remove(const std::string& id);
  bool Has(const std::string& id) const { return Find(id) != kNone; }
  // Copies the entry; false when absent.
  bool Get(const std::string& id, std::vector<uint8_t>* signature, SimEntryMeta* meta) const;
  Err Query(const uint8_t* signature, size_t sig_bytes, const SimQuery& q, std::vector<SimHit>* out) const;
  void Serialize(std::vector<uint8_t>* out) const;
  // Calls fn(slot) for every live entry in slot order.
  template <typename F>
  void ForEach(F fn) const {
    for (uint32_t s = 0; s < static_cast<uint32_t>(alive_.size()); ++s)
      if (alive_[s]) fn(s);
  }

  // Slot accessors (valid for slots returned by Query / ForEach until the next mutation).
  std::string IdOf(uint32_t slot) const { return ids_.substr(id_off_[slot], id_len_[slot]); }
  SimEntryMeta MetaOf(uint32_t slot) const;
  const uint64_t* SignatureOf(uint32_t slot) const { return &sigs_[static_cast<size_t>(slot) * words_]; }

  uint32_t bits() const { return bits_; }
  uint32_t band_bits() const { return band_bits_; }
  uint32_t bands() const { return bands_; }
  const std::string& scheme() const { return scheme_; }
  size_t size() const { return live_; }
  // Heap bytes held (capacities), for AdjustExternalMemory and the RAM-per-entry figure.
  size_t MemoryBytes() const;

 private:
  static constexpr uint32_t kNone = 0xffffffffu;
  static constexpr uint32_t kTomb = 0xfffffffeu;

  SimIndex(uint32_t bits, uint32_t band_bits, std::string scheme);
  uint32_t Find(const std::string& id) const;
  void TableInsert(uint32_t slot);
  void TableErase(uint32_t slot);
  void RebuildTable(size_t min_capacity);
  uint32_t BandValue(const uint64_t* sig, uint32_t band) const;
  static uint32_t BandKey(uint32_t value, uint64_t numel_hash);
  void AddToBands(uint32_t slot);
  void MergePending(uint32_t band);
  void Compact();  // drops dead slots, renumbers, rebuilds bands and table
  void RebuildBands();

  uint32_t bits_, band_bits_, bands_, words_;
  std::string scheme_;
  // Per-slot columns.
  std::vector<uint64_t> sigs_;
  std::vector<uint64_t> numel_;
  std::vector<float> rms_;
  std::vector<uint8_t> dtype_;
  std::vector<uint8_t> alive_;
  std::vector<uint32_t> shape_off_;
  std::vector<uint8_t> shape_nd_;
  std::vector<uint64_t> shapes_;
  std::vector<uint32_t> id_off_;
  std::vector<uint16_t> id_len_;
  std::string ids_;
  // Open-addressing id table of slots (kNone empty, kTomb deleted), linear probing.
  std::vector<uint32_t> table_;
  size_t table_used_ = 0;  // live + tombstones
  // Per band: sorted (key << 32 | slot) and an unsorted tail.
  std::vector<std::vector<uint64_t>> band_main_;
  std::vector<std::vector<uint64_t>> band_tail_;
  size_t live_ = 0;
  size_t dead_ = 0;
};

}  // namespace coral
