#include "kernels/simhash_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/dtype.h"
#include "kernels/hash.h"
#include "kernels/simhash.h"

namespace coral {
namespace {

constexpr char kMagic[8] = {'C', 'O', 'R', 'A', 'L', 'L', 'S', 'H'};
constexpr uint32_t kVersion = 1;
constexpr size_t kMaxIdBytes = 65535;
constexpr uint32_t kMaxDims = 64;
constexpr size_t kTailMax = 1024;  // unsorted band entries before a merge

inline uint64_t NumelHash(uint64_t numel) { return SimMix64(numel ^ 0x6e756d656c000000ull /* "numel" */); }

void PutU8(std::vector<uint8_t>& o, uint8_t v) { o.push_back(v); }
void PutU16(std::vector<uint8_t>& o, uint16_t v) { for (int i = 0; i < 2; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i))); }
void PutU32(std::vector<uint8_t>& o, uint32_t v) { for (int i = 0; i < 4; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i))); }
void PutU64(std::vector<uint8_t>& o, uint64_t v) { for (int i = 0; i < 8; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i))); }

struct Reader {
  const uint8_t* p;
  size_t n, off = 0;
  bool ok = true;
  bool Need(size_t k) {
    if (!ok || n - off < k) ok = false;
    return ok;
  }
  uint64_t Uint(int bytes) {
    if (!Need(static_cast<size_t>(bytes))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[off + i]) << (8 * i);
    off += static_cast<size_t>(bytes);
    return v;
  }
  const uint8_t* Bytes(size_t k) {
    if (!Need(k)) return nullptr;
    const uint8_t* q = p + off;
    off += k;
    return q;
  }
};

Err CheckMeta(const SimEntryMeta& m) {
  if (!ValidDType(m.dtype)) return Err::Make(Status::InvalidArgument, "unknown dtype code in entry meta");
  if (m.shape.size() > kMaxDims) return Err::Make(Status::InvalidArgument, "shape has more than 64 dimensions");
  unsigned __int128 n = 1;
  for (uint64_t d : m.shape) {
    n *= d;
    if (n > (static_cast<unsigned __int128>(1) << 62)) return Err::Make(Status::InvalidArgument, "shape describes more than 2^62 elements");
  }
  if (static_cast<uint64_t>(n) != m.numel)
    return Err::Make(Status::InvalidArgument, "numel " + std::to_string(m.numel) + " does not match the shape");
  return Err::Ok();
}

}  // namespace

SimIndex::SimIndex(uint32_t bits, uint32_t band_bits, std::string scheme)
    : bits_(bits), band_bits_(band_bits), bands_(bits / band_bits), words_(bits / 64), scheme_(std::move(scheme)) {
  band_main_.resize(bands_);
  band_tail_.resize(bands_);
  table_.assign(16, kNone);
}

Err SimIndex::Create(uint32_t bits, uint32_t band_bits, std::string scheme, std::unique_ptr<SimIndex>* out) {
  if (bits < kSimHashMinBits || bits > kSimHashMaxBits || bits % 64 != 0)
    return Err::Make(Status::InvalidArgument, "bits must be a multiple of 64 in [64, 1024], got " + std::to_string(bits));
  if (band_bits < 4 || band_bits > 32 || band_bits > bits)
    return Err::Make(Status::InvalidArgument, "bandBits must be in [4, 32], got " + std::to_string(band_bits));
  if (scheme.size() > 4096) return Err::Make(Status::InvalidArgument, "scheme string longer than 4096 bytes");
  out->reset(new SimIndex(bits, band_bits, std::move(scheme)));
  return Err::Ok();
}

// ---- id table ------------------------------------------------------------------------------

uint32_t SimIndex::Find(const std::string& id) const {
  const size_t mask = table_.size() - 1;
  size_t i = Xxh3_64(id.data(), id.size()) & mask;
  for (;;) {
    uint32_t s = table_[i];
    if (s == kNone) return kNone;
    if (s != kTomb && id_len_[s] == id.size() && std::memcmp(ids_.data() + id_off_[s], id.data(), id.size()) == 0) return s;
    i = (i + 1) & mask;
  }
}

void SimIndex::TableInsert(uint32_t slot) {
  if ((table_used_ + 1) * 10 > table_.size() * 7) {
    RebuildTable(live_ * 2);  // re-adds every live slot, this one included
    return;
  }
  const size_t mask = table_.size() - 1;
  size_t i = Xxh3_64(ids_.data() + id_off_[slot], id_len_[slot]) & mask;
  while (table_[i] != kNone && table_[i] != kTomb) i = (i + 1) & mask;
  if (table_[i] == kNone) ++table_used_;
  table_[i] = slot;
}

