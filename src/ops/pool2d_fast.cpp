// The fast pooling algorithm (see pool2d_fast.hpp). Each window is walked cell by cell in the reference's
// row-major order, and for each cell the loop runs over a block of contiguous channels: the same operations in
// the same order per channel as ref::pool2d_fwd / pool2d_bwd, hence bitwise-equal results, but vectorised.
#include "ops/pool2d_fast.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "ops/conv2d_parallel.hpp"
#include "ref/pool2d.hpp"

namespace convkit::ops {

namespace {

using ref::PoolSpan;

// Channels per block: the per-channel state (running maximum and its cell) lives on the stack.
constexpr int64_t kBlock = 64;
// Below this many window-cell visits (x channels) a pass runs on one thread: waking a second costs more.
constexpr int64_t kMinParallelWork = int64_t{1} << 15;

int threads_for(int64_t work, int threads) { return work < kMinParallelWork ? 1 : threads; }

// Running maximum over the window's cells for channels [0, cn) of the block at offset `ch` (PyTorch's rule, as
// ref::max_pool_argmax: replace on a strictly greater value or on any NaN). `best` (cn) gets the maximum and, if
// `at` is not null, `at` (cn) the cell index (iy * IW + ix) it came from.
template <bool kIndex>
inline void window_max(const float* __restrict xn /* (IH, IW, C) */, int64_t iw, int64_t c, int64_t ch, int64_t cn,
                       PoolSpan ys, PoolSpan xs, float* __restrict best, int32_t* __restrict at) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int32_t first = static_cast<int32_t>(ys.begin * iw + xs.begin);
  for (int64_t j = 0; j < cn; ++j) best[j] = ninf;
  if constexpr (kIndex)
    for (int64_t j = 0; j < cn; ++j) at[j] = first;
  for (int64_t iy = ys.begin; iy < ys.end; ++iy)
    for (int64_t ix = xs.begin; ix < xs.end; ++ix) {
      const int32_t cell = static_cast<int32_t>(iy * iw + ix);
      const float* __restrict p = xn + cell * c + ch;
      for (int64_t j = 0; j < cn; ++j) {
        const float v = p[j];
        const bool take = v > best[j] || v != v;  // v != v: NaN
        best[j] = take ? v : best[j];
        if constexpr (kIndex) at[j] = take ? cell : at[j];
      }
    }
}

// v if keep, else +0: a bit mask rather than a conditional, which GCC does not vectorise in these loops.
inline float keep_if(bool keep, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= 0u - static_cast<uint32_t>(keep);
  std::memcpy(&v, &bits, sizeof bits);
  return v;
}

// Output rows [r0, r1) of the flattened (N * OH) rows; with `argmax` (max pooling), also each output's cell.
void fwd_rows(const Pool2dGeometry& g, const float* __restrict x, float* __restrict y, int32_t* __restrict argmax,
              int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / g.oh, oy = r % g.oh;
    const float* xn = x + n * g.ih * g.iw * g.c;  // (IH, IW, C)
    const PoolSpan ys = ref::pool_span(oy, g.sh, g.kh, g.pad_top, g.pad_bottom, g.ih);
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      const PoolSpan xs = ref::pool_span(ox, g.sw, g.kw, g.pad_left, g.pad_right, g.iw);
      float* yp = y + (r * g.ow + ox) * g.c;  // (C)
      for (int64_t ch = 0; ch < g.c; ch += kBlock) {
        const int64_t cn = std::min(kBlock, g.c - ch);
        float acc[kBlock];
        if (g.kind == PoolKind::max && argmax) {
          // The cells straight into argmax (through a stack array and a copy measured 1.7x slower on the classic
          // CNN's first pooling).
          window_max<true>(xn, g.iw, g.c, ch, cn, ys, xs, acc, argmax + (r * g.ow + ox) * g.c + ch);
        } else if (g.kind == PoolKind::max) {
          window_max<false>(xn, g.iw, g.c, ch, cn, ys, xs, acc, nullptr);
        } else {
          // Row-major fp32 sum of the real cells, then one division: the reference's order.
          for (int64_t j = 0; j < cn; ++j) acc[j] = 0.0f;
          for (int64_t iy = ys.begin; iy < ys.end; ++iy)
            for (int64_t ix = xs.begin; ix < xs.end; ++ix) {
              const float* __restrict p = xn + (iy * g.iw + ix) * g.c + ch;
              for (int64_t j = 0; j < cn; ++j) acc[j] += p[j];
            }
          const float div = static_cast<float>(ref::avg_pool_divisor(g, ys, xs));
          for (int64_t j = 0; j < cn; ++j) acc[j] = acc[j] / div;
        }
        std::memcpy(yp + ch, acc, static_cast<std::size_t>(cn) * sizeof(float));
      }
    }
  }
}

