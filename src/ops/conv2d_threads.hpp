// src/ops/conv2d_threads.hpp — how many threads a Conv2D plan uses: on a tiny problem an OpenMP parallel region
// costs more than it saves (and, with other processes on the cores, a worker may wait for a time slice), so a plan
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
// problems reach on one thread), and a thread must get 6 us of it: the GEMM-based problems above then run on one
// thread, 1x16x16x32 -> 32 and everything larger on both. (One direction may still lose: the 5x5 stem's backward data
// takes 22.7 us on one thread, 19.6 on two; the plan decides for all three.) Depthwise keeps 30 GFLOP/s: its split
// pays far lower, on MobileNet's stride-2 conv4_2/dw (0.9 MFLOP) 10.7 us on two threads against 15.3 on one, and
// 150 GFLOP/s (the rate of the 1x32x32x64 case) moved that layer to one thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "convkit/conv.hpp"

namespace convkit::ops {

// Estimated single-thread work each thread must get; tests set 0 to run tiny problems on every thread.
inline constexpr double kDefaultMinNsPerThread = 6000.0;
inline std::atomic<double> g_min_ns_per_thread{kDefaultMinNsPerThread};

// Estimated single-thread nanoseconds of one pass of the convolution.
inline double conv2d_estimated_ns(const Conv2dGeometry& g) {
  const bool depthwise = g.groups > 1 && g.groups == g.ic;
  return g.flops() / (depthwise ? 30.0 : 300.0);
}

// The threads a plan for g uses when `threads` are available.
inline int conv2d_threads(const Conv2dGeometry& g, int threads) {
  const double min_ns = g_min_ns_per_thread.load(std::memory_order_relaxed);
  if (threads <= 1 || min_ns <= 0.0) return std::max(threads, 1);
  const double fit = conv2d_estimated_ns(g) / min_ns;
  return fit >= double(threads) ? threads : std::max(1, static_cast<int>(fit));
}

}  // namespace convkit::ops
