// Finite-difference gradient checks of conv2d_backward (dx, dkernel, dbias), needing no PyTorch.
//
// The loss is L = sum(y * r) for a fixed random r, so dL/dy = r, which is what conv2d_backward is given. L is
// evaluated with the reference forward pass (ref::conv2d_fwd + activation_forward) and summed in double.
//
// Why the finite differences here are sound despite the fp32 forward pass:
// * All data lie on the grid k/8 (tests/ref/conv_test_util.hpp), so every convolution sum in the forward pass is
//   exact in fp32, whatever the summation order. Rounding enters only through the activation function.
// * Linear (no activation): L is affine in each single parameter, so the central difference
//   (L(p + h) - L(p - h)) / 2h is exact for ANY h; we use h = 1 (the perturbed value stays on the grid). A joint
//   perturbation of x, kernel and bias along a direction v makes L quadratic in the step, and the central
//   difference is still exact. Expected error: exactly zero.
// * ReLU: the bias is j/8 + 1/128 while products are multiples of 1/64, so every pre-activation z is an odd
//   multiple of 1/128 and |z| >= 2^-7 (asserted below). With h = 2^-12, a perturbation moves any z by at most
//   h * (taps reading one cell, <= 25 for kernels up to 5x5) < 2^-7: no z crosses the kink, L is affine over the
//   stencil, and the difference is again exact (x +- h needs 13 significant bits, the sums 22: still exact).
//   Directional checks are skipped for ReLU: a direction moves many taps at once and would need a far smaller h.
// * tanh / sigmoid: L is smooth; with h = 2^-7 the truncation error is h^2 / 6 * |L'''| and the rounding error of
//   the activation (~1e-7 per affected output) is amplified by 1 / 2h = 64. Measured over this sweep: at most 7e-5
//   relative to 1 + |fd| (set CONVKIT_GRADCHECK_VERBOSE=1 to print it); the tolerance 1e-3 * (1 + |fd|) leaves
//   a 14x margin.
//
// The exact tiers compare with a tolerance of 1e-4 * (1 + max|g|) rather than zero only so that a future faster
// (non-exact) backward path still passes; a bug (a transposed kernel index, a padded cell that does not send its
// gradient back to the input cell it mirrors) changes some element by at least one term |r * w| >= 1/64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "ref/conv2d.hpp"
#include "ref/conv_test_util.hpp"

