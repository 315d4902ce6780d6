// The fast Conv2D engine against the reference kernels: every algorithm x every ISA this CPU has, forward and both
// backward directions, on the edges of every tile size and on random shapes (tolerance: conv_check.hpp).
//
// The ISA is set through the API (set_isa) per test. The "env" instantiation sets none, so that the whole binary,
// registered again with CONVKIT_ISA=avx2 / generic (tests/ops/CMakeLists.txt), runs the sweep through the
// environment path too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "config/kernels.hpp"
#include "convkit/error.hpp"
#include "convkit/runtime.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

using testops::Expected;
using testops::Problem;

// Plans for tiny problems would use one thread (ops/conv2d_threads.hpp); this binary checks the thread splits on
// small shapes, so it lifts the threshold for all its tests.
const bool kEveryThreadRuns = (ops::g_min_ns_per_thread = 0.0, true);

using testops::Case;

struct SweepParam {
  std::string isa;  // "avx512", "avx2", "generic", or "env": whatever the environment / CPU gives
  Case c;
};

// What gtest prints for a parameter (instead of its raw bytes): the ISA, the case, the input shape.
void PrintTo(const SweepParam& sp, std::ostream* os) {
  *os << sp.isa << " " << sp.c.name << " input " << shape_to_string(sp.c.input);
}

constexpr Conv2dAlgorithm kFast[] = {Conv2dAlgorithm::gemm_1x1, Conv2dAlgorithm::depthwise,
                                     Conv2dAlgorithm::kernel_rows, Conv2dAlgorithm::implicit_gemm};

const Activation kActs[] = {Activation::none, Activation::relu, Activation::tanh, Activation::sigmoid};

Conv2dParams conv(int filters, int kh, int kw, int stride = 1, Padding pad = Padding::valid(), int dilation = 1,
                  int groups = 1) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {kh, kw};
  p.strides = {stride, stride};
  p.padding = pad;
  p.dilation_rate = {dilation, dilation};
  p.groups = groups;
  return p;
}

