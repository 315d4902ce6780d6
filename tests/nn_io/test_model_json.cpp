// Architectures as Keras Sequential JSON (src/nn/serialize.cpp): round trips for every layer type and parameter,
// hand-written Keras 2 and Keras 3 configs (tests/nn_io/data, examples/), and the error table.
//
// The expected field lists, parameter counts and shapes below are worked out from Keras' documented formats and the
// layer definitions (noted beside each), not taken from the code under test.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "convkit/io.hpp"
#include "convkit/serialize.hpp"
#include "nn_io/test_util.hpp"

namespace convkit {
namespace {

using nn_io_test::expect_error;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

const std::string kData = CONVKIT_NN_IO_DATA;  // tests/nn_io/data
const std::string kExamples = CONVKIT_EXAMPLES;  // examples/

// ---- models covering every layer type and every parameter ------------------------------------------------------

// Every parameter away from its default, convkit's extensions included.
Sequential every_parameter_model() {
  Sequential m("every_parameter");
  m.add<InputLayer>(Shape{16, 16, 4});
  // (16, 16, 4) -> same with stride (2, 1), dilation (1, 2): (8, 16, 6)
  m.add<Conv2D>(Conv2dLayerOptions{
      .conv = {.filters = 6, .kernel_size = {3, 2}, .strides = {2, 1}, .padding = Padding::same(),
               .dilation_rate = {1, 2}, .groups = 2, .use_bias = false, .padding_mode = PaddingMode::reflect},
      .activation = {ActivationFn::Kind::leaky_relu, 0.1f},
      .kernel_initializer = Initializer::he_normal,
      .bias_initializer = Initializer::ones});
  // explicit (1, 0, 2, 1), 3x3: (8 + 1 - 3 + 1, 16 + 3 - 3 + 1) = (7, 17), 6 * 2 channels
  auto& dw = m.add<DepthwiseConv2D>(DepthwiseConv2dLayerOptions{
      .conv = {.kernel_size = {3, 3}, .padding = Padding::explicit_pad(1, 0, 2, 1), .depth_multiplier = 2,
               .padding_mode = PaddingMode::replicate},
      .activation = {ActivationFn::Kind::elu, 0.5f},
      .depthwise_initializer = Initializer::lecun_normal,
      .bias_initializer = Initializer::he_uniform});
  dw.set_name("my_depthwise");
  // valid, 3x3 dilated (2, 1): (7 - 5 + 1, 17 - 3 + 1) = (3, 15), 5 filters
  m.add<SeparableConv2D>(SeparableConv2dLayerOptions{
      .filters = 5, .kernel_size = {3, 3}, .depth_multiplier = 3, .dilation_rate = {2, 1}, .use_bias = false,
      .activation = ActivationFn::parse("tanh"), .padding_mode = PaddingMode::circular,
      .depthwise_initializer = Initializer::glorot_normal, .pointwise_initializer = Initializer::he_uniform,
      .bias_initializer = Initializer::ones});
  // pool (3, 2), strides (1, 2), explicit (1, 1, 0, 1), ceil: (3 + 2 - 3 + 1, ceil((15 + 1 - 2) / 2) + 1) = (3, 8)
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {3, 2}, .strides = Size2{1, 2},
                                               .padding = Padding::explicit_pad(1, 1, 0, 1), .ceil_mode = true});
  // same, 2x2 stride 2: (2, 4)
  m.add<Pooling2D>(PoolKind::average,
                   Pool2dParams{.pool_size = {2, 2}, .padding = Padding::same(), .count_include_pad = true});
  m.add<ZeroPadding2D>(1, 2, 0, 3);  // (5, 7)
  m.add<BatchNormalization>(BatchNormOptions{.momentum = 0.9f, .epsilon = 1e-5f, .center = false, .scale = true});
  m.add<ActivationLayer>(ActivationFn::parse("sigmoid"));
  m.add<Dropout>(0.25f, uint64_t{7});
  m.add<GlobalPooling2D>(PoolKind::average);
  m.add<Dense>(DenseOptions{.units = 7, .activation = ActivationFn::parse("softmax"), .use_bias = false,
                            .kernel_initializer = Initializer::zeros, .bias_initializer = Initializer::glorot_uniform});
  m.build(3);
  return m;
}

// Only Keras' own parameters, mostly defaults: must serialise to plain Keras JSON.
Sequential plain_model() {
  Sequential m;
  m.add<InputLayer>(Shape{9, 9, 3});
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 4, .kernel_size = {3, 3}}});  // (7, 7, 4)
  m.add<Pooling2D>(PoolKind::average, Pool2dParams{.pool_size = {2, 2}});            // (3, 3, 4)
  m.add<DepthwiseConv2D>(DepthwiseConv2dLayerOptions{.conv = {.kernel_size = {1, 1}}});
  m.add<SeparableConv2D>(SeparableConv2dLayerOptions{.filters = 4, .kernel_size = {1, 1}});
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}, .strides = Size2{1, 1}});  // (2, 2, 4)
  m.add<ZeroPadding2D>(1, 1, 1, 1);
  m.add<GlobalPooling2D>(PoolKind::max);
  m.add<Flatten>();
  m.add<Dense>(DenseOptions{.units = 10, .activation = ActivationFn::parse("relu")});
  m.add<BatchNormalization>();
  m.add<ActivationLayer>(ActivationFn::parse("leaky_relu"));  // Keras 3's default slope: no extension field
  m.add<ActivationLayer>(ActivationFn::parse("elu"));
  m.add<Dropout>(0.5f);
  m.add<Dense>(DenseOptions{.units = 3});
  m.build(5);
  return m;
}

