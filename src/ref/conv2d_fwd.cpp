#include <algorithm>

#include "core/shape.hpp"
#include "ref/conv2d.hpp"

namespace convkit::ref {

void conv2d_fwd(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        float* yp = y + ((n * g.oh + oy) * g.ow + ox) * g.oc;
        std::fill_n(yp, g.oc, 0.0f);
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = core::padded_source(oy * g.sh - g.pad_top + ky * g.dh, g.ih, g.padding_mode);
          if (iy < 0) continue;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t ix = core::padded_source(ox * g.sw - g.pad_left + kx * g.dw, g.iw, g.padding_mode);
            if (ix < 0) continue;
            const float* xp = x + ((n * g.ih + iy) * g.iw + ix) * g.ic;
            const float* wp = w + (ky * g.kw + kx) * icg * g.oc;
            for (int64_t grp = 0; grp < g.groups; ++grp)
              for (int64_t c = 0; c < icg; ++c) {
                const float xv = xp[grp * icg + c];
                const float* wr = wp + c * g.oc + grp * ocg;
                float* yr = yp + grp * ocg;
                for (int64_t j = 0; j < ocg; ++j) yr[j] += xv * wr[j];
              }
          }
        }
        if (b)
          for (int64_t o = 0; o < g.oc; ++o) yp[o] += b[o];
      }
}

}  // namespace convkit::ref
