// convkit/model.hpp — the Sequential model: a list of layers with shapes inferred from the input shape,
// Keras' summary table, forward / backward over the whole stack, prediction.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "convkit/layers.hpp"

namespace convkit {

class Sequential;

// While alive, every layer of the model may run forward(x, false) on weights packed once
// (Layer::freeze_for_inference); the weights must not change meanwhile. predict() and evaluate() hold one.
class FrozenForInference {
 public:
  explicit FrozenForInference(Sequential& model);
  ~FrozenForInference();
  FrozenForInference(const FrozenForInference&) = delete;
  FrozenForInference& operator=(const FrozenForInference&) = delete;

 private:
  Sequential& model_;
};

class Sequential {
 public:
  explicit Sequential(std::string name = "sequential") : name_(std::move(name)) {}
  Sequential(Sequential&&) noexcept = default;
  Sequential& operator=(Sequential&&) noexcept = default;

  const std::string& name() const { return name_; }

  // Appends a layer. An InputLayer may only come first. Layers without a name get Keras' default
  // ("conv2d", "conv2d_1", ...); a duplicate name is an error.
  Layer& add(std::unique_ptr<Layer> layer);
  template <class L, class... Args>
  L& add(Args&&... args) {
    static_assert(std::is_base_of_v<Layer, L>);
    return static_cast<L&>(add(std::make_unique<L>(std::forward<Args>(args)...)));
  }

  // Infers every shape from the InputLayer's shape and creates the weights from `seed`. Throws
  // convkit::Error naming the first layer that cannot take its input.
  void build(uint64_t seed = 0);
  bool built() const { return built_; }

  // Shapes with -1 as the batch dimension (Keras' None).
  Shape input_shape() const;
  Shape output_shape() const;
  const Shape& layer_output_shape(std::size_t i) const { return output_shapes_.at(i); }

  // The layers after the InputLayer.
  std::size_t size() const { return layers_.size(); }
  Layer& layer(std::size_t i) { return *layers_.at(i); }
  const Layer& layer(std::size_t i) const { return *layers_.at(i); }
  Layer* find(const std::string& name);

  // The table Keras prints: layer (type), output shape, parameter count; totals, trainable, non-trainable.
  std::string summary(int line_length = 65) const;
  int64_t count_params(bool trainable) const;
  int64_t count_params() const { return count_params(true) + count_params(false); }

  // forward keeps what backward needs (in each layer's buffers, reused from step to step); backward returns
  // dL/dx, or, with input_gradient false (training), an empty tensor and skips the first layer's dL/dx.
  Tensor forward(const Tensor& x, bool training);
  Tensor backward(const Tensor& dy, bool input_gradient = true);
  // Inference in batches of batch_size, with the weights packed once for the whole call (FrozenForInference).
  Tensor predict(const Tensor& x, int batch_size = 256);

  std::vector<Weight*> weights();  // every layer's, in order
  std::vector<Weight*> trainable_weights();

  // After a forward whose output is not finite: the name of the first layer whose output had a NaN or an
  // infinity (the last forward's outputs are checked again, layer by layer), or "" if none.
  std::string first_nonfinite_layer(const Tensor& x, bool training);

  const InputLayer* input_layer() const { return input_.get(); }

 private:
  std::string name_;
  std::unique_ptr<InputLayer> input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> output_shapes_;
  bool built_ = false;
  // Copies of the last forward's input and backward's dy, which the layers' steps use; on the heap, so that the
  // layers' references to them survive a move of the model.
  std::unique_ptr<Tensor> batch_ = std::make_unique<Tensor>(), grad_ = std::make_unique<Tensor>();
};

}  // namespace convkit
