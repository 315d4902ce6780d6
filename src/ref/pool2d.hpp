// src/ref/pool2d.hpp — plain-loop reference kernels for 2-D pooling, one file per direction. Never optimised:
// they are the definition the fast paths are checked against. fp32 storage and accumulation. The semantics
// (padded cells as -inf for max, first maximum, NaN, the two average divisors) are those of convkit/pool.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "convkit/pool.hpp"

namespace convkit::ref {

// One window along one axis: the real input cells it covers, [begin, end), and the number of cells PyTorch's
// count_include_pad divisor counts: from the window start (which may lie in the leading padding) to the window
// end clipped to the padded extent in + pad_after (with ceil_mode the last window may hang past it).
struct PoolSpan {
  int64_t begin = 0, end = 0;
  int64_t padded_count = 0;
};

inline PoolSpan pool_span(int64_t out_index, int64_t stride, int64_t kernel, int64_t pad_before, int64_t pad_after,
                          int64_t in) {
  const int64_t start = out_index * stride - pad_before;
  const int64_t stop = start + kernel;
  return {std::max<int64_t>(start, 0), std::min(stop, in), std::min(stop, in + pad_after) - start};
}

// Offset (from x, counted in floats) of the cell max pooling selects in the window rows [ys.begin, ys.end) x
// columns [xs.begin, xs.end) of channel ch in the NHWC image at x (IH, IW, C), scanned row-major. PyTorch's rule
// exactly: the running maximum starts at -inf with the first real cell as its index and is replaced by a strictly
// greater value or by any NaN — hence the first maximum, and the last NaN. Shared by both directions so that
// backward routes the gradient to exactly the cell forward selected.
inline int64_t max_pool_argmax(const float* x, int64_t iw, int64_t c, int64_t ch, PoolSpan ys, PoolSpan xs) {
  float best = -std::numeric_limits<float>::infinity();
  int64_t best_at = (ys.begin * iw + xs.begin) * c + ch;
  for (int64_t iy = ys.begin; iy < ys.end; ++iy)
    for (int64_t ix = xs.begin; ix < xs.end; ++ix) {
      const int64_t at = (iy * iw + ix) * c + ch;
      const float v = x[at];
      if (v > best || std::isnan(v)) {
        best = v;
        best_at = at;
      }
    }
  return best_at;
}

// Divisor of an average-pooling window: real cells (Keras/TF) or PyTorch's count_include_pad count.
inline int64_t avg_pool_divisor(const Pool2dGeometry& g, PoolSpan ys, PoolSpan xs) {
  return g.count_include_pad ? ys.padded_count * xs.padded_count : (ys.end - ys.begin) * (xs.end - xs.begin);
}

// y (N, OH, OW, C) = pool(x (N, IH, IW, C)). Overwrites y.
void pool2d_fwd(const Pool2dGeometry& g, const float* x, float* y);
// dx (N, IH, IW, C) = dL/dx given x (N, IH, IW, C) and dy = dL/dy (N, OH, OW, C). Overwrites dx.
void pool2d_bwd(const Pool2dGeometry& g, const float* x, const float* dy, float* dx);

}  // namespace convkit::ref
