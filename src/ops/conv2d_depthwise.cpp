// depthwise: groups == input channels (channel multiplier m = OC / IC >= 1). Each output channel o sees one input
// channel o / m, so there is no reduction over channels to make a GEMM of: the kernels run over the taps, vectorised
// over the channels (contiguous in NHWC). The kernel (KH, KW, 1, OC) is already tap-major, so forward needs no
// packing at all.
//   3x3, multiplier 1, no dilation (the MobileNet layers): whole output rows through the row kernels
//   (f32_dwconv3x3_row*), which take the zero padding in their stride (missing rows and columns skipped), so no
//   table, no zero vector and no separate border pass; threads over (image, output row), and over channel ranges
//   when there are few rows (at stride 1 with rows that share out evenly, in all three directions: an equal share
//   of the rows per thread instead, row_shares). Other padding modes: the rows and columns that touch the padding
//   through the tables.
//   forward:          the row kernel, bias and relu fused; zero padding: groups of output rows per call (3 at
//                     stride 1, 2 at stride 2; f32_dwconv3x3_rows, AVX-512: each input column loaded once for the
//                     group);
//   backward data:    stride 1: dx is the 3x3 correlation of dz with the kernel turned by 180 degrees (packed once
//                     by pack_weights), so the forward row kernel runs it (in groups of rows too); stride 2: its
//                     own row kernel (each dx row from one or two dz rows, each dx column from one or two dz
//                     columns); otherwise (and for other shapes) the stride-phase gather of conv2d_tables.hpp (one
//                     pixel per row), the phase's taps packed;
//   backward weights: threads over (image, output row or group of rows[, channel range]), each summing
//                     its rows' 9 tap gradients and the bias gradient in its own [10][OC] partial (thread 0 straight
//                     into dw and db), the partials added at the end; other shapes: threads over channel ranges,
//                     each summing all pixels (or, with few channels, per-thread partial sums over pixel chunks).
// Measured (AVX-512, 2 threads, mb 1, medians of 5 alternating runs): MobileNet v1's stride-1 depthwise layers with
// the row groups at 1.3-1.5x oneDNN forward (one row at a time: 1.0-1.2x), 1.1-1.7x backward data and 1.1-1.3x
// weight gradient (one row at a time: 0.98-1.15x); lowest, the weight gradient of the stride-2 layers with 512
// channels (0.8-0.9x): there a pixel is 2 KiB, so a tile's columns, weights and sums fall in few L1 sets and come
// from L2.
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
// The row kernels' threads: at least this many work items per thread, splitting the channels (in blocks of
// kRowChannelBlock) when there are not rows enough.
constexpr int64_t kRowItemsPerThread = 8;
constexpr int64_t kRowChannelBlock = 64;
// Group kernels (stride 1 and 2, zero padding) over an input larger than kStreamBytes (from memory, not the caches)
// start each work item by prefetching, in address order, the rows it reads that the thread's previous item did not
// (the weight gradient: its dz rows too), then run the group's rows from L2. The kernels' own order, every channel
// block of a tile of columns over 5-8 rows at once, reads lines 512+ bytes apart in turn: bench/row_walk (that
// order with no arithmetic, 32 x 56 x 56 x 128 floats) read at 9.4-9.8 GB/s on one thread where a plain sweep read
// at 27-41, 19-21 on two against 63-71, and with a sweep of each item's rows first at 11.7-14.1 and 28-36 GB/s.
// The stride-1 weight gradient then still runs its rows in segments of kStreamSegment output pixels, each
// preceded by prefetches of the next segment's pixels (what every stride-1 group kernel did before the sweeps; the
// forward pass measured better without them). Measured at mb 32 (2 threads, medians of 5-7 alternating runs, ratio
// to oneDNN) in docs/performance.md. Inputs within kStreamBytes keep no sweep (conv5_6/dw, 14x14x512 stride 2 at mb
// 32, 12.8 MB: forward 1.11-1.19 -> 0.79-1.11x with one).
constexpr int64_t kStreamSegment = 4;

