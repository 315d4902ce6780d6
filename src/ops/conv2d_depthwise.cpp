// depthwise: groups == input channels (channel multiplier m = OC / IC >= 1). Each output channel o sees one input
// channel o / m, so there is no reduction over channels to make a GEMM of: the kernels run over the taps, vectorised
// over the channels (contiguous in NHWC). The kernel (KH, KW, 1, OC) is already tap-major, so forward needs no
// packing at all.
//   forward:          3x3 (multiplier 1): the interior of each output row through a row kernel with the weights and
//                     a sliding window of input columns in registers, the rest through the forward indirection
//                     table with one pixel per row (as every other shape);
//   backward data:    the stride-phase gather of conv2d_tables.hpp (one pixel per row), the phase's taps packed;
//   backward weights: threads over channel ranges, each summing all pixels (or, with few channels, per-thread
//                     partial sums over pixel chunks, added at the end).
#include <algorithm>

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_tables.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

// Pixels per kernel call: long enough to hide the call, short enough to balance the threads.
constexpr int64_t kChunk = 32;
// Output channels per unit of the channel split of backward weights (times the multiplier): a whole number of
// vectors of every ISA.
constexpr int64_t kChannelBlock = 32;
// Pixels per backward-weights call of the channel split: 128 x 32 channels of x (9 taps' rows) and dz stay in L1/L2.
constexpr int64_t kWgradChunk = 128;

class Depthwise final : public detail::Conv2dImpl {
 public:
  explicit Depthwise(const Conv2dContext& ctx)
      : ctx_(ctx),
        fwd_(forward_table(ctx.g, 1)),
        fold_(ctx.g.padding_mode != PaddingMode::zeros),
        gb_(fold_ ? padded_grid_geometry(ctx.g) : ctx.g),
        bwd_(backward_data_table(gb_, 1)) {
    const Conv2dGeometry& g = ctx_.g;
    mult_ = g.oc / g.ic;
    // The row kernel: 3x3, multiplier 1, no dilation; output columns [col_lo_, col_hi_] have all three input
    // columns inside the input (first column ox * sw - pad_left >= 0, last + 2 <= iw - 1).
    row_kernel_ = g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1 && mult_ == 1;
    col_lo_ = (g.pad_left + g.sw - 1) / g.sw;
    col_hi_ = g.iw - 3 + g.pad_left < 0 ? -1 : std::min(g.ow - 1, (g.iw - 3 + g.pad_left) / g.sw);
    // dx column ix reads dz columns ix + pad_left - 2 .. ix + pad_left.
    bwd_row_ = row_kernel_ && g.sh == 1 && g.sw == 1 && !fold_;
    bwd_col_lo_ = std::max<int64_t>(0, 2 - g.pad_left);
    bwd_col_hi_ = std::min(g.iw - 1, g.ow - 1 - g.pad_left);
    // Backward weights splits the channels when there are blocks enough for every thread, and otherwise the pixels
    // with per-thread partial sums, no more of them than fit in the input's size (the workspace bound).
    const int64_t channel_blocks = (g.oc + kChannelBlock * mult_ - 1) / (kChannelBlock * mult_);
    wgrad_channel_split_ = channel_blocks >= ctx_.threads;
    wgrad_threads_ = static_cast<int>(
        std::clamp<int64_t>(g.n * g.ih * g.iw * g.ic / std::max<int64_t>(1, g.kh * g.kw * g.oc), 1, ctx_.threads));
    for (std::size_t s = 0; s < bwd_.segments.size(); ++s) {
      const IndirectionTable::Segment& seg = bwd_.segments[s];
      bwd_seg_offset_.push_back(bwd_pack_floats_);
      bwd_pack_floats_ += static_cast<int64_t>(seg.taps.size()) * g.oc;
      for (int64_t p = 0; p < seg.num_tiles; p += kChunk)
        bwd_chunks_.push_back({static_cast<int64_t>(s), seg.first_tile + p, std::min(kChunk, seg.num_tiles - p)});
    }
  }

