// kernel_rows (src/ops/conv2d_rows.cpp) against the reference kernels: every ISA of this CPU, forward and both
// backward directions, on random shapes with 1 to 4 input channels per group, kernels 1 to 7, strides, dilation
// along the height, every padding mode, groups, the register-tile edges, one and several bands per image and several
// threads, forward over band copies and over x in place; its refusal (dilation along the width), the automatic choice
// (image stems), the workspace bound on the stem, and forward_packed == forward bit for bit.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
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

const Activation kActs[] = {Activation::none, Activation::relu, Activation::tanh, Activation::sigmoid};

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::generic})
    if (cpu_supports(i)) out.push_back(i);
  return out;
}

// Restores the process-wide settings the tests change.
struct Settings {
  Settings() { ops::g_min_ns_per_thread = 0.0; }
  ~Settings() {
    reset_isa();
    set_num_threads(0);
    ops::g_min_ns_per_thread = ops::kDefaultMinNsPerThread;
    ops::g_kernel_rows_band_floats = 32 * 1024;
    ops::g_kernel_rows_wgrad_pixels = 512;
    ops::g_kernel_rows_forward_in_place = -1;
    ops::g_kernel_rows_forward_prefetch = -1;
  }
};

Conv2dParams conv(int filters, int kh, int kw, int sh, int sw, Padding pad, int dh, int groups,
                  PaddingMode mode = PaddingMode::zeros, Activation act = Activation::none) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {kh, kw};
  p.strides = {sh, sw};
  p.padding = pad;
  p.dilation_rate = {dh, 1};
  p.groups = groups;
  p.padding_mode = mode;
  p.activation = act;
  return p;
}

struct Case {
  std::string name;
  Conv2dParams p;
  Shape input;
};

// The register-tile edges of one ISA: output pixels per tile around MR, kernel rows of KW * IC/G floats around MR
// (the weight-gradient rows), output channels around NR, several column blocks of backward data.
std::vector<Case> edge_cases(const config::KernelTable& k) {
  const int mr = k.mr, nr = k.nr;
  std::vector<Case> out;
  for (int ow : {1, mr - 1, mr, mr + 1, 2 * mr + 1})
    out.push_back({"ow" + std::to_string(ow), conv(nr + 1, 3, 3, 1, 1, Padding::valid(), 1, 1), {2, 4, ow + 2, 3}});
  for (int row : {mr - 1, mr, mr + 1, 2 * mr + 1}) {
    // KW * IC/G = row floats per kernel row.
    const int ic = row % 3 == 0 ? 3 : row % 2 == 0 ? 2 : 1, kw = row / ic;
    if (kw < 1 || kw > 9) continue;
    out.push_back({"row" + std::to_string(row), conv(7, 2, kw, 1, 1, Padding::same(), 1, 1), {1, 5, kw + 3, ic}});
  }
  for (int oc : {1, nr - 1, nr, nr + 1, 2 * nr + 3})
    out.push_back({"oc" + std::to_string(oc), conv(oc, 5, 5, 2, 2, Padding::same(), 1, 1), {1, 9, 8, 3}});
  // The stem's geometry on a smaller image, and fmnist's first layer.
  out.push_back({"stem_small", conv(64, 7, 7, 2, 2, Padding::symmetric(3, 3), 1, 1), {2, 22, 19, 3}});
  out.push_back({"fmnist_conv1", conv(32, 5, 5, 1, 1, Padding::symmetric(2, 2), 1, 1, PaddingMode::zeros,
                                      Activation::relu),
                 {2, 28, 28, 1}});
  // Padding wider than the kernel row (rows entirely in the padding), a kernel covering the input, asymmetric pads.
  out.push_back({"pad_wide", conv(5, 3, 3, 1, 1, Padding::explicit_pad(4, 0, 1, 5), 1, 1), {1, 3, 4, 2}});
  // Every window cut by the left or right padding, some on both sides: the border tiles of forward in place only.
  out.push_back({"all_border", conv(4, 3, 7, 1, 1, Padding::explicit_pad(1, 1, 6, 6), 1, 1), {1, 5, 4, 2}});
  out.push_back({"kernel_covers_input", conv(3, 5, 5, 1, 1, Padding::valid(), 1, 1), {2, 5, 5, 2}});
  out.push_back({"asym_stride2", conv(6, 3, 4, 2, 3, Padding::explicit_pad(0, 2, 3, 0), 1, 1), {2, 8, 11, 3}});
  out.push_back({"stride_gt_kernel", conv(4, 2, 2, 3, 3, Padding::valid(), 1, 1), {1, 8, 10, 4}});
  out.push_back({"dilation_h3", conv(5, 3, 2, 1, 2, Padding::same(), 3, 1), {1, 10, 9, 3}});
  out.push_back({"groups3", conv(9, 5, 3, 1, 1, Padding::same(), 1, 3), {2, 6, 7, 6}});
  out.push_back({"depthwise_like", conv(8, 3, 3, 2, 2, Padding::same(), 1, 4), {1, 7, 8, 4}});
  // Many channels on a tiny input: backward data's band and GEMM tile would outgrow the input, implicit_gemm runs it.
  out.push_back({"bwd_fallback", conv(8, 3, 3, 1, 1, Padding::same(), 1, 1), {1, 3, 3, 64}});
  out.push_back({"one_by_one", conv(5, 1, 1, 1, 1, Padding::valid(), 1, 1), {1, 3, 4, 2}});
  for (PaddingMode m : {PaddingMode::reflect, PaddingMode::replicate, PaddingMode::circular}) {
    out.push_back({"mode_" + to_string(m), conv(6, 3, 3, 1, 1, Padding::same(), 1, 1, m), {2, 5, 6, 3}});
    out.push_back({"mode_" + to_string(m) + "_s2_groups", conv(4, 5, 3, 2, 1, Padding::explicit_pad(2, 1, 1, 2), 1, 2, m),
                   {1, 7, 6, 4}});
    out.push_back({"mode_" + to_string(m) + "_dilated", conv(5, 3, 3, 1, 1, Padding::symmetric(2, 1), 2, 1, m),
                   {1, 6, 5, 1}});
  }
  int a = 0;
  for (Case& c : out) c.p.activation = c.p.activation == Activation::none ? kActs[a++ % 4] : c.p.activation;
  return out;
}

