// IDX reader (the MNIST family's format), plain or gzip-compressed.
//
// A gzip stream is inflated in two steps: first just the IDX header (4 + 4 * ndims bytes), which gives the exact
// size of the rest; that size is checked against the limit before anything is allocated, and then exactly that
// many bytes are inflated plus one probe byte to catch data past the end. Neither the gzip trailer's size field
// nor the compression ratio is trusted, so a small stream that would expand to gigabytes costs nothing.
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <limits>

#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

std::string to_string(IdxType type) {
  switch (type) {
    case IdxType::u8: return "ubyte";
    case IdxType::i8: return "byte";
    case IdxType::i16: return "short";
    case IdxType::i32: return "int";
    case IdxType::f32: return "float";
    case IdxType::f64: return "double";
  }
  return "unknown";
}

int idx_type_size(IdxType type) {
  switch (type) {
    case IdxType::u8:
    case IdxType::i8: return 1;
    case IdxType::i16: return 2;
    case IdxType::i32:
    case IdxType::f32: return 4;
    case IdxType::f64: return 8;
  }
  throw Error(cat("idx_type_size: unknown IDX type 0x", static_cast<int>(type)));
}

namespace {

constexpr std::size_t kMagicBytes = 4;  // 0x00 0x00 <type> <ndims>

bool is_gzip(std::string_view b) {
  return b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0x1f && static_cast<unsigned char>(b[1]) == 0x8b;
}

std::string hex_byte(unsigned char c) {
  static constexpr char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

// The first four bytes: zero, zero, a known type, at least one dimension.
struct Magic {
  IdxType type;
  int ndims;
};

Magic parse_magic(std::string_view b, const std::string& name) {
  if (b.size() < kMagicBytes)
    throw Error(cat(name, ": truncated IDX file (", b.size(), " bytes, shorter than the 4-byte magic number)"));
  const auto u = [&](std::size_t i) { return static_cast<unsigned char>(b[i]); };
  if (u(0) != 0 || u(1) != 0)
    throw Error(cat(name, ": not an IDX file (bad magic: first bytes ", hex_byte(u(0)), " ", hex_byte(u(1)),
                    ", expected 0x00 0x00)"));
  const unsigned char t = u(2);
  if (t != 0x08 && t != 0x09 && t != 0x0B && t != 0x0C && t != 0x0D && t != 0x0E)
    throw Error(cat(name, ": unknown IDX element type ", hex_byte(t),
                    " (known: 0x08 ubyte, 0x09 byte, 0x0b short, 0x0c int, 0x0d float, 0x0e double)"));
  if (u(3) == 0) throw Error(cat(name, ": IDX file with zero dimensions"));
  return {static_cast<IdxType>(t), u(3)};
}

struct Layout {
  IdxType type;
  Shape dims;
  int64_t elements = 0;
  std::size_t header_bytes = 0;  // magic + dimensions
  std::size_t total_bytes = 0;   // header + data
};

// The dimensions after the magic (b holds at least the header), checked against the limit.
Layout parse_layout(std::string_view b, const Magic& m, const std::string& name, const IdxLimits& limits) {
  Layout l;
  l.type = m.type;
  l.header_bytes = kMagicBytes + 4 * static_cast<std::size_t>(m.ndims);
  if (b.size() < l.header_bytes)
    throw Error(cat(name, ": truncated IDX file (", m.ndims, " dimensions need a ", l.header_bytes,
                    "-byte header, only ", b.size(), " bytes present)"));
  bool has_zero = false;
  for (int i = 0; i < m.ndims; ++i) {
    const std::size_t at = kMagicBytes + 4 * static_cast<std::size_t>(i);
    uint32_t d = 0;
    for (int k = 0; k < 4; ++k) d = (d << 8) | static_cast<unsigned char>(b[at + static_cast<std::size_t>(k)]);
    l.dims.push_back(d);
    has_zero = has_zero || d == 0;
  }
  l.elements = has_zero ? 0 : 1;
  for (int64_t d : l.dims) {
    if (has_zero) break;
    if (l.elements > limits.max_elements / d)
      throw Error(cat(name, ": IDX dimensions ", shape_to_string(l.dims), " hold more than the limit of ",
                      limits.max_elements, " elements"));
    l.elements *= d;
  }
  const auto type_size = static_cast<std::size_t>(idx_type_size(l.type));
  if (static_cast<uint64_t>(l.elements) > (std::numeric_limits<std::size_t>::max() - l.header_bytes) / type_size)
    throw Error(cat(name, ": IDX dimensions ", shape_to_string(l.dims), " are too large to address"));
  l.total_bytes = l.header_bytes + static_cast<std::size_t>(l.elements) * type_size;
  return l;
}

// Big-endian loads.
uint64_t load_be(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int k = 0; k < bytes; ++k) v = (v << 8) | p[k];
  return v;
}

// The complete, uncompressed file (b.size() == l.total_bytes) to floats.
IdxArray convert(std::string_view b, const Layout& l) {
  IdxArray out{Tensor(l.dims), l.type};
  const auto* src = reinterpret_cast<const unsigned char*>(b.data()) + l.header_bytes;
  float* dst = out.values.data();
  const int64_t n = l.elements;
  switch (l.type) {
    case IdxType::u8:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
      break;
    case IdxType::i8:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<int8_t>(src[i]));
      break;
    case IdxType::i16:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<int16_t>(load_be(src + 2 * i, 2)));
      break;
    case IdxType::i32:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<int32_t>(load_be(src + 4 * i, 4)));
      break;
    case IdxType::f32:
      for (int64_t i = 0; i < n; ++i)
        dst[i] = std::bit_cast<float>(static_cast<uint32_t>(load_be(src + 4 * i, 4)));
      break;
    case IdxType::f64:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(std::bit_cast<double>(load_be(src + 8 * i, 8)));
      break;
  }
  return out;
}

