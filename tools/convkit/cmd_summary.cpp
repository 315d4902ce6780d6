// convkit summary MODEL — the Keras summary table of a model file or a Keras JSON architecture.
#include <CLI/CLI.hpp>

#include <iostream>

#include "commands.hpp"
#include "model_files.hpp"

namespace convkit::cli {

void add_summary_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("summary", "Print the layers, output shapes and parameter counts of a model");
  auto path = std::make_shared<std::string>();
  cmd->add_option("MODEL", *path, "A model file (.safetensors) or a Keras JSON architecture (.json)")->required();
  cmd->callback([path] { std::cout << load_any_model("MODEL", *path).summary(); });
}

}  // namespace convkit::cli
