// Unit tests for NumPy .npy reading and writing (include/convkit/io.hpp).
//
// Files "as numpy writes them" are crafted byte by byte from the format specification (numpy.lib.format):
// magic "\x93NUMPY", major and minor version bytes, the header length (uint16 little-endian in 1.0, uint32 in 2.0
// and 3.0), then an ASCII Python dict literal padded with spaces and terminated by '\n' so that the data start on
// a 64-byte boundary, then the raw C-order data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/tensor.hpp"
#include "expect_error.hpp"

namespace convkit {
namespace {

namespace fs = std::filesystem;

using convkit::test_support::expect_error;

// A complete .npy file: version major.0, the dict padded (numpy-style) to `align` bytes, then the data.
std::string npy_file(int major, const std::string& dict, const std::string& data, std::size_t align = 64) {
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  const std::size_t unpadded = 6 + 2 + len_bytes + header.size() + 1;
  header.append((align - unpadded % align) % align, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (std::size_t k = 0; k < len_bytes; ++k) out += static_cast<char>((header.size() >> (8 * k)) & 0xff);
  return out + header + data;
}

std::string floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

const std::string kDict23 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
const std::vector<float> kValues23 = {0.5f, -1.0f, 2.25f, 3.0f, -4.5f, 1e-3f};

void expect_values(const Tensor& t, const Shape& shape, const std::vector<float>& values) {
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(t.size(), static_cast<int64_t>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(t[static_cast<int64_t>(i)], values[i]) << i;
}

// A scratch directory removed at the end of each test.
class NpyFiles : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("convkit_test_npy_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

// ---- round trips and the written format ----------------------------------------------------------------------

TEST(Npy, RoundTripRanksZeroToFiveAndEmptyDims) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-100.0f, 100.0f);
  const std::vector<Shape> shapes = {{}, {0}, {5}, {2, 3}, {2, 0, 3}, {1, 2, 3, 4}, {2, 1, 3, 1, 2}, {3, 0}};
  for (const Shape& s : shapes) {
    SCOPED_TRACE(shape_to_string(s));
    Tensor t(s);
    for (float& v : t.values()) v = dist(rng);
    if (t.size() >= 4) {  // special values survive bit for bit
      t[0] = std::numeric_limits<float>::infinity();
      t[1] = -0.0f;
      t[2] = std::numeric_limits<float>::quiet_NaN();
      t[3] = std::numeric_limits<float>::denorm_min();
    }
    const Tensor back = parse_npy(serialize_npy(t));
    ASSERT_EQ(back.shape(), s);
    ASSERT_EQ(back.size(), t.size());
    if (t.size()) EXPECT_EQ(std::memcmp(back.data(), t.data(), static_cast<std::size_t>(t.size()) * 4), 0);
  }
}

TEST(Npy, WrittenHeaderFollowsTheFormat) {
  for (const Shape& s : std::vector<Shape>{{}, {3}, {2, 3}, {10, 3, 7, 5}, {123456789, 0, 987654321}}) {
    SCOPED_TRACE(shape_to_string(s));
    const std::string bytes = serialize_npy(Tensor(s));
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(bytes.substr(0, 6), "\x93NUMPY");
    EXPECT_EQ(bytes[6], '\x01');  // version 1.0
    EXPECT_EQ(bytes[7], '\x00');
    const std::size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    const std::size_t data_at = 10 + header_len;
    EXPECT_EQ(data_at % 64, 0u) << "data must start on a 64-byte boundary";
    EXPECT_EQ(bytes.size() - data_at, static_cast<std::size_t>(shape_elements(s)) * 4);
    const std::string header = bytes.substr(10, header_len);
    EXPECT_EQ(header.back(), '\n');
    // numpy's own spelling of the dict, then only spaces.
    const std::string dict =
        "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_to_string(s) + ", }";
    EXPECT_EQ(header.substr(0, dict.size()), dict);
    EXPECT_EQ(header.find_first_not_of(' ', dict.size()), header.size() - 1);
  }
  // Tuple spelling of Python: (3,) and ().
  EXPECT_NE(serialize_npy(Tensor({3})).find("'shape': (3,), }"), std::string::npos);
  EXPECT_NE(serialize_npy(Tensor(Shape{})).find("'shape': (), }"), std::string::npos);
}

// ---- files as numpy writes them ------------------------------------------------------------------------------

TEST(Npy, ReadsVersion1Files) {
  expect_values(parse_npy(npy_file(1, kDict23, floats(kValues23))), {2, 3}, kValues23);
}

TEST(Npy, ReadsVersion2And3Files) {
  expect_values(parse_npy(npy_file(2, kDict23, floats(kValues23))), {2, 3}, kValues23);
  expect_values(parse_npy(npy_file(3, kDict23, floats(kValues23))), {2, 3}, kValues23);
}

TEST(Npy, ReadsHeaderVariants) {
  const std::string data = floats(kValues23);
  const std::vector<std::string> dicts = {
      "{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3), }",             // no byte-order mark
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",              // no trailing comma
      "{ 'descr' :  '<f4' ,  'fortran_order' : False , 'shape' : ( 2 , 3 , ) }",  // extra spaces
      "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",               // another key order
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",      // double quotes
  };
  for (const std::string& d : dicts) {
    SCOPED_TRACE(d);
    expect_values(parse_npy(npy_file(1, d, data)), {2, 3}, kValues23);
  }
  // Older numpy aligned the data to 16 bytes only; the header length field is what counts.
  expect_values(parse_npy(npy_file(1, kDict23, data, 16)), {2, 3}, kValues23);
  // Rank 0 and rank 1 tuples.
  expect_values(parse_npy(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}", floats({7.5f}))),
                {}, {7.5f});
  expect_values(parse_npy(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", floats({1, 2}))),
                {2}, {1, 2});
  expect_values(parse_npy(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4)}", "")), {0, 4},
                {});
}

// ---- rejections ------------------------------------------------------------------------------------------------

TEST(Npy, RejectsBadMagicAndVersions) {
  const std::string good = npy_file(1, kDict23, floats(kValues23));
  std::string bad = good;
  bad[5] = 'Z';
  expect_error([&] { parse_npy(bad, "x.npy"); }, {"x.npy", "magic"});
  expect_error([&] { parse_npy("", "empty.npy"); }, {"empty.npy", "magic"});
  expect_error([&] { parse_npy("\x93NUM", "short.npy"); }, {"short.npy"});
  expect_error([&] { parse_npy("PK\x03\x04 this is a zip", "zip.npy"); }, {"zip.npy", "magic"});
  for (const auto& [major, minor] : std::vector<std::pair<int, int>>{{0, 0}, {4, 0}, {1, 1}, {2, 5}, {255, 0}}) {
    std::string v = good;
    v[6] = static_cast<char>(major);
    v[7] = static_cast<char>(minor);
    expect_error([&] { parse_npy(v, "v.npy"); },
                 {"v.npy", "version", std::to_string(major) + "." + std::to_string(minor)});
  }
}

TEST(Npy, RejectsTruncatedHeaders) {
  // Header length cut off: version 2.0 needs four length bytes, only two are present.
  expect_error([] { parse_npy(std::string("\x93NUMPY\x02\x00\x10\x00", 10), "len.npy"); },
               {"len.npy", "truncated", "header length"});
  expect_error([] { parse_npy(std::string("\x93NUMPY\x01\x00\x10", 9), "len1.npy"); },
               {"len1.npy", "truncated", "header length"});
  // Header claims 118 bytes, 40 present.
  const std::string full = npy_file(1, kDict23, floats(kValues23));
  expect_error([&] { parse_npy(full.substr(0, 50), "hdr.npy"); }, {"hdr.npy", "truncated", "118", "40"});
}

TEST(Npy, RejectsMalformedDicts) {
  struct Row {
    std::string dict;
    std::vector<std::string> pieces;
  };
  const std::vector<Row> rows = {
      {"{'descr': '<f4', 'fortran_order': False}", {"shape"}},
      {"{'descr': '<f4', 'shape': (2, 3)}", {"fortran_order"}},
      {"{'fortran_order': False, 'shape': (2, 3)}", {"descr"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", {"'extra'"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}", {"malformed"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", {"malformed"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3)}", {"malformed", "dimension"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 3)}", {"malformed"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}", {"malformed", "'('"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", {"malformed", "dimension"}},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", {"True or False"}},
      {"{'descr': <f4, 'fortran_order': False, 'shape': (2, 3)}", {"string"}},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}", {"malformed"}},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}", {"','"}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} junk", {"trailing"}},
      {"('descr', '<f4')", {"'{'"}},
      {"", {"malformed"}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.dict);
    std::vector<std::string> pieces = r.pieces;
    pieces.push_back("bad.npy");
    expect_error([&] { parse_npy(npy_file(1, r.dict, floats(kValues23)), "bad.npy"); }, pieces);
  }
}

TEST(Npy, RejectsOtherDtypesAndFortranOrder) {
  for (const std::string descr : {"<f8", ">f4", "<i4", "|u1", "<f2", "<c8", "=f4"}) {
    SCOPED_TRACE(descr);
    const std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2, 3), }";
    expect_error([&] { parse_npy(npy_file(1, dict, floats(kValues23)), "d.npy"); },
                 {"d.npy", "'" + descr + "'", "float32"});
  }
  const std::string fortran = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
  expect_error([&] { parse_npy(npy_file(1, fortran, floats(kValues23)), "f.npy"); }, {"f.npy", "Fortran"});
}

