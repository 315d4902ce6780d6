// Algebraic properties of the Conv2D forward pass (conv2d_forward), each checked against an independent
// construction: depthwise = per-channel convolutions, groups = separate convolutions on channel slices, 1x1 = matrix
// product, identity kernels, dilation = zero-stuffed kernel, stride = subsampled stride-1 output, and hand-computed
// examples of every padding mode.
//
// Data lie on the k/8 grid (conv_test_util.hpp), so both sides of each comparison are exact in fp32 and the
// tolerance (1e-5 relative to the largest value, at least 1) only leaves room for a non-exact fast path (Winograd);
// a bug changes some output by at least one product, |x * w| >= 1/64, far above it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "ref/conv_test_util.hpp"

namespace convkit {
namespace {

using testutil::at4;
using testutil::grid_tensor;

// abs_tol < 0: 1e-5 relative to the largest wanted value (at least 1).
void expect_tensors_near(const Tensor& got, const Tensor& want, const std::string& what, double abs_tol = -1.0) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  double scale = 1.0;
  for (float v : want.values()) scale = std::max(scale, double(std::fabs(v)));
  const double tol = abs_tol >= 0.0 ? abs_tol : 1e-5 * scale;
  int bad = 0;
  for (int64_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - double(want[i])) <= tol) && ++bad <= 5)
      ADD_FAILURE() << what << " [" << i << "]: got " << got[i] << ", want " << want[i];
  EXPECT_EQ(bad, 0) << what;
}

Tensor forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor* b = nullptr) {
  return conv2d_forward(p, x, w, p.use_bias ? b : nullptr);
}

// Channels [c0, c0 + count) of an NHWC tensor (or of the last axis of any 4-D tensor).
Tensor slice_last(const Tensor& t, int64_t c0, int64_t count) {
  const Shape& s = t.shape();
  Tensor out({s[0], s[1], s[2], count});
  for (int64_t a = 0; a < s[0]; ++a)
    for (int64_t b = 0; b < s[1]; ++b)
      for (int64_t c = 0; c < s[2]; ++c)
        for (int64_t d = 0; d < count; ++d) out[at4(out.shape(), a, b, c, d)] = t[at4(s, a, b, c, c0 + d)];
  return out;
}

constexpr PaddingMode kModes[] = {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate,
                                  PaddingMode::circular};

// ---- depthwise and groups -------------------------------------------------------------------------------------

TEST(Conv2dProperties, DepthwiseEqualsPerChannelConvolutions) {
  std::mt19937 rng(1);
  for (PaddingMode mode : kModes)
    for (int multiplier : {1, 3}) {
      const int64_t C = 3;
      const DepthwiseConv2dParams d{.kernel_size = {3, 2}, .strides = {2, 1}, .padding = Padding::same(),
                                    .depth_multiplier = multiplier, .padding_mode = mode};
      const Tensor x = grid_tensor({2, 6, 5, C}, rng);
      const Tensor dk = grid_tensor({3, 2, C, multiplier}, rng);  // (kh, kw, in_channels, depth_multiplier)
      const Tensor b = grid_tensor({C * multiplier}, rng);
      Tensor k = dk;
      k.reshape({3, 2, 1, C * multiplier});  // the documented identical memory layout
      const Tensor y = forward(depthwise_to_conv2d(d, C), x, k, &b);

      // Independent construction: output channel c * M + m is a single-channel convolution of input channel c
      // with the kernel slice dk[:, :, c, m].
      Conv2dParams single{.filters = 1, .kernel_size = {3, 2}, .strides = {2, 1}, .padding = Padding::same(),
                          .padding_mode = mode};
      for (int64_t c = 0; c < C; ++c)
        for (int64_t m = 0; m < multiplier; ++m) {
          Tensor kcm({3, 2, 1, 1});
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 2; ++kx) kcm[ky * 2 + kx] = dk[at4(dk.shape(), ky, kx, c, m)];
          const Tensor bcm({1}, {b[c * multiplier + m]});
          const Tensor want = forward(single, slice_last(x, c, 1), kcm, &bcm);
          expect_tensors_near(slice_last(y, c * multiplier + m, 1), want,
                              "depthwise " + to_string(mode) + " channel " + std::to_string(c) + " multiplier " +
                                  std::to_string(m));
        }
    }
}

