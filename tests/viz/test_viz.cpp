// tests/viz — the picture library (convkit/viz.hpp): every named kernel on synthetic images whose response is
// worked out by hand in the comments, custom kernels and their errors, the scaling rules, tile grids of the
// documented size, the bitmap font, the history CSV / SVG, and the model visualisation's files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"
#include "convkit/model.hpp"
#include "convkit/pool.hpp"
#include "convkit/random.hpp"
#include "convkit/viz.hpp"
#include "expect_error.hpp"
#include "temp_dir.hpp"

namespace convkit::viz {
namespace {

using test_support::TempDir;

// 8 x 8 grey image: columns 0..3 black, 4..7 white (a vertical edge between columns 3 and 4).
Tensor vertical_edge() {
  Tensor t({8, 8, 1});
  for (int y = 0; y < 8; ++y)
    for (int x = 4; x < 8; ++x) t[y * 8 + x] = 1.0f;
  return t;
}

// The same edge turned: rows 0..3 black, 4..7 white.
Tensor horizontal_edge() {
  Tensor t({8, 8, 1});
  for (int y = 4; y < 8; ++y)
    for (int x = 0; x < 8; ++x) t[y * 8 + x] = 1.0f;
  return t;
}

// Checks that every row of a (H, W, 1) response equals `row` (the edge images are the same on every row).
void expect_rows(const Tensor& r, const std::vector<float>& row, const char* what) {
  ASSERT_EQ(r.rank(), 3) << what;
  ASSERT_EQ(r.dim(1), int64_t(row.size())) << what;
  for (int64_t y = 0; y < r.dim(0); ++y)
    for (int64_t x = 0; x < r.dim(1); ++x)
      EXPECT_NEAR(r[y * r.dim(1) + x], row[std::size_t(x)], 1e-5) << what << " at (" << y << ", " << x << ")";
}

Tensor raw(const char* name, const Tensor& image, const FilterGeometry& g = {}) {
  return filter_response(image, named_filter(name), g);
}

// ---- named kernels: known answers ---------------------------------------------------------------------------

TEST(VizKernels, SobelXOnAVerticalEdge) {
  // Correlation with [-1 0 1; -2 0 2; -1 0 1] on a row-constant image: 4 * (x[j+1] - x[j-1]); reflect padding
  // makes both borders 0 (x[-1] = x[1], x[8] = x[6]).
  expect_rows(raw("sobel-x", vertical_edge()), {0, 0, 0, 4, 4, 0, 0, 0}, "sobel-x");
  // Scaled (signed): 0.5 + 0.5 * r / 4.
  expect_rows(apply_filter(vertical_edge(), named_filter("sobel-x")), {.5, .5, .5, 1, 1, .5, .5, .5}, "scaled");
  // The edge turned 90 degrees gives nothing to sobel-x and the same response to sobel-y (down the rows).
  expect_rows(raw("sobel-x", horizontal_edge()), std::vector<float>(8, 0.0f), "sobel-x on a horizontal edge");
  const Tensor sy = raw("sobel-y", horizontal_edge());
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 8; ++x) EXPECT_NEAR(sy[y * 8 + x], (y == 3 || y == 4) ? 4.0f : 0.0f, 1e-6);
  expect_rows(raw("sobel-y", vertical_edge()), std::vector<float>(8, 0.0f), "sobel-y on a vertical edge");
}

TEST(VizKernels, SobelMagnitudeAndPrewitt) {
  // sqrt(gx^2 + gy^2) with gy = 0: |gx|; magnitude scaling r / max r.
  expect_rows(raw("sobel", vertical_edge()), {0, 0, 0, 4, 4, 0, 0, 0}, "sobel");
  expect_rows(apply_filter(vertical_edge(), named_filter("sobel")), {0, 0, 0, 1, 1, 0, 0, 0}, "sobel scaled");
  EXPECT_EQ(named_filter("sobel").scaling, Scaling::magnitude);
  // A diagonal step (x + y >= 8 bright): both gradients, so the magnitude is sqrt(2) times each.
  Tensor diag({8, 8, 1});
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) diag[y * 8 + x] = x + y >= 8 ? 1.0f : 0.0f;
  const Tensor gx = raw("sobel-x", diag), gy = raw("sobel-y", diag), m = raw("sobel", diag);
  for (int64_t i = 0; i < 64; ++i) EXPECT_NEAR(m[i], std::sqrt(gx[i] * gx[i] + gy[i] * gy[i]), 1e-5);
  // At (row 3, column 4) the 3 x 3 window holds bright pixels at (3, 5), (4, 4), (4, 5): gx = 2 + 1 (right
  // column, rows 3 and 4), gy = 2 + 1 (bottom row, columns 4 and 5), magnitude 3 sqrt(2).
  EXPECT_NEAR(m[3 * 8 + 4], 3.0f * std::sqrt(2.0f), 1e-5);
  // Prewitt: 3 * (x[j+1] - x[j-1]).
  expect_rows(raw("prewitt-x", vertical_edge()), {0, 0, 0, 3, 3, 0, 0, 0}, "prewitt-x");
  expect_rows(raw("prewitt-y", vertical_edge()), std::vector<float>(8, 0.0f), "prewitt-y");
}

