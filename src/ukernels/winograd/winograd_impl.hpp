// src/ukernels/winograd/winograd_impl.hpp — the F(4x4, 3x3) transforms of winograd.hpp, written once over simd.hpp
// and instantiated by each ISA's translation unit. Each transform is two passes of a 1-D transform (columns, then
// rows) over one vector of channels at a time. Internal linkage throughout: see simd.hpp.
#pragma once

#include "ukernels/simd.hpp"
#include "ukernels/winograd/winograd.hpp"

namespace convkit::uk {
namespace {

using WV = Simd::V;
constexpr std::size_t kWL = Simd::W;

// simd.hpp has no sub / mul: a - b = fma(-1, b, a) and c * x = fma(c, x, 0) round exactly as sub and mul would.
inline WV wsub(WV a, WV b) { return Simd::fma(Simd::set1(-1.0f), b, a); }
inline WV wmul(float c, WV x) { return Simd::fma(Simd::set1(c), x, Simd::zero()); }
inline WV wfma(float c, WV x, WV y) { return Simd::fma(Simd::set1(c), x, y); }

template <bool FULL>
inline WV wload(const float* p, std::size_t n) {
  return FULL ? Simd::loadu(p) : load_upto(p, n);
}
template <bool FULL>
inline void wstore(float* p, WV v, std::size_t n) {
  if (FULL)
    Simd::storeu(p, v);
  else
    store_upto(p, v, n);
}

// o = B^T x (6 -> 6). Every coefficient is dyadic (-17/4 included), so only the sums round.
inline __attribute__((always_inline)) void bt6(const WV (&x)[6], WV (&o)[6]) {
  const WV a = wfma(-4.0f, x[2], x[4]);              // x4 - 4 x2
  const WV b = wfma(0.5f, x[3], wmul(-2.0f, x[1]));  // x3 / 2 - 2 x1
  const WV c = wfma(-0.25f, x[2], x[4]);             // x4 - x2 / 4
  const WV d = wfma(2.0f, x[3], wmul(-0.5f, x[1]));  // 2 x3 - x1 / 2
  o[0] = wfma(-4.25f, x[2], Simd::add(x[0], x[4]));
  o[1] = Simd::add(a, b);
  o[2] = wsub(a, b);
  o[3] = Simd::add(c, d);
  o[4] = wsub(c, d);
  o[5] = wfma(-4.25f, x[3], Simd::add(x[1], x[5]));
}

// o = A^T x (6 -> 4); the coefficients are powers of two.
inline __attribute__((always_inline)) void at6(const WV (&x)[6], WV (&o)[4]) {
  const WV s12 = Simd::add(x[1], x[2]), d12 = wsub(x[1], x[2]);
  const WV s34 = Simd::add(x[3], x[4]), d34 = wsub(x[3], x[4]);
  o[0] = Simd::add(Simd::add(x[0], s12), s34);
  o[1] = wfma(2.0f, d34, wmul(0.5f, d12));
  o[2] = wfma(4.0f, s34, wmul(0.25f, s12));
  o[3] = Simd::add(wfma(8.0f, d34, wmul(0.125f, d12)), x[5]);
}

// o = G x (3 -> 6); the two non-dyadic factors (2/15, 1/30) are applied last, once.
inline __attribute__((always_inline)) void g3(const WV (&x)[3], WV (&o)[6]) {
  const WV p = wfma(4.0f, x[0], x[2]);  // 4 x0 + x2
  const WV q = wfma(4.0f, x[2], x[0]);  // x0 + 4 x2
  o[0] = x[0];
  o[1] = wmul(-2.0f / 15.0f, wfma(2.0f, x[1], p));
  o[2] = wmul(-2.0f / 15.0f, wfma(-2.0f, x[1], p));
  o[3] = wmul(1.0f / 30.0f, wfma(2.0f, x[1], q));
  o[4] = wmul(1.0f / 30.0f, wfma(-2.0f, x[1], q));
  o[5] = x[2];
}

template <bool FULL>
inline void wino_input_chunk(const float* const* src, std::size_t k, std::size_t n, float* v, std::size_t vs) {
  WV t[6][6];
#pragma GCC unroll 6
  for (int j = 0; j < 6; ++j) {
    WV d[6], o[6];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) d[i] = wload<FULL>(src[6 * i + j] + k, n);
    bt6(d, o);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) t[i][j] = o[i];
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    WV o[6];
    bt6(t[i], o);
#pragma GCC unroll 6
    for (int j = 0; j < 6; ++j) wstore<FULL>(v + std::size_t(6 * i + j) * vs + k, o[j], n);
  }
}

inline void wino_input(std::size_t c, const float* const* src, float* v, std::size_t v_stride) {
  std::size_t k = 0;
  for (; k + kWL <= c; k += kWL) wino_input_chunk<true>(src, k, kWL, v, v_stride);
  if (k < c) wino_input_chunk<false>(src, k, c - k, v, v_stride);
}

template <bool FULL>
inline void wino_output_chunk(const float* m, std::size_t ms, std::size_t k, std::size_t n, const float* bias,
                              float* const* dst, bool relu) {
  WV t[4][6];
#pragma GCC unroll 6
  for (int j = 0; j < 6; ++j) {
    WV x[6], o[4];
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) x[i] = wload<FULL>(m + std::size_t(6 * i + j) * ms + k, n);
    at6(x, o);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) t[i][j] = o[i];
  }
  const WV b = bias ? wload<FULL>(bias + k, n) : Simd::zero();
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    WV o[4];
    at6(t[i], o);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      float* d = dst[4 * i + j];
      if (!d) continue;
      WV y = Simd::add(o[j], b);
      if (relu) y = uk::relu(y);  // the same relu as the GEMM epilogue (simd.hpp)
      wstore<FULL>(d + k, y, n);
    }
  }
}

inline void wino_output(std::size_t c, const float* m, std::size_t m_stride, const float* bias, float* const* dst,
                        int relu) {
  std::size_t k = 0;
  for (; k + kWL <= c; k += kWL) wino_output_chunk<true>(m, m_stride, k, kWL, bias, dst, relu != 0);
  if (k < c) wino_output_chunk<false>(m, m_stride, k, c - k, bias, dst, relu != 0);
}

template <bool FULL>
inline void wino_weight_chunk(const float* const* src, std::size_t k, std::size_t n, float* u, std::size_t us) {
  WV t[6][3];
#pragma GCC unroll 3
  for (int j = 0; j < 3; ++j) {
    WV x[3], o[6];
#pragma GCC unroll 3
    for (int i = 0; i < 3; ++i) x[i] = wload<FULL>(src[3 * i + j] + k, n);
    g3(x, o);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) t[i][j] = o[i];
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    WV o[6];
    g3(t[i], o);
#pragma GCC unroll 6
    for (int j = 0; j < 6; ++j) wstore<FULL>(u + std::size_t(6 * i + j) * us + k, o[j], n);
  }
}

inline void wino_weight(std::size_t c, const float* const* src, float* u, std::size_t u_stride) {
  std::size_t k = 0;
  for (; k + kWL <= c; k += kWL) wino_weight_chunk<true>(src, k, kWL, u, u_stride);
  if (k < c) wino_weight_chunk<false>(src, k, c - k, u, u_stride);
}

}  // namespace
}  // namespace convkit::uk
