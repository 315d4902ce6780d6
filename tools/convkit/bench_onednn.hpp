// tools/convkit/bench_onednn.hpp — the same convolution through oneDNN, for `convkit bench --vs onednn`. Only
// compiled when CMake found oneDNN (CONVKIT_HAVE_ONEDNN); no oneDNN type appears here, so cmd_bench.cpp builds
// either way.
#pragma once

#include <memory>
#include <string>

#include "convkit/conv.hpp"

namespace convkit::cli {

enum class BenchDir { fwd, bwd_d, bwd_w };

// One oneDNN convolution primitive for one direction, bound to the caller's buffers (dense NHWC / HWIO float32,
// the shapes of `g`), with everything that is not the convolution itself done in the constructor: primitive
// creation, the weights reorder from HWIO into the layout oneDNN picked (format_tag::any), and the scratchpad
// (user-managed, allocated once). run() is the timed part.
//   fwd   (forward_inference): y (N, OH, OW, OC) = conv(x (N, IH, IW, IC), w (KH, KW, IC/G, OC)) + b (OC)
//   bwd_d: dx (N, IH, IW, IC) from dy (N, OH, OW, OC) and w
//   bwd_w: dw (KH, KW, IC/G, OC) and db (OC) from x and dy; dw is in oneDNN's layout after run(), and is
//          reordered into the caller's HWIO buffer by finish() (untimed).
// The backward primitives are created with a forward_training hint, as oneDNN requires.
class OnednnConv {
 public:
  struct Buffers {
    const float* x = nullptr;   // (N, IH, IW, IC)      fwd, bwd_w
    const float* w = nullptr;   // (KH, KW, IC/G, OC)   fwd, bwd_d
    const float* b = nullptr;   // (OC)                 fwd
    const float* dy = nullptr;  // (N, OH, OW, OC)      bwd_d, bwd_w
    float* y = nullptr;         // (N, OH, OW, OC)      fwd
    float* dx = nullptr;        // (N, IH, IW, IC)      bwd_d
    float* dw = nullptr;        // (KH, KW, IC/G, OC)   bwd_w
    float* db = nullptr;        // (OC)                 bwd_w
  };

  // Runs on oneDNN's OpenMP threads: the caller sets omp_set_num_threads() beforehand.
  OnednnConv(const Conv2dGeometry& g, BenchDir dir, const Buffers& buffers);
  ~OnednnConv();
  OnednnConv(const OnednnConv&) = delete;
  OnednnConv& operator=(const OnednnConv&) = delete;

  void run();
  void finish();
  // oneDNN's implementation name ("brgconv:avx512_core", "jit:avx2", ...).
  std::string implementation() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace convkit::cli
