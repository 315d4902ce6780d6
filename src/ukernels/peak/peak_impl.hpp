// src/ukernels/peak/peak_impl.hpp — the FMA loop behind convkit::bench::measure_peak_gflops(), written once over
// simd.hpp and compiled once per ISA (f32_fma_peak__<isa>.cpp).
//
// kChains independent accumulators, each updated by acc = acc * m + a once per iteration: enough chains to cover
// the FMA latency times the number of FMA pipes of current x86 cores (4 cycles x 2 pipes = 8 in flight), few
// enough to stay in registers on AVX2 (16 vector registers: 12 accumulators + m + a). m < 1 keeps the values
// bounded and away from denormals, and the final sum is returned so that the compiler must run the loop.
#pragma once

#include <cstddef>

#include "ukernels/simd.hpp"

namespace convkit::uk {
namespace {

constexpr int kPeakChains = 12;

inline double fma_peak(std::size_t iters, float* sink) {
  using V = Simd::V;
  const V m = Simd::set1(0.9999f), a = Simd::set1(1e-4f);
  V acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = Simd::set1(float(c) * 0.01f);
  for (std::size_t i = 0; i < iters; ++i) {
    // Unrolled by hand: the chains are independent, so each FMA can issue as soon as a pipe is free.
    acc[0] = Simd::fma(acc[0], m, a);
    acc[1] = Simd::fma(acc[1], m, a);
    acc[2] = Simd::fma(acc[2], m, a);
    acc[3] = Simd::fma(acc[3], m, a);
    acc[4] = Simd::fma(acc[4], m, a);
    acc[5] = Simd::fma(acc[5], m, a);
    acc[6] = Simd::fma(acc[6], m, a);
    acc[7] = Simd::fma(acc[7], m, a);
    acc[8] = Simd::fma(acc[8], m, a);
    acc[9] = Simd::fma(acc[9], m, a);
    acc[10] = Simd::fma(acc[10], m, a);
    acc[11] = Simd::fma(acc[11], m, a);
  }
  V sum = acc[0];
  for (int c = 1; c < kPeakChains; ++c) sum = Simd::add(sum, acc[c]);
  float lanes[Simd::W];
  Simd::storeu(lanes, sum);
  float total = 0.0f;
  for (int l = 0; l < Simd::W; ++l) total += lanes[l];
  *sink = total;
  return 2.0 * double(iters) * double(kPeakChains) * double(Simd::W);
}

}  // namespace
}  // namespace convkit::uk
