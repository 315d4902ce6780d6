// Unit tests for shape arithmetic (src/core/shape.hpp, conv2d_output_shape) and the Tensor type.
//
// Output sizes are checked against independent brute-force definitions (count the window positions that fit)
// rather than against the closed-form formulas the library itself uses, so a wrong formula cannot check itself.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/tensor.hpp"
#include "core/shape.hpp"
#include "expect_error.hpp"

namespace convkit {
namespace {

using core::AxisGeometry;
using core::AxisSpec;

using convkit::test_support::expect_error;

// ---- conv2d_output_shape: the seeds' examples (DESIGN.md §1) ------------------------------------------------

TEST(Conv2dOutputShape, SeedExampleValid) {
  const Conv2dParams p{.filters = 5, .kernel_size = {3, 3}, .strides = {2, 2}, .padding = Padding::valid()};
  EXPECT_EQ(conv2d_output_shape(p, {10, 8, 16, 3}), (Shape{10, 3, 7, 5}));
}

TEST(Conv2dOutputShape, SeedExampleSame) {
  const Conv2dParams p{.filters = 5, .kernel_size = {3, 3}, .strides = {2, 2}, .padding = Padding::same()};
  EXPECT_EQ(conv2d_output_shape(p, {10, 8, 16, 3}), (Shape{10, 4, 8, 5}));
}

TEST(Conv2dOutputShape, SeedExampleImage32x32Same) {
  const Conv2dParams p{.filters = 6, .kernel_size = {5, 5}, .strides = {1, 1}, .padding = Padding::same()};
  EXPECT_EQ(conv2d_output_shape(p, {1, 32, 32, 3}), (Shape{1, 32, 32, 6}));
  EXPECT_EQ(conv2d_kernel_shape(p, 3), (Shape{5, 5, 3, 6}));
  EXPECT_EQ(conv2d_param_count(p, 3), 5 * 5 * 3 * 6 + 6);
}

TEST(Conv2dOutputShape, AsymmetricExplicitPaddingAndSplitSamePads) {
  // Height: 7 + 1 + 2 - 3 = 7 -> floor(7 / 2) + 1 = 4. Width: 9 + 0 + 3 - 3 = 9 -> 9 / 1 + 1 = 10.
  const Conv2dParams p{.filters = 2, .kernel_size = {3, 3}, .strides = {2, 1},
                       .padding = Padding::explicit_pad(1, 2, 0, 3)};
  EXPECT_EQ(conv2d_output_shape(p, {1, 7, 9, 1}), (Shape{1, 4, 10, 2}));
  // "same" with an even kernel: total padding 1 per axis, the extra pixel at the bottom / right (TensorFlow).
  const Conv2dParams q{.filters = 1, .kernel_size = {2, 4}, .padding = Padding::same()};
  const Conv2dGeometry g = conv2d_geometry(q, {1, 5, 5, 1});
  EXPECT_EQ(g.pad_top, 0);
  EXPECT_EQ(g.pad_bottom, 1);
  EXPECT_EQ(g.pad_left, 1);
  EXPECT_EQ(g.pad_right, 2);
  EXPECT_EQ(g.output_shape(), (Shape{1, 5, 5, 1}));
}

TEST(Conv2dOutputShape, DepthwiseConversion) {
  const DepthwiseConv2dParams d{.kernel_size = {3, 3}, .padding = Padding::same(), .depth_multiplier = 4};
  const Conv2dParams p = depthwise_to_conv2d(d, 3);
  EXPECT_EQ(p.groups, 3);
  EXPECT_EQ(p.filters, 12);
  EXPECT_EQ(conv2d_kernel_shape(p, 3), (Shape{3, 3, 1, 12}));
  EXPECT_EQ(conv2d_output_shape(p, {2, 6, 7, 3}), (Shape{2, 6, 7, 12}));
}

// ---- resolve_axis against brute force ----------------------------------------------------------------------

// Number of windows of extent k_eff starting at 0, s, 2s, ... that fit entirely in [0, padded).
int64_t count_full_windows(int64_t padded, int64_t k_eff, int64_t s) {
  int64_t count = 0;
  for (int64_t start = 0; start + k_eff <= padded; start += s) ++count;
  return count;
}

// PyTorch pooling's ceil_mode (torch.nn.MaxPool2d docs): the windows are the full ones plus, when the last stride
// leaves a remainder, one partial window; "sliding windows that would start in the right padded region are
// ignored", i.e. every window must start before in + pad_before. Checked offline against
// torch.nn.functional.max_pool1d(ceil_mode=True) over 764 symmetric-padding configurations.
int64_t count_ceil_windows(int64_t in, int64_t pad_before, int64_t padded, int64_t k_eff, int64_t s) {
  const int64_t full = count_full_windows(padded, k_eff, s);
  const int64_t candidates = full + ((padded - k_eff) % s != 0 ? 1 : 0);
  int64_t count = 0;
  for (int64_t t = 0; t < candidates; ++t)
    if (t * s < in + pad_before) ++count;
  return count;
}

// Whether the padding mode can fill these pads (DESIGN.md: reflect needs pad < in, circular pad <= in).
bool mode_allows(PaddingMode mode, int64_t in, int64_t before, int64_t after) {
  const int64_t worst = std::max(before, after);
  if (mode == PaddingMode::reflect) return worst < in;
  if (mode == PaddingMode::circular) return worst <= in;
  return true;
}

constexpr PaddingMode kModes[] = {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate,
                                  PaddingMode::circular};

TEST(ResolveAxis, ValidAndExplicitMatchBruteForceSweep) {
  int checked = 0, rejected = 0;
  for (int64_t in = 1; in <= 12; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t d = 1; d <= 3; ++d)
          for (int64_t pb = 0; pb <= 3; ++pb)
            for (int64_t pa = 0; pa <= 3; ++pa)
              for (bool ceil_mode : {false, true})
                for (PaddingMode mode : kModes) {
                  const bool is_valid = pb == 0 && pa == 0;
                  AxisSpec spec{.op = "Test", .axis = "width", .in = in, .kernel = k, .stride = s, .dilation = d,
                                .padding = is_valid ? PaddingKind::valid : PaddingKind::explicit_,
                                .pad_before = pb, .pad_after = pa, .ceil_mode = ceil_mode, .mode = mode};
                  const int64_t k_eff = (k - 1) * d + 1;
                  const int64_t padded = in + pb + pa;
                  const int64_t want = ceil_mode ? count_ceil_windows(in, pb, padded, k_eff, s)
                                                 : count_full_windows(padded, k_eff, s);
                  // convkit rejects a kernel larger than the padded input even in ceil_mode (DESIGN.md §1), where
                  // PyTorch would still emit one partial window.
                  const bool ok = count_full_windows(padded, k_eff, s) > 0 && mode_allows(mode, in, pb, pa);
                  SCOPED_TRACE(testing::Message() << "in=" << in << " k=" << k << " s=" << s << " d=" << d
                                                  << " pads=" << pb << "," << pa << " ceil=" << ceil_mode
                                                  << " mode=" << to_string(mode));
                  if (!ok) {
                    EXPECT_THROW(core::resolve_axis(spec), Error);
                    ++rejected;
                    continue;
                  }
                  const AxisGeometry g = core::resolve_axis(spec);
                  ASSERT_EQ(g.out, want);
                  ASSERT_EQ(g.pad_before, pb);
                  ASSERT_EQ(g.pad_after, pa);
                  ++checked;
                }
  // The sweep must exercise both outcomes substantially, or it proves little.
  EXPECT_GT(checked, 10000);
  EXPECT_GT(rejected, 1000);
}

TEST(ResolveAxis, CeilModeHandExamples) {
  // in=5, k=2, s=2, no padding: floor gives windows at 0 and 2; ceil adds the partial one at 4 (inside the input).
  AxisSpec spec{.op = "MaxPooling2D", .axis = "height", .in = 5, .kernel = 2, .stride = 2};
  EXPECT_EQ(core::resolve_axis(spec).out, 2);
  spec.ceil_mode = true;
  EXPECT_EQ(core::resolve_axis(spec).out, 3);
  // in=4, k=2, s=2, pads 1/1: padded 6, full windows at 0, 2, 4 (3); remainder 0 -> still 3.
  spec = {.op = "MaxPooling2D", .axis = "height", .in = 4, .kernel = 2, .stride = 2,
          .padding = PaddingKind::explicit_, .pad_before = 1, .pad_after = 1, .ceil_mode = true};
  EXPECT_EQ(core::resolve_axis(spec).out, 3);
  // in=4, k=3, s=3, pads 1/1: padded 6 -> full windows at 0, 3 (2); the partial window would start at 6,
  // in the trailing padding (>= in + pad_before = 5), so PyTorch drops it: 2.
  spec = {.op = "MaxPooling2D", .axis = "height", .in = 4, .kernel = 3, .stride = 3,
          .padding = PaddingKind::explicit_, .pad_before = 1, .pad_after = 1, .ceil_mode = true};
  EXPECT_EQ(core::resolve_axis(spec).out, 2);
}

TEST(ResolveAxis, SameMatchesTensorFlowRuleSweep) {
  int checked = 0, rejected = 0;
  for (int64_t in = 1; in <= 14; ++in)
    for (int64_t k = 1; k <= 7; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t d = 1; d <= 3; ++d)
          for (PaddingMode mode : kModes) {
            SCOPED_TRACE(testing::Message() << "in=" << in << " k=" << k << " s=" << s << " d=" << d
                                            << " mode=" << to_string(mode));
            const AxisSpec spec{.op = "Test", .axis = "height", .in = in, .kernel = k, .stride = s, .dilation = d,
                                .padding = PaddingKind::same, .mode = mode};
            const int64_t k_eff = (k - 1) * d + 1;
            // Independent derivation: out = ceil(in / s) by counting strides that start inside the input.
            int64_t want_out = 0;
            for (int64_t start = 0; start < in; start += s) ++want_out;
            // The smallest total padding that lets the last window fit: the last window spans
            // [(out-1)s, (out-1)s + k_eff) in padded coordinates shifted by `before`; search upward.
            int64_t total = 0;
            while ((want_out - 1) * s + k_eff > in + total) ++total;
            const int64_t before = total / 2, after = total - before;
            if (!mode_allows(mode, in, before, after)) {
              EXPECT_THROW(core::resolve_axis(spec), Error);
              ++rejected;
              continue;
            }
            const AxisGeometry g = core::resolve_axis(spec);
            ASSERT_EQ(g.out, want_out);
            ASSERT_EQ(g.pad_before + g.pad_after, total);
            ASSERT_EQ(g.pad_before, total / 2);             // TF: the smaller half before
            ASSERT_TRUE(g.pad_after - g.pad_before == 0 || g.pad_after - g.pad_before == 1);
            if (total > 0) {
              ASSERT_EQ((g.out - 1) * s + k_eff, in + total);  // the last window ends exactly at the padded end
            } else {
              ASSERT_LE((g.out - 1) * s + k_eff, in);
            }
            ++checked;
          }
  EXPECT_GT(checked, 1500);
  EXPECT_GT(rejected, 100);
}

TEST(ResolveAxis, RejectsNonPositiveSizesNamingTheAxis) {
  const AxisSpec base{.op = "Conv2D", .axis = "width", .in = 5, .kernel = 3};
  AxisSpec s = base;
  s.in = 0;
  expect_error([&] { core::resolve_axis(s); }, {"Conv2D", "width", "0"});
  s = base;
  s.kernel = -2;
  expect_error([&] { core::resolve_axis(s); }, {"kernel", "width", "-2"});
  s = base;
  s.stride = 0;
  expect_error([&] { core::resolve_axis(s); }, {"stride", "0"});
  s = base;
  s.dilation = -1;
  expect_error([&] { core::resolve_axis(s); }, {"dilation", "-1"});
  s = base;
  s.padding = PaddingKind::explicit_;
  s.pad_before = -1;
  expect_error([&] { core::resolve_axis(s); }, {"padding", "-1", "width"});
  s = base;
  s.kernel = 3;
  s.dilation = 4;  // k_eff = 9 > 5
  expect_error([&] { core::resolve_axis(s); }, {"kernel", "9", "5"});
}

// ---- padded_source: hand-derived table for n = 4 ------------------------------------------------------------

TEST(PaddedSource, HandTableForFourCells) {
  // i:                          -3  -2  -1   0  1  2  3   4   5   6
  const int64_t zeros[10] = {-1, -1, -1, 0, 1, 2, 3, -1, -1, -1};
  const int64_t reflect[10] = {3, 2, 1, 0, 1, 2, 3, 2, 1, 0};  // mirror about the edge cell, edge not repeated
  const int64_t replicate[10] = {0, 0, 0, 0, 1, 2, 3, 3, 3, 3};
  const int64_t circular[10] = {1, 2, 3, 0, 1, 2, 3, 0, 1, 2};
  for (int64_t i = -3; i <= 6; ++i) {
    SCOPED_TRACE(i);
    const std::size_t at = static_cast<std::size_t>(i + 3);
    EXPECT_EQ(core::padded_source(i, 4, PaddingMode::zeros), zeros[at]);
    EXPECT_EQ(core::padded_source(i, 4, PaddingMode::reflect), reflect[at]);
    EXPECT_EQ(core::padded_source(i, 4, PaddingMode::replicate), replicate[at]);
    EXPECT_EQ(core::padded_source(i, 4, PaddingMode::circular), circular[at]);
  }
}

TEST(PaddedSource, SingleCellAxis) {
  // n = 1: replicate and circular (pad <= 1) both give cell 0; reflect cannot pad (pad < 1 means no padding).
  for (int64_t i : {-1, 1}) {
    EXPECT_EQ(core::padded_source(i, 1, PaddingMode::replicate), 0);
    EXPECT_EQ(core::padded_source(i, 1, PaddingMode::circular), 0);
    EXPECT_EQ(core::padded_source(i, 1, PaddingMode::zeros), -1);
  }
}

// ---- shape helpers ------------------------------------------------------------------------------------------

TEST(ShapeToString, PythonTupleSyntax) {
  EXPECT_EQ(shape_to_string({}), "()");
  EXPECT_EQ(shape_to_string({3}), "(3,)");
  EXPECT_EQ(shape_to_string({0}), "(0,)");
  EXPECT_EQ(shape_to_string({2, 3}), "(2, 3)");
  EXPECT_EQ(shape_to_string({10, 3, 7, 5}), "(10, 3, 7, 5)");
}

TEST(ShapeElements, ProductsNegativesAndOverflow) {
  EXPECT_EQ(shape_elements({}), 1);  // a scalar
  EXPECT_EQ(shape_elements({2, 0, 5}), 0);
  EXPECT_EQ(shape_elements({2, 3, 4}), 24);
  expect_error([] { shape_elements({2, -3}); }, {"(2, -3)", "negative"});
  expect_error([] { shape_elements({int64_t{1} << 40, int64_t{1} << 40}); }, {"1099511627776"});
}

// ---- Tensor -------------------------------------------------------------------------------------------------

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

TEST(Tensor, StorageIs64ByteAligned) {
  for (int64_t n : {1, 3, 15, 16, 17, 100, 1000}) {
    const Tensor t({n}, 1.5f);
    EXPECT_TRUE(aligned64(t.data())) << n;
    EXPECT_EQ(t.size(), n);
    for (float v : t.values()) ASSERT_EQ(v, 1.5f);
  }
  const Tensor empty_dim({3, 0});
  EXPECT_EQ(empty_dim.size(), 0);
  EXPECT_TRUE(empty_dim.empty());
  const Tensor copy = Tensor({5, 7}, 2.0f);
  EXPECT_TRUE(aligned64(Tensor(copy).data()));  // copies are aligned too
}

TEST(Tensor, RefusesSizesWhoseByteCountWraps) {
  // 2^62 floats are 2^64 bytes: the byte count wraps to 0 in size_t. This must be an error, never a tiny buffer
  // that claims 2^62 elements.
  expect_error([] { Tensor t({int64_t{1} << 62}); }, {"4611686018427387904", "too large"});
  expect_error([] { Tensor t({int64_t{1} << 31, int64_t{1} << 31}); }, {"too large"});
  expect_error([] { Tensor t({int64_t{1} << 31, int64_t{1} << 31, 2}); }, {"too many elements"});  // 2^63
}

TEST(Tensor, ConstructorChecksValueCount) {
  const Tensor t({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(t[3], 4.0f);
  expect_error([] { Tensor({2, 2}, {1, 2, 3}); }, {"(2, 2)", "4", "3"});
}

TEST(Tensor, CopiesAreDeep) {
  Tensor a({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor b = a;
  EXPECT_NE(a.data(), b.data());
  b[0] = 42.0f;
  EXPECT_EQ(a[0], 0.0f);
  Tensor c({1});
  c = a;  // copy assignment
  EXPECT_EQ(c.shape(), a.shape());
  c[5] = -1.0f;
  EXPECT_EQ(a[5], 5.0f);
  EXPECT_EQ(c[4], 4.0f);
  const Tensor& alias = c;
  c = alias;  // self-assignment keeps the contents
  EXPECT_EQ(c[4], 4.0f);
  Tensor moved = std::move(b);
  EXPECT_EQ(moved[0], 42.0f);
}

TEST(Tensor, ReshapeKeepsDataAndRejectsOtherSizes) {
  Tensor t({2, 6}, 0.0f);
  for (int64_t i = 0; i < 12; ++i) t[i] = static_cast<float>(i);
  const float* before = t.data();
  t.reshape({3, 2, 2});
  EXPECT_EQ(t.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(t.data(), before);
  EXPECT_EQ(t[11], 11.0f);
  expect_error([&] { t.reshape({5, 2}); }, {"(3, 2, 2)", "12", "(5, 2)", "10"});
  expect_error([&] { t.reshape({-2, -6}); }, {"negative"});
  EXPECT_EQ(t.shape(), (Shape{3, 2, 2}));  // unchanged after the failed reshapes
}

TEST(Tensor, LayoutHandExample) {
  // NCHW (1, 2, 2, 3) holding value c * 6 + h * 3 + w; NHWC (n, h, w, c) must hold the same value.
  Tensor nchw({1, 2, 2, 3});
  for (int64_t i = 0; i < 12; ++i) nchw[i] = static_cast<float>(i);
  const Tensor nhwc = nchw_to_nhwc(nchw);
  ASSERT_EQ(nhwc.shape(), (Shape{1, 2, 3, 2}));
  const float want[12] = {0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11};  // (h, w, c) in row-major order
  for (int i = 0; i < 12; ++i) EXPECT_EQ(nhwc[i], want[i]) << i;

  // OIHW (2, 1, 1, 3): o * 3 + w. HWIO (1, 3, 1, 2): [0][w][0][o].
  Tensor oihw({2, 1, 1, 3}, {0, 1, 2, 3, 4, 5});
  const Tensor hwio = oihw_to_hwio(oihw);
  ASSERT_EQ(hwio.shape(), (Shape{1, 3, 1, 2}));
  const float want_w[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(hwio[i], want_w[i]) << i;
}

TEST(Tensor, LayoutRoundTripsAndIndexing) {
  const Shape s{2, 3, 4, 5};
  Tensor a(s);
  for (int64_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.25f - 7.0f;
  const Tensor nhwc = nchw_to_nhwc(a);  // a read as (N, C, H, W)
  ASSERT_EQ(nhwc.shape(), (Shape{2, 4, 5, 3}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w)
          ASSERT_EQ(nhwc[((n * 4 + h) * 5 + w) * 3 + c], a[((n * 3 + c) * 4 + h) * 5 + w]);
  const Tensor back = nhwc_to_nchw(nhwc);
  ASSERT_EQ(back.shape(), s);
  for (int64_t i = 0; i < a.size(); ++i) ASSERT_EQ(back[i], a[i]);

  const Tensor hwio = oihw_to_hwio(a);  // a read as (O, I, H, W)
  ASSERT_EQ(hwio.shape(), (Shape{4, 5, 3, 2}));
  for (int64_t o = 0; o < 2; ++o)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w)
          ASSERT_EQ(hwio[((h * 5 + w) * 3 + i) * 2 + o], a[((o * 3 + i) * 4 + h) * 5 + w]);
  const Tensor back_w = hwio_to_oihw(hwio);
  ASSERT_EQ(back_w.shape(), s);
  for (int64_t i = 0; i < a.size(); ++i) ASSERT_EQ(back_w[i], a[i]);
}

TEST(Tensor, LayoutHelpersRejectOtherRanks) {
  expect_error([] { nchw_to_nhwc(Tensor({2, 3})); }, {"nchw_to_nhwc", "(2, 3)"});
  expect_error([] { oihw_to_hwio(Tensor({1, 2, 3, 4, 5})); }, {"oihw_to_hwio", "(1, 2, 3, 4, 5)"});
}

}  // namespace
}  // namespace convkit
