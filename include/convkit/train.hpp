// convkit/train.hpp — losses, optimisers, learning-rate schedules, and the training loop (fit / evaluate).
#pragma once

#include <array>
#include <atomic>
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

// Where fit() stands within a run, to resume it exactly (a checkpoint stores it: convkit/serialize.hpp). Together
// with the weights, the optimizer (slots, iteration count) and the Dropout streams, it is everything the next step
// depends on, so a resumed run ends bit-identical to an uninterrupted one (same seed and thread count).
struct FitState {
  int epoch = 0;                           // epochs completed
  int64_t step = 0;                        // steps completed within epoch `epoch + 1` (0: at an epoch boundary)
  std::array<uint64_t, 4> shuffle_rng{};   // the shuffling generator (meaningful once `started`)
  std::vector<int64_t> order;              // the current pass over the data (sample indices)
  int64_t cursor = 0;                      // position in `order`
  double loss_sum = 0, acc_sum = 0;        // the unfinished epoch's running sums (over `seen` samples)
  int64_t seen = 0;
  float learning_rate = 0;                 // the last step's
  std::optional<double> best;              // early stopping: best monitored value so far, its patience counter
  int since_best = 0;
  bool started = false;                    // false: start from the beginning (a default FitState)
  friend bool operator==(const FitState&, const FitState&) = default;
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
  // Checked after every step: once it reads true (a SIGINT handler sets it), fit() returns after that step with
  // stopped_reason "interrupted", `state` (if set) holding the position to resume from.
  const std::atomic<bool>* stop_requested = nullptr;
  // In: where to start (state->started false: from the beginning). Out: updated at every epoch end (before
  // on_epoch_end, so a checkpoint written there is current) and on interruption. x, y and the other options must
  // be those of the run that wrote it.
  FitState* state = nullptr;
};

struct History {
  std::vector<EpochLog> epochs;
  std::string stopped_reason;  // "", "early stopping", "callback", "interrupted"
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
