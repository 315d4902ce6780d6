// kernel_rows: Conv2D with few input channels per group (image stems: 1 or 3 channels under a 5x5 or 7x7 kernel),
// where implicit_gemm's K loop runs IC/G floats per tap and its weight-gradient rows are the IC/G channels. Over a
// padded copy of the input (one group's channels, every padding mode through core::padded_source), the KW taps of
// one kernel row of an output pixel are KW * IC/G contiguous floats (dilation along the width 1), and so are the HWIO
// kernel's rows of that kernel row:
//   forward:          the indirect GEMM with KH "taps" of kc = KW * IC/G floats, the kernel read in place; with
//                     one group under zero padding, over x itself where copying the bands would cost more (kernel
//                     rows above or below the image read a zero row, the pixels whose kernel rows cross the left or
//                     right edge a small strip of those rows padded with zeros);
//   backward weights: the weight-gradient microkernel with rows = the KW * IC/G floats of a kernel row (instead of the
//                     IC/G channels of a tap), the reduction over the output pixels;
//   backward data:    cols (MR, KH * KW * IC/G) = dz rows . w^T (a plain GEMM), each kernel row's KW * IC/G
//                     contiguous columns added into a band of the padded dx, which is then cropped (and its padded
//                     cells folded back into the cells they copy).
// The padded copies are made in horizontal bands, one per thread at a time: the workspace stays within the input
// plus the packed weights (tests/ops/test_conv2d_workspace.cpp). With one group and zero padding, the weight
// gradient reads x in place: a pixel's kernel row that crosses the left or right border is reduced over its real
// part only (as the reference skips padded cells: a non-finite dz must not meet a padded zero).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/shape.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_pack.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

// Scratch floats backward data may take beyond the input before it hands over to implicit_gemm (part of the
// workspace bound's slack, tests/ops/test_conv2d_workspace.cpp).
constexpr int64_t kBwdSlackFloats = 2048;
// Register tiles of output pixels per pass of backward data's GEMM over the blocks of the transposed kernel (each
// block then serves them all while in L1: measured 12% faster than one tile on the stem).
constexpr int64_t kMaxTilesPerPass = 4;

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }


