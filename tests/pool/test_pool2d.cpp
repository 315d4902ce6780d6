// Unit tests for 2-D pooling: geometry (Keras' examples), the error table, hand-computed values, first-max
// tie-breaking, NaN / -inf, gradients (routing to the argmax, finite differences), global pooling, and the plan.
// Every expected value here is worked out by hand from DESIGN.md §1 or quoted from Keras' documentation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/pool.hpp"

namespace convkit {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

Pool2dParams pool(int kh, int kw) { return {.pool_size = {kh, kw}}; }
Pool2dParams pool(int kh, int kw, int sh, int sw, Padding padding = Padding::valid()) {
  return {.pool_size = {kh, kw}, .strides = Size2{sh, sw}, .padding = padding};
}

std::vector<float> values(const Tensor& t) { return {t.values().begin(), t.values().end()}; }

// (1, H, W, 1) image from row-major values.
Tensor image(int64_t h, int64_t w, std::vector<float> v) {
  Tensor t({1, h, w, 1});
  EXPECT_EQ(static_cast<int64_t>(v.size()), t.size());
  for (int64_t i = 0; i < t.size(); ++i) t[i] = v[static_cast<std::size_t>(i)];
  return t;
}

Tensor random_tensor(Shape shape, uint32_t seed) {
  Tensor t(std::move(shape));
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : t.values()) v = dist(gen);
  return t;
}

// A random permutation of 0, 1, ..., size-1 (as floats) in the given shape: distinct values spaced 1 apart, so
// every max-pooling window has a unique maximum and a finite-difference step below 0.5 cannot change it.
Tensor distinct_tensor(Shape shape, uint32_t seed) {
  Tensor t(std::move(shape));
  std::vector<float> v(static_cast<std::size_t>(t.size()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = v[static_cast<std::size_t>(i)];
  return t;
}

// ---- geometry ----------------------------------------------------------------------------------------------

TEST(Pool2dGeometry, MnistPoolTwoHalvesTheImage) {
  // Keras: MaxPooling2D(2) on (None, 28, 28, 32) -> (None, 14, 14, 32); strides default to pool_size.
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, pool(2, 2), {8, 28, 28, 32}), (Shape{8, 14, 14, 32}));
  EXPECT_EQ(pool2d_output_shape(PoolKind::average, pool(2, 2), {8, 28, 28, 32}), (Shape{8, 14, 14, 32}));
  const Pool2dGeometry g = pool2d_geometry(PoolKind::max, pool(2, 2), {8, 28, 28, 32});
  EXPECT_EQ(g.sh, 2);
  EXPECT_EQ(g.sw, 2);
  EXPECT_EQ(g.pad_top + g.pad_bottom + g.pad_left + g.pad_right, 0);
}

TEST(Pool2dGeometry, ValidFloorsOddSizes) {
  // floor((in - k) / s) + 1: 27 -> 13, 5 -> 2 with pool 2; pool 3 stride 2 on 7 -> 3.
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, pool(2, 2), {1, 27, 5, 1}), (Shape{1, 13, 2, 1}));
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, pool(3, 3, 2, 2), {1, 7, 8, 1}), (Shape{1, 3, 3, 1}));
  // Keras MaxPooling2D docs: 3x4 input, pool 2 stride 2 valid -> 1x2; pool 2 stride 1 on 3x3 -> 2x2.
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, pool(2, 2, 2, 2), {1, 3, 4, 1}), (Shape{1, 1, 2, 1}));
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, pool(2, 2, 1, 1), {1, 3, 3, 1}), (Shape{1, 2, 2, 1}));
}

