#include "kernels/h5pack.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "kernels/hash.h"

namespace coral {
namespace {

// Reserved attribute names: extra attributes may not use them.
const char* const kReserved[] = {"id", "codec", "dtype", "shape", "base", "rawSize", "checksum"};
constexpr size_t kMaxShapeRank = 64;
constexpr size_t kMaxAttrString = 1 << 20;   // longest string attribute we accept on read
constexpr size_t kMaxWriteString = 16 << 10;  // longest string attribute we write

// HDF5 keeps one error stack (and one auto-print setting) per thread in the
// thread-safe build, so silence it on every thread that calls in.
void Quiet() {
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

// HDF5's own flock()-based file locking adds nothing here (published packs are
// immutable, and each temp pack has exactly one writer) and fails outright on
// filesystems without flock support (some NFS/Lustre mounts), so it is off.
herr_t DisableFileLocking(hid_t fapl) {
#if H5_VERSION_GE(1, 10, 7)
  return H5Pset_file_locking(fapl, false, true);
#else
  (void)fapl;
  return 0;
#endif
}

herr_t WalkCb(unsigned n, const H5E_error2_t* e, void* data) {
  auto* s = static_cast<std::string*>(data);
  if (n >= 4) return 0;  // the innermost few frames say what went wrong
  if (!s->empty()) s->append("; ");
  s->append(e->desc ? e->desc : "?");
  return 0;
}

// The current thread's HDF5 error stack as one line, then cleared.
std::string TakeHdf5Error() {
  std::string s;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, WalkCb, &s);
  H5Eclear2(H5E_DEFAULT);
  return s.empty() ? "libhdf5 error" : s;
}

Err H5Fail(Status st, const std::string& path, const std::string& what) {
  return Err::Make(st, "pack " + path + ": " + what + " (" + TakeHdf5Error() + ")");
}

// Owns one hid_t and closes it with the matching H5*close.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);
  Hid() = default;
  Hid(hid_t id, Closer c) : id_(id), close_(c) {}
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  Hid(Hid&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Hid& operator=(Hid&& o) noexcept {
    Reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~Hid() { Reset(); }
  void Reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  bool ok() const { return id_ >= 0; }
  hid_t get() const { return id_; }
  hid_t Release() {
    hid_t x = id_;
    id_ = -1;
    return x;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

bool IsReserved(const std::string& n) {
  for (const char* r : kReserved)
    if (n == r) return true;
  return false;
}

std::string IsoNow(int64_t* unix_ms) {
  auto now = std::chrono::system_clock::now();
  *unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(*unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(*unix_ms % 1000));
  return buf;
}

// ---- attribute writers ------------------------------------------------------------------

// Strings are fixed-length (NUL-terminated, UTF-8), never variable-length: a
// fixed-length value lives inside the attribute message of its checksummed
// object header, whereas variable-length strings live in the global heap,
// which carries no checksum -- and libhdf5 can crash or hang on a damaged one.
Err WriteStringAttr(hid_t obj, const char* name, const std::string& value, const std::string& path) {
  if (value.find('\0') != std::string::npos)
    return Err::Make(Status::InvalidArgument, std::string("attribute ") + name + " contains a NUL character");
  if (value.size() > kMaxWriteString)  // compact attribute messages must stay well under 64 KiB
    return Err::Make(Status::InvalidArgument, std::string("attribute ") + name + " is longer than 16 KiB");
  Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.ok() || H5Tset_size(type.get(), value.size() + 1) < 0 || H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0 ||
      H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    return H5Fail(Status::Hdf5, path, "cannot make string type");
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return H5Fail(Status::Hdf5, path, std::string("cannot create attribute ") + name);
  if (H5Awrite(attr.get(), type.get(), value.c_str()) < 0)
    return H5Fail(Status::Hdf5, path, std::string("cannot write attribute ") + name);
  return Err::Ok();
}

Err WriteScalarAttr(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, const void* v,
                    const std::string& path) {
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid attr(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), mem_type, v) < 0)
    return H5Fail(Status::Hdf5, path, std::string("cannot write attribute ") + name);
  return Err::Ok();
}

Err WriteI64ArrayAttr(hid_t obj, const char* name, const std::vector<int64_t>& v, const std::string& path) {
  hsize_t dims[1] = {v.size()};
  Hid space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Hid attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return H5Fail(Status::Hdf5, path, std::string("cannot create attribute ") + name);
  if (!v.empty() && H5Awrite(attr.get(), H5T_NATIVE_INT64, v.data()) < 0)
    return H5Fail(Status::Hdf5, path, std::string("cannot write attribute ") + name);
  return Err::Ok();
}

// ---- attribute readers (accept what h5py or other writers produce) ------------------------

Err ReadStringAttr(hid_t obj, const char* name, std::string* out, bool* present, const std::string& where) {
  htri_t ex = H5Aexists(obj, name);
  if (ex < 0) return H5Fail(Status::Corrupt, where, std::string("cannot query attribute ") + name);
  if (ex == 0) {
    if (present) {
      *present = false;
      return Err::Ok();
    }
    return Err::Make(Status::Corrupt, "pack " + where + ": missing attribute " + name);
  }
  if (present) *present = true;
  Hid attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return H5Fail(Status::Corrupt, where, std::string("cannot open attribute ") + name);
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  Hid space(H5Aget_space(attr.get()), H5Sclose);
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_STRING ||
      H5Sget_simple_extent_npoints(space.get()) != 1)
    return Err::Make(Status::Corrupt, "pack " + where + ": attribute " + name + " is not a scalar string");
  htri_t var = H5Tis_variable_str(type.get());
  if (var < 0) return H5Fail(Status::Corrupt, where, std::string("bad type of attribute ") + name);
  Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
  if (var > 0) {
    H5Tset_size(mem.get(), H5T_VARIABLE);
    char* p = nullptr;
    if (H5Aread(attr.get(), mem.get(), &p) < 0)
      return H5Fail(Status::Corrupt, where, std::string("cannot read attribute ") + name);
    out->assign(p ? p : "");
    if (p) H5free_memory(p);
  } else {
    size_t n = H5Tget_size(type.get());
    if (n == 0 || n > kMaxAttrString)
      return Err::Make(Status::Corrupt, "pack " + where + ": attribute " + name + " has a bad size");
    H5Tset_size(mem.get(), n);
    H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
    std::string buf(n, '\0');
    if (H5Aread(attr.get(), mem.get(), &buf[0]) < 0)
      return H5Fail(Status::Corrupt, where, std::string("cannot read attribute ") + name);
    size_t end = buf.find('\0');
    if (end != std::string::npos) buf.resize(end);
    *out = std::move(buf);
  }
  if (out->size() > kMaxAttrString)
    return Err::Make(Status::Corrupt, "pack " + where + ": attribute " + name + " is too long");
  return Err::Ok();
}

Err ReadIntAttr(hid_t obj, const char* name, bool is_signed, std::vector<int64_t>* out, bool scalar,
                const std::string& where) {
  Hid attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return H5Fail(Status::Corrupt, where, std::string("missing attribute ") + name);
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  Hid space(H5Aget_space(attr.get()), H5Sclose);
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_INTEGER)
    return Err::Make(Status::Corrupt, "pack " + where + ": attribute " + name + " is not an integer");
  H5S_class_t cls = H5Sget_simple_extent_type(space.get());
  hssize_t n = cls == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || (scalar && n != 1) || static_cast<size_t>(n) > kMaxShapeRank)
    return Err::Make(Status::Corrupt, "pack " + where + ": attribute " + name + " has a bad extent");
  out->assign(static_cast<size_t>(n), 0);
  if (n > 0 && H5Aread(attr.get(), is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64, out->data()) < 0)
    return H5Fail(Status::Corrupt, where, std::string("cannot read attribute ") + name);
  return Err::Ok();
}