// Random valid configurations with few input channels per group (deterministic per seed).
std::vector<Case> random_cases(uint32_t seed, int count) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Case> out;
  while (static_cast<int>(out.size()) < count) {
    const int groups = pick(0, 3) == 0 ? pick(2, 3) : 1;
    const int icg = pick(1, 4);
    Conv2dParams p;
    p.groups = groups;
    p.filters = groups * pick(1, 40);
    p.kernel_size = {pick(1, 7), pick(1, 7)};
    p.strides = {pick(1, 3), pick(1, 3)};
    p.dilation_rate = {pick(0, 3) == 0 ? pick(2, 3) : 1, 1};
    switch (pick(0, 2)) {
      case 0: p.padding = Padding::valid(); break;
      case 1: p.padding = Padding::same(); break;
      default: p.padding = Padding::explicit_pad(pick(0, 3), pick(0, 3), pick(0, 3), pick(0, 3)); break;
    }
    p.padding_mode = static_cast<PaddingMode>(pick(0, 3));
    p.activation = kActs[pick(0, 3)];
    p.use_bias = pick(0, 4) != 0;
    const Shape in = {pick(1, 3), pick(1, 16), pick(1, 16), groups * icg};
    try {
      const Conv2dGeometry g = conv2d_geometry(p, in);
      if (g.flops() > 3e6) continue;  // keep the reference quick
    } catch (const Error&) {
      continue;  // an invalid configuration: draw again
    }
    out.push_back({"random" + std::to_string(out.size()), p, in});
  }
  return out;
}

void check_case(const Case& c, const std::string& tag, uint32_t seed) {
  const Problem pr(c.p, c.input, seed);
  const Expected e(pr);
  const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::kernel_rows);
  ASSERT_EQ(plan.algorithm_id(), Conv2dAlgorithm::kernel_rows);
  testops::check_plan(plan, pr, e, tag + " " + c.name + " " + testops::describe(c.p, c.input));
}