TEST(Pool2dGeometry, SameIsTensorFlowExactWithOddSizes) {
  // out = ceil(in / s); total = max((out - 1) * s + k - in, 0); before = total / 2, the extra cell at the end.
  struct Case {
    int64_t in;
    int k, s;
    int64_t out, before, after;
  };
  const Case cases[] = {
      {7, 3, 2, 4, 1, 1},  // total = 3*2 + 3 - 7 = 2
      {8, 3, 2, 4, 0, 1},  // total = 6 + 3 - 8 = 1: the extra pixel goes bottom / right
      {5, 2, 2, 3, 0, 1},  // total = 4 + 2 - 5 = 1
      {3, 2, 1, 3, 0, 1},  // Keras docs: 3x3, pool 2, stride 1, same -> 3x3
      {9, 3, 3, 3, 0, 0},  // exact fit
      {5, 2, 3, 2, 0, 0},  // stride larger than the pool: max(3 + 2 - 5, 0) = 0
      {1, 3, 1, 1, 1, 1},  // pool larger than the input is fine with same
      {4, 5, 1, 4, 2, 2},  // total = 3 + 5 - 4 = 4
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "in " << c.in << " k " << c.k << " s " << c.s);
    Pool2dParams p = pool(c.k, 1, c.s, 1, Padding::same());
    const Pool2dGeometry g = pool2d_geometry(PoolKind::average, p, {2, c.in, 6, 3});
    EXPECT_EQ(g.oh, c.out);
    EXPECT_EQ(g.pad_top, c.before);
    EXPECT_EQ(g.pad_bottom, c.after);
    EXPECT_EQ(g.ow, 6);
    EXPECT_EQ(g.pad_left + g.pad_right, 0);
    // The width axis gets the same arithmetic.
    p = pool(1, c.k, 1, c.s, Padding::same());
    const Pool2dGeometry gw = pool2d_geometry(PoolKind::max, p, {2, 6, c.in, 3});
    EXPECT_EQ(gw.ow, c.out);
    EXPECT_EQ(gw.pad_left, c.before);
    EXPECT_EQ(gw.pad_right, c.after);
  }
}

TEST(Pool2dGeometry, ExplicitAndCeilMode) {
  // Explicit asymmetric: floor((6 + 1 + 2 - 3) / 2) + 1 = 4 rows; floor((5 + 0 + 1 - 2) / 1) + 1 = 5 columns.
  Pool2dParams p = pool(3, 2, 2, 1, Padding::explicit_pad(1, 2, 0, 1));
  Pool2dGeometry g = pool2d_geometry(PoolKind::max, p, {1, 6, 5, 2});
  EXPECT_EQ(g.oh, 4);
  EXPECT_EQ(g.ow, 5);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_bottom, 2);
  EXPECT_EQ(g.pad_left, 0);
  EXPECT_EQ(g.pad_right, 1);

  // ceil_mode rounds up: 5 with pool 2 -> floor 2, ceil 3 (the last window holds the last row alone).
  p = pool(2, 2);
  p.ceil_mode = true;
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, p, {1, 5, 4, 1}), (Shape{1, 3, 2, 1}));
  // PyTorch's rule: with pad 1, pool 2, stride 2 on 5, ceil((7 - 2) / 2) + 1 = 4, but the 4th window would
  // start at 6 - 1 = 5, past the input, so it is dropped: 3.
  p = pool(2, 2, 2, 2, Padding::symmetric(1, 1));
  p.ceil_mode = true;
  EXPECT_EQ(pool2d_output_shape(PoolKind::average, p, {1, 5, 5, 1}), (Shape{1, 3, 3, 1}));
  // pool 3 stride 2 pad 1 on 6: floor(5 / 2) + 1 = 3; ceil: 4 (the 4th window starts at 5, inside the input).
  p = pool(3, 3, 2, 2, Padding::symmetric(1, 1));
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, p, {1, 6, 6, 1}), (Shape{1, 3, 3, 1}));
  p.ceil_mode = true;
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, p, {1, 6, 6, 1}), (Shape{1, 4, 4, 1}));
  // "same" already rounds up; ceil_mode leaves it alone.
  p = pool(2, 2, 2, 2, Padding::same());
  p.ceil_mode = true;
  EXPECT_EQ(pool2d_output_shape(PoolKind::max, p, {1, 5, 5, 1}), (Shape{1, 3, 3, 1}));
}

TEST(Pool2dGeometry, StridesDefaultToPoolSizeAndCountIncludePadIsAverageOnly) {
  Pool2dParams p = pool(3, 2);
  p.count_include_pad = true;
  const Pool2dGeometry gm = pool2d_geometry(PoolKind::max, p, {1, 9, 8, 1});
  EXPECT_EQ(gm.sh, 3);
  EXPECT_EQ(gm.sw, 2);
  EXPECT_EQ(gm.oh, 3);
  EXPECT_EQ(gm.ow, 4);
  EXPECT_FALSE(gm.count_include_pad);
  EXPECT_TRUE(pool2d_geometry(PoolKind::average, p, {1, 9, 8, 1}).count_include_pad);
  p.strides = Size2{1, 3};
  const Pool2dGeometry g = pool2d_geometry(PoolKind::max, p, {1, 9, 8, 1});
  EXPECT_EQ(g.oh, 7);
  EXPECT_EQ(g.ow, 3);
}

