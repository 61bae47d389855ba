#include "kernels/direct_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace coral {

namespace {

Err IoErr(const std::string& what, const char* op, int e) {
  return Err::Make(Status::Io, what + ": " + op + " failed: " + std::strerror(e));
}

// pwrite until done (short writes and EINTR are retried).
Err PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoErr(what, "write", errno);
    }
    if (w == 0) return Err::Make(Status::Io, what + ": write made no progress");
    p += w, n -= static_cast<size_t>(w), off += static_cast<uint64_t>(w);
  }
  return Err::Ok();
}

}  // namespace

bool DirectIoAllowed() {
  const char* v = std::getenv("CORAL_NO_DIRECT_IO");
  return !(v && *v && *v != '0');
}

void AlignedFree::operator()(uint8_t* p) const { std::free(p); }

AlignedBytes AllocAligned(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, kDirectAlign, n) != 0) return AlignedBytes();
  return AlignedBytes(static_cast<uint8_t*>(p));
}

Err DirectWrite(int fd, const uint8_t* data, size_t len, uint64_t off, AlignedBytes* bounce, size_t* tail_from,
                const std::string& what) {
  *tail_from = 0;
  if (off % kDirectAlign) return Err::Make(Status::InvalidArgument, what + ": unaligned direct write offset");
  const size_t whole = len & ~(kDirectAlign - 1);
  if (whole == 0) return Err::Ok();
  if (reinterpret_cast<uintptr_t>(data) % kDirectAlign == 0) {
    CORAL_TRY(PwriteAll(fd, data, whole, off, what));
  } else {
    if (!*bounce) {
      *bounce = AllocAligned(kDirectBounce);
      if (!*bounce) return Err::Make(Status::OutOfMemory, what + ": cannot allocate a write buffer");
    }
    for (size_t done = 0; done < whole;) {
      const size_t n = std::min(kDirectBounce, whole - done);
      std::memcpy(bounce->get(), data + done, n);
      CORAL_TRY(PwriteAll(fd, bounce->get(), n, off + done, what));
      done += n;
    }
  }
  *tail_from = whole;
  return Err::Ok();
}

Err DirectRead(int dfd, int bfd, uint8_t* dst, size_t len, uint64_t off, const std::string& what) {
  if (off % kDirectAlign || reinterpret_cast<uintptr_t>(dst) % kDirectAlign)
    return Err::Make(Status::InvalidArgument, what + ": unaligned direct read");
  const size_t whole = len & ~(kDirectAlign - 1);
  size_t done = 0;
  while (done < len) {
    const bool direct = done < whole;
    const int fd = direct ? dfd : bfd;
    const size_t want = direct ? whole - done : len - done;
    ssize_t r = ::pread(fd, dst + done, want, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return IoErr(what, "read", errno);
    }
    if (r == 0) return Err::Make(Status::Corrupt, what + ": the file ends inside the object's data");
    done += static_cast<size_t>(r);
    // A short direct read ends on a block boundary only at end of file; the next loop
    // iteration then reads 0 (or, past `whole`, continues with the buffered descriptor).
    if (direct && done < whole && done % kDirectAlign) {
      // Finish an unaligned remainder through the buffered descriptor.
      while (done < whole) {
        ssize_t q = ::pread(bfd, dst + done, whole - done, static_cast<off_t>(off + done));
        if (q < 0 && errno == EINTR) continue;
        if (q < 0) return IoErr(what, "read", errno);
        if (q == 0) return Err::Make(Status::Corrupt, what + ": the file ends inside the object's data");
        done += static_cast<size_t>(q);
      }
    }
  }
  return Err::Ok();
}

Err AlignedFileWriter::Create(const std::string& path, unsigned mode, std::unique_ptr<AlignedFileWriter>* out) {
  std::unique_ptr<AlignedFileWriter> w(new AlignedFileWriter());
  w->path_ = path;
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = -1;
  if (DirectIoAllowed()) {
    fd = ::open(path.c_str(), flags | O_DIRECT, mode);
    if (fd >= 0) {
      w->direct_ = true;
    } else if (errno == EINVAL) {
      // No O_DIRECT here: the open may still have created the file.
      ::unlink(path.c_str());
    } else {
      return IoErr(path, "open", errno);
    }
  }
  if (fd < 0) {
    fd = ::open(path.c_str(), flags, mode);
    if (fd < 0) return IoErr(path, "open", errno);
  }
  w->fd_ = fd;
  w->buf_ = AllocAligned(kDirectChunk);
  if (!w->buf_) {
    w->Abort();
    return Err::Make(Status::OutOfMemory, path + ": cannot allocate a write buffer");
  }
  w->blocks_ = 1;
  *out = std::move(w);
  return Err::Ok();
}