TEST(Npy, RejectsTruncatedAndOversizedData) {
  std::string short_data = floats(kValues23);
  short_data.resize(20);
  expect_error([&] { parse_npy(npy_file(1, kDict23, short_data), "t.npy"); }, {"t.npy", "truncated", "24", "20"});
  expect_error([&] { parse_npy(npy_file(1, kDict23, ""), "t0.npy"); }, {"t0.npy", "truncated", "24", "0"});
  expect_error([&] { parse_npy(npy_file(1, kDict23, floats(kValues23) + "\x01\x02\x03\x04"), "x.npy"); },
               {"x.npy", "4 bytes after"});
  expect_error([&] { parse_npy(npy_file(1, kDict23, floats(kValues23) + "\n"), "nl.npy"); },
               {"nl.npy", "1 bytes after"});
}

// A shape claiming 2^40 elements (4 TiB of float32) must be refused from the header alone: no allocation, no
// scanning. If the reader allocated first, this would throw std::bad_alloc or take minutes, not microseconds.
TEST(Npy, RefusesHugeShapesBeforeAllocating) {
  const std::string huge = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }",
                                    floats(kValues23));
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { parse_npy(huge, "huge.npy"); }, {"huge.npy", "limit"});
  // Even with the element cap lifted, the missing data are noticed before the allocation.
  expect_error([&] { parse_npy(huge, "huge.npy", std::numeric_limits<int64_t>::max()); }, {"huge.npy", "truncated"});
  // 2^62 elements: count * 4 bytes wraps a 64-bit size; must still be an error, not an allocation.
  const std::string wraps =
      npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", "");
  expect_error([&] { parse_npy(wraps, "wrap.npy", std::numeric_limits<int64_t>::max()); }, {"wrap.npy"});
  // Products overflowing int64 and a single absurd dimension.
  expect_error([] {
    parse_npy(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}",
                       ""),
              "ovf.npy", std::numeric_limits<int64_t>::max());
  }, {"ovf.npy"});
  expect_error([] {
    parse_npy(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999,)}", ""),
              "dim.npy");
  }, {"dim.npy", "limit"});
  // The same digits with no cap: the parser must notice before its int64 accumulator overflows.
  expect_error([] {
    parse_npy(npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999,)}", ""),
              "dim.npy", std::numeric_limits<int64_t>::max());
  }, {"dim.npy", "limit"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 0.5);
  // A caller-chosen cap applies as well.
  expect_error([&] { parse_npy(npy_file(1, kDict23, floats(kValues23)), "cap.npy", 5); }, {"cap.npy", "limit", "5"});
  EXPECT_NO_THROW(parse_npy(npy_file(1, kDict23, floats(kValues23)), "cap.npy", 6));
}