void SimIndex::TableErase(uint32_t slot) {
  const size_t mask = table_.size() - 1;
  size_t i = Xxh3_64(ids_.data() + id_off_[slot], id_len_[slot]) & mask;
  while (table_[i] != slot) i = (i + 1) & mask;  // present by precondition
  table_[i] = kTomb;
}

void SimIndex::RebuildTable(size_t min_capacity) {
  size_t cap = 16;
  while (cap < min_capacity * 10 / 7 + 1) cap <<= 1;
  table_.assign(cap, kNone);
  table_used_ = 0;
  const size_t mask = cap - 1;
  for (uint32_t s = 0; s < static_cast<uint32_t>(alive_.size()); ++s) {
    if (!alive_[s]) continue;
    size_t i = Xxh3_64(ids_.data() + id_off_[s], id_len_[s]) & mask;
    while (table_[i] != kNone) i = (i + 1) & mask;
    table_[i] = s;
    ++table_used_;
  }
}

// ---- bands ---------------------------------------------------------------------------------

uint32_t SimIndex::BandValue(const uint64_t* sig, uint32_t band) const {
  const uint32_t bit = band * band_bits_;
  const uint32_t w = bit / 64, off = bit % 64;
  uint64_t v = sig[w] >> off;
  if (off + band_bits_ > 64) v |= sig[w + 1] << (64 - off);
  return static_cast<uint32_t>(v & ((uint64_t(1) << band_bits_) - 1));
}

uint32_t SimIndex::BandKey(uint32_t value, uint64_t numel_hash) {
  return static_cast<uint32_t>(SimMix64(numel_hash ^ value) >> 32);
}

void SimIndex::AddToBands(uint32_t slot) {
  const uint64_t* sig = SignatureOf(slot);
  for (uint32_t b = 0; b < bands_; ++b) {
    uint64_t key = BandKey(BandValue(sig, b), NumelHash(numel_[slot]));
    band_tail_[b].push_back(key << 32 | slot);
    if (band_tail_[b].size() >= kTailMax) MergePending(b);
  }
}

void SimIndex::MergePending(uint32_t b) {
  auto& main = band_main_[b];
  auto& tail = band_tail_[b];
  std::sort(tail.begin(), tail.end());
  const size_t mid = main.size();
  main.insert(main.end(), tail.begin(), tail.end());
  std::inplace_merge(main.begin(), main.begin() + static_cast<std::ptrdiff_t>(mid), main.end());
  tail.clear();
}

void SimIndex::RebuildBands() {
  for (uint32_t b = 0; b < bands_; ++b) {
    auto& main = band_main_[b];
    main.clear();
    band_tail_[b].clear();
    main.reserve(live_);
    for (uint32_t s = 0; s < static_cast<uint32_t>(alive_.size()); ++s)
      if (alive_[s]) main.push_back(uint64_t(BandKey(BandValue(SignatureOf(s), b), NumelHash(numel_[s]))) << 32 | s);
    std::sort(main.begin(), main.end());
    main.shrink_to_fit();
  }
}

void SimIndex::Compact() {
  std::vector<uint32_t> keep;
  keep.reserve(live_);
  for (uint32_t s = 0; s < static_cast<uint32_t>(alive_.size()); ++s)
    if (alive_[s]) keep.push_back(s);
  std::vector<uint64_t> sigs, numel, shapes;
  std::vector<float> rms;
  std::vector<uint8_t> dtype, nd;
  std::vector<uint32_t> soff, ioff;
  std::vector<uint16_t> ilen;
  std::string ids;
  sigs.reserve(keep.size() * words_);
  for (uint32_t s : keep) {
    sigs.insert(sigs.end(), SignatureOf(s), SignatureOf(s) + words_);
    numel.push_back(numel_[s]);
    rms.push_back(rms_[s]);
    dtype.push_back(dtype_[s]);
    soff.push_back(static_cast<uint32_t>(shapes.size()));
    nd.push_back(shape_nd_[s]);
    shapes.insert(shapes.end(), shapes_.begin() + shape_off_[s], shapes_.begin() + shape_off_[s] + shape_nd_[s]);
    ioff.push_back(static_cast<uint32_t>(ids.size()));
    ilen.push_back(id_len_[s]);
    ids.append(ids_, id_off_[s], id_len_[s]);
  }
  sigs_.swap(sigs);
  numel_.swap(numel);
  rms_.swap(rms);
  dtype_.swap(dtype);
  shape_off_.swap(soff);
  shape_nd_.swap(nd);
  shapes_.swap(shapes);
  id_off_.swap(ioff);
  id_len_.swap(ilen);
  ids_.swap(ids);
  alive_.assign(keep.size(), 1);
  dead_ = 0;
  RebuildTable(live_ * 2);
  RebuildBands();
}