AlignedFileWriter::~AlignedFileWriter() { Abort(); }

void AlignedFileWriter::Abort() {
  HashStop();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    for (const Block& b : queue_)
      if (b.borrowed) --borrowed_;
    queue_.clear();  // blocks not yet under write are dropped
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // waits for a write under way
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void AlignedFileWriter::WriterLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopped with nothing left to write
    Block b = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    const bool skip = !bg_err_.ok();  // after a failure, later blocks are not written
    lk.unlock();
    Err e = skip ? Err::Ok() : PwriteAll(fd_, b.borrowed ? b.borrowed : b.buf.get(), b.n, b.off, path_);
    lk.lock();
    writing_ = false;
    if (!e.ok() && bg_err_.ok()) bg_err_ = std::move(e);
    if (b.borrowed) --borrowed_;
    else spare_.push_back(std::move(b.buf));
    cv_.notify_all();
  }
}

bool AlignedFileWriter::StartWriter() {
  if (thread_.joinable()) return true;
  try {
    thread_ = std::thread([this] { WriterLoop(); });
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

Err AlignedFileWriter::SubmitBorrowed(const uint8_t* p, size_t n) {
  const uint64_t off = written_;
  written_ += n;
  if (!StartWriter()) return PwriteAll(fd_, p, n, off, path_);  // no thread: write here
  std::lock_guard<std::mutex> lk(mu_);
  if (!bg_err_.ok()) return bg_err_;
  queue_.push_back(Block{AlignedBytes(), n, off, p});
  ++borrowed_;
  cv_.notify_all();
  return Err::Ok();
}

Err AlignedFileWriter::WaitBorrowed() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return borrowed_ == 0; });
  return bg_err_;
}

Err AlignedFileWriter::Submit(size_t n) {
  const uint64_t off = written_;
  written_ += n;
  if (!StartWriter()) {
    // No thread: write here, as before.
    CORAL_TRY(PwriteAll(fd_, buf_.get(), n, off, path_));
    return Err::Ok();
  }
  std::unique_lock<std::mutex> lk(mu_);
  if (!bg_err_.ok()) return bg_err_;
  queue_.push_back(Block{std::move(buf_), n, off});
  cv_.notify_all();
  if (spare_.empty() && blocks_ < kWriteRing) {
    lk.unlock();
    buf_ = AllocAligned(kDirectChunk);
    if (buf_) {
      ++blocks_;
      return Err::Ok();
    }
    lk.lock();  // no memory for another block: wait for one to come back
  }
  cv_.wait(lk, [&] { return !spare_.empty(); });
  buf_ = std::move(spare_.back());
  spare_.pop_back();
  return bg_err_;
}

Err AlignedFileWriter::Drain() {
  if (!thread_.joinable()) return Err::Ok();
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return queue_.empty() && !writing_; });
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  return bg_err_;
}

bool AlignedFileWriter::EnableSha256() {
  if (written_ || fill_) return false;
  if (!sha_) sha_ = Sha256::Create();
  return sha_ != nullptr;
}

// Bytes copied and hashed at a time when one thread does both: the hash reads them while
// they are still in cache.
constexpr size_t kHashPiece = size_t(1) << 20;
// Appends at least this long are hashed on the hash thread while this one copies.
constexpr size_t kHashAside = size_t(1) << 20;
// Appends at least this long are written from the caller's buffer when its alignment allows.
constexpr size_t kBorrowMin = size_t(1) << 20;

void AlignedFileWriter::HashLoop() {
  std::unique_lock<std::mutex> lk(hmu_);
  for (;;) {
    hcv_.wait(lk, [&] { return hstop_ || hp_ != nullptr; });
    if (!hp_) return;  // stopped with no span to hash
    const uint8_t* p = hp_;
    const size_t n = hn_;
    lk.unlock();
    sha_->Update(p, n);
    lk.lock();
    hp_ = nullptr;
    hcv_.notify_all();
  }
}

