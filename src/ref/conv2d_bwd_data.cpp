#include <algorithm>

#include "ref/conv2d.hpp"

namespace convkit::ref {

void conv2d_bwd_data(const Conv2dGeometry& g, const float* dz, const float* w, float* dx) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  std::fill_n(dx, g.n * g.ih * g.iw * g.ic, 0.0f);
  for_each_tap(g, [&](int64_t out_pixel, int64_t in_pixel, int64_t tap) {
    const float* dzp = dz + out_pixel * g.oc;
    const float* wp = w + tap * icg * g.oc;
    float* dxp = dx + in_pixel * g.ic;
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t c = 0; c < icg; ++c) {
        const float* wr = wp + c * g.oc + grp * ocg;
        const float* dzr = dzp + grp * ocg;
        float acc = 0.0f;
        for (int64_t j = 0; j < ocg; ++j) acc += dzr[j] * wr[j];
        dxp[grp * icg + c] += acc;
      }
  });
}

}  // namespace convkit::ref
