// src/ukernels/ukernels.hpp — the microkernels: pure functions over pointers, offsets and counts. No allocation, no
// threads, no shape logic. Each ISA's kernels live in their own translation units, compiled with that ISA's flags
// (src/ukernels/CMakeLists.txt), and are only called after the CPU was found to support them (src/config/).
//
// Conventions. Counts and strides are in elements (floats). "Offsets" are int64 element offsets added to a base
// pointer; a negative offset stands for a row of zeros (a padded cell) and reads the `zero` buffer instead.
//
// Weights for the GEMM kernels: K rows of nc floats, w_stride apart (K = ks * kc for the indirect kernel: tap-major,
// then channel). Forward reads the HWIO kernel in place (w_stride = OC); the backward passes read blocks packed
// NR wide. Columns past nc are never read (masked loads), so nc < NR needs no padding.
#pragma once

#include <cstddef>
#include <cstdint>

namespace convkit::uk {

struct GemmParams {
  int relu;        // non-zero: C = (C < 0 ? 0 : C), a fused relu (NaN stays NaN, as in activation_forward and torch)
  int accumulate;  // non-zero: C += result (bias included) before the relu, instead of C = result
  // Non-zero (with accumulate 0): rows of the full width nc = NR that start on a 64-byte boundary are written with
  // non-temporal stores, which skip reading the lines first. For outputs far larger than the caches, where the
  // reads would double the memory traffic; the caller calls store_fence() before anyone reads C.
  int stream = 0;
  // Non-null (plain GEMM only): every row of B the kernel reads, NR floats with zeros past nc, is also stored at
  // pack + k * NR: the first tile over a block of the kernel read in place packs it for the tiles after it (the
  // layout of ops::pack_forward_block), without a separate pass over the kernel.
  float* pack = nullptr;
};

// Orders the non-temporal stores of GemmParams::stream before what follows (sfence on x86).
inline void store_fence() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_sfence();
#endif
}

// C (mr x nc, rows c_stride apart) = act(bias + A (mr x kc, rows a_stride apart) * B (kc x nc, rows w_stride apart)).
// bias: nc floats, or null for none.
using GemmFn = void (*)(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t a_stride,
                        const float* w, std::size_t w_stride, const float* bias, float* c, std::size_t c_stride,
                        const GemmParams* p);

// The same over a register block two packed blocks wide: columns [0, NR) of B row k at w + k * w_stride, columns
// [NR, 2 NR) at w + w_half + k * w_stride (nc <= 2 NR; columns past nc are never read).
using GemmWideFn = void (*)(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t a_stride,
                            const float* w, std::size_t w_stride, std::size_t w_half, const float* bias, float* c,
                            std::size_t c_stride, const GemmParams* p);
void f32_gemm_wide_6x64__avx512(std::size_t, std::size_t, std::size_t, const float*, std::size_t, const float*,
                                std::size_t, std::size_t, const float*, float*, std::size_t, const GemmParams*);

// Indirect GEMM: row r of A for tap t is a_base + a_off[t * MR + r] (kc floats; zero[] when the offset is
// negative); row r of C is c_base + c_off[r]. Rows >= mr of a_off must hold valid offsets (the table repeats the
// last row); they are computed and dropped. ks may be 0 (C = act(bias)).
using IgemmFn = void (*)(std::size_t mr, std::size_t nc, std::size_t kc, std::size_t ks, const float* a_base,
                         const int64_t* a_off, const float* zero, const float* w, std::size_t w_stride,
                         const float* bias, float* c_base, const int64_t* c_off, const GemmParams* p);

// Weight-gradient GEMM: dw (mr x nc, rows dw_stride apart) (+)= sum over i < k of
//   outer(x_base[x_off[i] .. + mr), dz_base[dz_off[i] .. + nc)).
// The rows are input channels, the columns output channels, the reduction runs over output pixels.
using WgradFn = void (*)(std::size_t mr, std::size_t nc, std::size_t k, const float* x_base, const int64_t* x_off,
                         const float* dz_base, const int64_t* dz_off, float* dw, std::size_t dw_stride, int accumulate);

// Depthwise convolution over npix output pixels: for pixel i, tap t and output channel o < channels,
//   out[c_off[i] + o] = act(bias[o] + sum_t a_base[a_off[i * taps + t] + o / mult] * w[t * channels + o])
// (zero[] for a negative offset; bias may be null).
using DwconvFn = void (*)(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                          const float* a_base, const int64_t* a_off, const float* zero, const float* w,
                          const float* bias, float* c_base, const int64_t* c_off, const GemmParams* p);

// The transposed depthwise product (backward data) for mult > 1: for input channel c < channels,
//   out[c_off[i] + c] = sum_t sum_{j < mult} a_base[a_off[i * taps + t] + c * mult + j] * w[t * channels * mult +
//   c * mult + j].   (For mult == 1 this is DwconvFn with mult 1.)
using DwconvReduceFn = void (*)(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                                const float* a_base, const int64_t* a_off, const float* zero, const float* w,
                                float* c_base, const int64_t* c_off);

// Depthwise weight gradient, accumulated: for pixel i, tap t, output channel o < channels,
//   dw[t * channels + o] += x_base[x_off[i * taps + t] + o / mult] * dz_base[dz_off[i] + o].
using DwconvWgradFn = void (*)(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                               const float* x_base, const int64_t* x_off, const float* zero, const float* dz_base,
                               const int64_t* dz_off, float* dw);

