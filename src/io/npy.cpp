// NumPy .npy reader and writer (format documented in numpy.lib.format): magic "\x93NUMPY", version bytes,
// a little-endian header length (2 bytes in 1.0, 4 bytes in 2.0 / 3.0), a Python dict literal padded so that
// the data starts on a 64-byte boundary, then the raw array.
#include <bit>
#include <cctype>
#include <cstring>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

static_assert(std::endian::native == std::endian::little, "convkit's .npy I/O assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;

// A cursor over the header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& name) : s_(s), name_(name) {}

  void parse(std::string& descr, bool& fortran, Shape& shape, int64_t max_elements) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        shape = tuple(max_elements);
        have_shape = true;
      } else {
        fail(cat("unexpected key '", key, "'"));
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != '}') {
        fail("expected ',' or '}'");
      }
    }
    skip_ws();
    if (i_ != s_.size()) fail("trailing characters after the dict");
    if (!have_descr || !have_fortran || !have_shape)
      fail("the header must hold 'descr', 'fortran_order' and 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(cat(name_, ": malformed .npy header (", what, " at offset ", i_, ")"));
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(cat("expected '", c, "'"));
    ++i_;
  }
  std::string string_literal() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a string");
    const std::size_t end = s_.find(q, i_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_ws();
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  Shape tuple(int64_t max_elements) {
    expect('(');
    Shape shape;
    int64_t total = 1;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        break;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a dimension");
      int64_t d = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const int digit = s_[i_] - '0';
        // Checked before the multiplication, so that the accumulator itself cannot overflow.
        if (d > (max_elements - digit) / 10) fail(cat("dimension larger than the limit of ", max_elements, " elements"));
        d = d * 10 + digit;
        ++i_;
      }
      shape.push_back(d);
      if (d != 0 && total > max_elements / d)
        fail(cat("shape has more elements than the limit of ", max_elements));
      total *= d;
      if (shape.size() > 32) fail("more than 32 dimensions");
      skip_ws();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ')') {
        fail("expected ',' or ')'");
      }
    }
    return shape;
  }

  std::string_view s_;
  const std::string& name_;
  std::size_t i_ = 0;
};

uint32_t read_le(std::string_view b, std::size_t at, int bytes) {
  uint32_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<std::size_t>(k)]);
  return v;
}

}  // namespace

Tensor parse_npy(std::string_view bytes, const std::string& name, int64_t max_elements) {
  if (bytes.size() < kMagicLen + 2 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    throw Error(cat(name, ": not a .npy file (missing the \\x93NUMPY magic string)"));
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    throw Error(cat(name, ": unsupported .npy format version ", major, ".", minor, " (1.0, 2.0 and 3.0 are read)"));
  const int len_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = kMagicLen + 2 + static_cast<std::size_t>(len_bytes);
  if (bytes.size() < prefix) throw Error(cat(name, ": truncated .npy file (the header length is cut off)"));
  const std::size_t header_len = read_le(bytes, kMagicLen + 2, len_bytes);
  if (bytes.size() - prefix < header_len)
    throw Error(cat(name, ": truncated .npy file (header of ", header_len, " bytes, only ", bytes.size() - prefix,
                    " present)"));
  std::string descr;
  bool fortran = false;
  Shape shape;
  HeaderParser(bytes.substr(prefix, header_len), name).parse(descr, fortran, shape, max_elements);
  if (descr != "<f4" && descr != "f4")
    throw Error(cat(name, ": dtype '", descr, "' is not supported; convkit reads float32 ('<f4'): ",
                    "convert with numpy's x.astype(np.float32)"));
  if (fortran)
    throw Error(cat(name, ": Fortran-ordered arrays are not supported; save with np.ascontiguousarray(x)"));
  const int64_t count = shape_elements(shape);
  const std::size_t data_at = prefix + header_len;
  const std::size_t have = bytes.size() - data_at;
  // Compared in elements: count * 4 bytes can wrap around when max_elements is lifted.
  if (static_cast<uint64_t>(count) > have / sizeof(float))
    throw Error(cat(name, ": truncated .npy file (shape ", shape_to_string(shape), " needs ", count,
                    " float32 values = ", static_cast<long double>(count) * sizeof(float), " bytes of data, only ",
                    have, " present)"));
  const std::size_t want = static_cast<std::size_t>(count) * sizeof(float);
  if (have > want)
    throw Error(cat(name, ": corrupt .npy file (", have - want, " bytes after the data of shape ",
                    shape_to_string(shape), ")"));
  Tensor t(shape);
  if (want) std::memcpy(t.data(), bytes.data() + data_at, want);
  return t;
}

Tensor read_npy(const std::string& path, int64_t max_elements) {
  return parse_npy(read_file(path), path, max_elements);
}

std::string serialize_npy(const Tensor& t) {
  // Python's tuple syntax is shape_to_string's: "(2, 3)", "(3,)", "()". Format 1.0 suffices: the header of a
  // tensor is far below its 65535-byte limit.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_to_string(t.shape()) + ", }";
  // Pad with spaces and a final newline so that the data starts on a 64-byte boundary.
  const std::size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(t.data()), static_cast<std::size_t>(t.size()) * sizeof(float));
  return out;
}

void write_npy(const std::string& path, const Tensor& t) { write_file_atomic(path, serialize_npy(t)); }

}  // namespace convkit
