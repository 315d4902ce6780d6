// tools/convkit/commands.hpp — one registration function per subcommand (one file each: cmd_<name>.cpp).
// Each adds its subcommand to the app with a callback that does the work; errors are thrown as
// convkit::Error and reported by main() as "convkit <subcommand>: error: <message>", exit status 2.
#pragma once

namespace CLI {
class App;
}

namespace convkit::cli {

void add_shape_command(CLI::App& app);   // cmd_shape.cpp
void add_conv2d_command(CLI::App& app);  // cmd_conv2d.cpp
void add_summary_command(CLI::App& app);   // cmd_summary.cpp
void add_train_command(CLI::App& app);     // cmd_train.cpp
void add_evaluate_command(CLI::App& app);  // cmd_evaluate.cpp
void add_predict_command(CLI::App& app);   // cmd_predict.cpp
void add_bench_command(CLI::App& app);     // cmd_bench.cpp
void add_filter_command(CLI::App& app);     // cmd_filter.cpp
void add_visualize_command(CLI::App& app);  // cmd_visualize.cpp

}  // namespace convkit::cli
