// src/ref/conv2d.hpp — plain-loop reference kernels for Conv2D, one file per direction. Never optimised:
// they are the definition the fast paths are checked against. fp32 storage and accumulation.
// Padded cells are read through core::padded_source(), so reflect / replicate / circular padding needs no
// padded copy, and gradients flow back into the input cells a padded cell mirrors.
#pragma once

#include "convkit/conv.hpp"
#include "core/shape.hpp"

namespace convkit::ref {

// The window walk the three directions share: calls fn(out_pixel, in_pixel, tap) for every output pixel
// (n, oy, ox) in scan order and every kernel tap (ky, kx) whose cell is a real input cell after the padding mode's
// mapping (zero cells are skipped). out_pixel and in_pixel index NHWC pixels; tap = ky * KW + kx.
template <class Fn>
void for_each_tap(const Conv2dGeometry& g, Fn&& fn) {
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t out_pixel = (n * g.oh + oy) * g.ow + ox;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = core::padded_source(oy * g.sh - g.pad_top + ky * g.dh, g.ih, g.padding_mode);
          if (iy < 0) continue;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t ix = core::padded_source(ox * g.sw - g.pad_left + kx * g.dw, g.iw, g.padding_mode);
            if (ix < 0) continue;
            fn(out_pixel, (n * g.ih + iy) * g.iw + ix, ky * g.kw + kx);
          }
        }
      }
}

// y (N, OH, OW, OC) = conv(x (N, IH, IW, IC), w (KH, KW, IC/G, OC)) + b (OC, or null). No activation.
void conv2d_fwd(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
// dx (N, IH, IW, IC) = dL/dx given dz = dL/dy (N, OH, OW, OC). Overwrites dx.
void conv2d_bwd_data(const Conv2dGeometry& g, const float* dz, const float* w, float* dx);
// dw (KH, KW, IC/G, OC) = dL/dw given x and dz. Overwrites dw.
void conv2d_bwd_weights(const Conv2dGeometry& g, const float* x, const float* dz, float* dw);
// db (OC) = dL/db = sum of dz over batch and positions. Overwrites db.
void conv2d_bwd_bias(const Conv2dGeometry& g, const float* dz, float* db);

}  // namespace convkit::ref