TEST(Conv2dProperties, GroupsEqualSeparateConvolutionsOnSlices) {
  std::mt19937 rng(2);
  for (PaddingMode mode : kModes) {
    const int64_t G = 3, icg = 2, ocg = 3;
    const Conv2dParams p{.filters = int(G * ocg), .kernel_size = {3, 3}, .strides = {1, 2},
                         .padding = Padding::explicit_pad(1, 2, 2, 0), .dilation_rate = {2, 1}, .groups = int(G),
                         .padding_mode = mode};
    const Tensor x = grid_tensor({2, 5, 6, G * icg}, rng);
    const Tensor w = grid_tensor({3, 3, icg, G * ocg}, rng);
    const Tensor b = grid_tensor({G * ocg}, rng);
    const Tensor y = forward(p, x, w, &b);
    Conv2dParams one = p;
    one.groups = 1;
    one.filters = int(ocg);
    for (int64_t g = 0; g < G; ++g) {
      const Tensor bg({ocg}, {b[g * ocg], b[g * ocg + 1], b[g * ocg + 2]});
      const Tensor want = forward(one, slice_last(x, g * icg, icg), slice_last(w, g * ocg, ocg), &bg);
      expect_tensors_near(slice_last(y, g * ocg, ocg), want, "group " + std::to_string(g) + " " + to_string(mode));
    }
  }
}

// ---- closed forms ---------------------------------------------------------------------------------------------

TEST(Conv2dProperties, OneByOneStrideOneIsAMatrixProduct) {
  std::mt19937 rng(3);
  const Conv2dParams p{.filters = 7, .kernel_size = {1, 1}};
  const Tensor x = grid_tensor({2, 4, 5, 6}, rng);
  const Tensor w = grid_tensor({1, 1, 6, 7}, rng);  // a (6, 7) matrix
  const Tensor b = grid_tensor({7}, rng);
  const Tensor y = forward(p, x, w, &b);
  Tensor want({2, 4, 5, 7});
  for (int64_t row = 0; row < 2 * 4 * 5; ++row)
    for (int64_t o = 0; o < 7; ++o) {
      double acc = b[o];
      for (int64_t c = 0; c < 6; ++c) acc += double(x[row * 6 + c]) * double(w[c * 7 + o]);
      want[row * 7 + o] = static_cast<float>(acc);
    }
  expect_tensors_near(y, want, "1x1 conv vs x @ W + b");
}

TEST(Conv2dProperties, IdentityKernelWithSamePaddingReproducesTheInput) {
  std::mt19937 rng(4);
  const int64_t C = 3;
  const Tensor x = grid_tensor({2, 6, 7, C}, rng);
  for (PaddingMode mode : kModes)
    for (int k : {1, 3, 5})
      for (int d : {1, 2}) {
        // k_eff up to 9 on a 6-row input: "same" pads 4 / 4, allowed for every mode (reflect needs 4 < 6).
        const Conv2dParams p{.filters = int(C), .kernel_size = {k, k}, .padding = Padding::same(),
                             .dilation_rate = {d, d}, .use_bias = false, .padding_mode = mode};
        Tensor w({k, k, C, C}, 0.0f);
        for (int64_t c = 0; c < C; ++c) w[at4(w.shape(), k / 2, k / 2, c, c)] = 1.0f;
        expect_tensors_near(forward(p, x, w), x,
                            "identity k=" + std::to_string(k) + " d=" + std::to_string(d) + " " + to_string(mode));
      }
}

