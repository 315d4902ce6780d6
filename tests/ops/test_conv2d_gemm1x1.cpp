// The gemm_1x1 Conv2D algorithm (src/ops/conv2d_gemm.cpp): strided 1x1 convolutions (strides 2 and 3, different
// along height and width, groups, odd sizes that leave trailing input pixels unread, the edges of the MR x NR
// register tile) against the reference kernels in all three directions on every ISA of this CPU; weights packed
// once give the per-call results bit for bit (stride 1 and strided); the automatic choice takes gemm_1x1 for
// strided unpadded 1x1 and still refuses padded 1x1; the workspace bound; no allocation with a workspace. The cases
// reach each form of the plan: rows through the offset table or gathered, weights in place or copied per thread,
// the column blocks or the row tiles fastest (in chunks).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "alloc_counter.hpp"  // this binary's operator new (one TU only)
#include "config/kernels.hpp"
#include "convkit/runtime.hpp"
#include "expect_error.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

using testops::Expected;
using testops::Problem;

// Tiny problems would run on one thread (ops/conv2d_threads.hpp); the splits are checked here too.
const bool kEveryThreadRuns = (ops::g_min_ns_per_thread = 0.0, true);

using testops::Case;

const Activation kActs[] = {Activation::none, Activation::relu, Activation::tanh, Activation::sigmoid};

Conv2dParams pointwise(int filters, int sh, int sw, int groups = 1) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {1, 1};
  p.strides = {sh, sw};
  p.groups = groups;
  return p;
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::generic})
    if (cpu_supports(i)) out.push_back(i);
  return out;
}

// The edges of one ISA's register block, with strides.
std::vector<Case> strided_cases(const config::KernelTable& k) {
  const int mr = k.mr, nr = k.nr;
  std::vector<Case> cases;
  int act = 0;
  auto add = [&](std::string name, Conv2dParams p, Shape in) {
    p.activation = kActs[act++ % 4];
    cases.push_back({std::move(name), p, std::move(in)});
  };
  // ResNet's projection shortcut in small: even sizes, stride 2 (IH = OH * 2: the weight gradient's one-image form).
  add("s2_even", pointwise(nr + 3, 2, 2), {2, 6, 8, mr + 2});
  // Odd sizes: the last input row and column are read by no output pixel.
  add("s2_odd", pointwise(5, 2, 2), {3, 7, 9, 3});
  add("s3_odd", pointwise(nr - 1, 3, 3), {2, 8, 10, 4});
  add("s3_exact", pointwise(2 * nr + 1, 3, 3), {1, 9, 12, 2 * mr + 1});
  // Different strides along height and width, and stride 1 along one of them.
  add("s2x3", pointwise(7, 2, 3), {2, 9, 11, 5});
  add("s3x1", pointwise(nr, 3, 1), {1, 10, mr + 1, 6});
  add("s1x2", pointwise(nr + 1, 1, 2), {2, 3, 2 * mr + 3, 3});
  // Groups: 2 and 3, with channel counts around the register blocks.
  add("groups2_s2", pointwise(2 * nr + 2, 2, 2, 2), {2, 7, 6, 2 * mr + 2});
  add("groups3_s3", pointwise(9, 3, 3, 3), {1, 10, 7, 6});
  add("groups4_s2x3", pointwise(4 * (nr + 1), 2, 3, 4), {1, 5, 8, 4 * (mr - 1)});
  // Output rows around the tile: 1, MR - 1, MR, MR + 1 output pixels in all, tiles spanning output rows and images.
  for (int rows : {1, mr - 1, mr, mr + 1, 3 * mr + 2})
    add("rows" + std::to_string(rows), pointwise(nr + 1, 2, 2), {1, 1, 2 * rows, mr + 1});
  add("tiles_span_images", pointwise(nr - 1, 2, 2), {3, 5, 5, nr + 1});
  // One input pixel: a stride larger than the input.
  add("one_pixel", pointwise(3, 3, 2), {2, 1, 1, 4});
  // Input channels past NR (several blocks of backward data), output channels past 2 NR.
  add("channels", pointwise(2 * nr + 3, 2, 2), {1, 5, 6, nr + 5});
  // Source rows 4 KiB apart (sw * IC * 4): forward gathers them into the workspace first (with MR 14).
  add("gather_s2_ic512", pointwise(40, 2, 2), {2, 5, 7, 512});
  add("gather_s4_groups", pointwise(2 * (nr + 3), 3, 4, 2), {1, 7, 13, 256});
  // A kernel over 1 MiB: the row tiles fastest, forward per call copying each block into a per-thread buffer.
  add("big_weights_s2", pointwise(640, 2, 2), {1, 6, 10, 520});
  add("big_weights_groups", pointwise(2 * 600 + 6, 3, 2, 2), {1, 7, 9, 2 * 500});
  // ... and rows over 1 MiB too: the tiles in chunks, forward per call packing the whole kernel first.
  add("big_weights_chunks", pointwise(520, 2, 2), {1, 34, 60, 520});
  return cases;
}