struct ExtraCtx {
  std::vector<std::pair<std::string, std::string>>* extra;
  std::string where;
  Err err;
};

herr_t ExtraCb(hid_t obj, const char* name, const H5A_info_t*, void* data) {
  auto* ctx = static_cast<ExtraCtx*>(data);
  std::string n(name);
  if (IsReserved(n)) return 0;
  // Only string attributes are ours; anything else (added by another tool) is skipped.
  Hid attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) return 0;
  Hid type(H5Aget_type(attr.get()), H5Tclose);
  if (!type.ok() || H5Tget_class(type.get()) != H5T_STRING) return 0;
  std::string v;
  ctx->err = ReadStringAttr(obj, name, &v, nullptr, ctx->where);
  if (!ctx->err.ok()) return -1;
  ctx->extra->emplace_back(std::move(n), std::move(v));
  return 0;
}

herr_t NameCb(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

std::string Where(const std::string& path, const std::string& id) { return path + ": object " + id; }

}  // namespace

bool ValidPackId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') return false;
  for (char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

bool ValidExtraAttrName(const std::string& n) {
  if (n.empty() || n.size() > 64 || IsReserved(n)) return false;
  if (!((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z') || n[0] == '_')) return false;
  for (char c : n) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

// ---- writer -------------------------------------------------------------------------------

Err PackWriterFile::Create(const std::string& path, std::unique_ptr<PackWriterFile>* out) {
  Quiet();
  std::unique_ptr<PackWriterFile> w(new PackWriterFile());
  w->path_ = path;
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0 ||
      H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0 || DisableFileLocking(fapl.get()) < 0)
    return H5Fail(Status::Hdf5, path, "cannot set file access properties");
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get());
  if (f < 0) return H5Fail(Status::Hdf5, path, "cannot create file");
  w->file_ = f;
  int64_t ms = 0;
  std::string created = IsoNow(&ms);
  CORAL_TRY(WriteStringAttr(f, "format", kPackFormat, path));
  CORAL_TRY(WriteStringAttr(f, "created", created, path));
  CORAL_TRY(WriteScalarAttr(f, "createdUnixMs", H5T_STD_I64LE, H5T_NATIVE_INT64, &ms, path));
  hid_t g = H5Gcreate2(f, "objects", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return H5Fail(Status::Hdf5, path, "cannot create /objects");
  w->group_ = g;
  *out = std::move(w);
  return Err::Ok();
}

PackWriterFile::~PackWriterFile() { Abort(); }

void PackWriterFile::Abort() {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (group_ >= 0) H5Gclose(group_);
  if (file_ >= 0) H5Fclose(file_);
  group_ = file_ = -1;
  done_ = true;
  H5Eclear2(H5E_DEFAULT);
}

Err PackWriterFile::Put(PackObject* obj, const uint8_t* data, size_t len) {
  if (!ValidPackId(obj->id))
    return Err::Make(Status::InvalidArgument, "pack " + path_ + ": invalid object id \"" + obj->id + "\"");
  if (obj->shape.size() > kMaxShapeRank)
    return Err::Make(Status::InvalidArgument, "pack " + path_ + ": shape has more than 64 dimensions");
  for (auto& kv : obj->extra)
    if (!ValidExtraAttrName(kv.first))
      return Err::Make(Status::InvalidArgument, "pack " + path_ + ": invalid extra attribute name \"" + kv.first + "\"");
  // Hash before taking any lock: this is the only CPU-heavy part of a put.
  obj->checksum = Xxh3_128(data, len).Hex();
  obj->size = len;
  obj->offset = kPackNoOffset;

  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (done_ || file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + ": writer already finished");
  const std::string where = Where(path_, obj->id);

  hsize_t dims[1] = {len};
  Hid space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!space.ok() || !dcpl.ok() || H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS) < 0 ||
      H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER) < 0 || H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_LATE) < 0 ||
      H5Pset_obj_track_times(dcpl.get(), false) < 0)  // no timestamps: fewer header messages, reproducible bytes
    return H5Fail(Status::Hdf5, where, "cannot set dataset properties");
  Hid ds(H5Dcreate2(group_, obj->id.c_str(), H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
         H5Dclose);
  if (!ds.ok()) {
    Err e = H5Fail(Status::Hdf5, where, "cannot create dataset");
    if (H5Lexists(group_, obj->id.c_str(), H5P_DEFAULT) > 0)
      e = Err::Make(Status::InvalidArgument, "pack " + where + " is already in this pack");
    H5Eclear2(H5E_DEFAULT);
    return e;
  }
  if (len > 0) {
    if (H5Dwrite(ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
      return H5Fail(Status::Hdf5, where, "cannot write data");
    haddr_t off = H5Dget_offset(ds.get());
    if (off != HADDR_UNDEF) obj->offset = off;
  }
  hid_t d = ds.get();
  CORAL_TRY(WriteStringAttr(d, "id", obj->id, where));
  CORAL_TRY(WriteStringAttr(d, "codec", obj->codec, where));
  CORAL_TRY(WriteStringAttr(d, "dtype", obj->dtype, where));
  CORAL_TRY(WriteI64ArrayAttr(d, "shape", obj->shape, where));
  CORAL_TRY(WriteStringAttr(d, "base", obj->base, where));
  CORAL_TRY(WriteScalarAttr(d, "rawSize", H5T_STD_U64LE, H5T_NATIVE_UINT64, &obj->raw_size, where));
  CORAL_TRY(WriteStringAttr(d, "checksum", obj->checksum, where));
  for (auto& kv : obj->extra) CORAL_TRY(WriteStringAttr(d, kv.first.c_str(), kv.second, where));
  count_++;
  return Err::Ok();
}

Err PackWriterFile::Finish(uint64_t* file_size) {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (done_ || file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + ": writer already finished");
  done_ = true;
  Err e = WriteScalarAttr(file_, "objectCount", H5T_STD_U64LE, H5T_NATIVE_UINT64, &count_, path_);
  H5Gclose(group_);
  group_ = -1;
  if (e.ok() && H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) e = H5Fail(Status::Hdf5, path_, "cannot flush");
  if (H5Fclose(file_) < 0 && e.ok()) e = H5Fail(Status::Hdf5, path_, "cannot close");
  file_ = -1;
  if (!e.ok()) return e;
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Err::Make(Status::Io, "pack " + path_ + ": cannot reopen for fsync: " + std::strerror(errno));
  struct stat st {};
  int rc = ::fsync(fd);
  int saved = errno;
  if (rc == 0) rc = ::fstat(fd, &st), saved = errno;
  ::close(fd);
  if (rc != 0) return Err::Make(Status::Io, "pack " + path_ + ": fsync failed: " + std::strerror(saved));
  *file_size = static_cast<uint64_t>(st.st_size);
  return Err::Ok();
}

// ---- reader -------------------------------------------------------------------------------

Err PackReaderFile::Open(const std::string& path, std::unique_ptr<PackReaderFile>* out) {
  Quiet();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT) return Err::Make(Status::NotFound, "pack " + path + " does not exist");
    return Err::Make(Status::Io, "pack " + path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) return Err::Make(Status::Corrupt, "pack " + path + " is not a regular file");
  std::unique_ptr<PackReaderFile> r(new PackReaderFile());
  r->path_ = path;
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0 || DisableFileLocking(fapl.get()) < 0)
    return H5Fail(Status::Hdf5, path, "cannot set file access properties");
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (f < 0) {
    // The file existed a moment ago; if it is gone now a concurrent repack removed it.
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
      H5Eclear2(H5E_DEFAULT);
      return Err::Make(Status::NotFound, "pack " + path + " does not exist");
    }
    return H5Fail(Status::Corrupt, path, "not a readable HDF5 file (truncated or damaged)");
  }
  r->file_ = f;
  bool has = false;
  CORAL_TRY(ReadStringAttr(f, "format", &r->meta_.format, &has, path));
  if (!has) return Err::Make(Status::Corrupt, "pack " + path + ": not a coral pack (no format attribute)");
  if (r->meta_.format != kPackFormat) {
    if (r->meta_.format.rfind("coral-pack-", 0) == 0)
      return Err::Make(Status::Unsupported, "pack " + path + ": format " + r->meta_.format + " is newer than this build");
    return Err::Make(Status::Corrupt, "pack " + path + ": not a coral pack (format \"" + r->meta_.format + "\")");
  }
  CORAL_TRY(ReadStringAttr(f, "created", &r->meta_.created, &has, path));
  if (H5Aexists(f, "createdUnixMs") > 0) {
    std::vector<int64_t> v;
    CORAL_TRY(ReadIntAttr(f, "createdUnixMs", true, &v, true, path));
    r->meta_.created_unix_ms = v[0];
  }
  htri_t g = H5Lexists(f, "objects", H5P_DEFAULT);
  if (g <= 0) return H5Fail(Status::Corrupt, path, "no /objects group");
  *out = std::move(r);
  return Err::Ok();
}

