// Losses with Keras' definitions: the mean over the batch (and over the last axis for element-wise losses),
// probabilities clipped to [1e-7, 1 - 1e-7] when the predictions are not logits.
#include <algorithm>
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/train.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

namespace {

constexpr double kEps = 1e-7;  // Keras' backend epsilon

void check_batch(const char* loss, const Tensor& pred, const Tensor& target) {
  if (pred.rank() < 1 || target.rank() < 1 || pred.dim(0) != target.dim(0) || pred.dim(0) == 0)
    throw Error(cat(loss, ": predictions ", shape_to_string(pred.shape()), " and targets ",
                    shape_to_string(target.shape()), " must have the same, non-zero batch size"));
}

void check_same_shape(const char* loss, const Tensor& pred, const Tensor& target) {
  if (pred.shape() != target.shape())
    throw Error(cat(loss, ": targets ", shape_to_string(target.shape()), " must have the predictions' shape ",
                    shape_to_string(pred.shape())));
}

// Cross-entropy between rows of pred (N, C) and a target distribution per row given by target_prob(row, j).
template <class TargetProb>
double crossentropy(const Tensor& pred, bool from_logits, Tensor* dpred, TargetProb target_prob) {
  const int64_t c = pred.shape().back(), rows = pred.size() / c;
  if (dpred) *dpred = Tensor(pred.shape());
  double total = 0;
  std::vector<double> p(static_cast<std::size_t>(c));
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = pred.data() + r * c;
    if (from_logits) {
      // log softmax, stably: loss = logsumexp(z) - sum_j t_j z_j; grad = softmax(z) * sum(t) - t.
      const double m = *std::max_element(z, z + c);
      double s = 0;
      for (int64_t j = 0; j < c; ++j) s += std::exp(z[j] - m);
      const double lse = m + std::log(s);
      double tsum = 0;
      for (int64_t j = 0; j < c; ++j) {
        const double t = target_prob(r, j);
        tsum += t;
        total += t * (lse - z[j]);
      }
      if (dpred)
        for (int64_t j = 0; j < c; ++j)
          (*dpred)[r * c + j] = float((std::exp(z[j] - lse) * tsum - target_prob(r, j)) / double(rows));
    } else {
      // Keras normalises the row to sum 1, then clips: loss = -sum_j t_j log(clip(p_j / S)).
      double s = 0;
      for (int64_t j = 0; j < c; ++j) s += z[j];
      if (!(s > 0)) s = kEps;  // an all-zero row: every probability clips to eps
      double gsum = 0;  // sum_j (dL/dq_j * q_j): the normalisation's share of the gradient
      for (int64_t j = 0; j < c; ++j) {
        const double q = z[j] / s, t = target_prob(r, j);
        const bool clipped = q < kEps || q > 1 - kEps;
        const double qc = std::clamp(q, kEps, 1 - kEps);
        total -= t * std::log(qc);
        p[std::size_t(j)] = clipped ? 0.0 : -t / qc;  // dL/dq_j
        gsum += p[std::size_t(j)] * q;
      }
      if (dpred)  // q_j = p_j / S: dL/dp_j = (dL/dq_j - sum_k dL/dq_k q_k) / S
        for (int64_t j = 0; j < c; ++j) (*dpred)[r * c + j] = float((p[std::size_t(j)] - gsum) / s / double(rows));
    }
  }
  return total / double(rows);
}

class SparseCategoricalCrossentropy final : public Loss {
 public:
  explicit SparseCategoricalCrossentropy(bool logits) : logits_(logits) {}
  std::string name() const override { return "sparse_categorical_crossentropy"; }
  double compute(const Tensor& pred, const Tensor& target, Tensor* dpred) const override {
    check_batch("sparse_categorical_crossentropy", pred, target);
    const int64_t c = pred.shape().back(), rows = pred.size() / c;
    if (target.size() != rows)
      throw Error(cat("sparse_categorical_crossentropy: needs one class index per prediction row: targets ",
                      shape_to_string(target.shape()), ", predictions ", shape_to_string(pred.shape())));
    for (int64_t r = 0; r < rows; ++r) {
      const float t = target[r];
      if (!(t >= 0 && t < float(c)) || t != std::floor(t))
        throw Error(cat("sparse_categorical_crossentropy: target ", t, " at row ", r,
                        " is not a class index in [0, ", c, ")"));
    }
    return crossentropy(pred, logits_, dpred,
                        [&](int64_t r, int64_t j) { return int64_t(target[r]) == j ? 1.0 : 0.0; });
  }