class KernelRows final : public detail::Conv2dImpl {
 public:
  explicit KernelRows(const Conv2dContext& ctx) : ctx_(ctx) {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr, T = ctx_.threads;
    // Floats of one band's padded copy (it stays in L2 while the band is processed), and output pixels per band of
    // the weight-gradient reduction (the x and dz rows of a band stay in cache across the items).
    const int64_t kBandFloats = std::max<int64_t>(1, g_kernel_rows_band_floats.load());
    const int64_t kWgradPixels = std::max<int64_t>(1, g_kernel_rows_wgrad_pixels.load());
    icg_ = g.ic_per_group();
    ocg_ = g.oc_per_group();
    hp_ = g.ih + g.pad_top + g.pad_bottom;
    wp_ = g.iw + g.pad_left + g.pad_right;
    kc_ = g.kw * icg_;
    rs_ = wp_ * icg_;
    const bool no_pad = g.pad_top == 0 && g.pad_bottom == 0 && g.pad_left == 0 && g.pad_right == 0;
    const int64_t images = g.n * g.groups;
    // The threads' scratch (band copies, partial sums) stays within the input's size; backward data's transposed
    // kernel comes on top (the workspace bound: input + packed weights).
    bwd_blocks_ = (g.kh * kc_ + nr - 1) / nr;
    bwd_block_floats_ = packed_block_floats(ocg_, nr);
    budget_ = g.n * g.ih * g.iw * g.ic;
    const auto band_rows = [&](int64_t out_rows) { return (out_rows - 1) * g.sh + (g.kh - 1) * g.dh + 1; };
    // Enough (image, group, band) items for the threads to share out evenly.
    const int64_t want_bands = T > 1 ? ceil_div(4 * T, images) : 1;
    // Backward data multiplies the output rows reaching two bands twice: fewer, larger bands.
    const int64_t want_bwd_bands = T > 1 ? ceil_div(2 * T, images) : 1;

    // Forward: bands of output rows, whose padded input rows are copied; or, with one group under zero padding,
    // x read in place (the band's border pixels, whose kernel rows cross the left or right edge, through a strip of
    // those rows copied with zeros) where the copy would cost more than 1/128 of the band's FMAs. Measured (ratio
    // to oneDNN, mb 1): MobileNet's 3x3 stride-2 stem over 224x224x3 0.84 -> 0.95 (a stride-2 band copies two
    // input rows per output row of only 27 FMAs a channel), 112x112 0.96 -> 1.01; Fashion-MNIST's 5x5 over 28x28
    // (1/300) 1.09 -> 0.90 in place: there the copy is cheap and its whole-row tiles beat the split into interior
    // and border tiles.
    {
      int64_t rows = std::max<int64_t>(1, (kBandFloats / rs_ - (g.kh - 1) * g.dh - 1) / g.sh + 1);
      rows = std::min({rows, std::max<int64_t>(1, g.oh / want_bands), g.oh});
      fwd_rows_ = rows;
      fwd_bands_ = ceil_div(g.oh, rows);
      const int64_t copy_floats = band_rows(rows) * rs_, band_fmas = rows * g.ow * g.kh * kc_ * ocg_;
      const int force = g_kernel_rows_forward_in_place.load();
      fwd_direct_ = g.groups == 1 && g.padding_mode == PaddingMode::zeros &&
                    (force >= 0 ? force == 1 : no_pad || 128 * copy_floats > band_fmas);
      if (fwd_direct_) {
        for (int64_t ox = 0; ox < g.ow; ++ox)
          if (ox * g.sw - g.pad_left < 0 || ox * g.sw - g.pad_left + g.kw > g.iw) fwd_border_ox_.push_back(ox);
        fwd_buf_floats_ = rows * static_cast<int64_t>(fwd_border_ox_.size()) * g.kh * kc_;
        fwd_zero_.assign(static_cast<std::size_t>(kc_), 0.0f);
        build_direct_tables();
      } else {
        fwd_buf_floats_ = band_rows(rows) * rs_;
        fwd_inner_of_ = {intern(band_table(rows)), intern(band_table(g.oh - (fwd_bands_ - 1) * rows))};
      }
      fwd_threads_ = static_cast<int>(std::clamp<int64_t>(budget_ / std::max<int64_t>(1, fwd_buf_floats_), 1, T));
      // An output far larger than the caches: each tile's stores miss (every line read first) and the tile waits
      // on them at its end. Each tile reads the next tile's output lines ahead instead. The 7x7/2 stem, 2
      // threads, in-process A/B (medians of 15 rounds): mb 32 (103 MB of output) 24.2 -> 20.9 ms and mb 8 5.95 ->
      // 5.26 in an hour where the machine's memory was slow, 19.3 -> 19.5 in a fast one; at mb 1 and 2 (3 and 6 MB)
      // 3% slower, and Fashion-MNIST conv1 at mb 128 (13 MB, tiles of 25 FMAs a column) 10% slower: not there.
      fwd_prefetch_ = g.n * g.oh * g.ow * g.oc * int64_t{sizeof(float)} > kStreamBytes;
    }

    // Backward data: bands of padded dx rows; each band gathers the output rows that reach it (the ones reaching
    // two bands are multiplied twice, only over the kernel rows each band needs).
    {
      const int64_t ld = bwd_blocks_ * nr;
      // Several tiles per pass where their results stay small beside the input (not on tiny inputs, where they
      // would take the threads' room).
      tpp_ = T * kMaxTilesPerPass * mr * ld * 4 <= budget_ ? kMaxTilesPerPass : 1;
      const int64_t tile = tpp_ * mr * ld;  // one pass's GEMM results
      // (A band size below one padded row, as the tests set, gives bands of one row.)
      // Bands at least 4x the rows two bands share (their output rows are multiplied twice).
      const int64_t min_rows = 4 * (g.kh - 1) * g.dh + g.sh;
      int64_t rows = kBandFloats < rs_ ? 1 : std::max<int64_t>(min_rows, kBandFloats / rs_);
      rows = std::min({rows, std::max<int64_t>(ceil_div(hp_, want_bwd_bands), min_rows), hp_});
      const int64_t fixed = g.padding_mode != PaddingMode::zeros ? images * (hp_ - g.ih) * g.iw * icg_ : 0;
      // Shrink the bands until one thread's buffers fit (a tiny input under a large padding).
      while (rows > 1 && fixed + rows * rs_ + tile > budget_ + kBwdSlackFloats) rows = (rows + 1) / 2;
      bwd_rows_ = rows;
      bwd_bands_ = ceil_div(hp_, rows);
      bwd_buf_floats_ = rows * rs_;
      bwd_threads_ = static_cast<int>(
          std::clamp<int64_t>((budget_ + kBwdSlackFloats - fixed) / (bwd_buf_floats_ + tile), 1,
                              std::min(T, images * bwd_bands_)));
      // Where even one thread's band and GEMM tile outgrow the input by more than a few kilobytes (a small input,
      // many channels: not this algorithm's ground), implicit_gemm runs backward data within the bound.
      if (fixed + bwd_buf_floats_ + tile > budget_ + kBwdSlackFloats) bwd_fallback_ = implicit_gemm_create(ctx_);
    }

    // Weight gradient: bands of output rows; one group under zero padding reads x in place.
    wg_in_place_ = g.groups == 1 && g.padding_mode == PaddingMode::zeros;
    {
      int64_t rows = std::clamp<int64_t>(ceil_div(kWgradPixels, g.ow), 1, g.oh);
      if (!wg_in_place_)
        while (rows > 1 && band_rows(rows) * rs_ > kBandFloats) --rows;
      wg_rows_ = rows;
      wg_bands_ = ceil_div(g.oh, rows);
      wg_buf_floats_ = wg_in_place_ ? 0 : band_rows(rows) * rs_;
      chunks_ = (kc_ + mr - 1) / mr;
      oblocks_ = (ocg_ + nr - 1) / nr;
      items_ = g.groups * g.kh * chunks_ * oblocks_;
      const int64_t dw_size = g.kh * kc_ * g.oc;
      const int64_t units = g.n * wg_bands_;
      // The threads split the units (each into its own partial dw) where the items are too few to share out, or
      // where x and dz are many times dw (each thread then reads its share of them once instead of all of them;
      // the rule of conv2d_wgrad.cpp). The 7x7/2 stem, 2 threads, in-process A/B: mb 32 31.5 -> 27.1 ms, mb 8 7.05
      // -> 5.94, mb 2 1.41 -> 1.37; mb 1 (23 bands, 12 against 11) 0.67 -> 0.70, hence the even share.
      const int64_t streamed = budget_ + g.n * g.oh * g.ow * g.oc;
      split_pixels_ = T > 1 && T * (dw_size + wg_buf_floats_) <= budget_ &&
                      ((items_ < 4 * T && units >= T) ||
                       (shares_evenly(units, T) && split_pays_for_streamed(streamed, dw_size, static_cast<int>(T))));
      wg_threads_ = static_cast<int>(
          std::clamp<int64_t>(budget_ / std::max<int64_t>(1, wg_buf_floats_ + (split_pixels_ ? dw_size : 0)), 1, T));
      build_wgrad_table();
    }
  }

