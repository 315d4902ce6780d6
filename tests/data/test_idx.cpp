// IDX reader (include/convkit/dataset.hpp): hand-built files of every element type, gzip through zlib here in the
// test, truncation, bad magic, and streams that expand far beyond what their header claims.
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "data/idx_bytes.hpp"
#include "expect_error.hpp"
#include "temp_dir.hpp"

namespace convkit {
namespace {

namespace fs = std::filesystem;

using convkit::test_support::be;
using convkit::test_support::expect_error;
using convkit::test_support::gzip;
using convkit::test_support::idx_header;

using convkit::test_support::TempDir;

uint64_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
uint64_t bits_of(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}

// ---- every element type -----------------------------------------------------------------------------------------

TEST(IdxTypes, UnsignedByte) {
  const std::string f = idx_header(0x08, {5}) + std::string("\x00\x01\x7f\x80\xff", 5);
  const IdxArray a = parse_idx(f);
  EXPECT_EQ(a.type, IdxType::u8);
  ASSERT_EQ(a.values.shape(), (Shape{5}));
  const float want[] = {0, 1, 127, 128, 255};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.values[i], want[i]);
}

TEST(IdxTypes, SignedByte) {
  const std::string f = idx_header(0x09, {4}) + std::string("\x80\xff\x00\x7f", 4);
  const IdxArray a = parse_idx(f);
  EXPECT_EQ(a.type, IdxType::i8);
  const float want[] = {-128, -1, 0, 127};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a.values[i], want[i]);
}

TEST(IdxTypes, Short) {
  const std::string f = idx_header(0x0B, {5}) + std::string("\x80\x00" "\xff\xff" "\x00\x00" "\x01\x02" "\x7f\xff", 10);
  const IdxArray a = parse_idx(f);
  EXPECT_EQ(a.type, IdxType::i16);
  const float want[] = {-32768, -1, 0, 258, 32767};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.values[i], want[i]);
}

TEST(IdxTypes, Int) {
  const int32_t v[] = {std::numeric_limits<int32_t>::min(), -1, 0, 16777217, 123456789};
  std::string f = idx_header(0x0C, {5});
  for (int32_t x : v) f += be(static_cast<uint32_t>(x), 4);
  const IdxArray a = parse_idx(f);
  EXPECT_EQ(a.type, IdxType::i32);
  EXPECT_EQ(a.values[0], -2147483648.0f);
  EXPECT_EQ(a.values[1], -1.0f);
  EXPECT_EQ(a.values[2], 0.0f);
  EXPECT_EQ(a.values[3], 16777216.0f);   // 2^24 + 1 rounds to even
  EXPECT_EQ(a.values[4], 123456792.0f);  // nearest float
}

TEST(IdxTypes, Float) {
  const float v[] = {1.5f, -0.0f, std::numeric_limits<float>::infinity(), 3.4e38f,
                     std::numeric_limits<float>::denorm_min()};
  std::string f = idx_header(0x0D, {5});
  for (float x : v) f += be(bits_of(x), 4);
  // 1.5f is 0x3fc00000: big-endian bytes 3f c0 00 00.
  ASSERT_EQ(f.substr(8, 4), std::string("\x3f\xc0\x00\x00", 4));
  const IdxArray a = parse_idx(f);
  EXPECT_EQ(a.type, IdxType::f32);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(bits_of(a.values[i]), bits_of(v[i])) << i;
}

TEST(IdxTypes, Double) {
  const double v[] = {0.1, -2.5, 1e300, std::nan("")};
  std::string f = idx_header(0x0E, {2, 2});
  for (double x : v) f += be(bits_of(x), 8);
  const IdxArray a = parse_idx(f);
  EXPECT_EQ(a.type, IdxType::f64);
  EXPECT_EQ(a.values.shape(), (Shape{2, 2}));
  EXPECT_EQ(a.values[0], 0.1f);
  EXPECT_EQ(a.values[1], -2.5f);
  EXPECT_TRUE(std::isinf(a.values[2]));
  EXPECT_TRUE(std::isnan(a.values[3]));
}