// The edges of the register blocks of one ISA (MR output rows x NR output columns, MR rows of the weight gradient,
// the vector width of the depthwise kernels), and everything else a fast path special-cases.
std::vector<Case> edge_cases(const config::KernelTable& k) {
  const int mr = k.mr, nr = k.nr, lanes = k.isa == Isa::avx512 ? 16 : k.isa == Isa::avx2 ? 8 : 4;
  std::vector<Case> cases;
  int act = 0;
  auto add = [&](std::string name, Conv2dParams p, Shape in) {
    p.activation = kActs[act++ % 4];
    cases.push_back({std::move(name), p, std::move(in)});
  };
  // Output pixels per tile: 1, MR - 1, MR, MR + 1 (one output row), and tiles that wrap output rows.
  for (int ow : {1, mr - 1, mr, mr + 1, 2 * mr + 1})
    add("ow" + std::to_string(ow), conv(nr + 1, 1, 3), {2, 1, ow + 2, 5});
  add("tiles_wrap_rows", conv(7, 3, 3), {1, 7, mr + 3, 3});
  // Output channels per block: 1, NR - 1, NR, NR + 1, and several blocks.
  for (int oc : {1, nr - 1, nr, nr + 1, 2 * nr + 3})
    add("oc" + std::to_string(oc), conv(oc, 3, 3, 1, Padding::same()), {1, 5, 6, 4});
  // Input channels: the reduction length of forward, the rows of the weight gradient, the columns of backward data.
  for (int ic : {1, mr - 1, mr, mr + 1, nr + 1})
    add("ic" + std::to_string(ic), conv(6, 3, 3, 1, Padding::symmetric(1, 1)), {2, 4, 5, ic});
  // 1x1 as GEMM: rows N*H*W around MR, channel edges, groups.
  for (int rows : {1, mr - 1, mr, mr + 1, 3 * mr + 2})
    add("1x1_rows" + std::to_string(rows), conv(nr + 1, 1, 1), {1, 1, rows, mr + 1});
  add("1x1_oc_edges", conv(nr - 1, 1, 1), {2, 3, 4, nr});
  add("1x1_groups2", conv(2 * nr + 2, 1, 1, 1, Padding::valid(), 1, 2), {2, 3, 3, 2 * mr + 2});
  add("1x1_groups3", conv(6, 1, 1, 1, Padding::valid(), 1, 3), {1, 4, 4, 9});
  add("1x1_stride2", conv(5, 1, 1, 2), {2, 5, 6, 3});
  add("1x1_padded", conv(5, 1, 1, 1, Padding::symmetric(1, 2)), {1, 3, 4, 3});
  // Strides, dilation, and both together; a stride larger than the kernel (phases no tap reaches).
  add("stride2_k3", conv(9, 3, 3, 2, Padding::same()), {2, 9, 8, 5});
  add("stride3_k5", conv(4, 5, 5, 3, Padding::symmetric(2, 2)), {1, 11, 13, 3});
  add("stride3_k2", conv(5, 2, 2, 3), {2, 8, 10, 4});
  add("stride_2x1",
      [] {
        Conv2dParams p = conv(6, 3, 2);
        p.strides = {2, 1};
        return p;
      }(),
      {1, 9, 7, 3});
  add("dilation2", conv(7, 3, 3, 1, Padding::same(), 2), {1, 9, 10, 4});
  add("dilation2_stride2", conv(5, 3, 3, 2, Padding::symmetric(2, 1), 2), {2, 11, 9, 3});
  add("dilation_2x3",
      [] {
        Conv2dParams p = conv(4, 2, 3, 1, Padding::valid());
        p.dilation_rate = {2, 3};
        return p;
      }(),
      {1, 6, 9, 2});
  add("kernel_1x5", conv(4, 1, 5, 1, Padding::same()), {1, 4, 9, 3});
  add("kernel_4x2_even_same", conv(3, 4, 2, 1, Padding::same()), {2, 7, 5, 2});
  add("kernel_covers_input", conv(3, 5, 5), {2, 5, 5, 2});
  add("pad_larger_than_kernel", conv(3, 3, 3, 1, Padding::explicit_pad(4, 0, 1, 5)), {1, 3, 4, 2});
  add("asymmetric_pad_stride2", conv(5, 3, 3, 2, Padding::explicit_pad(0, 2, 1, 0)), {2, 7, 8, 3});
  // Groups.
  add("groups2", conv(4, 3, 3, 1, Padding::same(), 1, 2), {2, 5, 5, 6});
  add("groups4_wide", conv(4 * (nr + 1), 3, 3, 1, Padding::same(), 1, 4), {1, 4, 4, 4 * (mr + 1)});
  add("groups3_stride2", conv(6, 3, 3, 2, Padding::symmetric(1, 1), 1, 3), {2, 7, 6, 3});
  add("groups_ic1_per_group_mult1", conv(3, 3, 3, 1, Padding::same(), 1, 3), {1, 4, 4, 3});
  // Depthwise: channel counts around the vector width and the four-vector block, multipliers, strides, dilation.
  for (int c : {2, lanes - 1, lanes, lanes + 1, 4 * lanes, 4 * lanes + 1})
    add("dw_c" + std::to_string(c), conv(c, 3, 3, 1, Padding::same(), 1, c), {2, 5, 6, c});
  add("dw_mult2", conv(2 * (lanes + 1), 3, 3, 1, Padding::same(), 1, lanes + 1), {1, 5, 5, lanes + 1});
  add("dw_mult3_stride2", conv(12, 3, 3, 2, Padding::symmetric(1, 1), 1, 4), {2, 7, 6, 4});
  add("dw_stride2", conv(2 * lanes, 3, 3, 2, Padding::same(), 1, 2 * lanes), {1, 9, 8, 2 * lanes});
  add("dw_k5_dilation2", conv(5, 5, 5, 1, Padding::same(), 2, 5), {1, 10, 9, 5});
  add("dw_stride3_k2", conv(6, 2, 2, 3, Padding::valid(), 1, 6), {1, 8, 7, 6});
  add("dw_1x1", conv(lanes + 3, 1, 1, 1, Padding::valid(), 1, lanes + 3), {2, 3, 3, lanes + 3});
  // Every padding mode, with "same", explicit asymmetric pads, strides, for the GEMM and the depthwise paths.
  for (PaddingMode m : {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate, PaddingMode::circular}) {
    const std::string mn = to_string(m);
    Conv2dParams a = conv(5, 3, 3, 1, Padding::same());
    a.padding_mode = m;
    add("mode_" + mn + "_same", a, {2, 5, 6, 3});
    Conv2dParams b = conv(4, 3, 2, 2, Padding::explicit_pad(2, 1, 0, 1));
    b.padding_mode = m;
    add("mode_" + mn + "_explicit_stride2", b, {1, 6, 5, 3});
    Conv2dParams c = conv(3, 3, 3, 1, Padding::symmetric(2, 2), 2, 3);
    c.padding_mode = m;
    add("mode_" + mn + "_depthwise_dilated", c, {1, 5, 6, 3});
    Conv2dParams d = conv(4, 3, 3, 2, Padding::same(), 1, 2);
    d.padding_mode = m;
    add("mode_" + mn + "_groups_stride2", d, {2, 6, 7, 4});
  }
  // Every activation on one shape per path, without bias too.
  for (Activation a : kActs) {
    Conv2dParams p = conv(nr + 3, 3, 3, 1, Padding::same());
    Conv2dParams q = conv(nr + 3, 1, 1);
    Conv2dParams r = conv(lanes + 2, 3, 3, 1, Padding::same(), 1, lanes + 2);
    const std::string an = to_string(a);
    add("act_" + an + "_igemm", p, {1, 4, 5, 3});
    cases.back().p.activation = a;
    add("act_" + an + "_1x1", q, {2, 3, 3, 5});
    cases.back().p.activation = a;
    add("act_" + an + "_dw", r, {1, 4, 4, lanes + 2});
    cases.back().p.activation = a;
  }
  Conv2dParams nb = conv(5, 3, 3, 1, Padding::same());
  nb.use_bias = false;
  add("no_bias", nb, {2, 4, 4, 3});
  // Batch 1 and > 1 on a bigger layer: several tiles per image, more items than threads.
  add("batch1_layer", conv(2 * nr, 3, 3, 1, Padding::same()), {1, 9, 11, 2 * nr + 3});
  add("batch3_layer", conv(nr + 5, 3, 3, 1, Padding::same()), {3, 6, 7, 12});
  return cases;
}