// Prefetches the lines of n floats from p (a hint: nothing is read).
void prefetch_floats(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 3);
}

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
    // The row kernels: 3x3, multiplier 1, no dilation. With zero padding they run whole rows; with another mode,
    // output columns [col_lo_, col_hi_] of the rows inside the input (all three input columns inside: first column
    // ox * sw - pad_left >= 0, last + 2 <= iw - 1), the rest through the tables.
    row_kernel_ = g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1 && mult_ == 1;
    col_lo_ = (g.pad_left + g.sw - 1) / g.sw;
    col_hi_ = g.iw - 3 + g.pad_left < 0 ? -1 : std::min(g.ow - 1, (g.iw - 3 + g.pad_left) / g.sw);
    // Backward data, stride 1, zero padding: the forward row kernel with the kernel turned by 180 degrees.
    bwd_row_ = row_kernel_ && g.sh == 1 && g.sw == 1 && !fold_;
    // Backward data, stride 2, zero padding: the stride-2 transposed row kernel (no packing: the kernel as it is).
    bwd_row2_ = row_kernel_ && g.sh == 2 && g.sw == 2 && !fold_;
    // Zero padding, stride 1: all three directions run group_rows_ output rows per kernel call, each input column
    // loaded once for the group; stride 2: forward and the weight gradient (backward data has its own kernel).
    // At most 2 rows at stride 2, and where a pixel is a multiple of 4 KiB (1024 channels: every column of a tile in
    // one L1 set). Measured (MobileNet v1, medians of 5-7 alternating runs of the ratio to oneDNN): stride 1 with 3
    // rows conv5_1/dw forward 1.11 -> 1.40, conv3_1/dw 1.11 -> 1.36; conv6/dw (7x7, 1024 channels) 2 rows 1.11 /
    // 1.70 forward / backward data, 3 rows 0.76 / 0.98, one row 1.03 / 1.45; stride 2 with 2 rows forward 0.90-1.11
    // -> 1.01-1.24 and weight gradient 0.80-1.30 -> 0.90-1.42, with 3 rows conv5_6/dw forward fell to 0.91.
    group_rows_ = row_kernel_ && !fold_ && g.sh == g.sw && (g.sh == 1 || g.sh == 2)
                      ? std::clamp<int64_t>(ctx_.k->dw_group_rows, 1, kMaxGroupRows)
                      : 1;
    if (g.sh == 2 || g.oc * int64_t{sizeof(float)} % 4096 == 0) group_rows_ = std::min<int64_t>(group_rows_, 2);
    // Row kernels' work items: (image, row or group of rows) x channel ranges of row_cblock_ (group_cblock_)
    // channels.
    const int64_t longest = std::max(g.oh, g.ih);
    row_cblock_ = channel_block(g.n * longest);
    group_cblock_ = channel_block(g.n * ((longest + group_rows_ - 1) / group_rows_));
    // Backward weights splits the channels when there are blocks enough for every thread, and otherwise the pixels
    // with per-thread partial sums, no more of them than fit in the input's size (the workspace bound).
    const int64_t channel_blocks = (g.oc + kChannelBlock * mult_ - 1) / (kChannelBlock * mult_);
    wgrad_channel_split_ = !row_kernel_ && channel_blocks >= ctx_.threads;
    const int64_t input = g.n * g.ih * g.iw * g.ic;
    wgrad_threads_ =
        row_kernel_
            // The row path: thread 0 sums into dw and db, the others into [10][OC] partials.
            ? static_cast<int>(std::clamp<int64_t>(1 + input / std::max<int64_t>(1, 10 * g.oc), 1, ctx_.threads))
            : static_cast<int>(
                  std::clamp<int64_t>(input / std::max<int64_t>(1, g.kh * g.kw * g.oc), 1, ctx_.threads));
    for (std::size_t s = 0; s < bwd_.segments.size(); ++s) {
      const IndirectionTable::Segment& seg = bwd_.segments[s];
      bwd_seg_offset_.push_back(bwd_pack_floats_);
      bwd_pack_floats_ += static_cast<int64_t>(seg.taps.size()) * g.oc;
      for (int64_t p = 0; p < seg.num_tiles; p += kChunk)
        bwd_chunks_.push_back({static_cast<int64_t>(s), seg.first_tile + p, std::min(kChunk, seg.num_tiles - p)});
    }
  }

  // Channels per work item of the row kernels over `items` (image, row) items: all of them, or where there are
  // too few items for the threads, ranges of whole kRowChannelBlock blocks.
  int64_t channel_block(int64_t items) const {
    const Conv2dGeometry& g = ctx_.g;
    if (items >= kRowItemsPerThread * ctx_.threads || needs_post_activation(ctx_.activation)) return g.oc;
    const int64_t want = (kRowItemsPerThread * ctx_.threads + items - 1) / items;
    return std::max(kRowChannelBlock, (g.oc / want + kRowChannelBlock - 1) / kRowChannelBlock * kRowChannelBlock);
  }

  // Whether the group kernels over out_rows output rows an image (on `threads` threads) give each thread an equal
  // share of the rows, with all channels, instead of the work items of channel_block: where there are too few rows
  // for the items (so the channels would be split), stride 1, at least two rows a thread, rows that share out evenly
  // and inputs within kStreamBytes (no sweeps). A channel range per item measured slower than its share of the
  // one-thread time: at mb 1 on two threads (medians of 21 blocks of 20 calls, three alternating runs), 14x14x512
  // forward 13.3-13.9 -> 11.2-11.4 us and backward data 13.8-14.0 -> 11.4-11.6 (one thread: 18-19), 14x14x256 6.6 ->
  // 5.0-5.2 / 6.3-6.6 -> 4.9-5.1, 28x28x256 even / 17.4-17.8 -> 16.1-16.4. At stride 2 it was mixed (28x28x256 7%
  // faster, 56x56x128 3% slower), and with rows that do not share out evenly slower (7 rows of 14x14x512 at stride 2:
  // 6.1-6.7 -> 6.7 us). The weight gradient (each thread's rows into its own partial dW, as before), medians of 7
  // alternating runs: 14x14x512 16.2 -> 15.5 us, 28x28x256 28.4 -> 25.0, 14x14x256 7.6 -> 7.3 (of 3).
  bool row_shares(int64_t out_rows, int64_t stride, int threads) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t total = g.n * out_rows;
    return threads > 1 && stride == 1 && group_cblock_ < g.oc && total >= 2 * threads &&
           shares_evenly(total, threads) && !sweeps(g.n * std::max(g.ih * g.iw, g.oh * g.ow) * g.oc);
  }
  // explain()'s words for row_shares: the directions that take it.
  std::string shares_text() const {
    const Conv2dGeometry& g = ctx_.g;
    if (fold_) return "";
    std::string dirs;
    auto add = [&](bool on, const char* d) {
      if (on) dirs += (dirs.empty() ? "" : ", ") + std::string(d);
    };
    add(row_shares(g.oh, g.sh, ctx_.threads), "forward");
    add(bwd_row_ && row_shares(g.ih, 1, ctx_.threads), "backward data");
    add(row_shares(g.oh, g.sh, wgrad_threads_), "weight gradient");
    return dirs.empty() ? "" : "; few rows: each thread an equal share of the rows, all channels (" + dirs + ")";
  }
  // Share t of T of the images' out_rows output rows (one after the other), as fn(image, first row, rows): in as few
  // groups of at most R rows an image as the share allows, as even as they can be.
  template <typename Fn>
  void for_row_share(int64_t out_rows, int64_t R, int t, int T, Fn&& fn) const {
    const int64_t total = ctx_.g.n * out_rows;
    for (int64_t r = total * t / T, r1 = total * (t + 1) / T; r < r1;) {
      const int64_t n = r / out_rows, len = std::min(r1, (n + 1) * out_rows) - r, parts = (len + R - 1) / R;
      for (int64_t k = 0, q0 = r % out_rows; k < parts; ++k) {
        const int64_t nr = len * (k + 1) / parts - len * k / parts;
        fn(n, q0, nr);
        q0 += nr;
      }
      r += len;
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
    const std::string isa = to_string(ctx_.k->isa), table = ctx_.k->dwconv_name;
    if (row_kernel_)
      return "f32_dwconv3x3_row" + std::string(group_rows_ > 1 ? "s" : "") + "__" + isa +
             (group_rows_ > 1 ? " (" + std::to_string(group_rows_) + " rows at once)" : "") +
             ", f32_dwconv3x3_row" + std::string(group_rows_ > 1 ? "s" : "") + "_wgrad__" + isa +
             (fold_ ? " (row interiors), " + table + " (padded borders)" : " (whole rows, zero padding inside)") +
             shares_text() +
             (!fold_ && sweeps(ctx_.g.n * ctx_.g.ih * ctx_.g.iw * ctx_.g.ic)
                  ? std::string(", each group's new rows prefetched in address order first") +
                        (ctx_.g.oc <= 32 ? " (not in the weight gradient: 32 channels or fewer)" : "") +
                        (ctx_.g.sh == 1 ? " (weight gradient: in segments of " + std::to_string(kStreamSegment) +
                                              " pixels, the next one prefetched)"
                                        : "")
                  : "") +
             (bwd_row_    ? ""
              : bwd_row2_ ? ", f32_dwconv3x3_row_bwd2__" + isa + " (backward data" +
                                (sweeps(ctx_.g.n * ctx_.g.ih * ctx_.g.iw * ctx_.g.ic) ? ", its dz rows prefetched first)"
                                                                                        : ")")
                          : ", " + table + " (backward data)");
    return table +
           (mult_ == 1 ? "" : " (channel multiplier > 1: input lanes permuted to the output channels)");
  }

  std::size_t packed_weights_floats() const override {
    return bwd_row_ ? static_cast<std::size_t>(9 * ctx_.g.oc) : 0;
  }
  // The kernel turned by 180 degrees, for backward data's row kernel.
  void pack_weights(const float* w, float* packed) const override {
    if (bwd_row_) flip(w, packed);
  }
  void backward_data_packed(const float* dz, const float* w, const float* packed, float* dx, void* ws) const override {
    if (bwd_row_ && packed)
      backward_data_rows(dz, packed, dx);
    else
      backward_data(dz, w, dx, ws);
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    float* zero = carve_forward(carver);
    uk::GemmParams params = gemm_params(ctx_.activation);
    const bool post = needs_post_activation(ctx_.activation);
    const int64_t pixels = g.oh * g.ow, chunks = (pixels + kChunk - 1) / kChunk, taps = g.kh * g.kw;
    // The whole-row kernel writes an output larger than kStreamBytes with non-temporal stores (mb 32 conv3_1/dw:
    // 51 MB in, 51 MB out).
    params.stream = row_kernel_ && !fold_ && !post && g.n * pixels * g.oc * int64_t{sizeof(float)} > kStreamBytes;
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
    if (!row_kernel_ || fold_) {
      if (zero) std::fill_n(zero, g.ic, 0.0f);
    }
    if (!row_kernel_) {
      parallel_for(ctx_.threads, g.n * chunks, [&](int64_t i0, int64_t i1, int) {
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t n = it / chunks, p0 = (it % chunks) * kChunk;
          indirect(n, p0, std::min(kChunk, pixels - p0));
        }
      });
      return;
    }
    if (!fold_) {
      // Zero padding: threads over (image, group of output rows, channel range).
      rows_in_groups(x, g.ih, g.iw, g.oh, g.ow, g.sh, g.sw, g.pad_top, -g.pad_left, w, b, y, params,
                     post ? ctx_.activation : Activation::none);
      return;
    }
    // Another padding mode: threads over (image, output row, channel range).
    const int64_t cblocks = (g.oc + row_cblock_ - 1) / row_cblock_;
    parallel_for(ctx_.threads, g.n * g.oh * cblocks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t row = it / cblocks, c0 = (it % cblocks) * row_cblock_, cb = std::min(row_cblock_, g.oc - c0);
        const int64_t n = row / g.oh, oy = row % g.oh, iy = oy * g.sh - g.pad_top, p_row = oy * g.ow;
        const float* x_n = x + n * x_image + c0;
        float* out = y + n * y_image + p_row * g.oc + c0;
        // The tables run all channels (cblocks == 1 is not guaranteed), so only the first channel range does them.
        if (iy < 0 || iy + 2 >= g.ih || col_hi_ < col_lo_) {
          if (c0 == 0) indirect(n, p_row, g.ow);
          continue;
        }
        if (c0 == 0) indirect(n, p_row, col_lo_);
        const float* r0 = x_n + iy * g.iw * g.ic;
        const float* const rows[3] = {r0, r0 + g.iw * g.ic, r0 + 2 * g.iw * g.ic};
        const int64_t np = col_hi_ - col_lo_ + 1;
        ctx_.k->dwconv3x3_row(static_cast<std::size_t>(np), static_cast<std::size_t>(cb),
                              static_cast<std::size_t>(g.oc), static_cast<std::size_t>(g.sw), rows, g.iw,
                              col_lo_ * g.sw - g.pad_left, w + c0, b ? b + c0 : nullptr, out + col_lo_ * g.oc,
                              &params);
        if (post) activation_forward(ctx_.activation, out + col_lo_ * g.oc, np * g.oc);
        if (c0 == 0) indirect(n, p_row + col_hi_ + 1, g.ow - 1 - col_hi_);
      }
      if (params.stream) uk::store_fence();
    });
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const BwdBuffers buf = carve_backward_data(carver);
    if (bwd_row_) {
      flip(w, buf.flipped);
      backward_data_rows(dz, buf.flipped, dx);
      return;
    }
    if (bwd_row2_) {
      backward_data_rows2(dz, w, dx);
      return;
    }
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
    if (row_kernel_) {
      backward_weights_rows(x, dz, dw, db, buf);
      return;
    }
    if (buf.zero) std::fill_n(buf.zero, g.ic, 0.0f);
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
        for (int64_t n = 0; n < g.n; ++n) {
          // Chunks of pixels: the kernel passes over a chunk once per 8 taps, so the chunk's rows stay in cache.
          for (int64_t q = 0; q < pixels; q += kWgradChunk)
            ctx_.k->dwconv_wgrad(static_cast<std::size_t>(std::min(kWgradChunk, pixels - q)),
                                 static_cast<std::size_t>(cb), static_cast<std::size_t>(mult_),
                                 static_cast<std::size_t>(taps), x + n * x_image + c0 / mult_,
                                 fwd_.a_off.data() + q * taps, buf.zero, dz + n * dz_image + c0,
                                 fwd_.c_off.data() + q, part);
          if (db)
            for (int64_t oy = 0; oy < g.oh; ++oy) {
              const float* dz_rows = dz + n * dz_image + oy * g.ow * g.oc + c0;
              std::fill_n(row_sum, cb, 0.0f);
              for (int64_t q = 0; q < g.ow; ++q)
                for (int64_t c = 0; c < cb; ++c) row_sum[c] += dz_rows[q * g.oc + c];
              for (int64_t c = 0; c < cb; ++c) bias_sum[c] += row_sum[c];
            }
        }
        for (int64_t t = 0; t < taps; ++t) std::copy_n(part + t * cb, cb, dw + t * g.oc + c0);
        if (db) std::copy_n(bias_sum, cb, db + c0);
      });
      return;
    }
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

  void flip(const float* w, float* flipped) const {
    for (int64_t a = 0; a < 9; ++a) std::copy_n(w + (8 - a) * ctx_.g.oc, ctx_.g.oc, flipped + a * ctx_.g.oc);
  }

  // Backward data, stride 1, zero padding: dx row iy is the forward row kernel over dz rows iy + pad_top - 2 + k
  // (k < 3) with the flipped kernel, dz column ix + pad_left - 2 + kx for dx column ix.
  void backward_data_rows(const float* dz, const float* flipped, float* dx) const {
    const Conv2dGeometry& g = ctx_.g;
    uk::GemmParams params = gemm_params(Activation::none);
    params.stream = g.n * g.ih * g.iw * g.ic * int64_t{sizeof(float)} > kStreamBytes;
    rows_in_groups(dz, g.oh, g.ow, g.ih, g.iw, 1, 1, 2 - g.pad_top, g.pad_left - 2, flipped, nullptr, dx, params,
                   Activation::none);
  }

  // rows[k] = input row first + k of an image (in_n, row_floats apart) for k < count, null outside [0, in_h).
  static void group_input_rows(const float* in_n, int64_t in_h, int64_t row_floats, int64_t first, int64_t count,
                               const float** rows) {
    for (int64_t k = 0; k < count; ++k)
      rows[k] = first + k >= 0 && first + k < in_h ? in_n + (first + k) * row_floats : nullptr;
  }

  // Whether the group kernels over an input of in_floats start each item with a sweep of its rows.
  static bool sweeps(int64_t in_floats) {
    const int force = g_depthwise_row_sweeps.load();
    return force == 1 || (force != 0 && in_floats * int64_t{sizeof(float)} > kStreamBytes);
  }

  // Prefetches, in address order, cb channels of every pixel of rows [first, count) of rows (null: padding), each
  // of width pixels C floats apart.
  static void sweep_rows(const float* const* rows, int64_t first, int64_t count, int64_t width, int64_t C,
                         int64_t cb) {
    for (int64_t k = first; k < count; ++k)
      if (rows[k])
        for (int64_t x = 0; x < width; ++x) prefetch_floats(rows[k] + x * C, cb);
  }

  // The input rows group item `it` shares with the thread's item before it (first item i0; channel ranges fastest,
  // cblocks of them; q0 the item's first output row): where that one is the group above in the same image and
  // channels, its last 3 - stride rows (group_input_rows' rows start stride * R apart, each group reading
  // (R - 1) * stride + 3); otherwise none.
  static int64_t rows_shared_with_previous(int64_t it, int64_t i0, int64_t cblocks, int64_t q0, int64_t stride) {
    return it > i0 && cblocks == 1 && q0 > 0 ? std::max<int64_t>(0, 3 - stride) : 0;
  }

  // Runs call(j0, np) over output pixels [0, out_w) in segments of seg (one call where seg is 0), before each call
  // prefetching the next segment's input columns (output pixel j reads j * stride + ix0 .. + 2) of the nin rows (null
  // rows are padding) and its pixels of the nread rows `read` (one pixel per output pixel): cb channels of pixels C
  // apart.
  template <typename Call>
  static void in_segments(int64_t out_w, int64_t seg, int64_t stride, int64_t ix0, int64_t in_w, int64_t C, int64_t cb,
                          const float* const* rows, int64_t nin, const float* const* read, int64_t nread,
                          Call&& call) {
    if (seg <= 0 || seg >= out_w) return call(int64_t{0}, out_w);
    for (int64_t j0 = 0; j0 < out_w; j0 += seg) {
      const int64_t a = j0 + seg, e = std::min(out_w, a + seg);
      if (a < out_w) {
        // This segment reads input columns up to (a - 1) * stride + ix0 + 2; the next one's new columns follow.
        const int64_t xa = std::clamp<int64_t>((a - 1) * stride + ix0 + 3, 0, in_w);
        const int64_t xe = std::clamp<int64_t>((e - 1) * stride + ix0 + 3, 0, in_w);
        for (int64_t k = 0; k < nin; ++k)
          if (rows[k])
            for (int64_t x = xa; x < xe; ++x) prefetch_floats(rows[k] + x * C, cb);
        for (int64_t r = 0; r < nread; ++r)
          for (int64_t j = a; j < e; ++j) prefetch_floats(read[r] + j * C, cb);
      }
      call(j0, std::min(seg, out_w - j0));
    }
  }

  // The row kernel over groups of group_rows_ output rows (forward: in = x, out = y; stride-1 backward data: in =
  // dz, out = dx, the kernel flipped): output row q of an image reads input rows q * stride - top + k, k < 3 (rows
  // outside [0, in_h) are padding), output column j input columns j * col_stride + ix0 + kx (groups of more than one
  // row only where the two strides are equal). Threads over (image, group, channel range of group_cblock_ channels);
  // `post`: an activation run over each finished row (whole rows then).
  void rows_in_groups(const float* in, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t stride,
                      int64_t col_stride, int64_t top, int64_t ix0, const float* w, const float* b, float* out,
                      const uk::GemmParams& params, Activation post) const {
    const int64_t R = group_rows_, groups = (out_h + R - 1) / R, C = ctx_.g.oc;
    const int64_t cblocks = (C + group_cblock_ - 1) / group_cblock_;
    const bool sweep = sweeps(ctx_.g.n * in_h * in_w * C);
    // The group of nr output rows from row q0 of image n, channels [c0, c0 + cb); with `sweep`, its input rows past
    // the first `shared` (those of the thread's previous group) prefetched first.
    auto group = [&](int64_t n, int64_t q0, int64_t nr, int64_t c0, int64_t cb, int64_t shared) {
      const float* rows[kMaxGroupInputRows];
      float* outs[kMaxGroupRows];
      const int64_t nin = (nr - 1) * stride + 3;
      group_input_rows(in + n * in_h * in_w * C + c0, in_h, in_w * C, q0 * stride - top, nin, rows);
      for (int64_t r = 0; r < nr; ++r) outs[r] = out + ((n * out_h + q0 + r) * out_w) * C + c0;
      if (sweep) sweep_rows(rows, shared, nin, in_w, C, cb);
      ctx_.k->dwconv3x3_rows(static_cast<std::size_t>(nr), static_cast<std::size_t>(out_w),
                             static_cast<std::size_t>(cb), static_cast<std::size_t>(C),
                             static_cast<std::size_t>(col_stride), rows, in_w, ix0, w + c0, b ? b + c0 : nullptr, outs,
                             &params);
      if (post != Activation::none)
        for (int64_t r = 0; r < nr; ++r) activation_forward(post, outs[r], out_w * C);
    };
    if (row_shares(out_h, stride, ctx_.threads)) {
      parallel_for(ctx_.threads, ctx_.threads, [&](int64_t, int64_t, int t) {
        for_row_share(out_h, R, t, ctx_.threads,
                      [&](int64_t n, int64_t q0, int64_t nr) { group(n, q0, nr, 0, C, 0); });
        if (params.stream) uk::store_fence();
      });
      return;
    }
    parallel_for(ctx_.threads, ctx_.g.n * groups * cblocks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t grp = it / cblocks, c0 = (it % cblocks) * group_cblock_, cb = std::min(group_cblock_, C - c0);
        const int64_t n = grp / groups, q0 = (grp % groups) * R, nr = std::min(R, out_h - q0);
        group(n, q0, nr, c0, cb, rows_shared_with_previous(it, i0, cblocks, q0, stride));
      }
      if (params.stream) uk::store_fence();
    });
  }

  // Backward data, stride 2, zero padding: dx row iy gets dz row (iy + pad_top - ky) / 2 through tap row ky where
  // that is a whole row of dz (one or two of the three); the kernel does the columns alike.
  void backward_data_rows2(const float* dz, const float* w, float* dx) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t dz_image = g.oh * g.ow * g.oc, dx_image = g.ih * g.iw * g.ic;
    const int64_t cblocks = (g.ic + row_cblock_ - 1) / row_cblock_;
    // A dx past kStreamBytes: each dx row first sweeps its dz rows (one or two, often the previous row's, then in
    // cache) as the group kernels do theirs. mb 32, ratio to oneDNN, medians of 5-7 alternating runs (three A/Bs):
    // conv2_2/dw 0.92-1.00 -> 0.99-1.02, conv3_2/dw 1.09-1.17 -> 1.16-1.25, conv4_2/dw 1.22 -> 1.30.
    const bool sweep = sweeps(g.n * g.ih * g.iw * g.ic);
    parallel_for(ctx_.threads, g.n * g.ih * cblocks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t row = it / cblocks, c0 = (it % cblocks) * row_cblock_, cb = std::min(row_cblock_, g.ic - c0);
        const int64_t n = row / g.ih, iy = row % g.ih;
        const float* dz_n = dz + n * dz_image + c0;
        const float* rows[3];
        for (int64_t ky = 0; ky < 3; ++ky) {
          const int64_t t = iy + g.pad_top - ky;
          rows[ky] = t >= 0 && t % 2 == 0 && t / 2 < g.oh ? dz_n + (t / 2) * g.ow * g.oc : nullptr;
        }
        if (sweep) sweep_rows(rows, 0, 3, g.ow, g.oc, cb);
        ctx_.k->dwconv3x3_row_bwd2(static_cast<std::size_t>(g.iw), static_cast<std::size_t>(cb),
                                   static_cast<std::size_t>(g.ic), rows, g.ow, g.pad_left, w + c0,
                                   dx + n * dx_image + iy * g.iw * g.ic + c0);
      }
    });
  }

  // Backward weights, 3x3 multiplier 1: threads over (image, output row), each summing into its own [9][OC] dw and
  // [OC] db (thread 0 into dw and db themselves), then added.
  void backward_weights_rows(const float* x, const float* dz, float* dw, float* db, const WBuffers& buf) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t pixels = g.oh * g.ow, taps = 9;
    const int64_t x_image = g.ih * g.iw * g.ic, dz_image = pixels * g.oc, dw_size = taps * g.oc;
    const int64_t part_size = dw_size + g.oc;
    if (fold_) std::fill_n(buf.zero, g.ic, 0.0f);
    // Work items (image, output row or group of rows, channel range): the ranges of the forward pass (few rows: more
    // items to balance the threads); another padding mode runs whole rows (its tables cover every channel).
    const int64_t R = group_rows_, groups = (g.oh + R - 1) / R;
    const int64_t cblocks = fold_ ? 1 : (g.oc + group_cblock_ - 1) / group_cblock_, cbw = fold_ ? g.oc : group_cblock_;
    // Past kStreamBytes, the stride-1 rows in segments; the sweeps not over pixels of 32 channels or fewer (two
    // lines): conv2_1/dw (112x112x32) measured 1.36-1.49 -> 1.22-1.40x with them in three A/Bs at mb 32, where its
    // forward pass gained (1.21-1.26 -> 1.55-1.92).
    const bool large = !fold_ && sweeps(g.n * g.ih * g.iw * g.ic);
    const bool sweep = large && (g.oc > 32 || g_depthwise_row_sweeps.load() == 1);
    // Few rows (row_shares): each thread's equal share of the rows into its partial, all channels.
    const bool shares = !fold_ && row_shares(g.oh, g.sh, wgrad_threads_);
    const int used = parallel_for(wgrad_threads_, shares ? wgrad_threads_ : g.n * groups * cblocks,
                                  [&](int64_t i0, int64_t i1, int t) {
      float* pdw = t == 0 ? dw : buf.partials + (t - 1) * part_size;
      float* pdb = db ? (t == 0 ? db : buf.partials + (t - 1) * part_size + dw_size) : nullptr;
      std::fill_n(pdw, dw_size, 0.0f);
      if (pdb) std::fill_n(pdb, g.oc, 0.0f);
      // Output pixels [p0, p0 + np) of image n through the tables (another padding mode's borders).
      auto indirect = [&](int64_t n, int64_t p0, int64_t np) {
        if (np <= 0) return;
        ctx_.k->dwconv_wgrad(static_cast<std::size_t>(np), static_cast<std::size_t>(g.oc), 1, 9, x + n * x_image,
                             fwd_.a_off.data() + p0 * taps, buf.zero, dz + n * dz_image, fwd_.c_off.data() + p0,
                             pdw);
        if (pdb)
          for (int64_t q = p0; q < p0 + np; ++q) {
            const float* d = dz + n * dz_image + q * g.oc;
            for (int64_t c = 0; c < g.oc; ++c) pdb[c] += d[c];
          }
      };
      // Zero padding: output rows [q0, q0 + nr) of image n at once, input rows q0 * stride - pad_top + k, channels
      // [c0, c0 + cb); with `sweep`, the input rows past the first `shared` prefetched first.
      auto group = [&](int64_t n, int64_t q0, int64_t nr, int64_t c0, int64_t cb, int64_t shared) {
        const float* rows[kMaxGroupInputRows];
        const float* dzs[kMaxGroupRows];
        group_input_rows(x + n * x_image + c0, g.ih, g.iw * g.ic, q0 * g.sh - g.pad_top, (nr - 1) * g.sh + 3, rows);
        for (int64_t r = 0; r < nr; ++r) dzs[r] = dz + n * dz_image + (q0 + r) * g.ow * g.oc + c0;
        if (sweep) {
          sweep_rows(rows, shared, (nr - 1) * g.sh + 3, g.iw, g.ic, cb);
          sweep_rows(dzs, 0, nr, g.ow, g.oc, cb);
        }
        const int64_t seg = large && g.sh == 1 ? kStreamSegment : 0;
        in_segments(g.ow, seg, g.sw, -g.pad_left, g.iw, g.ic, cb, rows, (nr - 1) * g.sh + 3, dzs, nr,
                    [&](int64_t j0, int64_t np) {
                      const float* d[kMaxGroupRows];
                      for (int64_t r = 0; r < nr; ++r) d[r] = dzs[r] + j0 * g.oc;
                      ctx_.k->dwconv3x3_rows_wgrad(static_cast<std::size_t>(nr), static_cast<std::size_t>(np),
                                                   static_cast<std::size_t>(cb), static_cast<std::size_t>(g.oc),
                                                   static_cast<std::size_t>(g.sw), rows, g.iw, j0 * g.sw - g.pad_left,
                                                   d, pdw + c0, pdb ? pdb + c0 : nullptr);
                    });
      };
      if (shares) {
        for_row_share(g.oh, R, t, wgrad_threads_,
                      [&](int64_t n, int64_t q0, int64_t nr) { group(n, q0, nr, 0, g.oc, 0); });
        return;
      }
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t c0 = (it % cblocks) * cbw, cb = std::min(cbw, g.oc - c0);
        if (!fold_) {
          const int64_t n = it / cblocks / groups, q0 = it / cblocks % groups * R, nr = std::min(R, g.oh - q0);
          group(n, q0, nr, c0, cb, rows_shared_with_previous(it, i0, cblocks, q0, g.sh));
          continue;
        }
        const int64_t row = it / cblocks, n = row / g.oh, oy = row % g.oh, iy = oy * g.sh - g.pad_top;
        const int64_t p_row = oy * g.ow;
        const float* x_n = x + n * x_image;
        const float* dz_row = dz + n * dz_image + p_row * g.oc;
        if (iy < 0 || iy + 2 >= g.ih || col_hi_ < col_lo_) {
          indirect(n, p_row, g.ow);
          continue;
        }
        indirect(n, p_row, col_lo_);
        const float* r0 = x_n + iy * g.iw * g.ic;
        const float* const rows[3] = {r0, r0 + g.iw * g.ic, r0 + 2 * g.iw * g.ic};
        ctx_.k->dwconv3x3_row_wgrad(static_cast<std::size_t>(col_hi_ - col_lo_ + 1), static_cast<std::size_t>(g.oc),
                                    static_cast<std::size_t>(g.oc), static_cast<std::size_t>(g.sw), rows, g.iw,
                                    col_lo_ * g.sw - g.pad_left, dz_row + col_lo_ * g.oc, pdw, pdb);
        indirect(n, p_row + col_hi_ + 1, g.ow - 1 - col_hi_);
      }
    });
    for (int t = 1; t < used; ++t) {
      const float* part = buf.partials + (t - 1) * part_size;
      for (int64_t e = 0; e < dw_size; ++e) dw[e] += part[e];
      if (db)
        for (int64_t c = 0; c < g.oc; ++c) db[c] += part[dw_size + c];
    }
  }

  float* carve_forward(WorkspaceCarver& ws) const {
    return !row_kernel_ || fold_ ? ws.take_floats(ctx_.g.ic) : nullptr;
  }
  BwdBuffers carve_backward_data(WorkspaceCarver& ws) const {
    BwdBuffers b{};
    if (bwd_row_) {
      b.flipped = ws.take_floats(9 * ctx_.g.oc);
      return b;
    }
    if (bwd_row2_) return b;
    b.packed = ws.take_floats(bwd_pack_floats_);
    b.zero = ws.take_floats(ctx_.g.oc);
    b.padded_dx = fold_ ? ws.take_floats(gb_.n * gb_.ih * gb_.iw * gb_.ic) : nullptr;
    return b;
  }
  WBuffers carve_weights(WorkspaceCarver& ws) const {
    const Conv2dGeometry& g = ctx_.g;
    WBuffers b{};
    if (row_kernel_) {
      // Threads 1.. : [9][OC] dw and [OC] db each; the zero vector of the tables' padded cells.
      b.partials = ws.take_floats(int64_t{wgrad_threads_ - 1} * 10 * g.oc);
      b.zero = fold_ ? ws.take_floats(g.ic) : nullptr;
      return b;
    }
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
  bool row_kernel_ = false;           // 3x3, multiplier 1, no dilation: the row kernels
  int64_t col_lo_ = 0, col_hi_ = -1;  // another padding mode: the output columns whose taps are all inside the input
  bool bwd_row_ = false;              // backward data: stride 1, zero padding, through the row kernel
  bool bwd_row2_ = false;             // backward data: stride 2, zero padding, through its row kernel
  int64_t row_cblock_ = 0;            // the row kernels' channels per work item
  int64_t group_rows_ = 1;            // zero padding: output rows per call of dwconv3x3_rows* (1 past stride 2)
  int64_t group_cblock_ = 0;          // ... and channels per work item there
  // Groups of more than one row have stride <= 2; one row reads 3 input rows at any stride.
  static constexpr int64_t kMaxGroupRows = 8, kMaxGroupInputRows = (kMaxGroupRows - 1) * 2 + 3;
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