TEST(IdxTypes, ShapeAndCOrder) {
  std::string f = idx_header(0x08, {2, 3, 4});
  for (int i = 0; i < 24; ++i) f += static_cast<char>(i * 10);
  const IdxArray a = parse_idx(f);
  ASSERT_EQ(a.values.shape(), (Shape{2, 3, 4}));
  // Element [i][j][k] is at i*12 + j*4 + k.
  EXPECT_EQ(a.values[1 * 12 + 2 * 4 + 3], 230.0f);
  EXPECT_EQ(a.values[0 * 12 + 1 * 4 + 0], 40.0f);
}

TEST(IdxTypes, ZeroSizedDimension) {
  const IdxArray a = parse_idx(idx_header(0x0B, {0, 28, 28}));
  EXPECT_EQ(a.values.shape(), (Shape{0, 28, 28}));
  EXPECT_EQ(a.values.size(), 0);
}

TEST(IdxTypes, NamesAndSizes) {
  EXPECT_EQ(to_string(IdxType::u8), "ubyte");
  EXPECT_EQ(to_string(IdxType::f64), "double");
  EXPECT_EQ(idx_type_size(IdxType::i16), 2);
  EXPECT_EQ(idx_type_size(IdxType::f64), 8);
}

// ---- malformed plain files --------------------------------------------------------------------------------------

TEST(IdxCorrupt, EveryTruncationIsRefused) {
  std::string f = idx_header(0x0B, {2, 3});
  for (int i = 0; i < 6; ++i) f += be(static_cast<uint64_t>(i), 2);
  ASSERT_NO_THROW(parse_idx(f));
  for (std::size_t len = 0; len < f.size(); ++len)
    expect_error([&] { parse_idx(f.substr(0, len), "cut.idx"); }, {"cut.idx", "truncated"});
}

TEST(IdxCorrupt, ExtraDataBadMagicUnknownType) {
  const std::string f = idx_header(0x08, {3}) + "abc";
  expect_error([&] { parse_idx(f + "d", "x.idx"); }, {"x.idx", "1 bytes after the data"});
  std::string bad = f;
  bad[0] = 1;
  expect_error([&] { parse_idx(bad, "x.idx"); }, {"x.idx", "bad magic", "0x01"});
  bad = f;
  bad[1] = '\x08';
  expect_error([&] { parse_idx(bad, "x.idx"); }, {"x.idx", "bad magic"});
  bad = f;
  bad[2] = '\x0a';
  expect_error([&] { parse_idx(bad, "x.idx"); }, {"x.idx", "unknown IDX element type 0x0a"});
  expect_error([&] { parse_idx(std::string("\0\0\x08\0", 4), "x.idx"); }, {"x.idx", "zero dimensions"});
  // A PNG, say, is no IDX file.
  expect_error([&] { parse_idx("\x89PNG\r\n\x1a\n", "x.png"); }, {"x.png", "bad magic"});
}

TEST(IdxCorrupt, ElementLimitBeforeAllocation) {
  // 65536^3 = 2^48 bytes claimed in a file of 16 bytes.
  const std::string f = idx_header(0x08, {65536, 65536, 65536});
  expect_error([&] { parse_idx(f, "huge.idx"); }, {"huge.idx", "(65536, 65536, 65536)", "limit"});
  // Right at a small limit: accepted when it fits, refused one element over.
  const std::string g = idx_header(0x08, {2, 5}) + std::string(10, '\x01');
  IdxLimits ten{.max_elements = 10};
  EXPECT_NO_THROW(parse_idx(g, "g", ten));
  IdxLimits nine{.max_elements = 9};
  expect_error([&] { parse_idx(g, "g.idx", nine); }, {"g.idx", "limit of 9"});
}

// ---- gzip -------------------------------------------------------------------------------------------------------

