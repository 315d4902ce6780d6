// src/ukernels/dwconv/dwconv_impl.hpp — depthwise convolution microkernels, written once over simd.hpp and
// instantiated by each ISA's translation unit. Vectorised over channels (NHWC keeps them contiguous); the
// channel multiplier 1 case (the common one) keeps the most in registers; multipliers > 1 expand the input channels
// to the output lanes with one permutation per vector.
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
        Simd::storeu(out[p] + c + j * kLanes, relu ? uk::relu(acc[p][j]) : acc[p][j]);
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
    for (int p = 0; p < P; ++p) store_upto(out[p] + c, relu ? uk::relu(acc[p]) : acc[p], n);
  }
}

// Multiplier > 1: output channel o reads input channel o / mult. A block of W output channels starting at o0 reads
// the input channels [o0 / mult, (o0 + n - 1) / mult]: one (masked) vector load, then a lane permutation puts input
// channel (o0 + l) / mult in lane l. The permutation depends on the block only, so it is computed once per block.
struct Expand {
  alignas(64) int32_t idx[kLanes];  // lane l takes loaded lane idx[l]
  std::size_t in0 = 0, nin = 0;     // the input channels loaded: [in0, in0 + nin)
  Expand(std::size_t o0, std::size_t n, std::size_t mult) : in0(o0 / mult), nin((o0 + n - 1) / mult - o0 / mult + 1) {
    for (std::size_t l = 0; l < kLanes; ++l) idx[l] = int32_t(l < n ? (o0 + l) / mult - in0 : 0);
  }
};

inline V permute(V v, const int32_t* idx) {
#if defined(__AVX512F__)
  return _mm512_maskz_permutexvar_ps(__mmask16(0xFFFF), _mm512_load_si512(idx), v);  // maskz: see Simd::max
#elif defined(__AVX2__)
  return _mm256_permutevar8x32_ps(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(idx)));
#elif defined(__clang__)
  // clang has no __builtin_shuffle with run-time indices (the sanitizer and fuzz builds use clang).
  V r;
  for (int l = 0; l < 4; ++l) r[l] = v[idx[l] & 3];
  return r;
#else
  typedef int32_t IV __attribute__((vector_size(16)));
  IV iv;
  std::memcpy(&iv, idx, sizeof iv);
  return __builtin_shuffle(v, iv);
#endif
}

// The input channels of block e of one input row, spread over the block's output lanes.
inline V load_expanded(const float* row, const Expand& e) { return permute(load_upto(row + e.in0, e.nin), e.idx); }

// Multiplier > 1, all pixels: blocks of W output channels outside (one permutation each), pixels inside.
inline void dwconv_mult(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                        const float* a_base, const int64_t* a_off, const float* zero, const float* w,
                        const float* bias, float* c_base, const int64_t* c_off, bool relu) {
  for (std::size_t o0 = 0; o0 < channels; o0 += kLanes) {
    const std::size_t n = channels - o0 < kLanes ? channels - o0 : kLanes;
    const Expand e(o0, n, mult);
    const V b = bias ? load_upto(bias + o0, n) : Simd::zero();
    for (std::size_t i = 0; i < npix; ++i) {
      const int64_t* off = a_off + i * taps;
      V acc = b;
      for (std::size_t t = 0; t < taps; ++t)
        acc = Simd::fma(load_expanded(row_or_zero(a_base, off[t], zero), e), load_upto(w + t * channels + o0, n), acc);
      store_upto(c_base + c_off[i] + o0, relu ? uk::relu(acc) : acc, n);
    }
  }
}

inline void dwconv(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps, const float* a_base,
                   const int64_t* a_off /* npix x taps */, const float* zero, const float* w /* taps x channels */,
                   const float* bias, float* c_base, const int64_t* c_off /* npix */, const GemmParams* p) {
  const bool relu = p->relu != 0;
  if (mult != 1) return dwconv_mult(npix, channels, mult, taps, a_base, a_off, zero, w, bias, c_base, c_off, relu);
  std::size_t i = 0;
  for (; i + 2 <= npix; i += 2) {
      const int64_t* const off[2] = {a_off + i * taps, a_off + (i + 1) * taps};
      float* const out[2] = {c_base + c_off[i], c_base + c_off[i + 1]};
      dwconv_pixels_m1<2>(channels, taps, a_base, off, zero, w, bias, out, relu);
    }
  for (; i < npix; ++i) {
    const int64_t* const off[1] = {a_off + i * taps};
    float* const out[1] = {c_base + c_off[i]};
    dwconv_pixels_m1<1>(channels, taps, a_base, off, zero, w, bias, out, relu);
  }
}