std::vector<Case> random_cases(uint32_t seed, int count) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Case> cases;
  for (int i = 0; i < count; ++i) {
    const int groups = pick(0, 3) == 0 ? pick(2, 3) : 1;
    Conv2dParams p = pointwise(groups * pick(1, 40), pick(1, 3), pick(1, 3), groups);
    p.activation = kActs[pick(0, 3)];
    p.use_bias = pick(0, 3) != 0;
    cases.push_back({"random" + std::to_string(i), p, {pick(1, 3), pick(1, 12), pick(1, 12), groups * pick(1, 40)}});
  }
  return cases;
}

// The workspace bound of tests/ops/test_conv2d_workspace.cpp: the input plus the larger direction's packed
// weights (NR-wide blocks pad the output channels forward, the input channels backward), plus 16 KiB of slack.
std::size_t workspace_bound(const Conv2dGeometry& g, int64_t nr) {
  const auto up = [nr](int64_t v) { return (v + nr - 1) / nr * nr; };
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t packed = g.groups * std::max(up(icg) * ocg, icg * up(ocg));
  return 4 * static_cast<std::size_t>(shape_elements(g.input_shape()) + packed) + 16 * 1024;
}

class Gemm1x1 : public ::testing::Test {
 protected:
  void TearDown() override {
    reset_isa();
    set_num_threads(0);
    ops::g_gemm_1x1_prefetch = -1;
  }
};

TEST_F(Gemm1x1, StridedMatchesTheReferenceOnEveryIsa) {
  for (Isa isa : isas()) {
    set_isa(isa);
    std::vector<Case> cases = strided_cases(config::kernels(isa));
    for (Case& c : random_cases(11u + static_cast<uint32_t>(isa), 25)) cases.push_back(c);
    for (const Case& c : cases) {
      const Problem pr(c.p, c.input, 7u);
      const Expected e(pr);
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::gemm_1x1);
        testops::check_plan(plan, pr, e,
                            to_string(isa) + " " + c.name + " " + testops::describe(c.p, c.input) + " threads " +
                                std::to_string(threads));
      }
    }
  }
}

