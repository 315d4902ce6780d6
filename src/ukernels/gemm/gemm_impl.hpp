// src/ukernels/gemm/gemm_impl.hpp — the GEMM microkernels (direct, indirect, weight gradient), written once over
// the Simd operations of simd.hpp and instantiated by each ISA's translation unit with its register block
// (MR rows x NV vectors). Internal linkage throughout: see simd.hpp.
//
// The accumulators are arrays indexed by compile-time constants in fully unrolled loops, which GCC keeps in
// registers (checked in the generated assembly: the k loop is loads, broadcasts and FMAs only).
#pragma once

#include "ukernels/simd.hpp"
#include "ukernels/ukernels.hpp"

namespace convkit::uk {
namespace {

using V = Simd::V;
constexpr int kW = Simd::W;

template <int MR, int NV>
struct Acc {
  V v[MR][NV];
};

// acc = bias[0 .. nc) (zeros past nc, or everywhere without a bias).
template <int MR, int NV>
inline __attribute__((always_inline)) void acc_init_bias(Acc<MR, NV>& acc, const float* bias, std::size_t nc) {
  V b[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const std::size_t done = std::size_t(j) * kW;
    b[j] = bias && done < nc ? load_upto(bias + done, nc - done) : Simd::zero();
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc.v[r][j] = b[j];
}

// One weight row: NR floats, or (FULL false) nc of them with zeros after: the row may be the end of the weights.
// SPLIT (the wide GEMM): the second half of the row's vectors starts w_half floats after the first.
template <int NV, bool FULL, bool SPLIT = false>
inline __attribute__((always_inline)) void load_row(V (&b)[NV], const float* w, std::size_t nc,
                                                    std::size_t w_half = 0) {
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    const std::size_t done = std::size_t(j) * kW;
    const float* src = SPLIT && j >= NV / 2 ? w + w_half + (done - std::size_t(NV / 2) * kW) : w + done;
    b[j] = FULL ? Simd::loadu(src) : done < nc ? load_upto(src, nc - done) : Simd::zero();
  }
}

// acc[r] += a[r][k] * b.
template <int MR, int NV>
inline __attribute__((always_inline)) void acc_step(Acc<MR, NV>& acc, const float* const (&a)[MR], std::size_t k,
                                                    const V (&b)[NV]) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const V av = Simd::bcast(a[r] + k);
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc.v[r][j] = Simd::fma(av, b[j], acc.v[r][j]);
  }
}

// Stores rows r < mr, columns < nc: C (+)= acc, then the fused relu.
template <int MR, int NV>
inline __attribute__((always_inline)) void acc_store(Acc<MR, NV>& acc, std::size_t mr, std::size_t nc,
                                                     float* const (&rows)[MR], const GemmParams* p) {
  const bool relu = p->relu != 0, accumulate = p->accumulate != 0, stream = p->stream != 0 && !accumulate;
  if (nc == std::size_t(NV * kW)) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      if (std::size_t(r) >= mr) break;
      const bool nt = stream && reinterpret_cast<std::uintptr_t>(rows[r]) % 64 == 0;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        V v = acc.v[r][j];
        if (accumulate) v = Simd::add(v, Simd::loadu(rows[r] + j * kW));
        if (relu) v = uk::relu(v);
        if (nt)
          Simd::stream(rows[r] + j * kW, v);
        else
          Simd::storeu(rows[r] + j * kW, v);
      }
    }
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      if (std::size_t(r) >= mr) break;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        const std::size_t done = std::size_t(j) * kW;
        if (done >= nc) break;
        const std::size_t n = nc - done;
        V v = acc.v[r][j];
        if (accumulate) v = Simd::add(v, load_upto(rows[r] + done, n));
        if (relu) v = uk::relu(v);
        store_upto(rows[r] + done, v, n);
      }
    }
  }
}

// PACK: each row of B read is also stored at p->pack + k * NR (GemmParams::pack). SPLIT: the wide GEMM
// (uk::GemmWideFn), whose rows of B come in two halves, the second w_half floats after the first.
template <int MR, int NV, bool FULL, bool PACK = false, bool SPLIT = false>
inline void gemm_body(std::size_t mr, std::size_t nc, std::size_t kc, const float* a0, std::size_t a_stride,
                      const float* w, std::size_t w_stride, const float* bias, float* c0, std::size_t c_stride,
                      const GemmParams* p, std::size_t w_half = 0) {
  static_assert(!(PACK && SPLIT) && (!SPLIT || NV % 2 == 0), "packing reads one block; a split row two halves");
  const float* a[MR];
  float* rows[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    // Rows past mr repeat the last one: computed, never stored, never read out of bounds.
    const std::size_t rr = std::size_t(r) < mr ? std::size_t(r) : mr - 1;
    a[r] = a0 + rr * a_stride;
    rows[r] = c0 + rr * c_stride;
  }
  Acc<MR, NV> acc;
  acc_init_bias(acc, bias, nc);
  float* pack = PACK ? p->pack : nullptr;
  for (std::size_t k = 0; k < kc; ++k) {
    V b[NV];
    load_row<NV, FULL, SPLIT>(b, w, nc, w_half);
    w += w_stride;
    if constexpr (PACK) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) Simd::storeu(pack + j * kW, b[j]);
      pack += NV * kW;
    }
    acc_step(acc, a, k, b);
  }
  acc_store(acc, mr, nc, rows, p);
}

