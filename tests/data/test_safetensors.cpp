// safetensors reader and writer (include/convkit/safetensors.hpp).
//
// The expected bytes of the hand-built files are written out here from the format's description (u64 length, JSON,
// little-endian floats), not produced by the writer under test. Every corrupt input must be refused with a
// convkit::Error whose message names the file and, where there is one, the tensor.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/safetensors.hpp"
#include "expect_error.hpp"
#include "temp_dir.hpp"

namespace convkit {
namespace {

namespace fs = std::filesystem;

using convkit::test_support::expect_error;

std::string u64_le(uint64_t v) {
  std::string s;
  for (int k = 0; k < 8; ++k) s += static_cast<char>((v >> (8 * k)) & 0xff);
  return s;
}

// A file from its JSON header text and data section (no padding: the format does not require it).
std::string make_file(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

// Little-endian bytes of floats, spelled out byte by byte from their IEEE-754 bit patterns.
std::string f32_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int k = 0; k < 4; ++k) s += static_cast<char>((bits >> (8 * k)) & 0xff);
  }
  return s;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * 4) == 0);
}

using convkit::test_support::TempDir;

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---- hand-built files -------------------------------------------------------------------------------------------

TEST(SafetensorsHandBuilt, ParsesSpecExample) {
  // Two tensors stored in the opposite order of their names; JSON keys in yet another order, whitespace around.
  const std::string header =
      R"( { "b" : {"shape": [2], "dtype": "F32", "data_offsets": [0, 8]},)"
      R"("__metadata__": {"format": "pt", "note": "caf\u00e9"},)"
      R"("a": {"data_offsets": [8, 32], "dtype": "F32", "shape": [2, 3]} } )";
  const std::string data = f32_bytes({1.0f, -2.5f}) + f32_bytes({0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f});
  // 1.0f is 0x3f800000: little-endian bytes 00 00 80 3f — check the helper against the spec once.
  ASSERT_EQ(data.substr(0, 4), std::string("\x00\x00\x80\x3f", 4));
  const SafetensorsFile f = parse_safetensors(make_file(header, data), "spec.safetensors");
  ASSERT_EQ(f.tensors.size(), 2u);
  const Tensor& a = f.tensors.at("a");
  const Tensor& b = f.tensors.at("b");
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.shape(), (Shape{2}));
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a[i], static_cast<float>(i));
  EXPECT_EQ(f.metadata.size(), 2u);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("note"), "caf\xc3\xa9");  // \u00e9 decoded to UTF-8
}

TEST(SafetensorsHandBuilt, ScalarEmptyAndNoTensors) {
  // A scalar (shape []) holds one value; a zero-size tensor holds none and may sit anywhere with begin == end.
  const std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]}})";
  const SafetensorsFile f = parse_safetensors(make_file(header, f32_bytes({7.25f})));
  EXPECT_EQ(f.tensors.at("s").shape(), Shape{});
  EXPECT_EQ(f.tensors.at("s")[0], 7.25f);
  EXPECT_EQ(f.tensors.at("z").shape(), (Shape{3, 0}));
  EXPECT_EQ(f.tensors.at("z").size(), 0);

  const SafetensorsFile empty = parse_safetensors(make_file("{}", ""));
  EXPECT_TRUE(empty.tensors.empty());
  EXPECT_TRUE(empty.metadata.empty());
}

TEST(SafetensorsHandBuilt, WriterOutputMatchesTheFormat) {
  SafetensorsFile f;
  f.metadata["format"] = "pt";
  f.tensors.emplace("w", Tensor({2}, {1.0f, 2.0f}));
  f.tensors.emplace("b", Tensor({1}, {-1.0f}));
  const std::string bytes = serialize_safetensors(f);
  // Expected header, written by hand: metadata first, then tensors in name order laid out in that order, keys in
  // the reference writer's order, then spaces to a multiple of 8.
  std::string json = R"({"__metadata__":{"format":"pt"},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  json.append((8 - json.size() % 8) % 8, ' ');
  const std::string expected = u64_le(json.size()) + json + f32_bytes({-1.0f}) + f32_bytes({1.0f, 2.0f});
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(json.size() % 8, 0u);
}

