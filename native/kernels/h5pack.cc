#include "kernels/h5pack.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
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

// ---- small-object table helpers -----------------------------------------------------------

constexpr size_t kMaxTableField = 1 << 20;        // widest string field of /small/index we read
constexpr uint64_t kMaxTableBytes = 1ull << 30;   // largest decoded table we allocate
constexpr uint64_t kMaxTableRows = 1ull << 24;

// Strings written into the table or as attributes: no NUL, bounded.
Err CheckValue(const char* name, const std::string& v, const std::string& where) {
  if (v.find('\0') != std::string::npos)
    return Err::Make(Status::InvalidArgument, "pack " + where + ": attribute " + name + " contains a NUL character");
  if (v.size() > kMaxWriteString)
    return Err::Make(Status::InvalidArgument, "pack " + where + ": attribute " + name + " is longer than 16 KiB");
  return Err::Ok();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s.push_back(',');
    s += std::to_string(shape[i]);
  }
  return s;
}

bool ParseShape(const std::string& s, std::vector<int64_t>* out) {
  out->clear();
  if (s.empty()) return true;  // 0-d
  size_t i = 0;
  while (true) {
    if (out->size() >= kMaxShapeRank) return false;
    uint64_t v = 0;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + static_cast<uint64_t>(s[i] - '0');
      if (v > static_cast<uint64_t>(INT64_MAX)) return false;
      ++i;
    }
    if (i == start || i - start > 19) return false;
    out->push_back(static_cast<int64_t>(v));
    if (i == s.size()) return true;
    if (s[i] != ',') return false;
    ++i;
  }
}

// Extra attributes as application/x-www-form-urlencoded ("name=value&name=value", names
// sorted; Python: urllib.parse.parse_qsl(s, keep_blank_values=True)). Bytes outside
// [A-Za-z0-9._~:,/-] are %XX-escaped (so '+', '&', '=', ';' and non-ASCII never appear raw).
bool UrlSafe(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
         c == '~' || c == '-' || c == ':' || c == ',' || c == '/';
}

std::string EncodeExtra(std::vector<std::pair<std::string, std::string>> extra) {
  std::sort(extra.begin(), extra.end());
  static const char* hex = "0123456789ABCDEF";
  std::string s;
  for (size_t i = 0; i < extra.size(); ++i) {
    if (i) s.push_back('&');
    s += extra[i].first;  // names are [A-Za-z0-9_.-]: no escaping needed
    s.push_back('=');
    for (unsigned char c : extra[i].second) {
      if (UrlSafe(c)) {
        s.push_back(static_cast<char>(c));
      } else {
        s.push_back('%');
        s.push_back(hex[c >> 4]);
        s.push_back(hex[c & 15]);
      }
    }
  }
  return s;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool DecodeExtra(const std::string& s, std::vector<std::pair<std::string, std::string>>* out) {
  out->clear();
  if (s.empty()) return true;
  size_t i = 0;
  while (i <= s.size()) {
    size_t amp = s.find('&', i);
    if (amp == std::string::npos) amp = s.size();
    size_t eq = s.find('=', i);
    if (eq == std::string::npos || eq > amp) return false;
    std::string name = s.substr(i, eq - i);
    if (!ValidExtraAttrName(name)) return false;
    std::string value;
    for (size_t j = eq + 1; j < amp; ++j) {
      char c = s[j];
      if (c == '%') {
        if (j + 2 >= amp) return false;
        int hi = HexVal(s[j + 1]), lo = HexVal(s[j + 2]);
        if (hi < 0 || lo < 0) return false;
        value.push_back(static_cast<char>(hi * 16 + lo));
        j += 2;
      } else if (c == '+') {
        value.push_back(' ');
      } else {
        value.push_back(c);
      }
    }
    if (value.find('\0') != std::string::npos) return false;
    for (auto& kv : *out)
      if (kv.first == name) return false;  // duplicate name
    out->emplace_back(std::move(name), std::move(value));
    if (amp == s.size()) break;
    i = amp + 1;
  }
  std::sort(out->begin(), out->end());
  return true;
}

// Tables up to this many bytes are stored compact (inside the object header); above it the
// ~2 KiB v1 B-tree of a chunked dataset is repaid by shuffle+deflate (measured break-even).
constexpr uint64_t kCompactTableMax = 4 << 10;

// Datasets that never get attributes: ask for a minimal object header (libhdf5 >= 1.10.5).
herr_t MinimizeHeader(hid_t dcpl) {
#if H5_VERSION_GE(1, 10, 5)
  return H5Pset_dset_no_attrs_hint(dcpl, true);
#else
  (void)dcpl;
  return 0;
#endif
}

void PutLe(uint8_t* p, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

Hid FixedString(size_t n, H5T_str_t pad = H5T_STR_NULLPAD) {
  Hid t(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!t.ok() || H5Tset_size(t.get(), n) < 0 || H5Tset_strpad(t.get(), pad) < 0 ||
      H5Tset_cset(t.get(), H5T_CSET_UTF8) < 0)
    return Hid();
  return t;
}

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

Err PackWriterFile::Create(const std::string& path, uint64_t small_max, std::unique_ptr<PackWriterFile>* out) {
  Quiet();
  std::unique_ptr<PackWriterFile> w(new PackWriterFile());
  w->path_ = path;
  w->small_max_ = std::min(small_max, kPackSmallPart);
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // Metadata and small raw data are allocated exactly rather than from 2 KiB aggregation
  // blocks, whose unused tails would otherwise stay in the file as holes.
  if (!fapl.ok() || H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0 ||
      H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0 || DisableFileLocking(fapl.get()) < 0 ||
      H5Pset_meta_block_size(fapl.get(), 0) < 0 || H5Pset_small_data_block_size(fapl.get(), 0) < 0)
    return H5Fail(Status::Hdf5, path, "cannot set file access properties");
  // Groups without timestamps (reproducible bytes, smaller headers); the root group's header
  // is sized for its two links ("objects", "small").
  Hid fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  if (!fcpl.ok() || H5Pset_obj_track_times(fcpl.get(), false) < 0 || H5Pset_est_link_info(fcpl.get(), 2, 7) < 0)
    return H5Fail(Status::Hdf5, path, "cannot set file creation properties");
  // Large objects start on a block boundary so their bytes can be written with O_DIRECT.
  if (H5Pset_alignment(fapl.get(), kPackDirectMin, kDirectAlign) < 0)
    return H5Fail(Status::Hdf5, path, "cannot set file alignment");
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_EXCL, fcpl.get(), fapl.get());
  if (f < 0) return H5Fail(Status::Hdf5, path, "cannot create file");
  w->file_ = f;
  if (DirectIoAllowed()) {
    w->direct_fd_ = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (w->direct_fd_ >= 0) {
      w->buffered_fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (w->buffered_fd_ < 0) w->CloseFds();
    }
  }
  int64_t ms = 0;
  std::string created = IsoNow(&ms);
  CORAL_TRY(WriteStringAttr(f, "format", kPackFormat, path));
  CORAL_TRY(WriteStringAttr(f, "created", created, path));
  CORAL_TRY(WriteScalarAttr(f, "createdUnixMs", H5T_STD_I64LE, H5T_NATIVE_INT64, &ms, path));
  Hid gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  if (!gcpl.ok() || H5Pset_obj_track_times(gcpl.get(), false) < 0 || H5Pset_est_link_info(gcpl.get(), 1, 32) < 0)
    return H5Fail(Status::Hdf5, path, "cannot set group creation properties");
  hid_t g = H5Gcreate2(f, "objects", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT);
  if (g < 0) return H5Fail(Status::Hdf5, path, "cannot create /objects");
  w->group_ = g;
  *out = std::move(w);
  return Err::Ok();
}

PackWriterFile::~PackWriterFile() { Abort(); }

void PackWriterFile::CloseFds() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  if (buffered_fd_ >= 0) ::close(buffered_fd_);
  direct_fd_ = buffered_fd_ = -1;
  bounce_.reset();
}