// ---- errors ------------------------------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  PoolKind kind;
  Pool2dParams params;
  Shape input;
  std::vector<std::string> fragments;  // each must appear in the message
};

TEST(Pool2dErrors, EachInconsistencyNamesTheParameterAndValues) {
  const Pool2dParams ceil_pad = [] {
    Pool2dParams p = pool(2, 2, 1, 1, Padding::explicit_pad(2, 0, 0, 0));
    p.ceil_mode = true;
    return p;
  }();
  const ErrorCase cases[] = {
      {"zero pool", PoolKind::max, pool(0, 2), {1, 4, 4, 1}, {"MaxPooling2D", "pool_size", "(0, 2)"}},
      {"negative pool", PoolKind::average, pool(2, -1), {1, 4, 4, 1}, {"AveragePooling2D", "pool_size", "(2, -1)"}},
      {"zero stride", PoolKind::max, pool(2, 2, 0, 1), {1, 4, 4, 1}, {"MaxPooling2D", "strides", "(0, 1)"}},
      {"negative stride", PoolKind::average, pool(2, 2, 1, -3), {1, 4, 4, 1}, {"strides", "(1, -3)"}},
      {"negative pad", PoolKind::max, pool(2, 2, 1, 1, Padding::explicit_pad(0, 0, -1, 0)), {1, 4, 4, 1},
       {"MaxPooling2D", "padding", "(0, 0, -1, 0)"}},
      {"rank 3", PoolKind::max, pool(2, 2), {4, 4, 1}, {"MaxPooling2D", "4-D", "(4, 4, 1)"}},
      {"zero batch", PoolKind::average, pool(2, 2), {0, 4, 4, 1}, {"AveragePooling2D", "batch", "(0, 4, 4, 1)"}},
      {"zero channels", PoolKind::max, pool(2, 2), {1, 4, 4, 0}, {"channels", "(1, 4, 4, 0)"}},
      {"zero height", PoolKind::max, pool(1, 1), {1, 0, 4, 1}, {"MaxPooling2D", "height", "0"}},
      {"pool larger than input", PoolKind::max, pool(5, 2), {1, 4, 4, 1}, {"MaxPooling2D", "height", "5", "4"}},
      {"pool larger than padded input", PoolKind::average, pool(2, 7, 1, 1, Padding::symmetric(0, 1)), {1, 4, 4, 1},
       {"AveragePooling2D", "width", "7", "6"}},
      {"first window in padding", PoolKind::max, pool(2, 2, 1, 1, Padding::explicit_pad(0, 0, 2, 0)), {1, 4, 4, 1},
       {"MaxPooling2D", "padding left 2", "pool_size width 2", "first window"}},
      {"first window in padding, ceil", PoolKind::average, ceil_pad, {1, 4, 4, 1},
       {"AveragePooling2D", "padding top 2", "pool_size height 2"}},
      // 2 rows + 2 padding, pool 2 stride 2: the second window is rows 2..3, both padding.
      {"last window in padding", PoolKind::average, pool(2, 2, 2, 2, Padding::explicit_pad(0, 2, 0, 0)),
       {1, 2, 4, 1}, {"AveragePooling2D", "padding bottom 2", "pool_size height 2", "starts at 2", "height 2"}},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    try {
      (void)pool2d_geometry(c.kind, c.params, c.input);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const std::string& f : c.fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg << "\n  lacks: " << f;
    }
    // The plan and the wrappers validate the same way.
    EXPECT_THROW((void)Pool2dPlan::create(c.kind, c.params, c.input), Error);
  }
}

