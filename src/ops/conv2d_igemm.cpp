// implicit_gemm: Conv2D as a GEMM whose A rows are read through an indirection table (conv2d_tables.hpp) instead
// of an im2col copy. Any kernel size, stride, dilation, padding (every mode) and groups.
//   forward:          y[pixel] = sum over taps of x[source(pixel, tap)] . w[tap]   (rows: output pixels)
//   backward data:    dx[pixel] = sum over the taps of its stride phase of dz[...] . w[tap]^T   (rows: input pixels);
//                     with few input channels per group, a GEMM into (tap, channel) columns scattered into dx
//   backward weights: the shared reduction of conv2d_wgrad.hpp.
#include <algorithm>

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_pack.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_tables.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

class ImplicitGemm final : public detail::Conv2dImpl {
 public:
  explicit ImplicitGemm(const Conv2dContext& ctx)
      : ctx_(ctx),
        fwd_(forward_table(ctx.g, ctx.k->mr)),
        fold_(ctx.g.padding_mode != PaddingMode::zeros),
        gb_(fold_ ? padded_grid_geometry(ctx.g) : ctx.g),
        bwd_(use_scatter(ctx) ? IndirectionTable{} : backward_data_table(gb_, ctx.k->mr)),
        wgrad_(ctx) {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr;
    scatter_ = use_scatter(ctx_);
    scatter_blocks_ = (g.kh * g.kw * g.ic_per_group() + nr - 1) / nr;
    scatter_block_floats_ = packed_block_floats(g.oc_per_group(), nr);
    // One cols buffer per thread, and no more of them than fit in the input's size: the workspace must not outgrow
    // input + packed weights (tests/ops/test_conv2d_workspace.cpp), and a thread has at least one (image, group).
    const int64_t cols_floats = ctx_.k->mr * scatter_blocks_ * nr;
    scatter_threads_ = static_cast<int>(std::clamp<int64_t>(
        std::min<int64_t>(g.n * g.ih * g.iw * g.ic / cols_floats, g.n * g.groups), 1, ctx_.threads));
    fwd_blocks_ = (g.oc_per_group() + nr - 1) / nr;
    bwd_blocks_ = (g.ic_per_group() + nr - 1) / nr;
    for (const IndirectionTable::Segment& s : bwd_.segments) {
      bwd_seg_offset_.push_back(bwd_pack_floats_);
      const int64_t block = packed_block_floats(static_cast<int64_t>(s.taps.size()) * g.oc_per_group(), nr);
      bwd_seg_block_floats_.push_back(block);
      bwd_pack_floats_ += g.groups * bwd_blocks_ * block;
    }
  }

  std::size_t workspace_size() const override {
    WorkspaceCarver f(nullptr), b(nullptr);
    carve_forward(f);
    if (scatter_)
      carve_scatter(b);
    else
      carve_backward_data(b);
    return std::max({f.required(), b.required(), wgrad_.workspace_size()});
  }