Err PackWriterFile::WriteDirectLocked(uint64_t off, const uint8_t* data, size_t len, const std::string& where) {
  size_t tail = 0;
  CORAL_TRY(DirectWrite(direct_fd_, data, len, off, &bounce_, &tail, "pack " + where));
  for (size_t done = tail; done < len;) {
    ssize_t n = ::pwrite(buffered_fd_, data + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Err::Make(Status::Io, "pack " + where + ": cannot write data: " + std::strerror(n < 0 ? errno : EIO));
    done += static_cast<size_t>(n);
  }
  return Err::Ok();
}

void PackWriterFile::Abort() {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  CloseFds();
  if (small_group_ >= 0) H5Gclose(small_group_);
  if (group_ >= 0) H5Gclose(group_);
  if (file_ >= 0) H5Fclose(file_);
  small_group_ = group_ = file_ = -1;
  done_ = true;
  part_.reset();
  H5Eclear2(H5E_DEFAULT);
}

Err PackWriterFile::Put(PackObject* obj, const uint8_t* data, size_t len, uint64_t* room) {
  if (!ValidPackId(obj->id))
    return Err::Make(Status::InvalidArgument, "pack " + path_ + ": invalid object id \"" + obj->id + "\"");
  if (obj->shape.size() > kMaxShapeRank)
    return Err::Make(Status::InvalidArgument, "pack " + path_ + ": shape has more than 64 dimensions");
  for (int64_t d : obj->shape)
    if (d < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + ": negative dimension in shape");
  const std::string where0 = Where(path_, obj->id);
  CORAL_TRY(CheckValue("codec", obj->codec, where0));
  CORAL_TRY(CheckValue("dtype", obj->dtype, where0));
  CORAL_TRY(CheckValue("base", obj->base, where0));
  for (auto& kv : obj->extra) {
    if (!ValidExtraAttrName(kv.first))
      return Err::Make(Status::InvalidArgument, "pack " + path_ + ": invalid extra attribute name \"" + kv.first + "\"");
    CORAL_TRY(CheckValue(kv.first.c_str(), kv.second, where0));
  }
  // Hash before taking any lock: this is the only CPU-heavy part of a put.
  obj->checksum = Xxh3_128(data, len).Hex();
  obj->size = len;
  obj->offset = kPackNoOffset;
  obj->small = false;
  obj->small_part = -1;
  obj->small_offset = 0;

  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (done_ || file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + ": writer already finished");
  const std::string& where = where0;
  if (ids_.count(obj->id)) return Err::Make(Status::InvalidArgument, "pack " + where + " is already in this pack");

  if (len < small_max_ && small_rows_ < kPackSmallRowsCap) {
    if (part_n_ + len > kPackSmallPart) CORAL_TRY(FlushPartLocked());
    if (!part_) {
      part_ = AllocAligned(kPackSmallPart);
      if (!part_) return Err::Make(Status::OutOfMemory, "pack " + where + ": cannot allocate the small-object buffer");
    }
    try {
      ids_.insert(obj->id);
      obj->small = true;
      obj->small_part = static_cast<int32_t>(part_offsets_.size());
      obj->small_offset = part_n_;
      objects_.push_back(*obj);
    } catch (const std::bad_alloc&) {
      ids_.erase(obj->id);
      return Err::Make(Status::OutOfMemory, "pack " + where + ": cannot record the object");
    }
    if (len > 0) std::memcpy(part_.get() + part_n_, data, len);
    part_n_ += len;
    part_rows_++;
    small_rows_++;
    count_++;
    if (room) *room = kPackSmallPart - part_n_;
    return Err::Ok();
  }

  int64_t dsid = -1;
  uint64_t off = kPackNoOffset;
  CORAL_TRY(WriteDatasetLocked(group_, obj->id.c_str(), data, len, false, where, &dsid, &off));
  Hid ds(dsid, H5Dclose);
  obj->offset = off;
  hid_t d = ds.get();
  CORAL_TRY(WriteStringAttr(d, "id", obj->id, where));
  CORAL_TRY(WriteStringAttr(d, "codec", obj->codec, where));
  CORAL_TRY(WriteStringAttr(d, "dtype", obj->dtype, where));
  CORAL_TRY(WriteI64ArrayAttr(d, "shape", obj->shape, where));
  CORAL_TRY(WriteStringAttr(d, "base", obj->base, where));
  CORAL_TRY(WriteScalarAttr(d, "rawSize", H5T_STD_U64LE, H5T_NATIVE_UINT64, &obj->raw_size, where));
  CORAL_TRY(WriteStringAttr(d, "checksum", obj->checksum, where));
  for (auto& kv : obj->extra) CORAL_TRY(WriteStringAttr(d, kv.first.c_str(), kv.second, where));
  ids_.insert(obj->id);
  objects_.push_back(*obj);
  count_++;
  if (room) *room = small_rows_ < kPackSmallRowsCap ? kPackSmallPart - part_n_ : 0;
  return Err::Ok();
}

Err PackWriterFile::WriteDatasetLocked(int64_t group, const char* name, const uint8_t* data, size_t len,
                                       bool minimal_header, const std::string& where, int64_t* ds_out, uint64_t* off_out) {
  // Direct: the space is allocated when the dataset is created, so its offset is known
  // and the bytes can be written there without going through libhdf5.
  const bool direct = direct_fd_ >= 0 && len >= kPackDirectMin;
  hsize_t dims[1] = {len};
  Hid space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!space.ok() || !dcpl.ok() || H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS) < 0 ||
      H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER) < 0 ||
      H5Pset_alloc_time(dcpl.get(), direct ? H5D_ALLOC_TIME_EARLY : H5D_ALLOC_TIME_LATE) < 0 ||
      H5Pset_obj_track_times(dcpl.get(), false) < 0 ||  // no timestamps: fewer header messages, reproducible bytes
      (minimal_header && MinimizeHeader(dcpl.get()) < 0))
    return H5Fail(Status::Hdf5, where, "cannot set dataset properties");
  Hid ds(H5Dcreate2(group, name, H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) {
    Err e = H5Fail(Status::Hdf5, where, "cannot create dataset");
    if (H5Lexists(group, name, H5P_DEFAULT) > 0)
      e = Err::Make(Status::InvalidArgument, "pack " + where + " is already in this pack");
    H5Eclear2(H5E_DEFAULT);
    return e;
  }
  *off_out = kPackNoOffset;
  if (len > 0) {
    haddr_t off = direct ? H5Dget_offset(ds.get()) : HADDR_UNDEF;
    if (direct && off != HADDR_UNDEF && off % kDirectAlign == 0) {
      CORAL_TRY(WriteDirectLocked(off, data, len, where));
    } else {
      if (H5Dwrite(ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        return H5Fail(Status::Hdf5, where, "cannot write data");
      off = H5Dget_offset(ds.get());
    }
    if (off != HADDR_UNDEF) *off_out = off;
  }
  *ds_out = ds.Release();
  return Err::Ok();
}

Err PackWriterFile::FlushPartLocked() {
  const std::string where = path_ + ": /small";
  if (small_group_ < 0) {
    Hid gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    if (!gcpl.ok() || H5Pset_obj_track_times(gcpl.get(), false) < 0 || H5Pset_est_link_info(gcpl.get(), 2, 6) < 0)
      return H5Fail(Status::Hdf5, where, "cannot set group creation properties");
    hid_t g = H5Gcreate2(file_, "small", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT);
    if (g < 0) return H5Fail(Status::Hdf5, where, "cannot create group");
    small_group_ = g;
  }
  const std::string name = "data" + std::to_string(part_offsets_.size());
  int64_t ds = -1;
  uint64_t off = kPackNoOffset;
  CORAL_TRY(WriteDatasetLocked(small_group_, name.c_str(), part_.get(), part_n_, true, where + "/" + name, &ds, &off));
  H5Dclose(ds);
  part_offsets_.push_back(off);
  part_n_ = part_rows_ = 0;
  return Err::Ok();
}

// /small/index: the small objects' rows, sorted by id (their bytes are in the parts already).
// String fields are as wide as the longest value in this pack; integer fields are uint32 when
// every value fits, else uint64. The table is chunked so that it can carry HDF5's fletcher32
// checksum filter (and deflate, when libhdf5 has it).
Err PackWriterFile::WriteSmallIndexLocked() {
  const std::string where = path_ + ": /small";
  const hid_t g = small_group_;
  std::vector<const PackObject*> rows;
  for (auto& o : objects_)
    if (o.small) rows.push_back(&o);
  std::sort(rows.begin(), rows.end(), [](const PackObject* a, const PackObject* b) { return a->id < b->id; });
  const size_t n = rows.size();
  std::vector<std::string> shapes(n), extras(n);
  // String widths include the terminating NUL (NUL-terminated, like the attributes).
  size_t w_id = 0, w_ck = 0, w_codec = 0, w_dtype = 0, w_shape = 0, w_base = 0, w_extra = 0;
  uint64_t max_off = 0, max_size = 0, max_raw = 0, max_part = 0;
  for (size_t i = 0; i < n; ++i) {
    const PackObject& o = *rows[i];
    shapes[i] = ShapeString(o.shape);
    extras[i] = EncodeExtra(o.extra);
    w_id = std::max(w_id, o.id.size());
    w_ck = std::max(w_ck, o.checksum.size());
    w_codec = std::max(w_codec, o.codec.size());
    w_dtype = std::max(w_dtype, o.dtype.size());
    w_shape = std::max(w_shape, shapes[i].size());
    w_base = std::max(w_base, o.base.size());
    w_extra = std::max(w_extra, extras[i].size());
    max_off = std::max(max_off, o.small_offset);
    max_size = std::max(max_size, o.size);
    max_raw = std::max(max_raw, o.raw_size);
    max_part = std::max<uint64_t>(max_part, static_cast<uint64_t>(o.small_part));
  }
  for (size_t* w : {&w_id, &w_ck, &w_codec, &w_dtype, &w_shape, &w_base, &w_extra}) *w += 1;
  auto width = [](uint64_t v) -> size_t { return v <= 0xffffffffull ? 4 : 8; };
  const size_t w_off = width(max_off), w_size = width(max_size), w_raw = width(max_raw), w_part = width(max_part);
  struct Field {
    const char* name;
    size_t width;
    bool str;
    size_t at = 0;
  };
  Field fields[] = {{"id", w_id, true},         {"part", w_part, false},  {"offset", w_off, false}, {"size", w_size, false},
                    {"checksum", w_ck, true},   {"codec", w_codec, true}, {"dtype", w_dtype, true},
                    {"shape", w_shape, true},   {"base", w_base, true},   {"rawSize", w_raw, false},
                    {"extra", w_extra, true}};
  size_t row = 0;
  for (auto& f : fields) f.at = row, row += f.width;
  Hid ct(H5Tcreate(H5T_COMPOUND, row), H5Tclose);
  if (!ct.ok()) return H5Fail(Status::Hdf5, where, "cannot make the table type");
  for (auto& f : fields) {
    Hid ft = f.str ? FixedString(f.width, H5T_STR_NULLTERM)
                   : Hid(H5Tcopy(f.width == 4 ? H5T_STD_U32LE : H5T_STD_U64LE), H5Tclose);
    if (!ft.ok() || H5Tinsert(ct.get(), f.name, f.at, ft.get()) < 0)
      return H5Fail(Status::Hdf5, where, std::string("cannot add table field ") + f.name);
  }
  std::vector<uint8_t> buf;
  try {
    buf.assign(n * row, 0);
  } catch (const std::bad_alloc&) {
    return Err::Make(Status::OutOfMemory, "pack " + where + ": cannot allocate the small-object table");
  }
  for (size_t i = 0; i < n; ++i) {
    const PackObject& o = *rows[i];
    uint8_t* r = buf.data() + i * row;
    const std::string* strs[] = {&o.id, nullptr, nullptr, nullptr, &o.checksum, &o.codec, &o.dtype, &shapes[i], &o.base, nullptr, &extras[i]};
    const uint64_t ints[] = {0, static_cast<uint64_t>(o.small_part), o.small_offset, o.size, 0, 0, 0, 0, 0, o.raw_size, 0};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; ++k) {
      if (fields[k].str) std::memcpy(r + fields[k].at, strs[k]->data(), strs[k]->size());
      else PutLe(r + fields[k].at, ints[k], fields[k].width);
    }
  }
  hsize_t dims[1] = {n};
  Hid space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!space.ok() || !dcpl.ok() || H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER) < 0 ||
      H5Pset_obj_track_times(dcpl.get(), false) < 0 || MinimizeHeader(dcpl.get()) < 0)
    return H5Fail(Status::Hdf5, where, "cannot set table properties");
  if (n * row <= kCompactTableMax) {
    // Compact: the rows live inside the dataset's object header, which the 1.8+ format checksums.
    if (H5Pset_layout(dcpl.get(), H5D_COMPACT) < 0) return H5Fail(Status::Hdf5, where, "cannot set compact layout");
  } else {
    // Chunked (chunks of at most ~4 MiB) so the rows can carry HDF5's fletcher32 checksum
    // filter, deflated when libhdf5 has zlib.
    hsize_t chunk[1] = {std::max<hsize_t>(1, std::min<hsize_t>(n, (4u << 20) / row))};
    if (H5Pset_chunk(dcpl.get(), 1, chunk) < 0) return H5Fail(Status::Hdf5, where, "cannot set chunking");
    if (H5Pset_shuffle(dcpl.get()) < 0) return H5Fail(Status::Hdf5, where, "cannot set shuffle");
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Pset_deflate(dcpl.get(), 9) < 0)
      return H5Fail(Status::Hdf5, where, "cannot set deflate");
    if (H5Pset_fletcher32(dcpl.get()) < 0) return H5Fail(Status::Hdf5, where, "cannot set fletcher32");
  }
  Hid ds(H5Dcreate2(g, "index", ct.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) return H5Fail(Status::Hdf5, where, "cannot create /small/index");
  if (H5Dwrite(ds.get(), ct.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
    return H5Fail(Status::Hdf5, where, "cannot write /small/index");
  return Err::Ok();
}

Err PackWriterFile::Finish(uint64_t* file_size, std::vector<PackObject>* entries) {
  std::lock_guard<std::mutex> lock(mu_);
  Quiet();
  if (done_ || file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + ": writer already finished");
  done_ = true;
  CloseFds();
  Err e = Err::Ok();
  if (part_rows_ > 0) e = FlushPartLocked();
  part_.reset();
  if (e.ok() && small_rows_ > 0) e = WriteSmallIndexLocked();
  if (small_group_ >= 0) H5Gclose(small_group_);
  small_group_ = -1;
  if (e.ok()) e = WriteScalarAttr(file_, "objectCount", H5T_STD_U64LE, H5T_NATIVE_UINT64, &count_, path_);
  H5Gclose(group_);
  group_ = -1;
  if (e.ok() && H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) e = H5Fail(Status::Hdf5, path_, "cannot flush");
  if (H5Fclose(file_) < 0 && e.ok()) e = H5Fail(Status::Hdf5, path_, "cannot close");
  file_ = -1;
  if (!e.ok()) return e;
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Err::Make(Status::Io, "pack " + path_ + ": cannot reopen for fsync: " + std::strerror(errno));
  struct stat st {};
  // fdatasync: the bytes and what reading them needs (size, block map) become durable; the
  // timestamps need not be (a pack's mtime only says when it was last used, see _freshen).
#if defined(__APPLE__)
  int rc = ::fsync(fd);
#else
  int rc = ::fdatasync(fd);
#endif
  int saved = errno;
  if (rc == 0) rc = ::fstat(fd, &st), saved = errno;
  ::close(fd);
  if (rc != 0) return Err::Make(Status::Io, "pack " + path_ + ": fsync failed: " + std::strerror(saved));
  *file_size = static_cast<uint64_t>(st.st_size);
  if (entries) {
    for (auto& o : objects_)
      if (o.small) {
        const uint64_t base = part_offsets_[static_cast<size_t>(o.small_part)];
        o.offset = (o.size > 0 && base != kPackNoOffset) ? base + o.small_offset : kPackNoOffset;
      }
    std::sort(objects_.begin(), objects_.end(), [](const PackObject& a, const PackObject& b) { return a.id < b.id; });
    for (auto& o : objects_) std::sort(o.extra.begin(), o.extra.end());
    *entries = std::move(objects_);
  }
  objects_.clear();
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
  // The plain descriptor (small objects, tails of direct reads) is opened with the file, like
  // libhdf5's: a reader keeps reading a pack a concurrent repack unlinks meanwhile.
  CORAL_TRY(r->PlainFdLocked());
  bool has = false;
  CORAL_TRY(ReadStringAttr(f, "format", &r->meta_.format, &has, path));
  if (!has) return Err::Make(Status::Corrupt, "pack " + path + ": not a coral pack (no format attribute)");
  if (r->meta_.format != kPackFormat && r->meta_.format != kPackFormatV2 && r->meta_.format != kPackFormatV1) {
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
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return readers_ == 0; });  // reads past the lock use the fds
  Quiet();
  if (file_ >= 0) H5Fclose(file_);
  file_ = -1;
  if (direct_fd_ >= 0) ::close(direct_fd_);
  if (buffered_fd_ >= 0) ::close(buffered_fd_);
  direct_fd_ = -2;
  buffered_fd_ = -1;
  H5Eclear2(H5E_DEFAULT);
}


// ---- small-object table (reader) ------------------------------------------------------------

namespace {

// Reads one member of a compound dataset, by name, as fixed-length strings.
Err ReadStringField(hid_t ds, hid_t ftype, const char* name, size_t n, bool required, std::vector<std::string>* out,
                    const std::string& where) {
  out->assign(n, std::string());
  int idx = H5Tget_member_index(ftype, name);
  if (idx < 0) {
    H5Eclear2(H5E_DEFAULT);
    if (!required) return Err::Ok();
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index has no field " + name);
  }
  Hid mt(H5Tget_member_type(ftype, static_cast<unsigned>(idx)), H5Tclose);
  if (!mt.ok() || H5Tget_class(mt.get()) != H5T_STRING || H5Tis_variable_str(mt.get()) != 0)
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index field " + name + " is not a fixed-length string");
  size_t w = H5Tget_size(mt.get());
  if (w == 0 || w > kMaxTableField || (n > 0 && w > kMaxTableBytes / n))
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index field " + name + " has a bad size");
  if (n == 0) return Err::Ok();
  Hid ms = FixedString(w);
  if (!ms.ok() || H5Tset_cset(ms.get(), H5Tget_cset(mt.get())) < 0)
    return H5Fail(Status::Hdf5, where, "cannot make string type");
  Hid comp(H5Tcreate(H5T_COMPOUND, w), H5Tclose);
  if (!comp.ok() || H5Tinsert(comp.get(), name, 0, ms.get()) < 0)
    return H5Fail(Status::Hdf5, where, "cannot make field type");
  std::unique_ptr<char[]> buf(new (std::nothrow) char[n * w]);
  if (!buf) return Err::Make(Status::OutOfMemory, "pack " + where + ": cannot allocate the small-object table");
  if (H5Dread(ds, comp.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.get()) < 0)
    return H5Fail(Status::Corrupt, where, std::string("cannot read /small/index field ") + name);
  for (size_t i = 0; i < n; ++i) {
    const char* p = buf.get() + i * w;
    (*out)[i].assign(p, strnlen(p, w));
  }
  return Err::Ok();
}

Err ReadIntField(hid_t ds, hid_t ftype, const char* name, size_t n, std::vector<uint64_t>* out, const std::string& where) {
  out->assign(n, 0);
  int idx = H5Tget_member_index(ftype, name);
  if (idx < 0) {
    H5Eclear2(H5E_DEFAULT);
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index has no field " + name);
  }
  Hid mt(H5Tget_member_type(ftype, static_cast<unsigned>(idx)), H5Tclose);
  if (!mt.ok() || H5Tget_class(mt.get()) != H5T_INTEGER)
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index field " + name + " is not an integer");
  if (n == 0) return Err::Ok();
  Hid comp(H5Tcreate(H5T_COMPOUND, sizeof(uint64_t)), H5Tclose);
  // Signed fields are read as int64 so that a negative value is seen (and rejected), not clipped.
  const bool sign = H5Tget_sign(mt.get()) == H5T_SGN_2;
  if (!comp.ok() || H5Tinsert(comp.get(), name, 0, sign ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64) < 0)
    return H5Fail(Status::Hdf5, where, "cannot make field type");
  if (H5Dread(ds, comp.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data()) < 0)
    return H5Fail(Status::Corrupt, where, std::string("cannot read /small/index field ") + name);
  if (sign)
    for (auto& v : *out)
      if (static_cast<int64_t>(v) < 0)
        return Err::Make(Status::Corrupt, "pack " + where + ": /small/index field " + name + " is negative");
  return Err::Ok();
}

}  // namespace

Err PackReaderFile::LoadSmallLocked() {
  if (small_loaded_) return Err::Ok();
  if (file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + " is closed");
  const std::string& where = path_;
  htri_t ex = H5Lexists(file_, "small", H5P_DEFAULT);
  if (ex < 0) return H5Fail(Status::Corrupt, where, "cannot look up /small");
  if (ex == 0) {
    small_loaded_ = true;
    return Err::Ok();
  }
  hsize_t fsize = 0;
  if (H5Fget_filesize(file_, &fsize) < 0) return H5Fail(Status::Corrupt, where, "cannot get the file size");

  // A data dataset: 1-D bytes, contiguous, inside the file. *size and *off (kPackNoOffset when empty).
  auto open_data = [&](const std::string& name, uint64_t* size, uint64_t* off) -> Err {
    Hid data(H5Dopen2(file_, ("small/" + name).c_str(), H5P_DEFAULT), H5Dclose);
    if (!data.ok()) return H5Fail(Status::Corrupt, where, "cannot open /small/" + name);
    Hid type(H5Dget_type(data.get()), H5Tclose);
    Hid space(H5Dget_space(data.get()), H5Sclose);
    if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1 ||
        H5Sget_simple_extent_ndims(space.get()) != 1)
      return Err::Make(Status::Corrupt, "pack " + where + ": /small/" + name + " is not a 1-D byte dataset");
    hsize_t dims[1] = {0};
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    *size = dims[0];
    haddr_t a = H5Dget_offset(data.get());
    H5Eclear2(H5E_DEFAULT);
    *off = a == HADDR_UNDEF ? kPackNoOffset : static_cast<uint64_t>(a);
    // Contiguous storage inside the file only: a damaged extent must not become a huge read.
    if (*size > 0 && (*off == kPackNoOffset || *off > fsize || *size > fsize - *off))
      return Err::Make(Status::Corrupt, "pack " + where + ": /small/" + name +
                                            " is not contiguous or extends past the end of the file");
    return Err::Ok();
  };

  // /small/index: compound rows.
  Hid ds(H5Dopen2(file_, "small/index", H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) return H5Fail(Status::Corrupt, where, "cannot open /small/index");
  Hid ftype(H5Dget_type(ds.get()), H5Tclose);
  Hid space(H5Dget_space(ds.get()), H5Sclose);
  if (!ftype.ok() || !space.ok() || H5Tget_class(ftype.get()) != H5T_COMPOUND ||
      H5Sget_simple_extent_ndims(space.get()) != 1)
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index is not a 1-D compound dataset");
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  const uint64_t n = dims[0];
  const size_t row = H5Tget_size(ftype.get());
  // Rows come from the file: bound them by what the file can hold (deflate expands at most ~1032x).
  if (n > kMaxTableRows || row == 0 || (n > 0 && row > kMaxTableBytes / n) || n * row > 1100 * fsize + 4096)
    return Err::Make(Status::Corrupt, "pack " + where + ": /small/index has an implausible size");
  {
    Hid dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
    int nf = dcpl.ok() ? H5Pget_nfilters(dcpl.get()) : -1;
    if (nf < 0) return H5Fail(Status::Corrupt, where, "cannot read /small/index filters");
    for (int i = 0; i < nf; ++i) {
      unsigned flags = 0, cd[8];
      size_t ncd = 8;
      H5Z_filter_t f = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &ncd, cd, 0, nullptr, nullptr);
      if (f != H5Z_FILTER_DEFLATE && f != H5Z_FILTER_SHUFFLE && f != H5Z_FILTER_FLETCHER32)
        return Err::Make(Status::Unsupported, "pack " + where + ": /small/index uses an unsupported filter");
    }
  }
  const hid_t d = ds.get(), t = ftype.get();
  std::vector<std::string> ids, cks, codecs, dtypes, shapes, bases, extras;
  std::vector<uint64_t> offs, sizes, raws, parts;
  const bool v3 = meta_.format == kPackFormat;
  CORAL_TRY(ReadStringField(d, t, "id", n, true, &ids, where));
  if (v3) CORAL_TRY(ReadIntField(d, t, "part", n, &parts, where));
  CORAL_TRY(ReadIntField(d, t, "offset", n, &offs, where));
  CORAL_TRY(ReadIntField(d, t, "size", n, &sizes, where));
  CORAL_TRY(ReadStringField(d, t, "checksum", n, true, &cks, where));
  CORAL_TRY(ReadStringField(d, t, "codec", n, true, &codecs, where));
  CORAL_TRY(ReadStringField(d, t, "dtype", n, true, &dtypes, where));
  CORAL_TRY(ReadStringField(d, t, "shape", n, true, &shapes, where));
  CORAL_TRY(ReadStringField(d, t, "base", n, true, &bases, where));
  CORAL_TRY(ReadIntField(d, t, "rawSize", n, &raws, where));
  CORAL_TRY(ReadStringField(d, t, "extra", n, false, &extras, where));

  // The data: pack-3 has parts data0 … data<max part>, pack-2 one /small/data.
  std::vector<std::pair<uint64_t, uint64_t>> data;  // (size, file offset) by part
  if (v3) {
    uint64_t max_part = 0;
    for (uint64_t v : parts) max_part = std::max(max_part, v);
    if (n > 0 && max_part >= n) return Err::Make(Status::Corrupt, "pack " + where + ": /small/index names a part past its rows");
    data.resize(n > 0 ? max_part + 1 : 0);
    for (size_t k = 0; k < data.size(); ++k)
      CORAL_TRY(open_data("data" + std::to_string(k), &data[k].first, &data[k].second));
  } else {
    data.resize(1);
    CORAL_TRY(open_data("data", &data[0].first, &data[0].second));
  }

  std::vector<PackObject> rows(n);
  std::unordered_map<std::string, size_t> index;
  index.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    PackObject& o = rows[i];
    o.id = std::move(ids[i]);
    const std::string w = "pack " + where + ": /small/index row " + std::to_string(i);
    if (!ValidPackId(o.id)) return Err::Make(Status::Corrupt, w + " has an invalid id");
    const size_t k = v3 ? static_cast<size_t>(parts[i]) : 0;
    const uint64_t data_size = data[k].first, data_off = data[k].second;
    const std::string dname = v3 ? "/small/data" + std::to_string(k) : "/small/data";
    if (offs[i] > data_size || sizes[i] > data_size - offs[i])
      return Err::Make(Status::Corrupt, w + " (object " + o.id + ") lies outside " + dname);
    if (!ParseShape(shapes[i], &o.shape)) return Err::Make(Status::Corrupt, w + " (object " + o.id + ") has a bad shape");
    if (!DecodeExtra(extras[i], &o.extra))
      return Err::Make(Status::Corrupt, w + " (object " + o.id + ") has bad extra attributes");
    o.small = true;
    o.small_part = v3 ? static_cast<int32_t>(k) : -1;
    o.small_offset = offs[i];
    o.size = sizes[i];
    o.offset = (o.size > 0 && data_off != kPackNoOffset) ? data_off + offs[i] : kPackNoOffset;
    o.checksum = std::move(cks[i]);
    o.codec = std::move(codecs[i]);
    o.dtype = std::move(dtypes[i]);
    o.base = std::move(bases[i]);
    o.raw_size = raws[i];
  }
  std::sort(rows.begin(), rows.end(), [](const PackObject& a, const PackObject& b) { return a.id < b.id; });
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && rows[i].id == rows[i - 1].id)
      return Err::Make(Status::Corrupt, "pack " + where + ": /small/index lists object " + rows[i].id + " twice");
    index.emplace(rows[i].id, i);
  }
  small_ = std::move(rows);
  small_index_ = std::move(index);
  small_loaded_ = true;
  return Err::Ok();
}

