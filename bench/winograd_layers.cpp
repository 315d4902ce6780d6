// bench/winograd_layers.cpp — winograd against implicit_gemm on the 3x3 stride-1 layers of ResNet-50 and VGG, forward
// or backward data, in "effective" GFLOP/s: the direct convolution's FLOPs (2 N OH OW OC IC 9) over the time, so
// that the two algorithms (and oneDNN's direct kernels) compare on one scale. Both plans get the same data; the
// time is the minimum over repeats (the machine is shared: the minimum is the least disturbed run), after a warm-up.
// "winograd" includes the weight transform (forward() does it at every call: the API passes the weights at every
// call); "packed" is forward_packed() with the weights transformed once by pack_weights() (inference).
// A program that prints figures, not a test.
//
//   winograd_layers [fwd|bwd] [mb=1] [threads=0 (default)] [name filter]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/runtime.hpp"

namespace {

struct Layer {
  const char* name;
  int c, hw, oc;
};

const Layer kLayers[] = {
    {"resnet50 64@56", 64, 56, 64},  {"resnet50 128@28", 128, 28, 128}, {"resnet50 256@14", 256, 14, 256},
    {"resnet50 512@7", 512, 7, 512}, {"vgg 64@224", 64, 224, 64},       {"vgg 128@112", 128, 112, 128},
    {"vgg 256@56", 256, 56, 256},    {"vgg 512@28", 512, 28, 512},      {"vgg 512@14", 512, 14, 512},
};

template <typename Fn>
double time_min_s(Fn&& fn, double flops) {
  fn();  // warm up: page faults, OpenMP pool
  const int reps = std::max(3, std::min(20, static_cast<int>(2e10 / flops)));
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  const bool bwd = argc > 1 && std::string(argv[1]) == "bwd";
  const int mb = argc > 2 ? std::atoi(argv[2]) : 1;
  if (argc > 3 && std::atoi(argv[3]) > 0) set_num_threads(std::atoi(argv[3]));
  const std::string filter = argc > 4 ? argv[4] : "";
  std::printf("%s, batch %d, %d thread(s), ISA %s; effective GFLOP/s = direct FLOPs / time\n",
              bwd ? "backward data" : "forward", mb, num_threads(), to_string(active_isa()).c_str());
  std::printf("%-18s %10s %10s %10s %7s %7s  %s\n", "layer", "winograd", "packed", "igemm", "ratio", "packed",
              "auto choice");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Layer& l : kLayers) {
    if (!filter.empty() && std::string(l.name).find(filter) == std::string::npos) continue;
    Conv2dParams p;
    p.filters = l.oc;
    p.kernel_size = {3, 3};
    p.padding = Padding::same();
    p.activation = Activation::relu;
    const Shape in{mb, l.hw, l.hw, l.c};
    const Conv2dPlan wino = Conv2dPlan::create(p, in, Conv2dAlgorithm::winograd);
    const Conv2dPlan igemm = Conv2dPlan::create(p, in, Conv2dAlgorithm::implicit_gemm);
    const Conv2dPlan chosen = Conv2dPlan::create(p, in);
    std::vector<float> x(static_cast<std::size_t>(mb) * l.hw * l.hw * l.c), w(std::size_t{9} * l.c * l.oc), b(l.oc);
    std::vector<float> y(static_cast<std::size_t>(mb) * l.hw * l.hw * l.oc);
    for (std::vector<float>* v : {&x, &w, &b, &y})
      for (float& e : *v) e = u(rng);
    const std::size_t bytes = std::max(wino.workspace_size(), igemm.workspace_size());
    void* ws = ::operator new (bytes, std::align_val_t{64});
    const double flops = wino.geometry().flops();
    auto run = [&](const Conv2dPlan& plan) {
      return time_min_s(
          [&] {
            if (bwd)
              plan.backward_data(y.data(), w.data(), x.data(), ws);
            else
              plan.forward(x.data(), w.data(), b.data(), y.data(), ws);
          },
          flops);
    };
    std::vector<float> packed(wino.packed_weights_size());
    wino.pack_weights(w.data(), packed.data());
    const double tw = run(wino), ti = run(igemm);
    const double tp =
        bwd ? tw
            : time_min_s([&] { wino.forward_packed(x.data(), w.data(), packed.data(), b.data(), y.data(), ws); },
                         flops);
    std::printf("%-18s %10.1f %10.1f %10.1f %7.2f %7.2f  %s\n", l.name, flops / tw / 1e9, flops / tp / 1e9,
                flops / ti / 1e9, ti / tw, ti / tp, chosen.algorithm().c_str());
    std::fflush(stdout);
    ::operator delete (ws, std::align_val_t{64});
  }
  return 0;
}
