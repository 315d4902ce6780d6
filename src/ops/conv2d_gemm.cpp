// gemm_1x1: a 1x1 convolution with no padding is a GEMM over the NHWC rows of the output pixels:
//   forward:          y (N*OH*OW, OC) = x (N*OH*OW source pixels, IC) . w (IC, OC)     (per group: column slices)
//   backward data:    dx (source pixels, IC) = dz (N*OH*OW, OC) . w^T; with a stride, the other pixels of dx are 0
//   backward weights: the shared reduction of conv2d_wgrad.hpp (one tap, every output pixel).
// With stride 1 the source pixels are all of x, contiguous; with a stride (sh, sw) output pixel (oy, ox) reads input
// pixel (oy * sh, ox * sw): the rows go through a one-tap offset table and the indirect GEMM kernel (no copy). Each
// input pixel is the source of at most one output pixel, so backward data writes its rows once (no scatter-add).
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_pack.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

// With stride 1 the rows are contiguous across the images, so the weight gradient may reduce over all N * H * W of
// them as one tall image: each dw tile is then written once per 256-pixel chunk instead of once per image (Dense
// runs here with one pixel per image: 64 passes over dw per step otherwise). (Strided, IH = OH * SH would allow
// it too, but measured slower on res4a_branch1 at mb 32, one thread: 41-43 ms against 37-41 ms per image.)
Conv2dContext as_one_image(Conv2dContext ctx) {
  if (ctx.g.sh != 1 || ctx.g.sw != 1) return ctx;
  ctx.g.ih *= ctx.g.n;
  ctx.g.oh *= ctx.g.n;
  ctx.g.n = 1;
  return ctx;
}