void expect_same_conv(const Conv2dParams& a, const Conv2dParams& b) {
  EXPECT_EQ(a.filters, b.filters);
  EXPECT_EQ(a.kernel_size, b.kernel_size);
  EXPECT_EQ(a.strides, b.strides);
  EXPECT_EQ(a.padding, b.padding);
  EXPECT_EQ(a.dilation_rate, b.dilation_rate);
  EXPECT_EQ(a.groups, b.groups);
  EXPECT_EQ(a.use_bias, b.use_bias);
  EXPECT_EQ(a.padding_mode, b.padding_mode);
}

void expect_same_activation(const ActivationFn& a, const ActivationFn& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.alpha, b.alpha);
}

// Field by field, so a parameter lost on writing AND defaulted on reading still shows up.
void expect_same_layer(const Layer& a, const Layer& b) {
  SCOPED_TRACE(a.name());
  ASSERT_EQ(a.class_name(), b.class_name());
  EXPECT_EQ(a.name(), b.name());
  if (auto* x = dynamic_cast<const Conv2D*>(&a)) {
    auto* y = dynamic_cast<const Conv2D*>(&b);
    ASSERT_NE(y, nullptr);
    expect_same_conv(x->options().conv, y->options().conv);
    expect_same_activation(x->options().activation, y->options().activation);
    EXPECT_EQ(x->options().kernel_initializer, y->options().kernel_initializer);
    EXPECT_EQ(x->options().bias_initializer, y->options().bias_initializer);
  } else if (auto* x = dynamic_cast<const DepthwiseConv2D*>(&a)) {
    auto* y = dynamic_cast<const DepthwiseConv2D*>(&b);
    ASSERT_NE(y, nullptr);
    const auto &p = x->options().conv, &q = y->options().conv;
    EXPECT_EQ(p.kernel_size, q.kernel_size);
    EXPECT_EQ(p.strides, q.strides);
    EXPECT_EQ(p.padding, q.padding);
    EXPECT_EQ(p.depth_multiplier, q.depth_multiplier);
    EXPECT_EQ(p.dilation_rate, q.dilation_rate);
    EXPECT_EQ(p.use_bias, q.use_bias);
    EXPECT_EQ(p.padding_mode, q.padding_mode);
    expect_same_activation(x->options().activation, y->options().activation);
    EXPECT_EQ(x->options().depthwise_initializer, y->options().depthwise_initializer);
    EXPECT_EQ(x->options().bias_initializer, y->options().bias_initializer);
  } else if (auto* x = dynamic_cast<const SeparableConv2D*>(&a)) {
    auto* y = dynamic_cast<const SeparableConv2D*>(&b);
    ASSERT_NE(y, nullptr);
    const auto &p = x->options(), &q = y->options();
    EXPECT_EQ(p.filters, q.filters);
    EXPECT_EQ(p.kernel_size, q.kernel_size);
    EXPECT_EQ(p.strides, q.strides);
    EXPECT_EQ(p.padding, q.padding);
    EXPECT_EQ(p.depth_multiplier, q.depth_multiplier);
    EXPECT_EQ(p.dilation_rate, q.dilation_rate);
    EXPECT_EQ(p.use_bias, q.use_bias);
    expect_same_activation(p.activation, q.activation);
    EXPECT_EQ(p.padding_mode, q.padding_mode);
    EXPECT_EQ(p.depthwise_initializer, q.depthwise_initializer);
    EXPECT_EQ(p.pointwise_initializer, q.pointwise_initializer);
    EXPECT_EQ(p.bias_initializer, q.bias_initializer);
  } else if (auto* x = dynamic_cast<const Pooling2D*>(&a)) {
    auto* y = dynamic_cast<const Pooling2D*>(&b);
    ASSERT_NE(y, nullptr);
    const auto &p = x->params(), &q = y->params();
    EXPECT_EQ(x->kind(), y->kind());
    EXPECT_EQ(p.pool_size, q.pool_size);
    EXPECT_EQ(p.strides.value_or(p.pool_size), q.strides.value_or(q.pool_size));
    EXPECT_EQ(p.padding, q.padding);
    EXPECT_EQ(p.ceil_mode, q.ceil_mode);
    EXPECT_EQ(p.count_include_pad, q.count_include_pad);
  } else if (auto* x = dynamic_cast<const GlobalPooling2D*>(&a)) {
    auto* y = dynamic_cast<const GlobalPooling2D*>(&b);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(x->kind(), y->kind());
  } else if (auto* x = dynamic_cast<const Dense*>(&a)) {
    auto* y = dynamic_cast<const Dense*>(&b);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(x->options().units, y->options().units);
    expect_same_activation(x->options().activation, y->options().activation);
    EXPECT_EQ(x->options().use_bias, y->options().use_bias);
    EXPECT_EQ(x->options().kernel_initializer, y->options().kernel_initializer);
    EXPECT_EQ(x->options().bias_initializer, y->options().bias_initializer);
  } else if (auto* x = dynamic_cast<const Dropout*>(&a)) {
    auto* y = dynamic_cast<const Dropout*>(&b);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(x->rate(), y->rate());
    EXPECT_EQ(x->seed(), y->seed());
  } else if (auto* x = dynamic_cast<const BatchNormalization*>(&a)) {
    auto* y = dynamic_cast<const BatchNormalization*>(&b);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(x->options().momentum, y->options().momentum);
    EXPECT_EQ(x->options().epsilon, y->options().epsilon);
    EXPECT_EQ(x->options().center, y->options().center);
    EXPECT_EQ(x->options().scale, y->options().scale);
  } else if (auto* x = dynamic_cast<const ActivationLayer*>(&a)) {
    auto* y = dynamic_cast<const ActivationLayer*>(&b);
    ASSERT_NE(y, nullptr);
    expect_same_activation(x->function(), y->function());
  } else if (auto* x = dynamic_cast<const ZeroPadding2D*>(&a)) {
    auto* y = dynamic_cast<const ZeroPadding2D*>(&b);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(x->top(), y->top());
    EXPECT_EQ(x->bottom(), y->bottom());
    EXPECT_EQ(x->left(), y->left());
    EXPECT_EQ(x->right(), y->right());
  } else {
    EXPECT_NE(dynamic_cast<const Flatten*>(&a), nullptr) << "a layer type this test does not know";
  }
}

