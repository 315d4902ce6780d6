// Conv2D parameters: names, validation and resolution against an input shape.
#include <cmath>
#include <limits>

#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "core/shape.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

std::string to_string(PaddingMode mode) {
  switch (mode) {
    case PaddingMode::zeros: return "zeros";
    case PaddingMode::reflect: return "reflect";
    case PaddingMode::replicate: return "replicate";
    case PaddingMode::circular: return "circular";
  }
  return "?";
}

std::string to_string(Activation act) {
  switch (act) {
    case Activation::none: return "linear";
    case Activation::relu: return "relu";
    case Activation::tanh: return "tanh";
    case Activation::sigmoid: return "sigmoid";
  }
  return "?";
}

std::string to_string(const Padding& p) {
  switch (p.kind) {
    case PaddingKind::valid: return "valid";
    case PaddingKind::same: return "same";
    case PaddingKind::explicit_: return cat("(", p.top, ", ", p.bottom, ", ", p.left, ", ", p.right, ")");
  }
  return "?";
}

PaddingMode parse_padding_mode(std::string_view name) {
  for (PaddingMode m : {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate, PaddingMode::circular})
    if (name == to_string(m)) return m;
  throw Error(cat("padding_mode: unknown mode '", name, "' (expected zeros, reflect, replicate or circular)"));
}

Activation parse_activation(std::string_view name) {
  if (name == "none" || name == "linear") return Activation::none;
  for (Activation a : {Activation::relu, Activation::tanh, Activation::sigmoid})
    if (name == to_string(a)) return a;
  throw Error(cat("activation: unknown activation '", name, "' (expected linear, relu, tanh or sigmoid)"));
}

namespace {
void require_positive(const char* name, Size2 s) {
  if (s.h <= 0 || s.w <= 0)
    throw Error(cat("Conv2D: ", name, " must be positive, got (", s.h, ", ", s.w, ")"));
}
}  // namespace

void validate(const Conv2dParams& p) {
  if (p.filters <= 0) throw Error(cat("Conv2D: filters must be positive, got ", p.filters));
  require_positive("kernel_size", p.kernel_size);
  require_positive("strides", p.strides);
  require_positive("dilation_rate", p.dilation_rate);
  if (p.groups <= 0) throw Error(cat("Conv2D: groups must be positive, got ", p.groups));
  if (p.filters % p.groups != 0)
    throw Error(cat("Conv2D: filters (", p.filters, ") must be divisible by groups (", p.groups, ")"));
  if (p.padding.kind == PaddingKind::explicit_ &&
      (p.padding.top < 0 || p.padding.bottom < 0 || p.padding.left < 0 || p.padding.right < 0))
    throw Error(cat("Conv2D: padding must be non-negative, got ", to_string(p.padding)));
}

Conv2dParams depthwise_to_conv2d(const DepthwiseConv2dParams& d, int64_t in_channels) {
  if (in_channels <= 0) throw Error(cat("DepthwiseConv2D: input channels must be positive, got ", in_channels));
  if (d.depth_multiplier <= 0)
    throw Error(cat("DepthwiseConv2D: depth_multiplier must be positive, got ", d.depth_multiplier));
  // filters and groups are int: refuse rather than wrap when in_channels * depth_multiplier does not fit.
  // (Testing in_channels first keeps the product itself from overflowing.)
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (in_channels > kMax || in_channels * d.depth_multiplier > kMax)
    throw Error(cat("DepthwiseConv2D: in_channels (", in_channels, ") * depth_multiplier (", d.depth_multiplier,
                    ") is more than ", kMax, " filters"));
  Conv2dParams p;
  p.filters = static_cast<int>(in_channels * d.depth_multiplier);
  p.kernel_size = d.kernel_size;
  p.strides = d.strides;
  p.padding = d.padding;
  p.dilation_rate = d.dilation_rate;
  p.groups = static_cast<int>(in_channels);
  p.use_bias = d.use_bias;
  p.activation = d.activation;
  p.padding_mode = d.padding_mode;
  return p;
}