// ---- files on disk ---------------------------------------------------------------------------------------------

TEST_F(NpyFiles, WriteThenReadRoundTrip) {
  Tensor t({2, 3, 4});
  for (int64_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(i) * 0.5f - 3.0f;
  const std::string path = (dir_ / "a.npy").string();
  write_npy(path, t);
  const Tensor back = read_npy(path);
  ASSERT_EQ(back.shape(), t.shape());
  for (int64_t i = 0; i < t.size(); ++i) EXPECT_EQ(back[i], t[i]);
  EXPECT_EQ(read_file(path), serialize_npy(t));
  EXPECT_EQ(listing(), std::vector<std::string>{"a.npy"}) << "no temporary file may remain";
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::owner_read, fs::perms::owner_read);
}

TEST_F(NpyFiles, OverwriteReplacesTheFile) {
  const std::string path = (dir_ / "b.npy").string();
  write_npy(path, Tensor({100, 100}, 1.0f));
  write_npy(path, Tensor({2}, {4.0f, 5.0f}));
  expect_values(read_npy(path), {2}, {4.0f, 5.0f});
  EXPECT_EQ(fs::file_size(path), serialize_npy(Tensor({2})).size());
  EXPECT_EQ(listing(), std::vector<std::string>{"b.npy"});
}

TEST_F(NpyFiles, WritingIntoAMissingDirectoryFailsCleanly) {
  const std::string path = (dir_ / "missing" / "c.npy").string();
  expect_error([&] { write_npy(path, Tensor({3}, 1.0f)); }, {path});
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
  EXPECT_TRUE(listing().empty()) << "nothing may be left behind";
}

TEST_F(NpyFiles, FailedRenameLeavesTargetAndNoTemporary) {
  // The target is a non-empty directory: the temporary file is written, the rename fails, and the temporary must be
  // removed again while the directory stays as it was.
  fs::create_directories(dir_ / "d.npy" / "inside");
  const std::string path = (dir_ / "d.npy").string();
  expect_error([&] { write_npy(path, Tensor({3}, 1.0f)); }, {path});
  EXPECT_EQ(listing(), std::vector<std::string>{"d.npy"});
  EXPECT_TRUE(fs::is_directory(dir_ / "d.npy" / "inside"));
}

TEST_F(NpyFiles, ReadErrorsNameTheFile) {
  const std::string missing = (dir_ / "nope.npy").string();
  expect_error([&] { read_npy(missing); }, {missing});
  const std::string text = (dir_ / "text.npy").string();
  std::ofstream(text) << "hello";
  expect_error([&] { read_npy(text); }, {text, "magic"});
  const std::string trunc = (dir_ / "trunc.npy").string();
  std::ofstream(trunc, std::ios::binary) << npy_file(1, kDict23, "abc");
  expect_error([&] { read_npy(trunc); }, {trunc, "truncated"});
}

}  // namespace
}  // namespace convkit