void expect_same_model(const Sequential& a, const Sequential& b) {
  EXPECT_EQ(a.name(), b.name());
  ASSERT_NE(a.input_layer(), nullptr);
  ASSERT_NE(b.input_layer(), nullptr);
  EXPECT_EQ(a.input_layer()->name(), b.input_layer()->name());
  EXPECT_EQ(a.input_shape(), b.input_shape());
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    expect_same_layer(a.layer(i), b.layer(i));
    EXPECT_EQ(a.layer_output_shape(i), b.layer_output_shape(i));
  }
  EXPECT_EQ(a.summary(), b.summary());
}

TEST(NnIoJson, EveryParameterRoundTrips) {
  const Sequential m = every_parameter_model();
  const std::string j1 = model_to_json(m);
  const Sequential m2 = model_from_json(j1);
  expect_same_model(m, m2);
  EXPECT_EQ(model_to_json(m2), j1);
  // The pretty-printed form reads back to the same model too.
  expect_same_model(m, model_from_json(model_to_json(m, 2)));
  // The shapes worked out in every_parameter_model().
  EXPECT_EQ(m2.layer_output_shape(0), (Shape{-1, 8, 16, 6}));
  EXPECT_EQ(m2.layer_output_shape(1), (Shape{-1, 7, 17, 12}));
  EXPECT_EQ(m2.layer_output_shape(2), (Shape{-1, 3, 15, 5}));
  EXPECT_EQ(m2.layer_output_shape(3), (Shape{-1, 3, 8, 5}));
  EXPECT_EQ(m2.layer_output_shape(4), (Shape{-1, 2, 4, 5}));
  EXPECT_EQ(m2.layer_output_shape(5), (Shape{-1, 5, 7, 5}));
  EXPECT_EQ(m2.output_shape(), (Shape{-1, 7}));
}

TEST(NnIoJson, PlainModelRoundTrips) {
  const Sequential m = plain_model();
  const std::string j1 = model_to_json(m);
  const Sequential m2 = model_from_json(j1);
  expect_same_model(m, m2);
  EXPECT_EQ(model_to_json(m2), j1);
}

// Each extension field appears exactly where a parameter differs from what Keras would do, and only there.
TEST(NnIoJson, ExtensionsOnlyWhenTheyDifferFromKeras) {
  const std::string plain = model_to_json(plain_model());
  for (const char* ext : {"padding_mode", "ceil_mode", "count_include_pad", "activation_alpha", "convkit"})
    EXPECT_EQ(plain.find(ext), std::string::npos) << ext << " in plain Keras JSON: " << plain;
  // Convolution and pooling padding stays Keras' "valid" / "same" (ZeroPadding2D's pairs are Keras' own).
  // The parsed document must outlive the loop: a range-for over a part of a temporary reads freed memory (ASan).
  const ojson plain_json = ojson::parse(plain);
  for (const ojson& l : plain_json["config"]["layers"])
    if (l["config"].contains("padding") && l["class_name"] != "ZeroPadding2D")
      EXPECT_TRUE(l["config"]["padding"].is_string()) << l.dump();

  const ojson j = ojson::parse(model_to_json(every_parameter_model()));
  const ojson& layers = j["config"]["layers"];
  ASSERT_EQ(layers.size(), 12u);  // InputLayer + 11
  const ojson& conv = layers[1]["config"];
  EXPECT_EQ(conv["padding_mode"], "reflect");
  EXPECT_FLOAT_EQ(conv["activation_alpha"].get<float>(), 0.1f);
  EXPECT_EQ(conv["activation"], "leaky_relu");
  const ojson& dw = layers[2]["config"];
  EXPECT_EQ(dw["padding"], ojson::parse("[[1, 0], [2, 1]]"));
  EXPECT_EQ(dw["padding_mode"], "replicate");
  EXPECT_EQ(dw["activation_alpha"].get<float>(), 0.5f);
  EXPECT_EQ(layers[3]["config"]["padding_mode"], "circular");
  EXPECT_FALSE(layers[3]["config"].contains("activation_alpha"));  // tanh has none
  const ojson& maxpool = layers[4]["config"];
  EXPECT_EQ(maxpool["padding"], ojson::parse("[[1, 1], [0, 1]]"));
  EXPECT_EQ(maxpool["ceil_mode"], true);
  EXPECT_FALSE(maxpool.contains("count_include_pad"));
  const ojson& avgpool = layers[5]["config"];
  EXPECT_EQ(avgpool["count_include_pad"], true);
  EXPECT_FALSE(avgpool.contains("ceil_mode"));
  EXPECT_EQ(avgpool["strides"], ojson::parse("[2, 2]"));  // Keras writes the resolved default
  EXPECT_EQ(layers[6]["config"]["padding"], ojson::parse("[[1, 2], [0, 3]]"));
  // Floats are written as the shortest decimal of the float32, as Keras writes the Python float.
  EXPECT_EQ(layers[7]["config"]["momentum"].dump(), "0.9");
  EXPECT_EQ(layers[7]["config"]["epsilon"].dump(), "1e-05");
  EXPECT_EQ(layers[9]["config"]["rate"].dump(), "0.25");
  EXPECT_EQ(layers[9]["config"]["seed"], 7);
  EXPECT_EQ(layers[11]["config"]["kernel_initializer"]["class_name"], "Zeros");
  EXPECT_EQ(layers[11]["config"]["bias_initializer"]["class_name"], "GlorotUniform");
}

