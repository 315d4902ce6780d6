// Image I/O (include/convkit/image.hpp). The PNG and JPEG inputs of every kind are written here in the test with
// libpng / libjpeg's raw interfaces from known sample values (low bit depths packed by hand, 16-bit big-endian,
// palettes, tRNS, Adam7 interlacing, progressive and CMYK JPEG), so the expected tensors come from the samples and
// the format's definition, not from convkit. Hostile inputs: every truncation, every flipped byte, headers
// claiming huge images (with almost no data behind them), files that are not images.
#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <jpeglib.h>

#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"

namespace convkit {
namespace {

namespace fs = std::filesystem;

template <typename Fn>
std::string expect_error(Fn&& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
    ADD_FAILURE() << "expected convkit::Error, nothing was thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : pieces) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return msg;
  }
  return {};
}

fs::path scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("convkit_test_image_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---- a raw PNG writer (libpng, no transformations: the rows hold the file's own sample format) ---------------

struct RawPng {
  int height = 0, width = 0, bit_depth = 8, color_type = PNG_COLOR_TYPE_GRAY;
  bool interlace = false;
  std::vector<unsigned> samples;              // (H, W, samples per pixel in the file), raw values (palette indices)
  std::vector<png_color> palette;             // PLTE
  std::vector<unsigned char> palette_alpha;   // tRNS for a palette
  bool has_key = false;                       // tRNS colour key for grey / RGB
  png_color_16 key{};
};

int file_channels(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE:
      return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return 2;
    case PNG_COLOR_TYPE_RGB:
      return 3;
    default:
      return 4;
  }
}

// Packs one row: bit depths below 8 MSB first, 16-bit big-endian (the PNG specification's row format).
std::vector<unsigned char> pack_row(const RawPng& p, int y) {
  const int spp = file_channels(p.color_type);
  const int n = p.width * spp;
  std::vector<unsigned char> row;
  if (p.bit_depth < 8) {
    row.assign((n * p.bit_depth + 7) / 8, 0);
    for (int i = 0; i < n; ++i) {
      const int bit = i * p.bit_depth;
      row[bit / 8] |= static_cast<unsigned char>(p.samples[y * n + i] << (8 - p.bit_depth - bit % 8));
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const unsigned v = p.samples[y * n + i];
      if (p.bit_depth == 16) row.push_back(static_cast<unsigned char>(v >> 8));
      row.push_back(static_cast<unsigned char>(v & 0xff));
    }
  }
  return row;
}

struct PngWriteState {
  std::string* out;
};

void test_png_write(png_structp png, png_bytep data, size_t n) {
  static_cast<PngWriteState*>(png_get_io_ptr(png))->out->append(reinterpret_cast<char*>(data), n);
}
void test_png_flush(png_structp) {}

bool raw_png_phase(png_structp png, png_infop info, const RawPng* p, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, p->width, p->height, p->bit_depth, p->color_type,
               p->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!p->palette.empty())
    png_set_PLTE(png, info, const_cast<png_colorp>(p->palette.data()), static_cast<int>(p->palette.size()));
  if (!p->palette_alpha.empty())
    png_set_tRNS(png, info, const_cast<png_bytep>(p->palette_alpha.data()), static_cast<int>(p->palette_alpha.size()),
                 nullptr);
  if (p->has_key) png_set_tRNS(png, info, nullptr, 0, const_cast<png_color_16p>(&p->key));
  png_write_info(png, info);
  if (p->interlace) png_set_interlace_handling(png);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

std::string write_raw_png(const RawPng& p) {
  std::vector<std::vector<unsigned char>> packed;
  std::vector<png_bytep> rows;
  for (int y = 0; y < p.height; ++y) packed.push_back(pack_row(p, y));
  for (auto& r : packed) rows.push_back(r.data());
  std::string out;
  PngWriteState st{&out};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &st, test_png_write, test_png_flush);
  const bool ok = raw_png_phase(png, info, &p, rows.data());
  png_destroy_write_struct(&png, &info);
  EXPECT_TRUE(ok) << "the test's PNG writer failed";
  return out;
}

// PNG chunk bytes: big-endian length, type, data, CRC-32 of type + data (zlib's crc32 is the PNG CRC).
std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string chunk(const std::string& type, const std::string& data) {
  const std::string td = type + data;
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()));
  return be32(static_cast<uint32_t>(data.size())) + td + be32(static_cast<uint32_t>(crc));
}
const std::string kPngSignature("\x89PNG\r\n\x1a\n", 8);

// A PNG whose IHDR claims height x width (8-bit, given colour type) followed by a 100-byte IDAT: far too little
// image data, so only a header-time check can produce the limit error.
std::string png_claiming(uint32_t height, uint32_t width, int color_type) {
  const std::string ihdr = be32(width) + be32(height) + std::string{8, static_cast<char>(color_type), 0, 0, 0};
  std::string raw(100, '\0');
  std::string z(compressBound(raw.size()), '\0');
  uLongf zlen = z.size();
  compress(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()), raw.size());
  z.resize(zlen);
  const std::string plte = color_type == PNG_COLOR_TYPE_PALETTE ? chunk("PLTE", std::string(6, '\x40')) : "";
  return kPngSignature + chunk("IHDR", ihdr) + plte + chunk("IDAT", z) + chunk("IEND", "");
}