// The 3x3 row kernels' register window: col[kx][ky] holds input column x + kx of rows ky. Moving to the next output
// pixel, whose first column is x, keeps the columns the two pixels share (stride 1: two, stride 2: one) and loads
// the others with load_col(kx, column).
template <int SW, typename LoadCol>
inline void slide_window(V (&col)[3][3], std::size_t x, LoadCol& load_col) {
  if constexpr (SW == 1) {
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky) {
      col[0][ky] = col[1][ky];
      col[1][ky] = col[2][ky];
    }
    load_col(2, x + 2);
  } else if constexpr (SW == 2) {
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky) col[0][ky] = col[2][ky];
    load_col(1, x + 1);
    load_col(2, x + 2);
  } else {
    load_col(0, x);
    load_col(1, x + 1);
    load_col(2, x + 2);
  }
}

// 3x3, multiplier 1, dilation 1, one segment of an output row whose taps all lie inside the input: output pixel j
// (< npix) reads the three input rows at columns j * SW + kx. The 9 weight vectors of a channel block stay in
// registers while the block walks along the row, and the input columns rotate through registers: a step of one
// output pixel loads SW new columns (3 vectors each, one per row) for 9 FMAs, where the indirect kernel loads a
// weight and an input vector per FMA or two. The three row sums are separate chains (latency, not throughput).
template <int SW>
inline void dwconv3x3_row(std::size_t npix, std::size_t channels, const float* const (&rows)[3], const float* w,
                          const float* bias, float* out, bool relu) {
  for (std::size_t c = 0; c < channels; c += kLanes) {
    const std::size_t n = channels - c < kLanes ? channels - c : kLanes;
    V wv[3][3];
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) wv[ky][kx] = load_upto(w + std::size_t(ky * 3 + kx) * channels + c, n);
    const V b = bias ? load_upto(bias + c, n) : Simd::zero();
    V col[3][3];  // [kx][ky]: the input vectors of the current pixel's three columns
    auto load_col = [&](int kx, std::size_t x) {
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ++ky) col[kx][ky] = load_upto(rows[ky] + x * channels + c, n);
    };
    load_col(0, 0);
    load_col(1, 1);
    load_col(2, 2);
    for (std::size_t j = 0;;) {
      V acc[3];
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ++ky) {
        acc[ky] = Simd::fma(col[0][ky], wv[ky][0], ky == 0 ? b : Simd::zero());
        acc[ky] = Simd::fma(col[1][ky], wv[ky][1], acc[ky]);
        acc[ky] = Simd::fma(col[2][ky], wv[ky][2], acc[ky]);
      }
      const V sum = Simd::add(Simd::add(acc[0], acc[1]), acc[2]);
      store_upto(out + j * channels + c, relu ? uk::relu(sum) : sum, n);
      if (++j == npix) break;
      slide_window<SW>(col, j * SW, load_col);
    }
  }
}

inline void dwconv3x3_row_any(std::size_t npix, std::size_t channels, std::size_t stride, const float* const* rows,
                              const float* w, const float* bias, float* out, const GemmParams* p) {
  if (npix == 0) return;
  const float* const r[3] = {rows[0], rows[1], rows[2]};
  const bool relu = p->relu != 0;
  if (stride == 1)
    dwconv3x3_row<1>(npix, channels, r, w, bias, out, relu);
  else if (stride == 2)
    dwconv3x3_row<2>(npix, channels, r, w, bias, out, relu);
  else {
    // Any other stride: pixel by pixel (the generic template reloads every column).
    for (std::size_t j = 0; j < npix; ++j) {
      const float* const rj[3] = {r[0] + j * stride * channels, r[1] + j * stride * channels,
                                  r[2] + j * stride * channels};
      dwconv3x3_row<3>(1, channels, rj, w, bias, out + j * channels, relu);
    }
  }
}