std::vector<std::string> keys_of(const ojson& o) {
  std::vector<std::string> k;
  for (auto it = o.begin(); it != o.end(); ++it) k.push_back(it.key());
  return k;
}

// The written JSON has Keras 3's shape: the fields of each class's get_config(), in Keras 3's order (from the Keras 3
// sources: Layer.get_config gives name, trainable, dtype; then each class's own fields).
TEST(NnIoJson, WritesKeras3Fields) {
  const ojson j = ojson::parse(model_to_json(plain_model()));
  using V = std::vector<std::string>;
  EXPECT_EQ(keys_of(j), (V{"module", "class_name", "config", "registered_name", "build_config"}));
  EXPECT_EQ(j["module"], "keras");
  EXPECT_EQ(j["class_name"], "Sequential");
  EXPECT_EQ(keys_of(j["config"]), (V{"name", "trainable", "dtype", "layers", "build_input_shape"}));
  EXPECT_EQ(j["config"]["build_input_shape"], ojson::parse("[null, 9, 9, 3]"));
  EXPECT_EQ(j["config"]["dtype"], ojson::parse(R"({"module": "keras", "class_name": "DTypePolicy",
                                                   "config": {"name": "float32"}, "registered_name": null})"));
  const ojson& layers = j["config"]["layers"];
  EXPECT_EQ(layers[0], ojson::parse(R"({"module": "keras.layers", "class_name": "InputLayer", "config":
      {"batch_shape": [null, 9, 9, 3], "dtype": "float32", "sparse": false, "ragged": false, "name": "input_layer"},
      "registered_name": null})"));
  const V base{"name", "trainable", "dtype"};
  auto with = [&](V extra) {
    V v = base;
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  };
  const std::map<std::string, V> expected = {
      {"Conv2D", with({"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                       "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                       "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"})},
      {"AveragePooling2D", with({"pool_size", "padding", "strides", "data_format"})},
      {"MaxPooling2D", with({"pool_size", "padding", "strides", "data_format"})},
      {"DepthwiseConv2D",
       with({"depth_multiplier", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation",
             "use_bias", "depthwise_initializer", "bias_initializer", "depthwise_regularizer", "bias_regularizer",
             "activity_regularizer", "depthwise_constraint", "bias_constraint"})},
      {"SeparableConv2D",
       with({"depth_multiplier", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
             "activation", "use_bias", "depthwise_initializer", "pointwise_initializer", "bias_initializer",
             "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
             "depthwise_constraint", "pointwise_constraint", "bias_constraint"})},
      {"ZeroPadding2D", with({"padding", "data_format"})},
      {"GlobalMaxPooling2D", with({"data_format", "keepdims"})},
      {"Flatten", with({"data_format"})},
      {"Dense", with({"units", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                      "kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint"})},
      {"BatchNormalization",
       with({"axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
             "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
             "beta_constraint", "gamma_constraint", "synchronized"})},
      {"Activation", with({"activation"})},
      {"Dropout", with({"rate", "seed", "noise_shape"})},
  };
  std::set<std::string> seen;
  for (std::size_t i = 1; i < layers.size(); ++i) {
    const std::string cls = layers[i]["class_name"];
    SCOPED_TRACE(cls);
    seen.insert(cls);
    EXPECT_EQ(keys_of(layers[i]), (V{"module", "class_name", "config", "registered_name", "build_config"}));
    EXPECT_EQ(layers[i]["module"], "keras.layers");
    ASSERT_TRUE(expected.count(cls));
    EXPECT_EQ(keys_of(layers[i]["config"]), expected.at(cls));
  }
  EXPECT_EQ(seen.size(), expected.size());
  // build_config records each layer's input shape.
  EXPECT_EQ(layers[1]["build_config"], ojson::parse(R"({"input_shape": [null, 9, 9, 3]})"));
  EXPECT_EQ(layers[2]["build_config"], ojson::parse(R"({"input_shape": [null, 7, 7, 4]})"));
  // Keras 3's initializer objects.
  EXPECT_EQ(layers[1]["config"]["kernel_initializer"],
            ojson::parse(R"({"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null},
                            "registered_name": null})"));
  EXPECT_EQ(layers[1]["config"]["bias_initializer"],
            ojson::parse(R"({"module": "keras.initializers", "class_name": "Zeros", "config": {},
                            "registered_name": null})"));
  EXPECT_EQ(layers[1]["config"]["activation"], "linear");
}