bool AlignedFileWriter::HashStart(const uint8_t* p, size_t n) {
  if (!hthread_.joinable()) {
    try {
      hthread_ = std::thread([this] { HashLoop(); });
    } catch (const std::exception&) {
      return false;
    }
  }
  {
    std::lock_guard<std::mutex> lk(hmu_);
    hp_ = p, hn_ = n;
  }
  hcv_.notify_all();
  return true;
}

void AlignedFileWriter::HashWait() {
  std::unique_lock<std::mutex> lk(hmu_);
  hcv_.wait(lk, [&] { return hp_ == nullptr; });
}

void AlignedFileWriter::HashStop() {
  if (!hthread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(hmu_);
    hstop_ = true;
  }
  hcv_.notify_all();
  hthread_.join();  // after the span under way, if any
}

Err AlignedFileWriter::Append(const uint8_t* data, size_t len) {
  if (fd_ < 0 || !buf_) return Err::Make(Status::InvalidArgument, path_ + ": writer already finished");
  // A large span is hashed beside the copy (from the caller's bytes, which stay put until
  // HashWait); a small one, or one whose hash thread cannot start, is hashed here as copied.
  const bool aside = sha_ && len >= kHashAside && HashStart(data, len);
  const bool here = sha_ && !aside;
  Err e;
  // Written from the caller's buffer when its address agrees with the file offset (see the header).
  const uint64_t pos = written_ + fill_;
  if (direct_ && len >= kBorrowMin && reinterpret_cast<uintptr_t>(data) % kDirectAlign == pos % kDirectAlign) {
    const size_t head = size_t((kDirectAlign - pos % kDirectAlign) % kDirectAlign);
    std::memcpy(buf_.get() + fill_, data, head);
    if (here) sha_->Update(data, head);
    fill_ += head, data += head, len -= head;
    if (fill_ > 0) {  // the block being filled ends on an aligned offset: out it goes, as it is
      const size_t n = fill_;
      fill_ = 0;
      e = Submit(n);
    }
    const size_t mid = len & ~(kDirectAlign - 1);
    if (e.ok()) {
      if (here) sha_->Update(data, mid);
      e = SubmitBorrowed(data, mid);
      data += mid, len -= mid;
    }
    // The tail (< kDirectAlign bytes) starts the next block, below.
    if (!e.ok()) len = 0;
  }
  while (len > 0) {
    const size_t n = std::min(len, std::min(kDirectChunk - fill_, here ? kHashPiece : kDirectChunk));
    std::memcpy(buf_.get() + fill_, data, n);
    if (here) sha_->Update(buf_.get() + fill_, n);
    fill_ += n, data += n, len -= n;
    if (fill_ == kDirectChunk) {
      fill_ = 0;
      e = Submit(kDirectChunk);
      if (!e.ok()) break;
    }
  }
  // Also after a failure: the hash thread and a borrowed write read the caller's bytes.
  if (aside) HashWait();
  Err w = WaitBorrowed();
  return e.ok() ? w : e;
}

Err AlignedFileWriter::Finish(uint64_t* size) {
  if (fd_ < 0 || !buf_) return Err::Make(Status::InvalidArgument, path_ + ": writer already finished");
  const uint64_t total = written_ + fill_;
  if (fill_ > 0) {
    // The last block goes out padded when direct; the file is then cut to its exact size.
    const size_t n = direct_ ? (fill_ + kDirectAlign - 1) & ~(kDirectAlign - 1) : fill_;
    std::memset(buf_.get() + fill_, 0, n - fill_);
    CORAL_TRY(PwriteAll(fd_, buf_.get(), n, written_, path_));
    fill_ = 0;
  }
  CORAL_TRY(Drain());
  HashStop();
  if (direct_ && ::ftruncate(fd_, static_cast<off_t>(total)) != 0) return IoErr(path_, "ftruncate", errno);
  if (::fsync(fd_) != 0) return IoErr(path_, "fsync", errno);
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0 && errno != EINTR) return IoErr(path_, "close", errno);
  buf_.reset();
  spare_.clear();
  if (sha_ && !sha_->FinalHex(&sha_hex_)) return Err::Make(Status::Io, path_ + ": SHA-256 failed");
  *size = total;
  return Err::Ok();
}

}  // namespace coral
