// bench/dwconv_roofline.cpp — the MobileNet v1 depthwise layers against the memory-bandwidth roofline: for each
// layer and direction, the median time, the bytes that must move (input + output + weights, fp32) over that time,
// and that rate as a fraction of a streaming copy measured the same way (same threads, same buffer sizes ~ the
// layer's, median of repeats). A program that prints figures, not a test; numbers on a busy machine are noisy.
//
//   dwconv_roofline [mb=1] [threads=0 (default)] [depth_multiplier=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/runtime.hpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename Fn>
double time_median_s(Fn&& fn) {
  fn();  // warm up: page faults, OpenMP pool
  std::vector<double> ts;
  double total = 0.0;
  while (ts.size() < 5 || (total < 0.3 && ts.size() < 200)) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ts.push_back(s);
    total += s;
  }
  return median(ts);
}

// Streaming copy of `bytes` (read bytes / 2, write bytes / 2) with the plans' threads: GB/s.
double copy_bandwidth(std::size_t bytes, int threads) {
  const std::size_t n = std::max<std::size_t>(bytes / 8, 1024);
  std::vector<float> a(n, 1.0f), b(n);
  const double s = time_median_s([&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::size_t i = 0; i < n; ++i) b[i] = a[i];
  });
  return double(2 * n * sizeof(float)) / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  const int mb = argc > 1 ? std::atoi(argv[1]) : 1;
  if (argc > 2 && std::atoi(argv[2]) > 0) set_num_threads(std::atoi(argv[2]));
  const int mult = argc > 3 ? std::atoi(argv[3]) : 1;
  struct Layer {
    int c, ih, stride;
  };
  const Layer layers[] = {{32, 112, 1}, {64, 112, 2}, {128, 56, 1}, {128, 56, 2}, {256, 28, 1},
                          {256, 28, 2}, {512, 14, 1}, {512, 14, 2}, {1024, 7, 1}};
  std::printf("depthwise 3x3 MobileNet v1, batch %d, multiplier %d, %d thread(s), ISA %s\n", mb, mult, num_threads(),
              to_string(active_isa()).c_str());
  std::printf("%-22s %-9s %9s %9s %9s %7s\n", "layer", "direction", "ms", "GB/s", "copy GB/s", "roof%");
  for (const Layer& l : layers) {
    Conv2dParams p;
    p.filters = l.c * mult;
    p.kernel_size = {3, 3};
    p.strides = {l.stride, l.stride};
    p.padding = Padding::same();
    p.groups = l.c;
    const Shape in{mb, l.ih, l.ih, l.c};
    const Conv2dPlan plan = Conv2dPlan::create(p, in);
    const Conv2dGeometry& g = plan.geometry();
    const std::size_t nx = std::size_t(shape_elements(g.input_shape()));
    const std::size_t ny = std::size_t(shape_elements(g.output_shape()));
    const std::size_t nw = std::size_t(shape_elements(g.kernel_shape()));
    std::vector<float> x(nx, 0.5f), y(ny), dy(ny, 0.25f), dx(nx), w(nw, 0.1f), dw(nw), b(g.oc, 0.0f), db(g.oc);
    std::vector<char> ws(plan.workspace_size());
    const double bytes = double(nx + ny + nw) * 4.0;
    const double copy = copy_bandwidth(std::size_t(bytes), num_threads());
    const char* names[] = {"forward", "bwd_data", "bwd_wts"};
    for (int dir = 0; dir < 3; ++dir) {
      const double s = time_median_s([&] {
        if (dir == 0) plan.forward(x.data(), w.data(), b.data(), y.data(), ws.data());
        if (dir == 1) plan.backward_data(dy.data(), w.data(), dx.data(), ws.data());
        if (dir == 2) plan.backward_weights(x.data(), dy.data(), dw.data(), db.data(), ws.data());
      });
      char name[64];
      std::snprintf(name, sizeof name, "%dx%dx%d s%d", l.ih, l.ih, l.c, l.stride);
      std::printf("%-22s %-9s %9.4f %9.2f %9.2f %6.0f%%\n", name, names[dir], s * 1e3, bytes / s / 1e9, copy,
                  100.0 * bytes / s / 1e9 / copy);
    }
  }
}