// ---- a raw JPEG writer (libjpeg) ------------------------------------------------------------------------------

struct TestJpegErr {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
};
void test_jpeg_error(j_common_ptr cinfo) { std::longjmp(reinterpret_cast<TestJpegErr*>(cinfo->err)->jump, 1); }

struct RawJpegJob {
  jpeg_compress_struct cinfo;
  TestJpegErr err;
  unsigned char* buf;
  unsigned long size;
};

bool raw_jpeg_phase(RawJpegJob* j, const unsigned char* px, int h, int w, int c, J_COLOR_SPACE cs, int quality,
                    bool progressive, const std::vector<jpeg_scan_info>* scans) {
  if (setjmp(j->err.jump)) return false;
  jpeg_create_compress(&j->cinfo);
  jpeg_mem_dest(&j->cinfo, &j->buf, &j->size);
  j->cinfo.image_width = w;
  j->cinfo.image_height = h;
  j->cinfo.input_components = c;
  j->cinfo.in_color_space = cs;
  jpeg_set_defaults(&j->cinfo);
  jpeg_set_quality(&j->cinfo, quality, TRUE);
  if (progressive) jpeg_simple_progression(&j->cinfo);
  if (scans != nullptr) {
    j->cinfo.scan_info = scans->data();
    j->cinfo.num_scans = static_cast<int>(scans->size());
  }
  jpeg_start_compress(&j->cinfo, TRUE);
  while (j->cinfo.next_scanline < static_cast<JDIMENSION>(h)) {
    JSAMPROW row = const_cast<unsigned char*>(px + j->cinfo.next_scanline * w * c);
    jpeg_write_scanlines(&j->cinfo, &row, 1);
  }
  jpeg_finish_compress(&j->cinfo);
  return true;
}

std::string write_raw_jpeg(const std::vector<unsigned char>& px /* (h, w, c) */, int h, int w, int c,
                           J_COLOR_SPACE cs, int quality = 90, bool progressive = false,
                           const std::vector<jpeg_scan_info>* scans = nullptr) {
  RawJpegJob j{};
  j.cinfo.err = jpeg_std_error(&j.err.mgr);
  j.err.mgr.error_exit = test_jpeg_error;
  const bool ok = raw_jpeg_phase(&j, px.data(), h, w, c, cs, quality, progressive, scans);
  std::string out = ok ? std::string(reinterpret_cast<char*>(j.buf), j.size) : std::string();
  jpeg_destroy_compress(&j.cinfo);
  std::free(j.buf);
  EXPECT_TRUE(ok) << "the test's JPEG writer failed";
  return out;
}

