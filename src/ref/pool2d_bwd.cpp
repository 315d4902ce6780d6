#include <algorithm>

#include "ref/pool2d.hpp"

namespace convkit::ref {

void pool2d_bwd(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) {
  std::fill_n(dx, g.n * g.ih * g.iw * g.c, 0.0f);
  for (int64_t n = 0; n < g.n; ++n) {
    const float* xn = x + n * g.ih * g.iw * g.c;  // (IH, IW, C)
    float* dxn = dx + n * g.ih * g.iw * g.c;      // (IH, IW, C)
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      const PoolSpan ys = pool_span(oy, g.sh, g.kh, g.pad_top, g.pad_bottom, g.ih);
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const PoolSpan xs = pool_span(ox, g.sw, g.kw, g.pad_left, g.pad_right, g.iw);
        const float* dyp = dy + ((n * g.oh + oy) * g.ow + ox) * g.c;  // (C)
        for (int64_t ch = 0; ch < g.c; ++ch) {
          if (g.kind == PoolKind::max) {
            // The whole gradient goes to the cell forward selected (overlapping windows accumulate).
            dxn[max_pool_argmax(xn, g.iw, g.c, ch, ys, xs)] += dyp[ch];
            continue;
          }
          // Each real cell contributed x / divisor; padded cells have no input to receive their share.
          const float share = dyp[ch] / static_cast<float>(avg_pool_divisor(g, ys, xs));
          for (int64_t iy = ys.begin; iy < ys.end; ++iy)
            for (int64_t ix = xs.begin; ix < xs.end; ++ix) dxn[(iy * g.iw + ix) * g.c + ch] += share;
        }
      }
    }
  }
}

}  // namespace convkit::ref