// Image n, channels [ch, ch + cn): zeroes that part of dx, then adds every window's gradient, windows in the
// reference's order (overlapping windows accumulate in the same sequence).
// Max pooling with `argmax` (pool2d_fast_fwd_argmax's cells) takes each window's cell from it instead of
// recomputing it from x (x is then not read).
void bwd_block(const Pool2dGeometry& g, const float* __restrict x, const int32_t* __restrict argmax,
               const float* __restrict dy, float* __restrict dx, int64_t n, int64_t ch, int64_t cn) {
  const int64_t cells = g.ih * g.iw;
  const float* xn = argmax ? nullptr : x + n * cells * g.c;  // (IH, IW, C)
  float* dxn = dx + n * cells * g.c;      // (IH, IW, C)
  // Windows that tile the input exactly (pool 2 stride 2 on an even size, say) cover every cell once: each cell
  // is written once, with its gradient or zero, and nothing needs clearing first.
  const bool tiles = g.kind == PoolKind::max && g.sh == g.kh && g.sw == g.kw && g.oh * g.kh == g.ih &&
                     g.ow * g.kw == g.iw && g.pad_top == 0 && g.pad_left == 0;
  if (!tiles && cn == g.c) {
    std::memset(dxn, 0, static_cast<std::size_t>(cells * g.c) * sizeof(float));
  } else if (!tiles) {
    for (int64_t i = 0; i < cells; ++i)
      std::memset(dxn + i * g.c + ch, 0, static_cast<std::size_t>(cn) * sizeof(float));
  }
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const PoolSpan ys = ref::pool_span(oy, g.sh, g.kh, g.pad_top, g.pad_bottom, g.ih);
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      const PoolSpan xs = ref::pool_span(ox, g.sw, g.kw, g.pad_left, g.pad_right, g.iw);
      const float* __restrict dyp = dy + ((n * g.oh + oy) * g.ow + ox) * g.c + ch;  // (cn)
      if (g.kind == PoolKind::max) {
        float best[kBlock];
        int32_t window_at[kBlock];
        const int32_t* __restrict at = window_at;
        if (argmax)
          at = argmax + ((n * g.oh + oy) * g.ow + ox) * g.c + ch;
        else
          window_max<true>(xn, g.iw, g.c, ch, cn, ys, xs, best, window_at);
        // The whole gradient to the selected cell: adding +0 elsewhere leaves every value as it was (dx starts at
        // +0 and a sum that starts at +0 is never -0), so this is the reference's scatter, vectorised.
        for (int64_t iy = ys.begin; iy < ys.end; ++iy)
          for (int64_t ix = xs.begin; ix < xs.end; ++ix) {
            const int32_t cell = static_cast<int32_t>(iy * g.iw + ix);
            float* __restrict d = dxn + cell * g.c + ch;
            if (tiles) {
              // + 0.0f: the reference's 0 + dy, which turns a -0 gradient into +0.
              for (int64_t j = 0; j < cn; ++j) d[j] = keep_if(at[j] == cell, dyp[j] + 0.0f);
            } else {
              for (int64_t j = 0; j < cn; ++j) d[j] += keep_if(at[j] == cell, dyp[j]);
            }
          }
      } else {
        // Each real cell contributed x / divisor; padded cells have no input to receive their share.
        const float div = static_cast<float>(ref::avg_pool_divisor(g, ys, xs));
        float share[kBlock];
        for (int64_t j = 0; j < cn; ++j) share[j] = dyp[j] / div;
        for (int64_t iy = ys.begin; iy < ys.end; ++iy)
          for (int64_t ix = xs.begin; ix < xs.end; ++ix) {
            float* __restrict d = dxn + (iy * g.iw + ix) * g.c + ch;
            for (int64_t j = 0; j < cn; ++j) d[j] += share[j];
          }
      }
    }
  }
}

void fwd(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax, int threads) {
  const int64_t rows = g.n * g.oh;
  const int64_t work = rows * g.ow * g.kh * g.kw * g.c;
  parallel_for(threads_for(work, threads), rows,
               [&](int64_t r0, int64_t r1, int) { fwd_rows(g, x, y, argmax, r0, r1); });
}

void bwd(const Pool2dGeometry& g, const float* x, const int32_t* argmax, const float* dy, float* dx, int threads) {
  const int64_t blocks = (g.c + kBlock - 1) / kBlock;
  const int64_t work = g.n * g.oh * g.ow * g.kh * g.kw * g.c;
  parallel_for(threads_for(work, threads), g.n * blocks, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t ch = (i % blocks) * kBlock;
      bwd_block(g, x, argmax, dy, dx, i / blocks, ch, std::min(kBlock, g.c - ch));
    }
  });
}

}  // namespace

void pool2d_fast_fwd(const Pool2dGeometry& g, const float* x, float* y, int threads) {
  fwd(g, x, y, nullptr, threads);
}

void pool2d_fast_bwd(const Pool2dGeometry& g, const float* x, const float* dy, float* dx, int threads) {
  bwd(g, x, nullptr, dy, dx, threads);
}

void pool2d_fast_fwd_argmax(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax, int threads) {
  fwd(g, x, y, argmax, threads);
}

void pool2d_fast_bwd_argmax(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx,
                            int threads) {
  bwd(g, nullptr, argmax, dy, dx, threads);
}

}  // namespace convkit::ops