// Rows of A a multiple of 4 KiB long (1024 / 2048 channels, or a stride of 2 over 512) are copied into the
// workspace with a padded length (forward: x, stride 1 or gathered; backward data: dz, stride 1 or read through the
// offset table; per call and with packed weights). The same results
// as the reference, packed == per call bit for bit, on every ISA, with the copies named by explain() where they are
// taken, and the workspace within input + packed weights.
TEST_F(Gemm1x1, FourKibRowsCopiedPaddedMatchTheReference) {
  const Case cases[] = {{"x_1024", pointwise(40, 1, 1), {1, 3, 11, 1024}},
                        {"dz_1024", pointwise(1024, 1, 1), {1, 5, 7, 48}},
                        {"both_2048_relu", pointwise(2048, 1, 1), {2, 3, 5, 1024}},
                        {"groups_2", pointwise(64, 1, 1, 2), {1, 4, 5, 1024}},
                        {"strided_gather", pointwise(24, 2, 2), {1, 7, 9, 1024}},
                        {"dz_big_weights", pointwise(1024, 1, 1), {1, 7, 7, 512}},
                        {"dz_per_call_too", pointwise(1024, 1, 1), {1, 3, 4, 2048}},
                        {"strided_dz", pointwise(1024, 2, 2), {1, 10, 8, 64}},
                        {"strided_dz_per_call", pointwise(1024, 2, 2), {2, 5, 7, 2048}}};
  for (Isa isa : isas()) {
    set_isa(isa);
    const int64_t nr = config::kernels(isa).nr;
    for (const Case& c0 : cases) {
      Case c = c0;
      if (c.name.find("relu") != std::string::npos) c.p.activation = Activation::relu;
      const Problem pr(c.p, c.input, 9u);
      const Expected e(pr);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        const std::string what = to_string(isa) + " " + c.name + " threads " + std::to_string(threads);
        const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::gemm_1x1, Conv2dWeights::packed_once);
        const Conv2dGeometry& g = plan.geometry();
        const std::string ex = plan.explain();
        // Strided rows are copied only where they are gathered (an ISA with a taller MR tile).
        const bool strided = g.sh != 1 || g.sw != 1;
        const bool x_aliases = g.ic % 1024 == 0 && (!strided || ex.find("gathered") != std::string::npos);
        const bool dz_aliases = g.oc % 1024 == 0;
        EXPECT_EQ(ex.find("rows copied 64 bytes longer") != std::string::npos, x_aliases || dz_aliases)
            << what << "\n" << ex;
        testops::check_plan(plan, pr, e, what);
        testops::expect_packed_matches_per_call(plan, pr, what);
        EXPECT_LE(plan.workspace_size(), workspace_bound(g, nr)) << what;
      }
    }
  }
}

// Outputs past ops::kStreamBytes (forward: 8 -> 256 channels; backward data: 256 -> 8) are written with
// non-temporal stores: the same results as plain stores, on every ISA.
TEST_F(Gemm1x1, LargeOutputsStreamedMatchTheReference) {
  struct Big {
    int ic, oc, dirs;
  };
  for (const Big b : {Big{8, 256, 1}, Big{256, 8, 2}}) {
    const Shape in{1, 128, 130, b.ic};
    const Problem pr(pointwise(b.oc, 1, 1), in, 3u);
    const int64_t out = shape_elements(b.dirs == 1 ? pr.g.output_shape() : pr.g.input_shape());
    ASSERT_GT(out * int64_t{sizeof(float)}, ops::kStreamBytes) << "the case must reach the streaming stores";
    const Expected e(pr);
    for (Isa isa : isas()) {
      set_isa(isa);
      set_num_threads(2);
      const Conv2dPlan plan = Conv2dPlan::create(pr.p, in, Conv2dAlgorithm::gemm_1x1);
      testops::check_streamed_outputs(plan, pr, e, b.dirs, to_string(isa) + " " + testops::describe(pr.p, in));
    }
  }
}