  std::size_t workspace_size() const override {
    WorkspaceCarver f(nullptr), b(nullptr), w(nullptr);
    carve_forward(f);
    carve_backward_data(b);
    carve_weights(w);
    return std::max({f.required(), b.required(), w.required()});
  }

  std::string kernels() const override {
    const std::string isa = to_string(ctx_.k->isa);
    return (row_kernel_ ? "f32_dwconv3x3_row__" + isa + " (row interiors), " : std::string()) + ctx_.k->dwconv_name +
           (mult_ == 1 ? "" : " (channel multiplier > 1: input lanes permuted to the output channels)");
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    float* zero = carve_forward(carver);
    std::fill_n(zero, g.ic, 0.0f);
    const uk::GemmParams params = gemm_params(ctx_.activation);
    const bool post = needs_post_activation(ctx_.activation);
    const int64_t pixels = g.oh * g.ow, chunks = (pixels + kChunk - 1) / kChunk, taps = g.kh * g.kw;
    const int64_t x_image = g.ih * g.iw * g.ic, y_image = pixels * g.oc;
    // Output pixels [p0, p0 + np) of image n through the indirection table (any shape, any padding).
    auto indirect = [&](int64_t n, int64_t p0, int64_t np) {
      if (np <= 0) return;
      float* y_n = y + n * y_image;
      ctx_.k->dwconv(static_cast<std::size_t>(np), static_cast<std::size_t>(g.oc), static_cast<std::size_t>(mult_),
                     static_cast<std::size_t>(taps), x + n * x_image, fwd_.a_off.data() + p0 * taps, zero, w, b, y_n,
                     fwd_.c_off.data() + p0, &params);
      if (post) activation_forward(ctx_.activation, y_n + p0 * g.oc, np * g.oc);
    };
    if (!row_kernel_) {
      parallel_for(ctx_.threads, g.n * chunks, [&](int64_t i0, int64_t i1, int) {
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t n = it / chunks, p0 = (it % chunks) * kChunk;
          indirect(n, p0, std::min(kChunk, pixels - p0));
        }
      });
      return;
    }
    // 3x3: threads over (image, output row); the interior of a row, where all 9 taps are inside the input, through
    // the row kernel, its ends (and the rows that touch the padding) through the table.
    parallel_for(ctx_.threads, g.n * g.oh, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t n = it / g.oh, oy = it % g.oh, iy = oy * g.sh - g.pad_top, p_row = oy * g.ow;
        if (iy < 0 || iy + 2 >= g.ih || col_hi_ < col_lo_) {
          indirect(n, p_row, g.ow);
          continue;
        }
        indirect(n, p_row, col_lo_);
        const float* x_n = x + n * x_image + (iy * g.iw + col_lo_ * g.sw - g.pad_left) * g.ic;
        const float* const rows[3] = {x_n, x_n + g.iw * g.ic, x_n + 2 * g.iw * g.ic};
        float* out = y + n * y_image + (p_row + col_lo_) * g.oc;
        const int64_t np = col_hi_ - col_lo_ + 1;
        ctx_.k->dwconv3x3_row(static_cast<std::size_t>(np), static_cast<std::size_t>(g.oc),
                              static_cast<std::size_t>(g.sw), rows, w, b, out, &params);
        if (post) activation_forward(ctx_.activation, out, np * g.oc);
        indirect(n, p_row + col_hi_ + 1, g.ow - 1 - col_hi_);
      }
    });
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const BwdBuffers buf = carve_backward_data(carver);
    // The taps of each stride phase, gathered into one [tap][OC] matrix per phase.
    const int64_t segs = static_cast<int64_t>(bwd_.segments.size());
    for (int64_t s = 0; s < segs; ++s) {
      const std::vector<int32_t>& taps = bwd_.segments[s].taps;
      for (std::size_t t = 0; t < taps.size(); ++t)
        std::copy_n(w + taps[t] * g.oc, g.oc, buf.packed + bwd_seg_offset_[s] + static_cast<int64_t>(t) * g.oc);
    }
    std::fill_n(buf.zero, g.oc, 0.0f);
    float* dxb = fold_ ? buf.padded_dx : dx;
    const uk::GemmParams params = gemm_params(Activation::none);
    const int64_t chunks = static_cast<int64_t>(bwd_chunks_.size()), dz_image = g.oh * g.ow * g.oc;
    const int64_t dx_image = gb_.ih * gb_.iw * g.ic;
    if (bwd_row_) {
      // Stride 1: dx is the 3x3 correlation of dz with the kernel turned by 180 degrees, so the forward row kernel
      // runs it on the interior (dx rows and columns whose 9 dz cells all exist); the rest through the table, whose
      // single phase lists the pixels in raster order with the taps in kernel order (buf.packed = w).
      for (int64_t a = 0; a < 9; ++a) std::copy_n(w + (8 - a) * g.oc, g.oc, buf.flipped + a * g.oc);
      auto indirect = [&](int64_t n, int64_t p0, int64_t np) {
        if (np <= 0) return;
        ctx_.k->dwconv(static_cast<std::size_t>(np), static_cast<std::size_t>(g.ic), 1, 9, dz + n * dz_image,
                       bwd_.a_off.data() + bwd_.tile_a_begin[p0], buf.zero, buf.packed, nullptr, dx + n * dx_image,
                       bwd_.c_off.data() + p0, &params);
      };
      parallel_for(ctx_.threads, g.n * g.ih, [&](int64_t i0, int64_t i1, int) {
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t n = it / g.ih, iy = it % g.ih, oy = iy + g.pad_top - 2, p_row = iy * g.iw;
          if (oy < 0 || oy + 2 >= g.oh || bwd_col_hi_ < bwd_col_lo_) {
            indirect(n, p_row, g.iw);
            continue;
          }
          indirect(n, p_row, bwd_col_lo_);
          const float* r0 = dz + n * dz_image + (oy * g.ow + bwd_col_lo_ + g.pad_left - 2) * g.oc;
          const float* const rows[3] = {r0, r0 + g.ow * g.oc, r0 + 2 * g.ow * g.oc};
          ctx_.k->dwconv3x3_row(static_cast<std::size_t>(bwd_col_hi_ - bwd_col_lo_ + 1),
                                static_cast<std::size_t>(g.ic), 1, rows, buf.flipped, nullptr,
                                dx + n * dx_image + (p_row + bwd_col_lo_) * g.ic, &params);
          indirect(n, p_row + bwd_col_hi_ + 1, g.iw - 1 - bwd_col_hi_);
        }
      });
      return;
    }
    parallel_for(ctx_.threads, g.n * chunks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const Chunk& ch = bwd_chunks_[it % chunks];
        const int64_t n = it / chunks;
        const std::size_t taps = bwd_.segments[ch.segment].taps.size();
        const int64_t* a_off = bwd_.a_off.data() + bwd_.tile_a_begin[ch.first];
        const float* wp = buf.packed + bwd_seg_offset_[ch.segment];
        if (mult_ == 1)
          ctx_.k->dwconv(static_cast<std::size_t>(ch.count), static_cast<std::size_t>(g.ic), 1, taps, dz + n * dz_image,
                         a_off, buf.zero, wp, nullptr, dxb + n * dx_image, bwd_.c_off.data() + ch.first, &params);
        else
          ctx_.k->dwconv_reduce(static_cast<std::size_t>(ch.count), static_cast<std::size_t>(g.ic),
                                static_cast<std::size_t>(mult_), taps, dz + n * dz_image, a_off, buf.zero, wp,
                                dxb + n * dx_image, bwd_.c_off.data() + ch.first);
      }
    });
    if (fold_) fold_padded_gradient(g, buf.padded_dx, dx, ctx_.threads);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const WBuffers buf = carve_weights(carver);
    const int64_t pixels = g.oh * g.ow, taps = g.kh * g.kw;
    const int64_t x_image = g.ih * g.iw * g.ic, dz_image = pixels * g.oc, dw_size = taps * g.oc;
    if (wgrad_channel_split_) {
      // Each thread owns a range of output channels (whole blocks of kChannelBlock * mult, so that its input
      // channels start at a whole channel) and sums every pixel of every image into its slice of one [tap][OC]
      // scratch laid out [range][tap][channel]: no partial sums to add, no atomics.
      const int64_t block = kChannelBlock * mult_, blocks = (g.oc + block - 1) / block;
      parallel_for(ctx_.threads, blocks, [&](int64_t b0, int64_t b1, int) {
        const int64_t c0 = b0 * block, c1 = std::min(g.oc, b1 * block), cb = c1 - c0;
        float* part = buf.partials + taps * c0;
        std::fill_n(part, taps * cb, 0.0f);
        // The bias gradient of the same channels, summed per output row while the row's dz is in cache (each row
        // summed on its own first, then added: shorter float chains than one running sum over the whole batch).
        float* bias_sum = buf.bias_partials + c0;
        float* row_sum = buf.bias_partials + g.oc + c0;
        if (db) std::fill_n(bias_sum, cb, 0.0f);
        auto add_bias_rows = [&](const float* dz_rows, int64_t np) {
          if (!db) return;
          std::fill_n(row_sum, cb, 0.0f);
          for (int64_t q = 0; q < np; ++q)
            for (int64_t c = 0; c < cb; ++c) row_sum[c] += dz_rows[q * g.oc + c];
          for (int64_t c = 0; c < cb; ++c) bias_sum[c] += row_sum[c];
        };
        // Output pixels [p0, p0 + np) of image n through the tables, in chunks: the kernel passes over a chunk once
        // per 8 taps, so the chunk's rows stay in cache.
        auto indirect = [&](int64_t n, int64_t p0, int64_t np) {
          for (int64_t q = p0; q < p0 + np; q += kWgradChunk)
            ctx_.k->dwconv_wgrad(static_cast<std::size_t>(std::min(kWgradChunk, p0 + np - q)),
                                 static_cast<std::size_t>(cb), static_cast<std::size_t>(mult_),
                                 static_cast<std::size_t>(taps), x + n * x_image + c0 / mult_,
                                 fwd_.a_off.data() + q * taps, buf.zero, dz + n * dz_image + c0,
                                 fwd_.c_off.data() + q, part);
        };
        for (int64_t n = 0; n < g.n; ++n) {
          if (!row_kernel_) {
            indirect(n, 0, pixels);
            for (int64_t oy = 0; oy < g.oh; ++oy) add_bias_rows(dz + n * dz_image + oy * g.ow * g.oc + c0, g.ow);
            continue;
          }
          // 3x3: the interior of each output row through the row kernel (as forward), the rest through the tables.
          for (int64_t oy = 0; oy < g.oh; ++oy) {
            const int64_t iy = oy * g.sh - g.pad_top, p_row = oy * g.ow;
            add_bias_rows(dz + n * dz_image + p_row * g.oc + c0, g.ow);
            if (iy < 0 || iy + 2 >= g.ih || col_hi_ < col_lo_) {
              indirect(n, p_row, g.ow);
              continue;
            }
            indirect(n, p_row, col_lo_);
            const float* x0 = x + n * x_image + (iy * g.iw + col_lo_ * g.sw - g.pad_left) * g.ic + c0;
            const float* const rows[3] = {x0, x0 + g.iw * g.ic, x0 + 2 * g.iw * g.ic};
            ctx_.k->dwconv3x3_row_wgrad(static_cast<std::size_t>(col_hi_ - col_lo_ + 1), static_cast<std::size_t>(cb),
                                        static_cast<std::size_t>(g.oc), static_cast<std::size_t>(g.sw), rows,
                                        dz + n * dz_image + (p_row + col_lo_) * g.oc + c0, part);
            indirect(n, p_row + col_hi_ + 1, g.ow - 1 - col_hi_);
          }
        }
        for (int64_t t = 0; t < taps; ++t) std::copy_n(part + t * cb, cb, dw + t * g.oc + c0);
        if (db) std::copy_n(bias_sum, cb, db + c0);
      });
      return;
    } else {
      // Few channels: each thread sums its slice of (image, pixel chunk) into its own partial dw (as many threads
      // as wgrad_threads_, which keeps the partials within the input's size); the partials are added at the end.
      const int64_t chunks = (pixels + kChunk - 1) / kChunk;
      const int used = parallel_for(wgrad_threads_, g.n * chunks, [&](int64_t i0, int64_t i1, int t) {
        float* part = buf.partials + t * dw_size;
        std::fill_n(part, dw_size, 0.0f);
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t n = it / chunks, p0 = (it % chunks) * kChunk, np = std::min(kChunk, pixels - p0);
          ctx_.k->dwconv_wgrad(static_cast<std::size_t>(np), static_cast<std::size_t>(g.oc),
                               static_cast<std::size_t>(mult_), static_cast<std::size_t>(taps), x + n * x_image,
                               fwd_.a_off.data() + p0 * taps, buf.zero, dz + n * dz_image, fwd_.c_off.data() + p0,
                               part);
        }
      });
      for (int64_t e = 0; e < dw_size; ++e) {
        float s = 0.0f;
        for (int t = 0; t < used; ++t) s += buf.partials[t * dw_size + e];
        dw[e] = s;
      }
    }
    if (db) bias_gradient(g.n * pixels, g.oc, dz, db, buf.bias_partials, ctx_.threads);
  }

 private:
  struct Chunk {
    int64_t segment, first, count;  // pixels [first, first + count) of the backward table, all in one phase
  };
  struct BwdBuffers {
    float* packed;
    float* zero;
    float* flipped;  // bwd_row_: the kernel turned by 180 degrees, [9][OC]
    float* padded_dx;
  };
  struct WBuffers {
    float* partials;
    float* bias_partials;
    float* zero;
  };
  float* carve_forward(WorkspaceCarver& ws) const { return ws.take_floats(ctx_.g.ic); }
  BwdBuffers carve_backward_data(WorkspaceCarver& ws) const {
    BwdBuffers b{};
    b.packed = ws.take_floats(bwd_pack_floats_);
    b.zero = ws.take_floats(ctx_.g.oc);
    b.flipped = bwd_row_ ? ws.take_floats(9 * ctx_.g.oc) : nullptr;
    b.padded_dx = fold_ ? ws.take_floats(gb_.n * gb_.ih * gb_.iw * gb_.ic) : nullptr;
    return b;
  }
  WBuffers carve_weights(WorkspaceCarver& ws) const {
    const Conv2dGeometry& g = ctx_.g;
    WBuffers b{};
    b.partials = ws.take_floats(int64_t{wgrad_channel_split_ ? 1 : wgrad_threads_} * g.kh * g.kw * g.oc);
    // Pixel split: one partial per thread; channel split: the sums and one row's sums, [2][OC].
    b.bias_partials = ws.take_floats(int64_t{wgrad_channel_split_ ? 2 : ctx_.threads} * g.oc);
    b.zero = ws.take_floats(g.ic);
    return b;
  }

  Conv2dContext ctx_;
  IndirectionTable fwd_;
  bool fold_;
  Conv2dGeometry gb_;
  IndirectionTable bwd_;
  int64_t mult_ = 1;
  bool row_kernel_ = false;           // forward: 3x3 rows through dwconv3x3_row (interior columns below)
  int64_t col_lo_ = 0, col_hi_ = -1;  // the output columns whose taps are all inside the input
  bool bwd_row_ = false;                      // backward data: stride 1, zero padding, through the row kernel
  int64_t bwd_col_lo_ = 0, bwd_col_hi_ = -1;  // the dx columns whose 3 dz columns all exist
  bool wgrad_channel_split_ = false;  // backward weights: threads over channel ranges (else over pixels)
  int wgrad_threads_ = 1;             // threads of the pixel split (each with a partial dw)
  std::vector<int64_t> bwd_seg_offset_;
  int64_t bwd_pack_floats_ = 0;
  std::vector<Chunk> bwd_chunks_;
};

}  // namespace

std::string depthwise_supports(const Conv2dGeometry& g) {
  if (g.groups != g.ic || g.groups == 1)
    return "needs groups == input channels > 1 (a depthwise convolution), got groups " + std::to_string(g.groups) +
           " for " + std::to_string(g.ic) + " input channels";
  return {};
}

std::unique_ptr<detail::Conv2dImpl> depthwise_create(const Conv2dContext& ctx) {
  return std::make_unique<Depthwise>(ctx);
}

}  // namespace convkit::ops
