// src/ops/conv2d_parallel.hpp — parallel helpers for the fast Conv2D algorithms: static splits of an index range, so
// that every thread writes a disjoint part of the output and the result does not depend on timing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "ops/thread_pool.hpp"

namespace convkit::ops {

// Calls fn(begin, end, slice) on min(threads, n) contiguous, non-empty slices of [0, n), each once, on the threads
// of the library's pool (thread_pool.hpp: the same slices on the calling thread alone where the pool is busy).
// Returns the number of slices, so that per-slice partial results can be combined. fn must not throw.
template <typename Fn>
int parallel_for(int threads, int64_t n, Fn&& fn) {
  if (n <= 0) return 0;
  const int64_t nt = std::min<int64_t>(threads, n);
  if (nt <= 1) {
    fn(int64_t{0}, n, 0);
    return 1;
  }
  struct Job {
    std::remove_reference_t<Fn>* fn;
    int64_t n;
  } job{&fn, n};
  return pool_run(
      static_cast<int>(nt),
      [](void* p, int t, int T) noexcept {  // an exception ends the program, as it would leave an OpenMP region
        const Job& j = *static_cast<const Job*>(p);
        (*j.fn)(j.n * t / T, j.n * (t + 1) / T, t);
      },
      &job);
}

// Whether `units` equal pieces of work share out evenly over `threads` contiguous slices: all of one size, or at least
// 16 a thread (the largest slice then within 1/16 of the mean).
inline bool shares_evenly(int64_t units, int threads) {
  return threads > 0 && (units % threads == 0 || units >= 16 * int64_t{threads});
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
