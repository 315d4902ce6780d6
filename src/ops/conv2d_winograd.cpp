// winograd: 3x3, stride 1, dilation 1 Conv2D by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, 2016): each
// 4x4 block of outputs ("tile") is computed from a 6x6 block of inputs as
//   y = A^T [ sum over channels of U[c] .* V[c] ] A,   U = G g G^T (per kernel),   V = B^T d B (per input tile),
// 36 multiplications per output tile and channel pair instead of 144. The sum over channels of the element-wise
// products is 36 independent GEMMs (element e: tiles x Cin times Cin x Cout), run on f32_wino_gemm (which, unlike
// the GEMM microkernel, computes only the rows it is given: a 7x7 image has 4 tiles); the transforms are the
// src/ukernels/winograd kernels (matrices and transform points there and in docs/numerics.md).
//   forward:          as above, bias and activation fused into the output transform; padding modes other than
//                     zeros read the cells the padded ones copy (core::padded_source);
//   backward data:    dx is the stride-1 correlation of dz with the kernel rotated by 180 degrees, input and output
//                     channels swapped, and padding (2 - pad) per side: the same machinery (zeros padding; the
//                     other modes fold gradients back into the cells copied, which implicit_gemm does for it);
//   backward weights: the shared reduction of conv2d_wgrad.hpp.
// The tiles are processed in blocks (an L2-sized number of tiles per thread, larger when U must be streamed from
// memory): the transformed inputs and the GEMM results of one block are the only per-thread scratch, so the
// workspace is the transformed kernel plus a few blocks, never a transformed copy of the whole input. Where the
// transformed tiles of the whole batch are no larger than U (few tiles, many channels: small images at small
// batches), every block would stream all of U, so all tiles form one block shared by the threads, in three phases
// (input transforms, the GEMMs split over (element, column block) so that U is read once, output transforms). The API passes
// the weights on every call (training changes them), so forward() and backward_data() compute their U into the
// workspace at every call, one pass over the kernel; pack_weights() does both once for weights that do not change
// (inference), and forward_packed() / backward_data_packed() read them, with the same results bit for bit.
#include <algorithm>
#include <cstdint>

#include "convkit/runtime.hpp"
#include "core/shape.hpp"
#include "core/strings.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_wgrad.hpp"
#include "ukernels/winograd/winograd.hpp"

