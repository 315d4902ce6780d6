// MaxPooling2D / AveragePooling2D and the global poolings, over the Pool2dPlan operator.
#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

Pooling2D::Pooling2D(PoolKind kind, Pool2dParams params) : kind_(kind), params_(params) { validate(kind, params_); }

std::string Pooling2D::class_name() const { return pool_op_name(kind_); }

Shape Pooling2D::compute_output_shape(const Shape& s) const {
  if (s.size() != 4)
    throw Error(cat(class_name(), ": input must be 4-D (batch, height, width, channels), got ", shape_to_string(s)));
  Shape one = s;
  one[0] = 1;
  Shape out = pool2d_output_shape(kind_, params_, one);
  out[0] = s[0];
  return out;
}

Tensor Pooling2D::forward(const Tensor& x, bool) {
  check_input(x);
  if (!plan_ || plan_->geometry().input_shape() != x.shape()) plan_ = Pool2dPlan::create(kind_, params_, x.shape());
  x_ = x;
  Tensor y(plan_->geometry().output_shape());
  plan_->forward(x.data(), y.data());
  return y;
}

Tensor Pooling2D::backward(const Tensor& dy) {
  Tensor dx(x_.shape());
  plan_->backward(x_.data(), dy.data(), dx.data());
  return dx;
}

std::string GlobalPooling2D::class_name() const {
  return kind_ == PoolKind::max ? "GlobalMaxPooling2D" : "GlobalAveragePooling2D";
}

Shape GlobalPooling2D::compute_output_shape(const Shape& s) const {
  if (s.size() != 4)
    throw Error(cat(class_name(), ": input must be 4-D (batch, height, width, channels), got ", shape_to_string(s)));
  return {s[0], s[3]};
}

Tensor GlobalPooling2D::forward(const Tensor& x, bool) {
  check_input(x);
  x_ = x;
  return global_pool_forward(kind_, x);
}

Tensor GlobalPooling2D::backward(const Tensor& dy) { return global_pool_backward(kind_, x_, dy); }

}  // namespace convkit
