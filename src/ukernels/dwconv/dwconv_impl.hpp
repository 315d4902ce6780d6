// src/ukernels/dwconv/dwconv_impl.hpp — depthwise convolution microkernels, written once over simd.hpp and
// instantiated by each ISA's translation unit. Vectorised over channels (NHWC keeps them contiguous); the
// channel multiplier 1 case (the common one) has the fast paths, multipliers > 1 take plainer loops.
// Internal linkage throughout: see simd.hpp.
#pragma once

#include "ukernels/simd.hpp"
#include "ukernels/ukernels.hpp"

namespace convkit::uk {
namespace {

using V = Simd::V;
constexpr std::size_t kLanes = Simd::W;

inline const float* row_or_zero(const float* base, int64_t off, const float* zero) {
  return off < 0 ? zero : base + off;
}

// P output pixels (1 or 2), multiplier 1: out_p[c] = act(bias[c] + sum_t a_pt[c] * w[t][c]). Two pixels share each
// weight load: 3 loads per 2 FMAs instead of 4.
template <int P>
inline void dwconv_pixels_m1(std::size_t channels, std::size_t taps, const float* a_base,
                             const int64_t* const (&off)[P], const float* zero, const float* w, const float* bias,
                             float* const (&out)[P], bool relu) {
  const V vzero = Simd::zero();
  std::size_t c = 0;
  // Four vectors of channels at a time: 4 * P independent FMA chains per tap.
  for (; c + 4 * kLanes <= channels; c += 4 * kLanes) {
    V acc[P][4];
#pragma GCC unroll 4
    for (std::size_t j = 0; j < 4; ++j) {
      const V b = bias ? Simd::loadu(bias + c + j * kLanes) : vzero;
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p) acc[p][j] = b;
    }
    for (std::size_t t = 0; t < taps; ++t) {
      const float* a[P];
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p) a[p] = row_or_zero(a_base, off[p][t], zero) + c;
      const float* wt = w + t * channels + c;
#pragma GCC unroll 4
      for (std::size_t j = 0; j < 4; ++j) {
        const V wv = Simd::loadu(wt + j * kLanes);
#pragma GCC unroll 2
        for (int p = 0; p < P; ++p) acc[p][j] = Simd::fma(Simd::loadu(a[p] + j * kLanes), wv, acc[p][j]);
      }
    }
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
      for (std::size_t j = 0; j < 4; ++j)
        Simd::storeu(out[p] + c + j * kLanes, relu ? Simd::max(acc[p][j], vzero) : acc[p][j]);
  }
  for (; c < channels; c += kLanes) {
    const std::size_t n = channels - c;
    const V b = bias ? load_upto(bias + c, n) : vzero;
    V acc[P];
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) acc[p] = b;
    for (std::size_t t = 0; t < taps; ++t) {
      const V wv = load_upto(w + t * channels + c, n);
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p)
        acc[p] = Simd::fma(load_upto(row_or_zero(a_base, off[p][t], zero) + c, n), wv, acc[p]);
    }
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) store_upto(out[p] + c, relu ? Simd::max(acc[p], vzero) : acc[p], n);
  }
}

// One output pixel, multiplier > 1: output channel o reads input channel o / mult.
inline void dwconv_pixel_mult(std::size_t channels, std::size_t mult, std::size_t taps, const float* a_base,
                              const int64_t* off, const float* zero, const float* w, const float* bias, float* out,
                              bool relu) {
  const V vzero = Simd::zero();
  alignas(64) float expanded[kLanes];
  for (std::size_t o = 0; o < channels; o += kLanes) {
    const std::size_t n = channels - o < kLanes ? channels - o : kLanes;
    V acc = bias ? load_upto(bias + o, n) : vzero;
    for (std::size_t t = 0; t < taps; ++t) {
      const float* a = row_or_zero(a_base, off[t], zero);
      for (std::size_t l = 0; l < n; ++l) expanded[l] = a[(o + l) / mult];
      acc = Simd::fma(load_upto(expanded, n), load_upto(w + t * channels + o, n), acc);
    }
    store_upto(out + o, relu ? Simd::max(acc, vzero) : acc, n);
  }
}

inline void dwconv(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps, const float* a_base,
                   const int64_t* a_off /* npix x taps */, const float* zero, const float* w /* taps x channels */,
                   const float* bias, float* c_base, const int64_t* c_off /* npix */, const GemmParams* p) {
  const bool relu = p->relu != 0;
  std::size_t i = 0;
  if (mult == 1)
    for (; i + 2 <= npix; i += 2) {
      const int64_t* const off[2] = {a_off + i * taps, a_off + (i + 1) * taps};
      float* const out[2] = {c_base + c_off[i], c_base + c_off[i + 1]};
      dwconv_pixels_m1<2>(channels, taps, a_base, off, zero, w, bias, out, relu);
    }
  for (; i < npix; ++i) {
    const int64_t* const off[1] = {a_off + i * taps};
    float* const out[1] = {c_base + c_off[i]};
    if (mult == 1)
      dwconv_pixels_m1<1>(channels, taps, a_base, off, zero, w, bias, out, relu);
    else
      dwconv_pixel_mult(channels, mult, taps, a_base, off[0], zero, w, bias, out[0], relu);
  }
}