IdxArray parse_plain(std::string_view b, const std::string& name, const IdxLimits& limits) {
  const Magic m = parse_magic(b, name);
  const Layout l = parse_layout(b, m, name, limits);
  if (b.size() < l.total_bytes)
    throw Error(cat(name, ": truncated IDX file (", shape_to_string(l.dims), " of ", to_string(l.type), " needs ",
                    l.total_bytes, " bytes, only ", b.size(), " present)"));
  if (b.size() > l.total_bytes)
    throw Error(cat(name, ": corrupt IDX file (", b.size() - l.total_bytes, " bytes after the data of ",
                    shape_to_string(l.dims), ")"));
  return convert(b, l);
}

// Inflates a gzip stream (several concatenated members allowed, as gzip itself allows) on demand.
class GzipStream {
 public:
  GzipStream(std::string_view in, const std::string& name) : in_(in), name_(name) {
    // 16 + MAX_WBITS: gzip wrapper only; the caller has already seen the gzip magic.
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) throw Error(cat(name_, ": cannot initialise zlib"));
  }
  ~GzipStream() { inflateEnd(&zs_); }
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  // Fills dst[0, n) and returns n, or fewer bytes when the (last) stream ends first.
  std::size_t read(char* dst, std::size_t n) {
    std::size_t produced = 0;
    while (produced < n) {
      if (ended_) {
        if (consumed_ == in_.size()) break;
        // Another gzip member may follow; anything else after a member is corrupt.
        if (!is_gzip(in_.substr(consumed_)))
          throw Error(cat(name_, ": corrupt gzip file (", in_.size() - consumed_,
                          " bytes of garbage after the end of the compressed stream)"));
        inflateReset(&zs_);
        ended_ = false;
      }
      const std::size_t in_left = in_.size() - consumed_;
      const std::size_t out_left = n - produced;
      zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in_.data() + consumed_));
      zs_.avail_in = static_cast<uInt>(std::min<std::size_t>(in_left, UINT_MAX));
      zs_.next_out = reinterpret_cast<Bytef*>(dst + produced);
      zs_.avail_out = static_cast<uInt>(std::min<std::size_t>(out_left, UINT_MAX));
      const uInt avail_in_before = zs_.avail_in;
      const uInt avail_out_before = zs_.avail_out;
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      consumed_ += avail_in_before - zs_.avail_in;
      produced += avail_out_before - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        ended_ = true;
      } else if (rc == Z_BUF_ERROR) {
        // No progress possible although there is room for output: the input ran out inside the stream.
        throw Error(cat(name_, consumed_ == in_.size() ? ": truncated gzip file (the compressed stream ends early)"
                                                       : ": corrupt gzip file (zlib made no progress)"));
      } else if (rc != Z_OK) {
        throw Error(cat(name_, ": corrupt gzip file (zlib: ", zs_.msg ? zs_.msg : zError(rc), ")"));
      }
    }
    return produced;
  }

 private:
  std::string_view in_;
  const std::string& name_;
  z_stream zs_{};
  std::size_t consumed_ = 0;
  bool ended_ = false;
};

IdxArray parse_gzip(std::string_view gz, const std::string& name, const IdxLimits& limits) {
  GzipStream s(gz, name);
  std::string head(kMagicBytes, '\0');
  head.resize(s.read(head.data(), kMagicBytes));
  const Magic m = parse_magic(head, name);
  head.resize(kMagicBytes + 4 * static_cast<std::size_t>(m.ndims));
  head.resize(kMagicBytes + s.read(head.data() + kMagicBytes, head.size() - kMagicBytes));
  const Layout l = parse_layout(head, m, name, limits);  // the limit is checked here, before any allocation
  // The buffer grows with what the stream actually yields (at most doubling), so a corrupt header that claims a
  // size under the limit but far beyond the real data costs memory in proportion to the data, not to the claim.
  std::string raw = std::move(head);
  while (raw.size() < l.total_bytes) {
    const std::size_t old = raw.size();
    const std::size_t chunk = std::min(l.total_bytes - old, std::max<std::size_t>(std::size_t{1} << 20, old));
    if (old + chunk > raw.capacity()) raw.reserve(std::min(l.total_bytes, std::max(old + chunk, 2 * raw.capacity())));
    raw.resize(old + chunk);
    const std::size_t got = s.read(raw.data() + old, chunk);
    if (got < chunk)
      throw Error(cat(name, ": truncated IDX file (", shape_to_string(l.dims), " of ", to_string(l.type), " needs ",
                      l.total_bytes, " bytes, the gzip stream holds only ", old + got, ")"));
  }
  // One probe byte: the stream must end (and its CRC check pass) exactly here.
  char probe;
  if (s.read(&probe, 1) != 0)
    throw Error(cat(name, ": corrupt IDX file (the gzip stream holds more than the ", l.total_bytes,
                    " bytes that ", shape_to_string(l.dims), " of ", to_string(l.type), " needs)"));
  return convert(raw, l);
}

}  // namespace

IdxArray parse_idx(std::string_view bytes, const std::string& name, const IdxLimits& limits) {
  return is_gzip(bytes) ? parse_gzip(bytes, name, limits) : parse_plain(bytes, name, limits);
}

IdxArray read_idx(const std::string& path, const IdxLimits& limits) {
  return parse_idx(read_file(path), path, limits);
}

}  // namespace convkit
