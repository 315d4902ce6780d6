// tests/data/idx_bytes.hpp — building IDX files byte by byte, and gzip through zlib directly (independently of the
// reader under test), for the IDX and dataset tests.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace convkit::test_support {

// Big-endian bytes of an unsigned value of `bytes` bytes.
inline std::string be(uint64_t v, int bytes) {
  std::string s;
  for (int k = bytes - 1; k >= 0; --k) s += static_cast<char>((v >> (8 * k)) & 0xff);
  return s;
}

// An IDX header: 0, 0, type, ndims, then the dimensions.
inline std::string idx_header(uint8_t type, const std::vector<uint32_t>& dims) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) s += be(d, 4);
  return s;
}

// gzip-compress with zlib (windowBits 16 + 15 selects the gzip wrapper).
inline std::string gzip(const std::string& in, int level = Z_DEFAULT_COMPRESSION) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

}  // namespace convkit::test_support
