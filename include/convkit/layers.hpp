// convkit/layers.hpp — Keras-style layers: construct (validates), build(input_shape) (creates weights),
// compute_output_shape (pure), forward / backward (DESIGN.md §2, the Layer level).
//
// Shapes include the batch dimension first; -1 stands for "any batch" (Keras' None) during shape inference.
// backward() OVERWRITES each Weight::grad with the gradient of the last forward, summed over the batch (the loss
// averages).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/pool.hpp"
#include "convkit/random.hpp"
#include "convkit/tensor.hpp"

namespace convkit {

// A layer's variable: trainable weights carry a gradient of the same shape; non-trainable state
// (BatchNormalization's moving statistics) has an empty grad.
struct Weight {
  std::string name;  // Keras' name: "kernel", "bias", "gamma", "beta", "moving_mean", ...
  Tensor value;
  Tensor grad;
  bool trainable = true;
};

// Weights packed once for inference (Layer::freeze_for_inference): the plan made for Conv2dWeights::packed_once
// and the forward part of its packed kernel (no backward-data form: inference never needs it), remade when the
// input shape changes.
struct FrozenWeights {
  bool on = false;
  std::optional<Conv2dPlan> plan;
  Tensor packed;  // the forward part of the packed weights (Conv2dPlan::pack_forward_weights), 64-byte aligned
};

enum class Initializer { glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal, zeros, ones };
std::string to_string(Initializer init);
Initializer parse_initializer(std::string_view name);
// Fills t following Keras' definitions; fan_in / fan_out as Keras computes them for the weight's shape
// (receptive field x input / output channels for kernels).
void initialize(Tensor& t, Initializer init, Rng& rng);

// The activations of the Activation layer and of every layer's `activation` argument. relu, tanh and sigmoid
// fuse into the convolution; the others run after it. softmax is over the last axis.
struct ActivationFn {
  enum class Kind { linear, relu, leaky_relu, elu, tanh, sigmoid, softmax };
  Kind kind = Kind::linear;
  float alpha = 0.0f;  // leaky_relu slope (Keras 3 default 0.2), elu scale (default 1.0)

  static ActivationFn parse(std::string_view name);  // "relu", "leaky_relu", "softmax", ...
  std::string name() const;
  void forward(Tensor& x) const;                            // in place
  void backward(const Tensor& y, Tensor& dy) const;         // dy := dL/dx given y = f(x), in place
  // The fused form for a convolution, when there is one.
  std::optional<Activation> fused() const;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string class_name() const = 0;  // Keras' class_name
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  virtual Shape compute_output_shape(const Shape& input_shape) const = 0;
  // Creates the weights for this input shape (batch dimension ignored). Throws convkit::Error on a shape the
  // layer cannot take, naming the layer.
  virtual void build(const Shape& input_shape, Rng& rng);
  bool built() const { return built_; }
  const Shape& input_shape() const { return input_shape_; }

  // forward caches what backward needs; training selects Dropout / BatchNormalization behaviour.
  virtual Tensor forward(const Tensor& x, bool training) = 0;
  // dL/dx from dL/dy of the last forward; writes the weight gradients into Weight::grad.
  virtual Tensor backward(const Tensor& dy) = 0;

  // The training hot path that Sequential runs, without the copies forward / backward make. forward_step may keep
  // a reference to x: x must stay alive and unchanged until the matching backward_step. The result is owned by
  // the layer (or is x itself, for an identity) and stays valid until its next forward_step. backward_step may
  // overwrite dy (the caller's scratch) and returns dL/dx, owned by the layer or dy itself, valid until the next
  // step; with need_dx false it only writes the weight gradients and returns an empty tensor. The built-in layers
  // reuse their buffers while the batch shape stays the same; the defaults run forward / backward.
  virtual const Tensor& forward_step(const Tensor& x, bool training);
  virtual Tensor& backward_step(Tensor& dy, bool need_dx);

  virtual std::vector<Weight*> weights() { return {}; }
  std::vector<const Weight*> weights() const;

  // Inference over weights that stay fixed (Sequential::predict, evaluate): while on, forward(x, false) may run on
  // weights packed once (Conv2dWeights::packed_once: Conv2D, Dense) instead of packing them at every call; off
  // drops the packed copy. The caller guarantees the weights do not change while it is on (Sequential's
  // FrozenForInference guard). The results agree with the unfrozen forward within the plan's tolerance (the
  // plan may choose another algorithm when packing is free).
  virtual void freeze_for_inference(bool on) { (void)on; }
  int64_t count_params(bool trainable) const;

