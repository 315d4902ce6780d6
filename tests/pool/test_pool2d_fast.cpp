// The fast pooling algorithm (src/ops/pool2d_fast.hpp) against the reference kernels (src/ref/pool2d.hpp), which
// test_pool2d.cpp and the PyTorch differential test judge independently. The fast loops perform the reference's
// operations in the reference's order per channel, so the comparison is bitwise (NaN compared as NaN), over
// every padding kind, ceil_mode, both average divisors, overlapping and gapped windows, channel counts around
// the channel block, thread counts, and inputs with ties, infinities and NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/pool.hpp"
#include "convkit/runtime.hpp"
#include "ops/pool2d_fast.hpp"
#include "ref/pool2d.hpp"

namespace convkit {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Config {
  int kh, kw, sh, sw;
  Padding padding;
  bool ceil_mode;
  bool count_include_pad;
};

// Inputs: 0 = random values; 1 = few distinct values (many ties, signed zeros); 2 = ties plus infinities and NaN.
Tensor input(Shape shape, int flavour, uint32_t seed) {
  Tensor t(std::move(shape));
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 9);
  for (float& v : t.values()) {
    v = dist(gen);
    if (flavour >= 1) v = std::round(v * 2.0f) * 0.5f;  // -1, -0.5, -0, 0, 0.5, 1: ties everywhere
    if (flavour == 2) {
      const int k = pick(gen);
      if (k == 0) v = kNaN;
      if (k == 1) v = -kInf;
      if (k == 2) v = kInf;
    }
  }
  return t;
}

// Bitwise equality, except that any two NaNs compare equal (the payload is not part of the contract).
void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int64_t bad = 0;
  for (int64_t i = 0; i < got.size(); ++i) {
    const float a = got[i], b = want[i];
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    if ((std::isnan(a) && std::isnan(b)) || ua == ub) continue;
    if (++bad <= 3) ADD_FAILURE() << what << ": element " << i << " is " << a << ", reference " << b;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.size() << " elements differ";
}

std::string describe(PoolKind kind, const Config& c, const Shape& s, int flavour, int threads) {
  return std::string(pool_op_name(kind)) + " pool " + std::to_string(c.kh) + "x" + std::to_string(c.kw) +
         " stride " + std::to_string(c.sh) + "x" + std::to_string(c.sw) + " padding " + to_string(c.padding) +
         (c.ceil_mode ? " ceil" : "") + (c.count_include_pad ? " count_include_pad" : "") + " input " +
         shape_to_string(s) + " flavour " + std::to_string(flavour) + " threads " + std::to_string(threads);
}