// A smooth colour picture (JPEG compresses it well, so round-trip errors stay small), samples 0..255.
std::vector<unsigned char> smooth_pixels(int h, int w, int c) {
  std::vector<unsigned char> px(static_cast<std::size_t>(h) * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        px[(y * w + x) * c + k] =
            static_cast<unsigned char>(std::lround(127.5 + 100.0 * std::sin(0.21 * x + 0.13 * y + 1.7 * k)));
  return px;
}

Tensor tensor_from_u8(const std::vector<unsigned char>& px, int h, int w, int c) {
  Tensor t({h, w, c});
  for (std::size_t i = 0; i < px.size(); ++i) t[static_cast<int64_t>(i)] = px[i] / 255.0f;
  return t;
}

Tensor random_u8_image(int h, int w, int c, unsigned seed) {
  std::mt19937 rng(seed);
  Tensor t({h, w, c});
  for (int64_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(rng() % 256) / 255.0f;
  return t;
}

void expect_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int64_t bad = 0;
  for (int64_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && bad++ < 5) ADD_FAILURE() << what << ": value " << i << " is " << got[i] << ", want "
                                                      << want[i];
  EXPECT_EQ(bad, 0) << what;
}

// ---- format detection and non-images ---------------------------------------------------------------------------

TEST(ImageFormat, DetectedByMagicBytesNotName) {
  const std::string png = encode_png(random_u8_image(3, 4, 3, 1));
  const std::string jpg = encode_jpeg(random_u8_image(3, 4, 3, 1));
  EXPECT_EQ(detect_image_format(png), ImageFormat::png);
  EXPECT_EQ(detect_image_format(jpg), ImageFormat::jpeg);
  EXPECT_EQ(detect_image_format("hello"), ImageFormat::unknown);
  EXPECT_EQ(detect_image_format(png.substr(0, 7)), ImageFormat::unknown);
  const fs::path dir = scratch_dir();
  write_bytes(dir / "really_png.jpg", png);
  write_bytes(dir / "really_jpeg.png", jpg);
  EXPECT_EQ(read_image((dir / "really_png.jpg").string()).shape(), (Shape{3, 4, 3}));
  EXPECT_EQ(read_image((dir / "really_jpeg.png").string()).shape(), (Shape{3, 4, 3}));
  fs::remove_all(dir);
}

TEST(ImageFormat, NotAnImageIsAClearError) {
  const fs::path dir = scratch_dir();
  write_bytes(dir / "notes.png", "hello, this is text\n");
  expect_error([&] { read_image((dir / "notes.png").string()); },
               {"notes.png", "not a PNG or JPEG", "68 65 6c 6c 6f"});
  write_bytes(dir / "empty.png", "");
  expect_error([&] { read_image((dir / "empty.png").string()); }, {"empty.png", "empty"});
  write_bytes(dir / "anim.png", "GIF89a\x01\x00\x01\x00");
  expect_error([&] { read_image((dir / "anim.png").string()); }, {"anim.png", "GIF", "only PNG and JPEG"});
  expect_error([&] { read_image((dir / "missing.png").string()); }, {"missing.png"});
  expect_error([&] { read_image(dir.string()); }, {"directory"});
  fs::remove_all(dir);
}

// ---- PNG: every colour type and depth ---------------------------------------------------------------------------

// Reads `p` back through convkit and compares with `want(y, x, channel)`.
template <typename Want>
void check_png(const RawPng& p, int want_channels, Want want, const std::string& what) {
  const Tensor t = decode_image(write_raw_png(p), what);
  ASSERT_EQ(t.shape(), (Shape{p.height, p.width, want_channels})) << what;
  int bad = 0;
  for (int y = 0; y < p.height; ++y)
    for (int x = 0; x < p.width; ++x)
      for (int c = 0; c < want_channels; ++c) {
        const float got = t[(static_cast<int64_t>(y) * p.width + x) * want_channels + c];
        const float w = want(y, x, c);
        if (got != w && bad++ < 5) ADD_FAILURE() << what << " at (" << y << ", " << x << ", " << c << "): " << got
                                                 << " want " << w;
      }
  EXPECT_EQ(bad, 0) << what;
}

RawPng raw(int h, int w, int depth, int color_type, bool interlace, unsigned seed) {
  RawPng p;
  p.height = h;
  p.width = w;
  p.bit_depth = depth;
  p.color_type = color_type;
  p.interlace = interlace;
  std::mt19937 rng(seed);
  const unsigned max = (1u << depth) - 1;
  p.samples.resize(static_cast<std::size_t>(h) * w * file_channels(color_type));
  for (auto& s : p.samples) s = rng() % (max + 1);
  // Make sure the extremes are present.
  p.samples[0] = 0;
  p.samples[1] = max;
  return p;
}

// 13 x 11 makes every Adam7 pass non-empty and rows of sub-byte depths end mid-byte.
TEST(ImagePng, GreyAtEveryBitDepthInterlacedOrNot) {
  for (int depth : {1, 2, 4, 8, 16})
    for (bool interlace : {false, true}) {
      const RawPng p = raw(13, 11, depth, PNG_COLOR_TYPE_GRAY, interlace, 10 + depth);
      const float max = static_cast<float>((1u << depth) - 1);
      check_png(p, 1, [&](int y, int x, int) { return static_cast<float>(p.samples[y * p.width + x]) / max; },
                "grey " + std::to_string(depth) + "-bit" + (interlace ? " interlaced" : ""));
    }
}

TEST(ImagePng, GreyAlphaRgbRgbaAt8And16Bits) {
  for (int ct : {PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA})
    for (int depth : {8, 16})
      for (bool interlace : {false, true}) {
        const RawPng p = raw(13, 11, depth, ct, interlace, 100 + ct * 7 + depth);
        const int c = file_channels(ct);
        const float max = depth == 8 ? 255.0f : 65535.0f;
        auto want = [&](int y, int x, int k) { return static_cast<float>(p.samples[(y * p.width + x) * c + k]) / max; };
        check_png(p, c, want,
                  "colour type " + std::to_string(ct) + " " + std::to_string(depth) + "-bit" +
                      (interlace ? " interlaced" : ""));
      }
}

TEST(ImagePng, SixteenBitKeepsAllSixteenBits) {
  // Samples that differ only in the low byte must read differently (a reader that strips to 8 bits would not).
  RawPng p;
  p.height = 1;
  p.width = 4;
  p.bit_depth = 16;
  p.color_type = PNG_COLOR_TYPE_GRAY;
  p.samples = {0x1200, 0x1201, 0x12ff, 0xffff};
  const Tensor t = decode_image(write_raw_png(p));
  EXPECT_EQ(t[0], 0x1200 / 65535.0f);
  EXPECT_EQ(t[1], 0x1201 / 65535.0f);
  EXPECT_NE(t[0], t[1]);
  EXPECT_EQ(t[2], 0x12ff / 65535.0f);
  EXPECT_EQ(t[3], 1.0f);
}

TEST(ImagePng, PaletteBecomesRgbOrRgbaWithTransparency) {
  std::vector<png_color> pal;
  for (int i = 0; i < 16; ++i)
    pal.push_back({static_cast<png_byte>(i * 16), static_cast<png_byte>(255 - i * 3), static_cast<png_byte>(i * i)});
  for (int depth : {2, 4, 8})
    for (bool interlace : {false, true}) {
      RawPng p = raw(13, 11, depth, PNG_COLOR_TYPE_PALETTE, interlace, 200 + depth);
      const unsigned entries = std::min<unsigned>(1u << depth, 16);
      for (auto& s : p.samples) s %= entries;
      p.palette.assign(pal.begin(), pal.begin() + entries);
      const std::string what = "palette " + std::to_string(depth) + "-bit" + (interlace ? " interlaced" : "");
      auto rgb = [&](int y, int x, int k) {
        const png_color& e = p.palette[p.samples[y * p.width + x]];
        return static_cast<float>(k == 0 ? e.red : k == 1 ? e.green : e.blue) / 255.0f;
      };
      check_png(p, 3, rgb, what);
      // tRNS shorter than the palette: the entries past it are opaque.
      p.palette_alpha = {0, 128};
      check_png(p, 4, [&](int y, int x, int k) {
        if (k < 3) return rgb(y, x, k);
        const unsigned idx = p.samples[y * p.width + x];
        return idx < p.palette_alpha.size() ? p.palette_alpha[idx] / 255.0f : 1.0f;
      }, what + " with tRNS");
    }
}

TEST(ImagePng, ColourKeyTransparencyAddsAlpha) {
  RawPng g = raw(5, 7, 8, PNG_COLOR_TYPE_GRAY, false, 31);
  g.samples[3] = g.samples[9] = 77;
  g.has_key = true;
  g.key.gray = 77;
  check_png(g, 2, [&](int y, int x, int k) {
    const unsigned v = g.samples[y * g.width + x];
    return k == 0 ? v / 255.0f : (v == 77 ? 0.0f : 1.0f);
  }, "grey with tRNS key");

  RawPng c = raw(5, 7, 8, PNG_COLOR_TYPE_RGB, false, 32);
  for (int k = 0; k < 3; ++k) c.samples[12 + k] = 10 + k;
  c.has_key = true;
  c.key.red = 10;
  c.key.green = 11;
  c.key.blue = 12;
  check_png(c, 4, [&](int y, int x, int k) {
    const unsigned* px = &c.samples[(y * c.width + x) * 3];
    if (k < 3) return px[k] / 255.0f;
    return px[0] == 10 && px[1] == 11 && px[2] == 12 ? 0.0f : 1.0f;
  }, "RGB with tRNS key");
}

// ---- PNG writing ------------------------------------------------------------------------------------------------

TEST(ImagePng, RoundTripIsExactFor8BitGreyGreyAlphaRgbRgba) {
  for (int c = 1; c <= 4; ++c) {
    const Tensor img = random_u8_image(9, 14, c, 40 + c);
    const std::string png = encode_png(img);
    // IHDR at a fixed place: bit depth at byte 24, colour type at byte 25.
    EXPECT_EQ(static_cast<int>(png[24]), 8);
    const int want_type[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                             PNG_COLOR_TYPE_RGB_ALPHA};
    EXPECT_EQ(static_cast<int>(png[25]), want_type[c]);
    expect_equal(decode_image(png), img, "8-bit, " + std::to_string(c) + " channels");
  }
}

TEST(ImagePng, RoundTripIsExactFor16Bit) {
  std::mt19937 rng(7);
  Tensor img({6, 5, 3});
  for (int64_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>(rng() % 65536) / 65535.0f;
  const std::string png = encode_png(img, 16);
  EXPECT_EQ(static_cast<int>(png[24]), 16);
  expect_equal(decode_image(png), img, "16-bit RGB");
}

TEST(ImagePng, ClampsAndRoundsToNearest) {
  const float nan = std::nanf("");
  // 127.5 / 255 rounds up to 128; 0.49 / 255 down to 0; 0.51 / 255 up to 1.
  const Tensor img({1, 7, 1}, {-0.5f, 1.7f, nan, 127.5f / 255.0f, 0.49f / 255.0f, 0.51f / 255.0f, 1.0f});
  const Tensor back = decode_image(encode_png(img));
  const float want[] = {0.0f, 1.0f, 0.0f, 128 / 255.0f, 0.0f, 1 / 255.0f, 1.0f};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(back[i], want[i]) << "value " << i;
}

TEST(ImagePng, WriteIsAtomicAndErrorsLeaveTheOldFile) {
  const fs::path dir = scratch_dir();
  const std::string path = (dir / "out.png").string();
  const Tensor a = random_u8_image(4, 4, 3, 1), b = random_u8_image(4, 4, 1, 2);
  write_png(path, a);
  expect_equal(read_image(path), a, "first write");
  write_png(path, b);
  expect_equal(read_image(path), b, "overwrite");
  // A tensor that cannot be a PNG: the error names the path, and the previous file is intact.
  expect_error([&] { write_png(path, Tensor({4, 4, 5})); }, {"out.png", "channels", "5"});
  expect_equal(read_image(path), b, "after a failed write");
  expect_error([&] { write_png((dir / "no_such_dir" / "x.png").string(), a); }, {"no_such_dir"});
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";
  fs::remove_all(dir);
}

TEST(ImageEncode, RejectsImpossibleTensors) {
  expect_error([] { encode_png(Tensor({4, 4})); }, {"encode_png", "(4, 4)"});
  expect_error([] { encode_png(Tensor({1, 4, 4, 3})); }, {"encode_png", "(1, 4, 4, 3)"});
  expect_error([] { encode_png(Tensor({0, 4, 3})); }, {"encode_png", "empty"});
  expect_error([] { encode_png(Tensor({4, 4, 3}), 12); }, {"bit_depth", "12"});
  expect_error([] { encode_jpeg(Tensor({4, 4, 4})); }, {"encode_jpeg", "4", "drop_alpha"});
  expect_error([] { encode_jpeg(Tensor({4, 4, 2})); }, {"encode_jpeg", "2"});
  expect_error([] { encode_jpeg(Tensor({4, 4, 3}), 0); }, {"quality", "0"});
  expect_error([] { encode_jpeg(Tensor({4, 4, 3}), 101); }, {"quality", "101"});
  expect_error([] { encode_jpeg(Tensor({70000, 1, 1})); }, {"encode_jpeg", "65500"});
}

// ---- JPEG -------------------------------------------------------------------------------------------------------

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}
double mean_abs_diff(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) s += std::fabs(static_cast<double>(a[i]) - b[i]);
  return s / static_cast<double>(a.size());
}