TEST(Conv2dProperties, BiasAndActivationAreApplied) {
  std::mt19937 rng(5);
  Conv2dParams p{.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same(), .use_bias = false};
  const Tensor x = grid_tensor({1, 5, 5, 2}, rng), w = grid_tensor({3, 3, 2, 4}, rng), b = grid_tensor({4}, rng);
  const Tensor z0 = forward(p, x, w);
  p.use_bias = true;
  const Tensor z = forward(p, x, w, &b);
  for (int64_t i = 0; i < z.size(); ++i) ASSERT_EQ(z[i], z0[i] + b[i % 4]) << i;
  for (Activation a : {Activation::relu, Activation::tanh, Activation::sigmoid}) {
    p.activation = a;
    const Tensor y = forward(p, x, w, &b);
    for (int64_t i = 0; i < y.size(); ++i) {
      const double zi = z[i];
      const double want = a == Activation::relu ? std::max(zi, 0.0)
                          : a == Activation::tanh ? std::tanh(zi)
                                                  : 1.0 / (1.0 + std::exp(-zi));
      ASSERT_NEAR(y[i], want, 1e-6) << to_string(a) << " [" << i << "]";
    }
  }
}

TEST(Conv2dProperties, BatchElementsAreIndependent) {
  std::mt19937 rng(6);
  const Conv2dParams p{.filters = 3, .kernel_size = {2, 3}, .strides = {2, 1}, .padding = Padding::same(),
                       .padding_mode = PaddingMode::reflect};
  const Tensor x = grid_tensor({3, 5, 4, 2}, rng), w = grid_tensor({2, 3, 2, 3}, rng), b = grid_tensor({3}, rng);
  const Tensor y = forward(p, x, w, &b);
  const int64_t in_per = 5 * 4 * 2, out_per = y.size() / 3;
  for (int64_t n = 0; n < 3; ++n) {
    Tensor xn({1, 5, 4, 2});
    std::copy_n(x.data() + n * in_per, in_per, xn.data());
    const Tensor yn = forward(p, xn, w, &b);
    Tensor got({1, y.dim(1), y.dim(2), y.dim(3)});
    std::copy_n(y.data() + n * out_per, out_per, got.data());
    expect_tensors_near(got, yn, "batch element " + std::to_string(n));
  }
}

// ---- padding modes by hand ------------------------------------------------------------------------------------

// The hand examples have integer outputs in which every padded cell read is one digit: a wrong cell moves an output
// by at least 1, so the comparison is absolute.
constexpr double kHandTol = 0.25;

struct HandCase {
  PaddingMode mode;
  std::vector<float> want;
};

// x = [1, 2, 3] along the width, kernel [1, 10, 100], one pad each side: every output digit names the padded
// cell it read. Padded rows: zeros [0 1 2 3 0], reflect [2 1 2 3 2], replicate [1 1 2 3 3], circular [3 1 2 3 1].
TEST(Conv2dProperties, PaddingModesOnAOneByThreeInput) {
  const Tensor x({1, 1, 3, 1}, {1, 2, 3});
  const Tensor w({1, 3, 1, 1}, {1, 10, 100});
  const std::vector<HandCase> cases = {{PaddingMode::zeros, {210, 321, 32}},
                                       {PaddingMode::reflect, {212, 321, 232}},
                                       {PaddingMode::replicate, {211, 321, 332}},
                                       {PaddingMode::circular, {213, 321, 132}}};
  for (const HandCase& c : cases) {
    const Conv2dParams p{.filters = 1, .kernel_size = {1, 3}, .padding = Padding::explicit_pad(0, 0, 1, 1),
                         .use_bias = false, .padding_mode = c.mode};
    expect_tensors_near(forward(p, x, w), Tensor({1, 1, 3, 1}, {c.want[0], c.want[1], c.want[2]}), to_string(c.mode), kHandTol);
  }
}