TEST(SafetensorsHandBuilt, HeaderPaddingAlwaysAlignsTheData) {
  // Tensor names of every length mod 8 exercise every padding amount.
  for (int len = 1; len <= 16; ++len) {
    SafetensorsFile f;
    f.tensors.emplace(std::string(static_cast<std::size_t>(len), 'x'), Tensor({1}, {3.0f}));
    const std::string bytes = serialize_safetensors(f);
    uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(k)]);
    EXPECT_EQ(n % 8, 0u) << "name length " << len;
    EXPECT_EQ(bytes.size(), 8 + n + 4);
    // Padding is spaces after the closing brace, nothing else.
    const std::string header = bytes.substr(8, n);
    const std::size_t close = header.rfind('}');
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
    EXPECT_LT(header.size() - close - 1, 8u);
  }
}

// ---- round trips ------------------------------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, ValuesBitExactWithMetadataAndOddNames) {
  SafetensorsFile f;
  f.metadata["architecture"] = R"({"class_name": "Sequential", "config": {"layers": []}})";
  f.metadata["quote\"back\\slash\nnewline"] = "tab\tcontrol\x01 unicode \xe2\x82\xac";
  f.metadata[""] = "";
  Tensor special({8});
  const float vals[8] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(), 1e-30f,
                         std::numeric_limits<float>::quiet_NaN()};
  std::memcpy(special.data(), vals, sizeof vals);
  f.tensors.emplace("layer.0/kernel:0", special);
  f.tensors.emplace("with space and \"quotes\" \xc3\xa9", Tensor({2, 1, 1}, {4.0f, 5.0f}));
  f.tensors.emplace("scalar", Tensor(Shape{}, 9.5f));
  f.tensors.emplace("empty0", Tensor(Shape{0}));
  f.tensors.emplace("empty1", Tensor(Shape{4, 0, 3}));
  f.tensors.emplace("", Tensor({1}, {1.0f}));  // the empty string is a valid JSON key

  const SafetensorsFile g = parse_safetensors(serialize_safetensors(f));
  EXPECT_EQ(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (const auto& [name, t] : f.tensors) {
    ASSERT_EQ(g.tensors.count(name), 1u) << name;
    EXPECT_TRUE(same_bits(g.tensors.at(name), t)) << name;
  }
}

TEST(SafetensorsRoundTrip, ManyTensorsThroughAFile) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> dim(0, 6), rank(0, 4);
  std::normal_distribution<float> value(0.0f, 3.0f);
  SafetensorsFile f;
  for (int i = 0; i < 600; ++i) {
    Shape s;
    const int r = rank(rng);
    for (int k = 0; k < r; ++k) s.push_back(dim(rng));
    Tensor t(s);
    for (float& v : t.values()) v = value(rng);
    f.tensors.emplace("t" + std::to_string(i * 7919 % 1000), std::move(t));
  }
  f.metadata["count"] = std::to_string(f.tensors.size());
  TempDir dir;
  const std::string path = dir.file("many.safetensors");
  write_safetensors(path, f);
  const SafetensorsFile g = read_safetensors(path);
  EXPECT_EQ(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (const auto& [name, t] : f.tensors) EXPECT_TRUE(same_bits(g.tensors.at(name), t)) << name;
  // The file reader and the in-memory parser agree.
  const SafetensorsFile h = parse_safetensors(read_file(path), path);
  for (const auto& [name, t] : f.tensors) EXPECT_TRUE(same_bits(h.tensors.at(name), t)) << name;
  // And the writer is deterministic.
  EXPECT_EQ(read_file(path), serialize_safetensors(g));
}

TEST(SafetensorsRoundTrip, EmptyFile) {
  const std::string bytes = serialize_safetensors({});
  EXPECT_EQ(bytes, u64_le(8) + "{}      ");
  const SafetensorsFile g = parse_safetensors(bytes);
  EXPECT_TRUE(g.tensors.empty());
  EXPECT_TRUE(g.metadata.empty());
}

// ---- writer errors and atomicity -----------------------------------------------------------------------------

TEST(SafetensorsWrite, RefusesReservedNameAndNullTensor) {
  SafetensorsFile f;
  f.tensors.emplace("__metadata__", Tensor({1}));
  expect_error([&] { serialize_safetensors(f); }, {"__metadata__"});
  SafetensorsFile g;
  g.tensors.emplace("ghost", Tensor());
  expect_error([&] { serialize_safetensors(g); }, {"'ghost'", "default-constructed"});
  SafetensorsFile h;
  h.tensors.emplace("bad\xff", Tensor({1}));
  expect_error([&] { serialize_safetensors(h); }, {"UTF-8"});
}