// ---- Keras-written configs -----------------------------------------------------------------------------------------

struct Expect {
  const char* cls;
  const char* name;
  Shape out;
  int64_t params;
};

// Worked out by hand for tests/nn_io/data/keras{2,3}_all_layers.json, input (12, 12, 3):
//   ZeroPadding2D ((1, 1), (2, 2)) -> (14, 16, 3); Conv2D 8 3x3 valid: 3*3*3*8 + 8 = 224 -> (12, 14, 8);
//   DepthwiseConv2D 3x3 same x2: 3*3*8*2 + 16 = 160 -> (12, 14, 16);
//   SeparableConv2D 12 3x3 valid: 3*3*16 + 16*12 + 12 = 348 -> (10, 12, 12); BatchNormalization 4*12 = 48;
//   AveragePooling2D 2 -> (5, 6, 12); MaxPooling2D 2 stride 1 same -> (5, 6, 12); global pooling -> (12,);
//   Dense 10: 12*10 + 10 = 130.
void check_all_layers(const Sequential& m, const std::vector<Expect>& want) {
  EXPECT_EQ(m.input_shape(), (Shape{-1, 12, 12, 3}));
  ASSERT_EQ(m.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(m.layer(i).class_name(), want[i].cls);
    EXPECT_EQ(m.layer(i).name(), want[i].name);
    EXPECT_EQ(m.layer_output_shape(i), want[i].out);
    EXPECT_EQ(m.layer(i).count_params(true) + m.layer(i).count_params(false), want[i].params);
  }
  EXPECT_EQ(m.count_params(), 910);
  EXPECT_EQ(m.count_params(false), 24);  // BatchNormalization's moving mean and variance
  auto& conv = dynamic_cast<const Conv2D&>(m.layer(1));
  EXPECT_EQ(conv.options().conv.filters, 8);
  EXPECT_EQ(conv.options().activation.kind, ActivationFn::Kind::relu);
  EXPECT_EQ(conv.options().kernel_initializer, Initializer::he_normal);
  auto& dw = dynamic_cast<const DepthwiseConv2D&>(m.layer(2));
  EXPECT_EQ(dw.options().conv.depth_multiplier, 2);
  EXPECT_EQ(dw.options().conv.padding, Padding::same());
  auto& bn = dynamic_cast<const BatchNormalization&>(m.layer(4));
  EXPECT_EQ(bn.options().momentum, 0.9f);
  EXPECT_EQ(bn.options().epsilon, 1e-5f);
  EXPECT_EQ(dynamic_cast<const ActivationLayer&>(m.layer(5)).function().kind, ActivationFn::Kind::tanh);
  auto& maxpool = dynamic_cast<const Pooling2D&>(m.layer(7));
  EXPECT_EQ(maxpool.params().strides.value_or(Size2{}), (Size2{1, 1}));
  EXPECT_EQ(dynamic_cast<const Dropout&>(m.layer(8)).rate(), 0.2f);
  auto& dense = dynamic_cast<const Dense&>(m.layer(m.size() - 1));
  EXPECT_EQ(dense.options().activation.kind, ActivationFn::Kind::softmax);
}

TEST(NnIoJson, LoadsKeras2Config) {
  const Sequential m = load_model_json(kData + "/keras2_all_layers.json");
  EXPECT_EQ(m.name(), "all_layers_keras2");
  EXPECT_EQ(m.input_layer()->name(), "zero_padding2d_input");
  check_all_layers(m, {{"ZeroPadding2D", "zero_padding2d", {-1, 14, 16, 3}, 0},
                       {"Conv2D", "conv2d", {-1, 12, 14, 8}, 224},
                       {"DepthwiseConv2D", "depthwise_conv2d", {-1, 12, 14, 16}, 160},
                       {"SeparableConv2D", "separable_conv2d", {-1, 10, 12, 12}, 348},
                       {"BatchNormalization", "batch_normalization", {-1, 10, 12, 12}, 48},
                       {"Activation", "activation", {-1, 10, 12, 12}, 0},
                       {"AveragePooling2D", "average_pooling2d", {-1, 5, 6, 12}, 0},
                       {"MaxPooling2D", "max_pooling2d", {-1, 5, 6, 12}, 0},
                       {"Dropout", "dropout", {-1, 5, 6, 12}, 0},
                       {"GlobalMaxPooling2D", "global_max_pooling2d", {-1, 12}, 0},
                       {"Flatten", "flatten", {-1, 12}, 0},
                       {"Dense", "dense", {-1, 10}, 130}});
  // Keras 2's VarianceScaling(2.0, fan_in, truncated_normal) is HeNormal.
  EXPECT_EQ(dynamic_cast<const Dense&>(m.layer(11)).options().kernel_initializer, Initializer::he_normal);
}