 private:
  bool logits_;
};

class CategoricalCrossentropy final : public Loss {
 public:
  explicit CategoricalCrossentropy(bool logits) : logits_(logits) {}
  std::string name() const override { return "categorical_crossentropy"; }
  double compute(const Tensor& pred, const Tensor& target, Tensor* dpred) const override {
    check_batch("categorical_crossentropy", pred, target);
    check_same_shape("categorical_crossentropy", pred, target);
    const int64_t c = pred.shape().back();
    return crossentropy(pred, logits_, dpred,
                        [&](int64_t r, int64_t j) { return double(target[r * c + j]); });
  }

 private:
  bool logits_;
};

class BinaryCrossentropy final : public Loss {
 public:
  explicit BinaryCrossentropy(bool logits) : logits_(logits) {}
  std::string name() const override { return "binary_crossentropy"; }
  double compute(const Tensor& pred, const Tensor& target, Tensor* dpred) const override {
    check_batch("binary_crossentropy", pred, target);
    check_same_shape("binary_crossentropy", pred, target);
    const int64_t n = pred.size();
    if (dpred) *dpred = Tensor(pred.shape());
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double z = pred[i], t = target[i];
      double g;
      if (logits_) {
        total += std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::fabs(z)));
        g = 1.0 / (1.0 + std::exp(-z)) - t;
      } else {
        const double p = std::clamp(z, kEps, 1 - kEps);
        total -= t * std::log(p) + (1 - t) * std::log(1 - p);
        g = (z < kEps || z > 1 - kEps) ? 0.0 : (p - t) / (p * (1 - p));
      }
      if (dpred) (*dpred)[i] = float(g / double(n));
    }
    return total / double(n);
  }

 private:
  bool logits_;
};

class MeanSquaredError final : public Loss {
 public:
  std::string name() const override { return "mean_squared_error"; }
  double compute(const Tensor& pred, const Tensor& target, Tensor* dpred) const override {
    check_batch("mean_squared_error", pred, target);
    check_same_shape("mean_squared_error", pred, target);
    const int64_t n = pred.size();
    if (dpred) *dpred = Tensor(pred.shape());
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = double(pred[i]) - target[i];
      total += d * d;
      if (dpred) (*dpred)[i] = float(2 * d / double(n));
    }
    return total / double(n);
  }
};

}  // namespace

std::unique_ptr<Loss> make_loss(std::string_view name, bool from_logits) {
  if (name == "sparse_categorical_crossentropy") return std::make_unique<SparseCategoricalCrossentropy>(from_logits);
  if (name == "categorical_crossentropy") return std::make_unique<CategoricalCrossentropy>(from_logits);
  if (name == "binary_crossentropy") return std::make_unique<BinaryCrossentropy>(from_logits);
  if (name == "mean_squared_error" || name == "mse") return std::make_unique<MeanSquaredError>();
  throw Error(cat("loss: unknown loss '", name,
                  "' (expected sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy or "
                  "mean_squared_error)"));
}

double accuracy(const Tensor& pred, const Tensor& target) {
  check_batch("accuracy", pred, target);
  const int64_t c = pred.shape().back(), rows = pred.size() / c;
  int64_t hits = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = pred.data() + r * c;
    if (c == 1) {  // binary: probability threshold 0.5
      hits += (p[0] > 0.5f) == (target[r] > 0.5f);
      continue;
    }
    const int64_t guess = std::max_element(p, p + c) - p;
    int64_t truth;
    if (target.size() == rows) {
      truth = int64_t(target[r]);
    } else {
      const float* t = target.data() + r * c;
      truth = std::max_element(t, t + c) - t;
    }
    hits += guess == truth;
  }
  return double(hits) / double(rows);
}

}  // namespace convkit