// ---- mutation ------------------------------------------------------------------------------

Err SimIndex::Insert(const std::string& id, const uint8_t* signature, size_t sig_bytes, const SimEntryMeta& meta) {
  if (id.empty() || id.size() > kMaxIdBytes)
    return Err::Make(Status::InvalidArgument, "id must be 1..65535 bytes, got " + std::to_string(id.size()));
  if (sig_bytes != bits_ / 8)
    return Err::Make(Status::InvalidArgument, "signature has " + std::to_string(sig_bytes) + " bytes but the index uses " +
                                                  std::to_string(bits_) + "-bit signatures");
  CORAL_TRY(CheckMeta(meta));
  if (alive_.size() >= 0xfffffff0u) return Err::Make(Status::InvalidArgument, "index holds too many entries");
  if (ids_.size() + id.size() > 0xffffffffu || shapes_.size() + meta.shape.size() > 0xffffffffu)
    return Err::Make(Status::InvalidArgument, "index id storage exhausted");
  uint32_t old = Find(id);
  if (old != kNone) {
    // Same content again: nothing to do. Otherwise replace.
    SimEntryMeta m = MetaOf(old);
    if (std::memcmp(SignatureOf(old), signature, sig_bytes) == 0 && m.dtype == meta.dtype && m.shape == meta.shape &&
        m.rms == meta.rms)
      return Err::Ok();
    Remove(id);
  }
  const uint32_t slot = static_cast<uint32_t>(alive_.size());
  const size_t w0 = sigs_.size();
  sigs_.resize(w0 + words_);
  std::memcpy(&sigs_[w0], signature, sig_bytes);
  numel_.push_back(meta.numel);
  rms_.push_back(meta.rms);
  dtype_.push_back(meta.dtype);
  alive_.push_back(1);
  shape_off_.push_back(static_cast<uint32_t>(shapes_.size()));
  shape_nd_.push_back(static_cast<uint8_t>(meta.shape.size()));
  shapes_.insert(shapes_.end(), meta.shape.begin(), meta.shape.end());
  id_off_.push_back(static_cast<uint32_t>(ids_.size()));
  id_len_.push_back(static_cast<uint16_t>(id.size()));
  ids_.append(id);
  ++live_;
  TableInsert(slot);
  AddToBands(slot);
  return Err::Ok();
}

bool SimIndex::Remove(const std::string& id) {
  uint32_t s = Find(id);
  if (s == kNone) return false;
  TableErase(s);
  alive_[s] = 0;
  --live_;
  ++dead_;
  if (dead_ >= 1024 && dead_ > live_ / 4) Compact();
  return true;
}

SimEntryMeta SimIndex::MetaOf(uint32_t s) const {
  SimEntryMeta m;
  m.dtype = dtype_[s];
  m.shape.assign(shapes_.begin() + shape_off_[s], shapes_.begin() + shape_off_[s] + shape_nd_[s]);
  m.numel = numel_[s];
  m.rms = rms_[s];
  return m;
}

bool SimIndex::Get(const std::string& id, std::vector<uint8_t>* signature, SimEntryMeta* meta) const {
  uint32_t s = Find(id);
  if (s == kNone) return false;
  signature->resize(bits_ / 8);
  std::memcpy(signature->data(), SignatureOf(s), bits_ / 8);
  *meta = MetaOf(s);
  return true;
}

// ---- query ---------------------------------------------------------------------------------