  std::size_t workspace_size() const override {
    WorkspaceCarver f(nullptr), b(nullptr), w(nullptr);
    carve_forward(f);
    if (!bwd_fallback_) carve_backward_data(b);
    carve_weights(w);
    return std::max({f.required(), b.required(), w.required(), bwd_fallback_ ? bwd_fallback_->workspace_size() : 0});
  }

  std::string kernels() const override {
    return std::string(ctx_.k->igemm_name) + " (forward, kernel rows of " + std::to_string(kc_) + " floats" +
           (fwd_prefetch_ ? "; each tile prefetches the next tile's output lines" : "") + "), " +
           (bwd_fallback_ ? "implicit_gemm (backward data: " + bwd_fallback_->kernels() + ")"
                          : std::string(ctx_.k->gemm_name) + " + row adds (backward data)") +
           ", " + ctx_.k->wgrad_name + " (weights, rows of " + std::to_string(kc_) +
           (split_pixels_ ? "; the threads splitting the output pixels)" : ")");
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const FwdBuffers buf = carve_forward(carver);
    const int64_t x_image = g.ih * g.iw * g.ic, y_image = g.oh * g.ow * g.oc;
    parallel_for(fwd_threads_, g.n * g.groups * fwd_bands_, [&](int64_t i0, int64_t i1, int t) {
      float* band = buf.bands + t * fwd_buf_floats_;
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t bi = it % fwd_bands_, grp = (it / fwd_bands_) % g.groups, n = it / (fwd_bands_ * g.groups);
        const int64_t oy0 = bi * fwd_rows_, oy1 = std::min(g.oh, oy0 + fwd_rows_);
        float* y_band = y + n * y_image + oy0 * g.ow * g.oc;
        if (fwd_direct_) {
          // The table's offsets count from the band's first input row inside the image.
          const int64_t base_row = std::clamp<int64_t>(oy0 * g.sh - g.pad_top, 0, g.ih);
          run_forward_tiles(fwd_tables_[static_cast<std::size_t>(fwd_inner_of_[bi])],
                            x + n * x_image + base_row * g.iw * g.ic, fwd_zero_.data(), 0, w, b, y_band);
          if (!fwd_border_ox_.empty()) {
            fill_border_strip(x + n * x_image, oy0, oy1, band);
            run_forward_tiles(fwd_tables_[static_cast<std::size_t>(fwd_edge_of_[bi])], band, band, 0, w, b, y_band);
          }
          continue;
        }
        copy_band(x, n, grp, oy0 * g.sh, (oy1 - 1) * g.sh + (g.kh - 1) * g.dh + 1, band);
        run_forward_tiles(fwd_tables_[static_cast<std::size_t>(fwd_inner_of_[bi + 1 < fwd_bands_ ? 0 : 1])], band,
                          band, grp, w, b, y_band);
      }
    });
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    if (bwd_fallback_) return bwd_fallback_->backward_data(dz, w, dx, ws);
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const BwdBuffers buf = carve_backward_data(carver);
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr, G = g.groups, kh = g.kh, nb = bwd_blocks_;
    const int64_t cols = kh * kc_, ld = nb * nr, x_image = g.ih * g.iw * g.ic, dz_image = g.oh * g.ow * g.oc;
    const int64_t pads_h = hp_ - g.ih;
    const bool fold_rows = g.padding_mode != PaddingMode::zeros && pads_h > 0;
    parallel_for(ctx_.threads, G * nb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i)
        pack_scatter_block(g, nr, w, i / nb, i % nb, buf.packed + i * bwd_block_floats_);
    });
    const uk::GemmParams params = gemm_params(Activation::none);
    parallel_for(bwd_threads_, g.n * G * bwd_bands_, [&](int64_t i0, int64_t i1, int t) {
      float* band = buf.bands + t * bwd_buf_floats_;
      float* col = buf.cols + t * tpp_ * mr * ld;
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t bi = it % bwd_bands_, grp = (it / bwd_bands_) % G, n = it / (bwd_bands_ * G);
        const int64_t r0 = bi * bwd_rows_, r1 = std::min(hp_, r0 + bwd_rows_);
        std::fill_n(band, (r1 - r0) * rs_, 0.0f);
        // The output rows with a kernel row in [r0, r1).
        const int64_t oy_lo = std::max<int64_t>(0, ceil_div(r0 - (kh - 1) * g.dh, g.sh));
        const int64_t oy_hi = std::min(g.oh, floor_div(r1 - 1, g.sh) + 1);
        const float* dz_n = dz + n * dz_image + grp * ocg_;
        for (int64_t p0 = oy_lo * g.ow, p_end = std::max(oy_lo, oy_hi) * g.ow; p0 < p_end; p0 += tpp_ * mr) {
          const int64_t rows = std::min(tpp_ * mr, p_end - p0);
          const int64_t oy_a = p0 / g.ow, oy_b = (p0 + rows - 1) / g.ow;
          const int64_t ky_lo = std::max<int64_t>(0, ceil_div(r0 - oy_b * g.sh, g.dh));
          const int64_t ky_hi = std::min(kh - 1, floor_div(r1 - 1 - oy_a * g.sh, g.dh));
          if (ky_lo > ky_hi) continue;
          // Only the column blocks of the kernel rows this band needs.
          for (int64_t j = ky_lo * kc_ / nr, j1 = ((ky_hi + 1) * kc_ + nr - 1) / nr; j < j1; ++j)
            for (int64_t t0 = 0; t0 < rows; t0 += mr)
              ctx_.k->gemm(static_cast<std::size_t>(std::min(mr, rows - t0)),
                           static_cast<std::size_t>(std::min(nr, cols - j * nr)), static_cast<std::size_t>(ocg_),
                           dz_n + (p0 + t0) * g.oc, static_cast<std::size_t>(g.oc),
                           buf.packed + (grp * nb + j) * bwd_block_floats_, static_cast<std::size_t>(nr), nullptr,
                           col + t0 * ld + j * nr, static_cast<std::size_t>(ld), &params);
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t p = p0 + r, oy = p / g.ow, ox = p % g.ow;
            for (int64_t ky = ky_lo; ky <= ky_hi; ++ky) {
              const int64_t py = oy * g.sh + ky * g.dh;
              if (py < r0 || py >= r1) continue;
              float* d = band + (py - r0) * rs_ + ox * g.sw * icg_;
              const float* s = col + r * ld + ky * kc_;
              for (int64_t k = 0; k < kc_; ++k) d[k] += s[k];
            }
          }
        }
        // Crop: real rows into dx (their padded columns folded in), padded rows of the other modes kept aside.
        for (int64_t py = r0; py < r1; ++py) {
          const int64_t iy = py - g.pad_top;
          const float* src = band + (py - r0) * rs_;
          if (iy >= 0 && iy < g.ih)
            fold_row(src, dx + n * x_image + iy * g.iw * g.ic + grp * icg_, g.ic);
          else if (fold_rows)
            fold_row(src, buf.pad_rows + ((n * G + grp) * pads_h + (iy < 0 ? py : py - g.ih)) * g.iw * icg_, icg_);
        }
      }
    });
    if (fold_rows) {
      // The padded rows of reflect / replicate / circular land on real rows, which other bands own: after them.
      parallel_for(ctx_.threads, g.n * G, [&](int64_t i0, int64_t i1, int) {
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t n = it / G, grp = it % G;
          for (int64_t q = 0; q < pads_h; ++q) {
            const int64_t iy = q < g.pad_top ? q - g.pad_top : g.ih + (q - g.pad_top);
            const int64_t sy = core::padded_source(iy, g.ih, g.padding_mode);
            if (sy < 0) continue;
            const float* s = buf.pad_rows + ((n * G + grp) * pads_h + q) * g.iw * icg_;
            float* d = dx + n * x_image + sy * g.iw * g.ic + grp * icg_;
            for (int64_t ix = 0; ix < g.iw; ++ix)
              for (int64_t c = 0; c < icg_; ++c) d[ix * g.ic + c] += s[ix * icg_ + c];
          }
        }
      });
    }
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const WgBuffers buf = carve_weights(carver);
    const int64_t dw_size = g.kh * kc_ * g.oc, per_group = items_ / g.groups, units = g.n * wg_bands_;
    // The bias gradient rides along (as in WgradPlan::run): each slice t adds its share of the dz rows into its own
    // partial sums right after its items have read them (the rows of its bands, or slice t of all rows).
    float* const bias = db ? buf.bias_partials : nullptr;
    const auto bias_of = [&](int t) {  // slice t's partial sums, zeroed
      if (bias) std::fill_n(bias + int64_t{t} * g.oc, g.oc, 0.0f);
      return bias ? bias + int64_t{t} * g.oc : nullptr;
    };
    // Runs the items [i0, i1) over the bands [u0, u1) (u = image * bands + band) into dwp (zeroed by the caller);
    // after each band, adds its dz rows that lie in [r0, r1) into bias_t (when not null).
    const auto run = [&](int64_t i0, int64_t i1, int64_t u0, int64_t u1, float* band, float* dwp, float* bias_t,
                         int64_t r0, int64_t r1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t n = u / wg_bands_, bi = u % wg_bands_;
        for (int64_t grp = i0 / per_group; grp * per_group < i1; ++grp) {
          const float* base;
          if (wg_in_place_) {
            base = x + n * g.ih * g.iw * g.ic;
          } else {
            const int64_t oy0 = bi * wg_rows_, oy1 = std::min(g.oh, oy0 + wg_rows_);
            copy_band(x, n, grp, oy0 * g.sh, (oy1 - 1) * g.sh + (g.kh - 1) * g.dh + 1, band);
            base = band;
          }
          for (int64_t it = std::max(i0, grp * per_group); it < std::min(i1, (grp + 1) * per_group); ++it)
            run_item(it, bi, base, dz + n * g.oh * g.ow * g.oc, dwp);
        }
        if (bias_t) {
          const int64_t oy0 = bi * wg_rows_, oy1 = std::min(g.oh, oy0 + wg_rows_);
          add_bias_rows(dz, std::max(r0, (n * g.oh + oy0) * g.ow), std::min(r1, (n * g.oh + oy1) * g.ow), g.oc,
                        bias_t);
        }
      }
    };
    const int64_t rows = g.n * g.oh * g.ow;
    int slices = 0;
    if (!split_pixels_) {
      slices = parallel_for(wg_threads_, items_, [&](int64_t i0, int64_t i1, int t) {
        const int64_t nt = std::min<int64_t>(wg_threads_, items_);
        for (int64_t it = i0; it < i1; ++it) zero_item(it, dw);
        run(i0, i1, 0, units, buf.bands + t * wg_buf_floats_, dw, bias_of(t), rows * t / nt, rows * (t + 1) / nt);
      });
    } else {
      slices = parallel_for(wg_threads_, units, [&](int64_t u0, int64_t u1, int t) {
        float* part = buf.partials + t * dw_size;
        std::fill_n(part, dw_size, 0.0f);
        run(0, items_, u0, u1, buf.bands + t * wg_buf_floats_, part, bias_of(t), 0, rows);
      });
      parallel_for(ctx_.threads, dw_size, [&](int64_t e0, int64_t e1, int) {
        for (int64_t e = e0; e < e1; ++e) {
          float s = 0.0f;
          for (int t = 0; t < slices; ++t) s += buf.partials[t * dw_size + e];
          dw[e] = s;
        }
      });
    }
    if (db) sum_bias_partials(bias, slices, g.oc, db);
  }

 private:
  // Padded rows [r0, r1) of image n, group grp, into dst (rows rs_ floats apart, IC/G floats per pixel).
  void copy_band(const float* x, int64_t n, int64_t grp, int64_t r0, int64_t r1, float* dst) const {
    const Conv2dGeometry& g = ctx_.g;
    const float* xn = x + n * g.ih * g.iw * g.ic + grp * icg_;
    for (int64_t py = r0; py < r1; ++py) {
      float* d = dst + (py - r0) * rs_;
      const int64_t sy = core::padded_source(py - g.pad_top, g.ih, g.padding_mode);
      if (sy < 0) {
        std::fill_n(d, rs_, 0.0f);
        continue;
      }
      const float* s = xn + sy * g.iw * g.ic;
      const auto cell = [&](int64_t px) {
        const int64_t sx = core::padded_source(px - g.pad_left, g.iw, g.padding_mode);
        if (sx < 0)
          std::fill_n(d + px * icg_, icg_, 0.0f);
        else
          std::copy_n(s + sx * g.ic, icg_, d + px * icg_);
      };
      for (int64_t px = 0; px < g.pad_left; ++px) cell(px);
      if (g.groups == 1)
        std::memcpy(d + g.pad_left * icg_, s, static_cast<std::size_t>(g.iw * icg_) * sizeof(float));
      else
        for (int64_t ix = 0; ix < g.iw; ++ix) std::copy_n(s + ix * g.ic, icg_, d + (g.pad_left + ix) * icg_);
      for (int64_t px = g.pad_left + g.iw; px < wp_; ++px) cell(px);
    }
  }

  // One padded row (wp_ pixels of IC/G floats) into a row of iw pixels `stride` floats apart: the real cells
  // copied, the padded cells added into the cells they copy.
  void fold_row(const float* src, float* dst, int64_t stride) const {
    const Conv2dGeometry& g = ctx_.g;
    if (stride == icg_) {
      std::memcpy(dst, src + g.pad_left * icg_, static_cast<std::size_t>(g.iw * icg_) * sizeof(float));
    } else {
      for (int64_t ix = 0; ix < g.iw; ++ix) std::copy_n(src + (g.pad_left + ix) * icg_, icg_, dst + ix * stride);
    }
    if (g.padding_mode == PaddingMode::zeros) return;
    for (int64_t px = 0; px < wp_; ++px) {
      if (px == g.pad_left) px += g.iw;
      if (px >= wp_) break;
      const int64_t sx = core::padded_source(px - g.pad_left, g.iw, g.padding_mode);
      if (sx < 0) continue;
      for (int64_t c = 0; c < icg_; ++c) dst[sx * stride + c] += src[px * icg_ + c];
    }
  }

  // The weight-gradient table: per (band, kernel row), segments of output pixels whose kernel row is real over the
  // same floats [lo, hi) of the row: the interior pixels (the whole row), then each border column on its own.
  struct Segment {
    int64_t lo, hi, begin, end;
  };
  void build_wgrad_table() {
    const Conv2dGeometry& g = ctx_.g;
    const bool zeros = g.padding_mode == PaddingMode::zeros;
    seg_begin_.push_back(0);
    for (int64_t bi = 0; bi < wg_bands_; ++bi) {
      const int64_t oy0 = bi * wg_rows_, oy1 = std::min(g.oh, oy0 + wg_rows_), r0 = oy0 * g.sh;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        // Output rows whose kernel row ky is a real input row (every row is, in the copies of the other modes).
        int64_t ya = oy0, yb = oy1;
        if (zeros) {
          ya = std::max(ya, ceil_div(g.pad_top - ky * g.dh, g.sh));
          yb = std::min(yb, floor_div(g.pad_top + g.ih - 1 - ky * g.dh, g.sh) + 1);
        }
        const auto add = [&](int64_t lo, int64_t hi, int64_t ox_a, int64_t ox_b) {
          if (lo >= hi || ox_a >= ox_b || ya >= yb) return;
          Segment s{lo, hi, static_cast<int64_t>(x_off_.size()), 0};
          for (int64_t oy = ya; oy < yb; ++oy)
            for (int64_t ox = ox_a; ox < ox_b; ++ox) {
              const int64_t py = oy * g.sh + ky * g.dh, px = ox * g.sw;
              x_off_.push_back(wg_in_place_ ? ((py - g.pad_top) * g.iw + (px - g.pad_left)) * g.ic
                                            : (py - r0) * rs_ + px * icg_);
              dz_off_.push_back((oy * g.ow + ox) * g.oc);
            }
          s.end = static_cast<int64_t>(x_off_.size());
          segs_.push_back(s);
        };
        if (!zeros) {
          add(0, kc_, 0, g.ow);
        } else {
          // Interior: the row [ox * sw, ox * sw + KW) inside [pad_left, pad_left + iw).
          const int64_t xa = std::min(g.ow, std::max<int64_t>(0, ceil_div(g.pad_left, g.sw)));
          const int64_t xb = std::max(xa, std::min(g.ow, floor_div(g.pad_left + g.iw - g.kw, g.sw) + 1));
          add(0, kc_, xa, xb);
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            if (ox == xa) ox = xb;
            if (ox >= g.ow) break;
            const int64_t px = ox * g.sw;
            const int64_t lo = std::clamp<int64_t>(g.pad_left - px, 0, g.kw) * icg_;
            const int64_t hi = std::clamp<int64_t>(g.pad_left + g.iw - px, 0, g.kw) * icg_;
            add(lo, hi, ox, ox + 1);
          }
        }
        seg_begin_.push_back(static_cast<int64_t>(segs_.size()));
      }
    }
  }

  // dw's tile of item it = (group, kernel row, row chunk, output block) set to zero.
  void zero_item(int64_t it, float* dw) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr;
    const int64_t ob = it % oblocks_, ch = (it / oblocks_) % chunks_, ky = (it / (oblocks_ * chunks_)) % g.kh;
    const int64_t grp = it / (oblocks_ * chunks_ * g.kh);
    const int64_t c0 = ch * mr, c1 = std::min(kc_, c0 + mr), o0 = ob * nr, nc = std::min(nr, ocg_ - o0);
    for (int64_t r = c0; r < c1; ++r) std::fill_n(dw + (ky * kc_ + r) * g.oc + grp * ocg_ + o0, nc, 0.0f);
  }

  // Accumulates item it over band bi into dw; base: the band's padded copy (or x's image, read in place), dz_n:
  // dz's image.
  void run_item(int64_t it, int64_t bi, const float* base, const float* dz_n, float* dw) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr;
    const int64_t ob = it % oblocks_, ch = (it / oblocks_) % chunks_, ky = (it / (oblocks_ * chunks_)) % g.kh;
    const int64_t grp = it / (oblocks_ * chunks_ * g.kh);
    const int64_t c0 = ch * mr, c1 = std::min(kc_, c0 + mr), o0 = ob * nr, nc = std::min(nr, ocg_ - o0);
    const int64_t sb = seg_begin_[bi * g.kh + ky], se = seg_begin_[bi * g.kh + ky + 1];
    for (int64_t si = sb; si < se; ++si) {
      const Segment& s = segs_[si];
      const int64_t a = std::max(s.lo, c0), e = std::min(s.hi, c1);
      if (a >= e) continue;
      ctx_.k->wgrad(static_cast<std::size_t>(e - a), static_cast<std::size_t>(nc),
                    static_cast<std::size_t>(s.end - s.begin), base + a, x_off_.data() + s.begin,
                    dz_n + grp * ocg_ + o0, dz_off_.data() + s.begin, dw + (ky * kc_ + a) * g.oc + grp * ocg_ + o0,
                    static_cast<std::size_t>(g.oc), 1);
    }
  }

  // Forward's tiles over a band: per tile of MR pixels, the offset of kernel row ky of pixel r (a_off[ky * MR + r];
  // rows past the tile's repeat its last; -1: a row outside the image, read as zeros), and the pixel's offset in y
  // from the band's first row. Bands alike share one table (fwd_tables_, interned).
  struct ForwardTable {
    std::vector<int32_t> rows;
    std::vector<int64_t> a_off, c_off;
    bool operator==(const ForwardTable&) const = default;
  };
  // The tiles of one table over one band: A rows at a_base + a_off (zero: the zero row of negative offsets), the
  // output at y_band + c_off, every block of group grp's output channels.
  void run_forward_tiles(const ForwardTable& tab, const float* a_base, const float* zero, int64_t grp, const float* w,
                         const float* b, float* y_band) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr, nb = (ocg_ + nr - 1) / nr;
    const uk::GemmParams params = gemm_params(ctx_.activation);
    const bool post = needs_post_activation(ctx_.activation);
    const int force = g_kernel_rows_forward_prefetch.load(std::memory_order_relaxed);
    const bool prefetch = force >= 0 ? force == 1 : fwd_prefetch_;
    const int64_t tiles = static_cast<int64_t>(tab.rows.size());
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t rows = tab.rows[tile];
      const int64_t* a_off = tab.a_off.data() + tile * g.kh * mr;
      const int64_t* c_off = tab.c_off.data() + tile * mr;
      if (prefetch && tile + 1 < tiles) prefetch_output(y_band + grp * ocg_, c_off + mr, tab.rows[tile + 1]);
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t col0 = grp * ocg_ + j * nr, nc = std::min(nr, ocg_ - j * nr);
        float* c_base = y_band + col0;
        // Rows (ky, kx, c) of the HWIO kernel, OC floats apart: kernel row ky is rows [ky * kc, ky * kc + kc).
        ctx_.k->igemm(static_cast<std::size_t>(rows), static_cast<std::size_t>(nc), static_cast<std::size_t>(kc_),
                      static_cast<std::size_t>(g.kh), a_base, a_off, zero, w + col0, static_cast<std::size_t>(g.oc),
                      b ? b + col0 : nullptr, c_base, c_off, &params);
        if (post)
          for (int64_t r = 0; r < rows; ++r) activation_forward(ctx_.activation, c_base + c_off[r], nc);
      }
    }
  }

  // The lines of `rows` output pixels (ocg_ floats each, at y + c_off[r]), read into L1 ahead of the tile that
  // writes them: see fwd_prefetch_. (always_inline: GCC drops calls to a function that only prefetches.)
  [[gnu::always_inline]] inline void prefetch_output(const float* y, const int64_t* c_off, int64_t rows) const {
    for (int64_t r = 0; r < rows; ++r) {
      const auto first = reinterpret_cast<std::uintptr_t>(y + c_off[r]) & ~std::uintptr_t{63};
      const auto end = reinterpret_cast<std::uintptr_t>(y + c_off[r] + ocg_);
      for (std::uintptr_t line = first; line < end; line += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(line), 1, 3);
    }
  }

  // The kernel rows of the border pixels of output rows [oy0, oy1) of image x_n (one group, zero padding): pixel
  // (oy, fwd_border_ox_[i]) is pb = (oy - oy0) * borders + i, its kernel row ky the kc_ floats at (pb * KH + ky) *
  // kc_, cells outside the image 0.
  void fill_border_strip(const float* x_n, int64_t oy0, int64_t oy1, float* strip) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t borders = static_cast<int64_t>(fwd_border_ox_.size());
    for (int64_t oy = oy0; oy < oy1; ++oy)
      for (int64_t i = 0; i < borders; ++i) {
        const int64_t ox = fwd_border_ox_[static_cast<std::size_t>(i)], pb = (oy - oy0) * borders + i;
        // The kernel row's floats [lo, hi) are inside the image (columns ix0 + kx, kx < KW, IC floats each).
        const int64_t ix0 = ox * g.sw - g.pad_left;
        const int64_t lo = std::clamp<int64_t>(-ix0, 0, g.kw) * g.ic;
        const int64_t hi = std::clamp<int64_t>(g.iw - ix0, 0, g.kw) * g.ic;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          float* d = strip + (pb * g.kh + ky) * kc_;
          const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
          if (iy < 0 || iy >= g.ih) {
            std::fill_n(d, kc_, 0.0f);
            continue;
          }
          const float* row = x_n + iy * g.iw * g.ic;  // the kernel row's float k is row[ix0 * IC + k]
          for (int64_t k = 0; k < kc_; ++k) d[k] = k >= lo && k < hi ? row[ix0 * g.ic + k] : 0.0f;
        }
      }
  }

  struct FwdBuffers {
    float* bands;
  };
  FwdBuffers carve_forward(WorkspaceCarver& ws) const {
    FwdBuffers b{};
    b.bands = ws.take_floats(fwd_threads_ * fwd_buf_floats_);
    return b;
  }

  int32_t intern(ForwardTable t) {
    for (std::size_t i = 0; i < fwd_tables_.size(); ++i)
      if (fwd_tables_[i] == t) return static_cast<int32_t>(i);
    fwd_tables_.push_back(std::move(t));
    return static_cast<int32_t>(fwd_tables_.size() - 1);
  }
  // The tiles of `pixels` ((oy, ox) pairs of a band from output row oy0), off(pixel index, oy, ox, ky) the A offset.
  template <typename Off>
  ForwardTable tiles_of(const std::vector<std::pair<int64_t, int64_t>>& pixels, int64_t oy0, Off off) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, count = static_cast<int64_t>(pixels.size());
    ForwardTable t;
    for (int64_t p0 = 0; p0 < count; p0 += mr) {
      const int64_t rows = std::min(mr, count - p0);
      t.rows.push_back(static_cast<int32_t>(rows));
      const std::size_t a0 = t.a_off.size();
      t.a_off.resize(a0 + static_cast<std::size_t>(g.kh * mr));
      for (int64_t r = 0; r < mr; ++r) {
        const int64_t p = p0 + std::min(r, rows - 1);
        const auto [oy, ox] = pixels[static_cast<std::size_t>(p)];
        for (int64_t ky = 0; ky < g.kh; ++ky) t.a_off[a0 + static_cast<std::size_t>(ky * mr + r)] = off(p, oy, ox, ky);
        t.c_off.push_back(((oy - oy0) * g.ow + ox) * g.oc);
      }
    }
    return t;
  }
  // A band of `out_rows` output rows over its padded copy (rows rs_ floats apart).
  ForwardTable band_table(int64_t out_rows) const {
    const Conv2dGeometry& g = ctx_.g;
    std::vector<std::pair<int64_t, int64_t>> pixels;
    for (int64_t oy = 0; oy < out_rows; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) pixels.emplace_back(oy, ox);
    return tiles_of(pixels, 0, [&](int64_t, int64_t oy, int64_t ox, int64_t ky) {
      return (oy * g.sh + ky * g.dh) * rs_ + ox * g.sw * icg_;
    });
  }
  // x read in place: per band, the interior pixels' table (offsets from the band's first input row inside the
  // image) and the border pixels' table (offsets into the strip of fill_border_strip).
  void build_direct_tables() {
    const Conv2dGeometry& g = ctx_.g;
    std::vector<bool> border(static_cast<std::size_t>(g.ow), false);
    for (int64_t ox : fwd_border_ox_) border[static_cast<std::size_t>(ox)] = true;
    for (int64_t bi = 0; bi < fwd_bands_; ++bi) {
      const int64_t oy0 = bi * fwd_rows_, oy1 = std::min(g.oh, oy0 + fwd_rows_);
      const int64_t base_row = std::clamp<int64_t>(oy0 * g.sh - g.pad_top, 0, g.ih);
      std::vector<std::pair<int64_t, int64_t>> inner, edge;
      for (int64_t oy = oy0; oy < oy1; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox)
          (border[static_cast<std::size_t>(ox)] ? edge : inner).emplace_back(oy, ox);
      fwd_inner_of_.push_back(intern(tiles_of(inner, oy0, [&](int64_t, int64_t oy, int64_t ox, int64_t ky) {
        const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
        return iy < 0 || iy >= g.ih ? int64_t{-1} : ((iy - base_row) * g.iw + ox * g.sw - g.pad_left) * g.ic;
      })));
      fwd_edge_of_.push_back(intern(tiles_of(edge, oy0, [&](int64_t p, int64_t, int64_t, int64_t ky) {
        return (p * g.kh + ky) * kc_;
      })));
    }
  }
  struct BwdBuffers {
    float* packed;
    float* bands;
    float* cols;
    float* pad_rows;
  };
  BwdBuffers carve_backward_data(WorkspaceCarver& ws) const {
    const Conv2dGeometry& g = ctx_.g;
    BwdBuffers b{};
    b.packed = ws.take_floats(g.groups * bwd_blocks_ * bwd_block_floats_);
    b.bands = ws.take_floats(bwd_threads_ * bwd_buf_floats_);
    b.cols = ws.take_floats(int64_t{bwd_threads_} * tpp_ * ctx_.k->mr * bwd_blocks_ * ctx_.k->nr);
    b.pad_rows = g.padding_mode != PaddingMode::zeros
                     ? ws.take_floats(g.n * g.groups * (hp_ - g.ih) * g.iw * icg_)
                     : nullptr;
    return b;
  }
  struct WgBuffers {
    float* bands;
    float* partials;
    float* bias_partials;
  };
  WgBuffers carve_weights(WorkspaceCarver& ws) const {
    const Conv2dGeometry& g = ctx_.g;
    WgBuffers b{};
    b.bands = ws.take_floats(wg_threads_ * wg_buf_floats_);
    b.partials = split_pixels_ ? ws.take_floats(wg_threads_ * g.kh * kc_ * g.oc) : nullptr;
    b.bias_partials = ws.take_floats(int64_t{ctx_.threads} * g.oc);
    return b;
  }

  Conv2dContext ctx_;
  int64_t icg_ = 0, ocg_ = 0, hp_ = 0, wp_ = 0, kc_ = 0, rs_ = 0, budget_ = 0;
  // Forward.
  bool fwd_direct_ = false;  // one group, zero padding: x read in place
  bool fwd_prefetch_ = false;  // each tile prefetches the next tile's output lines (g_kernel_rows_forward_prefetch)
  int64_t fwd_rows_ = 1, fwd_bands_ = 1, fwd_buf_floats_ = 0;
  int fwd_threads_ = 1;
  std::vector<ForwardTable> fwd_tables_;
  // Direct: per band, its interior and border tables. Copied bands: the tables of a full band and of the last.
  std::vector<int32_t> fwd_inner_of_, fwd_edge_of_;
  std::vector<int64_t> fwd_border_ox_;  // direct: the output columns whose kernel rows cross the left or right border
  std::vector<float> fwd_zero_;         // direct: the zero row (kc floats) of the rows above and below the image
  // Backward data.
  int64_t bwd_blocks_ = 0, bwd_block_floats_ = 0, bwd_rows_ = 1, bwd_bands_ = 1, bwd_buf_floats_ = 0;
  int64_t tpp_ = 1;  // register tiles per pass
  int bwd_threads_ = 1;
  std::unique_ptr<detail::Conv2dImpl> bwd_fallback_;  // implicit_gemm, where this one's scratch would not fit
  // Weight gradient.
  bool wg_in_place_ = false, split_pixels_ = false;
  int64_t wg_rows_ = 1, wg_bands_ = 1, wg_buf_floats_ = 0, chunks_ = 1, oblocks_ = 1, items_ = 0;
  int wg_threads_ = 1;
  std::vector<Segment> segs_;
  std::vector<int64_t> seg_begin_, x_off_, dz_off_;
};

}  // namespace