TEST(NnIoJson, LoadsKeras3Config) {
  const Sequential m = load_model_json(kData + "/keras3_all_layers.json");
  EXPECT_EQ(m.name(), "all_layers_keras3");
  EXPECT_EQ(m.input_layer()->name(), "input_layer");
  check_all_layers(m, {{"ZeroPadding2D", "zero_padding2d", {-1, 14, 16, 3}, 0},
                       {"Conv2D", "conv2d", {-1, 12, 14, 8}, 224},
                       {"DepthwiseConv2D", "depthwise_conv2d", {-1, 12, 14, 16}, 160},
                       {"SeparableConv2D", "separable_conv2d", {-1, 10, 12, 12}, 348},
                       {"BatchNormalization", "batch_normalization", {-1, 10, 12, 12}, 48},
                       {"Activation", "activation", {-1, 10, 12, 12}, 0},
                       {"AveragePooling2D", "average_pooling2d", {-1, 5, 6, 12}, 0},
                       {"MaxPooling2D", "max_pooling2d", {-1, 5, 6, 12}, 0},
                       {"Dropout", "dropout", {-1, 5, 6, 12}, 0},
                       {"GlobalAveragePooling2D", "global_average_pooling2d", {-1, 12}, 0},
                       {"Dense", "dense", {-1, 10}, 130}});
  // What convkit writes back for a Keras 3 config is that config, less what convkit does not keep (compile_config).
  json written = json::parse(model_to_json(m));
  json original = json::parse(read_file(kData + "/keras3_all_layers.json"));
  original.erase("compile_config");
  EXPECT_EQ(written, original) << "diff: " << json::diff(original, written).dump();
}

// The classic Fashion-MNIST CNN (TensorFlow's tutorial): 832 + 51,264 + 3,212,288 + 10,250 = 3,274,634 parameters.
TEST(NnIoJson, LoadsFashionCnnExample) {
  const Sequential m = load_model_json(kExamples + "/fashion_cnn.json");
  EXPECT_EQ(m.input_shape(), (Shape{-1, 28, 28, 1}));
  ASSERT_EQ(m.size(), 8u);
  const char* classes[] = {"Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout",
                           "Dense"};
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(m.layer(i).class_name(), classes[i]);
  EXPECT_EQ(m.layer_output_shape(3), (Shape{-1, 7, 7, 64}));
  EXPECT_EQ(m.layer_output_shape(4), (Shape{-1, 3136}));
  EXPECT_EQ(m.output_shape(), (Shape{-1, 10}));
  EXPECT_EQ(m.count_params(), 3274634);
  EXPECT_EQ(dynamic_cast<const Conv2D&>(m.layer(0)).options().conv.kernel_size, (Size2{5, 5}));
  EXPECT_EQ(dynamic_cast<const Conv2D&>(m.layer(0)).options().conv.padding, Padding::same());
  EXPECT_EQ(dynamic_cast<const Dropout&>(m.layer(6)).rate(), 0.4f);
  EXPECT_EQ(dynamic_cast<const Dense&>(m.layer(7)).options().activation.kind, ActivationFn::Kind::linear);
}

// [Conv 3x3 (no bias), BN, relu] x2, pool, dropout, x2 again with 64 filters, dense 256 (no bias), BN, relu, dropout,
// dense 10: 288 + 9,216 + 18,432 + 36,864 + 802,816 + 2,570 weights, BN 4 * (32 + 32 + 64 + 64 + 256) = 1,792 of which
// the moving statistics, 896, are not trainable. Total 871,978.
TEST(NnIoJson, LoadsFashionBnCnnExample) {
  const Sequential m = load_model_json(kExamples + "/fashion_bn_cnn.json");
  EXPECT_EQ(m.input_shape(), (Shape{-1, 28, 28, 1}));
  EXPECT_EQ(m.size(), 22u);
  EXPECT_EQ(m.output_shape(), (Shape{-1, 10}));
  EXPECT_EQ(m.count_params(), 871978);
  EXPECT_EQ(m.count_params(false), 896);
  // Written in Keras 3's spelling: convkit writes it back unchanged.
  EXPECT_EQ(json::parse(model_to_json(m)), json::parse(read_file(kExamples + "/fashion_bn_cnn.json")));
}

// Keras 2.0-2.3 wrote no InputLayer entry: the first layer carries batch_input_shape.
TEST(NnIoJson, InputShapeFromFirstLayer) {
  const char* text = R"({"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
      {"class_name": "Dense", "config": {"name": "dense_1", "trainable": true, "batch_input_shape": [null, 4],
       "dtype": "float32", "units": 3, "activation": "relu", "use_bias": true,
       "kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg",
                              "distribution": "uniform", "seed": null}},
       "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null,
       "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}]},
      "keras_version": "2.2.4", "backend": "tensorflow"})";
  const Sequential m = model_from_json(text);
  EXPECT_EQ(m.input_shape(), (Shape{-1, 4}));
  EXPECT_EQ(m.output_shape(), (Shape{-1, 3}));
  EXPECT_EQ(dynamic_cast<const Dense&>(m.layer(0)).options().kernel_initializer, Initializer::glorot_uniform);
  // Also "input_shape" (no batch), Keras 3's "batch_shape" on a layer, the Sequential's build_input_shape, and the
  // very old Keras 2.0 form whose config is the bare list of layers.
  const char* dense = R"("units": 2)";
  for (const std::string& form :
       {std::string(R"({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {)") +
            R"("input_shape": [5], )" + dense + "}}]}}",
        std::string(R"({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {)") +
            R"("batch_shape": [null, 5], )" + dense + "}}]}}",
        std::string(R"({"class_name": "Sequential", "config": {"build_input_shape": [null, 5], "layers": [)") +
            R"({"class_name": "Dense", "config": {)" + dense + "}}]}}",
        std::string(R"({"class_name": "Sequential", "config": [{"class_name": "Dense", "config": {)") +
            R"("batch_input_shape": [null, 5], )" + dense + "}}]}"}) {
    SCOPED_TRACE(form);
    const Sequential s = model_from_json(form);
    EXPECT_EQ(s.input_shape(), (Shape{-1, 5}));
    EXPECT_EQ(s.output_shape(), (Shape{-1, 2}));
  }
}

