// Table tests: every inconsistent Conv2D configuration is a convkit::Error whose message names the parameter and
// the offending values (DESIGN.md §1), and the valid edge configurations next to them are accepted.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/tensor.hpp"
#include "expect_error.hpp"

namespace convkit {
namespace {

using convkit::test_support::expect_error;

// A valid starting point that each row perturbs: 3x3, 4 filters, stride 1, valid.
Conv2dParams base() { return Conv2dParams{.filters = 4, .kernel_size = {3, 3}}; }

struct BadConfig {
  std::string description;
  Conv2dParams params;
  Shape input;                      // NHWC
  std::vector<std::string> pieces;  // substrings the message must contain
};

std::vector<BadConfig> bad_configs() {
  std::vector<BadConfig> rows;
  auto add = [&](std::string d, auto&& edit, Shape in, std::vector<std::string> pieces) {
    Conv2dParams p = base();
    edit(p);
    rows.push_back({std::move(d), p, std::move(in), std::move(pieces)});
  };
  const Shape in{2, 8, 8, 4};
  add("zero filters", [](Conv2dParams& p) { p.filters = 0; }, in, {"filters", "0"});
  add("negative filters", [](Conv2dParams& p) { p.filters = -7; }, in, {"filters", "-7"});
  add("zero kernel height", [](Conv2dParams& p) { p.kernel_size = {0, 3}; }, in, {"kernel_size", "(0, 3)"});
  add("negative kernel width", [](Conv2dParams& p) { p.kernel_size = {3, -2}; }, in, {"kernel_size", "(3, -2)"});
  add("zero stride", [](Conv2dParams& p) { p.strides = {1, 0}; }, in, {"strides", "(1, 0)"});
  add("negative stride", [](Conv2dParams& p) { p.strides = {-3, 1}; }, in, {"strides", "(-3, 1)"});
  add("zero dilation", [](Conv2dParams& p) { p.dilation_rate = {0, 1}; }, in, {"dilation_rate", "(0, 1)"});
  add("negative dilation", [](Conv2dParams& p) { p.dilation_rate = {2, -5}; }, in, {"dilation_rate", "(2, -5)"});
  add("zero groups", [](Conv2dParams& p) { p.groups = 0; }, in, {"groups", "0"});
  add("negative groups", [](Conv2dParams& p) { p.groups = -2; }, in, {"groups", "-2"});
  add("negative explicit top pad", [](Conv2dParams& p) { p.padding = Padding::explicit_pad(-1, 0, 0, 0); }, in,
      {"padding", "-1"});
  add("negative explicit right pad", [](Conv2dParams& p) { p.padding = Padding::explicit_pad(1, 1, 1, -4); }, in,
      {"padding", "-4"});
  add("filters not divisible by groups",
      [](Conv2dParams& p) {
        p.filters = 6;
        p.groups = 4;
      },
      in, {"filters", "6", "groups", "4"});
  add("channels not divisible by groups",
      [](Conv2dParams& p) {
        p.filters = 6;
        p.groups = 2;
      },
      {1, 8, 8, 5}, {"channels", "5", "groups", "2"});
  add("kernel taller than the input (valid)", [](Conv2dParams& p) { p.kernel_size = {7, 3}; }, {1, 5, 9, 4},
      {"kernel", "height", "7", "5"});
  add("kernel wider than the input (valid)", [](Conv2dParams& p) { p.kernel_size = {3, 11}; }, {1, 9, 10, 4},
      {"kernel", "width", "11", "10"});
  add("kernel larger than the padded input (explicit)",
      [](Conv2dParams& p) {
        p.kernel_size = {8, 3};
        p.padding = Padding::explicit_pad(1, 1, 0, 0);
      },
      {1, 5, 5, 4}, {"kernel", "height", "8", "padded", "7"});
  add("dilated kernel larger than the input",
      [](Conv2dParams& p) { p.dilation_rate = {1, 4}; },  // k_eff = (3 - 1) * 4 + 1 = 9
      {1, 8, 8, 4}, {"kernel", "width", "9", "dilated", "4", "8"});
  add("reflect pad equal to the input (explicit)",
      [](Conv2dParams& p) {
        p.padding = Padding::explicit_pad(0, 0, 3, 0);
        p.padding_mode = PaddingMode::reflect;
      },
      {1, 8, 3, 4}, {"reflect", "3", "width"});
  add("reflect pad larger than the input (explicit, bottom)",
      [](Conv2dParams& p) {
        p.padding = Padding::explicit_pad(0, 4, 0, 0);
        p.padding_mode = PaddingMode::reflect;
      },
      {1, 3, 8, 4}, {"reflect", "bottom", "4", "height", "3"});
  add("reflect pad reaching the input via same",
      [](Conv2dParams& p) {
        p.kernel_size = {5, 5};  // same, stride 1: pads 2 / 2 on an input of 2
        p.padding = Padding::same();
        p.padding_mode = PaddingMode::reflect;
      },
      {1, 2, 8, 4}, {"reflect", "2", "height"});
  add("circular pad larger than the input",
      [](Conv2dParams& p) {
        p.padding = Padding::explicit_pad(0, 0, 0, 4);
        p.padding_mode = PaddingMode::circular;
      },
      {1, 8, 3, 4}, {"circular", "right", "4", "width", "3"});
  add("circular pad larger than the input via same",
      [](Conv2dParams& p) {
        p.kernel_size = {1, 7};  // same, stride 1: pads 3 / 3 on an input of 2
        p.padding = Padding::same();
        p.padding_mode = PaddingMode::circular;
      },
      {1, 8, 2, 4}, {"circular", "3", "width", "2"});
  add("3-D input", [](Conv2dParams&) {}, {8, 8, 4}, {"4-D", "(8, 8, 4)"});
  add("5-D input", [](Conv2dParams&) {}, {1, 1, 8, 8, 4}, {"4-D", "(1, 1, 8, 8, 4)"});
  add("zero batch", [](Conv2dParams&) {}, {0, 8, 8, 4}, {"batch", "(0, 8, 8, 4)"});
  add("zero input height", [](Conv2dParams&) {}, {1, 0, 8, 4}, {"height", "0"});
  add("zero input channels", [](Conv2dParams&) {}, {1, 8, 8, 0}, {"channels", "(1, 8, 8, 0)"});
  return rows;
}

TEST(Conv2dValidation, EveryInconsistentConfigurationIsANamedError) {
  const std::vector<BadConfig> rows = bad_configs();
  for (const BadConfig& row : rows) {
    SCOPED_TRACE(row.description);
    // Through all entry points that resolve a configuration against an input.
    expect_error([&] { conv2d_geometry(row.params, row.input); }, row.pieces);
    expect_error([&] { conv2d_output_shape(row.params, row.input); }, row.pieces);
    expect_error([&] { Conv2dPlan::create(row.params, row.input); }, row.pieces);
  }
}

TEST(Conv2dValidation, InputIndependentChecksFailInValidate) {
  // Rows whose problem lies in the parameters alone must be caught without any input shape.
  for (const BadConfig& row : bad_configs()) {
    const Conv2dParams& p = row.params;
    const bool param_problem = p.filters <= 0 || p.kernel_size.h <= 0 || p.kernel_size.w <= 0 || p.strides.h <= 0 ||
                               p.strides.w <= 0 || p.dilation_rate.h <= 0 || p.dilation_rate.w <= 0 ||
                               p.groups <= 0 || p.filters % std::max(p.groups, 1) != 0 ||
                               (p.padding.kind == PaddingKind::explicit_ &&
                                (p.padding.top < 0 || p.padding.bottom < 0 || p.padding.left < 0 ||
                                 p.padding.right < 0));
    SCOPED_TRACE(row.description);
    if (param_problem)
      expect_error([&] { validate(p); }, row.pieces);
    else
      EXPECT_NO_THROW(validate(p));
  }
}

// ---- tensor shape mismatches through conv2d_forward / conv2d_backward -------------------------------------------

struct BadTensors {
  std::string description;
  Conv2dParams params;
  Shape input, kernel;
  std::optional<Shape> bias;  // nullopt: no bias passed
  std::vector<std::string> pieces;
};

TEST(Conv2dValidation, KernelAndBiasMismatchesAreNamedErrors) {
  Conv2dParams no_bias = base();
  no_bias.use_bias = false;
  Conv2dParams grouped = base();
  grouped.groups = 2;
  const std::vector<BadTensors> rows = {
      {"kernel with swapped in/out channels", base(), {1, 6, 6, 2}, {3, 3, 4, 2}, Shape{4},
       {"kernel", "(3, 3, 4, 2)", "(3, 3, 2, 4)"}},
      {"kernel in OIHW layout", base(), {1, 6, 6, 2}, {4, 2, 3, 3}, Shape{4}, {"kernel", "(4, 2, 3, 3)", "(3, 3, 2, 4)"}},
      {"kernel of the wrong rank", base(), {1, 6, 6, 2}, {3, 3, 2}, Shape{4}, {"kernel", "(3, 3, 2)"}},
      {"grouped kernel with all input channels", grouped, {1, 6, 6, 4}, {3, 3, 4, 4}, Shape{4},
       {"kernel", "(3, 3, 4, 4)", "(3, 3, 2, 4)"}},
      {"bias missing with use_bias", base(), {1, 6, 6, 2}, {3, 3, 2, 4}, std::nullopt, {"use_bias", "bias"}},
      {"bias given with use_bias false", no_bias, {1, 6, 6, 2}, {3, 3, 2, 4}, Shape{4}, {"use_bias", "false"}},
      {"bias of the wrong length", base(), {1, 6, 6, 2}, {3, 3, 2, 4}, Shape{5}, {"bias", "(5,)", "(4,)"}},
      {"bias of the wrong rank", base(), {1, 6, 6, 2}, {3, 3, 2, 4}, Shape{1, 4}, {"bias", "(1, 4)", "(4,)"}},
  };
  for (const BadTensors& row : rows) {
    SCOPED_TRACE(row.description);
    const Tensor x(row.input, 1.0f), k(row.kernel, 1.0f);
    const Tensor b = row.bias ? Tensor(*row.bias, 1.0f) : Tensor();
    expect_error([&] { conv2d_forward(row.params, x, k, row.bias ? &b : nullptr); }, row.pieces);
  }
}

TEST(Conv2dValidation, BackwardChecksKernelAndOutputShapes) {
  const Conv2dParams p = base();
  const Tensor x({1, 6, 6, 2}, 1.0f), k({3, 3, 2, 4}, 1.0f);
  const Tensor good_y({1, 4, 4, 4}), bad_y({1, 4, 5, 4});
  expect_error([&] { conv2d_backward(p, x, Tensor({3, 3, 4, 2}), good_y, good_y); }, {"kernel", "(3, 3, 4, 2)"});
  expect_error([&] { conv2d_backward(p, x, k, bad_y, good_y); }, {"output", "(1, 4, 5, 4)", "(1, 4, 4, 4)"});
  expect_error([&] { conv2d_backward(p, x, k, good_y, bad_y); }, {"gradient", "(1, 4, 5, 4)", "(1, 4, 4, 4)"});
  EXPECT_NO_THROW(conv2d_backward(p, x, k, good_y, good_y));
}

TEST(Conv2dValidation, DepthwiseMultiplierMustBePositive) {
  for (int m : {0, -3}) {
    const DepthwiseConv2dParams d{.kernel_size = {3, 3}, .depth_multiplier = m};
    expect_error([&] { depthwise_to_conv2d(d, 4); }, {"depth_multiplier", std::to_string(m)});
  }
  const DepthwiseConv2dParams ok{.kernel_size = {3, 3}, .depth_multiplier = 2};
  expect_error([&] { depthwise_to_conv2d(ok, 0); }, {"channels", "0"});
  // The kernel size is checked too, once converted.
  const DepthwiseConv2dParams bad_kernel{.kernel_size = {0, 3}, .depth_multiplier = 1};
  expect_error([&] { validate(depthwise_to_conv2d(bad_kernel, 3)); }, {"kernel_size", "(0, 3)"});
}

TEST(Conv2dValidation, UnknownNamesListTheChoices) {
  expect_error([] { parse_padding_mode("mirror"); }, {"padding_mode", "'mirror'", "reflect", "circular"});
  expect_error([] { parse_padding_mode(""); }, {"padding_mode", "''"});
  expect_error([] { parse_padding_mode("Zeros"); }, {"padding_mode", "'Zeros'"});  // names are case-sensitive
  expect_error([] { parse_activation("softmax"); }, {"activation", "'softmax'", "relu", "sigmoid"});
  EXPECT_EQ(parse_padding_mode("reflect"), PaddingMode::reflect);
  EXPECT_EQ(parse_padding_mode("circular"), PaddingMode::circular);
  EXPECT_EQ(parse_activation("linear"), Activation::none);
  EXPECT_EQ(parse_activation("tanh"), Activation::tanh);
  for (PaddingMode m : {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate, PaddingMode::circular})
    EXPECT_EQ(parse_padding_mode(to_string(m)), m);
  for (Activation a : {Activation::none, Activation::relu, Activation::tanh, Activation::sigmoid})
    EXPECT_EQ(parse_activation(to_string(a)), a);
}

// ---- valid edge configurations that must be accepted ---------------------------------------------------------

struct GoodConfig {
  std::string description;
  Conv2dParams params;
  Shape input;
  Shape output;  // derived by hand from DESIGN.md §1
};

TEST(Conv2dValidation, ValidEdgeConfigurationsAreAccepted) {
  auto with = [](auto&& edit) {
    Conv2dParams p = base();
    edit(p);
    return p;
  };
  const std::vector<GoodConfig> rows = {
      {"reflect pad == in - 1",
       with([](Conv2dParams& p) {
         p.padding = Padding::explicit_pad(2, 2, 2, 2);
         p.padding_mode = PaddingMode::reflect;
       }),
       {1, 3, 3, 4}, {1, 5, 5, 4}},  // 3 + 4 - 3 + 1
      {"circular pad == in",
       with([](Conv2dParams& p) {
         p.padding = Padding::explicit_pad(3, 3, 0, 0);
         p.padding_mode = PaddingMode::circular;
       }),
       {1, 3, 3, 4}, {1, 7, 1, 4}},  // height 3 + 6 - 3 + 1, width 3 - 3 + 1
      {"kernel == padded input",
       with([](Conv2dParams& p) {
         p.kernel_size = {5, 4};
         p.padding = Padding::explicit_pad(1, 1, 0, 1);
       }),
       {1, 3, 3, 4}, {1, 1, 1, 4}},
      {"kernel == input (valid)", with([](Conv2dParams& p) { p.kernel_size = {8, 8}; }), {2, 8, 8, 4}, {2, 1, 1, 4}},
      {"1x1 input, 3x3 kernel, same", with([](Conv2dParams& p) { p.padding = Padding::same(); }), {1, 1, 1, 4},
       {1, 1, 1, 4}},
      {"1x1 input, 3x3 kernel, same, replicate",
       with([](Conv2dParams& p) {
         p.padding = Padding::same();
         p.padding_mode = PaddingMode::replicate;
       }),
       {1, 1, 1, 4}, {1, 1, 1, 4}},
      {"1x1 input, 3x3 kernel, same, circular (pad 1 == in)",
       with([](Conv2dParams& p) {
         p.padding = Padding::same();
         p.padding_mode = PaddingMode::circular;
       }),
       {1, 1, 1, 4}, {1, 1, 1, 4}},
      {"1x1 input, 1x1 kernel, same, reflect (no padding needed)",
       with([](Conv2dParams& p) {
         p.kernel_size = {1, 1};
         p.padding = Padding::same();
         p.padding_mode = PaddingMode::reflect;
       }),
       {1, 1, 1, 4}, {1, 1, 1, 4}},
      {"stride larger than the input",
       with([](Conv2dParams& p) {
         p.kernel_size = {1, 1};
         p.strides = {5, 9};
       }),
       {1, 4, 4, 4}, {1, 1, 1, 4}},
      {"strides and dilation together (Keras forbids, convkit allows)",
       with([](Conv2dParams& p) {
         p.strides = {2, 2};
         p.dilation_rate = {2, 2};
       }),
       {1, 9, 9, 4}, {1, 3, 3, 4}},  // k_eff 5: floor(4 / 2) + 1
      {"groups == channels == filters",
       with([](Conv2dParams& p) { p.groups = 4; }), {1, 3, 3, 4}, {1, 1, 1, 4}},
      {"huge zero padding", with([](Conv2dParams& p) { p.padding = Padding::explicit_pad(10, 0, 0, 10); }),
       {1, 1, 1, 4}, {1, 9, 9, 4}},
  };
  for (const GoodConfig& row : rows) {
    SCOPED_TRACE(row.description);
    Shape out;
    EXPECT_NO_THROW(out = conv2d_output_shape(row.params, row.input));
    EXPECT_EQ(out, row.output);
    // And it runs: the forward pass over ones must give finite numbers of the resolved shape.
    const Tensor x(row.input, 1.0f);
    const Tensor k(conv2d_kernel_shape(row.params, row.input[3]), 1.0f);
    const Tensor b({row.params.filters}, 0.5f);
    Tensor y;
    EXPECT_NO_THROW(y = conv2d_forward(row.params, x, k, &b));
    EXPECT_EQ(y.shape(), row.output);
  }
}

}  // namespace
}  // namespace convkit
