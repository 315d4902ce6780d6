// src/ops/conv2d_wgrad.hpp — the weight- and bias-gradient reduction shared by the GEMM algorithms (gemm_1x1,
// implicit_gemm): dw[tap][c][o] = sum over images and output pixels of x[source(pixel, tap)][c] * dz[pixel][o],
// a GEMM whose reduction runs over N * OH * OW, read through the per-tap table of conv2d_tables.hpp.
#pragma once

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_tables.hpp"

namespace convkit::ops {

class WgradPlan {
 public:
  explicit WgradPlan(const Conv2dContext& ctx);
  // Takes this direction's buffers from `ws` (a dry run with a null base sizes them).
  void run(const float* x, const float* dz, float* dw, float* db, WorkspaceCarver& ws) const;
  std::size_t workspace_size() const;
  // The kernel's name and how the threads share the work, for explain().
  std::string name() const;

 private:
  struct Buffers {
    float* partials;       // split_pixels: threads x dw, one partial sum per thread
    float* bias_partials;  // threads x OC
  };
  Buffers carve(WorkspaceCarver& ws) const;
  // Runs items [i0, i1) over the units [u0, u1) (u = image group * chunks + chunk) into dw; after each unit, adds
  // its dz rows that lie in [r0, r1) into bias (when not null).
  void run_items(const float* x, const float* dz, float* dw, int64_t i0, int64_t i1, int64_t u0, int64_t u1,
                 bool overwrite_first, float* bias, int64_t r0, int64_t r1) const;
  // bias (OC) += the dz rows in [r0, r1) of unit u's share of the output pixels.
  void add_unit_bias(const float* dz, int64_t u, int64_t r0, int64_t r1, float* bias) const;

  Conv2dContext ctx_;
  WgradTable table_;
  int64_t taps_ = 0, ctiles_ = 0, oblocks_ = 0, items_ = 0, chunks_ = 0;
  int64_t images_ = 1;     // images per reduction unit (the table's)
  int64_t chunk_ = 0;      // output pixels per reduction chunk (per tap)
  int64_t units_ = 0;      // (image group, chunk) units
  int64_t og_blocks_ = 0;  // output blocks per group in the item order (all of them: one group)
  // Few (group, tap, channel tile, output block) items for the threads, or x and dz streamed many times dw's size
  // (the rule in the constructor): split the pixels instead, each thread into its own partial dw, summed at the end.
  bool split_pixels_ = false;
};

// Whether a weight gradient whose threads would each read all of x and dz (x_and_dz, in the unit of dw: bytes or
// floats) should split its output pixels between them instead, each into its own partial dw: where x and dz pass 6
// partial dw's per thread (WgradPlan and kernel_rows; the measurements are in conv2d_wgrad.cpp).
inline bool split_pays_for_streamed(int64_t x_and_dz, int64_t dw, int threads) {
  return x_and_dz >= 6 * int64_t{threads} * dw;
}

// db (OC) = sum of dz (rows, OC) over the rows: per-thread partial sums (partials: threads x OC), then their sum.
void bias_gradient(int64_t rows, int64_t oc, const float* dz, float* db, float* partials, int threads);
// The pieces of it for a bias gradient computed alongside another pass: sum (OC) += dz rows [r0, r1); db = the sum
// of `slices` partial sums (slices x OC), in slice order.
void add_bias_rows(const float* dz, int64_t r0, int64_t r1, int64_t oc, float* sum);
void sum_bias_partials(const float* partials, int slices, int64_t oc, float* db);

}  // namespace convkit::ops
