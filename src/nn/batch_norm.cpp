// BatchNormalization over the last axis, Keras' semantics: training normalises with the batch mean and the
// biased batch variance and moves the moving statistics towards them; inference uses the moving statistics.
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

BatchNormalization::BatchNormalization(BatchNormOptions opts) : opts_(opts) {
  if (!(opts_.momentum >= 0.0f && opts_.momentum <= 1.0f))
    throw Error(cat("BatchNormalization: momentum must be in [0, 1], got ", opts_.momentum));
  if (!(opts_.epsilon > 0.0f)) throw Error(cat("BatchNormalization: epsilon must be positive, got ", opts_.epsilon));
}

void BatchNormalization::build(const Shape& s, Rng& rng) {
  if (s.size() < 2) throw Error(cat("BatchNormalization: input must have a batch and a channel axis, got ",
                                    shape_to_string(s)));
  Layer::build(s, rng);
  const int64_t c = s.back();
  gamma_ = Weight{"gamma", Tensor({c}, 1.0f), Tensor({c}), opts_.scale};
  beta_ = Weight{"beta", Tensor({c}), Tensor({c}), opts_.center};
  moving_mean_ = Weight{"moving_mean", Tensor({c}), Tensor(), false};
  moving_variance_ = Weight{"moving_variance", Tensor({c}, 1.0f), Tensor(), false};
  if (!opts_.scale) gamma_.grad = Tensor();
  if (!opts_.center) beta_.grad = Tensor();
}

std::vector<Weight*> BatchNormalization::weights() {
  if (!built_) return {};
  std::vector<Weight*> ws;
  if (opts_.scale) ws.push_back(&gamma_);
  if (opts_.center) ws.push_back(&beta_);
  ws.push_back(&moving_mean_);
  ws.push_back(&moving_variance_);
  return ws;
}

Tensor BatchNormalization::forward(const Tensor& x, bool training) {
  check_input(x);
  const int64_t c = x.shape().back(), rows = x.size() / c;
  std::vector<double> mean(c, 0.0), var(c, 0.0);
  if (training) {
    // Two passes in double: the statistics of a large batch are sums of many terms.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < c; ++j) mean[j] += x[r * c + j];
    for (int64_t j = 0; j < c; ++j) mean[j] /= double(rows);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < c; ++j) {
        const double d = x[r * c + j] - mean[j];
        var[j] += d * d;
      }
    for (int64_t j = 0; j < c; ++j) {
      var[j] /= double(rows);
      moving_mean_.value[j] = float(moving_mean_.value[j] * opts_.momentum + mean[j] * (1.0 - opts_.momentum));
      moving_variance_.value[j] =
          float(moving_variance_.value[j] * opts_.momentum + var[j] * (1.0 - opts_.momentum));
    }
  } else {
    for (int64_t j = 0; j < c; ++j) {
      mean[j] = moving_mean_.value[j];
      var[j] = moving_variance_.value[j];
    }
  }
  inv_std_.assign(c, 0.0f);
  for (int64_t j = 0; j < c; ++j) inv_std_[j] = float(1.0 / std::sqrt(var[j] + opts_.epsilon));
  xhat_ = Tensor(x.shape());
  Tensor y(x.shape());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) {
      const float xh = float(x[r * c + j] - mean[j]) * inv_std_[j];
      xhat_[r * c + j] = xh;
      y[r * c + j] = gamma_.value[j] * xh + beta_.value[j];
    }
  last_training_ = training;
  return y;
}

Tensor BatchNormalization::backward(const Tensor& dy) {
  const int64_t c = dy.shape().back(), rows = dy.size() / c;
  std::vector<double> sum_dy(c, 0.0), sum_dy_xhat(c, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) {
      sum_dy[j] += dy[r * c + j];
      sum_dy_xhat[j] += double(dy[r * c + j]) * xhat_[r * c + j];
    }
  for (int64_t j = 0; j < c; ++j) {
    if (opts_.scale) gamma_.grad[j] = float(sum_dy_xhat[j]);
    if (opts_.center) beta_.grad[j] = float(sum_dy[j]);
  }
  Tensor dx(dy.shape());
  if (!last_training_) {
    // The statistics are constants: y = gamma * (x - mean) * inv_std + beta.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < c; ++j) dx[r * c + j] = dy[r * c + j] * gamma_.value[j] * inv_std_[j];
    return dx;
  }
  // With batch statistics: dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)).
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) {
      const double m1 = sum_dy[j] / double(rows), m2 = sum_dy_xhat[j] / double(rows);
      dx[r * c + j] = float(gamma_.value[j] * inv_std_[j] * (dy[r * c + j] - m1 - xhat_[r * c + j] * m2));
    }
  return dx;
}

}  // namespace convkit
