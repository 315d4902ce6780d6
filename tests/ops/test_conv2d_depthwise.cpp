// The depthwise algorithm's own sweep: channel counts around every vector width and the backward-weights channel
// blocks (32 x multiplier), multipliers 1 (the register-blocked path) and 2, 3, 5 (the lane-permutation path, W not
// a multiple of 3 or 5), strides 1 and 2, padding modes, thread counts that take the channel split and the pixel
// split of backward weights, on every ISA of this CPU, against the reference (conv_check.hpp's tolerance).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "convkit/runtime.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

struct Restore {
  ~Restore() {
    reset_isa();
    set_num_threads(0);
    ops::g_min_ns_per_thread = 3000.0;
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

}  // namespace
}  // namespace convkit