TEST(Pool2dErrors, GradientAndGlobalShapesAreChecked) {
  const Tensor x({1, 4, 4, 2});
  try {
    (void)pool2d_backward(PoolKind::max, pool(2, 2), x, Tensor({1, 2, 3, 2}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("MaxPooling2D"), std::string::npos) << msg;
    EXPECT_NE(msg.find("output gradient"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(1, 2, 3, 2)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(1, 2, 2, 2)"), std::string::npos) << msg;
  }
  try {
    (void)global_pool_forward(PoolKind::average, Tensor({4, 4, 2}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GlobalAveragePooling2D"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(4, 4, 2)"), std::string::npos) << e.what();
  }
  try {
    (void)global_pool_backward(PoolKind::max, x, Tensor({1, 3}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GlobalMaxPooling2D"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(1, 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)global_pool_forward(PoolKind::max, Tensor({1, 0, 4, 2})), Error);
}

// ---- forward values ----------------------------------------------------------------------------------------

TEST(Pool2dForward, KerasMaxPoolingExamples) {
  // Keras MaxPooling2D docs: 3x3 [1..9], pool 2, stride 1 -> valid [[5, 6], [8, 9]], same [[5,6,6],[8,9,9],[8,9,9]].
  const Tensor x = image(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(2, 2, 1, 1), x)), (std::vector<float>{5, 6, 8, 9}));
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(2, 2, 1, 1, Padding::same()), x)),
            (std::vector<float>{5, 6, 6, 8, 9, 9, 8, 9, 9}));
  // 3x4 [1..12], pool 2, stride 2, valid -> [[6, 8]].
  const Tensor x2 = image(3, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(2, 2, 2, 2), x2)), (std::vector<float>{6, 8}));
}

TEST(Pool2dForward, KerasAveragePoolingExamplesUseRealCellDivisor) {
  // Keras AveragePooling2D docs: 3x3 [1..9], pool 2, stride 1 -> valid [[3, 4], [6, 7]],
  // same [[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]] (the bottom / right windows average their real cells only).
  const Tensor x = image(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(values(pool2d_forward(PoolKind::average, pool(2, 2, 1, 1), x)), (std::vector<float>{3, 4, 6, 7}));
  EXPECT_EQ(values(pool2d_forward(PoolKind::average, pool(2, 2, 1, 1, Padding::same()), x)),
            (std::vector<float>{3, 4, 4.5f, 6, 7, 7.5f, 7.5f, 8.5f, 9}));
}

TEST(Pool2dForward, AverageDivisorWithAndWithoutPadding) {
  // 3x3 [1..9], pool 3, stride 1, padding 1. Corner window holds 1, 2, 4, 5 (sum 12): 12 / 4 = 3 (Keras) or
  // 12 / 9 (PyTorch). Edge window top-middle: 1+2+3+4+5+6 = 21 -> 21 / 6 = 3.5 or 21 / 9. Centre: 45 / 9 = 5.
  const Tensor x = image(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Pool2dParams p = pool(3, 3, 1, 1, Padding::symmetric(1, 1));
  const Tensor keras = pool2d_forward(PoolKind::average, p, x);
  ASSERT_EQ(keras.shape(), (Shape{1, 3, 3, 1}));
  EXPECT_FLOAT_EQ(keras[0], 3.0f);
  EXPECT_FLOAT_EQ(keras[1], 3.5f);
  EXPECT_FLOAT_EQ(keras[4], 5.0f);
  EXPECT_FLOAT_EQ(keras[8], (5.0f + 6 + 8 + 9) / 4);
  p.count_include_pad = true;
  const Tensor torch = pool2d_forward(PoolKind::average, p, x);
  EXPECT_FLOAT_EQ(torch[0], 12.0f / 9);
  EXPECT_FLOAT_EQ(torch[1], 21.0f / 9);
  EXPECT_FLOAT_EQ(torch[4], 5.0f);
  EXPECT_FLOAT_EQ(torch[8], 28.0f / 9);
}

TEST(Pool2dForward, CountIncludePadClipsCeilModeWindowsToThePaddedExtent) {
  // A row of five ones. PyTorch divides by the window clipped to [-pad, in + pad); the real cells are all 1, so
  // the output is real cells / divisor.
  const Tensor ones = image(1, 5, {1, 1, 1, 1, 1});
  // pool 3, stride 2, pad 1, ceil: windows [-1, 2), [1, 4), [3, 6) -> 2/3, 3/3, 2/3 (the last hangs into the pad).
  Pool2dParams p = pool(1, 3, 1, 2, Padding::symmetric(0, 1));
  p.ceil_mode = true;
  p.count_include_pad = true;
  std::vector<float> y = values(pool2d_forward(PoolKind::average, p, ones));
  ASSERT_EQ(y.size(), 3u);
  EXPECT_FLOAT_EQ(y[0], 2.0f / 3);
  EXPECT_FLOAT_EQ(y[1], 1.0f);
  EXPECT_FLOAT_EQ(y[2], 2.0f / 3);
  // pool 4, stride 3, pad 2, ceil: windows [-2, 2), [1, 5), [4, 8) clipped to [4, 7) -> 2/4, 4/4, 1/3.
  p = pool(1, 4, 1, 3, Padding::symmetric(0, 2));
  p.ceil_mode = true;
  p.count_include_pad = true;
  y = values(pool2d_forward(PoolKind::average, p, ones));
  ASSERT_EQ(y.size(), 3u);
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[1], 1.0f);
  EXPECT_FLOAT_EQ(y[2], 1.0f / 3);
  // The Keras divisor counts only real cells: all ones.
  p.count_include_pad = false;
  EXPECT_EQ(values(pool2d_forward(PoolKind::average, p, ones)), (std::vector<float>{1, 1, 1}));
  // ceil_mode without padding: the last window [4, 6) holds one cell, counted once either way.
  p = pool(1, 2);
  p.ceil_mode = true;
  p.count_include_pad = true;
  const Tensor x = image(1, 5, {1, 2, 3, 4, 10});
  EXPECT_EQ(values(pool2d_forward(PoolKind::average, p, x)), (std::vector<float>{1.5f, 3.5f, 10}));
  // Asymmetric pads (beyond PyTorch) generalise the rule: clip to in + pad_after. pool 3, stride 2, pads (0, 1),
  // ceil on 5: ceil((6 - 3) / 2) + 1 = 3 windows [0, 3) = {1, 2, 3}, [2, 5) = {3, 4, 10}, [4, 7) clipped to
  // [4, 6): 2 cells, 1 real = {10}.
  p = pool(1, 3, 1, 2, Padding::explicit_pad(0, 0, 0, 1));
  p.ceil_mode = true;
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, p, x)), (std::vector<float>{3, 10, 10}));
  y = values(pool2d_forward(PoolKind::average, p, x));
  ASSERT_EQ(y.size(), 3u);
  EXPECT_FLOAT_EQ(y[0], 2.0f);
  EXPECT_FLOAT_EQ(y[1], 17.0f / 3);
  EXPECT_FLOAT_EQ(y[2], 10.0f);
  p.count_include_pad = true;
  y = values(pool2d_forward(PoolKind::average, p, x));
  ASSERT_EQ(y.size(), 3u);
  EXPECT_FLOAT_EQ(y[0], 2.0f);
  EXPECT_FLOAT_EQ(y[1], 17.0f / 3);
  EXPECT_FLOAT_EQ(y[2], 5.0f);
}

