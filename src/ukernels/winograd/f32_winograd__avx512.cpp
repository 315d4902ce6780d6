// Winograd F(4x4, 3x3) transforms for avx512, compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma
// (src/ukernels/CMakeLists.txt).
#include "ukernels/winograd/winograd_impl.hpp"

namespace convkit::uk {

void f32_wino_input_f4k3__avx512(std::size_t c, const float* const* src, float* v, std::size_t v_stride) {
  wino_input(c, src, v, v_stride);
}

void f32_wino_output_f4k3__avx512(std::size_t c, const float* m, std::size_t m_stride, const float* bias,
                                  float* const* dst, int relu) {
  wino_output(c, m, m_stride, bias, dst, relu);
}

void f32_wino_weight_f4k3__avx512(std::size_t c, const float* const* src, float* u, std::size_t u_stride) {
  wino_weight(c, src, u, u_stride);
}

void f32_wino_gemm__avx512(std::size_t mr, std::size_t nc, std::size_t kc, const float* a, std::size_t a_stride,
                          const float* w, std::size_t w_stride, float* c, std::size_t c_stride) {
  wino_gemm(mr, nc, kc, a, a_stride, w, w_stride, c, c_stride);
}

}  // namespace convkit::uk
