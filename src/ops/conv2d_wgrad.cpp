#include "ops/conv2d_wgrad.hpp"

#include <algorithm>
#include <string>

namespace convkit::ops {

namespace {
// Output pixels per reduction chunk: the x and dz rows of one chunk stay in cache while every item of a thread
// passes over them. 512 measured best for 3x3 layers at 64 and 128 channels (ResNet-50, one thread, Zen 5 with its
// 1 MiB L2: about 3% faster than 256; 1024 slowed the 1x1 layers with 256 output channels, whose chunk then outgrows
// L2). The chunk scales with the L2 (chunk_pixels): with Zen 3's 512 KiB, 256 pixels measured faster than 512 (AVX2,
// 2 threads, mb 32, medians of 5-9 rounds alternating in one process, ms): 1x1 28x28 512 -> 128 43.9 -> 36.2, 56x56
// 64 -> 256 37.5 -> 34.1, 56x56 256 -> 64 40.0 -> 37.2; 3x3 56x56 64 -> 64 58.6 -> 52.9, 14x14 256 -> 256 70.6 ->
// 59.9, 28x28 128 -> 128 even. Not past 512 on a larger L2 (unmeasured there).
constexpr int64_t kChunk = 512;
// Wider layers (over 256 input or output channels per group) re-read a chunk's dz rows once per channel tile of
// their thread, dozens of times; those rows are kept within a quarter of the L2 (wide_dz_bytes: 256 KiB on Zen 5;
// on Zen 3's 512 KiB L2, 128 KiB measured 5-13% faster than 256 at mb 32, AVX2, 2 threads, medians of 7-9 rounds
// in one process: 1x1 14x14 512 -> 512 41.8 -> 39.2 ms, 7x7 1024 -> 1024 44.7 -> 39.3, 28x28 128 -> 512 34.5 ->
// 30.7, 7x7 512 -> 2048 44.9 -> 39.6, 14x14 1024 -> 256 32.0 -> 30.2):
// - by a narrower chunk, down to 128 pixels (64 cost more in the items' fixed work and dw tile reloads than it
//   saved). Measured at mb 32, 2 threads, ms (ratio to oneDNN) before -> after, medians of 3 alternating runs:
//   MobileNet conv5_1/pw (512 -> 512) 11.0 (0.91) -> 9.8 (1.01), ResNet-50 res3a_branch2c (128 -> 512) 14.3 (1.10)
//   -> 12.5 (1.24), res4b_branch2a (1024 -> 256) 10.1 (1.01) -> 8.6 (1.18), res5b_branch2a (2048 -> 512) 10.6
//   (0.94) -> 8.8 (1.11); not below 256 channels: res2a_branch1 (64 -> 256, 5 channel tiles) 18.5 -> 20.2 ms at
//   256 pixels;
// - past 512 output channels, where even 128 pixels of dz rows overflow that, and the reduction is long (images
//   merged into one, 1x1 stride 1), by 512-pixel chunks whose output blocks go in groups of 4 (128 channels): each
//   group's dz rows serve all the channel tiles, then the next group's; a thread's items are then whole groups.
//   res5a_branch2c (512 -> 2048) 12.7 (0.86) -> 9.3 (1.11), res4a_branch2c (256 -> 1024) 12.8 (0.90) -> 10.9
//   (1.07). With short reductions (a strided layer's 49 pixels per image) the groups lost: res5a_branch1 0.99 ->
//   0.88.
// A reduction whose dz rows take at most twice that (512 KiB on Zen 5) stays one chunk: it is read from L2 all the
// same, and a second chunk would be a second pass over dw (VGG-19 conv5_1, 512 channels on 14x14, mb 1: 2.14 ->
// 2.22 ms in two chunks).
constexpr int64_t kWideChannels = 256;
constexpr int64_t kMinChunk = 128;

// The chunk for an L2 of l2_bytes: kChunk at 1 MiB, in proportion below it, within [kMinChunk, kChunk].
int64_t chunk_pixels(int64_t l2_bytes) {
  return std::clamp<int64_t>(kChunk * l2_bytes / (int64_t{1} << 20), kMinChunk, kChunk);
}
// The bytes of dz rows a wide layer's chunk keeps to: a quarter of the L2.
int64_t wide_dz_bytes(int64_t l2_bytes) { return l2_bytes / 4; }
}  // namespace

WgradPlan::WgradPlan(const Conv2dContext& ctx) : ctx_(ctx), table_(wgrad_table(ctx.g)) {
  const Conv2dGeometry& g = ctx_.g;
  taps_ = g.kh * g.kw;
  ctiles_ = (g.ic_per_group() + ctx_.k->mr - 1) / ctx_.k->mr;
  oblocks_ = (g.oc_per_group() + ctx_.k->nr - 1) / ctx_.k->nr;
  items_ = g.groups * taps_ * ctiles_ * oblocks_;
  // Per-thread partial sums only while they stay within the input's size (the workspace bound of
  // tests/ops/test_conv2d_workspace.cpp); otherwise the threads share out the items alone.
  const int64_t partial_floats = int64_t{ctx_.threads} * taps_ * g.ic_per_group() * g.oc;
  split_pixels_ = ctx_.threads > 1 && items_ < 4 * int64_t{ctx_.threads} && partial_floats <= g.n * g.ih * g.iw * g.ic;
  // Images with fewer pixels per tap than a chunk are reduced several at a time, about a chunk's worth, where dw is
  // larger than L2 (1 MiB on Zen 5; g_wgrad_image_group_dw_bytes): each pass over the items reads and writes every
  // dw tile once, and a batch of 7x7 maps would otherwise make one pass per image from L3 (32 passes over ResNet-50
  // res5a_branch2b's 9.4 MB dw at mb 32). Measured at mb 32, 2 threads, ms (ratio to oneDNN) before -> after,
  // medians of 3 alternating runs: res5a_branch2b 22.1 (0.97) -> 19.7 (1.10), res5a_branch2a (stride 2, 2 MB dw)
  // 6.2 (1.02) -> 5.5 (1.14), res5a_branch1 (8 MB) 27.2 (0.86) -> 26.2 (0.89). A dw that stays in L2 gains nothing,
  // and a group's larger x and dz rows then overflow L2 (res4a_branch2a, 0.5 MB dw: 5.4 -> 5.8 ms in pairs of
  // images). Not with split pixels, whose threads share out these units.
  const int64_t dw_bytes = taps_ * g.ic_per_group() * g.oc * int64_t{sizeof(float)};
  if (!split_pixels_ && g.n > 1 && table_.max_len < kChunk && dw_bytes > g_wgrad_image_group_dw_bytes.load()) {
    images_ = std::min<int64_t>(g.n, kChunk / std::max<int64_t>(1, table_.max_len));
    if (images_ > 1) table_ = wgrad_table_images(table_, g, images_);
  }
  const int64_t chunk_max = chunk_pixels(ctx_.l2_bytes);
  chunk_ = chunk_max;
  og_blocks_ = oblocks_;
  const int64_t dz_row_bytes = g.oc_per_group() * int64_t{sizeof(float)};
  const int64_t wide_dz = wide_dz_bytes(ctx_.l2_bytes);
  if (std::max(g.ic_per_group(), g.oc_per_group()) > kWideChannels &&
      table_.max_len * dz_row_bytes > 2 * wide_dz) {
    if (kMinChunk * dz_row_bytes <= wide_dz || table_.max_len < kChunk)
      chunk_ = std::clamp<int64_t>(wide_dz / dz_row_bytes, kMinChunk, chunk_max);
    else
      og_blocks_ = std::clamp<int64_t>(wide_dz / (chunk_ * ctx_.k->nr * int64_t{sizeof(float)}), 1, oblocks_);
  }
  chunks_ = std::max<int64_t>(1, (table_.max_len + chunk_ - 1) / chunk_);
  units_ = (g.n + images_ - 1) / images_ * chunks_;
  // Many items, but x and dz streamed from memory: with the items shared out, every thread reads all of x and dz;
  // with the units shared out, each reads its share once, into its own partial dw. Where x and dz (the x rows the
  // taps reach) pass 6 partial dw's per thread, dw stays in L2 (images not grouped) and the units share out evenly
  // (at least 4 a thread, and shares_evenly). Measured, 2 threads, ratio to oneDNN before -> after (medians of 3
  // alternating whole runs of `convkit bench --dir bwd_w`): mb 32 ResNet-50 res2a_branch1 1.19 -> 1.70 (23.0 ->
  // 16.2 ms), res2a_branch2a 1.78 -> 2.55, res2b_branch2a 1.23 -> 1.54, res3a_branch2c 1.26 -> 1.44; MobileNet
  // conv2_2/pw 1.29 -> 2.11, conv3_2/pw 1.45 -> 1.66; mb 8 res2a_branch1 1.23 -> 1.77. With dw past L2 it lost
  // (res5a_branch2a, 2 MB: 1.17 -> 0.92), and so did res4a_branch2a at mb 8 (its stride-2 x read a quarter, 6
  // partials' worth): 1.12 -> 0.94. Fashion-MNIST conv2 at mb 32 (x and dz in L3, 12 partials' worth): 2.5-4.4%
  // faster in-process.
  if (!split_pixels_ && ctx_.threads > 1 && images_ == 1 && partial_floats <= g.n * g.ih * g.iw * g.ic &&
      dw_bytes <= g_wgrad_image_group_dw_bytes.load() && units_ >= 4 * int64_t{ctx_.threads} &&
      shares_evenly(units_, ctx_.threads)) {
    const int64_t x_read = g.n * std::min(g.ih * g.iw, g.oh * g.ow * taps_) * g.ic * int64_t{sizeof(float)};
    const int64_t dz_read = g.n * g.oh * g.ow * g.oc * int64_t{sizeof(float)};
    split_pixels_ = split_pays_for_streamed(x_read + dz_read, dw_bytes, ctx_.threads);
  }
}

std::string WgradPlan::name() const {
  return std::string(ctx_.k->wgrad_name) + " (weights, chunks of " + std::to_string(chunk_) + " output pixels" +
         (split_pixels_ ? ", the threads splitting the output pixels)" : ")");
}

WgradPlan::Buffers WgradPlan::carve(WorkspaceCarver& ws) const {
  const Conv2dGeometry& g = ctx_.g;
  Buffers b{};
  const int64_t dw_size = taps_ * g.ic_per_group() * g.oc;
  b.partials = split_pixels_ ? ws.take_floats(ctx_.threads * dw_size) : nullptr;
  b.bias_partials = ws.take_floats(int64_t{ctx_.threads} * g.oc);
  return b;
}

std::size_t WgradPlan::workspace_size() const {
  WorkspaceCarver dry(nullptr);
  carve(dry);
  return dry.required();
}

void WgradPlan::run_items(const float* x, const float* dz, float* dw, int64_t i0, int64_t i1, int64_t u0, int64_t u1,
                          bool overwrite_first, float* bias, int64_t r0, int64_t r1) const {
  const Conv2dGeometry& g = ctx_.g;
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), nr = ctx_.k->nr;
  const int64_t x_image = g.ih * g.iw * g.ic, dz_image = g.oh * g.ow * g.oc;
  for (int64_t u = u0; u < u1; ++u) {
    // Unit u: chunk q of the images [n, n + images) (fewer in the last group).
    const int64_t n = u / chunks_ * images_, q = u % chunks_, images = std::min(images_, g.n - n);
    const bool first = overwrite_first && u == u0;
    for (int64_t it = i0; it < i1; ++it) {
      // Item = (convolution group, tap, group of output blocks, channel tile, output block), output block fastest.
      const int64_t per_tap = oblocks_ * ctiles_, r = it % per_tap;
      const int64_t tap = (it / per_tap) % taps_, grp = it / (per_tap * taps_);
      const int64_t og = r / (og_blocks_ * ctiles_), og_width = std::min(og_blocks_, oblocks_ - og * og_blocks_);
      const int64_t r2 = r - og * og_blocks_ * ctiles_, ct = r2 / og_width, ob = og * og_blocks_ + r2 % og_width;
      const int64_t beg = table_.begin[tap], end = beg + images * table_.per_image[tap];
      const int64_t lo = std::min(beg + q * chunk_, end), hi = std::min(lo + chunk_, end);
      // The first pass must still run with no pixels: it writes the zeros.
      if (hi == lo && !first) continue;
      // The channel tiles split IC/G evenly (64 = 13 + 13 + 13 + 13 + 12 rather than 4 x 14 + 8; 32 = 11 + 11 + 10
      // rather than 14 + 14 + 4): the same FMAs, but no short tile whose few accumulators leave the FMA latency
      // exposed (one thread, Zen 5: 3-5% faster on 3x3 layers at 32 and 64 channels).
      const int64_t c0 = ct * icg / ctiles_, c1 = (ct + 1) * icg / ctiles_, o0 = ob * nr;
      ctx_.k->wgrad(static_cast<std::size_t>(c1 - c0), static_cast<std::size_t>(std::min(nr, ocg - o0)),
                    static_cast<std::size_t>(hi - lo), x + n * x_image + grp * icg + c0, table_.x_off.data() + lo,
                    dz + n * dz_image + grp * ocg + o0, table_.dz_off.data() + lo,
                    dw + (tap * icg + c0) * g.oc + grp * ocg + o0, static_cast<std::size_t>(g.oc), first ? 0 : 1);
    }
    // After the unit's items, while its dz rows are still in cache: their part of the bias gradient.
    if (bias) add_unit_bias(dz, u, r0, r1, bias);
  }
}

