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

// A separable 2-D transform into 6 x 6 points, for one vector of channels [k, k + n): x = src[IN * i + j] + k
// (IN x IN points, i the row), the 1-D transform T (IN -> 6) over the columns then over the rows, point (i, j) of
// the result stored at dst + (6 * i + j) * ds + k. The input transform is T = B^T (6 -> 6), the weight transform
// T = G (3 -> 6).
template <int IN, bool FULL, void (*T)(const WV (&)[IN], WV (&)[6])>
inline __attribute__((always_inline)) void wino_to6_chunk(const float* const* src, std::size_t k, std::size_t n,
                                                           float* dst, std::size_t ds) {
  WV t[6][IN];
#pragma GCC unroll 6
  for (int j = 0; j < IN; ++j) {
    WV x[IN], o[6];
#pragma GCC unroll 6
    for (int i = 0; i < IN; ++i) x[i] = wload<FULL>(src[IN * i + j] + k, n);
    T(x, o);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) t[i][j] = o[i];
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    WV o[6];
    T(t[i], o);
#pragma GCC unroll 6
    for (int j = 0; j < 6; ++j) wstore<FULL>(dst + std::size_t(6 * i + j) * ds + k, o[j], n);
  }
}

// The same over all c channels: full vectors, then the remainder.
template <int IN, void (*T)(const WV (&)[IN], WV (&)[6])>
inline void wino_to6(std::size_t c, const float* const* src, float* dst, std::size_t ds) {
  std::size_t k = 0;
  for (; k + kWL <= c; k += kWL) wino_to6_chunk<IN, true, T>(src, k, kWL, dst, ds);
  if (k < c) wino_to6_chunk<IN, false, T>(src, k, c - k, dst, ds);
}

inline void wino_input(std::size_t c, const float* const* src, float* v, std::size_t v_stride) {
  wino_to6<6, bt6>(c, src, v, v_stride);
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

inline void wino_weight(std::size_t c, const float* const* src, float* u, std::size_t u_stride) {
  wino_to6<3, g3>(c, src, u, u_stride);
}

// C = A W for exactly M rows (winograd.hpp, WinoGemmFn); FULL: nc is the full two vectors.
template <int M, bool FULL>
inline void wino_gemm_rows(std::size_t nc, std::size_t kc, const float* a, std::size_t as, const float* w,
                           std::size_t ws, float* c, std::size_t cs) {
  WV acc[M][2];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) acc[r][0] = acc[r][1] = Simd::zero();
  const std::size_t n1 = nc > kWL ? nc - kWL : 0;  // columns in the second vector
  for (std::size_t k = 0; k < kc; ++k) {
    const WV b0 = wload<FULL>(w, nc);
    const WV b1 = FULL ? Simd::loadu(w + kWL) : n1 > 0 ? load_upto(w + kWL, n1) : Simd::zero();
    w += ws;
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const WV av = Simd::bcast(a + r * as + k);
      acc[r][0] = Simd::fma(av, b0, acc[r][0]);
      acc[r][1] = Simd::fma(av, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
    float* row = c + r * cs;
    if (FULL) {
      Simd::storeu(row, acc[r][0]);
      Simd::storeu(row + kWL, acc[r][1]);
    } else {
      store_upto(row, acc[r][0], nc < kWL ? nc : kWL);
      if (n1 > 0) store_upto(row + kWL, acc[r][1], n1);
    }
  }
}

template <int M>
inline void wino_gemm_m(std::size_t nc, std::size_t kc, const float* a, std::size_t as, const float* w,
                        std::size_t ws, float* c, std::size_t cs) {
  if (nc == 2 * kWL)
    wino_gemm_rows<M, true>(nc, kc, a, as, w, ws, c, cs);
  else
    wino_gemm_rows<M, false>(nc, kc, a, as, w, ws, c, cs);
}

inline void wino_gemm(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t as,
                      const float* w, std::size_t ws, float* c, std::size_t cs) {
  switch (mr) {
    case 1: return wino_gemm_m<1>(nc, kc, a, as, w, ws, c, cs);
    case 2: return wino_gemm_m<2>(nc, kc, a, as, w, ws, c, cs);
    case 3: return wino_gemm_m<3>(nc, kc, a, as, w, ws, c, cs);
    case 4: return wino_gemm_m<4>(nc, kc, a, as, w, ws, c, cs);
    case 5: return wino_gemm_m<5>(nc, kc, a, as, w, ws, c, cs);
    case 6: return wino_gemm_m<6>(nc, kc, a, as, w, ws, c, cs);
    case 7: return wino_gemm_m<7>(nc, kc, a, as, w, ws, c, cs);
    case 8: return wino_gemm_m<8>(nc, kc, a, as, w, ws, c, cs);
    case 9: return wino_gemm_m<9>(nc, kc, a, as, w, ws, c, cs);
    case 10: return wino_gemm_m<10>(nc, kc, a, as, w, ws, c, cs);
    case 11: return wino_gemm_m<11>(nc, kc, a, as, w, ws, c, cs);
    case 12: return wino_gemm_m<12>(nc, kc, a, as, w, ws, c, cs);
    case 13: return wino_gemm_m<13>(nc, kc, a, as, w, ws, c, cs);
    default: return wino_gemm_m<14>(nc, kc, a, as, w, ws, c, cs);
  }
}

}  // namespace
}  // namespace convkit::uk
