// ActivationFn: the activations of the Activation layer and of every layer's `activation` argument.
#include <algorithm>
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;
using Kind = ActivationFn::Kind;

ActivationFn ActivationFn::parse(std::string_view name) {
  if (name == "linear" || name == "none" || name.empty()) return {Kind::linear};
  if (name == "relu") return {Kind::relu};
  if (name == "leaky_relu") return {Kind::leaky_relu, 0.2f};  // Keras 3's default negative_slope
  if (name == "elu") return {Kind::elu, 1.0f};
  if (name == "tanh") return {Kind::tanh};
  if (name == "sigmoid") return {Kind::sigmoid};
  if (name == "softmax") return {Kind::softmax};
  throw Error(cat("activation: unknown activation '", name,
                  "' (expected linear, relu, leaky_relu, elu, tanh, sigmoid or softmax)"));
}

std::string ActivationFn::name() const {
  switch (kind) {
    case Kind::linear: return "linear";
    case Kind::relu: return "relu";
    case Kind::leaky_relu: return "leaky_relu";
    case Kind::elu: return "elu";
    case Kind::tanh: return "tanh";
    case Kind::sigmoid: return "sigmoid";
    case Kind::softmax: return "softmax";
  }
  return "?";
}

std::optional<Activation> ActivationFn::fused() const {
  switch (kind) {
    case Kind::linear: return Activation::none;
    case Kind::relu: return Activation::relu;
    case Kind::tanh: return Activation::tanh;
    case Kind::sigmoid: return Activation::sigmoid;
    default: return std::nullopt;
  }
}

void ActivationFn::forward(Tensor& x) const {
  float* p = x.data();
  const int64_t n = x.size();
  if (auto f = fused()) return activation_forward(*f, p, n);
  switch (kind) {
    case Kind::leaky_relu:
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] >= 0.0f ? p[i] : alpha * p[i];
      return;
    case Kind::elu:
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] > 0.0f ? p[i] : alpha * std::expm1(p[i]);
      return;
    case Kind::softmax: {
      if (x.rank() == 0) throw Error("softmax: needs at least one axis");
      const int64_t c = x.dim(x.rank() - 1);
      for (int64_t r = 0; c > 0 && r < n / c; ++r) {
        float* row = p + r * c;
        const float m = *std::max_element(row, row + c);
        float s = 0.0f;
        for (int64_t j = 0; j < c; ++j) s += (row[j] = std::exp(row[j] - m));
        const float inv = 1.0f / s;
        for (int64_t j = 0; j < c; ++j) row[j] *= inv;
      }
      return;
    }
    default: return;
  }
}

void ActivationFn::backward(const Tensor& y, Tensor& dy) const {
  const float* yp = y.data();
  float* g = dy.data();
  const int64_t n = dy.size();
  if (auto f = fused()) return activation_backward(*f, yp, g, n);
  switch (kind) {
    case Kind::leaky_relu:  // y < 0 exactly when x < 0 (alpha > 0)
      for (int64_t i = 0; i < n; ++i) g[i] = yp[i] >= 0.0f ? g[i] : alpha * g[i];
      return;
    case Kind::elu:  // for x <= 0: d/dx alpha (e^x - 1) = y + alpha
      for (int64_t i = 0; i < n; ++i) g[i] = yp[i] > 0.0f ? g[i] : g[i] * (yp[i] + alpha);
      return;
    case Kind::softmax: {
      const int64_t c = y.dim(y.rank() - 1);
      for (int64_t r = 0; c > 0 && r < n / c; ++r) {
        const float* yr = yp + r * c;
        float* gr = g + r * c;
        float dot = 0.0f;
        for (int64_t j = 0; j < c; ++j) dot += gr[j] * yr[j];
        for (int64_t j = 0; j < c; ++j) gr[j] = yr[j] * (gr[j] - dot);
      }
      return;
    }
    default: return;
  }
}

}  // namespace convkit