// The weight gradient of dwconv3x3_row, accumulated: for channels c < count,
//   dw[(ky * 3 + kx) * count + c] += sum_j rows[ky][(j * SW + kx) * ld + c] * dz[j * ld + c].
// The 9 tap accumulators of a channel block stay in registers along the row; the input columns rotate as in the
// forward kernel.
template <int SW>
inline void dwconv3x3_row_wgrad(std::size_t npix, std::size_t count, std::size_t ld, const float* const (&rows)[3],
                                const float* dz, float* dw) {
  for (std::size_t c = 0; c < count; c += kLanes) {
    const std::size_t n = count - c < kLanes ? count - c : kLanes;
    V acc[3][3];
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) acc[ky][kx] = load_upto(dw + std::size_t(ky * 3 + kx) * count + c, n);
    V col[3][3];  // [kx][ky]
    auto load_col = [&](int kx, std::size_t x) {
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ++ky) col[kx][ky] = load_upto(rows[ky] + x * ld + c, n);
    };
    load_col(0, 0);
    load_col(1, 1);
    load_col(2, 2);
    for (std::size_t j = 0;;) {
      const V d = load_upto(dz + j * ld + c, n);
#pragma GCC unroll 3
      for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) acc[ky][kx] = Simd::fma(col[kx][ky], d, acc[ky][kx]);
      if (++j == npix) break;
      slide_window<SW>(col, j * SW, load_col);
    }
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ++ky)
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) store_upto(dw + std::size_t(ky * 3 + kx) * count + c, acc[ky][kx], n);
  }
}

inline void dwconv3x3_row_wgrad_any(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                                    const float* const* rows, const float* dz, float* dw) {
  if (npix == 0) return;
  const float* const r[3] = {rows[0], rows[1], rows[2]};
  if (stride == 1)
    dwconv3x3_row_wgrad<1>(npix, count, ld, r, dz, dw);
  else if (stride == 2)
    dwconv3x3_row_wgrad<2>(npix, count, ld, r, dz, dw);
  else
    for (std::size_t j = 0; j < npix; ++j) {
      const float* const rj[3] = {r[0] + j * stride * ld, r[1] + j * stride * ld, r[2] + j * stride * ld};
      dwconv3x3_row_wgrad<3>(1, count, ld, rj, dz + j * ld, dw);
    }
}

// For two vectors holding 2W consecutive products of multiplier 2, the W sums of adjacent pairs, in order:
// lane l = a[2l] + a[2l + 1] over the concatenation a = (lo, hi).
inline V add_pairs(V lo, V hi) {
#if defined(__AVX512F__)
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  return _mm512_add_ps(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
#elif defined(__AVX2__)
  // Within each 128-bit half: (lo0+lo1, lo2+lo3, hi0+hi1, hi2+hi3); then the 64-bit quarters put in order.
  const __m256 sums = _mm256_add_ps(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)),
                                    _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(sums), _MM_SHUFFLE(3, 1, 2, 0)));
#else
  // __builtin_shufflevector (constant indices): GCC >= 12 and clang both have it; __builtin_shuffle is GCC's only.
  return __builtin_shufflevector(lo, hi, 0, 2, 4, 6) + __builtin_shufflevector(lo, hi, 1, 3, 5, 7);
#endif
}

// Transposed product, multiplier 2: blocks of W input channels (2W products, two accumulators), the pairs summed
// in registers.
inline void dwconv_reduce_m2(std::size_t npix, std::size_t channels, std::size_t taps, const float* a_base,
                             const int64_t* a_off, const float* zero, const float* w, float* c_base,
                             const int64_t* c_off) {
  const std::size_t oc = channels * 2;
  for (std::size_t i = 0; i < npix; ++i) {
    const int64_t* off = a_off + i * taps;
    float* out = c_base + c_off[i];
    for (std::size_t c0 = 0; c0 < channels; c0 += kLanes) {
      const std::size_t n = channels - c0 < kLanes ? channels - c0 : kLanes;
      const std::size_t o0 = 2 * c0, n_lo = oc - o0 < kLanes ? oc - o0 : kLanes, n_hi = 2 * n - n_lo;
      V lo = Simd::zero(), hi = Simd::zero();
      for (std::size_t t = 0; t < taps; ++t) {
        const float* a = row_or_zero(a_base, off[t], zero) + o0;
        const float* wt = w + t * oc + o0;
        lo = Simd::fma(load_upto(a, n_lo), load_upto(wt, n_lo), lo);
        if (n_hi) hi = Simd::fma(load_upto(a + kLanes, n_hi), load_upto(wt + kLanes, n_hi), hi);
      }
      store_upto(out + c0, add_pairs(lo, hi), n);
    }
  }
}