TEST(ImageJpeg, RoundTripWithinTolerance) {
  for (int c : {1, 3}) {
    const Tensor img = tensor_from_u8(smooth_pixels(40, 56, c), 40, 56, c);
    const Tensor back95 = decode_image(encode_jpeg(img, 95));
    ASSERT_EQ(back95.shape(), img.shape());
    // Measured with libjpeg-turbo 2.1: quality 95 stays within a few levels on this smooth picture (4:2:0 chroma
    // costs colour a little more), quality 20 drifts visibly.
    EXPECT_LT(max_abs_diff(back95, img), c == 1 ? 0.03 : 0.08) << c << " channels";
    EXPECT_LT(mean_abs_diff(back95, img), 0.01) << c << " channels";
    const Tensor back20 = decode_image(encode_jpeg(img, 20));
    EXPECT_GT(mean_abs_diff(back20, img), mean_abs_diff(back95, img)) << "quality must matter";
  }
}

TEST(ImageJpeg, GreyAndColourFromLibjpeg) {
  const std::vector<unsigned char> grey = smooth_pixels(16, 24, 1), rgb = smooth_pixels(16, 24, 3);
  const Tensor g = decode_image(write_raw_jpeg(grey, 16, 24, 1, JCS_GRAYSCALE, 100));
  ASSERT_EQ(g.shape(), (Shape{16, 24, 1}));
  EXPECT_LT(max_abs_diff(g, tensor_from_u8(grey, 16, 24, 1)), 3.0 / 255);
  const Tensor c = decode_image(write_raw_jpeg(rgb, 16, 24, 3, JCS_RGB, 100));
  ASSERT_EQ(c.shape(), (Shape{16, 24, 3}));
  EXPECT_LT(mean_abs_diff(c, tensor_from_u8(rgb, 16, 24, 3)), 0.01);
}

