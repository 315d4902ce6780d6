// convkit/train.hpp — losses, optimisers, learning-rate schedules, and the training loop (fit / evaluate).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convkit/model.hpp"

namespace convkit {

// ---- losses: the mean over the batch, and its gradient with respect to the predictions -------------------
class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;  // Keras' name, e.g. "sparse_categorical_crossentropy"
  // pred (N, ...) and target; returns the mean loss and, if dpred is not null, writes dL/dpred (pred's shape).
  // Sparse targets are (N,) class indices stored as floats; dense targets have pred's shape.
  virtual double compute(const Tensor& pred, const Tensor& target, Tensor* dpred) const = 0;
};
std::unique_ptr<Loss> make_loss(std::string_view name, bool from_logits = false);
// sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, mean_squared_error.

// ---- optimisers ---------------------------------------------------------------------------------------------
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // Creates the slots for these weights (idempotent); step() calls it, a checkpoint loader calls it first.
  virtual void prepare(const std::vector<Weight*>& weights) = 0;
  // One update of every trainable weight from its grad, at learning rate lr.
  virtual void step(const std::vector<Weight*>& weights, float lr) = 0;
  // Slots (momentum, Adam moments) by "<weight index>/<slot>" plus the step count, for checkpoints.
  virtual std::vector<std::pair<std::string, Tensor*>> state() = 0;
  // The construction options by name (SGD: momentum, nesterov; Adam/AdamW: beta_1, beta_2, epsilon,
  // weight_decay), for checkpoints; booleans as 0 / 1.
  virtual std::vector<std::pair<std::string, double>> options() const { return {}; }
  int64_t iterations = 0;
};
struct SgdOptions { float momentum = 0.0f; bool nesterov = false; };
struct AdamOptions { float beta_1 = 0.9f, beta_2 = 0.999f, epsilon = 1e-7f; float weight_decay = 0.0f; };
std::unique_ptr<Optimizer> make_sgd(SgdOptions opts = {});
std::unique_ptr<Optimizer> make_adam(AdamOptions opts = {});
std::unique_ptr<Optimizer> make_adamw(AdamOptions opts = {.weight_decay = 0.004f});  // Keras' AdamW default

// ---- learning-rate schedules ---------------------------------------------------------------------------------
struct LrSchedule {
  enum class Kind { constant, step, cosine };
  Kind kind = Kind::constant;
  float initial = 1e-3f;
  int step_epochs = 10;       // step: multiply by factor every step_epochs epochs
  float factor = 0.1f;
  float min_fraction = 0.0f;  // cosine: decays from initial to initial * min_fraction over the whole run
  float at(int64_t step, int64_t total_steps, int64_t steps_per_epoch) const;
};

// ---- fit ----------------------------------------------------------------------------------------------------
struct EpochLog {
  int epoch = 0;  // 1-based
  double loss = 0, accuracy = 0;
  std::optional<double> val_loss, val_accuracy;
  double seconds = 0;
  float learning_rate = 0;
};

struct FitOptions {
  int epochs = 1;
  int batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t steps_per_epoch = 0;  // 0: the whole training set each epoch
  const Tensor* x_val = nullptr;
  const Tensor* y_val = nullptr;
  LrSchedule schedule;
  // Early stopping: stop when `monitor` has not improved for `patience` epochs (0 = off).
  std::string monitor = "val_loss";  // val_loss, val_accuracy, loss, accuracy
  int patience = 0;
  bool restore_best_weights = false;
  // Called after each epoch (checkpointing, curves). Returning false stops training.
  std::function<bool(const EpochLog&, bool improved)> on_epoch_end;
  // Progress output: nullptr = silent. A Keras progress bar on a terminal, one plain line per epoch otherwise.
  std::ostream* progress = nullptr;
  std::optional<bool> progress_is_terminal;  // default: isatty(stdout)
};

struct History {
  std::vector<EpochLog> epochs;
  std::string stopped_reason;  // "", "early stopping", "callback"
};

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

// Trains model on (x, y) with the loss and optimiser. A NaN or infinity in the loss, or in a weight's gradient,
// stops training (before the step) with a convkit::Error naming the first layer that produced it.
History fit(Sequential& model, const Tensor& x, const Tensor& y, const Loss& loss, Optimizer& opt,
            const FitOptions& opts);
EvalResult evaluate(Sequential& model, const Tensor& x, const Tensor& y, const Loss& loss, int batch_size = 256);
// Fraction of rows whose arg-max matches the target (sparse indices or one-hot); binary for 1 output.
double accuracy(const Tensor& pred, const Tensor& target);

}  // namespace convkit
