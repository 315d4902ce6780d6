// src/ops/conv2d_algorithms.hpp — the algorithms behind Conv2dPlan (DESIGN.md §2, layer 4): an ordered list, each
// with supports(geometry) -> reason-or-ok and a factory for its plan; the reference is last, so every valid
// problem has a path.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "config/kernels.hpp"
#include "convkit/conv.hpp"
#include "ukernels/ukernels.hpp"

namespace convkit::detail {

// One algorithm's plan for one geometry. Immutable once built; the execute functions allocate nothing and may run
// concurrently (each call with its own workspace of workspace_size() bytes).
class Conv2dImpl {
 public:
  virtual ~Conv2dImpl() = default;
  virtual std::size_t workspace_size() const = 0;
  // Which microkernels it runs, for explain().
  virtual std::string kernels() const = 0;
  // As Conv2dPlan's functions; b is null when the layer has no bias.
  virtual void forward(const float* x, const float* w, const float* b, float* y, void* ws) const = 0;
  virtual void backward_data(const float* dz, const float* w, float* dx, void* ws) const = 0;
  virtual void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const = 0;
  // Conv2dPlan::pack_weights / forward_packed / backward_data_packed; by default nothing to pack and the packed
  // forms are the per-call ones. An algorithm packing for both directions lays both out in one buffer.
  virtual std::size_t packed_weights_floats() const { return 0; }
  virtual void pack_weights(const float* /*w*/, float* /*packed*/) const {}
  // Conv2dPlan::pack_forward_weights: the part of that layout forward_packed reads, which comes first (inference
  // keeps only it).
  virtual std::size_t packed_forward_floats() const { return 0; }
  virtual void pack_forward_weights(const float* /*w*/, float* /*packed*/) const {}
  virtual void forward_packed(const float* x, const float* w, const float* /*packed*/, const float* b, float* y,
                              void* ws) const {
    forward(x, w, b, y, ws);
  }
  virtual void backward_data_packed(const float* dz, const float* w, const float* /*packed*/, float* dx,
                                    void* ws) const {
    backward_data(dz, w, dx, ws);
  }
};

}  // namespace convkit::detail

namespace convkit::ops {

// implicit_gemm's two forms of backward data (conv2d_igemm.cpp); automatic picks by the channels per group. The
// tests force each.
enum class BackwardDataForm { automatic, gather, scatter };

// The L2 a plan assumes where the CPU does not report one (Conv2dContext::l2_bytes).
inline constexpr int64_t kDefaultL2Bytes = int64_t{1} << 20;

// What an algorithm's plan is built from.
struct Conv2dContext {
  Conv2dGeometry g;
  Activation activation = Activation::none;
  const config::KernelTable* k = nullptr;
  int threads = 1;
  BackwardDataForm backward_data = BackwardDataForm::automatic;
  Conv2dWeights weights = Conv2dWeights::per_call;
  // One core's L2 data cache (config::CpuFeatures::l2_bytes), which the cache-blocking rules scale with; where the
  // CPU does not tell, that of the machine they were first measured on (Zen 5: 1 MiB).
  int64_t l2_bytes = kDefaultL2Bytes;
};

struct Conv2dAlgorithmInfo {
  Conv2dAlgorithm id;
  const char* summary;
  // "" when the algorithm can run the geometry, otherwise why not (printed by explain() and in errors).
  std::string (*supports)(const Conv2dGeometry& g);
  std::unique_ptr<detail::Conv2dImpl> (*create)(const Conv2dContext& ctx);
  // Optional: "" when the algorithm is worth taking automatically, otherwise why not (a supported geometry where
  // it is slower than a later algorithm). Forcing the algorithm ignores it.
  std::string (*pays)(const Conv2dGeometry& g, Conv2dWeights weights) = nullptr;
};

// In the order they are tried; the reference is last.
std::span<const Conv2dAlgorithmInfo> conv2d_algorithms();

// The algorithms (src/ops/conv2d_<name>.cpp).
std::string gemm_1x1_supports(const Conv2dGeometry& g);
std::unique_ptr<detail::Conv2dImpl> gemm_1x1_create(const Conv2dContext& ctx);
// Whether gemm_1x1's forward and stride-1 backward data prefetch the next row tile of x / dz (their rules in
// conv2d_gemm.cpp): -1 by the rules, 0 never, 1 always; read at each call. The tests force both ways,
// bench/gemm_prefetch.cpp alternates them.
inline std::atomic<int> g_gemm_1x1_prefetch{-1};
std::string depthwise_supports(const Conv2dGeometry& g);
// Whether the depthwise group kernels start each work item with a sweep of prefetches over its rows: -1 where the
// input exceeds kStreamBytes, 0 never, 1 always. The tests force both ways.
inline std::atomic<int> g_depthwise_row_sweeps{-1};
std::unique_ptr<detail::Conv2dImpl> depthwise_create(const Conv2dContext& ctx);
std::string kernel_rows_supports(const Conv2dGeometry& g);
std::string kernel_rows_pays(const Conv2dGeometry& g, Conv2dWeights weights);
std::unique_ptr<detail::Conv2dImpl> kernel_rows_create(const Conv2dContext& ctx);
// kernel_rows' band sizes, read when a plan is made: floats of one band's padded copy, output pixels per band of the
// weight-gradient reduction. The tests shrink them to run many bands on small shapes.
inline std::atomic<int64_t> g_kernel_rows_band_floats{32 * 1024};
inline std::atomic<int64_t> g_kernel_rows_wgrad_pixels{512};
// The weight gradient's (conv2d_wgrad.cpp) dw size past which images with few pixels are reduced in groups, read
// when a plan is made. The tests lower it to group small problems.
inline std::atomic<int64_t> g_wgrad_image_group_dw_bytes{int64_t{1} << 20};
// The L2 size plans are made for (Conv2dContext::l2_bytes): 0 for the CPU's; the tests set others.
inline std::atomic<int64_t> g_l2_bytes{0};
// Whether kernel_rows' forward reads x in place (one group, zero padding): -1 where its measured rule says so, 0
// never, 1 always. The tests force both ways.
inline std::atomic<int> g_kernel_rows_forward_in_place{-1};
// Whether kernel_rows' forward prefetches each next tile's output lines: -1 where the output exceeds kStreamBytes,
// 0 never, 1 always; read at each call. The tests force both ways.
inline std::atomic<int> g_kernel_rows_forward_prefetch{-1};
std::string implicit_gemm_supports(const Conv2dGeometry& g);
std::unique_ptr<detail::Conv2dImpl> implicit_gemm_create(const Conv2dContext& ctx);
std::string winograd_supports(const Conv2dGeometry& g);
std::string winograd_pays(const Conv2dGeometry& g, Conv2dWeights weights);
std::unique_ptr<detail::Conv2dImpl> winograd_create(const Conv2dContext& ctx);

// The parameters of the GEMM epilogue: relu is fused, tanh / sigmoid run as a pass over each finished tile.
// Outputs larger than this are written with non-temporal stores where a kernel can (uk::GemmParams::stream).
inline constexpr int64_t kStreamBytes = int64_t{16} << 20;

inline uk::GemmParams gemm_params(Activation act) { return uk::GemmParams{act == Activation::relu ? 1 : 0, 0}; }
inline bool needs_post_activation(Activation act) { return act == Activation::tanh || act == Activation::sigmoid; }

}  // namespace convkit::ops
