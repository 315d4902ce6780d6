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

// One output pixel, multiplier 1: out[c] = act(bias[c] + sum_t a_t[c] * w[t][c]).
inline void dwconv_pixel_m1(std::size_t channels, std::size_t taps, const float* a_base, const int64_t* off,
                            const float* zero, const float* w, const float* bias, float* out, bool relu) {
  const V vzero = Simd::zero();
  std::size_t c = 0;
  // Four vectors of channels at a time: four independent FMA chains per tap.
  for (; c + 4 * kLanes <= channels; c += 4 * kLanes) {
    V acc[4];
#pragma GCC unroll 4
    for (std::size_t j = 0; j < 4; ++j) acc[j] = bias ? Simd::loadu(bias + c + j * kLanes) : vzero;
    for (std::size_t t = 0; t < taps; ++t) {
      const float* a = row_or_zero(a_base, off[t], zero) + c;
      const float* wt = w + t * channels + c;
#pragma GCC unroll 4
      for (std::size_t j = 0; j < 4; ++j)
        acc[j] = Simd::fma(Simd::loadu(a + j * kLanes), Simd::loadu(wt + j * kLanes), acc[j]);
    }
#pragma GCC unroll 4
    for (std::size_t j = 0; j < 4; ++j) Simd::storeu(out + c + j * kLanes, relu ? Simd::max(acc[j], vzero) : acc[j]);
  }
  for (; c < channels; c += kLanes) {
    const std::size_t n = channels - c;
    V acc = bias ? load_upto(bias + c, n) : vzero;
    for (std::size_t t = 0; t < taps; ++t) {
      const float* a = row_or_zero(a_base, off[t], zero) + c;
      acc = Simd::fma(load_upto(a, n), load_upto(w + t * channels + c, n), acc);
    }
    store_upto(out + c, relu ? Simd::max(acc, vzero) : acc, n);
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
  for (std::size_t i = 0; i < npix; ++i) {
    const int64_t* off = a_off + i * taps;
    float* out = c_base + c_off[i];
    if (mult == 1)
      dwconv_pixel_m1(channels, taps, a_base, off, zero, w, bias, out, relu);
    else
      dwconv_pixel_mult(channels, mult, taps, a_base, off, zero, w, bias, out, relu);
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
  // Multiplier 1: one vector of channels and up to 8 taps live in registers while the pixels stream by.
  constexpr std::size_t kTaps = 8;
  for (std::size_t c = 0; c < channels; c += kLanes) {
    const std::size_t n = channels - c < kLanes ? channels - c : kLanes;
    for (std::size_t t0 = 0; t0 < taps; t0 += kTaps) {
      const std::size_t nt = taps - t0 < kTaps ? taps - t0 : kTaps;
      V acc[kTaps];
#pragma GCC unroll 8
      for (std::size_t t = 0; t < kTaps; ++t) acc[t] = t < nt ? load_upto(dw + (t0 + t) * channels + c, n) : Simd::zero();
      for (std::size_t i = 0; i < npix; ++i) {
        const V dzv = load_upto(dz_base + dz_off[i] + c, n);
        const int64_t* off = x_off + i * taps + t0;
#pragma GCC unroll 8
        for (std::size_t t = 0; t < kTaps; ++t)
          if (t < nt) acc[t] = Simd::fma(load_upto(row_or_zero(x_base, off[t], zero) + c, n), dzv, acc[t]);
      }
#pragma GCC unroll 8
      for (std::size_t t = 0; t < kTaps; ++t)
        if (t < nt) store_upto(dw + (t0 + t) * channels + c, acc[t], n);
    }
  }
}

}  // namespace
}  // namespace convkit::uk