TEST(Pool2dForward, MaxNeverSelectsPadding) {
  // All values negative: a zero-padded max would return 0 at the borders; -inf padding returns real values.
  const Tensor x = image(2, 2, {-4, -3, -2, -1});
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(2, 2, 1, 1, Padding::symmetric(1, 1)), x)),
            (std::vector<float>{-4, -3, -3, -2, -1, -1, -2, -1, -1}));
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(2, 2, 2, 2, Padding::same()), image(1, 3, {-5, -6, -7}))),
            (std::vector<float>{-5, -7}));
}

TEST(Pool2dForward, ChannelsAndBatchAreIndependent) {
  // (2, 2, 2, 2): image b, channel ch holds (b * 10 + ch * 100) + cell offset, negated for channel 1.
  Tensor x({2, 2, 2, 2});
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 4; ++i)
      for (int ch = 0; ch < 2; ++ch) x[(b * 4 + i) * 2 + ch] = (ch == 0 ? 1.0f : -1.0f) * float(b * 10 + i);
  const std::vector<float> ymax = values(pool2d_forward(PoolKind::max, pool(2, 2), x));
  EXPECT_EQ(ymax, (std::vector<float>{3, 0, 13, -10}));
  const std::vector<float> yavg = values(pool2d_forward(PoolKind::average, pool(2, 2), x));
  EXPECT_EQ(yavg, (std::vector<float>{1.5f, -1.5f, 11.5f, -11.5f}));
}

