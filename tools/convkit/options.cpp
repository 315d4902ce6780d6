// The option syntax shared by every convkit subcommand (see options.hpp).
#include "options.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "convkit/error.hpp"

namespace convkit::cli {

namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// Splits "a,b,c" into its fields, keeping empty ones so that "3," and ",3" are rejected rather than read as "3".
std::vector<std::string_view> split(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

// The fields of a list option, each parsed as an integer in [min_value, INT_MAX]. Field errors quote both the
// field and the whole text, so "--padding: '-1' must be non-negative (in '1,-1')" points at the culprit.
std::vector<int64_t> parse_list(std::string_view option, std::string_view text, int64_t min_value) {
  if (text.empty()) throw Error(cat(option, ": empty value"));
  const std::vector<std::string_view> parts = split(text);
  std::vector<int64_t> values;
  for (std::string_view part : parts) {
    if (part.empty()) throw Error(cat(option, ": empty field in '", text, "'"));
    if (parts.size() == 1) {
      values.push_back(parse_int(option, part, min_value, kIntMax));
      continue;
    }
    try {
      values.push_back(parse_int(option, part, min_value, kIntMax));
    } catch (const Error& e) {
      throw Error(cat(e.what(), " (in '", text, "')"));
    }
  }
  return values;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

int to_int(int64_t v) { return static_cast<int>(v); }  // callers have range-checked v against INT_MAX

}  // namespace

int64_t parse_int(std::string_view option, std::string_view text, int64_t min_value, int64_t max_value) {
  if (text.empty()) throw Error(cat(option, ": empty value"));
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec == std::errc::result_out_of_range)
    throw Error(cat(option, ": '", text, "' is out of range (must be between ", min_value, " and ", max_value, ")"));
  if (ec != std::errc() || ptr != end) throw Error(cat(option, ": '", text, "' is not an integer"));
  if (v < min_value) {
    if (min_value == 1) throw Error(cat(option, ": '", text, "' must be positive"));
    if (min_value == 0) throw Error(cat(option, ": '", text, "' must be non-negative"));
    throw Error(cat(option, ": '", text, "' must be at least ", min_value));
  }
  if (v > max_value)
    throw Error(cat(option, ": '", text, "' is out of range (must be between ", min_value, " and ", max_value, ")"));
  return v;
}

int parse_positive(std::string_view option, std::string_view text) {
  return to_int(parse_int(option, text, 1, kIntMax));
}

double parse_real(std::string_view option, std::string_view text, double min_value, double max_value) {
  if (text.empty()) throw Error(cat(option, ": empty value"));
  double v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v)) throw Error(cat(option, ": '", text, "' is not a number"));
  if (v < min_value || v > max_value)
    throw Error(cat(option, ": '", text, "' is out of range (must be between ", min_value, " and ", max_value, ")"));
  return v;
}

Size2 parse_size2(std::string_view option, std::string_view text) {
  const std::vector<int64_t> v = parse_list(option, text, 1);
  if (v.size() == 1) return {to_int(v[0]), to_int(v[0])};
  if (v.size() == 2) return {to_int(v[0]), to_int(v[1])};
  throw Error(cat(option, ": expected N or H,W, got '", text, "' (", v.size(), " values)"));
}

Padding parse_padding(std::string_view option, std::string_view text) {
  const std::string name = lower(text);
  if (name == "valid") return Padding::valid();
  if (name == "same") return Padding::same();
  // Anything else must be numbers; a word gets a message listing the choices rather than "not an integer".
  if (!text.empty() && text.find_first_not_of("0123456789,-") != std::string_view::npos)
    throw Error(cat(option, ": unknown padding '", text, "' (expected valid, same, P, PH,PW or T,B,L,R)"));
  const std::vector<int64_t> v = parse_list(option, text, 0);
  switch (v.size()) {
    case 1: return Padding::explicit_pad(to_int(v[0]), to_int(v[0]), to_int(v[0]), to_int(v[0]));
    case 2: return Padding::symmetric(to_int(v[0]), to_int(v[1]));
    case 4: return Padding::explicit_pad(to_int(v[0]), to_int(v[1]), to_int(v[2]), to_int(v[3]));
    default:
      throw Error(cat(option, ": expected valid, same, P, PH,PW or T,B,L,R, got '", text, "' (", v.size(),
                      " values)"));
  }
}

PaddingMode parse_padding_mode(std::string_view option, std::string_view text) {
  try {
    return convkit::parse_padding_mode(text);
  } catch (const Error&) {
    throw Error(cat(option, ": unknown padding mode '", text, "' (expected zeros, reflect, replicate or circular)"));
  }
}

Activation parse_activation(std::string_view option, std::string_view text) {
  try {
    return convkit::parse_activation(text);
  } catch (const Error&) {
    throw Error(cat(option, ": unknown activation '", text, "' (expected linear, relu, tanh or sigmoid)"));
  }
}

Shape parse_dims(std::string_view option, std::string_view text, int rank) {
  const std::vector<int64_t> v = parse_list(option, text, 1);
  if (static_cast<int>(v.size()) != rank)
    throw Error(cat(option, ": expected ", rank, " comma-separated dimensions, got '", text, "' (", v.size(),
                    " values)"));
  return Shape(v.begin(), v.end());
}

DataFormat parse_data_format(std::string_view option, std::string_view text) {
  if (text == "channels_last") return DataFormat::channels_last;
  if (text == "channels_first") return DataFormat::channels_first;
  throw Error(cat(option, ": unknown data format '", text, "' (expected channels_last or channels_first)"));
}