// Alternative spellings Keras accepts or wrote at some point, each read as the same value.
TEST(NnIoJson, AcceptsKerasSpellings) {
  json base = json::parse(read_file(kData + "/keras3_all_layers.json"));
  json& conv = base["config"]["layers"][2]["config"];
  conv["kernel_initializer"] = "he_normal";                                      // string alias
  conv["bias_initializer"] = json{{"class_name", "Zeros"}, {"config", json::object()}};  // Keras 2 object
  conv["dtype"] = "float32";
  conv["kernel_size"] = 3;  // one number for both
  conv["lora_rank"] = nullptr;
  base["config"]["layers"][3]["config"]["dtype"] =
      json{{"class_name", "Policy"}, {"config", {{"name", "float32"}}}};  // Keras 2 mixed-precision policy
  base["config"]["layers"][5]["config"]["axis"] = 3;                     // BatchNormalization: the last axis
  base["config"]["layers"][1]["config"]["padding"] = json::array({1, 2});  // ZeroPadding2D (rows, cols)
  const Sequential m = model_from_json(base.dump());
  const Sequential ref = load_model_json(kData + "/keras3_all_layers.json");
  expect_same_model(m, ref);
}

// ---- errors --------------------------------------------------------------------------------------------------------

struct ErrorCase {
  const char* what;
  std::function<void(json&)> mutate;
  std::vector<std::string> pieces;  // each must appear in the message
};

