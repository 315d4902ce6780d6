// The parallel threshold (src/ops/conv2d_threads.hpp): a plan for a tiny problem runs on one thread, a big one on
// every thread available, and explain() says so; results are the reference's either way.
#include <gtest/gtest.h>

#include <string>

#include "convkit/runtime.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

Conv2dParams conv(int filters, int k, int groups) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {k, k};
  p.padding = Padding::same();
  p.groups = groups;
  return p;
}

TEST(Conv2dThreads, TinyProblemsRunOnOneThread) {
  set_num_threads(2);
  // The example: 1x4x4x3 -> 2 filters, 1728 FLOP.
  const Conv2dGeometry tiny = conv2d_geometry(conv(2, 3, 1), {1, 4, 4, 3});
  EXPECT_EQ(ops::conv2d_threads(tiny, 2), 1);
  EXPECT_EQ(ops::conv2d_threads(tiny, 16), 1);
  const Conv2dPlan plan = Conv2dPlan::create(conv(2, 3, 1), {1, 4, 4, 3});
  EXPECT_NE(plan.explain().find("2 thread(s) (1 used"), std::string::npos) << plan.explain();
  // A ResNet-sized layer uses them all: 1x56x56x64 -> 64, 3x3 (231 MFLOP).
  const Conv2dGeometry big = conv2d_geometry(conv(64, 3, 1), {1, 56, 56, 64});
  EXPECT_EQ(ops::conv2d_threads(big, 16), 16);
  const Conv2dPlan big_plan = Conv2dPlan::create(conv(64, 3, 1), {1, 56, 56, 64});
  EXPECT_EQ(big_plan.explain().find("used: too little work"), std::string::npos) << big_plan.explain();
  // Depthwise is weighted as the memory-bound work it is: 1x56x56x64 depthwise (3.6 MFLOP) still splits in two...
  EXPECT_EQ(ops::conv2d_threads(conv2d_geometry(conv(64, 3, 64), {1, 56, 56, 64}), 2), 2);
  // ...where a GEMM-based convolution of the same FLOP count would not be worth 40 threads.
  EXPECT_LT(ops::conv2d_threads(conv2d_geometry(conv(64, 3, 64), {1, 56, 56, 64}), 64), 64);
  // Measured on a 2-vCPU Zen 5 guest with the library's thread pool (src/ops/conv2d_threads.hpp): Fashion-MNIST's 5x5
  // 1x28x28x1 -> 32 (1.25 MFLOP) runs faster on two threads (7.0 / 4.4 us), 3x3 1x8x8x8 -> 8 (0.15 MFLOP) and 1x1
  // 1x8x8x64 -> 64 (0.5 MFLOP) do not; depthwise 1x8x8x64 (74 kFLOP) stays on one, 1x12x12x256 (0.66 MFLOP) splits.
  EXPECT_EQ(ops::conv2d_threads(conv2d_geometry(conv(32, 5, 1), {1, 28, 28, 1}), 2), 2);
  EXPECT_EQ(ops::conv2d_threads(conv2d_geometry(conv(8, 3, 1), {1, 8, 8, 8}), 2), 1);
  EXPECT_EQ(ops::conv2d_threads(conv2d_geometry(conv(64, 1, 1), {1, 8, 8, 64}), 2), 1);
  EXPECT_EQ(ops::conv2d_threads(conv2d_geometry(conv(64, 3, 64), {1, 8, 8, 64}), 2), 1);
  EXPECT_EQ(ops::conv2d_threads(conv2d_geometry(conv(256, 3, 256), {1, 12, 12, 256}), 2), 2);
  // Threshold 0: every thread, however small the problem.
  ops::g_min_ns_per_thread = 0.0;
  EXPECT_EQ(ops::conv2d_threads(tiny, 3), 3);
  ops::g_min_ns_per_thread = ops::kDefaultMinNsPerThread;
  set_num_threads(0);
}

TEST(Conv2dThreads, ThresholdedPlansMatchTheReference) {
  set_num_threads(4);
  for (const auto& [p, in] : {std::pair{conv(2, 3, 1), Shape{1, 4, 4, 3}}, std::pair{conv(8, 3, 8), Shape{1, 6, 5, 8}},
                              std::pair{conv(5, 1, 1), Shape{2, 3, 3, 4}}}) {
    const testops::Problem pr(p, in, 11u);
    const testops::Expected e(pr);
    const Conv2dPlan plan = Conv2dPlan::create(p, in);
    testops::check_plan(plan, pr, e, testops::describe(p, in));
  }
  set_num_threads(0);
}

}  // namespace
}  // namespace convkit