Conv2dGeometry conv2d_geometry(const Conv2dParams& p, const Shape& in) {
  validate(p);
  if (in.size() != 4)
    throw Error(cat("Conv2D: input must be 4-D (batch, height, width, channels), got shape ", shape_to_string(in)));
  if (in[0] <= 0) throw Error(cat("Conv2D: batch size must be positive, got input shape ", shape_to_string(in)));
  if (in[3] <= 0) throw Error(cat("Conv2D: input channels must be positive, got input shape ", shape_to_string(in)));
  if (in[3] % p.groups != 0)
    throw Error(cat("Conv2D: input channels (", in[3], ") must be divisible by groups (", p.groups, ")"));
  core::AxisSpec hs{.op = "Conv2D", .axis = "height", .in = in[1], .kernel = p.kernel_size.h,
                    .stride = p.strides.h, .dilation = p.dilation_rate.h, .padding = p.padding.kind,
                    .pad_before = p.padding.top, .pad_after = p.padding.bottom, .mode = p.padding_mode};
  core::AxisSpec ws{.op = "Conv2D", .axis = "width", .in = in[2], .kernel = p.kernel_size.w,
                    .stride = p.strides.w, .dilation = p.dilation_rate.w, .padding = p.padding.kind,
                    .pad_before = p.padding.left, .pad_after = p.padding.right, .mode = p.padding_mode};
  const core::AxisGeometry h = core::resolve_axis(hs);
  const core::AxisGeometry w = core::resolve_axis(ws);
  Conv2dGeometry g;
  g.n = in[0];
  g.ih = in[1];
  g.iw = in[2];
  g.ic = in[3];
  g.oh = h.out;
  g.ow = w.out;
  g.oc = p.filters;
  g.kh = p.kernel_size.h;
  g.kw = p.kernel_size.w;
  g.sh = p.strides.h;
  g.sw = p.strides.w;
  g.dh = p.dilation_rate.h;
  g.dw = p.dilation_rate.w;
  g.pad_top = h.pad_before;
  g.pad_bottom = h.pad_after;
  g.pad_left = w.pad_before;
  g.pad_right = w.pad_after;
  g.groups = p.groups;
  g.padding_mode = p.padding_mode;
  return g;
}

Shape conv2d_output_shape(const Conv2dParams& p, const Shape& input_shape) {
  return conv2d_geometry(p, input_shape).output_shape();
}

Shape conv2d_kernel_shape(const Conv2dParams& p, int64_t in_channels) {
  validate(p);
  if (in_channels <= 0 || in_channels % p.groups != 0)
    throw Error(cat("Conv2D: input channels (", in_channels, ") must be positive and divisible by groups (",
                    p.groups, ")"));
  return {p.kernel_size.h, p.kernel_size.w, in_channels / p.groups, p.filters};
}

int64_t conv2d_param_count(const Conv2dParams& p, int64_t in_channels) {
  return shape_elements(conv2d_kernel_shape(p, in_channels)) + (p.use_bias ? p.filters : 0);
}

void activation_forward(Activation act, float* y, int64_t n) {
  switch (act) {
    case Activation::none: return;
    case Activation::relu:  // NaN and -0 pass through unchanged, exactly as in torch.relu (a NaN must not vanish)
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] < 0.0f ? 0.0f : y[i];
      return;
    case Activation::tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(y[i]);
      return;
    case Activation::sigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + std::exp(-y[i]));
      return;
  }
}

void activation_backward(Activation act, const float* y, float* dy, int64_t n) {
  switch (act) {
    case Activation::none: return;
    case Activation::relu:  // PyTorch's threshold_backward: zero where y <= 0, so a NaN output passes dy on
      for (int64_t i = 0; i < n; ++i) dy[i] = y[i] <= 0.0f ? 0.0f : dy[i];
      return;
    case Activation::tanh:
      for (int64_t i = 0; i < n; ++i) dy[i] *= 1.0f - y[i] * y[i];
      return;
    case Activation::sigmoid:
      for (int64_t i = 0; i < n; ++i) dy[i] *= y[i] * (1.0f - y[i]);
      return;
  }
}

}  // namespace convkit
