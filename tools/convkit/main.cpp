// convkit — the command-line tool. main() only wires the subcommands together and turns every failure into
// one line on stderr, "convkit <subcommand>: error: <message>", with exit status 2 (usage errors included),
// so that scripts can tell a refused input (2) from a crash.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"

// The build passes the project version (CMake's PROJECT_VERSION); tests/cli checks the two agree.
#ifndef CONVKIT_VERSION
#error "CONVKIT_VERSION comes from CMake (PROJECT_VERSION)"
#endif

namespace {

constexpr int kExitError = 2;

// "convkit shape: error: " when a subcommand was selected (even if its own parsing failed), else "convkit: error: ".
std::string error_prefix(const CLI::App& app) {
  std::string prefix = "convkit";
  for (const CLI::App* sub = &app; sub != nullptr;) {
    const std::vector<CLI::App*> subs = sub->get_subcommands();
    sub = subs.empty() ? nullptr : subs.front();
    if (sub) prefix += " " + sub->get_name();
  }
  return prefix + ": error: ";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"convkit: convolutional neural network layers, exact and fast", "convkit"};
  app.set_version_flag("--version", std::string("convkit ") + CONVKIT_VERSION);
  app.require_subcommand(1);
  convkit::cli::add_shape_command(app);
  convkit::cli::add_conv2d_command(app);
  convkit::cli::add_summary_command(app);
  convkit::cli::add_train_command(app);
  convkit::cli::add_evaluate_command(app);
  convkit::cli::add_predict_command(app);
  convkit::cli::add_bench_command(app);
  convkit::cli::add_filter_command(app);
  convkit::cli::add_visualize_command(app);
  try {
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help and --version (CallForHelp / CallForVersion) print to stdout and exit 0
  } catch (const CLI::ParseError& e) {
    // CLI11 reports "convkit bogus" and "convkit --bogus" as a missing subcommand; name what the user typed.
    if (app.get_subcommands().empty() && argc > 1) {
      std::cerr << "convkit: error: unknown " << (argv[1][0] == '-' ? "option" : "subcommand") << " '" << argv[1]
                << "' (expected a subcommand:";
      const auto all = [](const CLI::App*) { return true; };
      for (const CLI::App* sub : std::as_const(app).get_subcommands(all)) std::cerr << " " << sub->get_name();
      std::cerr << ")\n(run with --help for the usage)\n";
      return kExitError;
    }
    std::cerr << error_prefix(app) << e.what() << "\n(run with --help for the usage)\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << error_prefix(app) << e.what() << "\n";
    return kExitError;
  }
}
