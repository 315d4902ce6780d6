// MaxPooling2D / AveragePooling2D and the global poolings, over the Pool2dPlan operator.
#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"
#include "nn/step_buffers.hpp"

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

Tensor Pooling2D::forward(const Tensor& x, bool training) {
  check_input(x);
  x_ = x;
  return forward_step(x_, training);
}

Tensor Pooling2D::backward(const Tensor& dy) {
  Tensor d = dy;
  return backward_step(d, true);
}

// Training max pooling keeps each output's window cell for the backward pass (Pool2dPlan::keeps_argmax), which
// then reads neither x nor the windows again.
const Tensor& Pooling2D::forward_step(const Tensor& x, bool training) {
  check_input(x);
  if (!plan_ || plan_->geometry().input_shape() != x.shape()) plan_ = Pool2dPlan::create(kind_, params_, x.shape());
  step_x_ = &x;
  nn::ensure_shape(y_, plan_->geometry().output_shape());
  argmax_valid_ = training && plan_->keeps_argmax();
  if (argmax_valid_) {
    argmax_.resize(static_cast<std::size_t>(y_.size()));
    plan_->forward(x.data(), y_.data(), argmax_.data());
  } else {
    plan_->forward(x.data(), y_.data());
  }
  return y_;
}

Tensor& Pooling2D::backward_step(Tensor& dy, bool need_dx) {
  if (!step_x_) throw Error(cat(class_name(), " '", name_, "': backward before forward"));
  if (!need_dx) {
    dx_ = Tensor();
    return dx_;
  }
  nn::ensure_shape(dx_, step_x_->shape());
  if (argmax_valid_)
    plan_->backward_from_argmax(argmax_.data(), dy.data(), dx_.data());
  else
    plan_->backward(step_x_->data(), dy.data(), dx_.data());
  return dx_;
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