KernelLayout parse_kernel_layout(std::string_view option, std::string_view text) {
  if (text == "hwio") return KernelLayout::hwio;
  if (text == "oihw") return KernelLayout::oihw;
  throw Error(cat(option, ": unknown kernel layout '", text, "' (expected hwio or oihw)"));
}

void ConvOptions::add_to(CLI::App& app) {
  app.add_option("--filters", filters, "Number of output channels (Conv2D; not with --depthwise)")->type_name("F");
  app.add_option("--kernel-size", kernel_size, "Kernel size")->type_name("N|H,W");
  app.add_option("--strides", strides, "Strides")->type_name("N|H,W")->capture_default_str();
  app.add_option("--padding", padding, "valid, same (TensorFlow-exact), P (all sides), PH,PW or T,B,L,R")
      ->type_name("SPEC")
      ->capture_default_str();
  app.add_option("--padding-mode", padding_mode, "What padded cells hold")
      ->type_name("zeros|reflect|replicate|circular")
      ->capture_default_str();
  app.add_option("--dilation-rate", dilation_rate, "Dilation")->type_name("N|H,W")->capture_default_str();
  app.add_option("--groups", groups, "Split input channels and filters into G groups (default 1)")->type_name("G");
  // Two flags rather than CLI11's "--use-bias,!--no-bias": conv2d needs to know whether either was given.
  app.add_flag("--use-bias", use_bias, "Use a bias (the default; conv2d then needs --bias)");
  app.add_flag("--no-bias", no_bias, "No bias");
  app.add_option("--activation", activation, "Activation after the bias")
      ->type_name("linear|relu|tanh|sigmoid")
      ->capture_default_str();
  app.add_flag("--depthwise", depthwise, "DepthwiseConv2D: one bank of --depth-multiplier filters per channel");
  app.add_option("--depth-multiplier", depth_multiplier, "Filters per input channel with --depthwise (default 1)")
      ->type_name("M");
  app.add_option("--data-format", data_format, "Activation layout: NHWC (channels_last) or NCHW (channels_first)")
      ->type_name("channels_last|channels_first")
      ->capture_default_str();
}

void ConvOptions::note_given(const CLI::App& app) {
  has_filters = app.count("--filters") > 0;
  has_kernel_size = app.count("--kernel-size") > 0;
  has_groups = app.count("--groups") > 0;
  has_depth_multiplier = app.count("--depth-multiplier") > 0;
}

ConvSettings parse(const ConvOptions& o) {
  ConvSettings s;
  if (o.has_filters) s.filters = parse_positive("--filters", o.filters);
  if (o.has_kernel_size) s.kernel_size = parse_size2("--kernel-size", o.kernel_size);
  s.strides = parse_size2("--strides", o.strides);
  s.padding = parse_padding("--padding", o.padding);
  s.padding_mode = parse_padding_mode("--padding-mode", o.padding_mode);
  s.dilation_rate = parse_size2("--dilation-rate", o.dilation_rate);
  if (o.has_groups) s.groups = parse_positive("--groups", o.groups);
  if (o.use_bias && o.no_bias) throw Error("--use-bias and --no-bias contradict each other");
  if (o.use_bias) s.use_bias = true;
  if (o.no_bias) s.use_bias = false;
  s.activation = parse_activation("--activation", o.activation);
  s.depthwise = o.depthwise;
  if (o.has_depth_multiplier) s.depth_multiplier = parse_positive("--depth-multiplier", o.depth_multiplier);
  s.data_format = parse_data_format("--data-format", o.data_format);
  if (s.depthwise && s.filters)
    throw Error("--filters cannot be used with --depthwise (the filters are in_channels * --depth-multiplier)");
  if (s.depthwise && s.groups) throw Error("--groups cannot be used with --depthwise (the groups are the channels)");
  if (!s.depthwise && s.depth_multiplier) throw Error("--depth-multiplier needs --depthwise");
  return s;
}

Conv2dParams to_conv2d_params(const ConvSettings& s, int64_t in_channels) {
  if (!s.kernel_size) throw Error("--kernel-size is required");
  if (s.depthwise) {
    DepthwiseConv2dParams d;
    d.kernel_size = *s.kernel_size;
    d.strides = s.strides;
    d.padding = s.padding;
    d.depth_multiplier = s.depth_multiplier.value_or(1);
    d.dilation_rate = s.dilation_rate;
    d.use_bias = s.use_bias.value_or(true);
    d.activation = s.activation;
    d.padding_mode = s.padding_mode;
    return depthwise_to_conv2d(d, in_channels);
  }
  if (!s.filters) throw Error("--filters is required (or --depthwise with --depth-multiplier)");
  Conv2dParams p;
  p.filters = *s.filters;
  p.kernel_size = *s.kernel_size;
  p.strides = s.strides;
  p.padding = s.padding;
  p.dilation_rate = s.dilation_rate;
  p.groups = s.groups.value_or(1);
  p.use_bias = s.use_bias.value_or(true);
  p.activation = s.activation;
  p.padding_mode = s.padding_mode;
  return p;
}

Shape to_nhwc(const Shape& s, DataFormat format) {
  if (format == DataFormat::channels_last || s.size() != 4) return s;
  return {s[0], s[2], s[3], s[1]};
}

Shape from_nhwc(const Shape& s, DataFormat format) {
  if (format == DataFormat::channels_last || s.size() != 4) return s;
  return {s[0], s[3], s[1], s[2]};
}

}  // namespace convkit::cli
