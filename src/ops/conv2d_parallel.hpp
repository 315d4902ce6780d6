// src/ops/conv2d_parallel.hpp — OpenMP helpers for the fast Conv2D algorithms: static splits of an index range, so
// that every thread writes a disjoint part of the output and the result does not depend on timing.
#pragma once

// CONVKIT_NO_OPENMP (CMake: -DCONVKIT_OPENMP=OFF) runs the same static slices on std::threads instead: the
// ThreadSanitizer build uses it, because libgomp is not instrumented and TSan cannot see its synchronisation.
#ifndef CONVKIT_NO_OPENMP
#include <omp.h>
#else
#include <thread>
#include <vector>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace convkit::ops {

// Calls fn(begin, end, slice) on contiguous, non-empty slices of [0, n), one per thread: `threads` of them, fewer
// when n is small or OpenMP grants fewer threads (inside another parallel region, say). Returns the number of
// slices, so that per-slice partial results can be combined. fn must not throw.
template <typename Fn>
int parallel_for(int threads, int64_t n, Fn&& fn) {
  if (n <= 0) return 0;
  const int64_t nt = std::min<int64_t>(threads, n);
  if (nt <= 1) {
    fn(int64_t{0}, n, 0);
    return 1;
  }
#ifndef CONVKIT_NO_OPENMP
  int slices = 1;
#pragma omp parallel num_threads(static_cast <int>(nt))
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    if (t == 0) slices = static_cast<int>(T);
    fn(n * t / T, n * (t + 1) / T, static_cast<int>(t));
  }
  return slices;
#else
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(nt - 1));
  for (int64_t t = 1; t < nt; ++t)
    workers.emplace_back([&fn, n, nt, t] { fn(n * t / nt, n * (t + 1) / nt, static_cast<int>(t)); });
  fn(int64_t{0}, n / nt, 0);
  for (std::thread& w : workers) w.join();
  return static_cast<int>(nt);
#endif
}

// Carves 64-byte aligned buffers out of one workspace. Plans size the workspace with the same sequence of take()
// calls on a null base (a dry run), so that the two can never disagree.
class WorkspaceCarver {
 public:
  static constexpr std::size_t kAlign = 64;
  explicit WorkspaceCarver(void* base) : base_(static_cast<char*>(base)) {
    if (base_) {
      const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(base_);
      offset_ = (kAlign - p % kAlign) % kAlign;
    }
  }
  float* take_floats(int64_t count) { return static_cast<float*>(take(static_cast<std::size_t>(count) * 4)); }
  void* take(std::size_t bytes) {
    char* p = base_ ? base_ + offset_ : nullptr;
    offset_ += (bytes + kAlign - 1) / kAlign * kAlign;
    return p;
  }
  // Bytes a caller must provide: everything taken, plus room to align an arbitrary base.
  std::size_t required() const { return offset_ + kAlign; }

 private:
  char* base_;
  std::size_t offset_ = 0;
};

}  // namespace convkit::ops