PackReaderFile::~PackReaderFile() { Close(); }

void PackReaderFile::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (file_ >= 0) H5Fclose(file_);
  file_ = -1;
  H5Eclear2(H5E_DEFAULT);
}

Err PackReaderFile::StatLocked(const std::string& id, PackObject* out) {
  if (file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + " is closed");
  const std::string where = Where(path_, id);
  if (!ValidPackId(id)) return Err::Make(Status::NotFound, "pack " + where + " not found (invalid id)");
  Hid grp(H5Gopen2(file_, "objects", H5P_DEFAULT), H5Gclose);
  if (!grp.ok()) return H5Fail(Status::Corrupt, path_, "cannot open /objects");
  htri_t ex = H5Lexists(grp.get(), id.c_str(), H5P_DEFAULT);
  if (ex < 0) return H5Fail(Status::Corrupt, where, "cannot look up dataset");
  if (ex == 0) return Err::Make(Status::NotFound, "pack " + where + " not found");
  Hid ds(H5Dopen2(grp.get(), id.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) return H5Fail(Status::Corrupt, where, "cannot open dataset");
  Hid type(H5Dget_type(ds.get()), H5Tclose);
  Hid space(H5Dget_space(ds.get()), H5Sclose);
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1 ||
      H5Sget_simple_extent_ndims(space.get()) != 1)
    return Err::Make(Status::Corrupt, "pack " + where + " is not a 1-D byte dataset");
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  PackObject o;
  o.size = dims[0];
  haddr_t off = H5Dget_offset(ds.get());
  o.offset = off == HADDR_UNDEF ? kPackNoOffset : static_cast<uint64_t>(off);
  H5Eclear2(H5E_DEFAULT);  // H5Dget_offset on unallocated storage pushes an error
  if (o.size > 0) {
    // Raw data must lie inside the file: a damaged size must not turn into a huge allocation.
    hsize_t fsize = 0;
    if (H5Fget_filesize(file_, &fsize) < 0 || o.offset == kPackNoOffset || o.offset > fsize ||
        o.size > fsize - o.offset)
      return Err::Make(Status::Corrupt, "pack " + where + ": data extends past the end of the file");
  }
  hid_t d = ds.get();
  CORAL_TRY(ReadStringAttr(d, "id", &o.id, nullptr, where));
  if (o.id != id) return Err::Make(Status::Corrupt, "pack " + where + ": id attribute says \"" + o.id + "\"");
  CORAL_TRY(ReadStringAttr(d, "codec", &o.codec, nullptr, where));
  CORAL_TRY(ReadStringAttr(d, "dtype", &o.dtype, nullptr, where));
  CORAL_TRY(ReadIntAttr(d, "shape", true, &o.shape, false, where));
  CORAL_TRY(ReadStringAttr(d, "base", &o.base, nullptr, where));
  std::vector<int64_t> raw;
  CORAL_TRY(ReadIntAttr(d, "rawSize", false, &raw, true, where));
  o.raw_size = static_cast<uint64_t>(raw[0]);
  CORAL_TRY(ReadStringAttr(d, "checksum", &o.checksum, nullptr, where));
  ExtraCtx ctx{&o.extra, where, Err::Ok()};
  hsize_t idx = 0;
  if (H5Aiterate2(d, H5_INDEX_NAME, H5_ITER_INC, &idx, ExtraCb, &ctx) < 0) {
    if (!ctx.err.ok()) return ctx.err;
    return H5Fail(Status::Corrupt, where, "cannot list attributes");
  }
  *out = std::move(o);
  return Err::Ok();
}