void WgradPlan::add_unit_bias(const float* dz, int64_t u, int64_t r0, int64_t r1, float* bias) const {
  // Unit u's share of the output pixels: part q of chunks_ of its images' rows (any partition would do; this one
  // follows the pixels the unit's items read).
  const Conv2dGeometry& g = ctx_.g;
  const int64_t n = u / chunks_ * images_, q = u % chunks_, images = std::min(images_, g.n - n);
  const int64_t rows = images * g.oh * g.ow, first = n * g.oh * g.ow;
  add_bias_rows(dz, std::max(r0, first + rows * q / chunks_), std::min(r1, first + rows * (q + 1) / chunks_), g.oc,
                bias);
}

void WgradPlan::run(const float* x, const float* dz, float* dw, float* db, WorkspaceCarver& ws) const {
  const Conv2dGeometry& g = ctx_.g;
  const Buffers b = carve(ws);
  const int64_t units = units_;
  // The bias gradient rides along: each thread adds its share of the dz rows into its own partial sums right after
  // its items have read them (the rows of its units, or where every thread walks every unit, slice t of all rows),
  // instead of a separate pass over dz from memory at the end.
  float* const bias = db ? b.bias_partials : nullptr;
  const auto bias_of = [&](int t) {  // slice t's partial sums, zeroed
    if (bias) std::fill_n(bias + int64_t{t} * g.oc, g.oc, 0.0f);
    return bias ? bias + int64_t{t} * g.oc : nullptr;
  };
  const int64_t rows = g.n * g.oh * g.ow;
  int slices = 0;
  if (!split_pixels_) {
    // Each thread owns whole items (disjoint parts of dw) and walks all the pixels.
    slices = parallel_for(ctx_.threads, items_, [&](int64_t i0, int64_t i1, int t) {
      const int64_t nt = std::min<int64_t>(ctx_.threads, items_);
      run_items(x, dz, dw, i0, i1, 0, units, true, bias_of(t), rows * t / nt, rows * (t + 1) / nt);
    });
  } else {
    const int64_t dw_size = taps_ * g.ic_per_group() * g.oc;
    slices = parallel_for(ctx_.threads, units, [&](int64_t u0, int64_t u1, int t) {
      run_items(x, dz, b.partials + t * dw_size, 0, items_, u0, u1, true, bias_of(t), 0, rows);
    });
    parallel_for(ctx_.threads, dw_size, [&](int64_t e0, int64_t e1, int) {
      for (int64_t e = e0; e < e1; ++e) {
        float s = 0.0f;
        for (int t = 0; t < slices; ++t) s += b.partials[t * dw_size + e];
        dw[e] = s;
      }
    });
  }
  if (db) sum_bias_partials(bias, slices, g.oc, db);
}

void add_bias_rows(const float* dz, int64_t r0, int64_t r1, int64_t oc, float* sum) {
  // (r1 <= r0 adds nothing.)
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = dz + r * oc;
    for (int64_t o = 0; o < oc; ++o) sum[o] += row[o];
  }
}

void sum_bias_partials(const float* partials, int slices, int64_t oc, float* db) {
  for (int64_t o = 0; o < oc; ++o) {
    float s = 0.0f;
    for (int t = 0; t < slices; ++t) s += partials[t * oc + o];
    db[o] = s;
  }
}

void bias_gradient(int64_t rows, int64_t oc, const float* dz, float* db, float* partials, int threads) {
  const int used = parallel_for(threads, rows, [&](int64_t r0, int64_t r1, int t) {
    std::fill_n(partials + t * oc, oc, 0.0f);
    add_bias_rows(dz, r0, r1, oc, partials + t * oc);
  });
  sum_bias_partials(partials, used, oc, db);
}

}  // namespace convkit::ops