TEST(ImageJpeg, ProgressiveDecodesToTheSamePixelsAsBaseline) {
  // Progressive coding is a lossless reordering of the same quantised coefficients.
  const std::vector<unsigned char> rgb = smooth_pixels(33, 47, 3);
  const std::string base = write_raw_jpeg(rgb, 33, 47, 3, JCS_RGB, 85, false);
  const std::string prog = write_raw_jpeg(rgb, 33, 47, 3, JCS_RGB, 85, true);
  ASSERT_NE(base, prog);
  expect_equal(decode_image(prog, "progressive"), decode_image(base, "baseline"), "progressive vs baseline");
}

TEST(ImageJpeg, CmykIsRejectedClearly) {
  const std::vector<unsigned char> cmyk = smooth_pixels(8, 8, 4);
  const std::string jpg = write_raw_jpeg(cmyk, 8, 8, 4, JCS_CMYK);
  expect_error([&] { decode_image(jpg, "print.jpg"); }, {"print.jpg", "CMYK", "not supported"});
}

// ---- hostile files ---------------------------------------------------------------------------------------------

TEST(ImageHostile, EveryTruncationOfAPngIsAnError) {
  for (bool interlace : {false, true}) {
    RawPng p = raw(6, 5, 8, PNG_COLOR_TYPE_RGB_ALPHA, interlace, 3);
    const std::string png = write_raw_png(p);
    ASSERT_NO_THROW(decode_image(png));
    for (std::size_t n = 0; n < png.size(); ++n)
      expect_error([&] { decode_image(png.substr(0, n), "cut.png"); }, {"cut.png"});
  }
}

TEST(ImageHostile, EveryTruncationOfAJpegIsAnError) {
  for (bool progressive : {false, true}) {
    const std::string jpg = write_raw_jpeg(smooth_pixels(16, 16, 3), 16, 16, 3, JCS_RGB, 90, progressive);
    ASSERT_NO_THROW(decode_image(jpg));
    int premature = 0;
    for (std::size_t n = 0; n < jpg.size(); ++n) {
      const std::string msg = expect_error([&] { decode_image(jpg.substr(0, n), "cut.jpg"); }, {"cut.jpg"});
      premature += msg.find("Premature end of JPEG file") != std::string::npos;
    }
    // Cuts inside the scan data are the ones libjpeg merely warns about: they must be among the errors.
    EXPECT_GT(premature, 0);
  }
}

