// Dense: y = act(x W + b) over the last axis.
#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"
#include "ref/dense.hpp"

namespace convkit {

using core::cat;

Dense::Dense(DenseOptions opts) : opts_(std::move(opts)) {
  if (opts_.units <= 0) throw Error(cat("Dense: units must be positive, got ", opts_.units));
}

Shape Dense::compute_output_shape(const Shape& s) const {
  if (s.size() < 2)
    throw Error(cat("Dense: input must have a batch and a feature axis, got ", shape_to_string(s)));
  if (s.back() <= 0) throw Error(cat("Dense: input features must be positive, got ", shape_to_string(s)));
  Shape out = s;
  out.back() = opts_.units;
  return out;
}

void Dense::build(const Shape& s, Rng& rng) {
  Layer::build(s, rng);
  kernel_ = Weight{"kernel", Tensor({s.back(), opts_.units}), Tensor({s.back(), opts_.units}), true};
  initialize(kernel_.value, opts_.kernel_initializer, rng);
  if (opts_.use_bias) {
    bias_ = Weight{"bias", Tensor({opts_.units}), Tensor({opts_.units}), true};
    initialize(bias_.value, opts_.bias_initializer, rng);
  }
}

Tensor Dense::forward(const Tensor& x, bool) {
  check_input(x);
  const int64_t k = x.shape().back(), m = x.size() / k;
  x_ = x;
  y_ = Tensor(compute_output_shape(x.shape()));
  ref::dense_fwd(m, k, opts_.units, x.data(), kernel_.value.data(), opts_.use_bias ? bias_.value.data() : nullptr,
                 y_.data());
  opts_.activation.forward(y_);
  return y_;
}

Tensor Dense::backward(const Tensor& dy) {
  const int64_t k = x_.shape().back(), m = x_.size() / k;
  Tensor dz = dy;
  opts_.activation.backward(y_, dz);
  Tensor dx(x_.shape());
  ref::dense_bwd_data(m, k, opts_.units, dz.data(), kernel_.value.data(), dx.data());
  ref::dense_bwd_weights(m, k, opts_.units, x_.data(), dz.data(), kernel_.grad.data(),
                         opts_.use_bias ? bias_.grad.data() : nullptr);
  return dx;
}

std::vector<Weight*> Dense::weights() {
  if (!built_) return {};
  if (opts_.use_bias) return {&kernel_, &bias_};
  return {&kernel_};
}

}  // namespace convkit