TEST(VizKernels, LaplacianOutlineSharpenEmboss) {
  // Laplacian [0 1 0; 1 -4 1; 0 1 0]: x[j-1] + x[j+1] - 2 x[j] on a row-constant image.
  expect_rows(raw("edge", vertical_edge()), {0, 0, 0, 1, -1, 0, 0, 0}, "edge");
  // Outline (8 in the middle, -1 around): 6 x[j] - 3 x[j-1] - 3 x[j+1].
  expect_rows(raw("outline", vertical_edge()), {0, 0, 0, -3, 3, 0, 0, 0}, "outline");
  // Signed scaling of the outline: 0.5 + 0.5 * r / 3.
  expect_rows(apply_filter(vertical_edge(), named_filter("outline")), {.5, .5, .5, 0, 1, .5, .5, .5}, "outline sc.");
  // Sharpen [0 -1 0; -1 5 -1; 0 -1 0]: 3 x[j] - x[j-1] - x[j+1]; clamped to [0, 1].
  expect_rows(raw("sharpen", vertical_edge()), {0, 0, 0, -1, 2, 1, 1, 1}, "sharpen");
  expect_rows(apply_filter(vertical_edge(), named_filter("sharpen")), {0, 0, 0, 0, 1, 1, 1, 1}, "sharpen clamped");
  // Emboss [-2 -1 0; -1 1 1; 0 1 2]: column sums -3, 1, 3, so -3 x[j-1] + x[j] + 3 x[j+1].
  expect_rows(raw("emboss", vertical_edge()), {0, 0, 0, 3, 4, 1, 1, 1}, "emboss");
  // Which scaling each kernel gets: zero-sum kernels are signed, the others clamp.
  for (const char* name : {"edge", "sobel-x", "sobel-y", "prewitt-x", "prewitt-y", "outline"})
    EXPECT_EQ(named_filter(name).scaling, Scaling::signed_) << name;
  for (const char* name : {"identity", "box-blur", "gaussian-blur", "sharpen", "emboss"})
    EXPECT_EQ(named_filter(name).scaling, Scaling::clamp) << name;
}

TEST(VizKernels, IdentityIsExactInEveryPaddingMode) {
  Rng rng(7);
  Tensor img({9, 13, 3});
  for (float& v : img.values()) v = rng.uniform(0.0f, 1.0f);
  for (PaddingMode mode : {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate, PaddingMode::circular}) {
    FilterGeometry g;
    g.padding_mode = mode;
    const Tensor out = apply_filter(img, named_filter("identity"), g);
    ASSERT_EQ(out.shape(), img.shape());
    for (int64_t i = 0; i < img.size(); ++i) ASSERT_EQ(out[i], img[i]) << to_string(mode) << " at " << i;
  }
}

