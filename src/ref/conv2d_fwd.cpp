#include <algorithm>

#include "ref/conv2d.hpp"

namespace convkit::ref {

void conv2d_fwd(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t pixels = g.n * g.oh * g.ow;
  std::fill_n(y, pixels * g.oc, 0.0f);
  for_each_tap(g, [&](int64_t out_pixel, int64_t in_pixel, int64_t tap) {
    const float* xp = x + in_pixel * g.ic;
    const float* wp = w + tap * icg * g.oc;
    float* yp = y + out_pixel * g.oc;
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t c = 0; c < icg; ++c) {
        const float xv = xp[grp * icg + c];
        const float* wr = wp + c * g.oc + grp * ocg;
        float* yr = yp + grp * ocg;
        for (int64_t j = 0; j < ocg; ++j) yr[j] += xv * wr[j];
      }
  });
  if (b)
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t o = 0; o < g.oc; ++o) y[p * g.oc + o] += b[o];
}

}  // namespace convkit::ref
