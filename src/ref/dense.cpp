#include "ref/dense.hpp"

#include <algorithm>

namespace convkit::ref {

void dense_fwd(int64_t m, int64_t k, int64_t n, const float* x, const float* w, const float* b, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    float* yr = y + i * n;
    std::fill_n(yr, n, 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float xv = x[i * k + p];
      const float* wr = w + p * n;
      for (int64_t j = 0; j < n; ++j) yr[j] += xv * wr[j];
    }
    if (b)
      for (int64_t j = 0; j < n; ++j) yr[j] += b[j];
  }
}

void dense_bwd_data(int64_t m, int64_t k, int64_t n, const float* dy, const float* w, float* dx) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const float* dyr = dy + i * n;
      const float* wr = w + p * n;
      float acc = 0.0f;
      for (int64_t j = 0; j < n; ++j) acc += dyr[j] * wr[j];
      dx[i * k + p] = acc;
    }
}

void dense_bwd_weights(int64_t m, int64_t k, int64_t n, const float* x, const float* dy, float* dw, float* db) {
  std::fill_n(dw, k * n, 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const float xv = x[i * k + p];
      const float* dyr = dy + i * n;
      float* dwr = dw + p * n;
      for (int64_t j = 0; j < n; ++j) dwr[j] += xv * dyr[j];
    }
  if (db) {
    std::fill_n(db, n, 0.0f);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) db[j] += dy[i * n + j];
  }
}

}  // namespace convkit::ref