TEST(VizKernels, ConstantImageBlursToItself) {
  Tensor img({20, 19, 3}, 0.37f);  // reflect padding needs pads smaller than the image: 8 for sigma 2.5
  for (double sigma : {0.5, 1.0, 2.5}) {
    const Tensor out = apply_filter(img, named_filter("gaussian-blur", sigma));  // reflect padding: no dark border
    for (float v : out.values()) ASSERT_NEAR(v, 0.37f, 1e-6) << "sigma " << sigma;
  }
  const Tensor box = apply_filter(img, named_filter("box-blur"));
  for (float v : box.values()) ASSERT_NEAR(v, 0.37f, 1e-6);
  // With zero padding the corner sees 4 of 9 real pixels: 0.37 * 4 / 9 (the default reflect avoids that).
  FilterGeometry zeros;
  zeros.padding_mode = PaddingMode::zeros;
  const Tensor z = filter_response(img, named_filter("box-blur"), zeros);
  EXPECT_NEAR(z[0], 0.37f * 4 / 9, 1e-6);
  // Every zero-sum kernel gives exactly nothing on a constant image.
  for (const char* name : {"edge", "sobel-x", "sobel-y", "sobel", "prewitt-x", "prewitt-y", "outline"}) {
    const Tensor r = raw(name, img);
    for (float v : r.values()) ASSERT_NEAR(v, 0.0f, 1e-6) << name;
  }
  // A kernel too large for reflect padding on a small image is an error naming the pad, not a wrong picture.
  test_support::expect_error([] { apply_filter(Tensor({7, 7, 1}), named_filter("gaussian-blur", 2.5)); }, {"reflect"});
}

TEST(VizKernels, GaussianKernelShape) {
  const Tensor k = named_filter("gaussian-blur", 1.0).kernels.at(0);
  ASSERT_EQ(k.shape(), (Shape{7, 7}));  // 2 * ceil(3 * 1) + 1
  EXPECT_EQ(named_filter("gaussian-blur", 0.4).kernels.at(0).shape(), (Shape{5, 5}));  // ceil(1.2) = 2
  EXPECT_NEAR(std::accumulate(k.values().begin(), k.values().end(), 0.0), 1.0, 1e-6);
  // The ratio of neighbouring weights is exp(-1/2) along an axis through the centre (sigma 1).
  EXPECT_NEAR(k[3 * 7 + 4] / k[3 * 7 + 3], std::exp(-0.5f), 1e-5);
  EXPECT_NEAR(k[0], k[48], 1e-9);  // symmetric
  for (double bad : {0.0, -1.0, std::nan(""), 51.0, double(INFINITY)})
    test_support::expect_error([&] { named_filter("gaussian-blur", bad); }, {"--sigma"});
}

TEST(VizKernels, StrideDilationColour) {
  FilterGeometry g;
  g.strides = {2, 2};
  // TensorFlow "same" with stride 2 on 8 pixels pads 0 before and 1 after: output j is centred on input 2j + 1,
  // where the stride-1 response is [0 0 0 4 4 0 0 0] -> columns 1, 3, 5, 7 = [0 4 0 0].
  const Tensor s = raw("sobel-x", vertical_edge(), g);
  EXPECT_EQ(s.shape(), (Shape{4, 4, 1}));
  expect_rows(s, {0, 4, 0, 0}, "stride 2");
  // Dilation 2: 4 * (x[j+2] - x[j-2]), reflect padding of 2.
  FilterGeometry d;
  d.dilation = {2, 2};
  expect_rows(raw("sobel-x", vertical_edge(), d), {0, 0, 4, 4, 4, 4, 0, 0}, "dilation 2");
  // "valid" padding: 6 x 6.
  FilterGeometry v;
  v.padding = Padding::valid();
  expect_rows(raw("sobel-x", vertical_edge(), v), {0, 0, 4, 4, 0, 0}, "valid");
  // Colour: each channel on its own (channel 0 the vertical edge, 1 constant, 2 the horizontal edge).
  Tensor rgb({8, 8, 3});
  const Tensor a = vertical_edge(), b = horizontal_edge();
  for (int64_t i = 0; i < 64; ++i) rgb[3 * i] = a[i], rgb[3 * i + 1] = 0.5f, rgb[3 * i + 2] = b[i];
  const Tensor r = raw("sobel-x", rgb);
  ASSERT_EQ(r.shape(), (Shape{8, 8, 3}));
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 8; ++x) {
      EXPECT_NEAR(r[(y * 8 + x) * 3], (x == 3 || x == 4) ? 4.0f : 0.0f, 1e-6);
      EXPECT_NEAR(r[(y * 8 + x) * 3 + 1], 0.0f, 1e-6);
      EXPECT_NEAR(r[(y * 8 + x) * 3 + 2], 0.0f, 1e-6);
    }
}

// ---- custom kernels -------------------------------------------------------------------------------------------