TEST(Pool2dForward, InfinityAndNaN) {
  // A window of -inf yields -inf (not the -inf of the padding: the real cell).
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(1, 2, 1, 1, Padding::symmetric(0, 1)),
                                  image(1, 2, {-kInf, -kInf}))),
            (std::vector<float>{-kInf, -kInf, -kInf}));
  // NaN propagates through max (PyTorch) and average.
  const Tensor x = image(1, 4, {1, kNaN, 3, 0});
  const std::vector<float> ymax = values(pool2d_forward(PoolKind::max, pool(1, 2), x));
  EXPECT_TRUE(std::isnan(ymax[0]));
  EXPECT_EQ(ymax[1], 3.0f);
  const std::vector<float> yavg = values(pool2d_forward(PoolKind::average, pool(1, 2), x));
  EXPECT_TRUE(std::isnan(yavg[0]));
  EXPECT_EQ(yavg[1], 1.5f);
  // +inf is an ordinary maximum.
  EXPECT_EQ(values(pool2d_forward(PoolKind::max, pool(1, 3), image(1, 3, {1, kInf, 2}))), (std::vector<float>{kInf}));
}

// ---- gradients ---------------------------------------------------------------------------------------------

TEST(Pool2dBackward, MaxRoutesToTheArgmax) {
  // 4x4, pool 2: maxima 6 (row 1, col 1), 8 (1, 3), 14 (3, 1), 16 (3, 3) -> each gets its window's dy.
  const Tensor x = image(4, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  const Tensor dy({1, 2, 2, 1}, {10, 20, 30, 40});
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(2, 2), x, dy)),
            (std::vector<float>{0, 0, 0, 0, 0, 10, 0, 20, 0, 0, 0, 0, 0, 30, 0, 40}));
  // Overlapping windows (pool 2, stride 1) sharing a maximum accumulate: 9 wins all four windows of the 3x3.
  const Tensor x2 = image(3, 3, {1, 2, 3, 4, 9, 5, 6, 7, 8});
  const Tensor dy2({1, 2, 2, 1}, {1, 2, 4, 8});
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(2, 2, 1, 1), x2, dy2)),
            (std::vector<float>{0, 0, 0, 0, 15, 0, 0, 0, 0}));
  // Padding never receives gradient: the corner windows of a padded 2x2 route to real cells.
  const Tensor x3 = image(2, 2, {-4, -3, -2, -1});
  const Tensor dy3({1, 3, 3, 1}, {1, 2, 4, 8, 16, 32, 64, 128, 256});
  // Window maxima: -4 | -3 -3 | -2 | -1 x5 -> dx(-4) = 1, dx(-3) = 2 + 4, dx(-2) = 8 + 64, dx(-1) = rest.
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(2, 2, 1, 1, Padding::symmetric(1, 1)), x3, dy3)),
            (std::vector<float>{1, 6, 72, 16 + 32 + 128 + 256}));
}

TEST(Pool2dBackward, MaxTiesGoToTheFirstInScanOrder) {
  // All equal: the top-left cell of each window.
  const Tensor flat(Shape{1, 2, 4, 1}, 7.0f);
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(2, 2), flat, Tensor({1, 1, 2, 1}, {1, 2}))),
            (std::vector<float>{1, 0, 2, 0, 0, 0, 0, 0}));
  // [[1, 3], [3, 2]]: the 3 in row 0 comes first in row-major order.
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(2, 2), image(2, 2, {1, 3, 3, 2}), Tensor({1, 1, 1, 1}, {5}))),
            (std::vector<float>{0, 5, 0, 0}));
  // [[2, 3], [3, 1]]: row-major picks (0, 1); a column-major scan would pick (1, 0).
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(2, 2), image(2, 2, {2, 3, 3, 1}), Tensor({1, 1, 1, 1}, {5}))),
            (std::vector<float>{0, 5, 0, 0}));
  // Sliding windows over a tied row: each window picks its own first cell.
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(1, 2, 1, 1), image(1, 3, {5, 5, 5}),
                                   Tensor({1, 1, 2, 1}, {1, 10}))),
            (std::vector<float>{1, 10, 0}));
}

TEST(Pool2dBackward, MaxNaNAndInfinityRouting) {
  // PyTorch: the last NaN in scan order takes the gradient.
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(1, 4), image(1, 4, {1, kNaN, 3, kNaN}),
                                   Tensor({1, 1, 1, 1}, {1}))),
            (std::vector<float>{0, 0, 0, 1}));
  // A window of -inf routes to its first real cell, never to the padding.
  EXPECT_EQ(values(pool2d_backward(PoolKind::max, pool(1, 2, 1, 1, Padding::symmetric(0, 1)),
                                   image(1, 2, {-kInf, -kInf}), Tensor({1, 1, 3, 1}, {1, 2, 4}))),
            (std::vector<float>{3, 4}));
}