namespace convkit {
namespace {

struct GradCase {
  std::string name;
  Conv2dParams params;
  Shape input;  // NHWC
};

// gtest prints the parameter of a failing case; show its name rather than raw bytes.
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name; }

// Readable builder for the hand-written list of cases.
struct C {
  std::string name;
  Shape in;
  int filters = 2;
  Size2 k{3, 3};
  Size2 s{1, 1};
  Padding pad = Padding::valid();
  PaddingMode mode = PaddingMode::zeros;
  Size2 d{1, 1};
  int groups = 1;
  bool bias = true;
  Activation act = Activation::none;
  operator GradCase() const {
    return {name,
            Conv2dParams{.filters = filters, .kernel_size = k, .strides = s, .padding = pad, .dilation_rate = d,
                         .groups = groups, .use_bias = bias, .activation = act, .padding_mode = mode},
            in};
  }
};

GradCase depthwise(std::string name, Shape in, int multiplier, Size2 k, Size2 s, Padding pad, PaddingMode mode,
                   Activation act = Activation::none) {
  const DepthwiseConv2dParams d{.kernel_size = k, .strides = s, .padding = pad, .depth_multiplier = multiplier,
                                .activation = act, .padding_mode = mode};
  return {std::move(name), depthwise_to_conv2d(d, in[3]), std::move(in)};
}

using enum PaddingMode;
using enum Activation;

std::vector<GradCase> hand_cases() {
  const Padding same = Padding::same();
  auto ex = Padding::explicit_pad;
  return {
      C{"valid_basic", {2, 5, 6, 3}, 4},
      C{"valid_no_bias", {2, 5, 6, 3}, 4, {3, 3}, {1, 1}, Padding::valid(), zeros, {1, 1}, 1, false},
      C{"same_odd", {1, 5, 5, 2}, 3, {3, 3}, {1, 1}, same},
      C{"same_even_kernel", {1, 5, 6, 2}, 2, {2, 4}, {1, 1}, same},
      C{"explicit_asymmetric", {2, 4, 5, 2}, 3, {3, 2}, {1, 1}, ex(1, 2, 0, 3)},
      C{"stride2_valid", {1, 7, 8, 2}, 3, {3, 3}, {2, 2}},
      C{"stride_mixed_same", {1, 7, 6, 3}, 2, {3, 2}, {2, 3}, same},
      C{"dilation2_valid", {1, 7, 8, 2}, 2, {3, 3}, {1, 1}, Padding::valid(), zeros, {2, 2}},
      C{"dilation_stride_explicit", {1, 9, 8, 2}, 2, {2, 3}, {2, 2}, ex(1, 1, 2, 0), zeros, {2, 3}},
      C{"groups2_same", {1, 5, 5, 4}, 6, {3, 3}, {1, 1}, same, zeros, {1, 1}, 2},
      C{"groups3_stride2", {2, 6, 5, 6}, 3, {2, 2}, {2, 2}, Padding::valid(), zeros, {1, 1}, 3},
      depthwise("depthwise_m1_same", {1, 5, 5, 3}, 1, {3, 3}, {1, 1}, same, zeros),
      depthwise("depthwise_m2_stride2_reflect", {1, 6, 6, 3}, 2, {3, 3}, {2, 2}, same, reflect),
      C{"reflect_pad_in_minus_1", {1, 3, 4, 2}, 2, {3, 3}, {1, 1}, ex(2, 2, 3, 1), reflect},
      C{"replicate_large_pads", {1, 3, 3, 2}, 2, {3, 3}, {1, 1}, ex(3, 1, 0, 4), replicate},
      C{"circular_pad_equal_in", {1, 3, 4, 2}, 2, {3, 3}, {1, 1}, ex(3, 3, 4, 2), circular},
      C{"reflect_same_even_stride2", {1, 5, 6, 2}, 2, {4, 4}, {2, 2}, same, reflect},
      C{"circular_same_dilation2", {1, 6, 5, 2}, 2, {3, 3}, {1, 1}, same, circular, {2, 2}},
      C{"replicate_groups_dilation", {1, 5, 6, 4}, 4, {2, 3}, {1, 1}, ex(1, 0, 2, 2), replicate, {2, 1}, 2},
      C{"kernel_equals_padded_input_reflect", {1, 3, 3, 2}, 2, {5, 4}, {1, 1}, ex(1, 1, 0, 1), reflect},
      C{"one_by_one_stride2", {2, 5, 5, 3}, 4, {1, 1}, {2, 2}},
      C{"single_pixel_same_circular", {1, 1, 1, 2}, 2, {3, 3}, {1, 1}, same, circular},
      C{"kernel_5x5_reflect_same", {1, 5, 6, 1}, 2, {5, 5}, {1, 1}, same, reflect},
      // Each activation, on a padded configuration and on a grouped, strided one.
      C{"relu_reflect_same", {2, 5, 5, 3}, 3, {3, 3}, {1, 1}, same, reflect, {1, 1}, 1, true, relu},
      C{"relu_circular_groups_stride", {1, 6, 7, 4}, 4, {3, 2}, {2, 1}, ex(1, 2, 1, 0), circular, {1, 1}, 2, true,
        relu},
      C{"tanh_replicate_same", {2, 5, 5, 3}, 3, {3, 3}, {1, 1}, same, replicate, {1, 1}, 1, true, tanh},
      C{"tanh_zeros_dilation_no_bias", {1, 7, 6, 2}, 3, {2, 2}, {1, 2}, ex(0, 1, 1, 1), zeros, {3, 2}, 1, false,
        tanh},
      C{"sigmoid_reflect_stride2", {1, 6, 6, 2}, 3, {3, 3}, {2, 2}, same, reflect, {1, 1}, 1, true, sigmoid},
      C{"sigmoid_circular_groups", {1, 4, 5, 6}, 6, {2, 3}, {1, 1}, same, circular, {1, 1}, 3, true, sigmoid},
      depthwise("depthwise_m2_relu_replicate", {1, 5, 4, 2}, 2, {3, 3}, {1, 1}, same, replicate, relu),
  };
}

// A random sweep on top of the hand list: any configuration conv2d_geometry accepts is fair game.
std::vector<GradCase> random_cases() {
  std::mt19937 rng(20240611);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<GradCase> out;
  while (out.size() < 60) {
    const int groups = uni(1, 3);
    const int ic = groups * uni(1, 2);
    Conv2dParams p{.filters = groups * uni(1, 3), .kernel_size = {uni(1, 4), uni(1, 4)},
                   .strides = {uni(1, 3), uni(1, 3)}, .dilation_rate = {uni(1, 2), uni(1, 2)}, .groups = groups,
                   .use_bias = uni(0, 1) == 1, .activation = static_cast<Activation>(uni(0, 3)),
                   .padding_mode = static_cast<PaddingMode>(uni(0, 3))};
    switch (uni(0, 2)) {
      case 0: p.padding = Padding::valid(); break;
      case 1: p.padding = Padding::same(); break;
      default: p.padding = Padding::explicit_pad(uni(0, 3), uni(0, 3), uni(0, 3), uni(0, 3));
    }
    const Shape in{uni(1, 2), uni(1, 7), uni(1, 7), ic};
    try {
      conv2d_geometry(p, in);
    } catch (const Error&) {
      continue;  // an invalid draw; the validation tests cover those
    }
    out.push_back({"random" + std::to_string(out.size()), p, in});
  }
  return out;
}

// ---- the check ----------------------------------------------------------------------------------------------

struct Problem {
  Conv2dParams p;
  Conv2dGeometry g;
  Tensor x, w, b, r;  // x (N, IH, IW, IC), w (KH, KW, IC/G, OC), b (OC), r (N, OH, OW, OC)
};

// L = sum(act(conv(x, w) + b) * r), in double, through the reference forward pass.
double loss(const Problem& pr, const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y(pr.g.output_shape());
  ref::conv2d_fwd(pr.g, x.data(), w.data(), pr.p.use_bias ? b.data() : nullptr, y.data());
  activation_forward(pr.p.activation, y.data(), y.size());
  double sum = 0.0;
  for (int64_t i = 0; i < y.size(); ++i) sum += double(y[i]) * double(pr.r[i]);
  return sum;
}

enum class Tier { exact, smooth };
Tier tier_of(Activation a) { return a == Activation::tanh || a == Activation::sigmoid ? Tier::smooth : Tier::exact; }

// Step sizes and tolerances, justified in the header comment.
double step_for(Activation a) {
  switch (a) {
    case Activation::none: return 1.0;
    case Activation::relu: return std::ldexp(1.0, -12);
    default: return std::ldexp(1.0, -7);
  }
}

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (float v : t.values()) m = std::max(m, double(std::fabs(v)));
  return m;
}