class Gemm1x1 final : public detail::Conv2dImpl {
 public:
  explicit Gemm1x1(const Conv2dContext& ctx) : ctx_(ctx), wgrad_(as_one_image(ctx)) {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, mr = ctx_.k->mr;
    rows_ = g.n * g.oh * g.ow;
    tiles_ = (rows_ + mr - 1) / mr;
    fwd_blocks_ = (g.oc_per_group() + nr - 1) / nr;
    bwd_blocks_ = (g.ic_per_group() + nr - 1) / nr;
    fwd_block_floats_ = packed_block_floats(g.ic_per_group(), nr);
    bwd_block_floats_ = packed_block_floats(g.oc_per_group(), nr);
    strided_ = g.sh != 1 || g.sw != 1;
    fwd_tiles_fastest_ = tiles_fastest(g.ic_per_group(), g.oc_per_group());
    bwd_tiles_fastest_ = tiles_fastest(g.oc_per_group(), g.ic_per_group());
    // Forward per call with the tiles fastest copies each weight block into a per-thread buffer before its tiles:
    // measured at mb 1 (2 threads), res5a_branch1 (1024 x 2048) 0.95 -> 0.70 ms, Dense 3136 x 1024 on 64 rows 1.55
    // -> 1.44 ms, no change on res4a_branch1 (512 x 1024). Over x's rows in place (stride 1, or gathered), a
    // thread's first tile over a block reads the kernel in place and writes the block as it goes (GemmParams::pack)
    // instead of a separate copy before it: measured (`convkit bench --weights per_call`, medians of 3-5
    // alternating runs) res5a_branch1 0.75 -> 0.64 ms, res5a_branch2c 0.36 -> 0.32, res5b_branch2a 0.35 -> 0.31 at
    // mb 1, the Fashion-MNIST CNN's Dense 3136 x 1024 at mb 64 1.60 -> 1.48. With the blocks fastest (B <= 1 MiB,
    // many tiles) a copy per call did not pay (res3a_branch1 0.41 -> 0.43 ms): the rows in place stay in L2. No
    // more buffers than blocks, so that they stay within the packed weights' size (the workspace bound).
    // With several chunks a thread would copy its blocks once per chunk: the whole kernel is packed first instead
    // (one pass over it, into the workspace: within the packed weights' size).
    fwd_chunk_ = fwd_tiles_fastest_ ? chunk_tiles(g.ic_per_group()) : tiles_;
    bwd_chunk_ = bwd_tiles_fastest_ ? chunk_tiles(g.oc_per_group()) : tiles_;
    full_pack_ = fwd_tiles_fastest_ && fwd_chunk_ < tiles_;
    thread_pack_ = !full_pack_ && fwd_tiles_fastest_ && tiles_ > 1 && g.groups * fwd_blocks_ >= ctx_.threads;
    // Strided forward reads its rows sw * IC floats apart. Where that puts more than 8 of a tile's MR rows in one
    // set of a 64-set L1 (sw * IC * 4 a multiple of 4 KiB with MR 14: res4a_branch1), the rows are first gathered
    // into the workspace: measured (one thread, CPU time) res4a_branch1 mb 1 0.91 -> 0.84 ms, mb 32 33.3 -> 29.1
    // ms; elsewhere the copy costs more than it saves (res3a_branch1, 2 KiB apart: 0.84 -> 0.86 ms).
    if (strided_) {
      const int64_t line_step = g.sw * g.ic * int64_t{sizeof(float)} % 4096 == 0 ? 0 : g.sw * g.ic * 4 / 64;
      const int64_t sets = line_step == 0 ? 1 : 64 / std::gcd(line_step, int64_t{64});
      gather_ = (mr + sets - 1) / sets > 8;
    }
    // Rows of A a multiple of 4 KiB apart (1024 or 2048 channels) put all MR rows of a tile in one set of the
    // 12-way L1, which then misses on every step of the reduction (measured at mb 1: MobileNet conv6/pw forward and
    // backward data 0.62-0.70x oneDNN, conv5_6/pw backward data 0.66-0.78x). Such A (x forward, dz backward data)
    // is first copied into the workspace with rows 64 bytes longer, where that copy keeps the workspace within the
    // input plus the packed weights of one direction (tests/ops/test_conv2d_workspace.cpp): backward data per call
    // also packs its blocks there, so it may do without the copy where backward_data_packed has it.
    const int64_t bound = g.n * g.ih * g.iw * g.ic + std::max(forward_pack_floats(), backward_pack_floats());
    const int64_t fwd_other =
        (thread_pack_ ? ctx_.threads * fwd_block_floats_ : 0) + (full_pack_ ? forward_pack_floats() : 0);
    fwd_lda_ = g.ic;
    if (aliasing_stride(g.ic) && (gather_ || !strided_) && rows_ * (g.ic + kRowPad) + fwd_other <= bound)
      fwd_lda_ = g.ic + kRowPad;
    copy_fwd_ = gather_ || fwd_lda_ != g.ic;
    // The wide kernel (two packed blocks a tile) over rows of x in place or copied, with the column blocks fastest,
    // where one tile of it covers a group's 2 NR output channels. Measured (convkit bench --vs onednn at mb 32,
    // medians of 8-10 runs of each build alternating, ratio to oneDNN before -> after): 64 -> 64 channels (56x56)
    // 0.92-0.94 -> 1.00-1.04, 256 -> 64 0.86-0.87 -> 0.97-1.12, 32 -> 64 (112x112) 0.89 -> 1.00-1.03; mb 1 even to
    // 0.93 -> 1.02. Elsewhere it did not pay: 64 -> 48 / 40 0.72 / 0.83 -> 0.66 / 0.80 (a partial second block),
    // 64 -> 128 0.97-0.99 -> 0.98-1.08, 128 -> 128 0.91-0.92 -> 0.93, 512 -> 128 0.99 -> 0.95, 64 -> 256 1.01 ->
    // 0.93, 128 -> 512 0.99 -> 0.96.
    // Backward data likewise where a group has 2 NR input channels (its GEMM's columns), stride 1: ratio to oneDNN
    // with -> without (both with its prefetch; medians of 8 alternating runs): mb 32 res2a_branch1 1.25 / 1.07,
    // res2a_branch2a 1.05 / 1.02, conv2_2/pw 1.31 / 1.21; mb 1 1.08 / 1.06, 1.16 / 1.10, 1.11 / 1.06.
    fwd_wide_ = ctx_.k->gemm_wide && (!strided_ || copy_fwd_) && !fwd_tiles_fastest_ && g.oc_per_group() == 2 * nr;
    bwd_wide_ = ctx_.k->gemm_wide && !strided_ && !bwd_tiles_fastest_ && g.ic_per_group() == 2 * nr;
    if (ctx_.k->gemm_wide) wide_tiles_ = (rows_ + ctx_.k->wide_mr - 1) / ctx_.k->wide_mr;
    fwd_prefetch_ = (!strided_ || copy_fwd_) && !fwd_tiles_fastest_ &&
                    prefetch_rule(g.ic_per_group(), fwd_blocks_, fwd_wide_, true);
    bwd_prefetch_ = !strided_ && !bwd_tiles_fastest_ && prefetch_rule(g.oc_per_group(), bwd_blocks_, bwd_wide_, false);
    const bool bwd_aliasing = aliasing_stride(g.oc);
    bwd_copy_packed_ = bwd_aliasing && rows_ * (g.oc + kRowPad) <= bound;
    bwd_copy_call_ = bwd_aliasing && rows_ * (g.oc + kRowPad) + backward_pack_floats() <= bound;
    if (strided_) {
      // src_off_[tile * mr + r]: x / dx offset of the source pixel of output row tile * mr + r (past the last row,
      // the last row again); out_off_: r * OC, the rows of y / dz within a tile (tail_off_ for the last tile, whose
      // rows past its end repeat its last row: the kernel reads them).
      src_off_.resize(static_cast<std::size_t>(tiles_ * mr));
      for (int64_t i = 0; i < tiles_ * mr; ++i) {
        const int64_t r = std::min(i, rows_ - 1), n = r / (g.oh * g.ow), oy = r / g.ow % g.oh, ox = r % g.ow;
        src_off_[static_cast<std::size_t>(i)] = ((n * g.ih + oy * g.sh) * g.iw + ox * g.sw) * g.ic;
      }
      const int64_t last = rows_ - (tiles_ - 1) * mr;
      for (int64_t r = 0; r < mr; ++r) {
        out_off_.push_back(r * g.oc);
        tail_off_.push_back(std::min(r, last - 1) * g.oc);
        // The same rows of dz copied OC + kRowPad apart (backward data through the indirect kernel).
        dz_off_.push_back(r * (g.oc + kRowPad));
        dz_tail_off_.push_back(std::min(r, last - 1) * (g.oc + kRowPad));
      }
    }
  }