// The same input along the height, two pads each side, kernel [1, 10, 100, 1000, 10000].
// Padded columns: zeros [0 0 1 2 3 0 0], reflect [3 2 1 2 3 2 1], replicate [1 1 1 2 3 3 3],
// circular [2 3 1 2 3 1 2].
TEST(Conv2dProperties, PaddingModesWithTwoPadsOnTheHeightAxis) {
  const Tensor x({1, 3, 1, 1}, {1, 2, 3});
  const Tensor w({5, 1, 1, 1}, {1, 10, 100, 1000, 10000});
  const std::vector<HandCase> cases = {{PaddingMode::zeros, {32100, 3210, 321}},
                                       {PaddingMode::reflect, {32123, 23212, 12321}},
                                       {PaddingMode::replicate, {32111, 33211, 33321}},
                                       {PaddingMode::circular, {32132, 13213, 21321}}};
  for (const HandCase& c : cases) {
    const Conv2dParams p{.filters = 1, .kernel_size = {5, 1}, .padding = Padding::explicit_pad(2, 2, 0, 0),
                         .use_bias = false, .padding_mode = c.mode};
    expect_tensors_near(forward(p, x, w), Tensor({1, 3, 1, 1}, {c.want[0], c.want[1], c.want[2]}), to_string(c.mode), kHandTol);
  }
}

// "same" with an even kernel [1, 10] on [1, 2, 3]: one pad, on the right (TensorFlow's rule).
TEST(Conv2dProperties, SamePaddingWithAnEvenKernelPadsOnTheRight) {
  const Tensor x({1, 1, 3, 1}, {1, 2, 3});
  const Tensor w({1, 2, 1, 1}, {1, 10});
  const std::vector<HandCase> cases = {{PaddingMode::zeros, {21, 32, 3}},
                                       {PaddingMode::reflect, {21, 32, 23}},
                                       {PaddingMode::replicate, {21, 32, 33}},
                                       {PaddingMode::circular, {21, 32, 13}}};
  for (const HandCase& c : cases) {
    const Conv2dParams p{.filters = 1, .kernel_size = {1, 2}, .padding = Padding::same(), .use_bias = false,
                         .padding_mode = c.mode};
    expect_tensors_near(forward(p, x, w), Tensor({1, 1, 3, 1}, {c.want[0], c.want[1], c.want[2]}), to_string(c.mode), kHandTol);
  }
}

// 2-D: x = [[0, 1], [2, 3]], a 3x3 kernel whose tap (ky, kx) weighs 4^(3 ky + kx), one pad on every side. Each
// output, written in base 4, lists the nine cells its window read (tap order); the windows are derived by hand.
float base4(const std::vector<int>& digits) {
  float v = 0, place = 1;
  for (int d : digits) {
    v += float(d) * place;
    place *= 4;
  }
  return v;
}

TEST(Conv2dProperties, PaddingModesInTwoDimensions) {
  const Tensor x({1, 2, 2, 1}, {0, 1, 2, 3});
  Tensor w({3, 3, 1, 1});
  for (int t = 0; t < 9; ++t) w[t] = std::pow(4.0f, float(t));
  // Circular: padded row/col -1 -> 1 and 2 -> 0.
  const Tensor circular({1, 2, 2, 1}, {base4({3, 2, 3, 1, 0, 1, 3, 2, 3}), base4({2, 3, 2, 0, 1, 0, 2, 3, 2}),
                                       base4({1, 0, 1, 3, 2, 3, 1, 0, 1}), base4({0, 1, 0, 2, 3, 2, 0, 1, 0})});
  // Replicate: padded row/col -1 -> 0 and 2 -> 1.
  const Tensor replicate({1, 2, 2, 1}, {base4({0, 0, 1, 0, 0, 1, 2, 2, 3}), base4({0, 1, 1, 0, 1, 1, 2, 3, 3}),
                                        base4({0, 0, 1, 2, 2, 3, 2, 2, 3}), base4({0, 1, 1, 2, 3, 3, 2, 3, 3})});
  // Zeros: the padded cells read 0.
  const Tensor zeros({1, 2, 2, 1}, {base4({0, 0, 0, 0, 0, 1, 0, 2, 3}), base4({0, 0, 0, 0, 1, 0, 2, 3, 0}),
                                    base4({0, 0, 1, 0, 2, 3, 0, 0, 0}), base4({0, 1, 0, 2, 3, 0, 0, 0, 0})});
  for (const auto& [mode, want] : {std::pair{PaddingMode::circular, &circular},
                                   std::pair{PaddingMode::replicate, &replicate}, std::pair{PaddingMode::zeros, &zeros}}) {
    const Conv2dParams p{.filters = 1, .kernel_size = {3, 3}, .padding = Padding::same(), .use_bias = false,
                         .padding_mode = mode};
    expect_tensors_near(forward(p, x, w), *want, to_string(mode), kHandTol);
  }
}