TEST(SafetensorsWrite, FailedWriteKeepsTheOldFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  SafetensorsFile old;
  old.tensors.emplace("w", Tensor({3}, {1.0f, 2.0f, 3.0f}));
  write_safetensors(path, old);
  const std::string before = read_file(path);

  SafetensorsFile bad;
  bad.tensors.emplace("__metadata__", Tensor({1}));
  EXPECT_THROW(write_safetensors(path, bad), Error);
  EXPECT_EQ(read_file(path), before);

  SafetensorsFile next;
  next.tensors.emplace("v", Tensor({1}, {5.0f}));
  write_safetensors(path, next);  // replaces the old file
  EXPECT_EQ(read_safetensors(path).tensors.count("w"), 0u);
  EXPECT_EQ(read_safetensors(path).tensors.at("v")[0], 5.0f);

  expect_error([&] { write_safetensors(dir.file("no/such/dir/x.safetensors"), next); }, {"no/such/dir"});
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1) << "a temporary file was left behind";
}

TEST(SafetensorsRead, MissingFileAndDirectory) {
  TempDir dir;
  expect_error([&] { read_safetensors(dir.file("absent.safetensors")); }, {"absent.safetensors", "cannot open"});
  expect_error([&] { read_safetensors(dir.path().string()); }, {dir.path().string(), "not a regular file"});
}

// ---- corrupt inputs ---------------------------------------------------------------------------------------------

// A small valid file: metadata, two tensors (one of them empty) and a scalar.
std::string small_valid_file() {
  SafetensorsFile f;
  f.metadata["k"] = "v";
  f.tensors.emplace("a", Tensor({2, 2}, {1.0f, 2.0f, 3.0f, 4.0f}));
  f.tensors.emplace("e", Tensor(Shape{0, 5}));
  f.tensors.emplace("s", Tensor(Shape{}, 6.0f));
  return serialize_safetensors(f);
}