  std::size_t workspace_size() const override {
    WorkspaceCarver ws(nullptr), f(nullptr);
    ws.take_floats(backward_pack_floats());
    if (copy_fwd_) f.take_floats(rows_ * fwd_lda_);
    if (bwd_copy_call_) ws.take_floats(rows_ * (ctx_.g.oc + kRowPad));
    WorkspaceCarver wp(nullptr);
    if (bwd_copy_packed_) wp.take_floats(rows_ * (ctx_.g.oc + kRowPad));
    if (thread_pack_) f.take_floats(ctx_.threads * fwd_block_floats_);
    if (full_pack_) f.take_floats(forward_pack_floats());
    return std::max({ws.required(), wp.required(), f.required(), wgrad_.workspace_size()});
  }

  std::string kernels() const override {
    const std::string gemm = ctx_.k->gemm_name, igemm = ctx_.k->igemm_name;
    std::string padded;
    if (fwd_lda_ != ctx_.g.ic) padded += " x";
    if (bwd_copy_packed_ || bwd_copy_call_)
      padded += std::string(padded.empty() ? " " : " and ") + (bwd_copy_call_ ? "dz" : "dz (packed weights)");
    if (!padded.empty()) padded = ";" + padded + " rows copied 64 bytes longer (4 KiB rows alias in L1)";
    if (fwd_prefetch_) padded += "; forward prefetches the next row tile of x (short rows streamed from memory)";
    if (bwd_prefetch_) padded += "; backward data prefetches the next row tile of dz";
    const std::string fwd = fwd_wide_ ? std::string(ctx_.k->gemm_wide_name) : gemm;
    if (!strided_) {
      const std::string bwd = bwd_wide_ ? std::string(ctx_.k->gemm_wide_name) : gemm;
      const std::string gemms = fwd == bwd ? fwd + " (forward, backward data)"
                                           : fwd + " (forward), " + bwd + " (backward data)";
      return gemms + ", " + wgrad_.name() + padded;
    }
    return (gather_ ? fwd + " on the gathered strided rows" : igemm + " on the strided rows") + " (forward), " +
           igemm + " into the strided rows (backward data), " + wgrad_.name() + padded;
  }

  // Packed: the forward blocks (per group, NR output channels, IC/G rows), then the backward-data blocks (per
  // group, NR input channels, OC/G rows).
  std::size_t packed_weights_floats() const override {
    return static_cast<std::size_t>(forward_pack_floats() + backward_pack_floats());
  }

