#include "ops/conv2d_pack.hpp"

#include <algorithm>

namespace convkit::ops {

void pack_backward_data_block(const Conv2dGeometry& g, int64_t nr, std::span<const int32_t> taps, const float* w,
                              int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t c0 = j * nr, nc = std::min(nr, icg - c0);
  // A transposition: read w's rows (one input channel, the group's outputs) and write them as columns, 64 outputs at
  // a time so that the destination lines being filled stay in L1.
  constexpr int64_t kRowsPerPass = 64;
  for (const int32_t tap : taps) {
    if (nc < nr) std::fill_n(out, ocg * nr, 0.0f);
    for (int64_t o0 = 0; o0 < ocg; o0 += kRowsPerPass) {
      const int64_t o1 = std::min(ocg, o0 + kRowsPerPass);
      for (int64_t n = 0; n < nc; ++n) {
        const float* src = w + (tap * icg + c0 + n) * g.oc + grp * ocg;
        for (int64_t o = o0; o < o1; ++o) out[o * nr + n] = src[o];
      }
    }
    out += ocg * nr;
  }
}

}  // namespace convkit::ops

namespace convkit::ops {

void pack_scatter_block(const Conv2dGeometry& g, int64_t nr, const float* w, int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), cols = g.kh * g.kw * icg;
  const int64_t col0 = j * nr, nc = std::min(nr, cols - col0);
  std::fill_n(out, nr * ocg, 0.0f);
  // Column (tap, c) is the row tap * icg + c of the HWIO kernel, read across the group's outputs.
  for (int64_t n = 0; n < nc; ++n) {
    const float* src = w + (col0 + n) * g.oc + grp * ocg;
    for (int64_t o = 0; o < ocg; ++o) out[o * nr + n] = src[o];
  }
}

}  // namespace convkit::ops
