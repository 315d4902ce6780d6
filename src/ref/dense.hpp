// src/ref/dense.hpp — plain-loop reference kernels for Dense (a matrix product over the last axis).
#pragma once

#include <cstdint>

namespace convkit::ref {

// y (M, N) = x (M, K) w (K, N) + b (N, or null).
void dense_fwd(int64_t m, int64_t k, int64_t n, const float* x, const float* w, const float* b, float* y);
// dx (M, K) = dy (M, N) w^T. Overwrites dx.
void dense_bwd_data(int64_t m, int64_t k, int64_t n, const float* dy, const float* w, float* dx);
// dw (K, N) = x^T dy; db (N) = column sums of dy (if not null). Overwrites both.
void dense_bwd_weights(int64_t m, int64_t k, int64_t n, const float* x, const float* dy, float* dw, float* db);

}  // namespace convkit::ref
