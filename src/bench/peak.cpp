// Peak fp32 FLOP rate and memory bandwidth of this machine (convkit/bench.hpp), the denominators of the roofline
// percentages `convkit bench` prints.
#include "ukernels/peak/peak.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>
#include <memory>
#include <vector>

#include "convkit/bench.hpp"
#include "convkit/error.hpp"
#include "core/strings.hpp"

namespace convkit::bench {

namespace {

using core::cat;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

using PeakFn = double (*)(std::size_t, float*);

PeakFn peak_kernel(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return uk::f32_fma_peak__avx512;
    case Isa::avx2:
      return uk::f32_fma_peak__avx2;
    case Isa::generic:
      break;
  }
  return uk::f32_fma_peak__generic;
}

void check_threads(const char* fn, int threads) {
  if (threads < 1) throw Error(cat(fn, ": thread count must be positive, got ", threads));
}

}  // namespace

double measure_peak_gflops(Isa isa, int threads, double seconds) {
  check_threads("measure_peak_gflops", threads);
  if (!cpu_supports(isa)) throw Error(cat("measure_peak_gflops: this CPU does not support ISA ", to_string(isa)));
  if (!(seconds > 0.0)) throw Error(cat("measure_peak_gflops: duration must be positive, got ", seconds));
  const PeakFn kernel = peak_kernel(isa);

  // Short trials, many of them, best one kept: on a shared machine a trial that ran undisturbed on every thread
  // measures the hardware; longer trials would all include time spent descheduled. Calibrate on one thread:
  // iterations for about 2 ms (the frequency ramp-up happens here too).
  const double trial_seconds = std::min(seconds, 0.002);
  float sink = 0.0f;
  std::size_t iters = 1 << 12;
  for (;;) {
    const Clock::time_point t0 = Clock::now();
    kernel(iters, &sink);
    const double t = seconds_since(t0);
    if (t >= trial_seconds / 4 || iters > (std::size_t(1) << 40)) {
      iters = std::max<std::size_t>(1, std::size_t(double(iters) * trial_seconds / std::max(t, 1e-9)));
      break;
    }
    iters *= 2;
  }

  double best = 0.0;
  std::vector<float> sinks(static_cast<std::size_t>(threads), 0.0f);
  const Clock::time_point begin = Clock::now();
  for (int trial = 0; trial < 5 || seconds_since(begin) < seconds; ++trial) {
    // Each thread times its own loop after a barrier; the wall time is from the earliest start to the latest end,
    // so threads that did not actually run at the same time lower the figure instead of inflating it.
    std::vector<double> flops(static_cast<std::size_t>(threads), 0.0);
    std::vector<Clock::time_point> start(static_cast<std::size_t>(threads)), end(static_cast<std::size_t>(threads));
    int ran = 0;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
#pragma omp single
      ran = omp_get_num_threads();
#pragma omp barrier
      start[t] = Clock::now();
      flops[t] = kernel(iters, &sinks[t]);
      end[t] = Clock::now();
    }
    const Clock::time_point t0 = *std::min_element(start.begin(), start.begin() + ran);
    const Clock::time_point t1 = *std::max_element(end.begin(), end.begin() + ran);
    double total = 0.0;
    for (int t = 0; t < ran; ++t) total += flops[t];
    const double wall = std::chrono::duration<double>(t1 - t0).count();
    best = std::max(best, total / wall * 1e-9);
  }
  // The sinks depend on every FMA; reading them keeps the loops from being optimised away.
  volatile float keep = sink;
  for (float s : sinks) keep = keep + s;
  (void)keep;
  return best;
}

double measure_bandwidth_gbs(int threads, std::size_t bytes_per_array) {
  check_threads("measure_bandwidth_gbs", threads);
  const std::size_t n = bytes_per_array / sizeof(float);
  if (n < 1024) throw Error(cat("measure_bandwidth_gbs: arrays of ", bytes_per_array, " bytes are too small"));
  // Uninitialised storage, first touched below by the threads that use it (pages land near them).
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) {
    a[i] = 0.0f;
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
  double best = 0.0;
  const float s = 0.5f;
  for (int trial = 0; trial < 10; ++trial) {
    const Clock::time_point t0 = Clock::now();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < count; ++i) a[i] = b[i] + s * c[i];
    const double t = seconds_since(t0);
    best = std::max(best, 3.0 * double(n) * sizeof(float) / t * 1e-9);
  }
  volatile float keep = a[n / 2] + a[n - 1];  // the stores are observable: the loop cannot be dropped
  (void)keep;
  return best;
}

}  // namespace convkit::bench
