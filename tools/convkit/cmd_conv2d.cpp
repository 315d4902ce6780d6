// convkit conv2d — one Conv2D / DepthwiseConv2D over .npy float32 tensors.
//
//   convkit conv2d --input x.npy --kernel w.npy [--bias b.npy] [conv options] --output y.npy [--explain]
//
// The kernel file fixes filters and kernel size (given options must agree with it). Layouts are explicit:
// --data-format channels_first reads NCHW and writes NCHW, --kernel-layout oihw reads PyTorch's weights.
// Everything is read, checked and computed before the output is written (atomically), so a failure leaves an
// existing output file as it was and creates none.
#include <CLI/CLI.hpp>

#include <iostream>
#include <limits>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {

struct Conv2dOptions {
  std::string input, kernel, bias, output;
  std::string kernel_layout = "hwio";
  ConvOptions conv;
  bool explain = false;
  bool has_bias = false;  // "--bias ''" is a bias file that cannot be read, not a missing bias
};

Tensor read_tensor(const char* option, const std::string& path) {
  try {
    return read_npy(path);
  } catch (const Error& e) {
    throw Error(cat(option, ": ", e.what()));
  }
}

// HWIO (kh, kw, i, o) shape in the layout the user wrote, for messages.
Shape in_layout(const Shape& hwio, KernelLayout layout) {
  return layout == KernelLayout::hwio ? hwio : Shape{hwio[3], hwio[2], hwio[0], hwio[1]};
}

int to_int(const char* what, int64_t v) {
  if (v > std::numeric_limits<int>::max()) throw Error(cat("--kernel: ", what, " ", v, " is too large"));
  return static_cast<int>(v);
}

// The kernel as the grouped Conv2D's HWIO (kh, kw, in_channels / groups, filters), with the filters, kernel size
// and depth multiplier it implies written into `s` (after checking them against the options given).
//   Conv2D     hwio (kh, kw, C/G, F)     oihw (F, C/G, kh, kw)
//   depthwise  hwio (kh, kw, C, M)       oihw (C*M, 1, kh, kw)   -> HWIO (kh, kw, 1, C*M)
Tensor kernel_to_hwio(Tensor w, KernelLayout layout, int64_t channels, ConvSettings& s) {
  const bool hwio = layout == KernelLayout::hwio;
  const char* names = !s.depthwise ? (hwio ? "(kernel_h, kernel_w, in_channels / groups, filters)"
                                           : "(filters, in_channels / groups, kernel_h, kernel_w)")
                                   : (hwio ? "(kernel_h, kernel_w, in_channels, depth_multiplier)"
                                           : "(in_channels * depth_multiplier, 1, kernel_h, kernel_w)");
  const Shape shown = w.shape();  // as the user wrote it, for messages
  if (w.rank() != 4)
    throw Error(cat("--kernel: expected a 4-D ", hwio ? "hwio" : "oihw", " kernel ", names, ", got shape ",
                    shape_to_string(shown)));
  if (!hwio) w = oihw_to_hwio(w);
  // From here w is (kh, kw, i, o); for a depthwise kernel i is C (hwio) or 1 (oihw), o is M (hwio) or C*M (oihw).
  if (s.depthwise) {
    const bool fits = hwio ? w.dim(2) == channels : w.dim(2) == 1 && w.dim(3) % channels == 0;
    if (!fits)
      throw Error(cat("--kernel: depthwise kernel shape ", shape_to_string(shown), " ", names,
                      " does not fit the ", channels, " input channels"));
    const int multiplier = to_int("depth multiplier", hwio ? w.dim(3) : w.dim(3) / channels);
    if (s.depth_multiplier && *s.depth_multiplier != multiplier)
      throw Error(cat("--depth-multiplier ", *s.depth_multiplier, " does not match the kernel shape ",
                      shape_to_string(shown), " ", names));
    s.depth_multiplier = multiplier;
    if (hwio) w.reshape({w.dim(0), w.dim(1), 1, w.dim(2) * w.dim(3)});  // same memory, grouped-Conv2D view
  } else {
    const int filters = to_int("filters", w.dim(3));
    if (s.filters && *s.filters != filters)
      throw Error(cat("--filters ", *s.filters, " does not match the kernel shape ", shape_to_string(shown), " ",
                      names));
    s.filters = filters;
  }
  const Size2 ks{to_int("kernel height", w.dim(0)), to_int("kernel width", w.dim(1))};
  if (s.kernel_size && *s.kernel_size != ks)
    throw Error(cat("--kernel-size ", s.kernel_size->h, ",", s.kernel_size->w, " does not match the kernel shape ",
                    shape_to_string(shown), " ", names));
  s.kernel_size = ks;
  return w;
}