// The forward's prefetch of the next row tile of x (ops::g_gemm_1x1_prefetch forced on, then off) over rows in
// place, gathered, copied padded and in group slices, partial last tiles and one-block outputs: the results of the
// reference either way, on every ISA. And the rule: on for short rows streamed from memory (x + y past
// ops::kStreamBytes), off for the same layer on a small batch and for rows of 2 KiB.
TEST_F(Gemm1x1, PrefetchedRowsMatchTheReference) {
  for (Isa isa : isas()) {
    set_isa(isa);
    std::vector<Case> cases = strided_cases(config::kernels(isa));
    for (Case& c : random_cases(23u + static_cast<uint32_t>(isa), 20)) cases.push_back(c);
    cases.push_back({"x_1024_padded", pointwise(40, 1, 1), {1, 3, 11, 1024}});
    cases.push_back({"groups_2_padded", pointwise(64, 1, 1, 2), {1, 4, 5, 1024}});
    cases.push_back({"strided_gather", pointwise(24, 2, 2), {1, 7, 9, 1024}});
    for (const Case& c : cases)
      for (int force : {1, 0}) {
        ops::g_gemm_1x1_prefetch = force;
        const Problem pr(c.p, c.input, 5u);
        const Expected e(pr);
        set_num_threads(2);
        const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::gemm_1x1);
        testops::check_plan(plan, pr, e,
                            to_string(isa) + " " + c.name + " " + testops::describe(c.p, c.input) + " prefetch " +
                                std::to_string(force));
      }
  }
  ops::g_gemm_1x1_prefetch = -1;
  const auto rule = [](const Shape& in, int filters) {
    return Conv2dPlan::create(pointwise(filters, 1, 1), in, Conv2dAlgorithm::gemm_1x1)
               .explain()
               .find("forward prefetches") != std::string::npos;
  };
  for (Isa isa : isas()) {
    set_isa(isa);
    EXPECT_TRUE(rule({32, 56, 56, 128}, 128)) << to_string(isa) << ": conv3_1/pw at mb 32";
    const Conv2dPlan bwd = Conv2dPlan::create(pointwise(128, 1, 1), {32, 56, 56, 256}, Conv2dAlgorithm::gemm_1x1);
    EXPECT_NE(bwd.explain().find("backward data prefetches"), std::string::npos) << to_string(isa) << ": 256 <- 128";
    EXPECT_FALSE(rule({1, 56, 56, 128}, 128)) << to_string(isa) << ": conv3_1/pw at mb 1";
    EXPECT_FALSE(rule({32, 28, 28, 512}, 128)) << to_string(isa) << ": res3b_branch2a at mb 32 (rows of 2 KiB)";
  }
}

// The wide kernel (two packed blocks a tile, where the ISA has one) in the forward (OC/G = 2 NR) and backward data
// (IC/G = 2 NR, stride 1): rows around its tile (and the half tile), channel counts around 2 NR (others keep the
// plain kernel), dz rows copied padded,
// groups, every activation, with and without a bias, in place and gathered: the reference's results,
// forward_packed == forward bit for bit with no allocation, and explain() naming the kernel exactly where it runs.
TEST_F(Gemm1x1, WideKernelMatchesTheReference) {  // forward and backward data
  for (Isa isa : isas()) {
    set_isa(isa);
    const config::KernelTable& k = config::kernels(isa);
    const int wm = k.gemm_wide ? k.wide_mr : k.mr, nr = k.nr;
    std::vector<Case> cases;
    int act = 0;
    auto add = [&](std::string name, Conv2dParams p, Shape in, bool bias = true) {
      p.activation = kActs[act++ % 4];
      p.use_bias = bias;
      cases.push_back({std::move(name), p, std::move(in)});
    };
    for (int rows : {1, wm / 2, wm / 2 + 1, wm - 1, wm, wm + 1, 2 * wm + 1, 49})
      add("rows" + std::to_string(rows), pointwise(2 * nr, 1, 1), {1, 1, rows, 7}, rows % 2 == 0);
    for (int oc : {nr + 1, 2 * nr - 1, 2 * nr})
      add("oc" + std::to_string(oc), pointwise(oc, 1, 1), {2, 3, 5, 13}, oc % 2 == 1);
    add("groups2", pointwise(2 * 2 * nr, 1, 1, 2), {1, 4, 5, 2 * 9});
    add("groups3", pointwise(3 * 2 * nr, 1, 1, 3), {2, 3, 3, 3 * 5});
    add("long_rows", pointwise(2 * nr, 1, 1), {1, 5, 6, 300});
    add("narrow_past_2nr", pointwise(2 * nr + 1, 1, 1), {1, 3, 5, 9});
    add("narrow_nr", pointwise(nr, 1, 1), {1, 3, 5, 9});
    add("gathered_s2", pointwise(2 * nr, 2, 2), {1, 7, 9, 1024});
    // Backward data's wide kernel: 2 NR input channels a group (its columns), stride 1.
    for (int rows : {1, wm / 2 + 1, wm, 2 * wm + 1})
      add("bwd_rows" + std::to_string(rows), pointwise(11, 1, 1), {1, rows, 1, 2 * nr}, rows % 2 == 1);
    add("bwd_long_rows", pointwise(300, 1, 1), {1, 4, 5, 2 * nr});
    add("bwd_groups2", pointwise(2 * 7, 1, 1, 2), {2, 3, 3, 2 * 2 * nr});
    add("bwd_and_fwd", pointwise(2 * nr, 1, 1), {1, 5, 3, 2 * nr});
    add("bwd_dz_1024_copied", pointwise(1024, 1, 1), {1, 3, 4, 2 * nr});
    add("bwd_strided_not", pointwise(9, 2, 2), {1, 6, 7, 2 * nr});
    for (const Case& c : cases) {
      const Problem pr(c.p, c.input, 13u);
      const Expected e(pr);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        const std::string what = to_string(isa) + " " + c.name + " " + testops::describe(c.p, c.input) +
                                 " threads " + std::to_string(threads);
        const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::gemm_1x1, Conv2dWeights::packed_once);
        const bool strided = c.p.strides.h != 1, gathered = plan.explain().find("gathered") != std::string::npos;
        const bool fwd_wide = c.p.filters / c.p.groups == 2 * nr && (!strided || gathered);
        const bool bwd_wide = c.input[3] / c.p.groups == 2 * nr && !strided;
        EXPECT_EQ(plan.explain().find("gemm_wide") != std::string::npos, k.gemm_wide && (fwd_wide || bwd_wide))
            << what << "\n" << plan.explain();
        testops::check_plan(plan, pr, e, what);
        const testops::AllocationCounter count{g_counting, g_allocations};
        testops::expect_packed_matches_per_call(plan, pr, what, CONVKIT_TEST_COUNTS_ALLOCATIONS ? &count : nullptr);
      }
    }
  }
}