inline void dwconv_reduce(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                          const float* a_base, const int64_t* a_off /* npix x taps */, const float* zero,
                          const float* w /* taps x channels * mult */, float* c_base, const int64_t* c_off) {
  // Per pixel, blocks of W of the channels * mult products: the taps summed in a vector, then each lane added to
  // its input channel (o / mult) in the output row, which stays in L1.
  if (mult == 2) return dwconv_reduce_m2(npix, channels, taps, a_base, a_off, zero, w, c_base, c_off);
  const std::size_t oc = channels * mult;
  alignas(64) float lanes[kLanes];
  for (std::size_t i = 0; i < npix; ++i) {
    const int64_t* off = a_off + i * taps;
    float* out = c_base + c_off[i];
    for (std::size_t c = 0; c < channels; ++c) out[c] = 0.0f;
    for (std::size_t o0 = 0; o0 < oc; o0 += kLanes) {
      const std::size_t n = oc - o0 < kLanes ? oc - o0 : kLanes;
      V acc = Simd::zero();
      for (std::size_t t = 0; t < taps; ++t)
        acc = Simd::fma(load_upto(row_or_zero(a_base, off[t], zero) + o0, n), load_upto(w + t * oc + o0, n), acc);
      Simd::storeu(lanes, acc);
      // Each run of lanes that belongs to one input channel summed in a register, then added once.
      for (std::size_t l = 0; l < n;) {
        const std::size_t c = (o0 + l) / mult, end = (c + 1) * mult - o0 < n ? (c + 1) * mult - o0 : n;
        float sum = lanes[l++];
        for (; l < end; ++l) sum += lanes[l];
        out[c] += sum;
      }
    }
  }
}

// Depthwise weight gradient, multiplier 1, channels [c, c + n) with n <= NV * W: blocks of 8 taps, each a pass over the
// pixels with 8 x NV accumulators.
template <int NV>
inline void dwconv_wgrad_m1(std::size_t npix, std::size_t channels, std::size_t taps, std::size_t c, std::size_t n,
                            const float* x_base, const int64_t* x_off, const float* dz_base,
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
        // A padded cell is skipped, not multiplied as zero: 0 * inf would make a NaN the reference does not have.
        if (t < nt && off[t] >= 0) {
          const float* x = x_base + off[t] + c;
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
  (void)zero;  // padded cells are skipped, never read (see dwconv_wgrad_m1)
  if (mult != 1) {
    // Blocks of W output channels, each with its input expansion; 8 taps' accumulators in registers per pass.
    constexpr std::size_t kTaps = 8;
    for (std::size_t o0 = 0; o0 < channels; o0 += kLanes) {
      const std::size_t n = channels - o0 < kLanes ? channels - o0 : kLanes;
      const Expand e(o0, n, mult);
      for (std::size_t t0 = 0; t0 < taps; t0 += kTaps) {
        const std::size_t nt = taps - t0 < kTaps ? taps - t0 : kTaps;
        V acc[kTaps];
#pragma GCC unroll 8
        for (std::size_t t = 0; t < kTaps; ++t)
          acc[t] = t < nt ? load_upto(dw + (t0 + t) * channels + o0, n) : Simd::zero();
        for (std::size_t i = 0; i < npix; ++i) {
          const V dzv = load_upto(dz_base + dz_off[i] + o0, n);
          const int64_t* off = x_off + i * taps + t0;
#pragma GCC unroll 8
          for (std::size_t t = 0; t < kTaps; ++t)
            if (t < nt && off[t] >= 0) acc[t] = Simd::fma(load_expanded(x_base + off[t], e), dzv, acc[t]);
        }
#pragma GCC unroll 8
        for (std::size_t t = 0; t < kTaps; ++t)
          if (t < nt) store_upto(dw + (t0 + t) * channels + o0, acc[t], n);
      }
    }
    return;
  }
  // Multiplier 1: up to 8 taps x NV vectors of channels live in registers while the pixels stream by.
  std::size_t c = 0;
  for (; c + 2 * kLanes <= channels; c += 2 * kLanes)
    dwconv_wgrad_m1<2>(npix, channels, taps, c, 2 * kLanes, x_base, x_off, dz_base, dz_off, dw);
  for (; c < channels; c += kLanes)
    dwconv_wgrad_m1<1>(npix, channels, taps, c, channels - c, x_base, x_off, dz_base, dz_off, dw);
}

}  // namespace
}  // namespace convkit::uk