namespace convkit::ops {

namespace {

constexpr int64_t kOut = 4;     // outputs per tile side
constexpr int64_t kIn = 6;      // inputs per tile side
constexpr int64_t kElems = 36;  // elements of a transformed tile
// Per-thread scratch for one block of tiles (transformed inputs + GEMM results): about an L2 cache while the
// transformed kernel fits there too; beyond, the kernel is streamed from memory once per block, and larger blocks
// (up to kBigBlockBytes) amortise it.
constexpr int64_t kBlockBudgetBytes = 1 << 20;
constexpr int64_t kSmallKernelBytes = 512 << 10;
constexpr int64_t kBigBlockBytes = 8 << 20;
// Where automatic selection takes winograd (winograd_pays): channels on both sides, output pixels per image.
constexpr int64_t kWinogradMinChannels = 16;
constexpr int64_t kWinogradMinPixels = 512;
// With the weights packed once: at least this many tiles in the batch, and at least this many output pixels per
// 4x4 tile (16 when the output is a multiple of 4; 7x7 and 14x14: 12.25; 6x6: 9; 5x5: 6.25).
// A transformed kernel beyond kWinogradStreamedKernelBytes is streamed from memory at every call, each float
// feeding one FMA per tile: then at least kWinogradStreamedMinTiles tiles.
constexpr int64_t kWinogradPackedMinTiles = 4;
constexpr int64_t kWinogradPackedMinPixelsPerTile = 8;
constexpr int64_t kWinogradStreamedKernelBytes = 16 << 20;
constexpr int64_t kWinogradStreamedMinTiles = 8;

struct WinoKernels {
  uk::WinoInputFn input;
  uk::WinoOutputFn output;
  uk::WinoWeightFn weight;
  uk::WinoGemmFn gemm;
  const char* names;
};

const WinoKernels& wino_kernels(Isa isa) {
  static const WinoKernels k512{uk::f32_wino_input_f4k3__avx512, uk::f32_wino_output_f4k3__avx512,
                                uk::f32_wino_weight_f4k3__avx512, uk::f32_wino_gemm__avx512,
                                "f32_wino_{input,output,weight}_f4k3__avx512 + f32_wino_gemm__avx512"};
  static const WinoKernels k2{uk::f32_wino_input_f4k3__avx2, uk::f32_wino_output_f4k3__avx2,
                              uk::f32_wino_weight_f4k3__avx2, uk::f32_wino_gemm__avx2,
                              "f32_wino_{input,output,weight}_f4k3__avx2 + f32_wino_gemm__avx2"};
  static const WinoKernels kg{uk::f32_wino_input_f4k3__generic, uk::f32_wino_output_f4k3__generic,
                              uk::f32_wino_weight_f4k3__generic, uk::f32_wino_gemm__generic,
                              "f32_wino_{input,output,weight}_f4k3__generic + f32_wino_gemm__generic"};
  switch (isa) {
    case Isa::avx512:
      return k512;
    case Isa::avx2:
      return k2;
    case Isa::generic:
      break;
  }
  return kg;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One direction as a stride-1 3x3 correlation of src (n, sh, sw, cin) into dst (n, dh, dw, cout): output cell
// (oy, ox) reads source rows oy - pad_top + ky and columns ox - pad_left + kx (a negative pad is a crop).
// Source cells outside [-pad_top, sh + pad_bottom) x [-pad_left, sw + pad_right) only feed outputs past the edge.
struct Pass {
  int64_t n = 0, sh = 0, sw = 0, cin = 0, dh = 0, dw = 0, cout = 0;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  PaddingMode mode = PaddingMode::zeros;
  int64_t tiles_h = 0, tiles_w = 0, tiles = 0;  // tiles per image
  int64_t total = 0;                            // tiles of the batch
  int64_t nbk = 0;                              // NR-wide column blocks of U (and of the output channels)
  int64_t scratch_threads = 0;                  // threads that get a block buffer (no more than work items)
  bool phased = false;                          // all tiles in one block, shared by the threads (make_pass)
  int64_t block = 0, blocks = 0;                // tiles per block, blocks of the batch
  int64_t chunk_blocks = 0, chunks = 0;         // output channels per work item, in NR blocks, and items per block
  int64_t ldv = 0, ldm = 0;                     // row strides of the per-thread V (block, cin) and M (block, chunk)
  int64_t vs = 0, ms = 0;                       // element strides of V and M (skewed: skew_stride)

  int64_t u_floats() const { return kElems * cin * cout; }
  int64_t scratch_floats() const { return kElems * (vs + ms); }
};

// The stride between the 36 elements of V (or M), which the transforms write (read) together, one vector per
// element: a multiple of 4 KiB would put all 36 lines in one set of the 12-way L1 (a block of 56 tiles of 64
// channels: 14 KiB, 2 sets), so large strides are taken to an odd number of cache lines, which spreads the 36 over
// distinct sets. At most 32 floats per thread beyond the unskewed size (the budgets below reserve them).
constexpr int64_t kSkewFloats = 32;
int64_t skew_stride(int64_t floats) {
  if (floats < 256) return floats;
  const int64_t lines = (floats + 15) / 16;
  return (lines % 2 == 0 ? lines + 1 : lines) * 16;
}

Pass make_pass(Pass p, int64_t mr, int64_t nr, int threads) {
  p.tiles_h = ceil_div(p.dh, kOut);
  p.tiles_w = ceil_div(p.dw, kOut);
  p.tiles = p.tiles_h * p.tiles_w;
  p.total = p.n * p.tiles;
  p.nbk = ceil_div(p.cout, nr);
  p.ldv = ceil_div(p.cin, 4) * 4;  // 16-byte rows: wider padding would dominate the scratch of few channels
  // Few tiles next to the transformed kernel (small images at small batches, or many channels): each block of
  // tiles streams all of U from memory, so take every tile as one block, shared by the threads in three phases
  // (input transforms split over tiles, the 36 x NBK GEMMs split over (element, column block) so that U is read
  // once in all, output transforms split over tiles) when V and M of all tiles are no larger than U: then their
  // traffic is at most U's, and the workspace stays within the bound.
  const int64_t all_ldm = ceil_div(p.cout, 4) * 4;
  if (p.total * (p.ldv + all_ldm) + kSkewFloats <= p.cin * p.cout) {
    p.phased = true;
    p.block = p.total;
    p.blocks = 1;
    p.chunk_blocks = p.nbk;
    p.chunks = 1;
    p.ldm = all_ldm;
    p.vs = skew_stride(p.block * p.ldv);
    p.ms = skew_stride(p.block * p.ldm);
    p.scratch_threads = 1;
    return p;
  }
  // Column chunks: with fewer blocks than a few per thread (batch 1, small images), split the output channels
  // too, so that every thread has work; a chunk keeps at least two NR blocks, each item redoing its block's input
  // transform (cheap next to the GEMMs it feeds).
  const int64_t full_ldm = p.nbk * nr;
  const int64_t per_tile = kElems * (p.ldv + std::min(full_ldm, ceil_div(p.cout, 4) * 4)) * 4;
  // The blocks of all threads together stay within the source tensor's size (the workspace target: no transformed
  // copy of the whole input: scratch <= input + U), and each within its budget.
  const int64_t u_bytes = p.u_floats() * 4;
  int64_t budget = u_bytes <= kSmallKernelBytes ? kBlockBudgetBytes : std::min(kBigBlockBytes, 2 * u_bytes);
  budget = std::min(budget, (p.n * p.sh * p.sw * p.cin * 4 + u_bytes) / threads);
  // Whole register blocks of MR tiles where the budget allows, and no more tiles than a thread gets.
  const int64_t fit = std::max<int64_t>(1, (budget - kElems * kSkewFloats * 4) / per_tile);
  p.block = std::min(fit >= mr ? fit / mr * mr : fit, ceil_div(p.total, threads));
  // The static split gives each thread a whole number of blocks: take the largest block (in MR steps) that keeps
  // the busiest thread within 10% of an even share of the tiles, else the most even one.
  if (threads > 1 && p.block > mr) {
    const auto evenness = [&](int64_t b) {
      return double(p.total) / double(threads) / double(ceil_div(ceil_div(p.total, b), threads) * b);
    };
    int64_t best = p.block;
    for (int64_t b = p.block / mr * mr; b >= mr; b -= mr) {
      if (evenness(b) > evenness(best)) best = b;
      if (evenness(best) >= 0.9) break;
    }
    p.block = best;
  }
  p.blocks = ceil_div(p.total, p.block);
  int64_t chunks = 1;
  if (threads > 1 && p.blocks < 4 * threads)
    chunks = std::min(ceil_div(4 * threads, p.blocks), std::max<int64_t>(1, p.nbk / 2));
  p.chunk_blocks = ceil_div(p.nbk, chunks);
  p.chunks = ceil_div(p.nbk, p.chunk_blocks);
  p.ldm = std::min(p.chunk_blocks * nr, ceil_div(p.cout, 4) * 4);
  p.vs = skew_stride(p.block * p.ldv);
  p.ms = skew_stride(p.block * p.ldm);
  p.scratch_threads = std::min<int64_t>(threads, p.blocks * p.chunks);
  return p;
}

class Winograd final : public detail::Conv2dImpl {
 public:
  explicit Winograd(const Conv2dContext& ctx) : ctx_(ctx), wk_(wino_kernels(ctx.k->isa)), wgrad_(ctx) {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t mr = ctx_.k->mr, nr = ctx_.k->nr;
    Pass f;
    f.n = g.n, f.sh = g.ih, f.sw = g.iw, f.cin = g.ic, f.dh = g.oh, f.dw = g.ow, f.cout = g.oc;
    f.pad_top = g.pad_top, f.pad_bottom = g.pad_bottom, f.pad_left = g.pad_left, f.pad_right = g.pad_right;
    f.mode = g.padding_mode;
    fwd_ = make_pass(f, mr, nr, ctx_.threads);
    Pass b;
    b.n = g.n, b.sh = g.oh, b.sw = g.ow, b.cin = g.oc, b.dh = g.ih, b.dw = g.iw, b.cout = g.ic;
    b.pad_top = 2 - g.pad_top, b.pad_bottom = 2 - g.pad_bottom, b.pad_left = 2 - g.pad_left;
    b.pad_right = 2 - g.pad_right;
    bwd_ = make_pass(b, mr, nr, ctx_.threads);
    // Backward data of a non-zero padding mode folds the padded cells' gradients back into the cells they copy:
    // implicit_gemm does that; winograd runs the forward pass only.
    if (g.padding_mode != PaddingMode::zeros) bwd_fallback_ = implicit_gemm_create(ctx_);
  }

  std::size_t workspace_size() const override {
    WorkspaceCarver f(nullptr), b(nullptr);
    carve(f, fwd_, false);
    carve(b, bwd_, true);
    const std::size_t bwd = bwd_fallback_ ? bwd_fallback_->workspace_size() : b.required();
    return std::max({f.required(), bwd, wgrad_.workspace_size()});
  }

  std::string kernels() const override {
    return core::cat(
        wk_.names, " (36 GEMMs ", fwd_.phased ? "over all " : "per block of ", fwd_.block, " tiles; forward",
        bwd_fallback_ ? ")" : ", backward data)",
        bwd_fallback_ ? core::cat(", implicit_gemm (backward data: padding mode ", to_string(ctx_.g.padding_mode), ")")
                      : std::string(),
        ", ", wgrad_.name());
  }

  // The packed weights: forward's transformed kernel U, then backward data's (the transposed problem's kernel,
  // transformed likewise), or, where backward data runs implicit_gemm (padding modes other than zeros), whatever
  // implicit_gemm packs.
  std::size_t packed_weights_floats() const override {
    const std::size_t bwd = bwd_fallback_ ? bwd_fallback_->packed_weights_floats()
                                          : static_cast<std::size_t>(bwd_.u_floats());
    return static_cast<std::size_t>(fwd_.u_floats()) + bwd;
  }

  std::size_t packed_forward_floats() const override { return static_cast<std::size_t>(fwd_.u_floats()); }
  void pack_forward_weights(const float* w, float* packed) const override { transform_forward_kernel(w, packed); }

  void pack_weights(const float* w, float* packed) const override {
    float* const bwd = packed + fwd_.u_floats();
    if (bwd_fallback_) {
      bwd_fallback_->pack_weights(w, bwd);
    } else {
      // The transposed kernel goes where forward's U goes next (9 IC OC floats of its 36 IC OC).
      transform_backward_kernel(w, packed, bwd);
    }
    transform_forward_kernel(w, packed);
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    WorkspaceCarver carver(ws);
    const Buffers buf = carve(carver, fwd_, false);
    transform_forward_kernel(w, buf.u);
    run_pass(fwd_, x, buf.u, buf, b, ctx_.activation, y);
  }

  void forward_packed(const float* x, const float*, const float* packed, const float* b, float* y,
                      void* ws) const override {
    WorkspaceCarver carver(ws);
    const Buffers buf = carve(carver, fwd_, false);
    run_pass(fwd_, x, packed, buf, b, ctx_.activation, y);
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    if (bwd_fallback_) return bwd_fallback_->backward_data(dz, w, dx, ws);
    WorkspaceCarver carver(ws);
    const Buffers buf = carve(carver, bwd_, true);
    transform_backward_kernel(w, buf.scratch, buf.u);  // the scratch is free until the tiles start
    run_pass(bwd_, dz, buf.u, buf, nullptr, Activation::none, dx);
  }

  void backward_data_packed(const float* dz, const float* w, const float* packed, float* dx,
                            void* ws) const override {
    const float* const bwd = packed + fwd_.u_floats();
    if (bwd_fallback_) return bwd_fallback_->backward_data_packed(dz, w, bwd, dx, ws);
    WorkspaceCarver carver(ws);
    const Buffers buf = carve(carver, bwd_, true);
    run_pass(bwd_, dz, bwd, buf, nullptr, Activation::none, dx);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    WorkspaceCarver carver(ws);
    wgrad_.run(x, dz, dw, db, carver);
  }

 private:
  // U[e] (cin x cout) in column blocks of NR (the last one narrower), each block's rows as wide as the block:
  // U[e][j][c][n] = (G w[., ., c, j * NR + n] G^T)[e], at e * cin * cout + j * NR * cin + c * width(j) + n.
  void transform_forward_kernel(const float* w, float* u) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, nbk = fwd_.nbk, cin = g.ic, cout = g.oc;
    parallel_for(ctx_.threads, cin * nbk, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t j = i / cin, c = i % cin;  // j-major: each block of U is written front to back
        const float* src[9];
        for (int64_t tap = 0; tap < 9; ++tap) src[tap] = w + (tap * cin + c) * cout + j * nr;
        const int64_t width = std::min(nr, cout - j * nr);
        wk_.weight(static_cast<std::size_t>(width), src, u + j * nr * cin + c * width,
                   static_cast<std::size_t>(cin * cout));
      }
    });
  }