// Depthwise 3x3, multiplier 1, dilation 1, one whole output row, its borders included: for j < npix, c < count,
//   out[j * ld + c] = act(bias[c] + sum_{ky, kx} rows[ky][(ix0 + j * stride + kx) * ld + c] * w[(ky * 3 + kx) * ld
//   + c])
// over the rows[ky] that are not null and the columns ix0 + j * stride + kx inside [0, iw) (the others are padding:
// their taps are skipped). Pixels, columns and tap rows are ld floats apart; bias may be null.
using Dwconv3x3RowFn = void (*)(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                                const float* const* rows, int64_t iw, int64_t ix0, const float* w, const float* bias,
                                float* out, const GemmParams* p);

// The same for nrows consecutive output rows (nrows at most config::KernelTable::dw_group_rows; any stride): output
// row r from input rows in_rows[r * stride + ky], ky < 3 (of (nrows - 1) * stride + 3; null: padding) into
// out_rows[r].
using Dwconv3x3RowsFn = void (*)(std::size_t nrows, std::size_t npix, std::size_t count, std::size_t ld,
                                 std::size_t stride, const float* const* in_rows, int64_t iw, int64_t ix0,
                                 const float* w, const float* bias, float* const* out_rows, const GemmParams* p);

// Its weight gradient, accumulated over the same taps: dw[(ky * 3 + kx) * ld + c] += sum_j rows[ky][(ix0 + j *
// stride + kx) * ld + c] * dz[j * ld + c], and db[c] += sum_j dz[j * ld + c] when db is not null.
using Dwconv3x3RowWgradFn = void (*)(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                                     const float* const* rows, int64_t iw, int64_t ix0, const float* dz, float* dw,
                                     float* db);

// The same for nrows consecutive output rows (at most config::KernelTable::dw_group_rows; any stride): the dz row of
// output row r at dz_rows[r], its input rows in_rows[r * stride + ky], ky < 3 (null: padding).
using Dwconv3x3RowsWgradFn = void (*)(std::size_t nrows, std::size_t npix, std::size_t count, std::size_t ld,
                                      std::size_t stride, const float* const* in_rows, int64_t iw, int64_t ix0,
                                      const float* const* dz_rows, float* dw, float* db);

// Backward data of the 3x3 stride-2 depthwise convolution (multiplier 1, dilation 1, zero padding), one dx row:
//   out[ix * ld + c] = sum_{ky, kx} rows[ky][ox * ld + c] * w[(ky * 3 + kx) * ld + c]
// over ix < npix, the rows[ky] not null, and the kx with ix + q0 - kx = 2 * ox, 0 <= ox < ow (q0 = pad_left).
using Dwconv3x3RowBwd2Fn = void (*)(std::size_t npix, std::size_t count, std::size_t ld, const float* const* rows,
                                    int64_t ow, int64_t q0, const float* w, float* out);

#define CONVKIT_DECLARE_UKERNELS(isa, MR, NR)                                                                        \
  void f32_gemm_##MR##x##NR##__##isa(std::size_t, std::size_t, std::size_t, const float*, std::size_t, const float*, \
                                     std::size_t, const float*, float*, std::size_t, const GemmParams*);             \
  void f32_igemm_##MR##x##NR##__##isa(std::size_t, std::size_t, std::size_t, std::size_t, const float*,              \
                                      const int64_t*, const float*, const float*, std::size_t, const float*, float*, \
                                      const int64_t*, const GemmParams*);                                            \
  void f32_wgrad_##MR##x##NR##__##isa(std::size_t, std::size_t, std::size_t, const float*, const int64_t*,           \
                                      const float*, const int64_t*, float*, std::size_t, int);                       \
  void f32_dwconv__##isa(std::size_t, std::size_t, std::size_t, std::size_t, const float*, const int64_t*,           \
                         const float*, const float*, const float*, float*, const int64_t*, const GemmParams*);       \
  void f32_dwconv3x3_row__##isa(std::size_t, std::size_t, std::size_t, std::size_t, const float* const*, int64_t,  \
                                int64_t, const float*, const float*, float*, const GemmParams*);                    \
  void f32_dwconv3x3_rows__##isa(std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,                 \
                                 const float* const*, int64_t, int64_t, const float*, const float*, float* const*, \
                                 const GemmParams*);                                                               \
  void f32_dwconv3x3_row_wgrad__##isa(std::size_t, std::size_t, std::size_t, std::size_t, const float* const*,     \
                                      int64_t, int64_t, const float*, float*, float*);                              \
  void f32_dwconv3x3_rows_wgrad__##isa(std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,           \
                                       const float* const*, int64_t, int64_t, const float* const*, float*, float*); \
  void f32_dwconv3x3_row_bwd2__##isa(std::size_t, std::size_t, std::size_t, const float* const*, int64_t, int64_t, \
                                     const float*, float*);                                                         \
  void f32_dwconv_reduce__##isa(std::size_t, std::size_t, std::size_t, std::size_t, const float*, const int64_t*,    \
                                const float*, const float*, float*, const int64_t*);                                 \
  void f32_dwconv_wgrad__##isa(std::size_t, std::size_t, std::size_t, std::size_t, const float*, const int64_t*,     \
                               const float*, const float*, const int64_t*, float*);

CONVKIT_DECLARE_UKERNELS(generic, 4, 8)
CONVKIT_DECLARE_UKERNELS(avx2, 6, 16)
CONVKIT_DECLARE_UKERNELS(avx512, 14, 32)

#undef CONVKIT_DECLARE_UKERNELS

}  // namespace convkit::uk
