// Conv2D, DepthwiseConv2D and SeparableConv2D layers over the Conv2dPlan operator.
#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"
#include "nn/step_buffers.hpp"

namespace convkit {

using core::cat;

namespace {

// Output shape for an input whose batch may be -1 (unknown): the geometry is resolved for batch 1.
Shape conv_output_shape(const Conv2dParams& p, const Shape& s, const char* layer) {
  if (s.size() != 4)
    throw Error(cat(layer, ": input must be 4-D (batch, height, width, channels), got ", shape_to_string(s)));
  Shape one = s;
  one[0] = 1;
  Shape out = conv2d_output_shape(p, one);
  out[0] = s[0];
  return out;
}

const Conv2dPlan& cached_plan(std::optional<Conv2dPlan>& plan, const Conv2dParams& p, const Shape& input) {
  if (!plan || plan->geometry().input_shape() != input) plan = Conv2dPlan::create(p, input);
  return *plan;
}

Weight make_weight(const char* name, const Shape& shape, Initializer init, Rng& rng) {
  Weight w{name, Tensor(shape), Tensor(shape), true};
  initialize(w.value, init, rng);
  return w;
}

Conv2dParams with_fused(Conv2dParams p, const ActivationFn& fn) {
  p.activation = fn.fused().value_or(Activation::none);
  return p;
}

// y := conv(x) with the fused part of the activation, then the rest of it.
Tensor run_forward(const Conv2dPlan& plan, const ActivationFn& fn, const Tensor& x, const Tensor& w,
                   const Weight* bias) {
  Tensor y(plan.geometry().output_shape());
  plan.forward(x.data(), w.data(), bias ? bias->value.data() : nullptr, y.data());
  if (!fn.fused()) fn.forward(y);
  return y;
}

// dx, and the weight gradients written into kernel.grad / bias->grad, from dz = dL/d(pre-activation).
Tensor run_backward(const Conv2dPlan& plan, const Tensor& x, const Tensor& dz, Weight& kernel, Weight* bias) {
  Tensor dx(x.shape());
  plan.backward_data(dz.data(), kernel.value.data(), dx.data());
  plan.backward_weights(x.data(), dz.data(), kernel.grad.data(), bias ? bias->grad.data() : nullptr);
  return dx;
}

Tensor pre_activation_grad(const ActivationFn& fn, const Tensor& y, const Tensor& dy) {
  Tensor dz = dy;
  fn.backward(y, dz);
  return dz;
}

}  // namespace

// ---- Conv2D ----------------------------------------------------------------------------------------------
Conv2D::Conv2D(Conv2dLayerOptions opts) : opts_(std::move(opts)), fused_(with_fused(opts_.conv, opts_.activation)) {
  validate(fused_);
}

Shape Conv2D::compute_output_shape(const Shape& s) const { return conv_output_shape(fused_, s, "Conv2D"); }

void Conv2D::build(const Shape& s, Rng& rng) {
  Layer::build(s, rng);
  kernel_ = make_weight("kernel", conv2d_kernel_shape(fused_, s[3]), opts_.kernel_initializer, rng);
  if (fused_.use_bias) bias_ = make_weight("bias", {fused_.filters}, opts_.bias_initializer, rng);
}

const Conv2dPlan& Conv2D::plan_for(const Shape& input_shape) { return cached_plan(plan_, fused_, input_shape); }

Tensor Conv2D::forward(const Tensor& x, bool training) {
  check_input(x);
  x_ = x;
  return forward_step(x_, training);
}

Tensor Conv2D::backward(const Tensor& dy) {
  Tensor dz = dy;
  return backward_step(dz, true);
}

const Tensor& Conv2D::forward_step(const Tensor& x, bool training) {
  check_input(x);
  if (frozen_.on && !training) {
    step_x_ = nullptr;  // no backward from an inference pass
    return nn::frozen_forward_step(frozen_, fused_, x.shape(), opts_.activation, x, kernel_,
                                   fused_.use_bias ? &bias_ : nullptr, y_, conv2d_output_shape(fused_, x.shape()),
                                   workspace_);
  }
  const Conv2dPlan& plan = plan_for(x.shape());
  step_x_ = &x;
  return nn::plan_forward_step(plan, opts_.activation, x, kernel_, fused_.use_bias ? &bias_ : nullptr, y_,
                               plan.geometry().output_shape(), workspace_);
}

Tensor& Conv2D::backward_step(Tensor& dy, bool need_dx) {
  if (!step_x_) throw Error(cat("Conv2D '", name_, "': backward before forward"));
  const Conv2dPlan& plan = plan_for(step_x_->shape());
  return nn::plan_backward_step(plan, opts_.activation, *step_x_, y_, dy, kernel_,
                                fused_.use_bias ? &bias_ : nullptr, dx_, need_dx, workspace_);
}

void Conv2D::freeze_for_inference(bool on) { nn::set_frozen(frozen_, on); }

std::vector<Weight*> Conv2D::weights() {
  if (!built_) return {};
  if (fused_.use_bias) return {&kernel_, &bias_};
  return {&kernel_};
}

// ---- DepthwiseConv2D -------------------------------------------------------------------------------------
DepthwiseConv2D::DepthwiseConv2D(DepthwiseConv2dLayerOptions opts) : opts_(std::move(opts)) {
  validate(as_conv(1));  // everything but the channel count
}

Conv2dParams DepthwiseConv2D::as_conv(int64_t in_channels) const {
  return with_fused(depthwise_to_conv2d(opts_.conv, in_channels), opts_.activation);
}

Shape DepthwiseConv2D::compute_output_shape(const Shape& s) const {
  if (s.size() != 4)
    throw Error(cat("DepthwiseConv2D: input must be 4-D (batch, height, width, channels), got ", shape_to_string(s)));
  return conv_output_shape(as_conv(s[3]), s, "DepthwiseConv2D");
}

void DepthwiseConv2D::build(const Shape& s, Rng& rng) {
  Layer::build(s, rng);
  // Keras' kernel (kh, kw, in_channels, depth_multiplier): the grouped HWIO kernel (kh, kw, 1, C * M) in memory.
  kernel_ = make_weight("depthwise_kernel", {opts_.conv.kernel_size.h, opts_.conv.kernel_size.w, s[3],
                                             opts_.conv.depth_multiplier},
                        opts_.depthwise_initializer, rng);
  if (opts_.conv.use_bias) bias_ = make_weight("bias", {s[3] * opts_.conv.depth_multiplier}, opts_.bias_initializer, rng);
}

Tensor DepthwiseConv2D::forward(const Tensor& x, bool) {
  check_input(x);
  x_ = x;
  y_ = run_forward(cached_plan(plan_, as_conv(x.dim(3)), x.shape()), opts_.activation, x, kernel_.value,
                   opts_.conv.use_bias ? &bias_ : nullptr);
  return y_;
}

Tensor DepthwiseConv2D::backward(const Tensor& dy) {
  return run_backward(cached_plan(plan_, as_conv(x_.dim(3)), x_.shape()), x_,
                      pre_activation_grad(opts_.activation, y_, dy), kernel_, opts_.conv.use_bias ? &bias_ : nullptr);
}

std::vector<Weight*> DepthwiseConv2D::weights() {
  if (!built_) return {};
  if (opts_.conv.use_bias) return {&kernel_, &bias_};
  return {&kernel_};
}

// ---- SeparableConv2D -------------------------------------------------------------------------------------
SeparableConv2D::SeparableConv2D(SeparableConv2dLayerOptions opts) : opts_(std::move(opts)) {
  if (opts_.filters <= 0) throw Error(cat("SeparableConv2D: filters must be positive, got ", opts_.filters));
  validate(depthwise_params(1));
  validate(pointwise_params());
}

Conv2dParams SeparableConv2D::depthwise_params(int64_t in_channels) const {
  DepthwiseConv2dParams d{.kernel_size = opts_.kernel_size, .strides = opts_.strides, .padding = opts_.padding,
                          .depth_multiplier = opts_.depth_multiplier, .dilation_rate = opts_.dilation_rate,
                          .use_bias = false, .activation = Activation::none, .padding_mode = opts_.padding_mode};
  return depthwise_to_conv2d(d, in_channels);
}

Conv2dParams SeparableConv2D::pointwise_params() const {
  return with_fused(Conv2dParams{.filters = opts_.filters, .kernel_size = {1, 1}, .use_bias = opts_.use_bias},
                    opts_.activation);
}

Shape SeparableConv2D::compute_output_shape(const Shape& s) const {
  if (s.size() != 4)
    throw Error(cat("SeparableConv2D: input must be 4-D (batch, height, width, channels), got ", shape_to_string(s)));
  return conv_output_shape(pointwise_params(), conv_output_shape(depthwise_params(s[3]), s, "SeparableConv2D"),
                           "SeparableConv2D");
}

void SeparableConv2D::build(const Shape& s, Rng& rng) {
  Layer::build(s, rng);
  const int64_t mid = s[3] * opts_.depth_multiplier;
  depthwise_ = make_weight("depthwise_kernel",
                           {opts_.kernel_size.h, opts_.kernel_size.w, s[3], opts_.depth_multiplier},
                           opts_.depthwise_initializer, rng);
  pointwise_ = make_weight("pointwise_kernel", {1, 1, mid, opts_.filters}, opts_.pointwise_initializer, rng);
  if (opts_.use_bias) bias_ = make_weight("bias", {opts_.filters}, opts_.bias_initializer, rng);
}

Tensor SeparableConv2D::forward(const Tensor& x, bool) {
  check_input(x);
  x_ = x;
  const Conv2dPlan& dw = cached_plan(dw_plan_, depthwise_params(x.dim(3)), x.shape());
  mid_ = run_forward(dw, ActivationFn{}, x, depthwise_.value, nullptr);
  const Conv2dPlan& pw = cached_plan(pw_plan_, pointwise_params(), mid_.shape());
  y_ = run_forward(pw, opts_.activation, mid_, pointwise_.value, opts_.use_bias ? &bias_ : nullptr);
  return y_;
}

Tensor SeparableConv2D::backward(const Tensor& dy) {
  const Conv2dPlan& pw = cached_plan(pw_plan_, pointwise_params(), mid_.shape());
  const Tensor dmid = run_backward(pw, mid_, pre_activation_grad(opts_.activation, y_, dy), pointwise_,
                                   opts_.use_bias ? &bias_ : nullptr);
  const Conv2dPlan& dw = cached_plan(dw_plan_, depthwise_params(x_.dim(3)), x_.shape());
  return run_backward(dw, x_, dmid, depthwise_, nullptr);
}

std::vector<Weight*> SeparableConv2D::weights() {
  if (!built_) return {};
  if (opts_.use_bias) return {&depthwise_, &pointwise_, &bias_};
  return {&depthwise_, &pointwise_};
}

}  // namespace convkit