 protected:
  void check_input(const Tensor& x) const;  // shape matches the built input shape (any batch)
  std::string name_;
  Shape input_shape_;
  bool built_ = false;
  Tensor step_y_, step_dx_;  // results of the default forward_step / backward_step
};

// Keras' Input: fixes the input shape (without batch) from which every other shape is inferred.
class InputLayer final : public Layer {
 public:
  explicit InputLayer(Shape shape_without_batch);
  std::string class_name() const override { return "InputLayer"; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor forward(const Tensor& x, bool) override { return x; }
  Tensor backward(const Tensor& dy) override { return dy; }
  const Shape& shape() const { return shape_; }

 private:
  Shape shape_;
};

struct Conv2dLayerOptions {
  Conv2dParams conv;  // conv.activation is ignored: the layer's activation is `activation`
  ActivationFn activation;
  Initializer kernel_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;
};

class Conv2D final : public Layer {
 public:
  explicit Conv2D(Conv2dLayerOptions opts);
  std::string class_name() const override { return "Conv2D"; }
  const Conv2dLayerOptions& options() const { return opts_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  const Tensor& forward_step(const Tensor& x, bool training) override;
  Tensor& backward_step(Tensor& dy, bool need_dx) override;
  std::vector<Weight*> weights() override;
  void freeze_for_inference(bool on) override;
  const Conv2dPlan& plan_for(const Shape& input_shape);

 private:
  Conv2dLayerOptions opts_;
  Conv2dParams fused_;  // opts_.conv with the fusable part of the activation
  Weight kernel_, bias_;
  std::optional<Conv2dPlan> plan_;
  FrozenWeights frozen_;
  Tensor x_, y_, dx_;             // x_: forward()'s copy of its input; y_, dx_: the step buffers
  const Tensor* step_x_ = nullptr;  // the input of the last forward_step
  std::vector<unsigned char> workspace_;
};

struct DepthwiseConv2dLayerOptions {
  DepthwiseConv2dParams conv;  // conv.activation is ignored
  ActivationFn activation;
  Initializer depthwise_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;
};

// Kernel (kh, kw, in_channels, depth_multiplier), output channel c * depth_multiplier + m.
class DepthwiseConv2D final : public Layer {
 public:
  explicit DepthwiseConv2D(DepthwiseConv2dLayerOptions opts);
  std::string class_name() const override { return "DepthwiseConv2D"; }
  const DepthwiseConv2dLayerOptions& options() const { return opts_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<Weight*> weights() override;

 private:
  Conv2dParams as_conv(int64_t in_channels) const;
  DepthwiseConv2dLayerOptions opts_;
  Weight kernel_, bias_;
  std::optional<Conv2dPlan> plan_;
  Tensor x_, y_;
};

struct SeparableConv2dLayerOptions {
  int filters = 0;
  Size2 kernel_size{};
  Size2 strides{1, 1};
  Padding padding = Padding::valid();
  int depth_multiplier = 1;
  Size2 dilation_rate{1, 1};
  bool use_bias = true;
  ActivationFn activation;
  PaddingMode padding_mode = PaddingMode::zeros;
  Initializer depthwise_initializer = Initializer::glorot_uniform;
  Initializer pointwise_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;
};

// Depthwise (no bias) then pointwise 1x1 (with bias), then the activation, as Keras defines it.
class SeparableConv2D final : public Layer {
 public:
  explicit SeparableConv2D(SeparableConv2dLayerOptions opts);
  std::string class_name() const override { return "SeparableConv2D"; }
  const SeparableConv2dLayerOptions& options() const { return opts_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<Weight*> weights() override;

 private:
  Conv2dParams depthwise_params(int64_t in_channels) const;
  Conv2dParams pointwise_params() const;
  SeparableConv2dLayerOptions opts_;
  Weight depthwise_, pointwise_, bias_;
  std::optional<Conv2dPlan> dw_plan_, pw_plan_;
  Tensor x_, mid_, y_;
};

class Pooling2D final : public Layer {
 public:
  Pooling2D(PoolKind kind, Pool2dParams params);
  std::string class_name() const override;  // MaxPooling2D / AveragePooling2D
  PoolKind kind() const { return kind_; }
  const Pool2dParams& params() const { return params_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  const Tensor& forward_step(const Tensor& x, bool training) override;
  Tensor& backward_step(Tensor& dy, bool need_dx) override;

 private:
  PoolKind kind_;
  Pool2dParams params_;
  std::optional<Pool2dPlan> plan_;
  Tensor x_, y_, dx_;               // x_: forward()'s copy of its input; y_, dx_: the step buffers
  const Tensor* step_x_ = nullptr;  // the input of the last forward_step
  std::vector<int32_t> argmax_;     // training max pooling: each output's window cell (Pool2dPlan::keeps_argmax)
  bool argmax_valid_ = false;       // argmax_ is the last forward_step's
};

class GlobalPooling2D final : public Layer {
 public:
  explicit GlobalPooling2D(PoolKind kind) : kind_(kind) {}
  std::string class_name() const override;  // GlobalMaxPooling2D / GlobalAveragePooling2D
  PoolKind kind() const { return kind_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;

 private:
  PoolKind kind_;
  Tensor x_;
};

struct DenseOptions {
  int units = 0;
  ActivationFn activation;
  bool use_bias = true;
  Initializer kernel_initializer = Initializer::glorot_uniform;
  Initializer bias_initializer = Initializer::zeros;
};

// y = act(x W + b) over the last axis; kernel (in_features, units).
class Dense final : public Layer {
 public:
  explicit Dense(DenseOptions opts);
  std::string class_name() const override { return "Dense"; }
  const DenseOptions& options() const { return opts_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  void build(const Shape& input_shape, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  const Tensor& forward_step(const Tensor& x, bool training) override;
  Tensor& backward_step(Tensor& dy, bool need_dx) override;
  std::vector<Weight*> weights() override;
  void freeze_for_inference(bool on) override;

 private:
  const Conv2dPlan& plan_for(int64_t rows, int64_t features);
  Conv2dParams as_conv() const;
  DenseOptions opts_;
  Weight kernel_, bias_;
  std::optional<Conv2dPlan> plan_;
  FrozenWeights frozen_;
  Tensor x_, y_, dx_;               // x_: forward()'s copy of its input; y_, dx_: the step buffers
  const Tensor* step_x_ = nullptr;  // the input of the last forward_step
  std::vector<unsigned char> workspace_;
};

class Flatten final : public Layer {
 public:
  std::string class_name() const override { return "Flatten"; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  const Tensor& forward_step(const Tensor& x, bool training) override;
  Tensor& backward_step(Tensor& dy, bool need_dx) override;  // reshapes dy in place

 private:
  Shape last_shape_;
  Tensor y_;
};

// Inverted dropout (Keras): in training, zeroes each value with probability rate and scales the rest by
// 1 / (1 - rate); identity at inference.
class Dropout final : public Layer {
 public:
  explicit Dropout(float rate, std::optional<uint64_t> seed = std::nullopt);
  std::string class_name() const override { return "Dropout"; }
  float rate() const { return rate_; }
  std::optional<uint64_t> seed() const { return seed_; }
  // The mask stream (set by build()), for checkpoints that resume with the same masks.
  Rng& rng() { return rng_; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  void build(const Shape& input_shape, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  const Tensor& forward_step(const Tensor& x, bool training) override;
  Tensor& backward_step(Tensor& dy, bool need_dx) override;  // scales dy in place

 private:
  float rate_;
  std::optional<uint64_t> seed_;
  Rng rng_;
  Tensor mask_;  // scale per element of the last training forward
  bool masked_ = false;  // whether the last forward applied mask_ (training with rate > 0)
  Tensor y_;
};

struct BatchNormOptions {
  float momentum = 0.99f;   // moving = moving * momentum + batch * (1 - momentum), as Keras
  float epsilon = 1e-3f;
  bool center = true;       // beta
  bool scale = true;        // gamma
};

// Over the last axis (channels). Training normalises with the batch statistics (biased variance) and updates
// the moving statistics; inference uses the moving statistics.
class BatchNormalization final : public Layer {
 public:
  explicit BatchNormalization(BatchNormOptions opts = {});
  std::string class_name() const override { return "BatchNormalization"; }
  const BatchNormOptions& options() const { return opts_; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  void build(const Shape& input_shape, Rng& rng) override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<Weight*> weights() override;

 private:
  BatchNormOptions opts_;
  Weight gamma_, beta_, moving_mean_, moving_variance_;
  Tensor xhat_;                  // normalised input of the last training forward
  std::vector<float> inv_std_;   // per channel, last forward
  bool last_training_ = false;
};

class ActivationLayer final : public Layer {
 public:
  explicit ActivationLayer(ActivationFn fn) : fn_(fn) {}
  std::string class_name() const override { return "Activation"; }
  const ActivationFn& function() const { return fn_; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;

 private:
  ActivationFn fn_;
  Tensor y_;
};

// Keras ZeroPadding2D: ((top, bottom), (left, right)) zeros around NHWC images.
class ZeroPadding2D final : public Layer {
 public:
  ZeroPadding2D(int top, int bottom, int left, int right);
  std::string class_name() const override { return "ZeroPadding2D"; }
  int top() const { return t_; }
  int bottom() const { return b_; }
  int left() const { return l_; }
  int right() const { return r_; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor forward(const Tensor& x, bool training) override;
  Tensor backward(const Tensor& dy) override;

 private:
  int t_, b_, l_, r_;
};

}  // namespace convkit