TEST(VizKernels, CustomKernelText) {
  const Filter f = parse_kernel_text("0,-1,0;-1,5,-1;0,-1,0");
  ASSERT_EQ(f.kernels.at(0).shape(), (Shape{3, 3}));
  EXPECT_EQ(f.scaling, Scaling::clamp);  // sums to 1
  expect_rows(filter_response(vertical_edge(), f), {0, 0, 0, -1, 2, 1, 1, 1}, "custom sharpen");
  // A 1 x 3 horizontal difference (spaces allowed): x[j+1] - x[j-1]; sums to 0 -> signed.
  const Filter d = parse_kernel_text("-1, 0, 1");
  EXPECT_EQ(d.kernels.at(0).shape(), (Shape{1, 3}));
  EXPECT_EQ(d.scaling, Scaling::signed_);
  expect_rows(filter_response(vertical_edge(), d), {0, 0, 0, 1, 1, 0, 0, 0}, "1x3");
  // An even-sized kernel works too (TensorFlow "same": the extra pad goes bottom/right).
  const Filter e = parse_kernel_text("1,1;1,1");
  EXPECT_EQ(filter_response(vertical_edge(), e).shape(), (Shape{8, 8, 1}));
  for (const char* bad : {"1,2;3", "1,a,2", "", "1,,2", "1;", "nan", "1,inf", ";"})
    test_support::expect_error([&] { parse_kernel_text(bad); }, {"--kernel"});
  test_support::expect_error([&] { named_filter("sobel-z"); }, {"unknown kernel 'sobel-z'"});
  test_support::expect_error([&] { filter_from_tensor(Tensor({3, 3, 2, 1}), "k.npy"); }, {"k.npy"});
  const Filter t = filter_from_tensor(Tensor({3, 3, 1, 1}, 1.0f), "ones.npy");
  EXPECT_EQ(t.kernels.at(0).shape(), (Shape{3, 3}));
  EXPECT_EQ(t.scaling, Scaling::clamp);
}

TEST(VizKernels, ScalingEdgeCases) {
  const Tensor zero({2, 2, 1});
  const Tensor zs = scale_response(zero, Scaling::signed_), zm = scale_response(zero, Scaling::magnitude);
  for (float v : zs.values()) EXPECT_EQ(v, 0.5f);
  for (float v : zm.values()) EXPECT_EQ(v, 0.0f);
  const Tensor r({1, 4, 1}, {-2.0f, -1.0f, 0.5f, 3.0f});
  const Tensor c = scale_response(r, Scaling::clamp), s = scale_response(r, Scaling::signed_);
  EXPECT_EQ(c[0], 0.0f);
  EXPECT_EQ(c[2], 0.5f);
  EXPECT_EQ(c[3], 1.0f);
  EXPECT_NEAR(s[0], 0.5f - 0.5f * 2 / 3, 1e-6);  // max |r| = 3
  EXPECT_NEAR(s[3], 1.0f, 1e-6);
  // The reference level is the 99.5th percentile of |r|, not the maximum: 4 spikes of 100 among 1000 values
  // (|r| sorted: 496 x 0.5, 500 x 1, 4 x 100; nearest rank 995 -> 1) do not set the scale.
  Tensor spiky({1, 1000, 1});
  for (int i = 0; i < 1000; ++i) spiky[i] = i < 500 ? 1.0f : i < 996 ? -0.5f : 100.0f;
  const Tensor sp = scale_response(spiky, Scaling::signed_), sm = scale_response(spiky, Scaling::magnitude);
  EXPECT_NEAR(sp[0], 1.0f, 1e-6);
  EXPECT_NEAR(sp[500], 0.25f, 1e-6);
  EXPECT_NEAR(sp[999], 1.0f, 1e-6);  // clamped
  // Magnitude: negatives count as 0; r sorted 496 x 0, 500 x 1, 4 x 100 -> M = 1.
  EXPECT_NEAR(sm[0], 1.0f, 1e-6);
  EXPECT_NEAR(sm[500], 0.0f, 1e-6);
  EXPECT_EQ(parse_scaling("signed"), Scaling::signed_);
  test_support::expect_error([] { parse_scaling("loud"); }, {"loud"});
}

// ---- pictures -------------------------------------------------------------------------------------------------