std::string kernel_rows_supports(const Conv2dGeometry& g) {
  if (g.dw != 1)
    return "needs dilation 1 along the width (a kernel row is then KW * IC/G contiguous floats), got " +
           std::to_string(g.dw);
  // The weight-gradient table holds two offsets per output pixel and kernel row.
  const double entries = double(g.oh) * double(g.ow) * double(g.kh) * 2.0;
  if (entries * 8.0 > 4e9)
    return "its tables would take " + std::to_string(int64_t(entries * 8.0 / 1e9)) +
           " GB (more than 4 GB) for this image and kernel size";
  return {};
}

std::string kernel_rows_pays(const Conv2dGeometry& g, Conv2dWeights) {
  // Measured against implicit_gemm (AVX-512, one thread, the three directions, a busy 2-core machine): with one
  // group, faster in all three up to 8 input channels with kernels 3 to 7 wide (stem 7x7 s2: forward 1.6x, backward
  // data 2-3x, weights 2.4x; 3x3 over 3 channels 1.16 / 1.24 / 1.6x; over 8 channels 1.01 / 1.07 / 1.12x); with 16
  // channels forward falls behind (0.96x). With groups, each band is copied per group (IC/G floats a pixel): 2 or 3
  // channels per group still pay (5x5, 2 groups of 3: 0.95 / 1.5 / 1.5x; 8 groups of 2: 1.1 / 1.7 / 1.7x), 4 and
  // more do not (ResNeXt's 32 groups of 4: forward 0.8x; 4 groups of 8: 0.73 / 1.2 / 0.75x). A kernel one tap wide
  // gains nothing over implicit_gemm's taps.
  const int64_t icg = g.ic_per_group(), most = g.groups == 1 ? 8 : 3;
  if (icg > most)
    return "pays only with <= " + std::to_string(most) + " input channels per group" +
           (g.groups == 1 ? std::string() : " when grouped") + ", got " + std::to_string(icg);
  if (g.kw < 2) return "pays only with kernels >= 2 taps wide, got " + std::to_string(g.kw);
  return {};
}

std::unique_ptr<detail::Conv2dImpl> kernel_rows_create(const Conv2dContext& ctx) {
  return std::make_unique<KernelRows>(ctx);
}

}  // namespace convkit::ops