// Every ISA x thread count x band size (the default, and one row per band: many bands, the halo rows of backward
// data multiplied for two bands, the weight gradient's bands and their tables).
TEST(KernelRows, MatchesReferenceOnEdgesAndRandomShapes) {
  Settings s;
  for (Isa isa : isas()) {
    set_isa(isa);
    const std::vector<Case> edges = edge_cases(config::kernels(isa));
    const std::vector<Case> randoms = random_cases(4321u + static_cast<uint32_t>(isa), 60);
    for (int threads : {1, 3}) {
      set_num_threads(threads);
      for (bool small_bands : {false, true})
        for (int in_place : {0, 1}) {
          ops::g_kernel_rows_band_floats = small_bands ? 1 : 32 * 1024;
          ops::g_kernel_rows_wgrad_pixels = small_bands ? 5 : 512;
          ops::g_kernel_rows_forward_in_place = in_place;
          // The forward's prefetch of the next tile's output lines, forced on with the many small bands.
          ops::g_kernel_rows_forward_prefetch = small_bands ? 1 : 0;
          const std::string tag = to_string(isa) + " " + std::to_string(threads) + " threads" +
                                  (small_bands ? " small bands, output prefetched" : "") +
                                  (in_place ? " x in place" : " band copies");
          uint32_t seed = 1;
          for (const Case& c : edges) check_case(c, tag, seed++);
          for (const Case& c : randoms) check_case(c, tag, seed++);
        }
    }
  }
}

// The weight gradient's threads split the output pixels by the streamed rule too (28 items, so not for lack of
// items): a stem-like 7x7/2 layer over 4 images of 48 x 48 x 3, 2 bands an image, at 2 threads; and on one thread
// the same layer does not split. Both against the reference.
TEST(KernelRows, StreamedWeightGradientSplitMatchesTheReference) {
  Settings s;
  const Case c{"stem_48", conv(64, 7, 7, 2, 2, Padding::symmetric(3, 3), 1, 1), {4, 48, 48, 3}};
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int threads : {2, 1}) {
      set_num_threads(threads);
      const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::kernel_rows);
      EXPECT_EQ(plan.explain().find("the threads splitting the output pixels") != std::string::npos,
                threads == 2)
          << to_string(isa) << " " << threads << "\n" << plan.explain();
      check_case(c, to_string(isa) + " " + std::to_string(threads) + " threads", 7u);
    }
  }
}

TEST(KernelRows, RefusesDilationAlongTheWidth) {
  Conv2dParams p = conv(4, 3, 3, 1, 1, Padding::same(), 1, 1);
  p.dilation_rate = {1, 2};
  std::string e;
  try {
    Conv2dPlan::create(p, {1, 8, 8, 3}, Conv2dAlgorithm::kernel_rows);
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("'kernel_rows' cannot run this convolution"), std::string::npos) << e;
  EXPECT_NE(e.find("needs dilation 1 along the width"), std::string::npos) << e;
  EXPECT_NE(e.find("got 2"), std::string::npos) << e;
  // Automatic choice passes it by, with the reason in explain().
  const Conv2dPlan plan = Conv2dPlan::create(p, {1, 8, 8, 3});
  EXPECT_EQ(plan.algorithm(), "implicit_gemm") << plan.explain();
  EXPECT_NE(plan.explain().find("kernel_rows: not chosen: needs dilation 1 along the width"), std::string::npos)
      << plan.explain();
  EXPECT_EQ(parse_conv2d_algorithm("kernel_rows"), Conv2dAlgorithm::kernel_rows);
  EXPECT_EQ(to_string(Conv2dAlgorithm::kernel_rows), "kernel_rows");
}

