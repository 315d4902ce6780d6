// The depthwise algorithm's own sweep: channel counts around every vector width and the backward-weights channel
// blocks (32 x multiplier), multipliers 1 (the register-blocked path) and 2, 3, 5 (the lane-permutation path, W not
// a multiple of 3 or 5), strides 1 and 2, padding modes, thread counts that take the channel split and the pixel
// split of backward weights, on every ISA of this CPU, against the reference (conv_check.hpp's tolerance).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "convkit/runtime.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

struct Restore {
  ~Restore() {
    reset_isa();
    set_num_threads(0);
    ops::g_min_ns_per_thread = ops::kDefaultMinNsPerThread;
    ops::g_depthwise_row_sweeps = -1;
  }
};

TEST(Conv2dDepthwise, EveryIsaMultiplierAndThreadSplit) {
  Restore restore;
  ops::g_min_ns_per_thread = 0.0;  // tiny shapes on every thread too
  struct Shape_ {
    int channels, mult, stride, kernel;
    Padding pad;
    PaddingMode mode;
    Shape in_hw_batch;  // (batch, height, width, -)
  };
  const std::vector<Shape_> shapes = {
      {2, 1, 1, 3, Padding::same(), PaddingMode::zeros, {2, 5, 6, 0}},
      {7, 1, 2, 3, Padding::same(), PaddingMode::zeros, {1, 9, 8, 0}},
      {17, 1, 1, 3, Padding::valid(), PaddingMode::zeros, {2, 6, 7, 0}},
      {64, 1, 2, 3, Padding::same(), PaddingMode::zeros, {1, 7, 7, 0}},
      {97, 1, 1, 3, Padding::same(), PaddingMode::reflect, {2, 5, 4, 0}},
      {130, 1, 1, 5, Padding::same(), PaddingMode::zeros, {1, 6, 5, 0}},
      {3, 2, 1, 3, Padding::same(), PaddingMode::zeros, {2, 5, 5, 0}},
      {9, 2, 2, 3, Padding::same(), PaddingMode::zeros, {1, 8, 9, 0}},
      {40, 2, 1, 3, Padding::same(), PaddingMode::replicate, {1, 5, 6, 0}},
      {5, 3, 1, 3, Padding::same(), PaddingMode::zeros, {2, 5, 5, 0}},
      {23, 3, 2, 3, Padding::valid(), PaddingMode::zeros, {1, 9, 7, 0}},
      {13, 5, 1, 3, Padding::same(), PaddingMode::circular, {1, 5, 6, 0}},
      {70, 5, 2, 3, Padding::same(), PaddingMode::zeros, {1, 6, 6, 0}},
  };
  uint32_t seed = 1;
  for (const Shape_& s : shapes) {
    Conv2dParams p;
    p.filters = s.channels * s.mult;
    p.kernel_size = {s.kernel, s.kernel};
    p.strides = {s.stride, s.stride};
    p.padding = s.pad;
    p.padding_mode = s.mode;
    p.groups = s.channels;
    p.activation = seed % 2 ? Activation::relu : Activation::none;
    const Shape in{s.in_hw_batch[0], s.in_hw_batch[1], s.in_hw_batch[2], s.channels};
    const testops::Problem pr(p, in, ++seed);
    const testops::Expected e(pr);  // once per shape: the reference is the slow part
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
      if (!cpu_supports(isa)) continue;
      set_isa(isa);
      for (int threads : {1, 3}) {  // 3: the channel split for >= 3 blocks of 32 x mult, the pixel split below
        set_num_threads(threads);
        const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::depthwise);
        testops::check_plan(plan, pr, e,
                            to_string(isa) + " threads " + std::to_string(threads) + " " + testops::describe(p, in));
      }
    }
  }
}