// Compares every element of grad with the central difference of L with respect to that element of *which.
// Returns the largest error relative to the tolerance's scale, recorded as a test property to back the choice.
double check_elements(const Problem& pr, const char* what, Tensor* which, const Tensor& grad, Tensor& x, Tensor& w,
                    Tensor& b) {
  EXPECT_EQ(grad.shape(), which->shape()) << what;
  if (grad.shape() != which->shape()) return 0.0;
  const double h = step_for(pr.p.activation);
  const Tier tier = tier_of(pr.p.activation);
  const double scale = 1.0 + max_abs(grad);
  int failures = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < which->size(); ++i) {
    const float v = (*which)[i];
    (*which)[i] = static_cast<float>(v + h);
    const double plus = loss(pr, x, w, b);
    const double dplus = double((*which)[i]);
    (*which)[i] = static_cast<float>(v - h);
    const double minus = loss(pr, x, w, b);
    const double dminus = double((*which)[i]);
    (*which)[i] = v;
    const double fd = (plus - minus) / (dplus - dminus);  // the actual stored step, in case it rounded
    const double err = std::fabs(fd - double(grad[i]));
    const double tol = tier == Tier::exact ? 1e-4 * scale : 1e-3 * (1.0 + std::fabs(fd));
    worst = std::max(worst, tier == Tier::exact ? err / scale : err / (1.0 + std::fabs(fd)));
    if (!(err <= tol) && ++failures <= 5)
      ADD_FAILURE() << what << "[" << i << "]: backward " << grad[i] << ", finite difference " << fd
                    << " (error " << err << ", tolerance " << tol << ")";
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << which->size() << " elements disagree";
  return worst;
}