// The image stems it is for are chosen automatically, per call and packed once; a layer with many input channels
// is not.
TEST(KernelRows, ChosenForImageStems) {
  Settings s;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int mb : {1, 32})
      for (Conv2dWeights wts : {Conv2dWeights::per_call, Conv2dWeights::packed_once}) {
        const Conv2dPlan stem = Conv2dPlan::create(conv(64, 7, 7, 2, 2, Padding::symmetric(3, 3), 1, 1),
                                                   {mb, 224, 224, 3}, Conv2dAlgorithm::automatic, wts);
        EXPECT_EQ(stem.algorithm(), "kernel_rows") << stem.explain();
        EXPECT_NE(stem.explain().find("kernel_rows: chosen"), std::string::npos) << stem.explain();
        // The output prefetch where the output passes 16 MiB (103 MB at mb 32, 3 MB at mb 1).
        EXPECT_EQ(stem.explain().find("each tile prefetches the next tile's output lines") != std::string::npos,
                  mb == 32)
            << stem.explain();
        const Conv2dPlan fmnist = Conv2dPlan::create(conv(32, 5, 5, 1, 1, Padding::symmetric(2, 2), 1, 1),
                                                     {mb, 28, 28, 1}, Conv2dAlgorithm::automatic, wts);
        EXPECT_EQ(fmnist.algorithm(), "kernel_rows") << fmnist.explain();
      }
    // At 2 threads the weight gradient splits the stem's output pixels between the threads where x and dz are many
    // times dw and the bands share out evenly: mb 2 and 32 (46 and 736 bands), not mb 1 (23 bands).
    set_num_threads(2);
    for (int mb : {1, 2, 32}) {
      const Conv2dPlan stem = Conv2dPlan::create(conv(64, 7, 7, 2, 2, Padding::symmetric(3, 3), 1, 1),
                                                 {mb, 224, 224, 3}, Conv2dAlgorithm::automatic);
      EXPECT_EQ(stem.explain().find("the threads splitting the output pixels") != std::string::npos, mb != 1)
          << mb << "\n" << stem.explain();
    }
    set_num_threads(0);
    const Conv2dPlan wide = Conv2dPlan::create(conv(64, 3, 3, 2, 2, Padding::same(), 1, 1), {1, 14, 14, 32});
    EXPECT_NE(wide.algorithm(), "kernel_rows") << wide.explain();
    EXPECT_NE(wide.explain().find("kernel_rows: supported, not chosen"), std::string::npos) << wide.explain();
  }
}

// The workspace of the stem (a padded copy larger than the input, made in bands) stays within the input plus the
// packed weights (the bound of tests/ops/test_conv2d_workspace.cpp), for every thread count.
TEST(KernelRows, StemWorkspaceWithinTheInput) {
  Settings s;
  for (Isa isa : isas()) {
    set_isa(isa);
    const int64_t nr = config::kernels(isa).nr;
    for (int threads : {1, 2, 8, 16})
      for (int mb : {1, 32}) {
        set_num_threads(threads);
        const Shape in{mb, 224, 224, 3};
        const Conv2dPlan plan =
            Conv2dPlan::create(conv(64, 7, 7, 2, 2, Padding::symmetric(3, 3), 1, 1), in, Conv2dAlgorithm::kernel_rows);
        // The input, the transposed kernel of backward data (its columns rounded up to NR), the 8 KiB backward data
        // may take beyond them (conv2d_rows.cpp, kBwdSlackFloats), alignment.
        const std::size_t bound = 4 * static_cast<std::size_t>(shape_elements(in) + (7 * 7 * 3 + nr) * 64) + 9216;
        EXPECT_LE(plan.workspace_size(), bound) << to_string(isa) << " " << threads << " threads, mb " << mb;
      }
  }
}

// forward_packed and backward_data_packed are forward and backward_data, bit for bit (nothing is packed: the kernel
// is read in place forward and transposed per call backward, a few kilobytes).
TEST(KernelRows, PackedFormsGiveTheSameBits) {
  Settings s;
  set_num_threads(2);
  const Conv2dParams p = conv(19, 5, 5, 2, 1, Padding::same(), 1, 1, PaddingMode::reflect, Activation::relu);
  const Shape in{2, 13, 11, 3};
  const Problem pr(p, in, 5);
  for (Isa isa : isas()) {
    set_isa(isa);
    const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::kernel_rows, Conv2dWeights::packed_once);
    testops::expect_packed_matches_per_call(plan, pr, to_string(isa));
  }
}

}  // namespace
}  // namespace convkit