// The 3x3 row kernels (multiplier 1): whole rows with the zero padding inside them, in tiles of 16 / 14 / 8 / 7 / 4 /
// 2 / 1 pixels whose first and last may have a column in the padding, and a per-pixel path for other cuts (wide or
// asymmetric padding, rows narrower than the kernel, strides > 2). Widths 1..20 and 28 reach every tile size and
// flag; channel counts below, at and around the vector widths and above the tiles' L1 bound (> 151 channels: tiles
// of 8); heights that leave rows with one or two of their three input rows; strides 1, 2, 3; bias or none; relu,
// tanh (a pass after the kernel) or none; another padding mode (the tables at the borders); 1 to 3 threads (few
// rows: channel ranges per thread). Stride 2 with zero padding also runs backward data's stride-2 row kernel (dx
// columns of both parities, pads 1 and 3); under zero padding stride 1 runs all three directions in groups of
// output rows (all of a group's input rows loaded once), stride 2 forward and the weight gradient. Every ISA of
// this CPU, against the reference; the packed forms bit for bit as the per-call ones.
// A 3x3 depthwise layer whose output and input gradient exceed ops::kStreamBytes: the row kernel writes them with
// non-temporal stores (forward, and stride-1 backward data through the flipped kernel), with the fused relu too.
TEST(Conv2dDepthwise, LargeOutputsStreamedMatchTheReference) {
  Restore restore;
  Conv2dParams p;
  p.filters = 256;
  p.kernel_size = {3, 3};
  p.padding = Padding::same();
  p.groups = 256;
  p.activation = Activation::relu;
  const Shape in{1, 130, 128, 256};
  const testops::Problem pr(p, in, 5u);
  ASSERT_GT(shape_elements(pr.g.output_shape()) * int64_t{sizeof(float)}, ops::kStreamBytes);
  const testops::Expected e(pr);
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    set_num_threads(2);
    const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::depthwise);
    testops::check_streamed_outputs(plan, pr, e, 3, to_string(isa) + " " + testops::describe(p, in));
  }
}

TEST(Conv2dDepthwise, RowKernelsBordersTilesStridesChannels) {
  Restore restore;
  ops::g_min_ns_per_thread = 0.0;
  struct Case {
    int channels, h, w, stride;
    Padding pad;
    PaddingMode mode;
    bool bias;
    Activation act;
    int stride_w = 0;  // 0: stride
  };
  std::vector<Case> cases;
  const int channel_set[] = {2, 3, 4, 8, 16, 17, 33, 100, 160, 200};
  int k = 0;
  for (int w = 1; w <= 20; ++w) {
    const int c = channel_set[k++ % 10];
    cases.push_back({c, 1 + w % 5, w, 1, Padding::same(), PaddingMode::zeros, w % 2 == 0, Activation::none});
    cases.push_back({c, 2 + w % 4, w, 2, Padding::same(), PaddingMode::zeros, true, Activation::relu});
  }
  for (int c : channel_set) {
    cases.push_back({c, 5, 28, 1, Padding::symmetric(1, 1), PaddingMode::zeros, true, Activation::relu});
    cases.push_back({c, 6, 28, 2, Padding::symmetric(1, 1), PaddingMode::zeros, false, Activation::none});
    cases.push_back({c, 7, 14, 1, Padding::valid(), PaddingMode::zeros, true, Activation::tanh});
    cases.push_back({c, 4, 9, 1, Padding::explicit_pad(2, 0, 0, 2), PaddingMode::zeros, true, Activation::none});
    cases.push_back({c, 5, 11, 1, Padding::explicit_pad(0, 2, 2, 1), PaddingMode::zeros, false, Activation::relu});
    cases.push_back({c, 7, 10, 3, Padding::same(), PaddingMode::zeros, true, Activation::none});
    cases.push_back({c, 6, 9, 2, Padding::explicit_pad(1, 2, 3, 0), PaddingMode::zeros, true, Activation::none});
    cases.push_back({c, 5, 12, 1, Padding::same(), PaddingMode::reflect, true, Activation::relu});
    cases.push_back({c, 6, 9, 2, Padding::same(), PaddingMode::replicate, false, Activation::none});
  }
  // Stride 1 runs groups of 3 output rows (2 with 1024 channels, a 4 KiB pixel) on AVX-512: heights leaving groups
  // of 1, 2 and 3 rows, with rows above and below the image in the first and last groups.
  cases.push_back({1024, 8, 9, 1, Padding::same(), PaddingMode::zeros, true, Activation::relu});
  cases.push_back({48, 8, 23, 1, Padding::same(), PaddingMode::zeros, false, Activation::none});
  cases.push_back({16, 11, 7, 1, Padding::explicit_pad(2, 0, 1, 1), PaddingMode::zeros, true, Activation::tanh});
  // Stride 2 runs groups of 2 output rows (forward and weight gradient).
  cases.push_back({40, 13, 15, 2, Padding::same(), PaddingMode::zeros, true, Activation::relu});
  cases.push_back({1024, 9, 8, 2, Padding::symmetric(1, 1), PaddingMode::zeros, false, Activation::none});
  cases.push_back({64, 3, 2, 1, Padding::symmetric(2, 2), PaddingMode::zeros, true, Activation::none});
  cases.push_back({24, 1, 1, 1, Padding::symmetric(1, 1), PaddingMode::zeros, true, Activation::none});
  // Unequal strides (one row at a time, the column stride the kernel's): rows 1 apart and columns 2, and the other
  // way round, 1 and 3, under zero padding and another mode.
  cases.push_back({32, 10, 10, 1, Padding::symmetric(1, 1), PaddingMode::zeros, true, Activation::none, 2});
  cases.push_back({17, 9, 12, 2, Padding::same(), PaddingMode::zeros, false, Activation::relu, 1});
  cases.push_back({40, 7, 13, 1, Padding::same(), PaddingMode::zeros, true, Activation::none, 3});
  cases.push_back({16, 8, 11, 1, Padding::same(), PaddingMode::reflect, true, Activation::none, 2});
  uint32_t seed = 100;
  for (const Case& cs : cases) {
    Conv2dParams p;
    p.filters = cs.channels;
    p.kernel_size = {3, 3};
    p.strides = {cs.stride, cs.stride_w ? cs.stride_w : cs.stride};
    p.padding = cs.pad;
    p.padding_mode = cs.mode;
    p.groups = cs.channels;
    p.use_bias = cs.bias;
    p.activation = cs.act;
    const Shape in{1 + int(seed % 2), cs.h, cs.w, cs.channels};
    const testops::Problem pr(p, in, ++seed);
    const testops::Expected e(pr);
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
      if (!cpu_supports(isa)) continue;
      set_isa(isa);
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        // The group kernels' items (and stride-2 backward data's dx rows) each preceded by a sweep of prefetches
        // over their rows (taken for tensors past kStreamBytes), forced here on small shapes: whatever the prefetches reach, the results stay the same, and
        // the stride-1 weight gradient's segments end inside and at the row's borders.
        for (int sweeps : {-1, 1}) {
          if (sweeps == 1 && threads == 3) continue;
          ops::g_depthwise_row_sweeps = sweeps;
          const std::string what = to_string(isa) + " threads " + std::to_string(threads) +
                                   (sweeps == 1 ? " sweeps " : " ") + testops::describe(p, in);
          for (Conv2dWeights weights : {Conv2dWeights::per_call, Conv2dWeights::packed_once}) {
            const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::depthwise, weights);
            testops::check_plan(plan, pr, e, what);
            testops::expect_packed_matches_per_call(plan, pr, what);  // the packed forms, bit for bit
          }
        }
        ops::g_depthwise_row_sweeps = -1;
      }
    }
  }
}