// Random valid configurations (deterministic per ISA), small enough for the reference.
std::vector<Case> random_cases(uint32_t seed, int count) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Case> cases;
  while (static_cast<int>(cases.size()) < count) {
    Conv2dParams p;
    const int groups = pick(0, 3) == 0 ? pick(2, 4) : 1;
    const bool depthwise = pick(0, 4) == 0;
    const int ic = depthwise ? pick(2, 24) : groups * pick(1, 12);
    p.groups = depthwise ? ic : groups;
    p.filters = depthwise ? ic * pick(1, 3) : groups * pick(1, 40);
    p.kernel_size = {pick(1, 5), pick(1, 5)};
    p.strides = {pick(1, 3), pick(1, 3)};
    p.dilation_rate = {pick(0, 3) == 0 ? 2 : 1, pick(0, 3) == 0 ? 2 : 1};
    switch (pick(0, 2)) {
      case 0: p.padding = Padding::valid(); break;
      case 1: p.padding = Padding::same(); break;
      default: p.padding = Padding::explicit_pad(pick(0, 3), pick(0, 3), pick(0, 3), pick(0, 3)); break;
    }
    p.padding_mode = static_cast<PaddingMode>(pick(0, 3));
    p.activation = kActs[pick(0, 3)];
    p.use_bias = pick(0, 4) != 0;
    const Shape in = {pick(1, 3), pick(1, 14), pick(1, 14), ic};
    try {
      const Conv2dGeometry g = conv2d_geometry(p, in);
      if (g.flops() > 4e6) continue;  // keep the reference quick
    } catch (const Error&) {
      continue;  // an invalid configuration: draw again
    }
    cases.push_back({"random" + std::to_string(cases.size()), p, in});
  }
  return cases;
}

