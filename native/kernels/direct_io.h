// Large file writes that bypass the page cache (O_DIRECT), with a buffered fallback.
//
// Why: on the machines we measured, copying written bytes into the page cache and then
// flushing them with fsync costs more than the codecs (a buffered write + fsync of 512 MiB
// ran at ~0.3-0.7 GB/s where O_DIRECT ran at ~1.3-1.7 GB/s), and the page cache's
// copies, page allocations and zeroing compete with encode/decode for the CPU.
//
// DirectWrite: writes `len` bytes at file offset `off` (a multiple of kDirectAlign) through
// an O_DIRECT descriptor. The part that is a whole number of kDirectAlign blocks goes
// straight from `data` when `data` is aligned, else through `bounce` (an aligned buffer of
// kDirectBounce bytes, allocated on first use); the unaligned tail (< kDirectAlign bytes)
// is left to the caller, who writes it through its buffered descriptor (*tail_from receives
// where it starts). Never touches bytes outside [off, off + len).
//
// AlignedFileWriter: a new file written front to back (Create -> Append* -> Finish). Bytes
// are gathered into aligned buffers and written in kDirectChunk blocks with O_DIRECT; the
// last partial block is written padded and the file truncated to its exact size, then the
// file is fsynced and closed. On a filesystem without O_DIRECT (tmpfs, some FUSE), or with
// CORAL_NO_DIRECT_IO=1 in the environment, the same calls use ordinary buffered writes.
// Full blocks are written by the writer's own background thread (up to kWriteRing blocks
// of kDirectChunk bytes in memory), so Append returns once the bytes are copied and the
// device works while the caller produces the next ones (a checkout decodes and hashes the
// next segment). A background write's error is returned by the next Append or by Finish;
// Finish returns only after every block is written, then fsyncs.
//
// A hashing writer (EnableSha256) hashes a large Append's bytes on a second background
// thread, straight from the caller's buffer, while the calling thread copies them into the
// blocks: the SHA-256 (the slowest step, and sequential) never waits for the copy, and an
// Append takes about as long as hashing its bytes. Append returns once both are done.
//
// A large Append whose bytes sit at an address that agrees with their file offset modulo
// kDirectAlign (the caller placed them so: checkout decodes each segment at such an address)
// is not copied while direct: the bytes up to the next aligned offset complete the block being
// filled, the aligned middle is written by the background thread straight from the caller's
// buffer, and the short tail starts the next block. Append then also waits for that write.
//
// Thread: an AlignedFileWriter is used by one thread at a time (callers serialise); its
// background threads only write blocks handed to them and hash the span of the Append
// under way. Free functions: any thread.
// Ownership: data pointers are borrowed for the call (Append copies them).
// Errors: Status::Io with the path and strerror; Status::InvalidArgument on misuse
// (append after finish, an unaligned offset).
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "errors.h"
#include "kernels/sha256.h"

namespace coral {

constexpr size_t kDirectAlign = 4096;
constexpr size_t kDirectBounce = size_t(4) << 20;
constexpr size_t kDirectChunk = size_t(8) << 20;
// Blocks of kDirectChunk bytes an AlignedFileWriter holds: one being filled, the rest queued
// for (or under) its background write.
constexpr size_t kWriteRing = 3;

// True unless CORAL_NO_DIRECT_IO is set to a non-empty value other than "0".
bool DirectIoAllowed();

// An aligned heap block (freed with free()).
struct AlignedFree {
  void operator()(uint8_t* p) const;
};
using AlignedBytes = std::unique_ptr<uint8_t, AlignedFree>;
AlignedBytes AllocAligned(size_t n);

// Writes the aligned prefix of [data, data+len) at `off` through O_DIRECT descriptor `fd`.
// `off` must be a multiple of kDirectAlign. *tail_from = the number of bytes written.
Err DirectWrite(int fd, const uint8_t* data, size_t len, uint64_t off, AlignedBytes* bounce, size_t* tail_from,
                const std::string& what);

// Reads `len` bytes at file offset `off` (a multiple of kDirectAlign) into `dst` (aligned to
// kDirectAlign): the whole blocks through O_DIRECT descriptor `dfd`, the tail through the
// ordinary descriptor `bfd`. Status::Corrupt when the file ends first.
Err DirectRead(int dfd, int bfd, uint8_t* dst, size_t len, uint64_t off, const std::string& what);

class AlignedFileWriter {
 public:
  // Creates `path` exclusively (O_EXCL) with `mode`.
  static Err Create(const std::string& path, unsigned mode, std::unique_ptr<AlignedFileWriter>* out);
  ~AlignedFileWriter();

  Err Append(const uint8_t* data, size_t len);
  // Writes what is buffered, sets the exact size, fsyncs and closes. *size = bytes appended.
  Err Finish(uint64_t* size);
  // Closes without fsync (the caller removes the file). Idempotent.
  void Abort();

  bool direct() const { return direct_; }

  // Also computes the SHA-256 of the appended bytes, as Append copies them (kernels/sha256.h).
  // Call before the first Append; false when the host offers no SHA-256 (nothing is hashed).
  bool EnableSha256();
  // After a successful Finish of a hashing writer: the digest (64 hex characters), else "".
  const std::string& sha256_hex() const { return sha_hex_; }

 private:
  AlignedFileWriter() = default;
  // Hands buf_'s first n bytes to the background thread (or writes them here when the
  // thread cannot start) and takes a free buffer for the next block.
  Err Submit(size_t n);
  // Writes [p, p+n) (aligned, n a multiple of kDirectAlign) at written_ from the caller's
  // buffer: queued for the background thread (WaitBorrowed waits for it) or written here.
  Err SubmitBorrowed(const uint8_t* p, size_t n);
  // Waits until no queued block borrows the caller's bytes; the first background error.
  Err WaitBorrowed();
  bool StartWriter();
  // Waits until every submitted block is written and stops the thread; its first error.
  Err Drain();
  void WriterLoop();
  void HashLoop();
  // Starts hashing [p, p+n) on the hash thread; false when that thread cannot start (the
  // caller hashes). Every started span is awaited with HashWait before Append returns.
  bool HashStart(const uint8_t* p, size_t n);
  void HashWait();
  void HashStop();

  struct Block {
    AlignedBytes buf;
    size_t n = 0;
    uint64_t off = 0;
    const uint8_t* borrowed = nullptr;  // set instead of buf: the caller's bytes (SubmitBorrowed)
  };
  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  AlignedBytes buf_;      // the block being filled
  size_t fill_ = 0;       // bytes gathered in buf_
  uint64_t written_ = 0;  // bytes submitted for writing (a multiple of kDirectAlign while direct)
  size_t blocks_ = 0;     // aligned blocks allocated (at most kWriteRing)
  std::unique_ptr<Sha256> sha_;
  std::string sha_hex_;

  // Shared with the background thread, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Block> queue_;          // submitted, not yet taken by the thread
  std::vector<AlignedBytes> spare_;  // written blocks, ready for reuse
  bool writing_ = false;             // the thread is writing a block
  size_t borrowed_ = 0;              // queued or under-write blocks that borrow the caller's bytes
  bool stop_ = false;
  Err bg_err_;  // the first failed background write
  std::thread thread_;

  // The hash thread (hashing writers only), under hmu_: the span of the Append under way.
  std::mutex hmu_;
  std::condition_variable hcv_;
  const uint8_t* hp_ = nullptr;  // set by HashStart, cleared by the thread once hashed
  size_t hn_ = 0;
  bool hstop_ = false;
  std::thread hthread_;
};

}  // namespace coral
