// tools/convkit/model_files.hpp — what the model subcommands (summary, train, evaluate, predict) share.
#pragma once

#include <string>

#include "convkit/dataset.hpp"
#include "convkit/model.hpp"

namespace convkit::cli {

// A model from a Keras JSON architecture (.json: built from `seed`) or a convkit model file (weights included).
Sequential load_any_model(const std::string& option, const std::string& path, uint64_t seed = 0);
// A dataset split from a directory of IDX files (Fashion-MNIST layout), its labels as a (N,) float tensor.
struct LabelledData {
  Tensor x, y;
  std::vector<std::string> class_names;
};
LabelledData load_split(const std::string& option, const std::string& dir, Split split);
// Fails now, naming the option, if `path` cannot be created later (missing directory, no permission), so that a
// long run does not end in an error; leaves nothing behind.
void check_writable(const std::string& option, const std::string& path);
// Whether the model's last layer ends in softmax (its outputs are probabilities, not logits).
bool ends_in_softmax(const Sequential& model);

}  // namespace convkit::cli