// Runs fast and reference in both directions; the fast outputs start as garbage so that "overwrites" is checked.
void check(PoolKind kind, const Config& c, const Shape& s, int flavour, int threads, uint32_t seed) {
  const Pool2dParams p{.pool_size = {c.kh, c.kw}, .strides = Size2{c.sh, c.sw}, .padding = c.padding,
                       .ceil_mode = c.ceil_mode, .count_include_pad = c.count_include_pad};
  const Pool2dGeometry g = pool2d_geometry(kind, p, s);
  const std::string what = describe(kind, c, s, flavour, threads);
  const Tensor x = input(s, flavour, seed);
  Tensor y_ref(g.output_shape()), y_fast(g.output_shape(), 7.0f);
  ref::pool2d_fwd(g, x.data(), y_ref.data());
  ops::pool2d_fast_fwd(g, x.data(), y_fast.data(), threads);
  expect_same(y_fast, y_ref, what + " forward");

  const Tensor dy = input(g.output_shape(), flavour == 2 ? 0 : flavour, seed + 1);
  Tensor dx_ref(s), dx_fast(s, -3.0f);
  ref::pool2d_bwd(g, x.data(), dy.data(), dx_ref.data());
  ops::pool2d_fast_bwd(g, x.data(), dy.data(), dx_fast.data(), threads);
  expect_same(dx_fast, dx_ref, what + " backward");
  if (kind != PoolKind::max) return;

  // Training's pair: forward keeping each output's cell, backward from the cells alone (x is not passed).
  Tensor y_arg(g.output_shape(), 7.0f), dx_arg(s, -3.0f);
  std::vector<int32_t> argmax(static_cast<std::size_t>(y_arg.size()), -7);
  ops::pool2d_fast_fwd_argmax(g, x.data(), y_arg.data(), argmax.data(), threads);
  expect_same(y_arg, y_ref, what + " forward with argmax");
  int64_t wrong = 0;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const ref::PoolSpan ys = ref::pool_span(oy, g.sh, g.kh, g.pad_top, g.pad_bottom, g.ih);
        const ref::PoolSpan xs = ref::pool_span(ox, g.sw, g.kw, g.pad_left, g.pad_right, g.iw);
        for (int64_t ch = 0; ch < g.c; ++ch) {
          const float* xn = x.data() + n * g.ih * g.iw * g.c;
          const int64_t want = (ref::max_pool_argmax(xn, g.iw, g.c, ch, ys, xs) - ch) / g.c;
          const int32_t got = argmax[static_cast<std::size_t>(((n * g.oh + oy) * g.ow + ox) * g.c + ch)];
          if (got != want && ++wrong <= 3)
            ADD_FAILURE() << what << ": argmax of output (" << n << ", " << oy << ", " << ox << ", " << ch << ") is "
                          << got << ", the reference's cell " << want;
        }
      }
  EXPECT_EQ(wrong, 0) << what;
  ops::pool2d_fast_bwd_argmax(g, argmax.data(), dy.data(), dx_arg.data(), threads);
  expect_same(dx_arg, dx_ref, what + " backward from argmax");
}

std::vector<Config> configs() {
  const Padding valid = Padding::valid(), same = Padding::same();
  return {
      {2, 2, 2, 2, valid, false, false},                            // the classic CNN's pooling
      {3, 3, 2, 2, valid, false, false},                            // overlapping windows
      {3, 3, 1, 1, same, false, false},                             // heavy overlap, padding on every side
      {3, 3, 2, 2, same, false, false},                             // TF "same" with the extra cell at the end
      {2, 2, 2, 2, same, false, true},                              // "same" + PyTorch divisor
      {2, 3, 3, 2, valid, false, false},                            // gaps between rows, overlap across columns
      {1, 1, 2, 2, valid, false, false},                            // pure subsampling
      {3, 2, 2, 1, Padding::explicit_pad(1, 2, 0, 1), false, false},  // asymmetric explicit padding
      {3, 2, 2, 1, Padding::explicit_pad(1, 2, 0, 1), false, true},
      {2, 2, 2, 2, Padding::symmetric(1, 1), true, false},          // ceil_mode with padding
      {2, 2, 2, 2, Padding::symmetric(1, 1), true, true},           // the clipped count_include_pad divisor
      {3, 3, 2, 2, valid, true, true},                              // ceil_mode windows hanging past the input
      {4, 1, 1, 3, Padding::explicit_pad(3, 0, 0, 0), false, true},  // pad as large as allowed (kernel - 1)
  };
}

TEST(Pool2dFast, MatchesReferenceOverEveryConfiguration) {
  const std::vector<Shape> shapes = {{2, 9, 8, 1}, {3, 7, 10, 3}, {2, 8, 8, 32}, {1, 6, 5, 65}, {2, 5, 7, 130}};
  uint32_t seed = 1;
  for (PoolKind kind : {PoolKind::max, PoolKind::average})
    for (const Config& c : configs())
      for (const Shape& s : shapes)
        for (int flavour = 0; flavour < 3; ++flavour) check(kind, c, s, flavour, 1, seed++);
}

TEST(Pool2dFast, ThreadCountsGiveTheSameResults) {
  // Large enough to pass the parallel work threshold; odd batch and channel-block counts split unevenly.
  uint32_t seed = 100;
  for (PoolKind kind : {PoolKind::max, PoolKind::average})
    for (const Config& c : {configs()[0], configs()[2], configs()[10]})
      for (const Shape& s : {Shape{5, 28, 28, 32}, Shape{1, 30, 31, 70}, Shape{3, 16, 16, 130}})
        for (int threads : {2, 3, 4}) check(kind, c, s, 2, threads, seed++);
}