Err SimIndex::Query(const uint8_t* signature, size_t sig_bytes, const SimQuery& q, std::vector<SimHit>* out) const {
  if (sig_bytes != bits_ / 8)
    return Err::Make(Status::InvalidArgument, "signature has " + std::to_string(sig_bytes) + " bytes but the index uses " +
                                                  std::to_string(bits_) + "-bit signatures");
  if (q.probes > 1) return Err::Make(Status::InvalidArgument, "probes must be 0 or 1");
  std::vector<uint64_t> sig(words_);
  std::memcpy(sig.data(), signature, sig_bytes);
  out->clear();

  std::vector<uint32_t> cand;
  if (q.exhaustive) {
    for (uint32_t s = 0; s < static_cast<uint32_t>(alive_.size()); ++s)
      if (alive_[s] && numel_[s] == q.numel) cand.push_back(s);
  } else {
    const uint64_t nh = NumelHash(q.numel);
    auto probe = [&](uint32_t b, uint32_t value) {
      const uint64_t key = BandKey(value, nh);
      const auto& main = band_main_[b];
      auto it = std::lower_bound(main.begin(), main.end(), key << 32);
      for (; it != main.end() && (*it >> 32) == key; ++it) cand.push_back(static_cast<uint32_t>(*it));
      for (uint64_t e : band_tail_[b])
        if ((e >> 32) == key) cand.push_back(static_cast<uint32_t>(e));
    };
    for (uint32_t b = 0; b < bands_; ++b) {
      const uint32_t v = BandValue(sig.data(), b);
      probe(b, v);
      if (q.probes == 1)
        for (uint32_t t = 0; t < band_bits_; ++t) probe(b, v ^ (1u << t));
    }
    std::sort(cand.begin(), cand.end());
    cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  }

  for (uint32_t s : cand) {
    if (!alive_[s] || numel_[s] != q.numel) continue;
    if (q.dtype >= 0 && dtype_[s] != q.dtype) continue;
    if (q.match_shape) {
      if (shape_nd_[s] != q.shape.size() ||
          !std::equal(q.shape.begin(), q.shape.end(), shapes_.begin() + shape_off_[s]))
        continue;
    }
    const uint64_t* e = SignatureOf(s);
    uint32_t h = 0;
    for (uint32_t w = 0; w < words_; ++w) h += static_cast<uint32_t>(__builtin_popcountll(e[w] ^ sig[w]));
    if (h <= q.max_hamming) out->push_back({s, h});
  }
  // Rank by distance, ties by id so the order survives serialise / rebuild.
  auto less = [&](const SimHit& a, const SimHit& b) {
    if (a.hamming != b.hamming) return a.hamming < b.hamming;
    const size_t la = id_len_[a.slot], lb = id_len_[b.slot];
    int c = std::memcmp(ids_.data() + id_off_[a.slot], ids_.data() + id_off_[b.slot], std::min(la, lb));
    return c != 0 ? c < 0 : la < lb;
  };
  if (q.k > 0 && out->size() > q.k) {
    std::partial_sort(out->begin(), out->begin() + q.k, out->end(), less);
    out->resize(q.k);
  } else {
    std::sort(out->begin(), out->end(), less);
  }
  return Err::Ok();
}

// ---- persistence ---------------------------------------------------------------------------

void SimIndex::Serialize(std::vector<uint8_t>* out) const {
  auto& o = *out;
  o.clear();
  o.reserve(64 + scheme_.size() + live_ * (bits_ / 8 + 64));
  for (char c : kMagic) o.push_back(static_cast<uint8_t>(c));
  PutU32(o, kVersion);
  PutU32(o, bits_);
  PutU32(o, band_bits_);
  PutU32(o, static_cast<uint32_t>(scheme_.size()));
  o.insert(o.end(), scheme_.begin(), scheme_.end());
  PutU64(o, live_);
  for (uint32_t s = 0; s < static_cast<uint32_t>(alive_.size()); ++s) {
    if (!alive_[s]) continue;
    PutU16(o, id_len_[s]);
    o.insert(o.end(), ids_.begin() + id_off_[s], ids_.begin() + id_off_[s] + id_len_[s]);
    PutU8(o, dtype_[s]);
    PutU8(o, shape_nd_[s]);
    for (uint32_t d = 0; d < shape_nd_[s]; ++d) PutU64(o, shapes_[shape_off_[s] + d]);
    PutU64(o, numel_[s]);
    uint32_t rb;
    std::memcpy(&rb, &rms_[s], 4);
    PutU32(o, rb);
    for (uint32_t w = 0; w < words_; ++w) PutU64(o, SignatureOf(s)[w]);
  }
  PutU64(o, Xxh3_64(o.data(), o.size()));
}