TEST(ImageHostile, EveryFlippedByteOfAPngIsAnError) {
  // Each chunk carries a CRC over its type and data, which catches any single corrupted byte; a corrupted length
  // breaks the chunk structure.
  const std::string png = write_raw_png(raw(4, 5, 8, PNG_COLOR_TYPE_RGB, false, 9));
  for (std::size_t i = 0; i < png.size(); ++i) {
    std::string bad = png;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    expect_error([&] { decode_image(bad, "flipped.png"); }, {"flipped.png"});
  }
}

TEST(ImageHostile, CorruptJpegNeverCrashes) {
  // JPEG has no checksum: a changed coefficient bit can decode to a different but valid picture. What must hold:
  // every outcome is a convkit::Error or an image with values in [0, 1] (the test fails on any other exception;
  // a crash or exit() ends the test binary).
  const std::string jpg = write_raw_jpeg(smooth_pixels(16, 16, 3), 16, 16, 3, JCS_RGB, 90, true);
  int errors = 0, images = 0;
  for (std::size_t i = 0; i < jpg.size(); ++i)
    for (unsigned char mask : {0x01, 0xff}) {
      std::string bad = jpg;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      try {
        const Tensor t = decode_image(bad, "flipped.jpg", ImageLimits{.max_values = 1 << 22, .max_side = 4096});
        for (float v : t.values()) ASSERT_TRUE(v >= 0.0f && v <= 1.0f);
        ++images;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("flipped.jpg"), std::string::npos);
        ++errors;
      }
    }
  EXPECT_GT(errors, 0);
  EXPECT_GT(images, 0);
  std::printf("corrupt JPEG: %d errors, %d decodable variants\n", errors, images);
}

TEST(ImageHostile, StructuralJpegCorruptionIsAnError) {
  const std::string jpg = write_raw_jpeg(smooth_pixels(16, 16, 3), 16, 16, 3, JCS_RGB, 90);
  const std::size_t sof = jpg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  std::string zero_height = jpg;
  zero_height[sof + 5] = zero_height[sof + 6] = 0;  // FF C0, length (2), precision (1), height (2), width (2)
  expect_error([&] { decode_image(zero_height, "z.jpg"); }, {"z.jpg", "invalid JPEG"});
  std::string no_scan = jpg.substr(0, jpg.find("\xff\xda")) + "\xff\xd9";  // headers, then EOI without any scan
  expect_error([&] { decode_image(no_scan, "n.jpg"); }, {"n.jpg", "invalid JPEG"});
  // Garbage in place of the entropy-coded data: libjpeg reports a corrupt-data warning (bad Huffman code or
  // premature end of segment), which convkit turns into an error.
  const std::size_t sos = jpg.find("\xff\xda");
  const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(jpg[i])); };
  const std::size_t data = sos + 2 + ((byte(sos + 2) << 8) | byte(sos + 3));  // after the SOS header
  std::string garbage = jpg;
  for (std::size_t i = data; i + 2 < jpg.size(); ++i) garbage[i] = (i % 2) ? '\xff' : '\x00';
  expect_error([&] { decode_image(garbage, "g.jpg"); }, {"g.jpg", "invalid JPEG"});
}

TEST(ImageHostile, LibjpegWarningsAboutCorruptDataAreErrors) {
  // Junk between two markers: libjpeg warns "Corrupt JPEG data: N extraneous bytes before marker" and carries on.
  const std::string jpg = write_raw_jpeg(smooth_pixels(16, 16, 3), 16, 16, 3, JCS_RGB, 90);
  const std::size_t dqt = jpg.find("\xff\xdb");
  ASSERT_NE(dqt, std::string::npos);
  const std::string junk = jpg.substr(0, dqt) + "junk" + jpg.substr(dqt);
  expect_error([&] { decode_image(junk, "junk.jpg"); }, {"junk.jpg", "extraneous bytes"});
}

// A progressive scan script with one scan per (component, coefficient, bit level): a valid file whose scan count
// is chosen by the test. DC of all components first, then each AC coefficient of each component from bit `al`
// down to bit 0.
std::vector<jpeg_scan_info> many_scans(int al) {
  std::vector<jpeg_scan_info> scans;
  scans.push_back({3, {0, 1, 2, 0}, 0, 0, 0, 0});
  for (int c = 0; c < 3; ++c)
    for (int k = 1; k < 64; ++k) {
      scans.push_back({1, {c, 0, 0, 0}, k, k, 0, al});
      for (int bit = al; bit > 0; --bit) scans.push_back({1, {c, 0, 0, 0}, k, k, bit, bit - 1});
    }
  return scans;
}

TEST(ImageHostile, ProgressiveJpegWithTooManyScansIsRefused) {
  const std::vector<unsigned char> px = smooth_pixels(8, 8, 3);
  const std::string baseline = write_raw_jpeg(px, 8, 8, 3, JCS_RGB, 90);
  const std::vector<jpeg_scan_info> few = many_scans(0), many = many_scans(5);
  ASSERT_EQ(few.size(), 190u);
  ASSERT_EQ(many.size(), 1135u);
  // 190 scans: accepted, and a lossless reordering of the baseline file's coefficients.
  expect_equal(decode_image(write_raw_jpeg(px, 8, 8, 3, JCS_RGB, 90, true, &few), "190 scans"),
               decode_image(baseline), "190-scan progressive vs baseline");
  expect_error([&] { decode_image(write_raw_jpeg(px, 8, 8, 3, JCS_RGB, 90, true, &many), "slow.jpg"); },
               {"slow.jpg", "more than 1000 scans"});
}

