// implicit_gemm: Conv2D as a GEMM whose A rows are read through an indirection table (conv2d_tables.hpp) instead
// of an im2col copy. Any kernel size, stride, dilation, padding (every mode) and groups.
//   forward:          y[pixel] = sum over taps of x[source(pixel, tap)] . w[tap]   (rows: output pixels)
//   backward data:    dx[pixel] = sum over the taps of its stride phase of dz[...] . w[tap]^T   (rows: input pixels);
//                     with few input channels per group, a GEMM into (tap, channel) columns scattered into dx
//   backward weights: the shared reduction of conv2d_wgrad.hpp.
// Each tile runs only its live taps (the tables' tile_tap_begin / end): the leading and trailing kernel taps that
// read padding in all its rows (a tile of the top output row of a 5x5 pad-2 conv skips 2 kernel rows) are cut off
// by starting the weights and a_off at the first live tap. Weights packed once (pack_weights): forward's dense
// panels, then backward data's blocks; the packed forms give the per-call results bit for bit.
#include <algorithm>
#include <span>

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_pack.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_tables.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

// The GEMM items (image, tile, group, block of NR columns) in the order the threads run them: (chunk, group,
// block, tile of the chunk), chunks being `chunk` consecutive tiles of the whole batch (image-major). With chunk 1
// the block runs fastest, so consecutive items reuse the tile's A rows; with a longer chunk each packed weight
// block is read from memory once per chunk and reused from L2 across the chunk's tiles (weights larger than L2, few
// output rows: mb 1, 7x7). Every item is one kernel call, so the order never changes a result.
struct ItemOrder {
  int64_t tiles = 1, chunk = 1, groups = 1, blocks = 1, images = 1;
  int64_t count() const { return images * tiles * groups * blocks; }
  struct Item {
    int64_t n, tile, grp, j;
  };
  Item operator()(int64_t it) const {
    const int64_t total_tiles = images * tiles, per_chunk = chunk * groups * blocks;
    const int64_t c = it / per_chunk, first = c * chunk, tc = std::min(chunk, total_tiles - first);
    int64_t rem = it - c * per_chunk;
    Item r{};
    r.grp = rem / (tc * blocks);
    rem -= r.grp * tc * blocks;
    r.j = rem / tc;
    const int64_t gt = first + rem % tc;
    r.n = gt / tiles;
    r.tile = gt % tiles;
    return r;
  }
};

