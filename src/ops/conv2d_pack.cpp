#include "ops/conv2d_pack.hpp"

#include <algorithm>

#ifdef __SSE2__
#include <xmmintrin.h>  // the x86-64 baseline: fine in this ISA-neutral file
#endif

namespace convkit::ops {

namespace {

// dst[o * dst_stride + n] = src[n * src_stride + o] for n < rows, o < cols: a transposition in 4 x 4 blocks of
// registers, 64 source columns at a time so that the destination lines being filled stay in L1.
void transpose(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst, int64_t dst_stride) {
  constexpr int64_t kColsPerPass = 64;
  for (int64_t o0 = 0; o0 < cols; o0 += kColsPerPass) {
    const int64_t o1 = std::min(cols, o0 + kColsPerPass);
    int64_t n = 0;
#ifdef __SSE2__
    for (; n + 4 <= rows; n += 4) {
      const float* s = src + n * src_stride;
      int64_t o = o0;
      for (; o + 4 <= o1; o += 4) {
        __m128 r0 = _mm_loadu_ps(s + o), r1 = _mm_loadu_ps(s + src_stride + o);
        __m128 r2 = _mm_loadu_ps(s + 2 * src_stride + o), r3 = _mm_loadu_ps(s + 3 * src_stride + o);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + o * dst_stride + n, r0);
        _mm_storeu_ps(dst + (o + 1) * dst_stride + n, r1);
        _mm_storeu_ps(dst + (o + 2) * dst_stride + n, r2);
        _mm_storeu_ps(dst + (o + 3) * dst_stride + n, r3);
      }
      for (; o < o1; ++o)
        for (int64_t k = 0; k < 4; ++k) dst[o * dst_stride + n + k] = s[k * src_stride + o];
    }
#endif
    for (; n < rows; ++n)
      for (int64_t o = o0; o < o1; ++o) dst[o * dst_stride + n] = src[n * src_stride + o];
  }
}

}  // namespace

void pack_forward_block(const Conv2dGeometry& g, int64_t nr, const float* w, int64_t grp, int64_t j, float* out) {
  const int64_t rows = g.kh * g.kw * g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t c0 = j * nr, nc = std::min(nr, ocg - c0);
  const float* src = w + grp * ocg + c0;
  for (int64_t r = 0; r < rows; ++r, src += g.oc, out += nr) {
    std::copy_n(src, nc, out);
    if (nc < nr) std::fill_n(out + nc, nr - nc, 0.0f);
  }
}

void pack_backward_data_block(const Conv2dGeometry& g, int64_t nr, std::span<const int32_t> taps, const float* w,
                              int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group();
  const int64_t c0 = j * nr, nc = std::min(nr, icg - c0);
  for (const int32_t tap : taps) {
    // w's rows (one input channel, the group's outputs) become the block's columns.
    if (nc < nr) std::fill_n(out, ocg * nr, 0.0f);
    transpose(w + (tap * icg + c0) * g.oc + grp * ocg, g.oc, nc, ocg, out, nr);
    out += ocg * nr;
  }
}

void pack_scatter_block(const Conv2dGeometry& g, int64_t nr, const float* w, int64_t grp, int64_t j, float* out) {
  const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), cols = g.kh * g.kw * icg;
  const int64_t col0 = j * nr, nc = std::min(nr, cols - col0);
  std::fill_n(out, nr * ocg, 0.0f);
  // Column (tap, c) is the row tap * icg + c of the HWIO kernel, read across the group's outputs.
  transpose(w + col0 * g.oc + grp * ocg, g.oc, nc, ocg, out, nr);
}

}  // namespace convkit::ops
