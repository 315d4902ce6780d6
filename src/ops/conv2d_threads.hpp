// src/ops/conv2d_threads.hpp — how many threads a Conv2D plan uses: on a tiny problem a parallel job costs more
// than it saves (and, with other processes on the cores, a worker may wait for a time slice), so a plan
// uses one thread per g_min_ns_per_thread (kDefaultMinNsPerThread) of estimated single-thread work, up to the
// thread count in force.
//
// Measured first (2-core machine, AVX-512, other builds running; median of 200 x 10 calls, 1 vs 2 threads): entering
// and leaving a 2-thread region cost about 2-3 us, and the estimate below took 150 GFLOP/s (GEMM-based) and 30
// GFLOP/s (depthwise) a thread with 3 us of work each. Measured again on a 2-vCPU AMD Zen 5 guest (2026-12): an empty
// 2-thread region costs 3 us, and a split convolution pays about 5-6 us over its half of the work (the second core
// pulls its share of the data too), while the kernels have become faster on small problems: one thread runs a 3x3
// 1x16x16x16 -> 16 in 4.4 us (Winograd; 7.0 us on two), 1x1 1x16x16x64 -> 64 in 10.2 us (11.7), depthwise 3x3
// 1x32x32x64 in 6.8 us (8.7), Fashion-MNIST's 5x5 1x28x28x1 -> 32 forward in 6.7 us (9.6) and weight gradient in 9.5
// us (13.4); 3x3 1x16x16x32 -> 32 ties (8.9 / 8.8 us), and from there on two threads win.
// So the estimate is the work at about 300 GFLOP/s for the GEMM-based algorithms (what those small, cache-resident
// problems reach on one thread), and a thread had to get 6 us of it.
// Then the threads moved from OpenMP's teams to the library's pool (thread_pool.hpp: a job of two 2 us parts takes
// 2.2 us there, 4.5 us as a libgomp region), and the split became worth it on far smaller problems (same guest, medians of 3000
// calls, 1 / 2 threads, forward): Fashion-MNIST's 5x5 stem 7.0 / 4.4 us (weight gradient 9.9 / 6.3), 3x3
// 1x16x16x16 -> 16 11.3 / 6.1, 1x12x12x16 -> 16 6.3 / 3.6, 1x8x8x16 -> 16 3.3 / 1.9, 1x8x8x8 -> 8 2.1 / 1.8, 1x1
// 1x12x12x64 -> 64 5.7 / 3.3, 1x8x8x64 -> 64 2.7 / 4.4 (backward 3.1 / 2.2); depthwise 3x3 1x16x16x128 4.2 / 2.5,
// 1x12x12x256 5.2 / 3.1, 1x8x8x256 2.2 / 1.7, 1x16x16x64 1.8 / 1.3, 1x8x8x64 0.52 / 0.55. Now a thread must get
// 1.5 us of estimated work, at 300 GFLOP/s (GEMM-based) or 60 GFLOP/s (depthwise, whose kernels ran 80-160 GFLOP/s
// on these): two threads from about 0.9 MFLOP (GEMM-based) and 0.18 MFLOP (depthwise) on.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "convkit/conv.hpp"

namespace convkit::ops {

// Estimated single-thread work each thread must get; tests set 0 to run tiny problems on every thread.
inline constexpr double kDefaultMinNsPerThread = 1500.0;
inline std::atomic<double> g_min_ns_per_thread{kDefaultMinNsPerThread};

// Estimated single-thread nanoseconds of one pass of the convolution.
inline double conv2d_estimated_ns(const Conv2dGeometry& g) {
  const bool depthwise = g.groups > 1 && g.groups == g.ic;
  return g.flops() / (depthwise ? 60.0 : 300.0);
}

// The threads a plan for g uses when `threads` are available.
inline int conv2d_threads(const Conv2dGeometry& g, int threads) {
  const double min_ns = g_min_ns_per_thread.load(std::memory_order_relaxed);
  if (threads <= 1 || min_ns <= 0.0) return std::max(threads, 1);
  const double fit = conv2d_estimated_ns(g) / min_ns;
  return fit >= double(threads) ? threads : std::max(1, static_cast<int>(fit));
}

}  // namespace convkit::ops