std::vector<SweepParam> sweep_params() {
  std::vector<SweepParam> out;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    for (Case& c : edge_cases(config::kernels(isa))) out.push_back({to_string(isa), c});
    for (Case& c : random_cases(1234u + static_cast<uint32_t>(isa), 25)) out.push_back({to_string(isa), c});
  }
  return out;
}

std::vector<SweepParam> env_params() {
  // The ISA comes from CONVKIT_ISA or the CPU; a few edge cases of the largest blocks and random shapes suffice.
  std::vector<SweepParam> out;
  for (Case& c : edge_cases(config::kernels(Isa::avx512))) out.push_back({"env", c});
  for (Case& c : random_cases(99u, 15)) out.push_back({"env", c});
  return out;
}

class Conv2dSweep : public ::testing::TestWithParam<SweepParam> {
 protected:
  void SetUp() override {
    if (GetParam().isa == "env") {
      reset_isa();
      try {
        active_isa();
      } catch (const Error& e) {
        GTEST_SKIP() << "CONVKIT_ISA names an ISA this CPU lacks (Runtime.EnvironmentIsa checks the error): "
                     << e.what();
      }
    } else {
      set_isa(parse_isa(GetParam().isa));
    }
  }
  void TearDown() override { reset_isa(); }
};

TEST_P(Conv2dSweep, MatchesReference) {
  const Case& c = GetParam().c;
  const std::string what = testops::describe(c.p, c.input) + " [" + GetParam().isa + "]";
  const Problem pr(c.p, c.input, 17u + static_cast<uint32_t>(c.name.size()));
  const Expected e(pr);
  int fast_paths = 0;
  for (Conv2dAlgorithm algo : kFast) {
    std::string refused;
    try {
      const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, algo);
      ASSERT_EQ(plan.algorithm_id(), algo);
      ++fast_paths;
      testops::check_plan(plan, pr, e, what + " " + to_string(algo));
    } catch (const Error& err) {
      refused = err.what();
    }
    if (!refused.empty()) {
      // A refusal names the algorithm and says why.
      EXPECT_NE(refused.find("'" + to_string(algo) + "' cannot run this convolution"), std::string::npos) << refused;
    }
  }
  // implicit_gemm's two forms of backward data (gather by stride phase, GEMM + scatter), each forced, whichever
  // the automatic choice would take for this shape.
  for (ops::BackwardDataForm form : {ops::BackwardDataForm::gather, ops::BackwardDataForm::scatter}) {
    const Isa isa = active_isa();
    const ops::Conv2dContext ctx{pr.g, c.p.activation, &config::kernels(isa), 2, form};
    const std::unique_ptr<detail::Conv2dImpl> impl = ops::implicit_gemm_create(ctx);
    std::vector<unsigned char> ws(impl->workspace_size() + 1);
    std::vector<float> dx(e.dx.size(), -7.0f);
    impl->backward_data(pr.dz.data(), pr.w.data(), dx.data(), ws.data() + 1);
    std::string report;
    EXPECT_EQ(testops::count_mismatches(dx, e.dx, e.dx_s, report), 0)
        << what << " implicit_gemm backward data, " << (form == ops::BackwardDataForm::gather ? "gather" : "scatter")
        << " form\n"
        << report;
  }
  // implicit_gemm supports every small problem: each case runs at least one fast path.
  EXPECT_GE(fast_paths, 1) << what;
  // The automatic choice is one of the fast ones, and as correct.
  const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input);
  EXPECT_NE(plan.algorithm_id(), Conv2dAlgorithm::reference) << plan.explain();
  testops::check_plan(plan, pr, e, what + " auto");
}

std::string param_name(const ::testing::TestParamInfo<SweepParam>& info) {
  std::string s = info.param.isa + "_" + info.param.c.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Isa, Conv2dSweep, ::testing::ValuesIn(sweep_params()), param_name);
INSTANTIATE_TEST_SUITE_P(Env, Conv2dSweep, ::testing::ValuesIn(env_params()), param_name);

}  // namespace
}  // namespace convkit