const PackObject* PackReaderFile::FindSmall(const std::string& id) const {
  auto it = small_index_.find(id);
  return it == small_index_.end() ? nullptr : &small_[it->second];
}

Err PackReaderFile::VerifyChecksum(const std::string& id, const uint8_t* data, const PackObject& o) {
  std::string got = Xxh3_128(data, o.size).Hex();
  if (got != o.checksum)
    return Err::Make(Status::ChecksumMismatch, "object " + id + " in pack " + path_ + " is corrupted: stored bytes hash to " +
                                                   got + " but the recorded checksum is " + o.checksum);
  return Err::Ok();
}

Err PackReaderFile::PlainFdLocked() {
  if (buffered_fd_ >= 0) return Err::Ok();
  buffered_fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (buffered_fd_ < 0) {
    int e = errno;
    if (e == ENOENT) return Err::Make(Status::NotFound, "pack " + path_ + " does not exist");
    return Err::Make(Status::Io, "pack " + path_ + ": cannot open: " + std::strerror(e));
  }
  return Err::Ok();
}

Err PackReaderFile::StatLocked(const std::string& id, PackObject* out) {
  if (file_ < 0) return Err::Make(Status::InvalidArgument, "pack " + path_ + " is closed");
  const std::string where = Where(path_, id);
  if (!ValidPackId(id)) return Err::Make(Status::NotFound, "pack " + where + " not found (invalid id)");
  CORAL_TRY(LoadSmallLocked());
  if (const PackObject* so = FindSmall(id)) {
    *out = *so;
    return Err::Ok();
  }
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
  CORAL_TRY(LoadSmallLocked());
  const uint64_t total = names.size() + small_.size();
  if (H5Aexists(file_, "objectCount") > 0) {
    std::vector<int64_t> v;
    CORAL_TRY(ReadIntAttr(file_, "objectCount", false, &v, true, path_));
    if (static_cast<uint64_t>(v[0]) != total)
      return Err::Make(Status::Corrupt, "pack " + path_ + ": holds " + std::to_string(total) +
                                            " objects but records " + std::to_string(v[0]));
  }
  out->clear();
  out->reserve(total);
  for (auto& n : names) {
    if (FindSmall(n))
      return Err::Make(Status::Corrupt, "pack " + path_ + ": object " + n + " is both a dataset and a small object");
    PackObject o;
    CORAL_TRY(StatLocked(n, &o));
    out->push_back(std::move(o));
  }
  out->insert(out->end(), small_.begin(), small_.end());
  std::sort(out->begin(), out->end(), [](const PackObject& a, const PackObject& b) { return a.id < b.id; });
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

// Reads one object into the memory `alloc` gives for its stored size. The pack's mutex is
// held for the HDF5 calls only: the checksum, and the O_DIRECT read of a large object, run
// without it, so a small read on another thread (the JS thread's sync reads) never waits
// behind a large one. Close waits for such reads (readers_) before it closes their fds.
Err PackReaderFile::ReadObject(const std::string& id, const Alloc& alloc, uint64_t* got) {
  std::unique_lock<std::mutex> lock(mu_);
  Quiet();
  PackObject o;
  uint8_t* dst = nullptr;
  int dfd = -1, bfd = -1;
  const PackObject* so = nullptr;
  if (file_ >= 0 && ValidPackId(id)) {
    CORAL_TRY(LoadSmallLocked());
    so = FindSmall(id);
  }
  if (so) {
    // A small object: its file offset was found when the table was loaded (and checked to lie
    // inside the file), so its bytes are one pread, made without the lock.
    o = *so;
    CORAL_TRY(alloc(o.size, &dst));
    if (o.size > 0) CORAL_TRY(PlainFdLocked());
    bfd = buffered_fd_;
  } else {
    int64_t ds = -1;
    CORAL_TRY(OpenForRead(id, &ds, &o));
    Hid dsh(ds, H5Dclose);
    CORAL_TRY(alloc(o.size, &dst));
    const bool direct = o.offset != kPackNoOffset && o.offset % kDirectAlign == 0 &&
                        reinterpret_cast<uintptr_t>(dst) % kDirectAlign == 0 && o.size >= kPackDirectMin;
    if (direct && direct_fd_ == -1) {
      direct_fd_ = DirectIoAllowed() ? ::open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC) : -1;
      if (direct_fd_ >= 0 && !PlainFdLocked().ok()) {
        ::close(direct_fd_);
        direct_fd_ = -1;
      }
      if (direct_fd_ < 0) direct_fd_ = -2;
    }
    if (direct && direct_fd_ >= 0) {
      dfd = direct_fd_;
      bfd = buffered_fd_;
    } else if (o.size > 0 && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
      return H5Fail(Status::Corrupt, Where(path_, id), "cannot read data");
    }
  }  // a dataset is closed here, under the lock
  *got = o.size;
  if (bfd < 0) {
    lock.unlock();
    return VerifyChecksum(id, dst, o);
  }
  ++readers_;
  lock.unlock();
  // Counted out however this read ends (an exception too), or Close would wait forever.
  struct Done {
    PackReaderFile* r;
    ~Done() {
      std::lock_guard<std::mutex> l(r->mu_);
      if (--r->readers_ == 0) r->idle_.notify_all();
    }
  } done{this};
  const std::string what = "pack " + Where(path_, id);
  // Extents were checked against the file when the dataset was opened (OpenForRead) or the
  // small table loaded (LoadSmallLocked).
  if (dfd >= 0) {
    CORAL_TRY(DirectRead(dfd, bfd, dst, o.size, o.offset, what));
  } else {
    for (uint64_t at = 0; at < o.size;) {
      ssize_t n = ::pread(bfd, dst + at, o.size - at, static_cast<off_t>(o.offset + at));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Err::Make(Status::Io, what + ": cannot read: " + std::strerror(errno));
      if (n == 0) return Err::Make(Status::Corrupt, what + ": the file ends inside the object");
      at += static_cast<uint64_t>(n);
    }
  }
  return VerifyChecksum(id, dst, o);
}

Err PackReaderFile::ReadInto(const std::string& id, uint8_t* dst, size_t cap, uint64_t* got) {
  return ReadObject(
      id,
      [&](uint64_t size, uint8_t** out) {
        if (cap < size)
          return Err::Make(Status::InvalidArgument, "pack " + Where(path_, id) + " needs " + std::to_string(size) +
                                                        " bytes but the buffer holds " + std::to_string(cap));
        *out = dst;
        return Err::Ok();
      },
      got);
}

Err PackReaderFile::Read(const std::string& id, BigBuffer* out, uint64_t* size) {
  // Pooled memory (util/big_buffer.h): large reads reuse recycled mappings instead of
  // faulting in and zeroing fresh pages, and JS can give them back early (recycleBuffer).
  BigBuffer buf;
  CORAL_TRY(ReadObject(
      id,
      [&](uint64_t n, uint8_t** p) {
        buf = BigBuffer::Take(n);
        if (n > 0 && !buf.data())
          return Err::Make(Status::OutOfMemory, "pack " + Where(path_, id) + ": cannot allocate " + std::to_string(n) + " bytes");
        *p = buf.data();
        return Err::Ok();
      },
      size));
  *out = std::move(buf);
  return Err::Ok();
}

}  // namespace coral