Err SimIndex::Deserialize(const uint8_t* data, size_t size, std::unique_ptr<SimIndex>* out) {
  auto corrupt = [](const std::string& why) { return Err::Make(Status::Corrupt, "similarity index file is corrupt: " + why); };
  if (size < 8 + 16 + 8 + 8 || std::memcmp(data, kMagic, 8) != 0) return corrupt("bad magic or truncated header");
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= static_cast<uint64_t>(data[size - 8 + i]) << (8 * i);
  if (Xxh3_64(data, size - 8) != stored) return corrupt("checksum mismatch");
  Reader r{data, size - 8};
  r.off = 8;
  const uint32_t version = static_cast<uint32_t>(r.Uint(4));
  if (version != kVersion)
    return Err::Make(Status::Unsupported, "similarity index format version " + std::to_string(version) + " is not supported");
  const uint32_t bits = static_cast<uint32_t>(r.Uint(4));
  const uint32_t band_bits = static_cast<uint32_t>(r.Uint(4));
  const uint32_t scheme_len = static_cast<uint32_t>(r.Uint(4));
  const uint8_t* scheme = r.Bytes(scheme_len);
  if (!r.ok) return corrupt("truncated header");
  std::unique_ptr<SimIndex> idx;
  Err e = Create(bits, band_bits, std::string(reinterpret_cast<const char*>(scheme), scheme_len), &idx);
  if (!e.ok()) return corrupt(e.message);
  const uint64_t count = r.Uint(8);
  const size_t min_entry = 2 + 1 + 1 + 1 + 8 + 4 + bits / 8;
  if (!r.ok || count > (r.n - r.off) / min_entry) return corrupt("entry count exceeds file size");
  SimIndex& x = *idx;
  x.sigs_.reserve(count * x.words_);
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t id_len = static_cast<uint32_t>(r.Uint(2));
    const uint8_t* id = r.Bytes(id_len);
    SimEntryMeta m;
    m.dtype = static_cast<uint8_t>(r.Uint(1));
    const uint32_t nd = static_cast<uint32_t>(r.Uint(1));
    if (!r.ok) return corrupt("truncated entry");
    if (id_len == 0) return corrupt("empty id");
    if (nd > kMaxDims) return corrupt("too many dimensions");
    for (uint32_t d = 0; d < nd; ++d) m.shape.push_back(r.Uint(8));
    m.numel = r.Uint(8);
    uint32_t rb = static_cast<uint32_t>(r.Uint(4));
    std::memcpy(&m.rms, &rb, 4);
    const uint8_t* sig = r.Bytes(bits / 8);
    if (!r.ok) return corrupt("truncated entry");
    if (!CheckMeta(m).ok()) return corrupt("entry meta is inconsistent");
    std::string sid(reinterpret_cast<const char*>(id), id_len);
    if (x.Find(sid) != kNone) return corrupt("duplicate id");
    // Columns directly (bands are built once at the end).
    const uint32_t slot = static_cast<uint32_t>(x.alive_.size());
    const size_t w0 = x.sigs_.size();
    x.sigs_.resize(w0 + x.words_);
    std::memcpy(&x.sigs_[w0], sig, bits / 8);
    x.numel_.push_back(m.numel);
      x.rms_.push_back(m.rms);
    x.dtype_.push_back(m.dtype);
    x.alive_.push_back(1);
    x.shape_off_.push_back(static_cast<uint32_t>(x.shapes_.size()));
    x.shape_nd_.push_back(static_cast<uint8_t>(nd));
    x.shapes_.insert(x.shapes_.end(), m.shape.begin(), m.shape.end());
    x.id_off_.push_back(static_cast<uint32_t>(x.ids_.size()));
    x.id_len_.push_back(static_cast<uint16_t>(id_len));
    x.ids_.append(sid);
    ++x.live_;
    x.TableInsert(slot);
  }
  if (r.off != r.n) return corrupt("trailing bytes after the entries");
  x.RebuildBands();
  *out = std::move(idx);
  return Err::Ok();
}

size_t SimIndex::MemoryBytes() const {
  size_t b = sizeof(*this) + scheme_.capacity();
  b += sigs_.capacity() * 8 + numel_.capacity() * 8 + rms_.capacity() * 4;
  b += dtype_.capacity() + alive_.capacity() + shape_off_.capacity() * 4 + shape_nd_.capacity() + shapes_.capacity() * 8;
  b += id_off_.capacity() * 4 + id_len_.capacity() * 2 + ids_.capacity() + table_.capacity() * 4;
  for (uint32_t i = 0; i < bands_; ++i) b += (band_main_[i].capacity() + band_tail_[i].capacity()) * 8;
  return b;
}

}  // namespace coral
