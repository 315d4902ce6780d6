#include "ops/conv2d_pack.hpp"

#include <algorithm>

namespace convkit::ops {

void pack_forward_block(const Conv2dGeometry& g, int64_t nr, std::span<const int32_t> taps, const float* w,
                        const float* b, int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t col0 = grp * ocg + j * nr, nc = std::min(nr, ocg - j * nr);
  if (b)
    std::copy_n(b + col0, nc, out);
  else
    std::fill_n(out, nc, 0.0f);
  std::fill(out + nc, out + nr, 0.0f);
  out += nr;
  for (const int32_t tap : taps)
    for (int64_t c = 0; c < icg; ++c) {
      std::copy_n(w + (tap * icg + c) * g.oc + col0, nc, out);
      std::fill(out + nc, out + nr, 0.0f);
      out += nr;
    }
}

void pack_backward_data_block(const Conv2dGeometry& g, int64_t nr, std::span<const int32_t> taps, const float* w,
                              int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t c0 = j * nr, nc = std::min(nr, icg - c0);
  std::fill_n(out, nr, 0.0f);
  out += nr;
  for (const int32_t tap : taps) {
    // Rows o of this tap: read w's rows (one input channel, all outputs of the group) and scatter them by column.
    if (nc < nr) std::fill_n(out, ocg * nr, 0.0f);
    for (int64_t n = 0; n < nc; ++n) {
      const float* src = w + (tap * icg + c0 + n) * g.oc + grp * ocg;
      for (int64_t o = 0; o < ocg; ++o) out[o * nr + n] = src[o];
    }
    out += ocg * nr;
  }
}

}  // namespace convkit::ops

namespace convkit::ops {

void pack_scatter_block(const Conv2dGeometry& g, int64_t nr, const float* w, int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), cols = g.kh * g.kw * icg;
  const int64_t col0 = j * nr, nc = std::min(nr, cols - col0);
  std::fill_n(out, nr * (1 + ocg), 0.0f);
  out += nr;
  // Column (tap, c) is the row tap * icg + c of the HWIO kernel, read across the group's outputs.
  for (int64_t n = 0; n < nc; ++n) {
    const float* src = w + (col0 + n) * g.oc + grp * ocg;
    for (int64_t o = 0; o < ocg; ++o) out[o * nr + n] = src[o];
  }
}

}  // namespace convkit::ops
