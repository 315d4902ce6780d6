// Dense: y = act(x W + b) over the last axis. The product runs as a 1x1 convolution over M = (rows) pixels of
// K channels: the kernel (K, units) is the HWIO kernel (1, 1, K, units) in memory, so the convolution engine's
// GEMM path (and its backward passes) serve Dense without a second GEMM implementation.
#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"
#include "nn/step_buffers.hpp"

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

Conv2dParams Dense::as_conv() const {
  return Conv2dParams{.filters = opts_.units, .kernel_size = {1, 1}, .use_bias = opts_.use_bias,
                      .activation = opts_.activation.fused().value_or(Activation::none)};
}

const Conv2dPlan& Dense::plan_for(int64_t rows, int64_t features) {
  const Shape pixels{rows, 1, 1, features};
  if (!plan_ || plan_->geometry().input_shape() != pixels) plan_ = Conv2dPlan::create(as_conv(), pixels);
  return *plan_;
}

void Dense::freeze_for_inference(bool on) { nn::set_frozen(frozen_, on); }

Tensor Dense::forward(const Tensor& x, bool training) {
  check_input(x);
  x_ = x;
  return forward_step(x_, training);
}

Tensor Dense::backward(const Tensor& dy) {
  Tensor dz = dy;
  return backward_step(dz, true);
}

const Tensor& Dense::forward_step(const Tensor& x, bool training) {
  check_input(x);
  const int64_t k = x.shape().back(), m = x.size() / k;
  if (frozen_.on && !training) {
    step_x_ = nullptr;  // no backward from an inference pass
    return nn::frozen_forward_step(frozen_, as_conv(), {m, 1, 1, k}, opts_.activation, x, kernel_,
                                   opts_.use_bias ? &bias_ : nullptr, y_, compute_output_shape(x.shape()),
                                   workspace_);
  }
  const Conv2dPlan& plan = plan_for(m, k);
  step_x_ = &x;
  return nn::plan_forward_step(plan, opts_.activation, x, kernel_, opts_.use_bias ? &bias_ : nullptr, y_,
                               compute_output_shape(x.shape()), workspace_);
}

Tensor& Dense::backward_step(Tensor& dy, bool need_dx) {
  if (!step_x_) throw Error(cat("Dense '", name_, "': backward before forward"));
  const int64_t k = step_x_->shape().back(), m = step_x_->size() / k;
  const Conv2dPlan& plan = plan_for(m, k);
  return nn::plan_backward_step(plan, opts_.activation, *step_x_, y_, dy, kernel_,
                                opts_.use_bias ? &bias_ : nullptr, dx_, need_dx, workspace_);
}

std::vector<Weight*> Dense::weights() {
  if (!built_) return {};
  if (opts_.use_bias) return {&kernel_, &bias_};
  return {&kernel_};
}

}  // namespace convkit