TEST(Pool2dBackward, AverageSpreadsOverRealCells) {
  // 3x3 ones-gradient, pool 3, stride 1, padding 1, Keras divisor: cell (0,0) lies in the windows centred at
  // (0,0) [4 real cells], (0,1) [6], (1,0) [6], (1,1) [9] -> 1/4 + 1/6 + 1/6 + 1/9.
  const Tensor x(Shape{1, 3, 3, 1}, 0.0f);
  const Tensor dy(Shape{1, 3, 3, 1}, 1.0f);
  Pool2dParams p = pool(3, 3, 1, 1, Padding::symmetric(1, 1));
  const Tensor dx = pool2d_backward(PoolKind::average, p, x, dy);
  EXPECT_FLOAT_EQ(dx[0], 1.0f / 4 + 1.0f / 6 + 1.0f / 6 + 1.0f / 9);
  // The centre lies in all nine windows: 4 corners (1/4), 4 edges (1/6), the centre (1/9).
  EXPECT_FLOAT_EQ(dx[4], 4.0f / 4 + 4.0f / 6 + 1.0f / 9);
  p.count_include_pad = true;  // every window divides by 9
  const Tensor dxt = pool2d_backward(PoolKind::average, p, x, dy);
  EXPECT_FLOAT_EQ(dxt[0], 4.0f / 9);
  EXPECT_FLOAT_EQ(dxt[4], 1.0f);
}

// L(x) = sum(pool(x) * w) in double; dL/dx by central differences against pool2d_backward(x, w).
void expect_matches_finite_differences(PoolKind kind, const Pool2dParams& p, const Tensor& x, float step,
                                       double tolerance) {
  const Shape out = pool2d_output_shape(kind, p, x.shape());
  const Tensor w = random_tensor(out, 99);
  auto loss = [&](const Tensor& xs) {
    const Tensor y = pool2d_forward(kind, p, xs);
    double s = 0.0;
    for (int64_t i = 0; i < y.size(); ++i) s += double(y[i]) * double(w[i]);
    return s;
  };
  const Tensor dx = pool2d_backward(kind, p, x, w);
  Tensor xs = x;
  for (int64_t i = 0; i < x.size(); ++i) {
    xs[i] = x[i] + step;
    const double up = loss(xs);
    xs[i] = x[i] - step;
    const double down = loss(xs);
    xs[i] = x[i];
    const double numeric = (up - down) / (2.0 * double(step));
    EXPECT_NEAR(dx[i], numeric, tolerance) << "input element " << i;
  }
}

TEST(Pool2dBackward, AverageMatchesFiniteDifferences) {
  // Average pooling is linear, so central differences are exact up to fp32 rounding of the forward pass:
  // with |x| <= 1, step 0.25 and at most 9 terms per output the error stays far below 1e-4.
  const Tensor x = random_tensor({2, 5, 6, 3}, 7);
  Pool2dParams ceil_pad = pool(3, 2, 2, 2, Padding::symmetric(1, 1));
  ceil_pad.ceil_mode = true;
  Pool2dParams ceil_pad_torch = ceil_pad;
  ceil_pad_torch.count_include_pad = true;
  Pool2dParams same_torch = pool(3, 3, 2, 1, Padding::same());
  same_torch.count_include_pad = true;
  const Pool2dParams cases[] = {pool(2, 2),
                                pool(3, 3, 1, 1),
                                pool(3, 3, 2, 1, Padding::same()),
                                same_torch,
                                pool(2, 3, 1, 2, Padding::explicit_pad(1, 0, 2, 1)),
                                ceil_pad,
                                ceil_pad_torch};
  int index = 0;
  for (const Pool2dParams& p : cases) {
    SCOPED_TRACE(testing::Message() << "case " << index++);
    expect_matches_finite_differences(PoolKind::average, p, x, 0.25f, 1e-4);
  }
}

