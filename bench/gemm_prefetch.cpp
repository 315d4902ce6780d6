// bench/gemm_prefetch.cpp — gemm_1x1's forward (or backward data) with and without its software prefetch of the next
// row tile of x (dz) (ops::g_gemm_1x1_prefetch, the rule in src/ops/conv2d_gemm.cpp), alternating in one process so
// that both see the same buffers and the same spells of load on a noisy machine: per layer, the median over
// `rounds` of the last of 3 back-to-back forward_packed (backward_data_packed) calls each way, and what the rule
// picks. A program that prints figures, not a test.
//
//   gemm_prefetch [mb=32] [rounds=20] [fwd|bwd_d]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/tensor.hpp"
#include "ops/conv2d_algorithms.hpp"

namespace {

struct Layer {
  const char* name;
  int hw, k, n;  // input height = width, input channels, filters (1x1, stride 1)
};

// The stride-1 1x1 layers of ResNet-50 and MobileNet v1 with rows of at most 512 bytes, and two with longer rows.
constexpr Layer kLayers[] = {
    {"resnet_50:res2a_branch2a", 56, 64, 64},  {"resnet_50:res2a_branch1", 56, 64, 256},
    {"resnet_50:res3a_branch2c", 28, 128, 512}, {"mobilenet_v1:conv2_1/pw", 112, 32, 64},
    {"mobilenet_v1:conv2_2/pw", 56, 64, 128},  {"mobilenet_v1:conv3_1/pw", 56, 128, 128},
    {"mobilenet_v1:conv3_2/pw", 28, 128, 256}, {"resnet_50:res2b_branch2a", 56, 256, 64},
    {"resnet_50:res3b_branch2a", 28, 512, 128},
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  const int mb = argc > 1 ? std::atoi(argv[1]) : 32, rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  const bool bwd = argc > 3 && std::string(argv[3]) == "bwd_d";
  std::printf("gemm_1x1 %s, mb %d, median of %d rounds of 3 calls each way (the last call timed)\n",
              bwd ? "backward data" : "forward", mb, rounds);
  std::printf("%-28s %8s %8s %9s %-8s\n", "layer", "off ms", "on ms", "on / off", "rule");
  for (const Layer& l : kLayers) {
    Conv2dParams p;
    p.filters = l.n;
    p.kernel_size = {1, 1};
    const Shape in = {mb, l.hw, l.hw, l.k};
    const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::gemm_1x1);
    // Every buffer on a 64-byte boundary (Tensor's), as in `convkit bench`: the kernels' non-temporal stores take
    // only rows that start on one, and a row of 32 floats off it touches three lines instead of two.
    const Tensor w(Shape{1, 1, l.k, l.n}, 0.25f), b(Shape{l.n}, 0.125f);
    Tensor x(in, 0.5f), y(Shape{mb, l.hw, l.hw, l.n});
    Tensor packed(Shape{std::max<int64_t>(static_cast<int64_t>(plan.packed_weights_size()), 1)});
    plan.pack_weights(w.data(), packed.data());
    Tensor ws(Shape{std::max<int64_t>(static_cast<int64_t>((plan.workspace_size() + 3) / 4), 1)});
    std::vector<double> ms[2];
    for (int r = 0; r < 2 * rounds; ++r) {
      const int on = r % 2;
      ops::g_gemm_1x1_prefetch = on;
      double t = 0.0;
      for (int c = 0; c < 3; ++c) {
        const auto t0 = std::chrono::steady_clock::now();
        if (bwd)
          plan.backward_data_packed(y.data(), w.data(), packed.data(), x.data(), ws.data());
        else
          plan.forward_packed(x.data(), w.data(), packed.data(), b.data(), y.data(), ws.data());
        t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      }
      ms[on].push_back(t);
    }
    ops::g_gemm_1x1_prefetch = -1;
    const bool rule = plan.explain().find(bwd ? "backward data prefetches" : "forward prefetches") != std::string::npos;
    const double off = median(ms[0]), on = median(ms[1]);
    std::printf("%-28s %8.3f %8.3f %9.3f %-8s\n", l.name, off, on, on / off, rule ? "on" : "off");
  }
  return 0;
}
