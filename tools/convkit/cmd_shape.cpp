// convkit shape — Keras' compute_output_shape for one Conv2D / DepthwiseConv2D, from the input shape alone.
//
//   convkit shape --input-shape 10,8,16,3 --filters 5 --kernel-size 3 --strides 2 --padding valid
//   (10, 3, 7, 5)
//
// --verbose adds the padding split, the dilated kernel extent, the kernel shape and the parameter count.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "convkit/conv.hpp"
// The dilated kernel extent is shape arithmetic, which lives in one place only (DESIGN.md §2): reuse it.
#include "core/shape.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {

struct ShapeOptions {
  std::string input_shape;
  ConvOptions conv;
  bool verbose = false;
};

std::string run_shape(const ShapeOptions& o) {
  const ConvSettings s = parse(o.conv);
  const Shape in = to_nhwc(parse_dims("--input-shape", o.input_shape, 4), s.data_format);
  const Conv2dParams p = to_conv2d_params(s, in[3]);
  const Conv2dGeometry g = conv2d_geometry(p, in);
  // Everything is computed before anything is printed, so an error leaves stdout empty.
  std::ostringstream out;
  out << shape_to_string(from_nhwc(g.output_shape(), s.data_format)) << "\n";
  if (o.verbose) {
    out << "padding (top/bottom/left/right): " << g.pad_top << "/" << g.pad_bottom << "/" << g.pad_left << "/"
        << g.pad_right << " (" << to_string(p.padding_mode) << ")\n";
    out << "effective kernel size (with dilation): "
        << shape_to_string({core::effective_kernel(g.kh, g.dh), core::effective_kernel(g.kw, g.dw)}) << "\n";
    // Keras' kernel variable: (kh, kw, in_channels, depth_multiplier) for DepthwiseConv2D, HWIO otherwise.
    const Shape kernel = s.depthwise ? Shape{g.kh, g.kw, g.ic, g.oc / g.ic} : g.kernel_shape();
    out << "kernel shape: " << shape_to_string(kernel)
        << (s.depthwise ? " (kernel_h, kernel_w, in_channels, depth_multiplier)"
                        : " (kernel_h, kernel_w, in_channels / groups, filters)")
        << "\n";
    out << "parameters: " << conv2d_param_count(p, g.ic) << "\n";
  }
  return out.str();
}

}  // namespace

void add_shape_command(CLI::App& app) {
  auto opts = std::make_shared<ShapeOptions>();
  CLI::App* sub = app.add_subcommand("shape", "Print the output shape of a Conv2D or DepthwiseConv2D layer");
  sub->add_option("--input-shape", opts->input_shape, "Input shape (N,C,H,W with channels_first)")
      ->type_name("N,H,W,C")
      ->required();
  opts->conv.add_to(*sub);
  sub->add_flag("--verbose,-v", opts->verbose, "Also print the padding split, kernel shape and parameter count");
  sub->callback([opts, sub] {
    opts->conv.note_given(*sub);
    std::cout << run_shape(*opts) << std::flush;
  });
}

}  // namespace convkit::cli
