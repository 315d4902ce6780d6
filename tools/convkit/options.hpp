// tools/convkit/options.hpp — the option syntax every convkit subcommand shares: one strict parser per syntax,
// and the Conv2D option group (registered on a CLI11 subcommand, then resolved into convkit parameters).
//
// Every parser throws convkit::Error with a message naming the option and the offending text, e.g.
// "--kernel-size: '3x' is not an integer"; main() prefixes it with "convkit <subcommand>: error: ".
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "convkit/conv.hpp"
#include "convkit/tensor.hpp"
#include "core/strings.hpp"

namespace CLI {
class App;
}

namespace convkit::cli {

// Message building: cat("--filters ", 5, " does not match ..."), the library's own.
using core::cat;

// One integer in [min_value, max_value]: decimal digits with an optional leading '-', nothing else (no spaces,
// no '+', no suffix). Out-of-range and overflowing values are errors, never wrapped or clamped.
int64_t parse_int(std::string_view option, std::string_view text, int64_t min_value, int64_t max_value);
// A positive int (sizes, filters, groups, multipliers).
int parse_positive(std::string_view option, std::string_view text);
// A finite real number in [min_value, max_value] ("1e-3", "0.9"); anything else names the option and the text.
double parse_real(std::string_view option, std::string_view text, double min_value, double max_value);
// "N" (both axes) or "H,W"; each value positive.
Size2 parse_size2(std::string_view option, std::string_view text);
// "valid", "same" (case-insensitive, as in Keras), "P" (all sides), "PH,PW" (PyTorch's symmetric per axis) or
// "T,B,L,R"; explicit pads non-negative.
Padding parse_padding(std::string_view option, std::string_view text);
// zeros | reflect | replicate | circular.
PaddingMode parse_padding_mode(std::string_view option, std::string_view text);
// linear (or none) | relu | tanh | sigmoid.
Activation parse_activation(std::string_view option, std::string_view text);
// A comma-separated list of exactly `rank` positive dimensions, e.g. "10,8,16,3".
Shape parse_dims(std::string_view option, std::string_view text, int rank);

// Keras' data_format: channels_last = NHWC activations (the default), channels_first = NCHW.
enum class DataFormat { channels_last, channels_first };
DataFormat parse_data_format(std::string_view option, std::string_view text);
// Kernel layout on disk: hwio (Keras) or oihw (PyTorch).
enum class KernelLayout { hwio, oihw };
KernelLayout parse_kernel_layout(std::string_view option, std::string_view text);

// The Conv2D / DepthwiseConv2D options as typed on the command line. Values stay text until parse() so that
// every syntax error gets the same message format (and not CLI11's own conversion messages).
struct ConvOptions {
  std::string filters, kernel_size, strides = "1", padding = "valid", padding_mode = "zeros", dilation_rate = "1",
              groups, activation = "linear", depth_multiplier, data_format = "channels_last";
  bool use_bias = false, no_bias = false, depthwise = false;
  // Whether the options without a default were given at all: "--filters ''" is an empty value, not an absent one.
  bool has_filters = false, has_kernel_size = false, has_groups = false, has_depth_multiplier = false;

  // Registers --filters, --kernel-size, --strides, --padding, --padding-mode, --dilation-rate, --groups,
  // --use-bias / --no-bias, --activation, --depthwise, --depth-multiplier and --data-format on `app`.
  void add_to(CLI::App& app);
  // Sets the has_* fields from what CLI11 parsed: call before parse(), from the subcommand's callback.
  void note_given(const CLI::App& app);
};

// The options after parsing. Values the user did not give are empty: a subcommand may infer them (conv2d reads
// filters and kernel size from the kernel file) or require them (shape).
struct ConvSettings {
  std::optional<int> filters;
  std::optional<Size2> kernel_size;
  Size2 strides{1, 1};
  Padding padding = Padding::valid();
  PaddingMode padding_mode = PaddingMode::zeros;
  Size2 dilation_rate{1, 1};
  std::optional<int> groups;
  std::optional<bool> use_bias;  // --use-bias -> true, --no-bias -> false
  Activation activation = Activation::none;
  bool depthwise = false;
  std::optional<int> depth_multiplier;
  DataFormat data_format = DataFormat::channels_last;
};

// Parses every field and rejects combinations that cannot mean anything (--filters or --groups with
// --depthwise, --depth-multiplier without it, --use-bias with --no-bias).
ConvSettings parse(const ConvOptions& o);

// The Conv2D parameters for an input with `in_channels` channels, once filters, kernel size and (for depthwise)
// the depth multiplier are known. For depthwise, goes through DepthwiseConv2dParams + depthwise_to_conv2d.
// use_bias defaults to true (Keras) when the settings leave it open.
Conv2dParams to_conv2d_params(const ConvSettings& s, int64_t in_channels);

// An NHWC shape from the user's shape in `format`, and back.
Shape to_nhwc(const Shape& shape, DataFormat format);
Shape from_nhwc(const Shape& nhwc, DataFormat format);

}  // namespace convkit::cli