  std::string kernels() const override {
    return std::string(ctx_.k->igemm_name) + " (forward" + (scatter_ ? "" : ", backward data") + "), " +
           (scatter_ ? std::string(ctx_.k->gemm_name) + " + scatter (backward data), " : std::string()) +
           ctx_.k->wgrad_name + " (weights)";
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const Buffers buf = carve_forward(carver);
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr, mr = ctx_.k->mr;
    const int64_t G = g.groups, nb = fwd_blocks_, taps = g.kh * g.kw;
    std::fill_n(buf.zero, zero_floats(), 0.0f);
    const uk::GemmParams params = gemm_params(ctx_.activation);
    const bool post = needs_post_activation(ctx_.activation);
    const int64_t tiles = fwd_.num_tiles(), x_image = g.ih * g.iw * g.ic, y_image = g.oh * g.ow * g.oc;
    // Items (image, tile, group, output block), the block fastest: consecutive items reuse the tile's input rows.
    // (Making the tile fastest for weights larger than L2 was measured: no better, the weight rows being OC floats
    // apart alias in the caches.)
    parallel_for(ctx_.threads, g.n * tiles * G * nb, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t j = it % nb, grp = (it / nb) % G, tile = (it / (nb * G)) % tiles, n = it / (nb * G * tiles);
        const int64_t nc = std::min(nr, ocg - j * nr);
        const int64_t col0 = grp * ocg + j * nr;
        float* c_base = y + n * y_image + col0;
        const int64_t* c_off = fwd_.c_off.data() + tile * mr;
        // The weights are read in place: rows (tap, c) of the HWIO kernel, OC floats apart.
        ctx_.k->igemm(static_cast<std::size_t>(fwd_.tile_rows[tile]), static_cast<std::size_t>(nc),
                      static_cast<std::size_t>(icg), static_cast<std::size_t>(taps), x + n * x_image + grp * icg,
                      fwd_.a_off.data() + fwd_.tile_a_begin[tile], buf.zero, w + col0, static_cast<std::size_t>(g.oc),
                      b ? b + col0 : nullptr, c_base, c_off, &params);
        if (post)
          for (int64_t r = 0; r < fwd_.tile_rows[tile]; ++r) activation_forward(ctx_.activation, c_base + c_off[r], nc);
      }
    });
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    if (scatter_) return backward_data_scatter(dz, w, dx, ws);
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const Buffers buf = carve_backward_data(carver);
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr, mr = ctx_.k->mr;
    const int64_t G = g.groups, nb = bwd_blocks_, segs = static_cast<int64_t>(bwd_.segments.size());
    parallel_for(ctx_.threads, segs * G * nb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i) {
        const int64_t s = i / (G * nb), grp = (i / nb) % G, j = i % nb;
        pack_backward_data_block(g, nr, bwd_.segments[s].taps, w, grp, j,
                                 buf.packed + bwd_seg_offset_[s] + (grp * nb + j) * bwd_seg_block_floats_[s]);
      }
    });
    std::fill_n(buf.zero, zero_floats(), 0.0f);
    float* dxb = fold_ ? buf.padded_dx : dx;
    const uk::GemmParams params = gemm_params(Activation::none);
    const int64_t tiles = bwd_.num_tiles(), dz_image = g.oh * g.ow * g.oc, dx_image = gb_.ih * gb_.iw * g.ic;
    parallel_for(ctx_.threads, g.n * tiles * G * nb, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t j = it % nb, grp = (it / nb) % G, tile = (it / (nb * G)) % tiles, n = it / (nb * G * tiles);
        const int64_t s = bwd_.tile_segment[tile];
        ctx_.k->igemm(
            static_cast<std::size_t>(bwd_.tile_rows[tile]), static_cast<std::size_t>(std::min(nr, icg - j * nr)),
            static_cast<std::size_t>(ocg), bwd_.segments[s].taps.size(), dz + n * dz_image + grp * ocg,
            bwd_.a_off.data() + bwd_.tile_a_begin[tile], buf.zero,
            buf.packed + bwd_seg_offset_[s] + (grp * nb + j) * bwd_seg_block_floats_[s], static_cast<std::size_t>(nr),
            nullptr, dxb + n * dx_image + grp * icg + j * nr, bwd_.c_off.data() + tile * mr, &params);
      }
    });
    if (fold_) fold_padded_gradient(g, buf.padded_dx, dx, ctx_.threads);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    WorkspaceCarver carver(ws);
    wgrad_.run(x, dz, dw, db, carver);
  }

 private:
  // The gather's GEMM has IC/G columns; below half a register block most of its FMAs would be wasted, so use the
  // scatter form, whose GEMM has taps * IC/G columns.
  static bool use_scatter(const Conv2dContext& ctx) {
    if (ctx.backward_data != BackwardDataForm::automatic) return ctx.backward_data == BackwardDataForm::scatter;
    return 2 * ctx.g.ic_per_group() < ctx.k->nr;
  }

  // Backward data for few input channels per group: per tile of output pixels, cols (MR, taps * IC/G) = dz rows .
  // w^T (a plain GEMM, the dz rows being consecutive), then each column (tap, c) is added into dx at the tap's
  // source cell, read from the forward table: padded cells of every mode land on the cell they copy, so no
  // padded grid is needed. Tiles of one image overlap in dx, so a thread owns whole (image, group) items.
  void backward_data_scatter(const float* dz, const float* w, float* dx, void* ws) const {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const ScatterBuffers buf = carve_scatter(carver);
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr, mr = ctx_.k->mr;
    const int64_t G = g.groups, nb = scatter_blocks_, taps = g.kh * g.kw, cols = taps * icg, ld = nb * nr;
    parallel_for(ctx_.threads, G * nb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i)
        pack_scatter_block(g, nr, w, i / nb, i % nb, buf.packed + i * scatter_block_floats_);
    });
    const uk::GemmParams params = gemm_params(Activation::none);
    const int64_t tiles = fwd_.num_tiles(), x_image = g.ih * g.iw * g.ic, dz_image = g.oh * g.ow * g.oc;
    parallel_for(scatter_threads_, g.n * G, [&](int64_t i0, int64_t i1, int t) {
      float* col = buf.cols + t * mr * ld;
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t n = it / G, grp = it % G;
        float* dx_n = dx + n * x_image + grp * icg;
        for (int64_t p = 0; p < g.ih * g.iw; ++p) std::fill_n(dx_n + p * g.ic, icg, 0.0f);
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t rows = fwd_.tile_rows[tile];
          const float* a = dz + n * dz_image + tile * mr * g.oc + grp * ocg;
          for (int64_t j = 0; j < nb; ++j)
            ctx_.k->gemm(static_cast<std::size_t>(rows), static_cast<std::size_t>(std::min(nr, cols - j * nr)),
                         static_cast<std::size_t>(ocg), a, static_cast<std::size_t>(g.oc),
                         buf.packed + (grp * nb + j) * scatter_block_floats_, static_cast<std::size_t>(nr), nullptr,
                         col + j * nr, static_cast<std::size_t>(ld), &params);
          const int64_t* a_off = fwd_.a_off.data() + fwd_.tile_a_begin[tile];
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t tap = 0; tap < taps; ++tap) {
              const int64_t off = a_off[tap * mr + r];
              if (off < 0) continue;
              float* d = dx_n + off;
              const float* s = col + r * ld + tap * icg;
              for (int64_t c = 0; c < icg; ++c) d[c] += s[c];
            }
        }
      }
    });
  }

  struct ScatterBuffers {
    float* packed;
    float* cols;  // threads x (MR, blocks * NR)
  };
  ScatterBuffers carve_scatter(WorkspaceCarver& ws) const {
    ScatterBuffers b{};
    b.packed = ws.take_floats(ctx_.g.groups * scatter_blocks_ * scatter_block_floats_);
    b.cols = ws.take_floats(int64_t{scatter_threads_} * ctx_.k->mr * scatter_blocks_ * ctx_.k->nr);
    return b;
  }

  struct Buffers {
    float* packed;
    float* zero;
    float* padded_dx;
  };
  // The zero row stands for a padded input row (forward: IC/G floats read) or a missing dz row (OC/G floats).
  int64_t zero_floats() const { return std::max(ctx_.g.ic_per_group(), ctx_.g.oc_per_group()); }
  Buffers carve_forward(WorkspaceCarver& ws) const {
    Buffers b{};
    b.zero = ws.take_floats(zero_floats());
    return b;
  }
  Buffers carve_backward_data(WorkspaceCarver& ws) const {
    Buffers b{};
    b.packed = ws.take_floats(bwd_pack_floats_);
    b.zero = ws.take_floats(zero_floats());
    b.padded_dx = fold_ ? ws.take_floats(gb_.n * gb_.ih * gb_.iw * gb_.ic) : nullptr;
    return b;
  }

  Conv2dContext ctx_;
  IndirectionTable fwd_;
  bool fold_;          // non-zero padding mode: backward data runs on the padded grid, then folds
  Conv2dGeometry gb_;  // the geometry backward data runs on
  IndirectionTable bwd_;
  WgradPlan wgrad_;
  bool scatter_ = false;  // backward data by GEMM + scatter (few input channels per group)
  int64_t scatter_blocks_ = 0, scatter_block_floats_ = 0;
  int scatter_threads_ = 1;  // threads of the scatter form (each with its cols buffer)
  int64_t fwd_blocks_ = 0;
  int64_t bwd_blocks_ = 0, bwd_pack_floats_ = 0;
  std::vector<int64_t> bwd_seg_offset_, bwd_seg_block_floats_;
};

}  // namespace

std::string implicit_gemm_supports(const Conv2dGeometry& g) {
  // The indirection tables hold one offset per output pixel and tap, per input pixel and tap, and two per
  // (output pixel, tap) for the weight gradient: refuse sizes where they alone would take gigabytes.
  const double entries =
      double(g.oh) * double(g.ow) * double(g.kh) * double(g.kw) * 3.0 +
      double(g.ih + g.pad_top + g.pad_bottom) * double(g.iw + g.pad_left + g.pad_right) * double(g.kh) * double(g.kw);
  if (entries * 8.0 > 4e9)
    return "its indirection tables would take " + std::to_string(int64_t(entries * 8.0 / 1e9)) +
           " GB (more than 4 GB) for this image and kernel size";
  return {};
}

std::unique_ptr<detail::Conv2dImpl> implicit_gemm_create(const Conv2dContext& ctx) {
  return std::make_unique<ImplicitGemm>(ctx);
}

}  // namespace convkit::ops