TEST(ImageHostile, HugePngHeaderIsRefusedBeforeDecoding) {
  // 100000 x 100000 RGB would be 120 GB of float: the side limit refuses it from IHDR alone (the file holds only
  // 100 bytes of image data, so decoding first would fail differently).
  const auto start = std::chrono::steady_clock::now();
  expect_error([] { decode_image(png_claiming(100000, 100000, PNG_COLOR_TYPE_RGB), "huge.png"); },
               {"huge.png", "100000 x 100000", "max_side = 65535"});
  // Sides within max_side, too many values: 20000 x 20000 x 3 = 1.2e9 > 2^28.
  expect_error([] { decode_image(png_claiming(20000, 20000, PNG_COLOR_TYPE_RGB), "big.png"); },
               {"big.png", "20000 x 20000 x 3 = 1200000000", "max_values = 268435456"});
  // A palette counts as 3 channels after expansion.
  expect_error([] { decode_image(png_claiming(10000, 10000, PNG_COLOR_TYPE_PALETTE), "pal.png",
                                 ImageLimits{.max_values = 299999999}); },
               {"pal.png", "x 3 =", "max_values = 299999999"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0);
}

TEST(ImageHostile, HugeJpegHeaderIsRefusedBeforeDecoding) {
  std::string jpg = write_raw_jpeg(smooth_pixels(8, 8, 3), 8, 8, 3, JCS_RGB);
  const std::size_t sof = jpg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  const char dims[] = {'\xea', '\x60', '\xea', '\x60'};  // 60000 x 60000
  jpg.replace(sof + 5, 4, dims, 4);
  expect_error([&] { decode_image(jpg, "huge.jpg"); }, {"huge.jpg", "60000 x 60000 x 3", "max_values"});
  expect_error([&] { decode_image(jpg, "huge.jpg", ImageLimits{.max_side = 1000}); },
               {"huge.jpg", "60000 x 60000", "max_side = 1000"});
}

TEST(ImageHostile, LimitsAreExactBounds) {
  const std::string png = encode_png(random_u8_image(64, 48, 3, 5));
  const std::string jpg = encode_jpeg(random_u8_image(64, 48, 3, 5));
  for (const std::string* bytes : {&png, &jpg}) {
    EXPECT_NO_THROW(decode_image(*bytes, "ok", ImageLimits{.max_values = 64 * 48 * 3, .max_side = 64}));
    expect_error([&] { decode_image(*bytes, "x", ImageLimits{.max_values = 64 * 48 * 3 - 1}); }, {"max_values"});
    expect_error([&] { decode_image(*bytes, "x", ImageLimits{.max_side = 63}); }, {"max_side = 63"});
  }
  expect_error([&] { decode_image(png, "x", ImageLimits{.max_values = 0}); }, {"ImageLimits", "max_values = 0"});
}

// ---- pixel helpers ----------------------------------------------------------------------------------------------

TEST(ImageHelpers, GrayscaleIsBt601Luma) {
  const Tensor rgb({1, 6, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0.2f, 0.4f, 0.6f});
  const Tensor g = to_grayscale(rgb);
  ASSERT_EQ(g.shape(), (Shape{1, 6, 1}));
  const float want[] = {0.299f, 0.587f, 0.114f, 1.0f, 0.0f, 0.299f * 0.2f + 0.587f * 0.4f + 0.114f * 0.6f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i], want[i], 1e-6f) << i;
  // RGBA: alpha ignored; grey + alpha: the grey channel; batches keep their shape.
  const Tensor rgba({1, 1, 2, 4}, {1, 0, 0, 0.1f, 0, 0, 1, 0.9f});
  const Tensor g4 = to_grayscale(rgba);
  ASSERT_EQ(g4.shape(), (Shape{1, 1, 2, 1}));
  EXPECT_NEAR(g4[0], 0.299f, 1e-6f);
  EXPECT_NEAR(g4[1], 0.114f, 1e-6f);
  const Tensor ga({1, 2, 2}, {0.25f, 0.5f, 0.75f, 1.0f});
  expect_equal(to_grayscale(ga), Tensor({1, 2, 1}, {0.25f, 0.75f}), "grey + alpha");
  expect_error([] { to_grayscale(Tensor({2, 2, 5})); }, {"to_grayscale", "5"});
  expect_error([] { to_grayscale(Tensor({2, 2})); }, {"to_grayscale", "(2, 2)"});
}