TEST(Pool2dBackward, MaxMatchesFiniteDifferences) {
  // Distinct integers spaced 1 apart: a step of 0.25 never changes a window's argmax, so max pooling is linear
  // around x and central differences are exact.
  const Tensor x = distinct_tensor({2, 5, 6, 3}, 11);
  Pool2dParams ceil_pad = pool(3, 2, 2, 2, Padding::symmetric(1, 1));
  ceil_pad.ceil_mode = true;
  const Pool2dParams cases[] = {pool(2, 2), pool(3, 3, 1, 1), pool(3, 3, 2, 1, Padding::same()),
                                pool(2, 3, 1, 2, Padding::explicit_pad(1, 0, 2, 1)), ceil_pad};
  int index = 0;
  for (const Pool2dParams& p : cases) {
    SCOPED_TRACE(testing::Message() << "case " << index++);
    expect_matches_finite_differences(PoolKind::max, p, x, 0.25f, 1e-4);
  }
}

// ---- global pooling ----------------------------------------------------------------------------------------

TEST(GlobalPool, ForwardAndBackwardMatchDirectLoops) {
  const Tensor x = distinct_tensor({2, 3, 4, 5}, 3);
  const Tensor dy = random_tensor({2, 5}, 4);
  const Tensor ymax = global_pool_forward(PoolKind::max, x);
  const Tensor yavg = global_pool_forward(PoolKind::average, x);
  ASSERT_EQ(ymax.shape(), (Shape{2, 5}));
  ASSERT_EQ(yavg.shape(), (Shape{2, 5}));
  const Tensor dxmax = global_pool_backward(PoolKind::max, x, dy);
  const Tensor dxavg = global_pool_backward(PoolKind::average, x, dy);
  ASSERT_EQ(dxmax.shape(), x.shape());
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 5; ++c) {
      double sum = 0.0;
      float best = -kInf;
      int64_t best_at = -1;
      for (int64_t i = 0; i < 12; ++i) {
        const int64_t at = (n * 12 + i) * 5 + c;
        sum += x[at];
        if (x[at] > best) best = x[at], best_at = at;
      }
      EXPECT_EQ(ymax[n * 5 + c], best);
      EXPECT_NEAR(yavg[n * 5 + c], sum / 12, 1e-5 * (1 + std::abs(sum)));
      for (int64_t i = 0; i < 12; ++i) {
        const int64_t at = (n * 12 + i) * 5 + c;
        EXPECT_EQ(dxmax[at], at == best_at ? dy[n * 5 + c] : 0.0f);
        EXPECT_FLOAT_EQ(dxavg[at], dy[n * 5 + c] / 12);
      }
    }
}

TEST(GlobalPool, FirstMaximumAndSingleCell) {
  const Tensor x = image(2, 2, {4, 1, 4, 4});
  EXPECT_EQ(values(global_pool_backward(PoolKind::max, x, Tensor({1, 1}, {3}))), (std::vector<float>{3, 0, 0, 0}));
  // 1x1 images: global pooling is the identity.
  const Tensor one = random_tensor({3, 1, 1, 4}, 5);
  EXPECT_EQ(values(global_pool_forward(PoolKind::average, one)), values(one));
  EXPECT_EQ(values(global_pool_forward(PoolKind::max, one)), values(one));
}

// ---- the plan ----------------------------------------------------------------------------------------------

TEST(Pool2dPlan, MatchesWrappersAndIsThreadSafe) {
  Pool2dParams p = pool(3, 3, 2, 2, Padding::same());
  const Tensor x = random_tensor({3, 11, 9, 4}, 21);
  for (PoolKind kind : {PoolKind::max, PoolKind::average}) {
    const Pool2dPlan plan = Pool2dPlan::create(kind, p, x.shape());
    EXPECT_EQ(plan.algorithm(), "nhwc_direct");
    EXPECT_NE(plan.explain().find(pool_op_name(kind)), std::string::npos);
    const Tensor y = pool2d_forward(kind, p, x);
    const Tensor dy = random_tensor(y.shape(), 22);
    const Tensor dx = pool2d_backward(kind, p, x, dy);
    // Four threads run the same const plan at once into their own buffers; each must equal the wrappers'.
    std::vector<Tensor> ys(4, Tensor(y.shape())), dxs(4, Tensor(x.shape(), 123.0f));
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < 20; ++rep) {
          plan.forward(x.data(), ys[t].data());
          plan.backward(x.data(), dy.data(), dxs[t].data());
        }
      });
    for (std::thread& t : threads) t.join();
    for (std::size_t t = 0; t < 4; ++t) {
      EXPECT_EQ(values(ys[t]), values(y));
      EXPECT_EQ(values(dxs[t]), values(dx));  // also: backward overwrites dx (it started at 123)
    }
  }
}

}  // namespace
}  // namespace convkit