// <grad, v> against (L(p + hv) - L(p - hv)) / 2h for one random direction v over the chosen tensors.
void check_direction(const Problem& pr, bool move_x, bool move_w, bool move_b, const Conv2dGradients& g,
                     std::mt19937& rng) {
  const double h = step_for(pr.p.activation);
  Tensor vx = testutil::grid_tensor(pr.x.shape(), rng), vw = testutil::grid_tensor(pr.w.shape(), rng);
  Tensor vb = testutil::grid_tensor(pr.b.shape(), rng);
  double predicted = 0.0, magnitude = 0.0;
  auto dot = [&](bool on, const Tensor& grad, const Tensor& v) {
    if (!on) return;
    for (int64_t i = 0; i < v.size(); ++i) {
      predicted += double(grad[i]) * double(v[i]);
      magnitude += std::fabs(double(grad[i]) * double(v[i]));
    }
  };
  dot(move_x, g.dx, vx);
  dot(move_w, g.dkernel, vw);
  if (pr.p.use_bias) dot(move_b, g.dbias, vb);
  auto moved = [&](bool on, const Tensor& t, const Tensor& v, double sign) {
    Tensor out = t;
    if (on)
      for (int64_t i = 0; i < t.size(); ++i) out[i] = static_cast<float>(double(t[i]) + sign * h * double(v[i]));
    return out;
  };
  const double plus = loss(pr, moved(move_x, pr.x, vx, 1), moved(move_w, pr.w, vw, 1), moved(move_b, pr.b, vb, 1));
  const double minus =
      loss(pr, moved(move_x, pr.x, vx, -1), moved(move_w, pr.w, vw, -1), moved(move_b, pr.b, vb, -1));
  const double fd = (plus - minus) / (2.0 * h);
  const double tol = tier_of(pr.p.activation) == Tier::exact ? 1e-5 * (1.0 + magnitude) : 1e-3 * (1.0 + magnitude);
  EXPECT_NEAR(fd, predicted, tol) << "direction over" << (move_x ? " x" : "") << (move_w ? " kernel" : "")
                                  << (move_b ? " bias" : "");
}

Problem make_problem(const GradCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem pr{c.params, conv2d_geometry(c.params, c.input), {}, {}, {}, {}};
  pr.x = testutil::grid_tensor(c.input, rng);
  pr.w = testutil::grid_tensor(pr.g.kernel_shape(), rng);
  pr.b = testutil::grid_tensor({c.params.filters}, rng);
  if (c.params.activation == Activation::relu)
    for (float& v : pr.b.values()) v += 1.0f / 128.0f;  // keeps every pre-activation off the kink (see header)
  pr.r = testutil::grid_tensor(pr.g.output_shape(), rng);
  return pr;
}

class Conv2dGradcheck : public testing::TestWithParam<GradCase> {};

