// Non-finite values through the fast Conv2D engine: NaN, +inf and -inf in the input, in the output gradient and in
// the weights, for every algorithm of conv2d_algorithms() (so that a new one is swept as soon as it is listed) x every
// ISA of this CPU, with and without the fused relu. The result must have NaN exactly where the reference has NaN,
// the same infinities, and agree elsewhere within the usual tolerance. The fused relu used to be max(x, 0) with the
// operand order that drops NaN; torch.relu and activation_forward keep it.
//
// Weights with NaN / inf are checked where the fast paths and the reference must agree: forward with "valid"
// padding and backward weights (which does not read the weights). Where a zero-padded cell meets a non-finite weight
// the fast kernels may multiply (0 * inf = NaN, as PyTorch's forward does) while the reference loops skip the cell;
// which cells they skip depends on the algorithm (implicit_gemm drops the taps that are padding for a whole tile,
// depthwise and kernel_rows skip padded cells as the reference does), so those cases are not compared.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "convkit/runtime.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Counts elements whose NaN-ness or infinity differ from the reference, or whose finite value is out of tolerance
// (the tolerance only where the bound S is finite: a non-finite S means an infinity was involved).
//
// Transform algorithms (Winograd) mix a tile's inputs before the products, so a NaN or an inf spreads over the
// tile's outputs (inf - inf): for them (`spreads`) an extra NaN is allowed, a missing one is not.
int64_t count_nonfinite_mismatches(const std::vector<float>& fast, const std::vector<float>& ref,
                                   const std::vector<float>& s, std::string& report, bool spreads = false) {
  int64_t bad = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const float f = fast[i], r = ref[i];
    if (spreads && std::isnan(f) && !std::isnan(r)) continue;
    bool ok = std::isnan(f) == std::isnan(r);
    if (ok && std::isinf(r)) ok = f == r;
    if (ok && !std::isnan(r) && !std::isinf(r)) {
      ok = std::isfinite(f);
      if (ok && std::isfinite(s[i])) ok = std::fabs(double(f) - double(r)) <= 1e-5 * double(s[i]) + 1e-6;
    }
    if (!ok) {
      if (bad < 3)
        report += "  [" + std::to_string(i) + "] fast " + std::to_string(f) + " ref " + std::to_string(r) + "\n";
      ++bad;
    }
  }
  return bad;
}

int64_t count_nan(const std::vector<float>& v) {
  int64_t n = 0;
  for (float x : v) n += std::isnan(x) ? 1 : 0;
  return n;
}

// Scatters NaN, +inf and -inf over a few spread-out positions of v (never the same position twice).
void poison_values(std::vector<float>& v, uint32_t seed) {
  std::mt19937 rng(seed);
  const float specials[] = {kNaN, kInf, -kInf};
  for (int k = 0; k < 6 && std::size_t(k) < v.size(); ++k) {
    const std::size_t at = (rng() % v.size() + std::size_t(k) * v.size() / 6) % v.size();
    v[at] = specials[k % 3];
  }
}

struct Case {
  const char* name;
  Conv2dParams p;
  Shape input;
};

Conv2dParams conv(int filters, int k, int stride, Padding pad, int groups, Activation act) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {k, k};
  p.strides = {stride, stride};
  p.padding = pad;
  p.groups = groups;
  p.activation = act;
  return p;
}

// Shapes that reach every algorithm: 1x1 (gemm_1x1), depthwise with multiplier 1 and 2, grouped and plain 3x3
// (implicit GEMM, and transform algorithms for 3x3 stride 1), stride 2.
std::vector<Case> cases(Activation act) {
  return {
      {"1x1", conv(19, 1, 1, Padding::valid(), 1, act), {2, 5, 6, 13}},
      {"dw3x3", conv(37, 3, 1, Padding::same(), 37, act), {2, 7, 6, 37}},
      {"dw3x3_s2_mult2", conv(18, 3, 2, Padding::same(), 9, act), {1, 9, 8, 9}},
      {"3x3", conv(21, 3, 1, Padding::same(), 1, act), {2, 8, 7, 11}},
      {"3x3_valid", conv(17, 3, 1, Padding::valid(), 1, act), {1, 9, 10, 6}},
      {"5x5_s2_groups", conv(8, 5, 2, Padding::same(), 2, act), {1, 11, 9, 6}},
  };
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::generic})
    if (cpu_supports(i)) out.push_back(i);
  return out;
}

struct IsaGuard {
  ~IsaGuard() { reset_isa(); }
};