// forward_packed / backward_data_packed == forward / backward_data bit for bit, and pack_weights writes exactly
// packed_weights_size() floats (one NR-wide block per group and column block, both directions).
TEST_F(Gemm1x1, PackedWeightsGiveThePerCallResultsBitForBit) {
  for (Isa isa : isas()) {
    set_isa(isa);
    const config::KernelTable& k = config::kernels(isa);
    std::vector<Case> cases = strided_cases(k);
    // Stride 1: the plain GEMM; large OC (the in-place rows alias in the caches); a tall Dense-like problem.
    cases.push_back({"s1", pointwise(2 * k.nr + 5, 1, 1), {2, 5, 7, k.nr + 3}});
    cases.push_back({"s1_groups", pointwise(3 * (k.nr - 1), 1, 1, 3), {1, 4, 9, 3 * (k.mr + 1)}});
    cases.push_back({"s1_wide", pointwise(600, 1, 1), {1, 3, 5, 40}});
    cases.push_back({"dense_like", pointwise(70, 1, 1), {3, 1, 1, 3000}});
    cases.push_back({"big_weights_s1", pointwise(600, 1, 1), {2, 3, 7, 600}});
    cases.push_back({"big_weights_one_tile", pointwise(1100, 1, 1), {5, 1, 1, 300}});
    cases.push_back({"big_weights_chunks_s1", pointwise(600, 1, 1), {2, 18, 17, 500}});
    for (Case& c : random_cases(5u + static_cast<uint32_t>(isa), 10)) cases.push_back(c);
    for (const Case& c : cases) {
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        const std::string what = to_string(isa) + " " + c.name + " " + testops::describe(c.p, c.input) +
                                 " threads " + std::to_string(threads);
        const Conv2dPlan plan =
            Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::gemm_1x1, Conv2dWeights::packed_once);
        const Conv2dGeometry& g = plan.geometry();
        const int64_t up_oc = (g.oc_per_group() + k.nr - 1) / k.nr * k.nr;
        const int64_t up_ic = (g.ic_per_group() + k.nr - 1) / k.nr * k.nr;
        EXPECT_EQ(plan.packed_weights_size(),
                  static_cast<std::size_t>(g.groups * (g.ic_per_group() * up_oc + up_ic * g.oc_per_group())))
            << what;
        const Problem pr(c.p, c.input, 9u);
        const testops::AllocationCounter count{g_counting, g_allocations};
        testops::expect_packed_matches_per_call(plan, pr, what, CONVKIT_TEST_COUNTS_ALLOCATIONS ? &count : nullptr);
      }
    }
  }
}