TEST_P(Conv2dGradcheck, BackwardMatchesFiniteDifferences) {
  GradCase c = GetParam();
  // ReLU's exact finite differences rely on the bias offset; a ReLU layer without bias gets one here.
  if (c.params.activation == Activation::relu) c.params.use_bias = true;
  SCOPED_TRACE(testutil::describe(c.params, c.input));
  Problem pr = make_problem(c, 1234u + static_cast<uint32_t>(c.name.size()));

  if (c.params.activation == Activation::relu) {
    // The premise of the exact ReLU check: no pre-activation within 2^-7 of the kink.
    Tensor z(pr.g.output_shape());
    ref::conv2d_fwd(pr.g, pr.x.data(), pr.w.data(), pr.b.data(), z.data());
    for (float v : z.values()) ASSERT_GE(std::fabs(v), 1.0f / 128.0f);
  }

  Tensor y = conv2d_forward(pr.p, pr.x, pr.w, pr.p.use_bias ? &pr.b : nullptr);
  const Conv2dGradients g = conv2d_backward(pr.p, pr.x, pr.w, y, pr.r);
  ASSERT_EQ(g.dx.shape(), pr.x.shape());
  ASSERT_EQ(g.dkernel.shape(), pr.w.shape());
  ASSERT_EQ(g.dbias.shape(), pr.p.use_bias ? Shape{pr.p.filters} : Shape{});

  Tensor x = pr.x, w = pr.w, b = pr.b;
  double worst = check_elements(pr, "dx", &x, g.dx, x, w, b);
  worst = std::max(worst, check_elements(pr, "dkernel", &w, g.dkernel, x, w, b));
  if (pr.p.use_bias) worst = std::max(worst, check_elements(pr, "dbias", &b, g.dbias, x, w, b));
  RecordProperty("worst_relative_fd_error", std::to_string(worst));
  if (std::getenv("CONVKIT_GRADCHECK_VERBOSE")) std::printf("worst relative error %.3g\n", worst);

  if (pr.p.activation != Activation::relu) {
    std::mt19937 rng(99);
    check_direction(pr, true, false, false, g, rng);
    check_direction(pr, false, true, false, g, rng);
    if (pr.p.use_bias) check_direction(pr, false, false, true, g, rng);
    if (pr.p.activation == Activation::none) check_direction(pr, true, true, true, g, rng);  // quadratic: exact
  }
}

std::string case_name(const testing::TestParamInfo<GradCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Hand, Conv2dGradcheck, testing::ValuesIn(hand_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Random, Conv2dGradcheck, testing::ValuesIn(random_cases()), case_name);

// The sweep must actually cover what it claims to: every padding kind, mode and activation, groups, depthwise,
// strides, dilation, and both bias settings.
TEST(Conv2dGradcheckCoverage, SweepCoversEveryFeature) {
  std::vector<GradCase> all = hand_cases();
  for (GradCase& c : random_cases()) all.push_back(c);
  bool kind[3] = {}, mode[4] = {}, act[4] = {}, bias[2] = {};
  bool grouped = false, dw = false, strided = false, dilated = false;
  for (const GradCase& c : all) {
    const Conv2dParams& p = c.params;
    kind[static_cast<int>(p.padding.kind)] = true;
    mode[static_cast<int>(p.padding_mode)] = true;
    act[static_cast<int>(p.activation)] = true;
    bias[p.use_bias] = true;
    grouped |= p.groups > 1 && p.groups < c.input[3];
    dw |= p.groups == c.input[3] && p.groups > 1;
    strided |= p.strides.h > 1 || p.strides.w > 1;
    dilated |= p.dilation_rate.h > 1 || p.dilation_rate.w > 1;
  }
  for (bool b : kind) EXPECT_TRUE(b);
  for (bool b : mode) EXPECT_TRUE(b);
  for (bool b : act) EXPECT_TRUE(b);
  for (bool b : bias) EXPECT_TRUE(b);
  EXPECT_TRUE(grouped && dw && strided && dilated);
}

}  // namespace
}  // namespace convkit
