#include <algorithm>

#include "core/shape.hpp"
#include "ref/conv2d.hpp"

namespace convkit::ref {

void conv2d_bwd_weights(const Conv2dGeometry& g, const float* x, const float* dz, float* dw) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  std::fill_n(dw, g.kh * g.kw * icg * g.oc, 0.0f);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const float* dzp = dz + ((n * g.oh + oy) * g.ow + ox) * g.oc;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = core::padded_source(oy * g.sh - g.pad_top + ky * g.dh, g.ih, g.padding_mode);
          if (iy < 0) continue;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t ix = core::padded_source(ox * g.sw - g.pad_left + kx * g.dw, g.iw, g.padding_mode);
            if (ix < 0) continue;
            const float* xp = x + ((n * g.ih + iy) * g.iw + ix) * g.ic;
            float* dwp = dw + (ky * g.kw + kx) * icg * g.oc;
            for (int64_t grp = 0; grp < g.groups; ++grp)
              for (int64_t c = 0; c < icg; ++c) {
                const float xv = xp[grp * icg + c];
                float* dwr = dwp + c * g.oc + grp * ocg;
                const float* dzr = dzp + grp * ocg;
                for (int64_t j = 0; j < ocg; ++j) dwr[j] += xv * dzr[j];
              }
          }
        }
      }
}

void conv2d_bwd_bias(const Conv2dGeometry& g, const float* dz, float* db) {
  std::fill_n(db, g.oc, 0.0f);
  const int64_t rows = g.n * g.oh * g.ow;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < g.oc; ++o) db[o] += dz[r * g.oc + o];
}

}  // namespace convkit::ref