  // Backward data's U (as forward's, for the transposed problem: OC in, IC out) from w, through wt (9 IC OC floats
  // of scratch): wt[tap][o][c] = w[tap][c][o], then the kernel w'[ky][kx][o][c] = w[2 - ky][2 - kx][c][o]
  // transformed like forward's.
  void transform_backward_kernel(const float* w, float* wt, float* u) const {
    const Conv2dGeometry& g = ctx_.g;
    const int64_t nr = ctx_.k->nr, nbk = bwd_.nbk, ic = g.ic, oc = g.oc;
    // The transpose in 32 x 32 squares, so that the lines written stay in L1.
    constexpr int64_t kSq = 32;
    const int64_t csq = ceil_div(ic, kSq);
    parallel_for(ctx_.threads, 9 * csq, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t tap = i / csq, c0 = (i % csq) * kSq, c1 = std::min(ic, c0 + kSq);
        for (int64_t o0 = 0; o0 < oc; o0 += kSq) {
          const int64_t o1 = std::min(oc, o0 + kSq);
          for (int64_t c = c0; c < c1; ++c) {
            const float* s = w + (tap * ic + c) * oc;
            float* d = wt + tap * oc * ic + c;
            for (int64_t o = o0; o < o1; ++o) d[o * ic] = s[o];
          }
        }
      }
    });
    parallel_for(ctx_.threads, oc * nbk, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t j = i / oc, o = i % oc;
        const float* src[9];
        for (int64_t tap = 0; tap < 9; ++tap) src[tap] = wt + ((8 - tap) * oc + o) * ic + j * nr;
        const int64_t width = std::min(nr, ic - j * nr);
        wk_.weight(static_cast<std::size_t>(width), src, u + j * nr * oc + o * width,
                   static_cast<std::size_t>(oc * ic));
      }
    });
  }

  struct Buffers {
    float* u;        // (36, cin, cout) in NR-wide column blocks: the transformed kernel
    float* zero;     // cin zeros: the padded cells
    float* scratch;  // threads x (V (36, block, ldv), M (36, block, ldm)); backward first holds the transposed kernel
  };
  Buffers carve(WorkspaceCarver& ws, const Pass& p, bool backward) const {
    const Conv2dGeometry& g = ctx_.g;
    Buffers b{};
    b.u = ws.take_floats(p.u_floats());
    b.zero = ws.take_floats(p.cin);
    int64_t scratch = p.scratch_threads * p.scratch_floats();
    if (backward) scratch = std::max(scratch, 9 * g.ic * g.oc);
    b.scratch = ws.take_floats(scratch);
    return b;
  }

  // V[e][.] (at v + e * vs) = B^T d B of the tile's 6x6 input cells.
  void input_tile(const Pass& p, const float* src, const float* zero, int64_t tile, float* v, int64_t vs) const {
    const int64_t img = tile / p.tiles, r = tile % p.tiles;
    const int64_t y0 = (r / p.tiles_w) * kOut - p.pad_top, x0 = (r % p.tiles_w) * kOut - p.pad_left;
    const float* image = src + img * p.sh * p.sw * p.cin;
    int64_t sy[kIn], sx[kIn];
    for (int64_t i = 0; i < kIn; ++i) {
      sy[i] = y0 + i < p.sh + p.pad_bottom ? core::padded_source(y0 + i, p.sh, p.mode) : -1;
      sx[i] = x0 + i < p.sw + p.pad_right ? core::padded_source(x0 + i, p.sw, p.mode) : -1;
    }
    const float* cells[kElems];
    for (int64_t i = 0; i < kIn; ++i)
      for (int64_t j = 0; j < kIn; ++j)
        cells[i * kIn + j] = sy[i] < 0 || sx[j] < 0 ? zero : image + (sy[i] * p.sw + sx[j]) * p.cin;
    wk_.input(static_cast<std::size_t>(p.cin), cells, v, static_cast<std::size_t>(vs));
  }

  // Output columns [col0, col0 + ncols) of the tile: act(bias + A^T M A) from M[e] at m + e * ms, the cells past
  // the output edge dropped.
  void output_tile(const Pass& p, const float* m, int64_t ms, int64_t tile, int64_t col0, int64_t ncols,
                   const float* bias, Activation act, int relu, bool post, float* dst) const {
    const int64_t img = tile / p.tiles, r = tile % p.tiles;
    const int64_t oy0 = (r / p.tiles_w) * kOut, ox0 = (r % p.tiles_w) * kOut;
    float* out[kOut * kOut];
    for (int64_t i = 0; i < kOut; ++i)
      for (int64_t j = 0; j < kOut; ++j)
        out[i * kOut + j] = oy0 + i < p.dh && ox0 + j < p.dw
                                ? dst + ((img * p.dh + oy0 + i) * p.dw + ox0 + j) * p.cout + col0
                                : nullptr;
    wk_.output(static_cast<std::size_t>(ncols), m, static_cast<std::size_t>(ms), bias ? bias + col0 : nullptr, out,
               relu);
    if (post)
      for (float* o : out)
        if (o) activation_forward(act, o, ncols);
  }

  // M[e] (nt tiles, column block j, at column mcol of M) = V[e] (nt tiles, cin) . U[e] (cin, block j), in calls of
  // at most MR rows, as even as possible (16 tiles: 8 + 8, not 14 + 2), each computing only its rows.
  void element_gemm(const Pass& p, const float* u, const float* v, float* m, int64_t e, int64_t j, int64_t mcol,
                    int64_t nt) const {
    const int64_t mr = std::min<int64_t>(ctx_.k->mr, static_cast<int64_t>(uk::kWinoGemmMaxRows)), nr = ctx_.k->nr;
    const int64_t vs = p.vs, ms = p.ms;
    const int64_t width = std::min(nr, p.cout - j * nr);
    const float* ub = u + e * p.cin * p.cout + j * nr * p.cin;
    const std::size_t nc = static_cast<std::size_t>(width);
    const int64_t calls = ceil_div(nt, mr), base = nt / calls, extra = nt % calls;
    int64_t r0 = 0;
    for (int64_t call = 0; call < calls; ++call) {
      const int64_t rows = base + (call < extra ? 1 : 0);
      wk_.gemm(static_cast<std::size_t>(rows), nc, static_cast<std::size_t>(p.cin), v + e * vs + r0 * p.ldv,
               static_cast<std::size_t>(p.ldv), ub, nc, m + e * ms + r0 * p.ldm + mcol,
               static_cast<std::size_t>(p.ldm));
      r0 += rows;
    }
  }

  // The phased pass (make_pass): every tile in one block of the shared scratch; three parallel loops.
  void run_phased(const Pass& p, const float* src, const float* u, const Buffers& buf, const float* bias,
                  Activation act, float* dst) const {
    const int relu = act == Activation::relu ? 1 : 0;
    const bool post = needs_post_activation(act);
    const int64_t vs = p.vs, ms = p.ms;
    float* v = buf.scratch;
    float* m = v + kElems * vs;
    parallel_for(ctx_.threads, p.total, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) input_tile(p, src, buf.zero, t, v + t * p.ldv, vs);
    });
    // Element-major: a thread's items share few V[e], each read from cache across its column blocks.
    parallel_for(ctx_.threads, kElems * p.nbk, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t e = i / p.nbk, j = i % p.nbk;
        element_gemm(p, u, v, m, e, j, j * ctx_.k->nr, p.total);
      }
    });
    parallel_for(ctx_.threads, p.total, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t)
        output_tile(p, m + t * p.ldm, ms, t, 0, p.cout, bias, act, relu, post, dst);
    });
  }

  // dst = act(bias + the 3x3 correlation of src with the transformed kernel u), tile block by tile block; buf gives
  // the zero row and the per-thread block buffers.
  void run_pass(const Pass& p, const float* src, const float* u, const Buffers& buf, const float* bias, Activation act,
                float* dst) const {
    std::fill_n(buf.zero, p.cin, 0.0f);
    if (p.phased) return run_phased(p, src, u, buf, bias, act, dst);
    const int64_t nr = ctx_.k->nr;
    const int relu = act == Activation::relu ? 1 : 0;
    const bool post = needs_post_activation(act);
    const int64_t vs = p.vs, ms = p.ms;  // element strides of V and M
    parallel_for(ctx_.threads, p.blocks * p.chunks, [&](int64_t i0, int64_t i1, int t) {
      float* v = buf.scratch + t * p.scratch_floats();
      float* m = v + kElems * vs;
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t blk = it / p.chunks, chunk = it % p.chunks;
        const int64_t tile0 = blk * p.block, nt = std::min(p.block, p.total - tile0);
        const int64_t j0 = chunk * p.chunk_blocks, j1 = std::min(p.nbk, j0 + p.chunk_blocks);
        const int64_t col0 = j0 * nr, ncols = std::min(p.cout, j1 * nr) - col0;
        // V[e][tile][.] = B^T d B of each tile's 6x6 input cells.
        for (int64_t tl = 0; tl < nt; ++tl) input_tile(p, src, buf.zero, tile0 + tl, v + tl * p.ldv, vs);
        // M[e] (tiles, chunk columns) = V[e] (tiles, cin) . U[e] (cin, chunk columns).
        for (int64_t e = 0; e < kElems; ++e)
          for (int64_t j = j0; j < j1; ++j) element_gemm(p, u, v, m, e, j, (j - j0) * nr, nt);
        // dst = act(bias + A^T M A), the cells past the output edge dropped.
        for (int64_t tl = 0; tl < nt; ++tl)
          output_tile(p, m + tl * p.ldm, ms, tile0 + tl, col0, ncols, bias, act, relu, post, dst);
      }
    });
  }

  Conv2dContext ctx_;
  const WinoKernels& wk_;
  WgradPlan wgrad_;
  Pass fwd_, bwd_;
  std::unique_ptr<detail::Conv2dImpl> bwd_fallback_;
};

}  // namespace

