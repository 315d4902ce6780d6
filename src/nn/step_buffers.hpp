// src/nn/step_buffers.hpp — the buffers the layers' training steps keep from one step to the next: reshaped or
// refilled in place while the element count stays the same, reallocated only when it changes (a new batch size).
#pragma once

#include <cstring>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/layers.hpp"
#include "convkit/tensor.hpp"

namespace convkit::nn {

// t with shape s; its values are unspecified unless it was just allocated (zeros).
inline Tensor& ensure_shape(Tensor& t, const Shape& s) {
  if (t.shape() == s) return t;
  if (t.size() == shape_elements(s) && !t.empty()) {
    t.reshape(s);
  } else {
    t = Tensor(s);
  }
  return t;
}

// dst := src (shape and values), reusing dst's storage when it can.
inline void copy_into(Tensor& dst, const Tensor& src) {
  ensure_shape(dst, src.shape());
  if (src.size() > 0) std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(src.size()) * sizeof(float));
}

// At least `bytes` of scratch memory.
inline void* ensure_bytes(std::vector<unsigned char>& buf, std::size_t bytes) {
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

// The training step of a layer that is one Conv2dPlan (Conv2D, and Dense as a 1x1 convolution) followed by its
// activation; the part of the activation the plan fuses is already in the plan's parameters.
// Forward: y := act(conv(x, kernel) + bias), y kept by the layer in the layer's output shape (the plan's output
// elements, Dense's (N, units) for instance); bias may be null.
inline const Tensor& plan_forward_step(const Conv2dPlan& plan, const ActivationFn& act, const Tensor& x,
                                       const Weight& kernel, const Weight* bias, Tensor& y, const Shape& y_shape,
                                       std::vector<unsigned char>& workspace) {
  ensure_shape(y, y_shape);
  plan.forward(x.data(), kernel.value.data(), bias ? bias->value.data() : nullptr, y.data(),
               ensure_bytes(workspace, plan.workspace_size()));
  if (!act.fused()) act.forward(y);
  return y;
}

// The same at inference over frozen weights (Layer::freeze_for_inference): the plan for `input` with the weights
// packed once (their forward part only, in a 64-byte-aligned tensor as the kernels' panels want), made and packed
// when the input shape changes (a last, smaller batch), then forward_packed.
inline const Tensor& frozen_forward_step(FrozenWeights& f, const Conv2dParams& p, const Shape& input,
                                         const ActivationFn& act, const Tensor& x, const Weight& kernel,
                                         const Weight* bias, Tensor& y, const Shape& y_shape,
                                         std::vector<unsigned char>& workspace) {
  if (!f.plan || f.plan->geometry().input_shape() != input) {
    f.plan = Conv2dPlan::create(p, input, Conv2dAlgorithm::automatic, Conv2dWeights::packed_once);
    f.packed = Tensor(Shape{static_cast<int64_t>(f.plan->packed_forward_size())});
    f.plan->pack_forward_weights(kernel.value.data(), f.packed.data());
  }
  ensure_shape(y, y_shape);
  f.plan->forward_packed(x.data(), kernel.value.data(), f.packed.data(), bias ? bias->value.data() : nullptr,
                         y.data(), ensure_bytes(workspace, f.plan->workspace_size()));
  if (!act.fused()) act.forward(y);
  return y;
}

// Turns frozen inference on or off; off frees the packed copy.
inline void set_frozen(FrozenWeights& f, bool on) {
  f.on = on;
  if (!on) {
    f.plan.reset();
    f.packed = Tensor();
  }
}

// Backward from dL/dy (overwritten with dL/d(pre-activation)): the kernel's and bias's gradients, and dL/dx into dx
// (x's shape) unless need_dx is false (then dx is emptied).
inline Tensor& plan_backward_step(const Conv2dPlan& plan, const ActivationFn& act, const Tensor& x, const Tensor& y,
                                  Tensor& dy, Weight& kernel, Weight* bias, Tensor& dx, bool need_dx,
                                  std::vector<unsigned char>& workspace) {
  void* ws = ensure_bytes(workspace, plan.workspace_size());
  act.backward(y, dy);
  plan.backward_weights(x.data(), dy.data(), kernel.grad.data(), bias ? bias->grad.data() : nullptr, ws);
  if (!need_dx) {
    dx = Tensor();
    return dx;
  }
  ensure_shape(dx, x.shape());
  plan.backward_data(dy.data(), kernel.value.data(), dx.data(), ws);
  return dx;
}

}  // namespace convkit::nn
