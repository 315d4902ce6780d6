// Depthwise convolution microkernels for generic, compiled with no ISA flags (the x86-64 baseline)
// (src/ukernels/CMakeLists.txt).
#include "ukernels/dwconv/dwconv_impl.hpp"

namespace convkit::uk {

void f32_dwconv__generic(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                         const float* a_base, const int64_t* a_off, const float* zero, const float* w,
                         const float* bias, float* c_base, const int64_t* c_off, const GemmParams* p) {
  dwconv(npix, channels, mult, taps, a_base, a_off, zero, w, bias, c_base, c_off, p);
}

void f32_dwconv3x3_row__generic(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                          const float* const* rows, int64_t iw, int64_t ix0, const float* w, const float* bias,
                          float* out, const GemmParams* p) {
  dwconv3x3_row_any(npix, count, ld, stride, rows, iw, ix0, w, bias, out, p);
}

void f32_dwconv3x3_rows__generic(std::size_t nrows, std::size_t npix, std::size_t count, std::size_t ld,
                             std::size_t stride, const float* const* in_rows, int64_t iw, int64_t ix0, const float* w,
                             const float* bias, float* const* out_rows, const GemmParams* p) {
  dwconv3x3_rows_any(nrows, npix, count, ld, stride, in_rows, iw, ix0, w, bias, out_rows, p);
}

void f32_dwconv3x3_row_wgrad__generic(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                                const float* const* rows, int64_t iw, int64_t ix0, const float* dz, float* dw,
                                float* db) {
  dwconv3x3_row_wgrad_any(npix, count, ld, stride, rows, iw, ix0, dz, dw, db);
}

void f32_dwconv3x3_rows_wgrad__generic(std::size_t nrows, std::size_t npix, std::size_t count, std::size_t ld,
                                   std::size_t stride, const float* const* in_rows, int64_t iw, int64_t ix0,
                                   const float* const* dz_rows, float* dw, float* db) {
  dwconv3x3_rows_wgrad_any(nrows, npix, count, ld, stride, in_rows, iw, ix0, dz_rows, dw, db);
}

void f32_dwconv3x3_row_bwd2__generic(std::size_t npix, std::size_t count, std::size_t ld, const float* const* rows,
                               int64_t ow, int64_t q0, const float* w, float* out) {
  dwconv3x3_row_bwd2_any(npix, count, ld, rows, ow, q0, w, out);
}

void f32_dwconv_reduce__generic(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                                const float* a_base, const int64_t* a_off, const float* zero, const float* w,
                                float* c_base, const int64_t* c_off) {
  dwconv_reduce(npix, channels, mult, taps, a_base, a_off, zero, w, c_base, c_off);
}

void f32_dwconv_wgrad__generic(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                               const float* x_base, const int64_t* x_off, const float* zero, const float* dz_base,
                               const int64_t* dz_off, float* dw) {
  dwconv_wgrad(npix, channels, mult, taps, x_base, x_off, zero, dz_base, dz_off, dw);
}

}  // namespace convkit::uk