TEST_F(Gemm1x1, ChosenForStridedUnpaddedAndRefusedWhenPadded) {
  // ResNet-50's res4a_branch1 (a projection shortcut), and small strided shapes.
  EXPECT_EQ(Conv2dPlan::create(pointwise(1024, 2, 2), {1, 28, 28, 512}).algorithm(), "gemm_1x1");
  EXPECT_EQ(Conv2dPlan::create(pointwise(8, 3, 2), {2, 7, 5, 4}).algorithm(), "gemm_1x1");
  EXPECT_EQ(Conv2dPlan::create(pointwise(6, 2, 2, 3), {1, 6, 6, 9}).algorithm(), "gemm_1x1");
  EXPECT_EQ(Conv2dPlan::create(pointwise(8, 2, 2), {1, 7, 7, 4}, Conv2dAlgorithm::automatic,
                               Conv2dWeights::packed_once)
                .algorithm(),
            "gemm_1x1");
  // "same" with stride 2 on an even input has no padding for a 1x1 kernel: still gemm_1x1.
  Conv2dParams same = pointwise(8, 2, 2);
  same.padding = Padding::same();
  EXPECT_EQ(Conv2dPlan::create(same, {1, 8, 8, 4}).algorithm(), "gemm_1x1");
  // Padded 1x1, with stride 1 or 2: implicit_gemm, and forcing gemm_1x1 says why not.
  for (int stride : {1, 2}) {
    Conv2dParams padded = pointwise(8, stride, stride);
    padded.padding = Padding::symmetric(1, 1);
    const Conv2dPlan plan = Conv2dPlan::create(padded, {1, 6, 6, 4});
    EXPECT_EQ(plan.algorithm(), "implicit_gemm");
    EXPECT_NE(plan.explain().find("gemm_1x1: not chosen: needs no padding"), std::string::npos) << plan.explain();
    const std::string e =
        test_support::error_message([&] { Conv2dPlan::create(padded, {1, 6, 6, 4}, Conv2dAlgorithm::gemm_1x1); });
    EXPECT_NE(e.find("'gemm_1x1' cannot run"), std::string::npos) << e;
    EXPECT_NE(e.find("needs no padding"), std::string::npos) << e;
  }
}

// The workspace (all three directions) stays within input + packed weights, as tests/ops/test_conv2d_workspace.cpp
// requires of every algorithm, on strided shapes; and the workspace overloads allocate nothing.
TEST_F(Gemm1x1, StridedWorkspaceBoundAndNoAllocation) {
  const Case cases[] = {{"res4a_small", pointwise(256, 2, 2), {1, 14, 14, 128}},
                        {"tiny", pointwise(16, 2, 2), {1, 4, 4, 1}},
                        {"groups", pointwise(64, 3, 2, 4), {2, 9, 8, 32}},
                        {"few_pixels", pointwise(512, 2, 2), {1, 3, 3, 512}},
                        {"gather_big_weights", pointwise(1100, 2, 2), {2, 6, 6, 512}}};
  for (Isa isa : isas()) {
    set_isa(isa);
    const int64_t nr = config::kernels(isa).nr;
    for (int threads : {1, 2, 8}) {
      set_num_threads(threads);
      for (const Case& c : cases) {
        const std::string what = to_string(isa) + " " + c.name + " threads " + std::to_string(threads);
        const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::gemm_1x1);
        const Conv2dGeometry& g = plan.geometry();
        EXPECT_LE(plan.workspace_size(), workspace_bound(g, nr)) << what;
        const Problem pr(c.p, c.input, 1u);
        std::vector<unsigned char> ws(plan.workspace_size());
        std::vector<float> y(pr.dz.size()), dx(pr.x.size()), dw(pr.w.size()), db(pr.b.size());
        g_allocations = 0;
        g_counting = true;
        plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), ws.data());
        plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), ws.data());
        plan.backward_weights(pr.x.data(), pr.dz.data(), dw.data(), db.data(), ws.data());
        g_counting = false;
        if (CONVKIT_TEST_COUNTS_ALLOCATIONS) EXPECT_EQ(g_allocations.load(), 0) << what;
      }
    }
  }
}

}  // namespace
}  // namespace convkit