std::string sample_plain() {
  std::string f = idx_header(0x08, {3, 4, 5});
  for (int i = 0; i < 60; ++i) f += static_cast<char>((i * 37) & 0xff);
  return f;
}

void expect_same(const IdxArray& a, const IdxArray& b) {
  ASSERT_EQ(a.values.shape(), b.values.shape());
  EXPECT_EQ(a.type, b.type);
  for (int64_t i = 0; i < a.values.size(); ++i) ASSERT_EQ(a.values[i], b.values[i]) << i;
}

TEST(IdxGzip, SameAsPlainForEveryType) {
  std::vector<std::string> files = {sample_plain()};
  std::string f = idx_header(0x0E, {7});
  for (int i = 0; i < 7; ++i) f += be(bits_of(i * 0.3 - 1.0), 8);
  files.push_back(f);
  f = idx_header(0x0C, {2, 2});
  for (int i = 0; i < 4; ++i) f += be(static_cast<uint32_t>(-1000 * i), 4);
  files.push_back(f);
  for (const std::string& plain : files) {
    const std::string gz = gzip(plain);
    ASSERT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
    expect_same(parse_idx(gz, "x.gz"), parse_idx(plain, "x"));
  }
}

TEST(IdxGzip, FilesOnDiskWhateverTheirName) {
  TempDir dir;
  const std::string plain = sample_plain();
  const IdxArray want = parse_idx(plain);
  expect_same(read_idx(dir.write("a-idx3-ubyte", plain)), want);
  expect_same(read_idx(dir.write("a-idx3-ubyte.gz", gzip(plain))), want);
  expect_same(read_idx(dir.write("compressed-without-suffix", gzip(plain))), want);
  expect_error([&] { read_idx(dir.write("nothing", "") + ".missing"); }, {"nothing.missing", "cannot open"});
}

TEST(IdxGzip, ConcatenatedMembers) {
  // gzip allows several members in one file (`cat a.gz b.gz`); the data may be split anywhere.
  const std::string plain = sample_plain();
  for (std::size_t cut : {std::size_t{1}, std::size_t{4}, std::size_t{13}, plain.size() - 1}) {
    const std::string gz = gzip(plain.substr(0, cut)) + gzip(plain.substr(cut));
    expect_same(parse_idx(gz, "multi.gz"), parse_idx(plain));
  }
}

TEST(IdxGzip, TruncatedStreamsAreRefused) {
  const std::string gz = gzip(sample_plain());
  for (std::size_t len = 2; len < gz.size(); ++len)
    EXPECT_THROW(parse_idx(gz.substr(0, len), "cut.gz"), Error) << "prefix of " << len << " bytes";
  // The last 8 bytes are the CRC and length trailer: cutting there must still be caught.
  expect_error([&] { parse_idx(gz.substr(0, gz.size() - 1), "cut.gz"); }, {"cut.gz", "truncated gzip"});
}

