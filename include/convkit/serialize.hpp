// convkit/serialize.hpp — architectures as Keras Sequential JSON, model files and training checkpoints
// (DESIGN.md §3; the file layout is described in docs/model-files.md).
//
// Architectures. model_to_json() writes what Keras 3's `model.to_json()` writes for the same model
// ({"module": "keras", "class_name": "Sequential", "config": {"name", "trainable", "dtype", "layers": [...]}, ...},
// every layer as {"module": "keras.layers", "class_name", "config", "registered_name", "build_config"}), with
// Keras' class names and config field names. model_from_json() reads that and also Keras 2's spelling
// ("batch_input_shape", "dtype": "float32", initializers without "module", BatchNormalization's "axis": [3], ...).
// Everything in the JSON is checked: an unknown layer class, an unknown config field, a value of the wrong type,
// a non-null regularizer or constraint (convkit has none), data_format "channels_first", a dtype other than
// float32 — each is a convkit::Error naming the field and the layer.
//
// convkit's extensions to Keras' configs are written only when they differ from Keras' behaviour, so a model that
// Keras could express round-trips to plain Keras JSON:
//   "padding": [[top, bottom], [left, right]]   explicit (asymmetric) padding of convolutions and poolings
//   "padding_mode": "reflect" | "replicate" | "circular"          convolutions (Keras: always zeros)
//   "ceil_mode": true, "count_include_pad": true                   poolings (PyTorch's options)
//   "activation_alpha": x          leaky_relu slope (Keras 3 default 0.2) / elu alpha (default 1.0), any layer with
//                                  an activation
//
// Model files. One safetensors file (convkit/safetensors.hpp): every weight of every layer as the float32 tensor
// "<layer name>/<weight name>" ("conv2d/kernel", "batch_normalization/moving_mean"), and in "__metadata__":
//   "format": "convkit", "architecture": model_to_json(model), "convkit_version": "<version>".
// A training checkpoint is a model file plus the optimizer's slots as "optimizer/<slot>" tensors (the slot names
// of Optimizer::state(), e.g. "optimizer/0/m") and two more metadata entries, "optimizer" and "training" (JSON);
// load_model() reads a checkpoint as a model file. Layer names may not contain '/' (as in Keras), so the two kinds
// of tensor names cannot collide. Saving is atomic: the target is either the old file or the complete new one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "convkit/model.hpp"
#include "convkit/train.hpp"

namespace convkit {

// ---- architectures -----------------------------------------------------------------------------------------
// The model as Keras 3 JSON. The model needs an InputLayer (its input shape); it need not be built. indent < 0
// gives one line, as Keras' to_json() does; indent >= 0 pretty-prints. Throws convkit::Error for a layer type
// convkit cannot serialise or a layer name containing '/'.
std::string model_to_json(const Sequential& model, int indent = -1);

// A model from Keras (2 or 3) Sequential JSON, built (weights initialised from seed 0; call build(seed) to draw
// other initial weights). `source` names the JSON in messages (a file name, "<json>"). Before anything is built,
// the weights each layer will create (from its options) are summed and refused beyond max_weights, and so is a
// layer output of more than 2^31 values per sample: a hostile architecture gets an error, not an allocation.
inline constexpr int64_t kMaxModelWeights = int64_t{1} << 30;  // 4 GiB of float32 (VGG-16 has 138M)
Sequential model_from_json(std::string_view json, const std::string& source = "<json>",
                           int64_t max_weights = kMaxModelWeights);

// The same from a file, and the architecture of a model written to a file (atomically).
Sequential load_model_json(const std::string& path);
void save_model_json(const std::string& path, const Sequential& model, int indent = 2);

// ---- model files -------------------------------------------------------------------------------------------
// Writes the architecture and every weight (trainable or not) of a built model.
void save_model(const std::string& path, Sequential& model);

// Builds the model from the file's architecture, checks that the file holds exactly the weights the model has (a
// missing tensor, an extra one, or one of the wrong shape is an error naming it) and only then copies them in.
Sequential load_model(const std::string& path);

// ---- training checkpoints ----------------------------------------------------------------------------------
// Where a training run stands, beyond the weights and the optimizer. The optimizer's own state (its slots and
// iteration count) and the random streams of the model's Dropout layers are saved alongside automatically.
struct TrainingProgress {
  int epoch = 0;                      // epochs completed
  uint64_t seed = 0;                  // the run's seed (FitOptions::seed)
  std::string monitor;                // what best_metric measures ("val_loss", "val_accuracy", ...)
  std::optional<double> best_metric;  // best value of monitor so far; nullopt before the first (or if not finite)
  int epochs_since_best = 0;          // early stopping's patience counter
  FitState fit;                       // fit()'s exact position (mid-epoch too); fit.started false: not recorded
  friend bool operator==(const TrainingProgress&, const TrainingProgress&) = default;
};

// Saves model (built) + optimizer + progress. Calls optimizer.prepare(model.trainable_weights()) first, so the
// slots saved are complete even before the first step (prepare() throws if the optimizer belongs to another model).
void save_checkpoint(const std::string& path, Sequential& model, Optimizer& optimizer,
                     const TrainingProgress& progress);

// Restores a checkpoint into a built model of the same architecture and an optimizer of the same kind and options
// (each checked, a difference is an error naming it): the weights, optimizer.prepare() then every slot and the
// iteration count, the Dropout streams. Everything is checked before anything is changed. Returns the progress.
TrainingProgress load_checkpoint(const std::string& path, Sequential& model, Optimizer& optimizer);

}  // namespace convkit