// A tile of at most half the rows (the last tile of a GEMM: 49 = 3 x 14 + 7 rows on a 7x7 map) runs the half-height
// block instead of computing MR rows to store mr: the same sums row by row, so the same results.
template <int MR, int NV>
inline void gemm_tile(std::size_t mr, std::size_t nc, std::size_t kc, const float* a0, std::size_t a_stride,
                      const float* w, std::size_t w_stride, const float* bias, float* c0, std::size_t c_stride,
                      const GemmParams* p) {
  if constexpr (MR >= 8) {
    if (mr <= std::size_t(MR / 2)) {
      gemm_tile<MR / 2, NV>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p);
      return;
    }
  }
  const bool full = nc == std::size_t(NV * kW);
  if (p->pack) {
    if (full)
      gemm_body<MR, NV, true, true>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p);
    else
      gemm_body<MR, NV, false, true>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p);
  } else if (full) {
    gemm_body<MR, NV, true>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p);
  } else {
    gemm_body<MR, NV, false>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p);
  }
}

// The wide GEMM (uk::GemmWideFn): the register block spans two NV/2-vector column blocks of B, the second w_half
// floats after the first (the next packed block, or the next columns of a kernel read in place).
template <int MR, int NV>
inline void gemm_wide_tile(std::size_t mr, std::size_t nc, std::size_t kc, const float* a0, std::size_t a_stride,
                           const float* w, std::size_t w_stride, std::size_t w_half, const float* bias, float* c0,
                           std::size_t c_stride, const GemmParams* p) {
  if constexpr (MR >= 6) {
    // As gemm_tile: a tile of at most half the rows (the last of a 7x7 map: 49 = 8 x 6 + 1) runs the half block.
    if (mr <= std::size_t(MR / 2))
      return gemm_wide_tile<MR / 2, NV>(mr, nc, kc, a0, a_stride, w, w_stride, w_half, bias, c0, c_stride, p);
  }
  if (nc == std::size_t(NV * kW))
    gemm_body<MR, NV, true, false, true>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p, w_half);
  else
    gemm_body<MR, NV, false, false, true>(mr, nc, kc, a0, a_stride, w, w_stride, bias, c0, c_stride, p, w_half);
}

// One tap of the indirect GEMM over the rows LO <= r < HI: acc[r] += a[r][0 .. kc) . w (kc rows, w_stride apart).
template <int LO, int HI, int MR, int NV, bool FULL>
inline __attribute__((always_inline)) void igemm_tap(Acc<MR, NV>& acc, const float* const (&a)[MR], const float* w,
                                                     std::size_t w_stride, std::size_t kc, std::size_t nc) {
  for (std::size_t k = 0; k < kc; ++k) {
    V b[NV];
    load_row<NV, FULL>(b, w, nc);
    w += w_stride;
#pragma GCC unroll 16
    for (int r = LO; r < HI; ++r) {
      const V av = Simd::bcast(a[r] + k);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc.v[r][j] = Simd::fma(av, b[j], acc.v[r][j]);
    }
  }
}

// AS: the a_off entries per tap (the caller's MR; more than MR in the half-height block of igemm_tile). EDGES: some
// tap reads padding at the first or last row of the tile (a separate instantiation, so that tiles without keep the
// plain loop).
template <int MR, int NV, bool FULL, int AS = MR, bool EDGES = false>
inline void igemm_body(std::size_t mr, std::size_t nc, std::size_t kc, std::size_t ks, const float* a_base,
                       const int64_t* a_off /* ks x AS */, const float* zero, const float* w, std::size_t w_stride,
                       const float* bias, float* c_base, const int64_t* c_off /* MR */, const GemmParams* p) {
  Acc<MR, NV> acc;
  acc_init_bias(acc, bias, nc);
  for (std::size_t t = 0; t < ks; ++t) {
    const float* a[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const int64_t off = a_off[r];
      a[r] = off < 0 ? zero : a_base + off;
    }
    if constexpr (MR >= 8 && EDGES) {
      // Up to 2 padded rows at each end of the tile (a tile of one output row under a 5x5 kernel, padding 2) are
      // left out of the tap's FMAs: fewer multiplications, and padded cells skipped as the reference skips them.
      const int lead = a_off[0] < 0 ? (a_off[1] < 0 ? 2 : 1) : 0;
      const int trail = a_off[MR - 1] < 0 ? (a_off[MR - 2] < 0 ? 2 : 1) : 0;
      a_off += AS;
      switch (lead * 3 + trail) {
        case 0: igemm_tap<0, MR, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 1: igemm_tap<0, MR - 1, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 2: igemm_tap<0, MR - 2, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 3: igemm_tap<1, MR, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 4: igemm_tap<1, MR - 1, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 5: igemm_tap<1, MR - 2, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 6: igemm_tap<2, MR, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        case 7: igemm_tap<2, MR - 1, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
        default: igemm_tap<2, MR - 2, MR, NV, FULL>(acc, a, w, w_stride, kc, nc); break;
      }
    } else {
      a_off += AS;
      igemm_tap<0, MR, MR, NV, FULL>(acc, a, w, w_stride, kc, nc);
    }
    w += kc * w_stride;
  }
  float* rows[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) rows[r] = c_base + c_off[std::size_t(r) < mr ? r : 0];
  acc_store(acc, mr, nc, rows, p);
}

