// The workspace bound of the fast engine (the target): a plan's workspace, which serves all three
// directions, is never larger than the layer's input tensor plus its packed weights: no im2col blow-up. Swept over
// many shapes x every algorithm of conv2d_algorithms() that supports them (a new algorithm is swept as soon as it is
// listed) x thread counts x every ISA of this CPU.
//
// "Packed weights" are the kernel with one of its channel dimensions padded to the microkernel's column count NR (the
// packed layouts of the GEMM paths pad the output channels forward and the input channels backward), the larger of
// the two. The workspace may exceed input + packed weights by at most kSlack, a constant: the 64-byte alignment of
// each buffer carved from it and of its base, zero rows, and a register tile or two of scratch, which on a 4x4x1
// input are more than the input itself. What the bound rules out is scratch that grows with the problem or with
// the thread count faster than the tensors do.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "config/kernels.hpp"
#include "convkit/runtime.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

constexpr std::size_t kSlack = 16 * 1024;

struct Case {
  Conv2dParams p;
  Shape input;
};

Conv2dParams conv(int filters, int kh, int kw, int stride, Padding pad, int dilation, int groups,
                  PaddingMode mode = PaddingMode::zeros) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {kh, kw};
  p.strides = {stride, stride};
  p.padding = pad;
  p.dilation_rate = {dilation, dilation};
  p.groups = groups;
  p.padding_mode = mode;
  return p;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  // Tiny problems, where per-thread buffers and zero rows weigh most against the tensors.
  for (int c : {1, 3, 8})
    for (int f : {1, 2, 16}) {
      out.push_back({conv(f, 1, 1, 1, Padding::valid(), 1, 1), {1, 4, 4, c}});
      out.push_back({conv(f, 3, 3, 1, Padding::same(), 1, 1), {1, 4, 4, c}});
      out.push_back({conv(f, 3, 3, 2, Padding::valid(), 1, 1), {1, 5, 5, c}});
      out.push_back({conv(c * f, 3, 3, 1, Padding::same(), 1, c), {1, 4, 4, c}});
    }
  // Typical layers (MobileNet / ResNet-like), small spatial sizes to keep the sweep fast.
  for (int mb : {1, 4}) {
    out.push_back({conv(64, 3, 3, 1, Padding::same(), 1, 1), {mb, 14, 14, 32}});
    out.push_back({conv(128, 1, 1, 1, Padding::valid(), 1, 1), {mb, 7, 7, 256}});
    out.push_back({conv(32, 3, 3, 2, Padding::same(), 1, 32), {mb, 16, 16, 32}});
    out.push_back({conv(256, 3, 3, 1, Padding::same(), 1, 128), {mb, 7, 7, 128}});
    out.push_back({conv(64, 7, 7, 2, Padding::same(), 1, 1), {mb, 32, 32, 3}});
    out.push_back({conv(24, 5, 5, 1, Padding::same(), 2, 1), {mb, 12, 11, 12}});
    out.push_back({conv(16, 3, 3, 1, Padding::same(), 1, 4), {mb, 10, 9, 8}});
    out.push_back({conv(8, 3, 3, 1, Padding::symmetric(2, 1), 1, 1, PaddingMode::reflect), {mb, 9, 9, 5}});
    out.push_back({conv(6, 3, 3, 2, Padding::same(), 1, 6, PaddingMode::circular), {mb, 9, 8, 6}});
    out.push_back({conv(12, 3, 3, 1, Padding::same(), 1, 4, PaddingMode::replicate), {mb, 6, 7, 4}});
    // MobileNet's last depthwise layers: many channels on a small image (per-thread [tap][channel] partials would
    // outgrow the input), with multiplier 1 and 2.
    out.push_back({conv(1024, 3, 3, 1, Padding::same(), 1, 1024), {mb, 7, 7, 1024}});
    out.push_back({conv(512, 3, 3, 2, Padding::same(), 1, 256), {mb, 7, 7, 256}});
    // Many filters over a small input: the weights dominate.
    out.push_back({conv(512, 3, 3, 1, Padding::same(), 1, 1), {mb, 3, 3, 64}});
    // Wide input, few filters: the input dominates, and the backward passes have the most to buffer.
    out.push_back({conv(2, 3, 3, 1, Padding::same(), 1, 1), {mb, 20, 20, 3}});
    out.push_back({conv(2, 1, 1, 1, Padding::valid(), 1, 1), {mb, 20, 20, 3}});
  }
  return out;
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::generic})
    if (cpu_supports(i)) out.push_back(i);
  return out;
}

TEST(Conv2dWorkspace, NeverLargerThanInputPlusWeights) {
  std::vector<int> ran(ops::conv2d_algorithms().size(), 0);
  double worst = 0.0;
  std::string worst_what;
  for (Isa isa : isas()) {
    set_isa(isa);
    for (int threads : {1, 2, 8, 16}) {
      set_num_threads(threads);
      for (const Case& c : cases()) {
        const Conv2dGeometry g = conv2d_geometry(c.p, c.input);
        const int64_t nr = config::kernels(isa).nr, icg = g.ic_per_group(), ocg = g.oc_per_group();
        const auto up = [nr](int64_t v) { return (v + nr - 1) / nr * nr; };
        const int64_t packed = g.kh * g.kw * g.groups * std::max(up(icg) * ocg, icg * up(ocg));
        const std::size_t bound = 4 * static_cast<std::size_t>(shape_elements(g.input_shape()) + packed);
        std::size_t a = 0;
        for (const ops::Conv2dAlgorithmInfo& algo : ops::conv2d_algorithms()) {
          const std::size_t idx = a++;
          if (!algo.supports(g).empty()) continue;
          ++ran[idx];
          const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, algo.id);
          const std::string what = to_string(isa) + " " + std::to_string(threads) + " threads " +
                                   to_string(algo.id) + " " + testops::describe(c.p, c.input);
          // winograd's packed weights are its transformed kernel U (36 x IC x OC floats, 4x the kernel); with no
          // weight-pack step in the API, U is computed into the workspace at every call, so it counts twice: as
          // the packed weights and as workspace. Its "input" is x forward, dz backward data (conv2d_winograd.cpp).
          const std::size_t algo_bound =
              algo.id != Conv2dAlgorithm::winograd
                  ? bound
                  : 4 * static_cast<std::size_t>(std::max(shape_elements(g.input_shape()),
                                                          shape_elements(g.output_shape())) +
                                                 2 * 36 * g.ic * g.oc);
          EXPECT_LE(plan.workspace_size(), algo_bound + kSlack)
              << what << ": input + packed weights = " << algo_bound << " bytes";
          const double ratio = double(plan.workspace_size()) / double(algo_bound);
          if (ratio > worst) {
            worst = ratio;
            worst_what = what;
          }
        }
      }
    }
  }
  reset_isa();
  set_num_threads(0);
  std::size_t a = 0;
  for (const ops::Conv2dAlgorithmInfo& algo : ops::conv2d_algorithms())
    EXPECT_GT(ran[a++], 0) << "no shape of the sweep reaches algorithm " << to_string(algo.id);
  std::printf("largest workspace / (input + packed weights): %.3f (%s)\n", worst, worst_what.c_str());
}

}  // namespace
}  // namespace convkit