TEST(VizPictures, GridHasTheDocumentedSizeAndPlacesTiles) {
  std::vector<Tensor> tiles;
  for (int i = 0; i < 5; ++i) tiles.emplace_back(Shape{10, 12, 1}, 0.1f * float(i + 1));
  GridOptions g;
  g.columns = 3;
  g.gap = 2;
  const Tensor out = compose_grid(tiles, {"0", "1", "2", "3", "4"}, g);
  // width = gap + cols * (w + gap) = 2 + 3 * 14; height = gap + rows * (h + (7 + 2) + gap) = 2 + 2 * 21.
  ASSERT_EQ(out.shape(), (Shape{44, 44, 1}));
  // Tile 4 is row 1, column 1: top-left at (x, y) = (2 + 14, 2 + 21).
  EXPECT_NEAR(out[(23 * 44 + 16)], 0.5f, 1e-6);
  EXPECT_NEAR(out[(23 + 9) * 44 + 16 + 11], 0.5f, 1e-6);
  EXPECT_NEAR(out[22 * 44 + 16], g.background, 1e-6);  // the gap above it
  // Without labels, with a title, an RGB tile among grey ones: RGB out, title band 7 * 2 + 2 * gap.
  g.title = "T";
  tiles[1] = Tensor({4, 4, 3}, 0.9f);
  const Tensor rgb = compose_grid(tiles, {}, g);
  EXPECT_EQ(rgb.shape(), (Shape{18 + 2 + 2 * 12, 44, 3}));
  // A long title widens the picture.
  g.title = std::string(20, 'A');
  EXPECT_EQ(compose_grid(tiles, {}, g).dim(1), (6 * 20 - 1) * 2 + 4);
  test_support::expect_error([&] { compose_grid(tiles, {"only one"}, g); }, {"labels"});
  test_support::expect_error([&] { compose_grid({}, {}, g); }, {"no tiles"});
}