TEST(SafetensorsCorrupt, EveryTruncationIsRefused) {
  const std::string good = small_valid_file();
  ASSERT_NO_THROW(parse_safetensors(good));
  TempDir dir;
  const std::string path = dir.file("cut.safetensors");
  for (std::size_t len = 0; len < good.size(); ++len) {
    const std::string cut = good.substr(0, len);
    EXPECT_THROW(parse_safetensors(cut, "cut"), Error) << "prefix of " << len << " bytes";
    write_raw(path, cut);
    try {
      read_safetensors(path);
      ADD_FAILURE() << "read_safetensors accepted a prefix of " << len << " bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(SafetensorsCorrupt, TrailingBytesAreRefused) {
  const std::string good = small_valid_file();
  expect_error([&] { parse_safetensors(good + std::string(1, '\0'), "t.st"); }, {"t.st", "1 trailing bytes"});
  expect_error([&] { parse_safetensors(good + "junkjunk", "t.st"); }, {"t.st", "8 trailing bytes"});
}

TEST(SafetensorsCorrupt, SingleByteMutationsNeverCrash) {
  // Every byte replaced by a few characters that matter to a JSON or length parser: each result must parse
  // consistently or be refused with convkit::Error (any other exception type fails the test).
  const std::string good = small_valid_file();
  const char repl[] = {'\0', '\xff', '[', '{', '"', '9', '-', ' ', ',', '0'};
  int accepted = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (char c : repl) {
      std::string m = good;
      if (m[i] == c) continue;
      m[i] = c;
      try {
        const SafetensorsFile f = parse_safetensors(m, "mutant");
        uint64_t bytes = 0;
        for (const auto& [name, t] : f.tensors) bytes += static_cast<uint64_t>(t.size()) * 4;
        uint64_t n = 0;
        for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(m[static_cast<std::size_t>(k)]);
        EXPECT_EQ(8 + n + bytes, m.size()) << "accepted an inconsistent file (byte " << i << ")";
        ++accepted;
      } catch (const Error&) {
      }
    }
  }
  // Mutations inside the data section or in the padding / metadata strings are harmless; most others are not.
  EXPECT_GT(accepted, 0);
}

struct CorruptCase {
  const char* label;
  std::string bytes;
  std::vector<std::string> pieces;  // all must appear in the message
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string d8 = f32_bytes({1.0f, 2.0f});
  const std::string d12 = f32_bytes({1.0f, 2.0f, 3.0f});
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                  uint64_t e) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(b) + "," + std::to_string(e) + "]}";
  };
  std::vector<CorruptCase> c;
  c.push_back({"shorter than the length field", std::string("\x02\x00\x00", 3), {"bad.st", "truncated"}});
  c.push_back({"header length beyond the file", u64_le(100) + "{}", {"bad.st", "header length 100", "2 bytes"}});
  c.push_back({"huge header length", u64_le(uint64_t{1} << 62) + "{}", {"bad.st", "exceeds the limit"}});
  c.push_back({"max u64 header length", u64_le(std::numeric_limits<uint64_t>::max()) + "{}",
               {"bad.st", "exceeds the limit"}});
  c.push_back({"zero header length", u64_le(0), {"bad.st", "too short"}});
  c.push_back({"invalid JSON", make_file(R"({"a":{"dtype":"F32",)", ""), {"bad.st", "not valid JSON"}});
  c.push_back({"invalid UTF-8", make_file("{\"\xff\":1}", ""), {"bad.st", "not valid JSON"}});
  c.push_back({"JSON then garbage", make_file("{} x", ""), {"bad.st", "not valid JSON"}});
  c.push_back({"header is an array", make_file("[1,2]", ""), {"bad.st", "must be a JSON object", "array"}});
  c.push_back({"header is a string", make_file("\"{}\"", ""), {"bad.st", "must be a JSON object", "string"}});
  c.push_back({"header is null", make_file("null", ""), {"bad.st", "must be a JSON object"}});
  c.push_back({"entry is a number", make_file(R"({"w":3})", ""), {"bad.st", "'w'", "expected an object"}});
  c.push_back({"dtype F16", make_file("{" + entry("w", "F16", "[2]", 0, 4) + "}", "abcd"),
               {"bad.st", "'w'", "F16", "not supported"}});
  c.push_back({"dtype I64", make_file("{" + entry("w", "I64", "[1]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "I64", "not supported"}});
  c.push_back({"dtype BF16", make_file("{" + entry("w", "BF16", "[2]", 0, 4) + "}", "abcd"),
               {"bad.st", "'w'", "BF16"}});
  c.push_back({"unknown dtype", make_file("{" + entry("w", "F33", "[2]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "unknown dtype", "F33"}});
  c.push_back({"dtype not a string", make_file(R"({"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", d8),
               {"bad.st", "'w'", "dtype must be a string"}});
  c.push_back({"missing dtype", make_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", d8),
               {"bad.st", "'w'", "missing \"dtype\""}});
  c.push_back({"missing shape", make_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", d8),
               {"bad.st", "'w'", "missing \"shape\""}});
  c.push_back({"missing offsets", make_file(R"({"w":{"dtype":"F32","shape":[2]}})", d8),
               {"bad.st", "'w'", "missing \"data_offsets\""}});
  c.push_back({"unknown entry key",
               make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]}})", d8),
               {"bad.st", "'w'", "unexpected key 'stride'"}});
  c.push_back({"shape/offset mismatch", make_file("{" + entry("w", "F32", "[3]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "needs 12 bytes", "hold 8"}});
  c.push_back({"negative dimension", make_file("{" + entry("w", "F32", "[-2]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "negative"}});
  c.push_back({"fractional dimension", make_file("{" + entry("w", "F32", "[2.0]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "non-negative integer"}});
  c.push_back({"string dimension", make_file("{" + entry("w", "F32", "[\"2\"]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "non-negative integer"}});
  c.push_back({"shape not an array", make_file("{" + entry("w", "F32", "2", 0, 8) + "}", d8),
               {"bad.st", "'w'", "shape must be an array"}});
  c.push_back({"huge dimensions", make_file("{" + entry("w", "F32", "[4294967296,4294967296]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "limit"}});
  c.push_back({"dimension beyond u64", make_file("{" + entry("w", "F32", "[18446744073709551616]", 0, 8) + "}", d8),
               {"bad.st", "'w'", "non-negative integer"}});
  c.push_back({"negative offset", make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", d8),
               {"bad.st", "'w'", "negative"}});
  c.push_back({"three offsets", make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", d8),
               {"bad.st", "'w'", "[begin, end]"}});
  c.push_back({"end before begin", make_file("{" + entry("w", "F32", "[0]", 8, 0) + "}", d8),
               {"bad.st", "'w'", "end before they begin"}});
  c.push_back({"out of bounds", make_file("{" + entry("w", "F32", "[2]", 0, 8) + "}", f32_bytes({1.0f})),
               {"bad.st", "'w'", "past the end of the data section (4 bytes)"}});
  c.push_back({"out of bounds, huge", make_file("{" + entry("w", "F32", "[1]", 18446744073709551611u,
                                                              18446744073709551615u) + "}", d8),
               {"bad.st", "'w'", "past the end"}});
  c.push_back({"overlapping",
               make_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", d12),
               {"bad.st", "'b'", "overlap", "'a'"}});
  c.push_back({"same offsets twice",
               make_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 0, 4) + "}",
                         f32_bytes({1.0f})),
               {"bad.st", "'b'", "overlap", "'a'"}});
  c.push_back({"gap",
               make_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}", d12),
               {"bad.st", "gap of 4 bytes", "'b'"}});
  c.push_back({"gap at the start", make_file("{" + entry("a", "F32", "[1]", 4, 8) + "}", d8),
               {"bad.st", "gap of 4 bytes", "'a'"}});
  c.push_back({"trailing bytes", make_file("{" + entry("a", "F32", "[2]", 0, 8) + "}", d12),
               {"bad.st", "12 bytes", "cover 8", "4 trailing bytes"}});
  c.push_back({"data but no tensors", make_file("{}", d8), {"bad.st", "8 trailing bytes"}});
  c.push_back({"duplicate tensor",
               make_file("{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("a", "F32", "[1]", 4, 8) + "}", d8),
               {"bad.st", "key \"a\" twice"}});
  c.push_back({"duplicate key in entry",
               make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
               {"bad.st", "key \"dtype\" twice"}});
  c.push_back({"metadata not an object", make_file(R"({"__metadata__":[1]})", ""),
               {"bad.st", "__metadata__", "must be an object"}});
  c.push_back({"metadata value not a string", make_file(R"({"__metadata__":{"epochs":3}})", ""),
               {"bad.st", "__metadata__", "\"epochs\"", "must be a string"}});
  c.push_back({"deep nesting", make_file("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", ""),
               {"bad.st", "nests deeper"}});
  return c;
}

TEST(SafetensorsCorrupt, TableOfBadFiles) {
  TempDir dir;
  for (const CorruptCase& c : corrupt_cases()) {
    SCOPED_TRACE(c.label);
    expect_error([&] { parse_safetensors(c.bytes, "bad.st"); }, c.pieces);
    // The file reader refuses the same files (its own length checks run before it reads the header).
    const std::string path = dir.file("bad.st");
    write_raw(path, c.bytes);
    expect_error([&] { read_safetensors(path); }, c.pieces);
  }
}

TEST(SafetensorsCorrupt, ValidVariantsOfTheTableAreAccepted) {
  // Guards the table: the same constructions with consistent numbers parse, so each refusal above is due to the
  // one defect it names.
  const std::string d12 = f32_bytes({1.0f, 2.0f, 3.0f});
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  const SafetensorsFile f = parse_safetensors(make_file(h, d12));
  EXPECT_EQ(f.tensors.at("b")[0], 3.0f);
  EXPECT_NO_THROW(parse_safetensors(make_file(R"({"__metadata__":{"epochs":"3"}})", "")));
}

TEST(SafetensorsLimitsTest, HeaderAndElementLimits) {
  const std::string good = small_valid_file();
  SafetensorsLimits small_header;
  small_header.max_header_bytes = 16;
  expect_error([&] { parse_safetensors(good, "lim.st", small_header); }, {"lim.st", "exceeds the limit of 16"});

  // "a" holds 4 elements and "s" one: 5 in all.
  SafetensorsLimits five;
  five.max_total_elements = 5;
  EXPECT_NO_THROW(parse_safetensors(good, "lim.st", five));
  SafetensorsLimits four;
  four.max_total_elements = 4;
  expect_error([&] { parse_safetensors(good, "lim.st", four); }, {"lim.st", "limit of 4"});
}

TEST(SafetensorsLimitsTest, RefusalDoesNotReadTheData) {
  // A header claiming 2^34 floats in a tiny file: refused from the header alone, long before any allocation.
  const std::string header = R"({"w":{"dtype":"F32","shape":[17179869184],"data_offsets":[0,68719476736]}})";
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { parse_safetensors(make_file(header, "abcd"), "big.st"); }, {"big.st", "'w'"});
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
}

}  // namespace
}  // namespace convkit