inline void dwconv_reduce(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                          const float* a_base, const int64_t* a_off /* npix x taps */, const float* zero,
                          const float* w /* taps x channels * mult */, float* c_base, const int64_t* c_off) {
  const std::size_t oc = channels * mult;
  for (std::size_t i = 0; i < npix; ++i) {
    const int64_t* off = a_off + i * taps;
    float* out = c_base + c_off[i];
    for (std::size_t c = 0; c < channels; ++c) out[c] = 0.0f;
    for (std::size_t t = 0; t < taps; ++t) {
      const float* a = row_or_zero(a_base, off[t], zero);
      const float* wt = w + t * oc;
      for (std::size_t c = 0; c < channels; ++c) {
        float s = 0.0f;
        for (std::size_t j = 0; j < mult; ++j) s += a[c * mult + j] * wt[c * mult + j];
        out[c] += s;
      }
    }
  }
}

// Depthwise weight gradient, multiplier 1, channels [c, c + n) with n <= NV * W: blocks of 8 taps, each a pass over the
// pixels with 8 x NV accumulators.
template <int NV>
inline void dwconv_wgrad_m1(std::size_t npix, std::size_t channels, std::size_t taps, std::size_t c, std::size_t n,
                            const float* x_base, const int64_t* x_off, const float* zero, const float* dz_base,
                            const int64_t* dz_off, float* dw) {
  constexpr std::size_t kTaps = 8;
  std::size_t nv[NV];  // lanes of each vector
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    const std::size_t done = std::size_t(v) * kLanes;
    nv[v] = n > done ? (n - done < kLanes ? n - done : kLanes) : 0;
  }
  for (std::size_t t0 = 0; t0 < taps; t0 += kTaps) {
    const std::size_t nt = taps - t0 < kTaps ? taps - t0 : kTaps;
    V acc[kTaps][NV];
#pragma GCC unroll 8
    for (std::size_t t = 0; t < kTaps; ++t)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v)
        acc[t][v] = t < nt ? load_upto(dw + (t0 + t) * channels + c + v * kLanes, nv[v]) : Simd::zero();
    for (std::size_t i = 0; i < npix; ++i) {
      V dzv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) dzv[v] = load_upto(dz_base + dz_off[i] + c + v * kLanes, nv[v]);
      const int64_t* off = x_off + i * taps + t0;
#pragma GCC unroll 8
      for (std::size_t t = 0; t < kTaps; ++t)
        if (t < nt) {
          const float* x = row_or_zero(x_base, off[t], zero) + c;
#pragma GCC unroll 2
          for (int v = 0; v < NV; ++v) acc[t][v] = Simd::fma(load_upto(x + v * kLanes, nv[v]), dzv[v], acc[t][v]);
        }
    }
#pragma GCC unroll 8
    for (std::size_t t = 0; t < kTaps; ++t)
      if (t < nt)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) store_upto(dw + (t0 + t) * channels + c + v * kLanes, acc[t][v], nv[v]);
  }
}

inline void dwconv_wgrad(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                         const float* x_base, const int64_t* x_off /* npix x taps */, const float* zero,
                         const float* dz_base, const int64_t* dz_off /* npix */, float* dw /* taps x channels */) {
  if (mult != 1) {
    for (std::size_t i = 0; i < npix; ++i) {
      const float* dz = dz_base + dz_off[i];
      for (std::size_t t = 0; t < taps; ++t) {
        const float* x = row_or_zero(x_base, x_off[i * taps + t], zero);
        float* dwt = dw + t * channels;
        for (std::size_t o = 0; o < channels; ++o) dwt[o] += x[o / mult] * dz[o];
      }
    }
    return;
  }
  // Multiplier 1: up to 8 taps x NV vectors of channels live in registers while the pixels stream by.
  std::size_t c = 0;
  for (; c + 2 * kLanes <= channels; c += 2 * kLanes)
    dwconv_wgrad_m1<2>(npix, channels, taps, c, 2 * kLanes, x_base, x_off, zero, dz_base, dz_off, dw);
  for (; c < channels; c += kLanes)
    dwconv_wgrad_m1<1>(npix, channels, taps, c, channels - c, x_base, x_off, zero, dz_base, dz_off, dw);
}

}  // namespace
}  // namespace convkit::uk