// Few rows of many channels at stride 1 (zero padding): rather than channel ranges per work item, each thread takes
// an equal share of the rows with all channels, in groups of at most the kernel's rows an image, the shares running
// across images (Depthwise::row_shares): forward, backward data (whose rows are the input's) and the weight gradient
// (each thread's rows into its own partial dW). Taken where the rows share out evenly over two or more threads, not
// on one thread, at stride 2 or with rows that do not share out evenly; each way against the reference on every
// ISA, packed and per call.
TEST(Conv2dDepthwise, FewRowsShareOutByRows) {
  Restore restore;
  ops::g_min_ns_per_thread = 0.0;
  struct Case {
    int batch, h, w, channels, stride, threads;
    bool shares;
  };
  const Case cases[] = {
      {1, 14, 14, 200, 1, 2, true},   // 7 rows a thread
      {3, 4, 9, 200, 1, 2, true},     // 6 rows a thread: image 1 split between the threads
      {3, 4, 9, 200, 1, 3, true},     // one image a thread
      {2, 5, 6, 512, 1, 2, true},     // one image a thread, groups of 2 + 3 rows
      {1, 14, 14, 200, 1, 1, false},  // one thread
      {1, 7, 7, 200, 1, 2, false},    // 7 rows over 2 threads
      {1, 14, 14, 200, 2, 2, false},  // stride 2
  };
  uint32_t seed = 300;
  for (const Case& cs : cases) {
    Conv2dParams p;
    p.filters = cs.channels;
    p.kernel_size = {3, 3};
    p.strides = {cs.stride, cs.stride};
    p.padding = Padding::same();
    p.groups = cs.channels;
    p.activation = seed % 2 ? Activation::relu : Activation::none;
    const Shape in{cs.batch, cs.h, cs.w, cs.channels};
    const testops::Problem pr(p, in, ++seed);
    const testops::Expected e(pr);
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
      if (!cpu_supports(isa)) continue;
      set_isa(isa);
      set_num_threads(cs.threads);
      const std::string what =
          to_string(isa) + " threads " + std::to_string(cs.threads) + " " + testops::describe(p, in);
      for (Conv2dWeights weights : {Conv2dWeights::per_call, Conv2dWeights::packed_once}) {
        const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::depthwise, weights);
        const std::string text = plan.explain();
        EXPECT_EQ(text.find("equal share of the rows, all channels (forward, backward data, weight gradient)") !=
                      std::string::npos,
                  cs.shares)
            << what;
        if (!cs.shares) EXPECT_EQ(text.find("equal share of the rows"), std::string::npos) << what;
        testops::check_plan(plan, pr, e, what);
      }
    }
  }
}

}  // namespace
}  // namespace convkit
