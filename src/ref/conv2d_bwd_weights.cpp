#include <algorithm>

#include "ref/conv2d.hpp"

namespace convkit::ref {

void conv2d_bwd_weights(const Conv2dGeometry& g, const float* x, const float* dz, float* dw) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  std::fill_n(dw, g.kh * g.kw * icg * g.oc, 0.0f);
  for_each_tap(g, [&](int64_t out_pixel, int64_t in_pixel, int64_t tap) {
    const float* xp = x + in_pixel * g.ic;
    const float* dzp = dz + out_pixel * g.oc;
    float* dwp = dw + tap * icg * g.oc;
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t c = 0; c < icg; ++c) {
        const float xv = xp[grp * icg + c];
        float* dwr = dwp + c * g.oc + grp * ocg;
        const float* dzr = dzp + grp * ocg;
        for (int64_t j = 0; j < ocg; ++j) dwr[j] += xv * dzr[j];
      }
  });
}

void conv2d_bwd_bias(const Conv2dGeometry& g, const float* dz, float* db) {
  std::fill_n(db, g.oc, 0.0f);
  const int64_t rows = g.n * g.oh * g.ow;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < g.oc; ++o) db[o] += dz[r * g.oc + o];
}

}  // namespace convkit::ref
