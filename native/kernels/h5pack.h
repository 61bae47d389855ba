// HDF5 object packs: one immutable HDF5 file holding many encoded objects.
//
// Layout (format "coral-pack-3", documented for outside readers in docs/store.md):
//   /                      attrs: format = "coral-pack-3", created = ISO-8601 UTC string,
//                                 createdUnixMs = int64, objectCount = uint64 (both kinds)
//   /objects/<id>          large objects: 1-D uint8 dataset, contiguous layout, no filters
//                          (the bytes are already codec-compressed); attrs: id, codec, dtype
//                          (strings), shape (int64[ndim], empty dataspace for 0-d), base
//                          (string, "" if none), rawSize (uint64), checksum (string, XXH3-128
//                          hex of the stored bytes), plus optional extra string attributes.
//   /small/data0, data1 …  small objects (< the writer's smallObjectMax) concatenated, in
//                          parts of at most kPackSmallPart bytes, each written as soon as it
//                          is full: 1-D uint8, contiguous, no filters.
//   /small/index           one row per small object: compound {id, part, offset (inside its
//                          part), size, checksum, codec, dtype, shape ("2,3"), base, rawSize,
//                          extra (urlencoded)}, fixed-length strings sized per pack, chunked
//                          with deflate and fletcher32 (HDF5's own checksum covers the rows).
// "coral-pack-2" files (one /small/data, no part field) and "coral-pack-1" files (no /small)
// are read as well. Files use the HDF5 1.8+ object format
// (superblock v2, checksummed object headers), so corrupted metadata is detected by libhdf5
// rather than misread; every row of the small table is validated against the data's extent.
//
// Thread: any. libhdf5 is the thread-safe build; its global lock serialises the calls.
// Each PackFile additionally holds a mutex so one handle is never used by two threads
// at once (a sync call on the JS thread and a pool worker, say); a reader holds it for
// its HDF5 calls only: checksums, O_DIRECT reads of large objects and the reads of small objects
// (plain pread at their file offsets, found when the table is loaded) run without it. HDF5's automatic
// error printing is switched off on every thread that enters this module.
// Ownership: data pointers are borrowed for the duration of a call, never retained (small
// objects are copied into the writer's buffer).
// Errors: Err with Status::NotFound (missing file or object), Status::Corrupt (a file
// that is not a readable pack: truncated, bad metadata, wrong types, a small-table row
// outside the data), Status::ChecksumMismatch (stored bytes do not match the recorded
// checksum; the message names the object and the pack), Status::Hdf5 (libhdf5 failed
// while writing), Status::Io (fsync/stat failures), Status::InvalidArgument (bad id or
// attribute names), Status::Unsupported (a newer pack format). Every message names the
// file. No call ever aborts the process on a damaged file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "errors.h"
#include "kernels/direct_io.h"
#include "util/big_buffer.h"

namespace coral {

constexpr const char* kPackFormat = "coral-pack-3";
constexpr const char* kPackFormatV2 = "coral-pack-2";  // one /small/data, still read
constexpr const char* kPackFormatV1 = "coral-pack-1";  // one dataset per object, still read
constexpr uint64_t kPackNoOffset = ~uint64_t(0);
// Default bound for small-object aggregation: objects with fewer stored bytes go to /small.
// Below 1 MiB an object would be written through the page cache anyway (kPackDirectMin), and
// a dataset of its own costs libhdf5 tens of microseconds and a few KB of memory for as long
// as the file is open, to write and again to read: a file of 16384 tensors of 32 KiB took
// ~100 MiB of libhdf5 memory to write when each had a dataset.
constexpr uint64_t kPackDefaultSmallMax = 1 << 20;
// Small objects are gathered in one aligned buffer of this many bytes; when the next one does
// not fit, the buffer is written as the next /small/data<k> part (O_DIRECT when the part is
// large enough, like a large object). The writer's memory for small objects is this buffer,
// whatever the pack's size. smallObjectMax is clamped to it.
constexpr uint64_t kPackSmallPart = 8 << 20;
// Rows of the small table a writer keeps (their attributes stay in memory until Finish); past
// it further objects become datasets.
constexpr uint64_t kPackSmallRowsCap = 1 << 20;
// Objects of at least this many stored bytes start on a kDirectAlign boundary in the file
// (H5Pset_alignment) and their bytes are written with O_DIRECT straight from the caller's
// memory (kernels/direct_io.h), bypassing the page cache; their last partial block and all
// HDF5 metadata go through ordinary buffered writes. Without O_DIRECT (tmpfs, or
// CORAL_NO_DIRECT_IO=1) every object goes through H5Dwrite. Either way the file is the same
// HDF5 file (one fsync in Finish makes both kinds of write durable).
constexpr uint64_t kPackDirectMin = 1 << 20;

// Attributes of one stored object.
struct PackObject {
  std::string id;
  std::string codec;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string base;
  uint64_t raw_size = 0;
  std::vector<std::pair<std::string, std::string>> extra;  // sorted by name when listed
  // Filled by the kernel:
  std::string checksum;             // XXH3-128 hex of the stored bytes
  uint64_t size = 0;                // stored bytes
  uint64_t offset = kPackNoOffset;  // file offset of the contiguous data (none when size 0;
                                    // for small objects known only after Finish)
  bool small = false;               // stored in /small (else /objects/<id>)
  int32_t small_part = -1;          // small objects: /small/data<part>; -1: /small/data (pack-2)
  uint64_t small_offset = 0;        // offset inside that dataset (small objects)
};

// Pack-level attributes.
struct PackMeta {
  std::string format;
  std::string created;
  int64_t created_unix_ms = 0;
};

// True when `id` is usable as an object id / dataset name: 1..128 chars of [0-9A-Za-z._-],
// not starting with '.'.
bool ValidPackId(const std::string& id);
// True for extra attribute names: [A-Za-z_][A-Za-z0-9_.-]{0,63} and not a reserved name.
bool ValidExtraAttrName(const std::string& name);

// A pack being written. Create -> Put* -> Finish (or Abort / destruction, which closes
// the file without fsync and leaves it for the caller to delete).
class PackWriterFile {
 public:
  // `small_max`: objects of fewer stored bytes are aggregated into /small (0: none are).
  static Err Create(const std::string& path, uint64_t small_max, std::unique_ptr<PackWriterFile>* out);
  ~PackWriterFile();