// One problem through one plan: NaN / inf in x and dz (all three directions), and, where the padding is "valid",
// in the weights too (forward). Returns the number of NaN in the reference results, so the caller can make sure the
// cases produce some.
int64_t check(const Conv2dPlan& plan, const Case& c, uint32_t seed, const std::string& what, bool spreads) {
  testops::Problem pr(c.p, c.input, seed);
  poison_values(pr.x, seed + 1);
  poison_values(pr.dz, seed + 2);
  const bool valid = c.p.padding.kind == PaddingKind::valid;
  if (valid) poison_values(pr.w, seed + 3);
  const testops::Expected e(pr);
  const int64_t nans = count_nan(e.y) + count_nan(e.dx) + count_nan(e.dw) + count_nan(e.db);

  std::vector<unsigned char> ws(plan.workspace_size());
  std::string report;
  std::vector<float> y(e.y.size(), -7.0f);
  plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), ws.data());
  EXPECT_EQ(count_nonfinite_mismatches(y, e.y, e.y_s, report, spreads), 0) << what << " forward\n" << report;

  // Backward data multiplies dz by the weights through zero rows: finite weights only (see the top of the file).
  if (valid) {
    testops::Problem fin(c.p, c.input, seed);
    pr.w = fin.w;
  }
  const testops::Expected e2(pr);
  report.clear();
  std::vector<float> dx(e2.dx.size(), -7.0f);
  plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), ws.data());
  EXPECT_EQ(count_nonfinite_mismatches(dx, e2.dx, e2.dx_s, report, spreads), 0) << what << " backward data\n" << report;

  report.clear();
  std::vector<float> dw(e2.dw.size(), -7.0f), db(e2.db.size(), -7.0f);
  plan.backward_weights(pr.x.data(), pr.dz.data(), dw.data(), db.data(), ws.data());
  EXPECT_EQ(count_nonfinite_mismatches(dw, e2.dw, e2.dw_s, report), 0) << what << " backward weights\n" << report;
  report.clear();
  EXPECT_EQ(count_nonfinite_mismatches(db, e2.db, e2.db_s, report), 0) << what << " backward bias\n" << report;
  return nans;
}

TEST(Conv2dNonFinite, EveryAlgorithmEveryIsaMatchesReferenceNaNs) {
  IsaGuard guard;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (const ops::Conv2dAlgorithmInfo& algo : ops::conv2d_algorithms()) {
      int ran = 0;
      int64_t nans = 0;
      for (Activation act : {Activation::none, Activation::relu}) {
        uint32_t seed = 100;
        for (const Case& c : cases(act)) {
          ++seed;
          const Conv2dGeometry g = conv2d_geometry(c.p, c.input);
          if (!algo.supports(g).empty()) continue;
          const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, algo.id);
          const bool spreads = algo.id == Conv2dAlgorithm::winograd;
          nans += check(plan, c, seed, to_string(isa) + " " + to_string(algo.id) + " " + c.name + " " + to_string(act),
                        spreads);
          ++ran;
        }
      }
      EXPECT_GT(ran, 0) << "no case reaches algorithm " << to_string(algo.id);
      EXPECT_GT(nans, 0) << "the cases of " << to_string(algo.id) << " produced no NaN to compare";
    }
  }
}

// The fused relu keeps NaN and -0 and zeroes the negatives, as torch.relu does (values written out by hand): a
// 1x1 identity convolution shows the epilogue alone, on every fast algorithm that runs it.
TEST(Conv2dNonFinite, FusedReluKeepsNaN) {
  IsaGuard guard;
  const std::vector<float> in = {kNaN, -kNaN, -1.5f, 2.0f, kInf, -kInf, 0.0f, 3.0f};
  const std::vector<float> want = {kNaN, kNaN, 0.0f, 2.0f, kInf, 0.0f, 0.0f, 3.0f};
  for (Isa isa : isas()) {
    set_isa(isa);
    for (Conv2dAlgorithm algo : {Conv2dAlgorithm::gemm_1x1, Conv2dAlgorithm::depthwise, Conv2dAlgorithm::kernel_rows,
                                 Conv2dAlgorithm::implicit_gemm, Conv2dAlgorithm::reference}) {
      // The identity kernel: one channel (a 1x1 convolution with weight 1), or for depthwise (which needs groups ==
      // channels > 1) two channels with weight 1 each. No zero weights: 0 * inf would be NaN.
      const bool dw = algo == Conv2dAlgorithm::depthwise;
      Conv2dParams p = conv(dw ? 2 : 1, 1, 1, Padding::valid(), dw ? 2 : 1, Activation::relu);
      p.use_bias = false;
      const Shape shape{1, 1, dw ? 4 : 8, dw ? 2 : 1};
      const Conv2dPlan plan = Conv2dPlan::create(p, shape, algo);
      const std::vector<float> w = dw ? std::vector<float>{1, 1} : std::vector<float>{1};
      std::vector<float> y(8, -7.0f);
      plan.forward(in.data(), w.data(), nullptr, y.data());
      for (std::size_t i = 0; i < y.size(); ++i) {
        const std::string what = to_string(isa) + " " + to_string(algo) + " element " + std::to_string(i);
        EXPECT_EQ(std::isnan(y[i]), std::isnan(want[i])) << what << ": " << y[i];
        if (!std::isnan(want[i])) EXPECT_EQ(y[i], want[i]) << what;
      }
    }
  }
}

// activation_forward / activation_backward (the reference and the layer-level ReLU): torch.relu keeps NaN and
// threshold_backward passes the gradient where the output is NaN, and zeroes it where the output is <= 0.
TEST(Conv2dNonFinite, ActivationReluLikeTorch) {
  std::vector<float> y = {kNaN, -0.0f, -1.0f, 2.0f, kInf, -kInf};
  activation_forward(Activation::relu, y.data(), 6);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_TRUE(std::signbit(y[1]));  // torch.relu(-0.0) is -0.0
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 2.0f);
  EXPECT_EQ(y[4], kInf);
  EXPECT_EQ(y[5], 0.0f);
  std::vector<float> dy(6, 1.0f);
  activation_backward(Activation::relu, y.data(), dy.data(), 6);
  EXPECT_EQ(dy, (std::vector<float>{1, 0, 0, 1, 1, 0}));
}

}  // namespace
}  // namespace convkit