// ---- dilation and stride ----------------------------------------------------------------------------------------

TEST(Conv2dProperties, DilationEqualsAZeroStuffedKernel) {
  std::mt19937 rng(7);
  for (PaddingMode mode : kModes)
    for (const Padding& pad : {Padding::valid(), Padding::same(), Padding::explicit_pad(2, 1, 0, 3)}) {
      const int kh = 3, kw = 2, dh = 2, dw = 3;
      const Conv2dParams p{.filters = 4, .kernel_size = {kh, kw}, .strides = {1, 2}, .padding = pad,
                           .dilation_rate = {dh, dw}, .padding_mode = mode};
      const Tensor x = grid_tensor({1, 7, 8, 2}, rng), w = grid_tensor({kh, kw, 2, 4}, rng);
      const Tensor b = grid_tensor({4}, rng);
      const int sh = (kh - 1) * dh + 1, sw = (kw - 1) * dw + 1;
      Tensor stuffed({sh, sw, 2, 4}, 0.0f);
      for (int ky = 0; ky < kh; ++ky)
        for (int kx = 0; kx < kw; ++kx)
          for (int c = 0; c < 2; ++c)
            for (int o = 0; o < 4; ++o) stuffed[at4(stuffed.shape(), ky * dh, kx * dw, c, o)] = w[at4(w.shape(), ky, kx, c, o)];
      Conv2dParams q = p;
      q.kernel_size = {sh, sw};
      q.dilation_rate = {1, 1};
      expect_tensors_near(forward(p, x, w, &b), forward(q, x, stuffed, &b),
                          "dilation vs stuffed kernel, " + to_string(pad) + " " + to_string(mode));
    }
}

TEST(Conv2dProperties, StrideEqualsSubsampledStrideOne) {
  std::mt19937 rng(8);
  for (PaddingMode mode : kModes)
    for (const Padding& pad : {Padding::valid(), Padding::explicit_pad(1, 2, 2, 1)})
      for (const Size2 s : {Size2{2, 2}, Size2{3, 1}, Size2{1, 4}}) {
        const Conv2dParams p1{.filters = 3, .kernel_size = {3, 2}, .padding = pad, .dilation_rate = {1, 2},
                              .padding_mode = mode};
        Conv2dParams ps = p1;
        ps.strides = s;
        const Tensor x = grid_tensor({2, 8, 9, 2}, rng), w = grid_tensor({3, 2, 2, 3}, rng);
        const Tensor b = grid_tensor({3}, rng);
        const Tensor y1 = forward(p1, x, w, &b), ys = forward(ps, x, w, &b);
        const std::string what = "stride " + std::to_string(s.h) + "x" + std::to_string(s.w) + " " +
                                 to_string(pad) + " " + to_string(mode);
        // Every stride-1 position that is a multiple of the stride, and no other, appears in the strided output.
        ASSERT_EQ(ys.dim(1), (y1.dim(1) + s.h - 1) / s.h) << what;
        ASSERT_EQ(ys.dim(2), (y1.dim(2) + s.w - 1) / s.w) << what;
        Tensor sub(ys.shape());
        for (int64_t n = 0; n < ys.dim(0); ++n)
          for (int64_t i = 0; i < ys.dim(1); ++i)
            for (int64_t j = 0; j < ys.dim(2); ++j)
              for (int64_t o = 0; o < ys.dim(3); ++o)
                sub[at4(sub.shape(), n, i, j, o)] = y1[at4(y1.shape(), n, i * s.h, j * s.w, o)];
        expect_tensors_near(ys, sub, what);
      }
}

}  // namespace
}  // namespace convkit
