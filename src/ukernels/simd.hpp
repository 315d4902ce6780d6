// src/ukernels/simd.hpp — the few vector operations the microkernels use, for one ISA at a time.
//
// Included only by the kernel translation units (src/ukernels/*/*__<isa>.cpp), each compiled with its ISA's flags.
// Everything is in an anonymous namespace: the AVX-512 copy of a helper must never be merged by the linker with a
// copy compiled for another ISA (an ODR violation that would run AVX-512 code on a CPU without it). For the same
// reason the kernel files use no standard-library templates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace convkit::uk {
namespace {

#if defined(__AVX512F__)
// 16 floats; tails through masked loads and stores (which never fault on the masked-off lanes).
struct Simd {
  using V = __m512;
  static constexpr int W = 16;
  static __mmask16 mask(std::size_t n) { return __mmask16((1u << n) - 1u); }  // n <= 16
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float v) { return _mm512_set1_ps(v); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V load_n(const float* p, std::size_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void stream(float* p, V v) { _mm512_stream_ps(p, v); }  // p 64-byte aligned
  static void store_n(float* p, V v, std::size_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  // The maskz forms: GCC 12's plain _mm512_max_ps starts from an "undefined" vector and warns about it.
  static V min(V a, V b) { return _mm512_maskz_min_ps(__mmask16(0xFFFF), a, b); }
  static V max(V a, V b) { return _mm512_maskz_max_ps(__mmask16(0xFFFF), a, b); }
};
#elif defined(__AVX2__)
// 8 floats; tails through vmaskmov (no fault on masked-off lanes either).
struct Simd {
  using V = __m256;
  static constexpr int W = 8;
  static __m256i mask(std::size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V load_n(const float* p, std::size_t n) { return _mm256_maskload_ps(p, mask(n)); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void stream(float* p, V v) { _mm256_stream_ps(p, v); }  // p 32-byte aligned
  static void store_n(float* p, V v, std::size_t n) { _mm256_maskstore_ps(p, mask(n), v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
};
#else
// Portable: GCC vector extensions, 4 floats (SSE2 on x86-64, whatever the target has elsewhere). No FMA here:
// a * b + c is rounded twice, which the tolerance of docs/numerics.md covers.
struct Simd {
  typedef float V __attribute__((vector_size(16)));
  static constexpr int W = 4;
  static V zero() { return V{0.0f, 0.0f, 0.0f, 0.0f}; }
  static V set1(float v) { return V{v, v, v, v}; }
  static V bcast(const float* p) { return set1(*p); }
  static V load(const float* p) { return loadu(p); }
  static V loadu(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static V load_n(const float* p, std::size_t n) {
    V v = zero();
    for (std::size_t i = 0; i < n; ++i) v[i] = p[i];
    return v;
  }
  static void storeu(float* p, V v) { std::memcpy(p, &v, sizeof v); }
  static void stream(float* p, V v) { storeu(p, v); }
  static void store_n(float* p, V v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) p[i] = v[i];
  }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
};
#endif

// The fused relu: 0 where v < 0, v elsewhere, so that NaN stays NaN (and -0 stays -0) exactly as in torch.relu and
// activation_forward. A plain max(v, 0) would not do: vmaxps returns its second operand when either is NaN, so one
// operand order turns NaN into 0 and the other keeps NaN but only by accident of the encoding; the compare-and-mask
// form says what it means.
inline Simd::V relu(Simd::V v) {
#if defined(__AVX512F__)
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLT_UQ), v);
#elif defined(__AVX2__)
  return _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLT_UQ));
#else
  return v < Simd::zero() ? Simd::zero() : v;
#endif
}

// Loads the n lanes (n <= W) at p, zeros elsewhere.
inline Simd::V load_upto(const float* p, std::size_t n) {
  return n >= std::size_t(Simd::W) ? Simd::loadu(p) : Simd::load_n(p, n);
}
inline void store_upto(float* p, Simd::V v, std::size_t n) {
  if (n >= std::size_t(Simd::W))
    Simd::storeu(p, v);
  else
    Simd::store_n(p, v, n);
}

}  // namespace
}  // namespace convkit::uk