TEST(Pool2dFast, EdgeShapes) {
  uint32_t seed = 200;
  for (PoolKind kind : {PoolKind::max, PoolKind::average}) {
    // A 1x1 image, a window covering the whole image (what the global poolings run), a single row / column.
    check(kind, {1, 1, 1, 1, Padding::valid(), false, false}, {2, 1, 1, 5}, 2, 2, seed++);
    check(kind, {6, 9, 6, 9, Padding::valid(), false, false}, {4, 6, 9, 64}, 2, 2, seed++);
    check(kind, {1, 3, 1, 2, Padding::same(), false, false}, {3, 1, 17, 4}, 2, 1, seed++);
    check(kind, {3, 1, 2, 1, Padding::same(), true, true}, {3, 17, 1, 4}, 2, 1, seed++);
  }
}

TEST(Pool2dFast, NaNAndInfinityRoutingByHand) {
  // One 2x2 window, three channels: channel 0 holds a NaN at the second cell (the window's max is NaN and the
  // gradient goes there); channel 1 NaNs at cells 1 and 3 (the LAST NaN takes it); channel 2 is all -inf
  // (the maximum is -inf, and the first cell takes the gradient).
  const Pool2dParams p{.pool_size = {2, 2}};
  const Pool2dGeometry g = pool2d_geometry(PoolKind::max, p, {1, 2, 2, 3});
  const float x[12] = {1, 2, -kInf, kNaN, kNaN, -kInf, 5, 0, -kInf, 3, kNaN, -kInf};  // (2, 2, 3)
  float y[3];
  ops::pool2d_fast_fwd(g, x, y, 1);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_TRUE(std::isnan(y[1]));
  EXPECT_EQ(y[2], -kInf);
  const float dy[3] = {10, 20, 30};
  float dx[12];
  ops::pool2d_fast_bwd(g, x, dy, dx, 1);
  const float want[12] = {0, 0, 30, 10, 0, 0, 0, 0, 0, 0, 20, 0};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(dx[i], want[i]) << "dx element " << i;
}

TEST(Pool2dFast, PlanChoosesIt) {
  const Pool2dPlan plan = Pool2dPlan::create(PoolKind::max, {.pool_size = {2, 2}}, {4, 28, 28, 32});
  EXPECT_EQ(plan.algorithm(), "nhwc_direct");
  EXPECT_NE(plan.explain().find("nhwc_direct: chosen"), std::string::npos) << plan.explain();
}

// The plan's argmax pair: offered for max pooling on the fast algorithm, refused with a message otherwise.
TEST(Pool2dFast, PlanKeepsArgmaxForMaxPoolingOnly) {
  const Shape s{2, 6, 6, 3};
  const Pool2dPlan max = Pool2dPlan::create(PoolKind::max, {.pool_size = {2, 2}}, s);
  ASSERT_TRUE(max.keeps_argmax());
  const Tensor x = input(s, 2, 5u), dy = input(max.geometry().output_shape(), 0, 6u);
  Tensor y(max.geometry().output_shape()), dx(s), dx_ref(s);
  std::vector<int32_t> argmax(static_cast<std::size_t>(y.size()));
  max.forward(x.data(), y.data(), argmax.data());
  max.backward_from_argmax(argmax.data(), dy.data(), dx.data());
  max.backward(x.data(), dy.data(), dx_ref.data());
  expect_same(dx, dx_ref, "plan backward_from_argmax");

  const Pool2dPlan avg = Pool2dPlan::create(PoolKind::average, {.pool_size = {2, 2}}, s);
  EXPECT_FALSE(avg.keeps_argmax());
  try {
    avg.forward(x.data(), y.data(), argmax.data());
    ADD_FAILURE() << "average pooling's forward with argmax did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max pooling"), std::string::npos) << e.what();
  }
  EXPECT_THROW(avg.backward_from_argmax(argmax.data(), dy.data(), dx.data()), Error);
}

}  // namespace
}  // namespace convkit