TEST(IdxGzip, CorruptStreamsAreRefused) {
  const std::string gz = gzip(sample_plain());
  // A wrong CRC (first trailer byte).
  std::string bad = gz;
  bad[bad.size() - 8] = static_cast<char>(bad[bad.size() - 8] ^ 0x55);
  expect_error([&] { parse_idx(bad, "crc.gz"); }, {"crc.gz", "corrupt gzip"});
  // Garbage after the stream.
  expect_error([&] { parse_idx(gz + "xyz", "tail.gz"); }, {"tail.gz", "3 bytes of garbage"});
  // An invalid deflate block type (bits 11 in the first block header) right after the 10-byte gzip header.
  bad = gz;
  bad[10] = static_cast<char>(bad[10] | 0x06);
  expect_error([&] { parse_idx(bad, "block.gz"); }, {"block.gz", "corrupt gzip"});
  // Every single-bit flip in the compressed data or the trailer is refused (by inflate, by the CRC-32 or length
  // check of the trailer, or by the IDX size checks), except a flip in the unused bits that pad the last deflate
  // byte, which cannot change the output: whatever is accepted must be the original.
  const IdxArray original = parse_idx(gz);
  int refused = 0;
  for (std::size_t i = 10; i < gz.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string m = gz;
      m[i] = static_cast<char>(m[i] ^ (1 << bit));
      try {
        expect_same(parse_idx(m, "flip.gz"), original);
      } catch (const Error&) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, static_cast<int>(8 * (gz.size() - 10)) - 8);
  // The bad-magic check applies to the decompressed bytes too.
  std::string notidx = sample_plain();
  notidx[0] = 'P';
  expect_error([&] { parse_idx(gzip(notidx), "np.gz"); }, {"np.gz", "bad magic"});
  // So do truncation and extra data inside a complete stream.
  const std::string plain = sample_plain();
  expect_error([&] { parse_idx(gzip(plain.substr(0, plain.size() - 1)), "t.gz"); }, {"t.gz", "truncated IDX"});
  expect_error([&] { parse_idx(gzip(plain + "!"), "e.gz"); }, {"e.gz", "holds more than"});
  expect_error([&] { parse_idx(gzip(plain.substr(0, 10)), "h.gz"); }, {"h.gz", "truncated"});
}

TEST(IdxGzip, HugeClaimRefusedBeforeAllocation) {
  // The header claims 2^48 bytes; the stream is tiny. Refused from the header alone.
  const std::string gz = gzip(idx_header(0x08, {65536, 65536, 65536}) + std::string(1000, '\0'));
  expect_error([&] { parse_idx(gz, "claim.gz"); }, {"claim.gz", "limit"});
  // A claim that is merely above a caller's limit.
  const std::string gz2 = gzip(idx_header(0x0D, {1000, 1000}) + std::string(4000000, '\0'));
  expect_error([&] { parse_idx(gz2, "claim2.gz", IdxLimits{.max_elements = 999999}); },
               {"claim2.gz", "limit of 999999"});
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

TEST(IdxGzip, ClaimUnderTheLimitCostsOnlyWhatTheStreamHolds) {
  // A header claiming 1 GiB of bytes (under the default limit) in a stream that holds 100: refused as truncated,
  // and the buffer grew with the real data, not with the claim (the peak resident size stays far below 1 GiB).
  const std::string gz = gzip(idx_header(0x08, {1024, 1024, 1024}) + std::string(100, '\x07'));
  const long before = peak_rss_kib();
  expect_error([&] { parse_idx(gz, "liar.gz"); }, {"liar.gz", "truncated IDX", "holds only 116"});
  EXPECT_LT(peak_rss_kib() - before, 256L * 1024) << "KiB of peak resident memory added";
}

TEST(IdxGzip, BombExpandingPastItsHeaderIsStoppedEarly) {
  // 20 bytes of IDX claimed (12 of header, 8 of data), followed by 16 GiB of zeros: 16384 gzip members of 1 MiB
  // of zeros each (about 1 KiB compressed). Inflating it all would take many seconds and allocating it would
  // exhaust memory; the reader must stop one byte after the 20 it expects.
  const std::string mib_of_zeros = gzip(std::string(1 << 20, '\0'), 9);
  std::string bomb = gzip(idx_header(0x08, {2, 4}) + std::string(8, '\x05'));
  bomb.reserve(bomb.size() + 16384 * mib_of_zeros.size());
  for (int i = 0; i < 16384; ++i) bomb += mib_of_zeros;
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { parse_idx(bomb, "bomb.gz"); }, {"bomb.gz", "holds more than the 20 bytes"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  // The same shape of stream in one member: the header claims 8 bytes of data, the stream holds 16 MiB.
  const std::string one = gzip(idx_header(0x08, {8}) + std::string(8 + (16 << 20), '\0'), 9);
  expect_error([&] { parse_idx(one, "one.gz"); }, {"one.gz", "holds more than"});
}

}  // namespace
}  // namespace convkit
