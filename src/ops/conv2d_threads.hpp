// src/ops/conv2d_threads.hpp — how many threads a Conv2D plan uses: on a tiny problem an OpenMP parallel region
// costs more than it saves (and, with other processes on the cores, a worker may wait for a time slice), so a plan
// uses one thread per kMinNsPerThread of estimated single-thread work, up to the thread count in force.
//
// Measured (2-core machine, AVX-512, other builds running; median of 200 x 10 calls, 1 vs 2 threads): entering and
// leaving a 2-thread region costs about 2-3 us. A 3x3 conv 1x8x8x16 -> 16 (0.3 MFLOP) takes 3.6 us on one thread,
// 3.9 on two; 1x16x16x16 -> 16 (1.2 MFLOP) 11 us / 7.5 us. Depthwise 3x3 1x8x8x32 (37 kFLOP) 1.0 / 1.3 us,
// 1x16x16x32 (147 kFLOP) 5.1 / 3.5 us. 1x1 1x8x8x16 -> 16 0.4 / 0.7 us, 1x16x16x32 -> 32 2.6 / 2.2 us. The input
// 1x4x4x3 -> 2 filters 3x3: 0.26 / 2.0 us forward, 0.25 / 3.6 us backward weights.
// So the estimate below is the work at the single-thread rates measured on those shapes (about 150 GFLOP/s for the
// GEMM-based algorithms, 30 GFLOP/s for depthwise, which is memory bound), and a thread must get 3 us of it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "convkit/conv.hpp"

namespace convkit::ops {

// Estimated single-thread work each thread must get; tests set 0 to run tiny problems on every thread.
inline std::atomic<double> g_min_ns_per_thread{3000.0};

// Estimated single-thread nanoseconds of one pass of the convolution.
inline double conv2d_estimated_ns(const Conv2dGeometry& g) {
  const bool depthwise = g.groups > 1 && g.groups == g.ic;
  return g.flops() / (depthwise ? 30.0 : 150.0);
}

// The threads a plan for g uses when `threads` are available.
inline int conv2d_threads(const Conv2dGeometry& g, int threads) {
  const double min_ns = g_min_ns_per_thread.load(std::memory_order_relaxed);
  if (threads <= 1 || min_ns <= 0.0) return std::max(threads, 1);
  const double fit = conv2d_estimated_ns(g) / min_ns;
  return fit >= double(threads) ? threads : std::max(1, static_cast<int>(fit));
}

}  // namespace convkit::ops