TEST(NnIoJson, ErrorTable) {
  const json base = json::parse(read_file(kData + "/keras3_all_layers.json"));
  auto layer = [](json& j, int i) -> json& { return j["config"]["layers"][i]["config"]; };
  const std::vector<ErrorCase> cases = {
      {"unknown class_name", [](json& j) { j["config"]["layers"][2]["class_name"] = "LSTM"; },
       {"layer 2 'conv2d' (LSTM)", "unknown layer class_name \"LSTM\""}},
      {"unknown field", [&](json& j) { layer(j, 2)["foo"] = 1; },
       {"'conv2d' (Conv2D)", "unknown config field \"foo\""}},
      {"non-null regularizer",
       [&](json& j) { layer(j, 2)["kernel_regularizer"] = {{"class_name", "L2"}, {"config", {{"l2", 0.01}}}}; },
       {"'conv2d' (Conv2D)", "\"kernel_regularizer\"", "regularizers", "L2"}},
      {"non-null constraint", [&](json& j) { layer(j, 11)["bias_constraint"] = "non_neg"; },
       {"'dense' (Dense)", "\"bias_constraint\"", "non_neg"}},
      {"non-null activity regularizer", [&](json& j) { layer(j, 4)["activity_regularizer"] = "l1"; },
       {"'separable_conv2d'", "\"activity_regularizer\""}},
      {"channels_first", [&](json& j) { layer(j, 8)["data_format"] = "channels_first"; },
       {"'max_pooling2d'", "\"data_format\"", "channels_first"}},
      {"filters as a string", [&](json& j) { layer(j, 2)["filters"] = "3"; }, {"'conv2d'", "\"filters\"", "\"3\""}},
      {"filters as a float", [&](json& j) { layer(j, 2)["filters"] = 3.5; }, {"'conv2d'", "\"filters\"", "3.5"}},
      {"kernel_size of one element", [&](json& j) { layer(j, 2)["kernel_size"] = json::array({3}); },
       {"'conv2d'", "\"kernel_size\"", "[3]"}},
      {"use_bias as a number", [&](json& j) { layer(j, 11)["use_bias"] = 1; }, {"'dense'", "\"use_bias\""}},
      {"rate as a string", [&](json& j) { layer(j, 9)["rate"] = "0.2"; }, {"'dropout'", "\"rate\""}},
      {"unknown padding", [&](json& j) { layer(j, 2)["padding"] = "full"; }, {"'conv2d'", "\"padding\"", "full"}},
      {"unknown activation", [&](json& j) { layer(j, 2)["activation"] = "swish"; },
       {"'conv2d'", "\"activation\"", "swish"}},
      {"unknown initializer", [&](json& j) { layer(j, 11)["kernel_initializer"]["class_name"] = "Orthogonal"; },
       {"'dense'", "\"kernel_initializer\"", "Orthogonal"}},
      {"missing required field", [&](json& j) { layer(j, 11).erase("units"); }, {"'dense'", "\"units\"", "required"}},
      {"value the layer rejects", [&](json& j) { layer(j, 2)["filters"] = 0; }, {"'conv2d'", "filters"}},
      {"layer that cannot take its input", [&](json& j) { layer(j, 2)["kernel_size"] = json::array({15, 3}); },
       {"'conv2d'", "(None, 14, 16, 3)", "kernel"}},
      {"float16 dtype", [&](json& j) { layer(j, 2)["dtype"]["config"]["name"] = "mixed_float16"; },
       {"'conv2d'", "\"dtype\"", "mixed_float16"}},
      {"frozen layer", [&](json& j) { layer(j, 2)["trainable"] = false; }, {"'conv2d'", "\"trainable\""}},
      {"BatchNormalization over another axis", [&](json& j) { layer(j, 5)["axis"] = 1; },
       {"'batch_normalization'", "\"axis\""}},
      {"BatchNormalization gamma from zeros", [&](json& j) { layer(j, 5)["gamma_initializer"] = "zeros"; },
       {"'batch_normalization'", "\"gamma_initializer\"", "Zeros"}},
      {"synchronized BatchNormalization", [&](json& j) { layer(j, 5)["synchronized"] = true; },
       {"'batch_normalization'", "\"synchronized\""}},
      {"keepdims", [&](json& j) { layer(j, 10)["keepdims"] = true; }, {"'global_average_pooling2d'", "\"keepdims\""}},
      {"noise_shape", [&](json& j) { layer(j, 9)["noise_shape"] = json::array({nullptr, 1, 1, 12}); },
       {"'dropout'", "\"noise_shape\""}},
      {"LoRA", [&](json& j) { layer(j, 11)["lora_rank"] = 4; }, {"'dense'", "\"lora_rank\""}},
      {"name with a slash", [&](json& j) { layer(j, 11)["name"] = "head/dense"; }, {"\"name\"", "head/dense", "'/'"}},
      {"duplicate layer name", [&](json& j) { layer(j, 11)["name"] = "conv2d"; }, {"'conv2d' (Dense)", "conv2d"}},
      {"activation_alpha on relu", [&](json& j) { layer(j, 2)["activation_alpha"] = 0.1; },
       {"'conv2d'", "\"activation_alpha\"", "relu"}},
      {"custom layer module", [](json& j) { j["config"]["layers"][2]["module"] = "my_package.layers"; },
       {"'conv2d'", "\"module\"", "my_package"}},
      {"custom registered layer", [](json& j) { j["config"]["layers"][2]["registered_name"] = "Custom>Conv2D"; },
       {"'conv2d'", "\"registered_name\"", "Custom>Conv2D"}},
      {"unknown key in a layer entry", [](json& j) { j["config"]["layers"][2]["inbound_nodes"] = json::array(); },
       {"'conv2d' (Conv2D)", "unknown key \"inbound_nodes\""}},
      {"unknown top-level key", [](json& j) { j["weights"] = json::array(); }, {"unknown key \"weights\""}},
      {"not a Sequential", [](json& j) { j["class_name"] = "Functional"; },
       {"\"class_name\"", "Functional", "Sequential"}},
      {"InputLayer not first",
       [](json& j) {
         auto& l = j["config"]["layers"];
         std::swap(l[0], l[1]);
       },
       {"(InputLayer)", "first"}},
      {"missing input shape",
       [](json& j) {
         j["config"]["layers"].erase(0);
         j["config"].erase("build_input_shape");
         j.erase("build_config");
       },
       {"'zero_padding2d'", "missing input shape"}},
      {"input shape with an unknown dimension",
       [&](json& j) { layer(j, 0)["batch_shape"] = json::parse("[null, null, 12, 3]"); },
       {"(InputLayer)", "\"batch_shape\"", "[null,null,12,3]"}},
      {"layers not an array", [](json& j) { j["config"]["layers"] = json::object(); }, {"\"layers\"", "array"}},
      {"activation missing on Activation", [&](json& j) { layer(j, 6).erase("activation"); },
       {"'activation' (Activation)", "\"activation\"", "required"}},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.what);
    json j = base;
    c.mutate(j);
    expect_error([&] { model_from_json(j.dump(), "bad.json"); }, c.pieces);
    // Every message names the source.
    expect_error([&] { model_from_json(j.dump(), "bad.json"); }, {"bad.json"});
  }
}

TEST(NnIoJson, InvalidJsonText) {
  expect_error([] { model_from_json("{\"class_name\": \"Sequential\", "); }, {"<json>", "invalid JSON"});
  expect_error([] { model_from_json(""); }, {"<json>", "invalid JSON"});
  expect_error([] { model_from_json("[1, 2]", "arch.json"); }, {"arch.json", "object"});
  expect_error([] { model_from_json(R"({"class_name": "Sequential", "class_name": "Sequential"})"); },
               {"\"class_name\"", "twice"});
  std::string deep(200, '[');
  expect_error([&] { model_from_json(deep); }, {"<json>", "deeper"});
  expect_error([] { load_model_json("/nonexistent/convkit/model.json"); }, {"/nonexistent/convkit/model.json"});
}

TEST(NnIoJson, WriterRejectsWhatItCannotWrite) {
  Sequential no_input;
  no_input.add<Dense>(DenseOptions{.units = 2});
  expect_error([&] { model_to_json(no_input); }, {"InputLayer"});
  Sequential slash;
  slash.add<InputLayer>(Shape{3});
  slash.add<Dense>(DenseOptions{.units = 2}).set_name("a/b");
  expect_error([&] { model_to_json(slash); }, {"a/b", "'/'"});
}

}  // namespace
}  // namespace convkit
