// src/ukernels/winograd/winograd.hpp — the transforms of Winograd's F(4x4, 3x3) (conv2d_winograd.cpp), vectorised
// over channels (contiguous in NHWC). Pure functions over pointers and counts, one ISA per translation unit, like
// ukernels.hpp; the 36 element-wise products between the transforms run on the GEMM microkernels.
//
// The transform points are 0, 1/2, -1/2, 2, -2 and infinity: of the sets tried, the smallest error bound and the
// smallest measured error (docs/numerics.md, "Winograd"). B^T and A^T are dyadic (exact in binary), G carries the
// non-dyadic factors (the weights are transformed once per call, before any sum over channels):
//   B^T = [ 1    0   -17/4   0    1  0 ]    G = [  1     0     0    ]    A^T = [ 1  1    1    1   1  0 ]
//         [ 0   -2   -4      1/2  1  0 ]        [ -8/15 -4/15 -2/15  ]          [ 0  1/2 -1/2  2  -2  0 ]
//         [ 0    2   -4     -1/2  1  0 ]        [ -8/15  4/15 -2/15  ]          [ 0  1/4  1/4  4   4  0 ]
//         [ 0   -1/2 -1/4    2    1  0 ]        [  1/30  1/15  2/15  ]          [ 0  1/8 -1/8  8  -8  1 ]
//         [ 0    1/2 -1/4   -2    1  0 ]        [  1/30 -1/15  2/15  ]
//         [ 0    1    0    -17/4  0  1 ]        [  0     0     1    ]
// y (4x4) = A^T [ (G g G^T) .* (B^T d B) ] A for a 6x6 input tile d and a 3x3 kernel g (a correlation, as Conv2D
// computes it). Element e = 6 * i + j of a transformed tile is (row i, column j).
#pragma once

#include <cstddef>

#include "ukernels/ukernels.hpp"

namespace convkit::uk {

// Input transform of one 6x6 tile, c channels: v[e * v_stride + k] = (B^T d B)[e] with d[i][j] = src[6 * i + j][k]
// (src: 36 rows of c floats; a row of zeros for a padded cell).
using WinoInputFn = void (*)(std::size_t c, const float* const* src, float* v, std::size_t v_stride);

// Output transform of one tile, c channels: with M[e] = m[e * m_stride + k], out = act(bias[k] + (A^T M A)[i][j])
// is stored at dst[4 * i + j][k] for the cells whose dst is not null (cells past the output edge). bias may be null;
// relu non-zero fuses the relu of the GEMM epilogue (uk::relu in simd.hpp, NaN kept as activation_forward does).
using WinoOutputFn = void (*)(std::size_t c, const float* m, std::size_t m_stride, const float* bias, float* const* dst,
                              int relu);

// Weight transform, c kernels side by side: u[e * u_stride + k] = (G g G^T)[e] with g[i][j] = src[3 * i + j][k]
// (src: 9 rows of c floats).
using WinoWeightFn = void (*)(std::size_t c, const float* const* src, float* u, std::size_t u_stride);

// The element-wise products, summed over channels: C (mr x nc, rows c_stride apart) = A (mr x kc, rows a_stride
// apart) * W (kc x nc, rows w_stride apart), for 1 <= mr <= kWinoGemmMaxRows and 1 <= nc <= the ISA's NR (its GEMM
// table's column block: 2 vectors). Unlike the GEMM microkernel (which computes its MR rows whatever mr is), it
// computes exactly mr rows: the transformed tiles of a small image are few (4 for a 7x7 output), and each row costs
// its own FMAs. Each element is the plain chain of FMAs over k in order, as the GEMM microkernel computes it.
using WinoGemmFn = void (*)(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t a_stride,
                            const float* w, std::size_t w_stride, float* c, std::size_t c_stride);
// The row counts the kernels take: the register budget of the widest (avx512: mr x 2 accumulators + 2 weights + 1
// broadcast <= 32 zmm registers).
inline constexpr std::size_t kWinoGemmMaxRows = 14;

#define CONVKIT_DECLARE_WINOGRAD(isa)                                                                         \
  void f32_wino_input_f4k3__##isa(std::size_t, const float* const*, float*, std::size_t);                     \
  void f32_wino_output_f4k3__##isa(std::size_t, const float*, std::size_t, const float*, float* const*, int); \
  void f32_wino_weight_f4k3__##isa(std::size_t, const float* const*, float*, std::size_t);                    \
  void f32_wino_gemm__##isa(std::size_t, std::size_t, std::size_t, const float*, std::size_t, const float*,   \
                            std::size_t, float*, std::size_t);

CONVKIT_DECLARE_WINOGRAD(generic)
CONVKIT_DECLARE_WINOGRAD(avx2)
CONVKIT_DECLARE_WINOGRAD(avx512)

#undef CONVKIT_DECLARE_WINOGRAD

}  // namespace convkit::uk