TEST(VizPictures, UpscaleAndRgb) {
  const Tensor t({2, 2, 1}, {0.0f, 0.25f, 0.5f, 1.0f});
  const Tensor u = upscale_nearest(t, 3);
  ASSERT_EQ(u.shape(), (Shape{6, 6, 1}));
  EXPECT_EQ(u[0 * 6 + 2], 0.0f);
  EXPECT_EQ(u[0 * 6 + 3], 0.25f);
  EXPECT_EQ(u[5 * 6 + 5], 1.0f);
  EXPECT_EQ(u[3 * 6 + 2], 0.5f);
  const Tensor c = to_rgb(t);
  ASSERT_EQ(c.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(c[3 * 3 + 2], 1.0f);
}

TEST(VizFont, GlyphsAndText) {
  for (int col = 0; col < 5; ++col) {
    EXPECT_TRUE(glyph_pixel('-', 3, col));
    EXPECT_FALSE(glyph_pixel('-', 2, col));
    EXPECT_FALSE(glyph_pixel(' ', 3, col));
  }
  for (int row = 0; row < 7; ++row) {
    EXPECT_TRUE(glyph_pixel('|', row, 2));
    EXPECT_TRUE(glyph_pixel('L', row, 0));
  }
  EXPECT_TRUE(glyph_pixel('L', 6, 4));
  EXPECT_FALSE(glyph_pixel('L', 0, 4));
  for (int row = 0; row < 7; ++row)
    for (int col = 0; col < 5; ++col) EXPECT_EQ(glyph_pixel('a', row, col), glyph_pixel('A', row, col));
  // No glyph for '~': a hollow box.
  EXPECT_TRUE(glyph_pixel('~', 0, 2));
  EXPECT_TRUE(glyph_pixel('~', 3, 0));
  EXPECT_FALSE(glyph_pixel('~', 3, 2));
  // Every digit and capital is drawn, and no two are the same.
  std::vector<std::string> seen;
  for (char c : std::string("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")) {
    std::string bits;
    for (int i = 0; i < 35; ++i) bits += glyph_pixel(c, i / 5, i % 5) ? '#' : '.';
    EXPECT_NE(bits.find('#'), std::string::npos) << c;
    EXPECT_EQ(std::find(seen.begin(), seen.end(), bits), seen.end()) << c << " looks like another glyph";
    seen.push_back(bits);
  }
  EXPECT_EQ(text_width("AB"), 11);
  EXPECT_EQ(text_width("AB", 2), 22);
  EXPECT_EQ(text_height("AB", 3), 21);
  EXPECT_EQ(text_width(""), 0);
  // Drawing "-" at (1, 2), scale 2: rows 2 + 6, 2 + 7 and columns 1..10 set; clipped at the border.
  Tensor img({12, 11, 1});
  const float white[3] = {1, 1, 1};
  draw_text(img, 1, 2, "-", white, 2);
  float total = 0;
  for (float v : img.values()) total += v;
  EXPECT_EQ(total, 20.0f);
  EXPECT_EQ(img[8 * 11 + 1], 1.0f);
  EXPECT_EQ(img[9 * 11 + 10], 1.0f);
  EXPECT_EQ(img[7 * 11 + 1], 0.0f);
  draw_text(img, 8, 0, "-", white, 2);  // off the right edge: nothing outside the image is touched
  EXPECT_EQ(img[6 * 11 + 10], 1.0f);
}

// ---- training curves ------------------------------------------------------------------------------------------

TEST(VizCurves, CsvAndSvg) {
  std::vector<EpochLog> logs(2);
  logs[0] = {.epoch = 1, .loss = 0.5, .accuracy = 0.75, .val_loss = {}, .val_accuracy = {}, .seconds = 2,
             .learning_rate = 0.5f};
  logs[1] = {.epoch = 2, .loss = 0.25, .accuracy = 0.875, .val_loss = 0.375, .val_accuracy = 0.8125, .seconds = 1.5,
             .learning_rate = 0.25f};
  EXPECT_EQ(history_csv(logs),
            "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n"
            "1,0.5,0.75,,,0.5,2\n"
            "2,0.25,0.875,0.375,0.8125,0.25,1.5\n");
  const std::string svg = history_svg(logs, 800, 300);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("width=\"800\" height=\"300\""), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  auto count = [&](const std::string& s) {
    std::size_t n = 0;
    for (std::size_t p = svg.find(s); p != std::string::npos; p = svg.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<polyline"), 4u);  // loss, val_loss, accuracy, val_accuracy
  EXPECT_EQ(count("<circle"), 2u * 2 + 1 * 2);  // validation exists for epoch 2 only
  logs[1].val_loss.reset();
  logs[1].val_accuracy.reset();
  EXPECT_EQ(std::string(history_svg(logs)).find("validation"), std::string::npos);
  TempDir dir("viz_curves");
  write_history(dir.file("h.csv"), dir.file("c.svg"), logs);
  EXPECT_EQ(read_file(dir.file("h.csv")), history_csv(logs));
  EXPECT_EQ(read_file(dir.file("c.svg")), history_svg(logs));
}

TEST(VizCurves, CsvReadsBack) {
  std::vector<EpochLog> logs(2);
  logs[0] = {.epoch = 1, .loss = 0.1, .accuracy = 1.0 / 3, .val_loss = {}, .val_accuracy = {}, .seconds = 2.25,
             .learning_rate = 1e-3f};
  logs[1] = {.epoch = 2, .loss = 0.2, .accuracy = 0.7, .val_loss = 0.3, .val_accuracy = 0.6, .seconds = 1.5,
             .learning_rate = 0.1f};
  const std::vector<EpochLog> back = parse_history_csv(history_csv(logs), "h.csv");
  ASSERT_EQ(back.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back[i].epoch, logs[i].epoch);
    EXPECT_EQ(back[i].loss, logs[i].loss);  // shortest round-trip text: exact
    EXPECT_EQ(back[i].accuracy, logs[i].accuracy);
    EXPECT_EQ(back[i].val_loss, logs[i].val_loss);
    EXPECT_EQ(back[i].val_accuracy, logs[i].val_accuracy);
    EXPECT_EQ(back[i].learning_rate, logs[i].learning_rate);
    EXPECT_EQ(back[i].seconds, logs[i].seconds);
  }
  const std::string header = "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n";
  auto bad = [](const std::string& text, std::vector<std::string> parts) {
    parts.insert(parts.begin(), "h.csv");
    test_support::expect_error([&] { parse_history_csv(text, "h.csv"); }, parts);
  };
  bad("", {"empty"});
  bad("epoch,loss\n", {"line 1", "header"});
  bad(header + "1,0.5,0.5,,,0.1\n", {"line 2", "6 fields"});
  bad(header + "1,x,0.5,,,0.1,1\n", {"line 2", "loss 'x'"});
  bad(header + "2,0.5,0.5,,,0.1,1\n", {"line 2", "epoch '2'"});
  bad(header + "1,0.5,0.5,,,0.1,1\n1,0.5,0.5,,,0.1,1\n", {"line 3", "epoch '1'"});
}

// ---- model visualisation --------------------------------------------------------------------------------------

TEST(VizModel, PicturesAndIndex) {
  Sequential m("tiny");
  m.add<InputLayer>(Shape{8, 8, 1});
  Conv2dLayerOptions c;
  c.conv = {.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same()};
  c.activation = ActivationFn::parse("relu");
  c.conv.filters = 4;
  m.add<Conv2D>(c);
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  Conv2dLayerOptions c2;
  c2.conv = {.filters = 3, .kernel_size = {3, 3}, .padding = Padding::valid()};
  m.add<Conv2D>(c2);
  m.add<Flatten>();
  m.add<Dense>(DenseOptions{.units = 3, .activation = ActivationFn::parse("softmax")});
  m.build(3);
  Tensor x({1, 8, 8, 1});
  Rng rng(1);
  for (float& v : x.values()) v = rng.uniform(0.0f, 1.0f);
  TempDir dir("viz_model");
  VisualizeOptions o;
  o.out_dir = dir.file("out");
  o.class_names = {"a<b", "b", "c"};
  o.notes = {"photo: CC0"};
  const VisualizeReport r = visualize_model(m, x, o);
  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_EQ(r.layers[0].kernel_shape, (Shape{3, 3, 1, 4}));
  EXPECT_EQ(r.layers[1].output_shape, (Shape{1, 2, 2, 3}));
  ASSERT_EQ(r.probabilities.size(), 3u);
  EXPECT_NEAR(r.probabilities[0] + r.probabilities[1] + r.probabilities[2], 1.0, 1e-5);
  const Tensor expected = m.predict(x);
  EXPECT_EQ(r.predicted, int(std::max_element(expected.values().begin(), expected.values().end()) -
                             expected.values().begin()));
  for (const LayerPictures& lp : r.layers) {
    const Tensor f = read_image(dir.file("out/" + lp.filters_png)), a = read_image(dir.file("out/" + lp.activations_png));
    EXPECT_EQ(f.dim(1), lp.filters_width);
    EXPECT_EQ(f.dim(0), lp.filters_height);
    EXPECT_EQ(a.dim(1), lp.activations_width);
    EXPECT_EQ(a.dim(0), lp.activations_height);
  }
  // The first layer's activation tiles: 8 x 8 maps enlarged 7x (to >= 56 px), 4 of them in a row, labelled.
  // Width: at least 4 cells of 56 + 3 (a long title may widen it); height: title band 7 * 2 + 2 * 3, gap 3, one
  // row of 56 + label 9 + gap 3.
  EXPECT_GE(r.layers[0].activations_width, 3 + 4 * (56 + 3));
  EXPECT_EQ(r.layers[0].activations_height, 20 + 3 + 56 + 9 + 3);
  const std::string html = read_file(r.index_html);
  EXPECT_NE(html.find("src=\"input.png\""), std::string::npos);
  EXPECT_NE(html.find("src=\"conv2d_filters.png\""), std::string::npos);
  EXPECT_NE(html.find("src=\"conv2d_1_activations.png\""), std::string::npos);
  EXPECT_NE(html.find("a&lt;b"), std::string::npos);  // escaped
  EXPECT_NE(html.find("photo: CC0"), std::string::npos);
  EXPECT_EQ(html.find("file:"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir.file("out/input.png")));
  // The wrong input shape is refused before anything is written.
  VisualizeOptions o2 = o;
  o2.out_dir = dir.file("out2");
  test_support::expect_error([&] { visualize_model(m, Tensor({1, 9, 8, 1}), o2); }, {"does not fit"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("out2")));
}

TEST(VizModel, FitImageToInput) {
  Tensor rgba({4, 4, 4}, 1.0f);
  const Tensor g = fit_image_to_input(rgba, 2, 2, 1, /*invert=*/true);
  ASSERT_EQ(g.shape(), (Shape{2, 2, 1}));
  for (float v : g.values()) EXPECT_NEAR(v, 0.0f, 1e-6);  // white, opaque, inverted
  EXPECT_EQ(fit_image_to_input(Tensor({4, 4, 1}, 0.5f), 3, 3, 3, false).shape(), (Shape{3, 3, 3}));
  test_support::expect_error([] { fit_image_to_input(Tensor({4, 4, 3}), 2, 2, 5, false); }, {"channel"});
}

}  // namespace
}  // namespace convkit::viz
