// f32 GEMM microkernels for avx512: 14 x 32 register blocks (14 rows x 2 vectors).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (src/ukernels/CMakeLists.txt).
// Why 14 x 32: 28 accumulators + 2 weight vectors + 1 broadcast use 31 of the 32 zmm registers, and each k step is 28
// FMAs for 2 vector loads and 14 broadcasts: both FMA pipes stay busy (measured on Zen 5: 14 x 32 reached 97-99% of the
// FMA peak on one core; 8 to 12 rows were within 2% of it).
#include "ukernels/gemm/gemm_impl.hpp"

namespace convkit::uk {

void f32_gemm_14x32__avx512(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t a_stride,
                            const float* w, std::size_t w_stride, const float* bias, float* c, std::size_t c_stride,
                            const GemmParams* p) {
  gemm_tile<14, 2>(mr, nc, kc, a, a_stride, w, w_stride, bias, c, c_stride, p);
}

// 6 x 64 (6 rows x 4 vectors: 24 accumulators + 4 weight vectors + 1 broadcast): 10 loads for 24 FMAs instead of 16
// for 28, and a tile of 6 rows of A instead of 14. Measured on Zen 5 (2 threads, the kernel loop alone over rows
// streamed from memory): 64 -> 64 channels 2.21 -> 2.00 ms, 256 -> 64 10.4 -> 8.8 ms, 512 -> 128 8.6 -> 8.1-8.4 ms,
// 512 -> 512 even.
void f32_gemm_wide_6x64__avx512(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t a_stride,
                                const float* w, std::size_t w_stride, std::size_t w_half, const float* bias, float* c,
                                std::size_t c_stride, const GemmParams* p) {
  gemm_wide_tile<6, 4>(mr, nc, kc, a, a_stride, w, w_stride, w_half, bias, c, c_stride, p);
}

void f32_igemm_14x32__avx512(std::size_t mr, std::size_t nc, std::size_t kc, std::size_t ks, const float* a_base,
                             const int64_t* a_off, const float* zero, const float* w, std::size_t w_stride,
                             const float* bias, float* c_base, const int64_t* c_off, const GemmParams* p) {
  igemm_tile<14, 2>(mr, nc, kc, ks, a_base, a_off, zero, w, w_stride, bias, c_base, c_off, p);
}

void f32_wgrad_14x32__avx512(std::size_t mr, std::size_t nc, std::size_t k, const float* x_base, const int64_t* x_off,
                             const float* dz_base, const int64_t* dz_off, float* dw, std::size_t dw_stride,
                             int accumulate) {
  wgrad_tile<14, 2>(mr, nc, k, x_base, x_off, dz_base, dz_off, dw, dw_stride, accumulate);
}

}  // namespace convkit::uk
