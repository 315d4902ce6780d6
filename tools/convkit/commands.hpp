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

}  // namespace convkit::cli
