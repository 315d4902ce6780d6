#include "ref/pool2d.hpp"

namespace convkit::ref {

void pool2d_fwd(const Pool2dGeometry& g, const float* x, float* y) {
  for (int64_t n = 0; n < g.n; ++n) {
    const float* xn = x + n * g.ih * g.iw * g.c;  // (IH, IW, C)
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      const PoolSpan ys = pool_span(oy, g.sh, g.kh, g.pad_top, g.pad_bottom, g.ih);
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const PoolSpan xs = pool_span(ox, g.sw, g.kw, g.pad_left, g.pad_right, g.iw);
        float* yp = y + ((n * g.oh + oy) * g.ow + ox) * g.c;  // (C)
        for (int64_t ch = 0; ch < g.c; ++ch) {
          if (g.kind == PoolKind::max) {
            yp[ch] = xn[max_pool_argmax(xn, g.iw, g.c, ch, ys, xs)];
            continue;
          }
          // Row-major fp32 sum of the real cells; padded cells hold zero and add nothing.
          float sum = 0.0f;
          for (int64_t iy = ys.begin; iy < ys.end; ++iy)
            for (int64_t ix = xs.begin; ix < xs.end; ++ix) sum += xn[(iy * g.iw + ix) * g.c + ch];
          yp[ch] = sum / static_cast<float>(avg_pool_divisor(g, ys, xs));
        }
      }
    }
  }
}

}  // namespace convkit::ref