void run_conv2d(const Conv2dOptions& o) {
  ConvSettings s = parse(o.conv);
  const KernelLayout layout = parse_kernel_layout("--kernel-layout", o.kernel_layout);
  const bool nchw = s.data_format == DataFormat::channels_first;

  Tensor x = read_tensor("--input", o.input);
  if (x.rank() != 4)
    throw Error(cat("--input: expected a 4-D tensor ", nchw ? "(batch, channels, height, width)" :
                    "(batch, height, width, channels)", ", got shape ", shape_to_string(x.shape())));
  if (nchw) x = nchw_to_nhwc(x);
  const int64_t channels = x.dim(3);
  if (channels <= 0) throw Error(cat("--input: no channels in shape ", shape_to_string(x.shape())));

  const Tensor w = kernel_to_hwio(read_tensor("--kernel", o.kernel), layout, channels, s);

  std::optional<Tensor> b;
  if (o.has_bias) {
    if (s.use_bias == false) throw Error("--bias was given together with --no-bias");
    b = read_tensor("--bias", o.bias);
  } else if (s.use_bias == true) {
    throw Error("--use-bias needs a bias file (--bias b.npy)");
  }
  s.use_bias = b.has_value();

  const Conv2dParams p = to_conv2d_params(s, channels);
  const Conv2dPlan plan = Conv2dPlan::create(p, x.shape());  // rejects every inconsistent configuration
  if (w.shape() != plan.geometry().kernel_shape())  // only in_channels / groups is left to disagree
    throw Error(cat("--kernel: shape ", shape_to_string(in_layout(w.shape(), layout)), " does not match ", channels,
                    " input channels with groups ", p.groups, ": expected ",
                    shape_to_string(in_layout(plan.geometry().kernel_shape(), layout)), " (", o.kernel_layout, ")"));
  if (b && b->shape() != Shape{p.filters})
    throw Error(cat("--bias: shape ", shape_to_string(b->shape()), " does not match the ", p.filters,
                    " filters: expected (", p.filters, ",)"));
  if (o.explain) std::cerr << plan.explain() << std::flush;

  // The shapes are checked above, so the plan runs directly (conv2d_forward() would plan a second time).
  Tensor y(plan.geometry().output_shape());
  plan.forward(x.data(), w.data(), b ? b->data() : nullptr, y.data());
  if (nchw) y = nhwc_to_nchw(y);
  try {
    write_npy(o.output, y);
  } catch (const Error& e) {
    throw Error(cat("--output: ", e.what()));
  }
}

}  // namespace

void add_conv2d_command(CLI::App& app) {
  auto opts = std::make_shared<Conv2dOptions>();
  CLI::App* sub = app.add_subcommand("conv2d", "Apply one Conv2D or DepthwiseConv2D to .npy float32 tensors");
  sub->add_option("--input", opts->input, "Input .npy, NHWC (NCHW with --data-format channels_first)")
      ->type_name("X.npy")
      ->required();
  sub->add_option("--kernel", opts->kernel, "Kernel .npy in --kernel-layout")->type_name("W.npy")->required();
  sub->add_option("--bias", opts->bias, "Bias .npy (filters,); its presence sets use_bias")->type_name("B.npy");
  sub->add_option("--output", opts->output, "Output .npy, written atomically, in the input's data format")
      ->type_name("Y.npy")
      ->required();
  sub->add_option("--kernel-layout", opts->kernel_layout,
                  "hwio (Keras: kh,kw,in/groups,filters) or oihw (PyTorch: filters,in/groups,kh,kw); with "
                  "--depthwise: (kh,kw,in,multiplier) or (in*multiplier,1,kh,kw)")
      ->type_name("hwio|oihw")
      ->capture_default_str();
  opts->conv.add_to(*sub);
  sub->add_flag("--explain", opts->explain, "Print the plan (geometry, algorithm choice) to stderr");
  sub->callback([opts, sub] {
    opts->conv.note_given(*sub);
    opts->has_bias = sub->count("--bias") > 0;
    run_conv2d(*opts);
  });
}

}  // namespace convkit::cli