  std::size_t packed_forward_floats() const override { return static_cast<std::size_t>(forward_pack_floats()); }
  void pack_forward_weights(const float* w, float* packed) const override {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, nb = fwd_blocks_;
    parallel_for(ctx_.threads, g.groups * nb, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i) pack_forward_block(g, nr, w, i / nb, i % nb, packed + i * fwd_block_floats_);
    });
  }

  void pack_weights(const float* w, float* packed) const override {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, nf = g.groups * fwd_blocks_, nbk = g.groups * bwd_blocks_;
    float* bwd = packed + forward_pack_floats();
    static constexpr int32_t kTap0[] = {0};
    parallel_for(ctx_.threads, nf + nbk, [&](int64_t b0, int64_t b1, int) {
      for (int64_t i = b0; i < b1; ++i) {
        if (i < nf)
          pack_forward_block(g, nr, w, i / fwd_blocks_, i % fwd_blocks_, packed + i * fwd_block_floats_);
        else
          pack_backward_data_block(g, nr, kTap0, w, (i - nf) / bwd_blocks_, (i - nf) % bwd_blocks_,
                                   bwd + (i - nf) * bwd_block_floats_);
      }
    });
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    // The kernel (IC/G, OC) read in place, or block by block into each thread's buffer.
    WorkspaceCarver carver(ws);
    const Rows a = source_rows(x, carver);
    float* buffers = thread_pack_ ? carver.take_floats(ctx_.threads * fwd_block_floats_) : nullptr;
    if (full_pack_) {
      float* packed = carver.take_floats(forward_pack_floats());
      pack_forward_weights(w, packed);
      run_forward(a, Weights{packed, ctx_.k->nr, fwd_blocks_ * fwd_block_floats_, fwd_block_floats_}, b, y, nullptr);
      return;
    }
    run_forward(a, Weights{w, g.oc, g.oc_per_group(), 0}, b, y, buffers);
  }

  void forward_packed(const float* x, const float* w, const float* packed, const float* b, float* y,
                      void* ws) const override {
    (void)w;
    WorkspaceCarver carver(ws);
    const Rows a = source_rows(x, carver);
    run_forward(a, Weights{packed, ctx_.k->nr, fwd_blocks_ * fwd_block_floats_, fwd_block_floats_}, b, y, nullptr);
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
    run_backward_data(dz_rows(dz, bwd_copy_call_, carver), packed, dx);
  }

  void backward_data_packed(const float* dz, const float* w, const float* packed, float* dx,
                            void* ws) const override {
    (void)w;
    WorkspaceCarver carver(ws);
    run_backward_data(dz_rows(dz, bwd_copy_packed_, carver), packed + forward_pack_floats(), dx);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    WorkspaceCarver carver(ws);
    wgrad_.run(x, dz, dw, db, carver);
  }

 private:
  // Where block j of group grp starts: w + grp * group_step + j * block_step (block_step 0: blocks nr columns apart
  // in place), rows `stride` apart.
  struct Weights {
    const float* w;
    int64_t stride, group_step, block_step;
    const float* block(int64_t grp, int64_t j, int64_t nr) const {
      return w + grp * group_step + (block_step ? j * block_step : j * nr);
    }
  };

  int64_t forward_pack_floats() const { return ctx_.g.groups * fwd_blocks_ * fwd_block_floats_; }
  int64_t backward_pack_floats() const { return ctx_.g.groups * bwd_blocks_ * bwd_block_floats_; }

  // The items of a GEMM: (row tile, group, column block). Which operand stays in cache: with the column blocks
  // fastest, one row tile of A is reused across all of B (B re-read per tile); with the row tiles fastest, one
  // column block of B (k x nr) is reused across all of A. The latter when B is too large to stay in cache (Dense: a
  // 3136 x 1024 kernel, few rows).
  struct Item {
    int64_t tile, grp, j;
  };
  // With the tiles fastest, the tiles come in chunks of `chunk` (A's rows of one chunk stay in L2 while every block
  // of B passes over them): it = ((chunk index * G + grp) * nb + j) * chunk + tile in the chunk, the last chunk
  // shorter (its items are counted as they are: the index space is tiles * G * nb).
  static Item item(int64_t it, int64_t tiles, int64_t G, int64_t nb, bool tiles_fastest, int64_t chunk) {
    if (!tiles_fastest) return {it / (nb * G), (it / nb) % G, it % nb};
    const int64_t per_chunk = chunk * G * nb, c = it / per_chunk, rest = it % per_chunk;
    const int64_t len = std::min(chunk, tiles - c * chunk);  // this chunk's tiles
    return {c * chunk + rest % len, rest / (len * nb), (rest / len) % nb};
  }
  // Tiles per chunk for a reduction of k: all of them while A (rows x k) fits in 1 MiB (half of L2), else about
  // 512 KiB of A. Measured (one thread, CPU time) on res4a_branch1 at mb 32: 40.5 -> 33.3 ms forward (unchunked,
  // A re-read from memory for every block of B).
  int64_t chunk_tiles(int64_t k) const {
    const int64_t tile_bytes = ctx_.k->mr * k * int64_t{sizeof(float)};
    if (tiles_ * tile_bytes <= (int64_t{1} << 20)) return tiles_;
    return std::clamp<int64_t>((int64_t{512} << 10) / tile_bytes, 1, tiles_);
  }
  // Whether an output of `floats` goes out with non-temporal stores (uk::GemmParams::stream): past half of a 32 MiB
  // L3 little of it would still be cached when the next layer reads it, and the stores save reading every line
  // first. Measured at mb 32 (ratio to oneDNN, medians of 3): res2a_branch1 forward (103 MB out) 0.64 -> 0.91.
  static bool streams(int64_t floats) { return floats * int64_t{sizeof(float)} > kStreamBytes; }
  static bool tiles_fastest(int64_t k, int64_t cols) { return k * cols * int64_t{sizeof(float)} > (int64_t{1} << 20); }

  // Floats added to a row of A copied for being a multiple of 4 KiB long (one cache line).
  static constexpr int64_t kRowPad = 16;
  static bool aliasing_stride(int64_t floats) { return floats * int64_t{sizeof(float)} % 4096 == 0; }

  // The rows of A: x in place (rows IC apart, or read through src_off_ when strided), or copied into the workspace
  // (gathered from the strided rows, and/or fwd_lda_ apart).
  struct Rows {
    const float* a;
    int64_t lda;
    bool dense;  // forward: row r at a + r * lda, else through src_off_ (backward data goes by strided_)
  };
  Rows source_rows(const float* x, WorkspaceCarver& carver) const {
    const Conv2dGeometry& g = ctx_.g;
    if (!copy_fwd_) return {x, g.ic, !strided_};
    float* a = carver.take_floats(rows_ * fwd_lda_);
    copy_rows(x, g.ic, strided_ ? src_off_.data() : nullptr, a, fwd_lda_);
    return {a, fwd_lda_, true};
  }
  // The rows of dz for backward data: in place (OC apart), or with `copy` copied OC + kRowPad apart.
  Rows dz_rows(const float* dz, bool copy, WorkspaceCarver& carver) const {
    const int64_t oc = ctx_.g.oc;
    if (!copy) return {dz, oc, true};
    float* a = carver.take_floats(rows_ * (oc + kRowPad));
    copy_rows(dz, oc, nullptr, a, oc + kRowPad);
    return {a, oc + kRowPad, true};
  }
  // Row r of `to` (ld apart) = the n floats of row r of `from` (at off[r], or r * n).
  void copy_rows(const float* from, int64_t n, const int64_t* off, float* to, int64_t ld) const {
    parallel_for(ctx_.threads, rows_, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) std::copy_n(from + (off ? off[r] : r * n), n, to + r * ld);
    });
  }

  // Whether the forward GEMM, with its column blocks fastest over rows of x in place, prefetches the next row tile
  // of x while it runs the current tile's blocks (each block a share of the lines). Where the rows are short the
  // hardware's prefetcher, following each of a tile's rows on its own, has too few lines a row to find the streams
  // in, and each new tile waits on memory; where x and y stay in cache the prefetches only cost issue slots.
  // Measured (2 threads, forward_packed with and without in alternation in one process: bench/gemm_prefetch, medians
  // of 15-21 rounds; K -> N at mb 32). The 14 x 32 kernel: 64 -> 64 (56x56) 3.08 -> 2.52 ms, 64 -> 256 11.05 ->
  // 9.93, 128 -> 128 10.84 -> 9.59, 32 -> 64 (112x112) 5.82 -> 5.57; at mb 16 (x + y 26 / 19 MB) 15% / 7% faster,
  // at mb 8 (13 / 10 MB) 8% / 3% slower, at mb 1 4-13% slower; rows of 1-2 KiB 3-12% slower. The wide kernel (6
  // rows a tile, 64 columns): 64 -> 64 0.5-2% faster, 32 -> 64 10-11% slower (its 6 rows are 12 lines in a row: a
  // stream the hardware finds), 256 -> 64 2% faster to 11% slower.
  // Backward data (rows of dz, k = OC/G; `gemm_prefetch 32 15 bwd_d`, the same rounds, the layers named by their
  // forward shape K -> N, so dz rows of N floats): 128 -> 32 (112x112) 7.51 -> 6.12 ms, 128 -> 64 5.98 -> 4.95, 128
  // -> 128 13.07 -> 10.74, 256 -> 128 5.59 -> 4.97, 256 -> 64 12.22 -> 11.14, 64 -> 256 13.49 -> 12.37, 512 -> 128
  // 10.75 -> 10.28 (rows of 512 bytes), 64 -> 64 even; rows of 2 KiB even (128 -> 512 9.82 / 9.84): there it
  // prefetches for rows up to 1 KiB, whatever the kernel and the blocks. At mb 8 the same 10-14% faster where x + y
  // are 26-38 MB, but 12% slower for 64 -> 128 (19 MB).
  bool prefetch_rule(int64_t k, int64_t blocks, bool wide, bool forward) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t row_bytes = k * int64_t{sizeof(float)};
    if (rows_ * (g.ic + g.oc) * int64_t{sizeof(float)} <= kStreamBytes) return false;
    if (!forward) return row_bytes <= 1024;
    return wide ? row_bytes >= 256 && row_bytes <= 512 : row_bytes <= 512 && blocks > 1;
  }
  // Part `part` of `parts` of the lines of `rows` rows of A (n floats each, lda apart) from a, prefetched. Inlined
  // always: GCC takes a function whose only effects are prefetches for one with none, and drops its calls.
  [[gnu::always_inline]] static inline void prefetch_rows(const float* a, int64_t lda, int64_t rows, int64_t n,
                                                          int64_t part, int64_t parts) {
    const auto first = reinterpret_cast<std::uintptr_t>(a) / 64;
    const int64_t row_lines = static_cast<int64_t>((reinterpret_cast<std::uintptr_t>(a + n) + 63) / 64 - first);
    const int64_t lines = rows * row_lines, per = (lines + parts - 1) / parts, l0 = part * per;
    int64_t r = l0 / row_lines, c = l0 % row_lines;
    for (int64_t l = l0, e = std::min(lines, l0 + per); l < e; ++l) {
      __builtin_prefetch(reinterpret_cast<const char*>(a + r * lda) + c * 64, 0, 3);
      if (++c == row_lines) c = 0, ++r;
    }
  }

  // y (rows, OC) = x rows . B (+ bias, activation); the rows of x are contiguous (stride 1) or read through
  // src_off_. (Gathering the strided rows into the workspace first, for the plain GEMM, was measured slower at mb 1:
  // res4a_branch1 0.453 -> 0.465 ms, res3a_branch1 0.429 -> 0.440 ms.) With `buffers` (threads x one block), each
  // thread packs the blocks it works on from the in-place kernel into its buffer (the tiles are fastest, so each
  // block is packed once per thread and then read by all the tiles): the in-place rows, OC floats apart, alias in
  // the caches. The plain GEMM packs during the block's first tile; the indirect one copies the block first.
  void run_forward(const Rows& rows, const Weights& wb, const float* bias, float* y, float* buffers) const {
    if (fwd_wide_)
      // The second block: the next packed block, or the next NR columns of the kernel in place.
      return run_wide(rows.a, rows.lda, ctx_.g.ic_per_group(), wb.w, wb.group_step, wb.stride,
                      wb.block_step ? wb.block_step : ctx_.k->nr, bias, ctx_.activation, y, ctx_.g.oc,
                      prefetching(fwd_prefetch_));
    const float* x = rows.a;
    const bool dense = rows.dense;
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr, G = g.groups, nb = fwd_blocks_, tiles = tiles_;
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
    const Activation act = ctx_.activation;
    uk::GemmParams params = gemm_params(act);
    const bool post = needs_post_activation(act), tf = fwd_tiles_fastest_;
    params.stream = !post && streams(rows_ * g.oc);
    const int64_t chunk = fwd_chunk_;
    const bool prefetch = dense && !tf && prefetching(fwd_prefetch_);
    parallel_for(ctx_.threads, tiles * G * nb, [&](int64_t i0, int64_t i1, int slice) {
      float* mine = buffers ? buffers + slice * fwd_block_floats_ : nullptr;
      int64_t have = -1;
      for (int64_t it = i0; it < i1; ++it) {
        const Item t = item(it, tiles, G, nb, tf, chunk);
        const int64_t r0 = t.tile * mr, m = std::min(mr, rows_ - r0), col = t.grp * ocg + t.j * nr;
        const int64_t nc = std::min(nr, ocg - t.j * nr);
        float* cp = y + r0 * g.oc + col;
        const float* bb = bias ? bias + col : nullptr;
        const float* wp = wb.block(t.grp, t.j, nr);
        int64_t w_stride = wb.stride;
        const uk::GemmParams* pp = &params;
        uk::GemmParams packing{};
        if (mine) {
          if (have != t.grp * nb + t.j) {
            have = t.grp * nb + t.j;
            if (dense) {
              // This thread's first tile over the block reads the kernel in place and packs it as it goes.
              packing = params;
              packing.pack = mine;
              pp = &packing;
            } else {
              pack_forward_block(g, nr, wb.w, t.grp, t.j, mine);
            }
          }
          if (pp == &params) {
            wp = mine;
            w_stride = nr;
          }
        }
        if (prefetch && t.tile + 1 < tiles)
          prefetch_rows(x + (r0 + mr) * rows.lda + t.grp * icg, rows.lda, std::min(mr, rows_ - r0 - mr), icg, t.j, nb);
        if (dense)
          ctx_.k->gemm(static_cast<std::size_t>(m), static_cast<std::size_t>(nc), static_cast<std::size_t>(icg),
                       x + r0 * rows.lda + t.grp * icg, static_cast<std::size_t>(rows.lda), wp,
                       static_cast<std::size_t>(w_stride), bb, cp, static_cast<std::size_t>(g.oc), pp);
        else
          ctx_.k->igemm(static_cast<std::size_t>(m), static_cast<std::size_t>(nc), static_cast<std::size_t>(icg), 1,
                        x + t.grp * icg, src_off_.data() + r0, x, wp, static_cast<std::size_t>(w_stride), bb, cp,
                        out_off_.data(), &params);
        if (post)
          for (int64_t r = 0; r < m; ++r) activation_forward(act, cp + r * g.oc, nc);
      }
      if (params.stream) uk::store_fence();
    });
  }

  // A GEMM through the wide kernel, stride 1 (or over copied rows): C (rows_, G x 2 NR columns, ldc apart) = A (rows
  // of k floats a group, lda apart) . B, group grp's two blocks at w + grp * w_group, rows w_stride apart, the second
  // block `half` floats after the first; tiles of wide_mr rows, one item per tile and group.
  void run_wide(const float* a, int64_t lda, int64_t k, const float* w, int64_t w_group, int64_t w_stride,
                int64_t half, const float* bias, Activation act, float* c, int64_t ldc, bool prefetch) const {
    const int64_t mr = ctx_.k->wide_mr, n = 2 * ctx_.k->nr, G = ctx_.g.groups, tiles = wide_tiles_;
    uk::GemmParams params = gemm_params(act);
    const bool post = needs_post_activation(act);
    params.stream = !post && streams(rows_ * ldc);
    parallel_for(ctx_.threads, tiles * G, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t tile = it / G, grp = it % G, r0 = tile * mr, m = std::min(mr, rows_ - r0);
        float* cp = c + r0 * ldc + grp * n;
        if (prefetch && tile + 1 < tiles)
          prefetch_rows(a + (r0 + mr) * lda + grp * k, lda, std::min(mr, rows_ - r0 - mr), k, 0, 1);
        ctx_.k->gemm_wide(static_cast<std::size_t>(m), static_cast<std::size_t>(n), static_cast<std::size_t>(k),
                          a + r0 * lda + grp * k, static_cast<std::size_t>(lda), w + grp * w_group,
                          static_cast<std::size_t>(w_stride), static_cast<std::size_t>(half),
                          bias ? bias + grp * n : nullptr, cp, static_cast<std::size_t>(ldc), &params);
        if (post)
          for (int64_t r = 0; r < m; ++r) activation_forward(act, cp + r * ldc, n);
      }
      if (params.stream) uk::store_fence();
    });
  }
  bool prefetching(bool rule) const {
    const int force = g_gemm_1x1_prefetch.load(std::memory_order_relaxed);
    return force >= 0 ? force == 1 : rule;
  }

  // dx (source rows, IC) = dz . packed w^T blocks; with a stride, the pixels of dx no output pixel reads get 0.
  void run_backward_data(const Rows& dzr, const float* packed, float* dx) const {
    const float* dz = dzr.a;
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr, G = g.groups, nb = bwd_blocks_, tiles = tiles_;
    const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
    const bool prefetch = prefetching(bwd_prefetch_);
    if (bwd_wide_)
      return run_wide(dz, dzr.lda, ocg, packed, nb * bwd_block_floats_, nr, bwd_block_floats_, nullptr,
                      Activation::none, dx, g.ic, prefetch);
    uk::GemmParams params = gemm_params(Activation::none);
    params.stream = !strided_ && streams(rows_ * g.ic);
    const bool tf = bwd_tiles_fastest_;
    const int64_t chunk = bwd_chunk_;
    const int64_t items = tiles * G * nb, in_rows = g.n * g.ih;
    parallel_for(ctx_.threads, items, [&](int64_t i0, int64_t i1, int) {
      // The zeros first, a share of the input rows in proportion to the items (the slices of the items partition
      // them, so the shares partition the rows); the GEMM writes other pixels only.
      if (strided_) zero_unread(dx, in_rows * i0 / items, in_rows * i1 / items);
      for (int64_t it = i0; it < i1; ++it) {
        const Item t = item(it, tiles, G, nb, tf, chunk);
        const int64_t r0 = t.tile * mr, m = std::min(mr, rows_ - r0), col = t.grp * icg + t.j * nr;
        const int64_t nc = std::min(nr, icg - t.j * nr);
        const float* wb = packed + (t.grp * nb + t.j) * bwd_block_floats_;
        if (prefetch && !tf && t.tile + 1 < tiles)
          prefetch_rows(dz + (r0 + mr) * dzr.lda + t.grp * ocg, dzr.lda, std::min(mr, rows_ - r0 - mr), ocg, t.j, nb);
        if (!strided_)
          ctx_.k->gemm(static_cast<std::size_t>(m), static_cast<std::size_t>(nc), static_cast<std::size_t>(ocg),
                       dz + r0 * dzr.lda + t.grp * ocg, static_cast<std::size_t>(dzr.lda), wb,
                       static_cast<std::size_t>(nr), nullptr, dx + r0 * g.ic + col, static_cast<std::size_t>(g.ic),
                       &params);
        else
          ctx_.k->igemm(static_cast<std::size_t>(m), static_cast<std::size_t>(nc), static_cast<std::size_t>(ocg), 1,
                        dz + r0 * dzr.lda + t.grp * ocg, dz_offsets(dzr.lda != g.oc, t.tile + 1 == tiles), dz,
                        wb, static_cast<std::size_t>(nr), nullptr, dx + col, src_off_.data() + r0, &params);
      }
      if (params.stream) uk::store_fence();
    });
  }

  // Zeros the pixels of input rows [q0, q1) (q = image * IH + iy) that are no output pixel's source.
  void zero_unread(float* dx, int64_t q0, int64_t q1) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t row = g.iw * g.ic;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t iy = q % g.ih;
      float* p = dx + q * row;
      if (iy % g.sh != 0 || iy / g.sh >= g.oh) {
        std::fill_n(p, row, 0.0f);
        continue;
      }
      // Read pixels: ix = ox * sw for ox < OW; the gaps between them, and the tail, are zero.
      if (g.sw > 1)
        for (int64_t ox = 0; ox + 1 < g.ow; ++ox) std::fill_n(p + (ox * g.sw + 1) * g.ic, (g.sw - 1) * g.ic, 0.0f);
      const int64_t tail = (g.ow - 1) * g.sw + 1;
      std::fill_n(p + tail * g.ic, (g.iw - tail) * g.ic, 0.0f);
    }
  }

  Conv2dContext ctx_;
  WgradPlan wgrad_;
  int64_t rows_ = 0, tiles_ = 0;
  int64_t fwd_blocks_ = 0, bwd_blocks_ = 0, fwd_block_floats_ = 0, bwd_block_floats_ = 0;
  bool strided_ = false;
  int64_t fwd_chunk_ = 0, bwd_chunk_ = 0;
  bool fwd_tiles_fastest_ = false, bwd_tiles_fastest_ = false, thread_pack_ = false, full_pack_ = false;
  bool gather_ = false, copy_fwd_ = false, fwd_prefetch_ = false, fwd_wide_ = false;
  bool bwd_prefetch_ = false, bwd_wide_ = false;
  int64_t wide_tiles_ = 0;
  int64_t fwd_lda_ = 0;
  bool bwd_copy_packed_ = false, bwd_copy_call_ = false;
  std::vector<int64_t> src_off_, out_off_, tail_off_, dz_off_, dz_tail_off_;

  // The offsets of a tile's rows of dz for the indirect kernel: OC apart, or OC + kRowPad in the copy; the last tile's
  // rows past its end repeat its last row.
  const int64_t* dz_offsets(bool copied, bool last_tile) const {
    if (copied) return last_tile ? dz_tail_off_.data() : dz_off_.data();
    return last_tile ? tail_off_.data() : out_off_.data();
  }
};

}  // namespace

std::string gemm_1x1_supports(const Conv2dGeometry& g) {
  if (g.kh != 1 || g.kw != 1) return "needs a 1x1 kernel, got " + std::to_string(g.kh) + "x" + std::to_string(g.kw);
  if (g.pad_top || g.pad_bottom || g.pad_left || g.pad_right) return "needs no padding";
  return {};
}

std::unique_ptr<detail::Conv2dImpl> gemm_1x1_create(const Conv2dContext& ctx) { return std::make_unique<Gemm1x1>(ctx); }

}  // namespace convkit::ops
