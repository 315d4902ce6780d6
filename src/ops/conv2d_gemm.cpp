// gemm_1x1: a 1x1 convolution with stride 1 and no padding is a plain GEMM over the NHWC rows:
//   forward:          y (N*H*W, OC) = x (N*H*W, IC) . w (IC, OC)      (per group: column slices)
//   backward data:    dx (N*H*W, IC) = dz (N*H*W, OC) . w^T
//   backward weights: the shared reduction of conv2d_wgrad.hpp (one tap, every pixel).
#include <algorithm>

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_pack.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

// The rows of a 1x1, stride-1, unpadded convolution are contiguous across the images, so the weight gradient may
// reduce over all N * H * W of them as one tall image: each dw tile is then written once per 256-pixel chunk
// instead of once per image (Dense runs here with one pixel per image: 64 passes over dw per step otherwise).
Conv2dContext as_one_image(Conv2dContext ctx) {
  ctx.g.ih *= ctx.g.n;
  ctx.g.oh *= ctx.g.n;
  ctx.g.n = 1;
  return ctx;
}

class Gemm1x1 final : public detail::Conv2dImpl {
 public:
  explicit Gemm1x1(const Conv2dContext& ctx) : ctx_(ctx), wgrad_(as_one_image(ctx)) {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr;
    fwd_blocks_ = (g.oc_per_group() + nr - 1) / nr;
    bwd_blocks_ = (g.ic_per_group() + nr - 1) / nr;
    bwd_block_floats_ = packed_block_floats(g.oc_per_group(), nr);
  }

  std::size_t workspace_size() const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver ws(nullptr);
    ws.take_floats(g.groups * bwd_blocks_ * bwd_block_floats_);
    return std::max(ws.required(), wgrad_.workspace_size());
  }

  std::string kernels() const override {
    return std::string(ctx_.k->gemm_name) + " (forward, backward data), " + ctx_.k->wgrad_name + " (weights)";
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    (void)ws;  // the kernel (IC/G, OC) is read in place
    run(x, g.ic, g.ic_per_group(), Weights{w, g.oc, g.oc_per_group(), 0, b}, fwd_blocks_, y, g.oc, g.oc_per_group(),
        gemm_params(ctx_.activation), ctx_.activation);
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    float* packed = carver.take_floats(g.groups * bwd_blocks_ * bwd_block_floats_);
    static constexpr int32_t kTap0[] = {0};
    const int64_t nb = bwd_blocks_, nr = ctx_.k->nr;
    parallel_for(ctx_.threads, g.groups * nb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i)
        pack_backward_data_block(g, nr, kTap0, w, i / nb, i % nb, packed + i * bwd_block_floats_);
    });
    run(dz, g.oc, g.oc_per_group(), Weights{packed, nr, nb * bwd_block_floats_, bwd_block_floats_, nullptr}, nb, dx,
        g.ic, g.ic_per_group(), gemm_params(Activation::none), Activation::none);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    WorkspaceCarver carver(ws);
    wgrad_.run(x, dz, dw, db, carver);
  }

 private:
  // Where block j of group grp starts: w + grp * group_step + j * block_step (block_step 0: blocks nr columns apart
  // in place), rows `stride` apart; bias + grp * C/G + j * nr.
  struct Weights {
    const float* w;
    int64_t stride, group_step, block_step;
    const float* bias;
  };
  // C (rows, c_cols) = A (rows, a_cols) . B per group: A's group slice is a_group columns wide, C's c_group.
  void run(const float* a, int64_t a_cols, int64_t a_group, const Weights& b, int64_t nb, float* c, int64_t c_cols,
           int64_t c_group, const uk::GemmParams& params, Activation act) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t rows = g.n * g.oh * g.ow, mr = ctx_.k->mr, nr = ctx_.k->nr, G = g.groups;
    const int64_t tiles = (rows + mr - 1) / mr;
    const bool post = needs_post_activation(act);
    // Which operand stays in cache: with the output blocks fastest, one row tile of A is reused across all of B
    // (B re-read per tile); with the row tiles fastest, one column block of B (a_group x nr) is reused across all
    // of A. The latter when B is too large to stay in cache (Dense: a 3136 x 1024 kernel, few rows).
    const bool tiles_fastest = a_group * c_group * int64_t{sizeof(float)} > (int64_t{1} << 20);
    parallel_for(ctx_.threads, tiles * G * nb, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        // it = (tile * G + grp) * nb + j, or (grp * nb + j) * tiles + tile.
        const int64_t j = tiles_fastest ? (it / tiles) % nb : it % nb;
        const int64_t grp = tiles_fastest ? it / (tiles * nb) : (it / nb) % G;
        const int64_t tile = tiles_fastest ? it % tiles : it / (nb * G);
        const int64_t r0 = tile * mr, m = std::min(mr, rows - r0), nc = std::min(nr, c_group - j * nr);
        float* cp = c + r0 * c_cols + grp * c_group + j * nr;
        const float* wb = b.w + grp * b.group_step + (b.block_step ? j * b.block_step : j * nr);
        ctx_.k->gemm(static_cast<std::size_t>(m), static_cast<std::size_t>(nc), static_cast<std::size_t>(a_group),
                     a + r0 * a_cols + grp * a_group, static_cast<std::size_t>(a_cols), wb,
                     static_cast<std::size_t>(b.stride), b.bias ? b.bias + grp * c_group + j * nr : nullptr, cp,
                     static_cast<std::size_t>(c_cols), &params);
        if (post)
          for (int64_t r = 0; r < m; ++r) activation_forward(act, cp + r * c_cols, nc);
      }
    });
  }

  Conv2dContext ctx_;
  WgradPlan wgrad_;
  int64_t fwd_blocks_ = 0, bwd_blocks_ = 0, bwd_block_floats_ = 0;
};

}  // namespace

std::string gemm_1x1_supports(const Conv2dGeometry& g) {
  if (g.kh != 1 || g.kw != 1) return "needs a 1x1 kernel, got " + std::to_string(g.kh) + "x" + std::to_string(g.kw);
  if (g.sh != 1 || g.sw != 1) return "needs stride 1, got (" + std::to_string(g.sh) + ", " + std::to_string(g.sw) + ")";
  if (g.pad_top || g.pad_bottom || g.pad_left || g.pad_right) return "needs no padding";
  return {};
}

std::unique_ptr<detail::Conv2dImpl> gemm_1x1_create(const Conv2dContext& ctx) { return std::make_unique<Gemm1x1>(ctx); }

}  // namespace convkit::ops
