// convkit evaluate — loss and accuracy of a trained model on a dataset split.
#include <CLI/CLI.hpp>

#include <iostream>

#include "commands.hpp"
#include "convkit/error.hpp"
#include "convkit/train.hpp"
#include "model_files.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {
struct EvaluateOptions {
  std::string model, data = std::string(kFashionMnistDir), split = "test", batch_size = "256";
  std::string loss = "sparse_categorical_crossentropy";
};
}  // namespace

void add_evaluate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "Loss and accuracy of a trained model on a dataset split");
  auto o = std::make_shared<EvaluateOptions>();
  cmd->add_option("--model", o->model, "A convkit model file (.safetensors)")->required();
  cmd->add_option("--data", o->data, "Directory with the IDX files")->capture_default_str();
  cmd->add_option("--split", o->split, "test or train")->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Samples per forward pass")->capture_default_str();
  cmd->add_option("--loss", o->loss, "Loss (from logits unless the model ends in softmax)")->capture_default_str();
  cmd->callback([o] {
    if (o->split != "test" && o->split != "train")
      throw Error(cat("--split: expected test or train, got '", o->split, "'"));
    const int batch = parse_positive("--batch-size", o->batch_size);
    Sequential model = load_any_model("--model", o->model);
    std::unique_ptr<Loss> loss;
    try {
      loss = make_loss(o->loss, !ends_in_softmax(model));
    } catch (const Error& e) {
      throw Error(cat("--loss: ", e.what()));
    }
    const LabelledData d = load_split("--data", o->data, o->split == "test" ? Split::test : Split::train);
    const EvalResult r = evaluate(model, d.x, d.y, *loss, batch);
    std::cout << o->split << ": " << r.samples << " images - loss: " << r.loss << " - accuracy: " << r.accuracy << "\n";
  });
}

}  // namespace convkit::cli