  // Appends one object (small ones are buffered until their part is full). Computes the
  // checksum and fills obj->checksum, size, offset, small. Fails with InvalidArgument on a
  // bad/duplicate id or extra name. *room (optional) receives the bytes the part being filled
  // can still take: a small put of at most that many bytes only copies (no file write).
  Err Put(PackObject* obj, const uint8_t* data, size_t len, uint64_t* room = nullptr);
  // Writes the small-object table, flushes, closes and fsyncs the file; *file_size receives
  // its final size and, when `entries` is given, every object with its final file offset,
  // sorted by id (what List() of the published pack returns).
  Err Finish(uint64_t* file_size, std::vector<PackObject>* entries = nullptr);
  // Closes without fsync. Idempotent.
  void Abort();

  uint64_t count() const { return count_; }
  const std::string& path() const { return path_; }

 private:
  PackWriterFile() = default;
  // Writes the part being filled as /small/data<parts_> (creating /small first).
  Err FlushPartLocked();
  // Writes /small/index (after the last part).
  Err WriteSmallIndexLocked();
  // Creates the contiguous byte dataset `name` in `group` and writes `len` bytes to it (through
  // O_DIRECT at its aligned offset when large enough); *ds receives it, open, *off its offset.
  Err WriteDatasetLocked(int64_t group, const char* name, const uint8_t* data, size_t len, bool minimal_header,
                         const std::string& where, int64_t* ds, uint64_t* off);
  // Writes a large object's bytes at its dataset's offset (direct_fd_ must be open).
  Err WriteDirectLocked(uint64_t off, const uint8_t* data, size_t len, const std::string& where);
  void CloseFds();
  std::mutex mu_;
  std::string path_;
  int64_t file_ = -1;
  int64_t group_ = -1;
  int direct_fd_ = -1;    // O_DIRECT descriptor of the same file (-1: not available)
  int buffered_fd_ = -1;  // plain descriptor for the unaligned tails of direct writes
  AlignedBytes bounce_;   // for direct writes from unaligned memory
  uint64_t count_ = 0;
  uint64_t small_max_ = 0;
  bool done_ = false;
  std::vector<PackObject> objects_;   // every object put, in put order (attributes only)
  std::unordered_set<std::string> ids_;
  AlignedBytes part_;                 // small objects of the part being filled (kPackSmallPart)
  uint64_t part_n_ = 0;               // bytes in it
  uint64_t part_rows_ = 0;            // objects in it (empty objects take no bytes)
  int64_t small_group_ = -1;          // /small, once the first part is written
  std::vector<uint64_t> part_offsets_;  // file offset of each written part (kPackNoOffset: empty)
  uint64_t small_rows_ = 0;
};

// A published pack opened read-only.
class PackReaderFile {
 public:
  static Err Open(const std::string& path, std::unique_ptr<PackReaderFile>* out);
  ~PackReaderFile();

  const PackMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }

  // Every object with its attributes, in name order.
  Err List(std::vector<PackObject>* out);
  // One object's attributes (NotFound when absent).
  Err Stat(const std::string& id, PackObject* out);
  // Reads one object into a buffer the caller sized from Stat; verifies the checksum.
  // `cap` must be >= the stored size. *got receives the stored size.
  Err ReadInto(const std::string& id, uint8_t* dst, size_t cap, uint64_t* got);
  // Reads one object into a new buffer from the large-buffer pool (verified).
  Err Read(const std::string& id, BigBuffer* out, uint64_t* size);
  void Close();

 private:
  PackReaderFile() = default;
  Err StatLocked(const std::string& id, PackObject* out);
  // Opens the dataset (returned in *ds, closed by the caller) and fills size, offset, checksum.
  Err OpenForRead(const std::string& id, int64_t* ds, PackObject* o);
  // ReadInto and Read: `alloc` gives the memory for the object's stored size (or an error).
  using Alloc = std::function<Err(uint64_t size, uint8_t** dst)>;
  Err ReadObject(const std::string& id, const Alloc& alloc, uint64_t* got);
  // Loads and validates /small/index once (no-op for packs without /small).
  Err LoadSmallLocked();
  const PackObject* FindSmall(const std::string& id) const;
  // Opens buffered_fd_ if needed.
  Err PlainFdLocked();
  Err VerifyChecksum(const std::string& id, const uint8_t* data, const PackObject& o);
  std::mutex mu_;
  std::string path_;
  int64_t file_ = -1;
  PackMeta meta_;
  bool small_loaded_ = false;
  std::vector<PackObject> small_;                       // sorted by id
  std::unordered_map<std::string, size_t> small_index_;  // id -> index in small_
  // Large objects at aligned offsets are read with O_DIRECT into aligned memory (no page
  // cache copy; packs are written that way too). Opened on first use; -2: unavailable.
  int direct_fd_ = -1;
  // Plain descriptor: small objects, and the tails of direct reads. Opened with the file.
  int buffered_fd_ = -1;
  // Reads using those fds past the mutex (ReadObject); Close waits on idle_ until none remain.
  int readers_ = 0;
  std::condition_variable idle_;
};

}  // namespace coral