// As gemm_tile, a tile of at most half the rows (the last of a 7x7 map: 49 = 3 x 14 + 7) runs the half-height
// block, which reads the first MR / 2 of each tap's MR offsets: the same sums row by row, so the same results.
template <int MR, int NV>
inline void igemm_tile(std::size_t mr, std::size_t nc, std::size_t kc, std::size_t ks, const float* a_base,
                       const int64_t* a_off, const float* zero, const float* w, std::size_t w_stride, const float* bias,
                       float* c_base, const int64_t* c_off, const GemmParams* p) {
  if constexpr (MR >= 8) {
    if (mr <= std::size_t(MR / 2)) {
      if (nc == std::size_t(NV * kW))
        igemm_body<MR / 2, NV, true, MR>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
      else
        igemm_body<MR / 2, NV, false, MR>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
      return;
    }
    bool edges = false;
    for (std::size_t t = 0; t < ks; ++t) edges |= (a_off[t * MR] < 0) | (a_off[t * MR + MR - 1] < 0);
    if (edges) {
      if (nc == std::size_t(NV * kW))
        igemm_body<MR, NV, true, MR, true>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
      else
        igemm_body<MR, NV, false, MR, true>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
      return;
    }
  }
  if (nc == std::size_t(NV * kW))
    igemm_body<MR, NV, true>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
  else
    igemm_body<MR, NV, false>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
}

// Weight gradient for exactly M rows (input channels); FULL: nc == NR, so the dz rows need no masking.
template <int M, int NV, bool FULL>
inline void wgrad_rows(std::size_t nc, std::size_t k, const float* x_base, const int64_t* x_off, const float* dz_base,
                       const int64_t* dz_off, float* dw, std::size_t dw_stride, int accumulate) {
  Acc<M, NV> acc;
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const std::size_t done = std::size_t(j) * kW;
      if (!accumulate || done >= nc)
        acc.v[r][j] = Simd::zero();
      else
        acc.v[r][j] = FULL ? Simd::loadu(dw + r * dw_stride + done) : load_upto(dw + r * dw_stride + done, nc - done);
    }
  for (std::size_t i = 0; i < k; ++i) {
    const float* xp = x_base + x_off[i];
    const float* dp = dz_base + dz_off[i];
    V b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const std::size_t done = std::size_t(j) * kW;
      // Masked loads past nc: the dz row of the last pixel may end the buffer.
      b[j] = FULL ? Simd::loadu(dp + done) : (done < nc ? load_upto(dp + done, nc - done) : Simd::zero());
    }
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const V xv = Simd::bcast(xp + r);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc.v[r][j] = Simd::fma(xv, b[j], acc.v[r][j]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const std::size_t done = std::size_t(j) * kW;
      if (done >= nc) break;
      if (FULL)
        Simd::storeu(dw + r * dw_stride + done, acc.v[r][j]);
      else
        store_upto(dw + r * dw_stride + done, acc.v[r][j], nc - done);
    }
}

// Dispatches the row count to a compile-time M (1 .. MR) so that no row past mr is ever read: the x row of the
// last pixel may end the buffer.
template <int MR, int NV>
inline void wgrad_tile(std::size_t mr, std::size_t nc, std::size_t k, const float* x_base, const int64_t* x_off,
                       const float* dz_base, const int64_t* dz_off, float* dw, std::size_t dw_stride, int accumulate) {
  if constexpr (MR >= 1) {
    if (mr == std::size_t(MR)) {
      if (nc == std::size_t(NV * kW))
        wgrad_rows<MR, NV, true>(nc, k, x_base, x_off, dz_base, dz_off, dw, dw_stride, accumulate);
      else
        wgrad_rows<MR, NV, false>(nc, k, x_base, x_off, dz_base, dz_off, dw, dw_stride, accumulate);
      return;
    }
    if constexpr (MR > 1) wgrad_tile<MR - 1, NV>(mr, nc, k, x_base, x_off, dz_base, dz_off, dw, dw_stride, accumulate);
  }
}

}  // namespace
}  // namespace convkit::uk