// Tiles per chunk: 1 (block fastest) while one group's weights fit comfortably in L2, otherwise enough tiles for
// about 512 KiB of A rows (mr rows of row_floats floats per tile and tap range, the rows of neighbouring taps
// overlapping), so that a weight block and the chunk's rows share L2.
int64_t chunk_tiles(int64_t group_weight_floats, int64_t row_floats, int64_t mr, int64_t total_tiles) {
  if (group_weight_floats * 4 <= 256 * 1024) return 1;
  return std::clamp<int64_t>(131072 / std::max<int64_t>(1, mr * row_floats), 1, std::max<int64_t>(1, total_tiles));
}

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
    const int64_t nr = ctx_.k->nr, mr = ctx_.k->mr, taps = g.kh * g.kw;
    scatter_ = use_scatter(ctx_);
    scatter_blocks_ = (taps * g.ic_per_group() + nr - 1) / nr;
    scatter_block_floats_ = packed_block_floats(g.oc_per_group(), nr);
    // One cols buffer per thread, and no more of them than fit in the input's size: the workspace must not outgrow
    // input + packed weights (tests/ops/test_conv2d_workspace.cpp), and a thread has at least one (image, group).
    const int64_t cols_floats = ctx_.k->mr * scatter_blocks_ * nr;
    scatter_threads_ = static_cast<int>(std::clamp<int64_t>(
        std::min<int64_t>(g.n * g.ih * g.iw * g.ic / cols_floats, g.n * g.groups), 1, ctx_.threads));
    fwd_blocks_ = (g.oc_per_group() + nr - 1) / nr;
    fwd_panel_floats_ = packed_block_floats(taps * g.ic_per_group(), nr);
    fwd_pack_floats_ = g.groups * fwd_blocks_ * fwd_panel_floats_;
    bwd_blocks_ = (g.ic_per_group() + nr - 1) / nr;
    for (const IndirectionTable::Segment& s : bwd_.segments) {
      bwd_seg_offset_.push_back(bwd_pack_floats_);
      const int64_t block = packed_block_floats(static_cast<int64_t>(s.taps.size()) * g.oc_per_group(), nr);
      bwd_seg_block_floats_.push_back(block);
      bwd_pack_floats_ += g.groups * bwd_blocks_ * block;
      bwd_seg_item_.push_back(bwd_pack_items_);
      bwd_pack_items_ += g.groups * bwd_blocks_ * static_cast<int64_t>(s.taps.size());
    }
    bwd_seg_item_.push_back(bwd_pack_items_);
    const int64_t group_weights = taps * g.ic_per_group() * g.oc_per_group();
    fwd_packed_order_ = ItemOrder{fwd_.num_tiles(),
                                  chunk_tiles(group_weights, g.ic_per_group(), mr, g.n * fwd_.num_tiles()), g.groups,
                                  fwd_blocks_, g.n};
    bwd_order_ = ItemOrder{bwd_.num_tiles(), chunk_tiles(group_weights, g.oc_per_group(), mr, g.n * bwd_.num_tiles()),
                           g.groups, bwd_blocks_, g.n};
    // Forward per call reads the kernel in place: its rows, OC floats apart, alias in L2 (for OC = 512 a block of
    // 32 columns only gets 1/16 of it), so no chunk keeps a block there; the block runs fastest instead, reusing the
    // tile's A rows. Measured (3x3 512 -> 512 on 7x7, mb 1, AVX-512): that beat chunks over per-thread panels
    // packed at each call (the pack being a pass of its own) by about 10%, on 1 and 2 threads. (Backward data per
    // call packs its blocks first, so it takes the chunks: 2x faster there on 2 threads.)
    fwd_inplace_order_ = fwd_packed_order_;
    fwd_inplace_order_.chunk = 1;
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
           wgrad_.name();
  }

  // Packed once: forward's panels (per group and block of NR output channels: taps * IC/G rows of NR floats), then
  // backward data's blocks (the gather's per stride phase, or the scatter's), as the per-call paths build them.
  std::size_t packed_weights_floats() const override {
    return static_cast<std::size_t>(fwd_pack_floats_ + bwd_packed_floats());
  }

  std::size_t packed_forward_floats() const override { return static_cast<std::size_t>(fwd_pack_floats_); }
  void pack_forward_weights(const float* w, float* packed) const override {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, nb = fwd_blocks_;
    parallel_for(ctx_.threads, g.groups * nb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i) pack_forward_block(g, nr, w, i / nb, i % nb, packed + i * fwd_panel_floats_);
    });
  }

  void pack_weights(const float* w, float* packed) const override {
    pack_forward_weights(w, packed);
    pack_backward(w, packed + fwd_pack_floats_);
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    WorkspaceCarver carver(ws);
    const Buffers buf = carve_forward(carver);
    run_forward(x, nullptr, w, b, y, buf.zero);
  }

  void forward_packed(const float* x, const float* /*w*/, const float* packed, const float* b, float* y,
                      void* ws) const override {
    WorkspaceCarver carver(ws);
    const Buffers buf = carve_forward(carver);
    run_forward(x, packed, nullptr, b, y, buf.zero);
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    if (scatter_) {
      WorkspaceCarver carver(ws);
      const ScatterBuffers buf = carve_scatter(carver);
      pack_backward(w, buf.packed);
      return backward_data_scatter(dz, buf.packed, dx, buf.cols);
    }
    WorkspaceCarver carver(ws);
    const Buffers buf = carve_backward_data(carver);
    pack_backward(w, buf.packed);
    run_backward_data(dz, buf.packed, dx, buf);
  }

  void backward_data_packed(const float* dz, const float* /*w*/, const float* packed, float* dx,
                            void* ws) const override {
    const float* bp = packed + fwd_pack_floats_;
    if (scatter_) {
      WorkspaceCarver carver(ws);
      const ScatterBuffers buf = carve_scatter(carver);
      return backward_data_scatter(dz, bp, dx, buf.cols);
    }
    WorkspaceCarver carver(ws);
    const Buffers buf = carve_backward_data(carver);
    run_backward_data(dz, bp, dx, buf);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    WorkspaceCarver carver(ws);
    wgrad_.run(x, dz, dw, db, carver);
  }

 private:
  struct Buffers;
  // The gather's GEMM has IC/G columns; below half a register block most of its FMAs would be wasted, so use the
  // scatter form, whose GEMM has taps * IC/G columns.
  static bool use_scatter(const Conv2dContext& ctx) {
    if (ctx.backward_data != BackwardDataForm::automatic) return ctx.backward_data == BackwardDataForm::scatter;
    return 2 * ctx.g.ic_per_group() < ctx.k->nr;
  }

  int64_t bwd_packed_floats() const {
    return scatter_ ? ctx_.g.groups * scatter_blocks_ * scatter_block_floats_ : bwd_pack_floats_;
  }

  // Backward data's blocks (gather: per stride phase, group and block of NR input channels; scatter: per group and
  // block of NR (tap, channel) columns), bwd_packed_floats() of them.
  void pack_backward(const float* w, float* packed) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, G = g.groups;
    if (scatter_) {
      const int64_t nb = scatter_blocks_;
      parallel_for(ctx_.threads, G * nb, [&](int64_t b0, int64_t b1, int) {
        for (int64_t i = b0; i < b1; ++i)
          pack_scatter_block(g, nr, w, i / nb, i % nb, packed + i * scatter_block_floats_);
      });
      return;
    }
    // Items (segment, group, block, tap): a block holds its taps one after the other (OC/G rows of NR each), so
    // the threads split a block by taps too (layers with one block of input channels: fmnist conv2).
    const int64_t nb = bwd_blocks_, ocg = g.oc_per_group();
    parallel_for(ctx_.threads, bwd_pack_items_, [&](int64_t b0, int64_t b1, int) {
      int64_t s = 0;
      for (int64_t i = b0; i < b1;) {
        while (i >= bwd_seg_item_[s + 1]) ++s;
        const std::span<const int32_t> taps = bwd_.segments[s].taps;
        const int64_t nt = static_cast<int64_t>(taps.size()), k = i - bwd_seg_item_[s];
        const int64_t tap = k % nt, blk = k / nt, grp = blk / nb, j = blk % nb;
        // This block's taps [tap, tap + count) that are within [b0, b1).
        const int64_t count = std::min(nt - tap, b1 - i);
        pack_backward_data_block(g, nr, taps.subspan(static_cast<std::size_t>(tap), static_cast<std::size_t>(count)),
                                 w, grp, j,
                                 packed + bwd_seg_offset_[s] + (grp * nb + j) * bwd_seg_block_floats_[s] +
                                     tap * ocg * nr);
        i += count;
      }
    });
  }

  // Forward with the weights from `packed` (pack_weights' panels) or, when it is null, from w in place (rows OC
  // floats apart): the same numbers in the same order, so bit-identical results.
  void run_forward(const float* x, const float* packed, const float* w, const float* b, float* y, float* zero) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr, mr = ctx_.k->mr;
    const int64_t nb = fwd_blocks_;
    std::fill_n(zero, zero_floats(), 0.0f);
    const uk::GemmParams params = gemm_params(ctx_.activation);
    const bool post = needs_post_activation(ctx_.activation);
    const int64_t x_image = g.ih * g.iw * g.ic, y_image = g.oh * g.ow * g.oc;
    const ItemOrder order = packed ? fwd_packed_order_ : fwd_inplace_order_;
    parallel_for(ctx_.threads, order.count(), [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const ItemOrder::Item item = order(it);
        const int64_t n = item.n, tile = item.tile, grp = item.grp, j = item.j;
        const int64_t nc = std::min(nr, ocg - j * nr);
        const int64_t col0 = grp * ocg + j * nr;
        const int64_t t0 = fwd_.tile_tap_begin[tile], t1 = fwd_.tile_tap_end[tile];
        const float* wp;
        std::size_t w_stride;
        if (packed) {
          wp = packed + (grp * nb + j) * fwd_panel_floats_ + t0 * icg * nr;
          w_stride = static_cast<std::size_t>(nr);
        } else {
          wp = w + col0 + t0 * icg * g.oc;
          w_stride = static_cast<std::size_t>(g.oc);
        }
        float* c_base = y + n * y_image + col0;
        const int64_t* c_off = fwd_.c_off.data() + tile * mr;
        ctx_.k->igemm(static_cast<std::size_t>(fwd_.tile_rows[tile]), static_cast<std::size_t>(nc),
                      static_cast<std::size_t>(icg), static_cast<std::size_t>(t1 - t0), x + n * x_image + grp * icg,
                      fwd_.a_off.data() + fwd_.tile_a_begin[tile] + t0 * mr, zero, wp, w_stride,
                      b ? b + col0 : nullptr, c_base, c_off, &params);
        if (post)
          for (int64_t r = 0; r < fwd_.tile_rows[tile]; ++r) activation_forward(ctx_.activation, c_base + c_off[r], nc);
      }
    });
  }

  // Backward data as a gather over packed blocks (`packed`: bwd_pack_floats_ of them).
  void run_backward_data(const float* dz, const float* packed, float* dx, const Buffers& buf) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr, mr = ctx_.k->mr;
    const int64_t nb = bwd_blocks_;
    std::fill_n(buf.zero, zero_floats(), 0.0f);
    float* dxb = fold_ ? buf.padded_dx : dx;
    const uk::GemmParams params = gemm_params(Activation::none);
    const int64_t dz_image = g.oh * g.ow * g.oc, dx_image = gb_.ih * gb_.iw * g.ic;
    const ItemOrder order = bwd_order_;
    parallel_for(ctx_.threads, order.count(), [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const ItemOrder::Item item = order(it);
        const int64_t n = item.n, tile = item.tile, grp = item.grp, j = item.j;
        const int64_t s = bwd_.tile_segment[tile];
        const int64_t t0 = bwd_.tile_tap_begin[tile], t1 = bwd_.tile_tap_end[tile];
        ctx_.k->igemm(static_cast<std::size_t>(bwd_.tile_rows[tile]),
                      static_cast<std::size_t>(std::min(nr, icg - j * nr)), static_cast<std::size_t>(ocg),
                      static_cast<std::size_t>(t1 - t0), dz + n * dz_image + grp * ocg,
                      bwd_.a_off.data() + bwd_.tile_a_begin[tile] + t0 * mr, buf.zero,
                      packed + bwd_seg_offset_[s] + (grp * nb + j) * bwd_seg_block_floats_[s] + t0 * ocg * nr,
                      static_cast<std::size_t>(nr), nullptr, dxb + n * dx_image + grp * icg + j * nr,
                      bwd_.c_off.data() + tile * mr, &params);
      }
    });
    if (fold_) fold_padded_gradient(g, buf.padded_dx, dx, ctx_.threads);
  }

  // Backward data for few input channels per group: per tile of output pixels, cols (MR, taps * IC/G) = dz rows .
  // w^T (a plain GEMM, the dz rows being consecutive), then each column (tap, c) is added into dx at the tap's
  // source cell, read from the forward table: padded cells of every mode land on the cell they copy, so no
  // padded grid is needed. Tiles of one image overlap in dx, so a thread owns whole (image, group) items.
  // packed: the scatter blocks (pack_backward).
  void backward_data_scatter(const float* dz, const float* packed, float* dx, float* cols) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr, mr = ctx_.k->mr;
    const int64_t G = g.groups, nb = scatter_blocks_, taps = g.kh * g.kw, ld = nb * nr, cols_n = taps * icg;
    const uk::GemmParams params = gemm_params(Activation::none);
    const int64_t tiles = fwd_.num_tiles(), x_image = g.ih * g.iw * g.ic, dz_image = g.oh * g.ow * g.oc;
    parallel_for(scatter_threads_, g.n * G, [&](int64_t i0, int64_t i1, int t) {
      float* col = cols + t * mr * ld;
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t n = it / G, grp = it % G;
        float* dx_n = dx + n * x_image + grp * icg;
        for (int64_t p = 0; p < g.ih * g.iw; ++p) std::fill_n(dx_n + p * g.ic, icg, 0.0f);
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t rows = fwd_.tile_rows[tile];
          const float* a = dz + n * dz_image + tile * mr * g.oc + grp * ocg;
          for (int64_t j = 0; j < nb; ++j)
            ctx_.k->gemm(static_cast<std::size_t>(rows), static_cast<std::size_t>(std::min(nr, cols_n - j * nr)),
                         static_cast<std::size_t>(ocg), a, static_cast<std::size_t>(g.oc),
                         packed + (grp * nb + j) * scatter_block_floats_, static_cast<std::size_t>(nr), nullptr,
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
  int64_t fwd_blocks_ = 0, fwd_panel_floats_ = 0, fwd_pack_floats_ = 0;
  ItemOrder fwd_packed_order_, fwd_inplace_order_, bwd_order_;
  int64_t bwd_blocks_ = 0, bwd_pack_floats_ = 0;
  std::vector<int64_t> bwd_seg_offset_, bwd_seg_block_floats_;
  // Backward data's packing items (segment, group, block, tap): segment s has [bwd_seg_item_[s], [s + 1]).
  std::vector<int64_t> bwd_seg_item_;
  int64_t bwd_pack_items_ = 0;
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