TEST(ImageHelpers, DropAndFlattenAlpha) {
  const Tensor rgba({1, 2, 4}, {0.2f, 0.4f, 0.6f, 0.5f, 1.0f, 1.0f, 1.0f, 0.0f});
  expect_equal(drop_alpha(rgba), Tensor({1, 2, 3}, {0.2f, 0.4f, 0.6f, 1.0f, 1.0f, 1.0f}), "drop RGBA");
  const Tensor flat = flatten_alpha(rgba, 0.0f);  // over black
  const float want_black[] = {0.1f, 0.2f, 0.3f, 0.0f, 0.0f, 0.0f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(flat[i], want_black[i], 1e-7f);
  const Tensor ga({1, 1, 2}, {0.2f, 0.25f});
  EXPECT_NEAR(flatten_alpha(ga, 1.0f)[0], 0.2f * 0.25f + 0.75f, 1e-7f);  // over white
  const Tensor rgb = random_u8_image(2, 3, 3, 1);
  expect_equal(drop_alpha(rgb), rgb, "RGB unchanged");
  expect_equal(flatten_alpha(rgb, 0.5f), rgb, "RGB unchanged");
  expect_error([&] { flatten_alpha(rgba, 2.0f); }, {"background", "2"});
}

// Hand-computed (align_corners=False, PyTorch's convention): 2 -> 4 samples the input at
// (i + 0.5) * 0.5 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (past the last pixel: the last pixel).
TEST(ImageResize, HandComputedUpsample) {
  const Tensor in({2, 2, 1}, {0, 1, 2, 3});
  const Tensor out = resize_bilinear(in, 4, 4);
  const Tensor want({4, 4, 1}, {0.0f, 0.25f, 0.75f, 1.0f,     //
                                0.5f, 0.75f, 1.25f, 1.5f,     //
                                1.5f, 1.75f, 2.25f, 2.5f,     //
                                2.0f, 2.25f, 2.75f, 3.0f});
  for (int64_t i = 0; i < 16; ++i) EXPECT_NEAR(out[i], want[i], 1e-6f) << i;
  // Enlarging, antialias gives the same values.
  const Tensor aa = resize_bilinear(in, 4, 4, true);
  for (int64_t i = 0; i < 16; ++i) EXPECT_NEAR(aa[i], want[i], 1e-6f) << i;
}

TEST(ImageResize, HandComputedDownsample) {
  const Tensor row({1, 4, 1}, {0, 1, 2, 3});
  // Plain: 4 -> 2 samples at 0.5 and 2.5, the means of the pairs.
  const Tensor plain = resize_bilinear(row, 1, 2);
  EXPECT_NEAR(plain[0], 0.5f, 1e-6f);
  EXPECT_NEAR(plain[1], 2.5f, 1e-6f);
  // Antialiased: triangle of half-width 2 centred at 1 and 3 (input coordinates): taps 0..2 weigh 3/4, 3/4, 1/4
  // -> (0 * 3 + 1 * 3 + 2 * 1) / 7; taps 1..3 weigh 1/4, 3/4, 3/4 -> (1 + 2 * 3 + 3 * 3) / 7.
  const Tensor aa = resize_bilinear(row, 1, 2, true);
  EXPECT_NEAR(aa[0], 5.0f / 7.0f, 1e-6f);
  EXPECT_NEAR(aa[1], 16.0f / 7.0f, 1e-6f);
  // Shrinking by 4 without antialias reads only 2 of the 4 pixels; the columns dropped do not matter.
  Tensor wide({1, 8, 1}, {0, 0, 5, 5, 0, 0, 5, 5});
  const Tensor skip = resize_bilinear(wide, 1, 2);  // samples at 1.5 and 5.5
  EXPECT_NEAR(skip[0], 2.5f, 1e-6f);
  EXPECT_NEAR(skip[1], 2.5f, 1e-6f);
}

TEST(ImageResize, PropertiesIdentityConstantsBatchesChannels) {
  const Tensor img = random_u8_image(7, 9, 3, 11);
  for (bool aa : {false, true}) {
    expect_equal(resize_bilinear(img, 7, 9, aa), img, "same size is the identity");
    const Tensor flat({5, 6, 2}, 0.375f);
    for (auto [h, w] : {std::pair{1, 1}, {28, 28}, {3, 17}, {11, 2}}) {
      const Tensor r = resize_bilinear(flat, h, w, aa);
      ASSERT_EQ(r.shape(), (Shape{h, w, 2}));
      for (float v : r.values()) EXPECT_NEAR(v, 0.375f, 1e-6f);
    }
  }
  // A batch equals its items resized one by one, and channels do not mix.
  Tensor batch({2, 7, 9, 3});
  const Tensor other = random_u8_image(7, 9, 3, 12);
  std::copy(img.values().begin(), img.values().end(), batch.data());
  std::copy(other.values().begin(), other.values().end(), batch.data() + img.size());
  const Tensor rb = resize_bilinear(batch, 4, 5, true);
  const Tensor r0 = resize_bilinear(img, 4, 5, true), r1 = resize_bilinear(other, 4, 5, true);
  for (int64_t i = 0; i < r0.size(); ++i) {
    EXPECT_EQ(rb[i], r0[i]);
    EXPECT_EQ(rb[r0.size() + i], r1[i]);
  }
  Tensor one_channel({7, 9, 1});
  for (int64_t p = 0; p < 63; ++p) one_channel[p] = img[p * 3 + 1];
  const Tensor r_one = resize_bilinear(one_channel, 4, 5, true);
  for (int64_t p = 0; p < 20; ++p) EXPECT_EQ(r_one[p], r0[p * 3 + 1]);
  expect_error([&] { resize_bilinear(img, 0, 4); }, {"resize_bilinear", "out_height = 0"});
  expect_error([&] { resize_bilinear(Tensor({4, 4}), 2, 2); }, {"resize_bilinear", "(4, 4)"});
}

}  // namespace
}  // namespace convkit