std::string winograd_supports(const Conv2dGeometry& g) {
  if (g.kh != 3 || g.kw != 3) return core::cat("needs a 3x3 kernel, got ", g.kh, "x", g.kw);
  if (g.sh != 1 || g.sw != 1) return core::cat("needs stride 1, got (", g.sh, ", ", g.sw, ")");
  if (g.dh != 1 || g.dw != 1) return core::cat("needs dilation 1, got (", g.dh, ", ", g.dw, ")");
  if (g.groups != 1) return core::cat("needs groups 1, got ", g.groups);
  return {};
}

std::string winograd_pays(const Conv2dGeometry& g, Conv2dWeights weights) {
  // Measured against implicit_gemm (bench/winograd_layers.cpp and smaller layers; AVX-512, one core, a busy
  // machine): with 8 channels about even, with 16 already 1.6-2x faster; below 512 output pixels in the batch the
  // transformed kernel (36 x IC x OC floats, computed at every call) costs more than the GEMMs save (ResNet-50's
  // 256@14 at batch 1, 196 pixels: 0.8x; 128@28, 784 pixels: 1.8x; every layer at batch 32: about 2x).
  if (g.ic < kWinogradMinChannels || g.oc < kWinogradMinChannels)
    return core::cat("pays only with >= ", kWinogradMinChannels, " input and output channels, got ", g.ic, " and ",
                     g.oc, " (implicit_gemm is faster there)");
  if (g.n * g.oh * g.ow >= kWinogradMinPixels) return {};
  if (weights == Conv2dWeights::packed_once) {
    // Packed once, the kernel transforms are gone from the calls, and the 36 GEMMs pay on small images too
    // (AVX-512, batch 1, 1 and 2 threads, forward and backward data, packed, against implicit_gemm with packed
    // panels: 256@14 1.4-1.6x faster, 128@7 and 256@6..10 1.5-2.5x, 16@14 and 32@14 1.3-1.8x), but not where most
    // of each tile is past the output's edge or the GEMMs get a row or two (256@5: 0.6x oneDNN; 256@4 and 256@3,
    // one tile: 0.6x), nor on 4 tiles whose U is streamed from memory (512@7, 37.7 MB per direction: 0.9-1.0x
    // implicit_gemm; with 8 tiles, batch 2: 1.5x).
    const int64_t tiles = g.n * ceil_div(g.oh, kOut) * ceil_div(g.ow, kOut);
    const int64_t u_bytes = kElems * g.ic * g.oc * 4;
    const bool streamed = u_bytes > kWinogradStreamedKernelBytes;
    const int64_t min_tiles = streamed ? kWinogradStreamedMinTiles : kWinogradPackedMinTiles;
    if (tiles >= min_tiles && g.n * g.oh * g.ow >= kWinogradPackedMinPixelsPerTile * tiles) return {};
    return core::cat("pays, with the weights packed once, only with >= ", kWinogradPackedMinTiles,
                     " 4x4 output tiles in the batch (", kWinogradStreamedMinTiles,
                     " when the transformed kernel exceeds ", kWinogradStreamedKernelBytes >> 20, " MiB) and >= ",
                     kWinogradPackedMinPixelsPerTile, " output pixels per tile, got ", tiles, " tiles for ",
                     g.n * g.oh * g.ow, " pixels", streamed ? core::cat(", a ", u_bytes >> 20, " MiB kernel") : "");
  }
  return core::cat("pays only with >= ", kWinogradMinPixels,
                   " output pixels in the batch (batch x height x width), got ", g.n * g.oh * g.ow,
                   " (the transformed kernel would not be amortised; with the weights packed once it may be)");
}

std::unique_ptr<detail::Conv2dImpl> winograd_create(const Conv2dContext& ctx) {
  return std::make_unique<Winograd>(ctx);
}

}  // namespace convkit::ops