Err PackReaderFile::Stat(const std::string& id, PackObject* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  return StatLocked(id, out);
}

Err PackReaderFile::List(std::vector<PackObject>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + " is closed");
  std::vector<std::string> names;
  {
    Hid grp(H5Gopen2(file_, "objects", H5P_DEFAULT), H5Gclose);
    if (!grp.ok()) return H5Fail(Status::Corrupt, path_, "cannot open /objects");
    hsize_t idx = 0;
    if (H5Literate(grp.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, NameCb, &names) < 0)
      return H5Fail(Status::Corrupt, path_, "cannot list /objects");
  }
  if (H5Aexists(file_, "objectCount") > 0) {
    std::vector<int64_t> v;
    CORAL_TRY(ReadIntAttr(file_, "objectCount", false, &v, true, path_));
    if (static_cast<uint64_t>(v[0]) != names.size())
      return Err::Make(Status::Corrupt, "pack " + path_ + ": holds " + std::to_string(names.size()) +
                                            " objects but records " + std::to_string(v[0]));
  }
  out->clear();
  out->reserve(names.size());
  for (auto& n : names) {
    PackObject o;
    CORAL_TRY(StatLocked(n, &o));
    out->push_back(std::move(o));
  }
  return Err::Ok();
}

// The read path touches only what verification needs: the dataset's extent,
// its data location and the checksum attribute (Stat reads every attribute).
Err PackReaderFile::OpenForRead(const std::string& id, int64_t* ds_out, PackObject* o) {
  if (file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + " is closed");
  const std::string where = Where(path_, id);
  if (!ValidPackId(id)) return Err::Make(Status::NotFound, "pack " + where + " not found (invalid id)");
  hid_t ds = H5Dopen2(file_, ("objects/" + id).c_str(), H5P_DEFAULT);
  if (ds < 0) {
    Err e = H5Fail(Status::Corrupt, where, "cannot open dataset");
    htri_t ex = H5Lexists(file_, "objects", H5P_DEFAULT) > 0
                    ? H5Lexists(file_, ("objects/" + id).c_str(), H5P_DEFAULT) : -1;
    H5Eclear2(H5E_DEFAULT);
    if (ex == 0) return Err::Make(Status::NotFound, "pack " + where + " not found");
    return e;
  }
  Hid dsh(ds, H5Dclose);
  Hid type(H5Dget_type(ds), H5Tclose);
  Hid space(H5Dget_space(ds), H5Sclose);
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1 ||
      H5Sget_simple_extent_ndims(space.get()) != 1)
    return Err::Make(Status::Corrupt, "pack " + where + " is not a 1-D byte dataset");
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  o->size = dims[0];
  haddr_t off = H5Dget_offset(ds);
  o->offset = off == HADDR_UNDEF ? kPackNoOffset : static_cast<uint64_t>(off);
  H5Eclear2(H5E_DEFAULT);
  if (o->size > 0) {
    hsize_t fsize = 0;
    if (H5Fget_filesize(file_, &fsize) < 0 || o->offset == kPackNoOffset || o->offset > fsize ||
        o->size > fsize - o->offset)
      return Err::Make(Status::Corrupt, "pack " + where + ": data extends past the end of the file");
  }
  CORAL_TRY(ReadStringAttr(ds, "checksum", &o->checksum, nullptr, where));
  o->id = id;
  *ds_out = dsh.Release();  // ownership moves to the caller
  return Err::Ok();
}

Err PackReaderFile::ReadLocked(const std::string& id, int64_t ds, const PackObject& obj, uint8_t* dst) {
  Hid dsh(ds, H5Dclose);
  if (obj.size > 0 && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
    return H5Fail(Status::Corrupt, Where(path_, id), "cannot read data");
  std::string got = Xxh3_128(dst, obj.size).Hex();
  if (got != obj.checksum)
    return Err::Make(Status::ChecksumMismatch, "object " + id + " in pack " + path_ + " is corrupted: stored bytes hash to " +
                                                   got + " but the recorded checksum is " + obj.checksum);
  return Err::Ok();
}

Err PackReaderFile::ReadInto(const std::string& id, uint8_t* dst, size_t cap, uint64_t* got) {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  PackObject o;
  int64_t ds = -1;
  CORAL_TRY(OpenForRead(id, &ds, &o));
  if (cap < o.size) {
    H5Dclose(ds);
    return Err::Make(Status::InvalidArgument, "pack " + Where(path_, id) + " needs " + std::to_string(o.size) +
                                                  " bytes but the buffer holds " + std::to_string(cap));
  }
  CORAL_TRY(ReadLocked(id, ds, o, dst));
  *got = o.size;
  return Err::Ok();
}

Err PackReaderFile::Read(const std::string& id, std::unique_ptr<uint8_t[]>* out, uint64_t* size) {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  PackObject o;
  int64_t ds = -1;
  CORAL_TRY(OpenForRead(id, &ds, &o));
  std::unique_ptr<uint8_t[]> buf(new (std::nothrow) uint8_t[o.size > 0 ? o.size : 1]);
  if (!buf) {
    H5Dclose(ds);
    return Err::Make(Status::OutOfMemory, "pack " + Where(path_, id) + ": cannot allocate " + std::to_string(o.size) + " bytes");
  }
  CORAL_TRY(ReadLocked(id, ds, o, buf.get()));
  *out = std::move(buf);
  *size = o.size;
  return Err::Ok();
}

}  // namespace coral
