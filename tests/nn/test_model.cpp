// The Sequential model (shape inference, Keras' default names, the summary table, parameter counts, the rules on
// InputLayer and names), layer construction errors, Dropout in training mode, and the weight initialisers'
// statistics against their Keras definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "convkit/model.hpp"
#include "expect_error.hpp"

namespace {

using namespace convkit;

using convkit::test_support::expect_error;

Conv2dLayerOptions conv(int filters, int k, Padding pad = Padding::same(), const char* act = "relu") {
  return {.conv = {.filters = filters, .kernel_size = {k, k}, .padding = pad}, .activation = ActivationFn::parse(act)};
}

// The classic Fashion-MNIST CNN (TensorFlow's tutorial / Keras example).
Sequential fashion_cnn(uint64_t seed = 0) {
  Sequential m;
  m.add<InputLayer>(Shape{28, 28, 1});
  m.add<Conv2D>(conv(32, 5));
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  m.add<Conv2D>(conv(64, 5));
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  m.add<Flatten>();
  m.add<Dense>(DenseOptions{.units = 1024, .activation = ActivationFn::parse("relu")});
  m.add<Dropout>(0.4f);
  m.add<Dense>(DenseOptions{.units = 10});
  m.build(seed);
  return m;
}

TEST(NnSequential, FashionCnnParameterCountAndSummary) {
  Sequential m = fashion_cnn();
  // Counts from the layer definitions: kh*kw*in*filters + filters; in*units + units.
  const int64_t conv1 = 5 * 5 * 1 * 32 + 32, conv2 = 5 * 5 * 32 * 64 + 64;
  const int64_t dense1 = 7 * 7 * 64 * 1024 + 1024, dense2 = 1024 * 10 + 10;
  EXPECT_EQ(conv1 + conv2 + dense1 + dense2, 3274634);
  EXPECT_EQ(m.count_params(true), 3274634);
  EXPECT_EQ(m.count_params(false), 0);
  EXPECT_EQ(m.count_params(), 3274634);
  EXPECT_EQ(m.input_shape(), (Shape{-1, 28, 28, 1}));
  EXPECT_EQ(m.output_shape(), (Shape{-1, 10}));
  ASSERT_EQ(m.size(), 8u);

  struct Row {
    const char* name;
    const char* type;
    const char* shape;
    const char* params;
  };
  const Row rows[] = {{"conv2d", "Conv2D", "(None, 28, 28, 32)", "832"},
                      {"max_pooling2d", "MaxPooling2D", "(None, 14, 14, 32)", "0"},
                      {"conv2d_1", "Conv2D", "(None, 14, 14, 64)", "51,264"},
                      {"max_pooling2d_1", "MaxPooling2D", "(None, 7, 7, 64)", "0"},
                      {"flatten", "Flatten", "(None, 3136)", "0"},
                      {"dense", "Dense", "(None, 1024)", "3,212,288"},
                      {"dropout", "Dropout", "(None, 1024)", "0"},
                      {"dense_1", "Dense", "(None, 10)", "10,250"}};
  // Parse the table: the columns start where the header's titles do (Keras' stops at 45 % and 85 % of the line);
  // a cell too long for its column continues on the next line (Keras wraps "max_pooling2d (MaxPooling2D)"), and
  // rows are separated by blank lines.
  const std::string s = m.summary();
  std::istringstream in(s);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  auto header = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.find("Layer (type)") == 1; });
  ASSERT_NE(header, lines.end()) << s;
  const std::size_t c1 = header->find("Output Shape"), c2 = header->find("Param #");
  ASSERT_TRUE(c1 != std::string::npos && c2 != std::string::npos && c1 < c2) << *header;
  auto trim = [](std::string t) {
    while (!t.empty() && t.back() == ' ') t.pop_back();
    while (!t.empty() && t.front() == ' ') t.erase(0, 1);
    return t;
  };
  auto cell = [&](const std::string& l, std::size_t from, std::size_t to) {
    return from >= l.size() ? std::string() : trim(l.substr(from, to - from));
  };
  std::vector<std::array<std::string, 3>> table;
  bool new_row = true;
  for (auto it = header + 2; it != lines.end() && it->rfind("=====", 0) != 0; ++it) {
    if (trim(*it).empty()) {
      new_row = true;
      continue;
    }
    if (new_row) table.push_back({});
    new_row = false;
    table.back()[0] += cell(*it, 0, c1);
    table.back()[1] += cell(*it, c1, c2);
    table.back()[2] += cell(*it, c2, std::string::npos);
  }
  ASSERT_EQ(table.size(), std::size(rows)) << s;
  for (std::size_t i = 0; i < std::size(rows); ++i) {
    const Row& r = rows[i];
    EXPECT_EQ(m.layer(i).name(), r.name);
    EXPECT_EQ(m.layer(i).class_name(), r.type);
    EXPECT_EQ(table[i][0], std::string(r.name) + " (" + r.type + ")") << s;
    EXPECT_EQ(table[i][1], r.shape) << s;
    EXPECT_EQ(table[i][2], r.params) << s;
  }
  EXPECT_NE(s.find("Total params: 3,274,634"), std::string::npos) << s;
  EXPECT_NE(s.find("Trainable params: 3,274,634"), std::string::npos) << s;
  EXPECT_NE(s.find("Non-trainable params: 0"), std::string::npos) << s;
  EXPECT_EQ(s.find("Model: \"sequential\""), 0u) << s;
}

TEST(NnSequential, KerasDefaultNamesForEveryLayerType) {
  Sequential m;
  auto& in = m.add<InputLayer>(Shape{8, 8, 3});
  EXPECT_EQ(in.name(), "input_layer");
  m.add<ZeroPadding2D>(1, 1, 1, 1);
  m.add<Conv2D>(conv(4, 3));
  m.add<Conv2D>(conv(4, 3));
  m.add<DepthwiseConv2D>(DepthwiseConv2dLayerOptions{.conv = {.kernel_size = {3, 3}, .padding = Padding::same()}});
  m.add<SeparableConv2D>(SeparableConv2dLayerOptions{.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same()});
  m.add<BatchNormalization>();
  m.add<ActivationLayer>(ActivationFn::parse("relu"));
  m.add<Pooling2D>(PoolKind::average, Pool2dParams{.pool_size = {2, 2}});
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  m.add<GlobalPooling2D>(PoolKind::average);
  m.add<Dropout>(0.5f);
  m.add<Dense>(DenseOptions{.units = 3});
  m.build();
  const char* expected[] = {"zero_padding2d", "conv2d", "conv2d_1", "depthwise_conv2d", "separable_conv2d",
                            "batch_normalization", "activation", "average_pooling2d", "max_pooling2d",
                            "global_average_pooling2d", "dropout", "dense"};
  ASSERT_EQ(m.size(), std::size(expected));
  for (std::size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m.layer(i).name(), expected[i]);
  EXPECT_EQ(m.find("separable_conv2d"), &m.layer(4));
  EXPECT_EQ(m.find("nope"), nullptr);
  // Shapes: 8 -> pad 10 -> same convs 10 -> avg 5 -> max 2 -> global (None, 4) -> dense (None, 3).
  EXPECT_EQ(m.layer_output_shape(0), (Shape{-1, 10, 10, 3}));
  EXPECT_EQ(m.layer_output_shape(7), (Shape{-1, 5, 5, 4}));
  EXPECT_EQ(m.layer_output_shape(8), (Shape{-1, 2, 2, 4}));
  EXPECT_EQ(m.layer_output_shape(9), (Shape{-1, 4}));
  EXPECT_EQ(m.output_shape(), (Shape{-1, 3}));
  // BatchNormalization's moving statistics are the model's only non-trainable parameters.
  EXPECT_EQ(m.count_params(false), 2 * 4);
  // A user name that collides with a future default moves the default on.
  Sequential n;
  n.add<InputLayer>(Shape{4});
  auto d = std::make_unique<Dense>(DenseOptions{.units = 2});
  d->set_name("dense_1");
  n.add(std::move(d));
  n.add<Dense>(DenseOptions{.units = 2});
  n.add<Dense>(DenseOptions{.units = 2});
  EXPECT_EQ(n.layer(1).name(), "dense");
  EXPECT_EQ(n.layer(2).name(), "dense_2");
}

TEST(NnSequential, DuplicateNamesAreRejected) {
  Sequential m;
  m.add<InputLayer>(Shape{4});
  auto a = std::make_unique<Dense>(DenseOptions{.units = 2});
  a->set_name("head");
  m.add(std::move(a));
  auto b = std::make_unique<Dense>(DenseOptions{.units = 2});
  b->set_name("head");
  expect_error([&] { m.add(std::move(b)); }, {"'head'", "already"});
  EXPECT_EQ(m.size(), 1u);
}

TEST(NnSequential, InputLayerOnlyFirstAndOnlyOnce) {
  Sequential m;
  m.add<Dense>(DenseOptions{.units = 2});
  expect_error([&] { m.add<InputLayer>(Shape{4}); }, {"InputLayer", "first"});
  Sequential twice;
  twice.add<InputLayer>(Shape{4});
  expect_error([&] { twice.add<InputLayer>(Shape{4}); }, {"InputLayer", "once"});
  Sequential no_input;
  no_input.add<Dense>(DenseOptions{.units = 2});
  expect_error([&] { no_input.build(); }, {"Input"});
  Sequential empty;
  empty.add<InputLayer>(Shape{4});
  expect_error([&] { empty.build(); }, {"no layers"});
  expect_error([] { InputLayer bad(Shape{4, 0}); }, {"positive"});
}

TEST(NnSequential, ShapeInferenceErrorsNameTheLayer) {
  Sequential m;
  m.add<InputLayer>(Shape{6, 6, 1});
  m.add<Conv2D>(conv(2, 3, Padding::valid()));  // 6 -> 4
  m.add<Conv2D>(conv(2, 5, Padding::valid()));  // 5 > 4
  expect_error([&] { m.build(); }, {"'conv2d_1'", "Conv2D", "(None, 4, 4, 2)"});

  Sequential flat;
  flat.add<InputLayer>(Shape{10});
  flat.add<Dense>(DenseOptions{.units = 5});
  flat.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  expect_error([&] { flat.build(); }, {"'max_pooling2d'", "(None, 5)", "4-D"});

  Sequential pad;
  pad.add<InputLayer>(Shape{3, 3});
  pad.add<ZeroPadding2D>(1, 1, 1, 1);
  expect_error([&] { pad.build(); }, {"'zero_padding2d'", "(None, 3, 3)"});

  // A built model rejects an input of another shape, naming the layer.
  Sequential ok;
  ok.add<InputLayer>(Shape{5});
  ok.add<Dense>(DenseOptions{.units = 2});
  ok.build();
  expect_error([&] { ok.forward(Tensor({3, 4}), false); }, {"'dense'", "(3, 4)"});
}

TEST(NnLayers, ConstructionErrorsNameTheParameter) {
  expect_error([] { Dense(DenseOptions{.units = 0}); }, {"units", "0"});
  expect_error([] { Dropout(1.0f); }, {"rate", "1"});
  expect_error([] { Dropout(-0.1f); }, {"rate"});
  expect_error([] { ZeroPadding2D(0, -1, 0, 0); }, {"padding", "-1"});
  expect_error([] { BatchNormalization(BatchNormOptions{.momentum = 1.5f}); }, {"momentum", "1.5"});
  expect_error([] { BatchNormalization(BatchNormOptions{.epsilon = 0.0f}); }, {"epsilon"});
  expect_error([] { Conv2D(conv(0, 3)); }, {"filters"});
  expect_error([] { SeparableConv2D(SeparableConv2dLayerOptions{.filters = 0, .kernel_size = {3, 3}}); },
               {"filters"});
  expect_error([] { DepthwiseConv2D(DepthwiseConv2dLayerOptions{.conv = {.kernel_size = {3, 3}, .depth_multiplier = 0}}); },
               {"depth_multiplier"});
  expect_error([] { ActivationFn::parse("gelu"); }, {"gelu", "leaky_relu"});
  expect_error([] { parse_initializer("random"); }, {"random", "glorot_uniform"});
  // Forward before build, and forward with another input shape, name the layer.
  Dense d(DenseOptions{.units = 2});
  expect_error([&] { d.forward(Tensor({1, 3}), false); }, {"before build"});
}

TEST(NnLayers, ActivationDefaultsAreKeras) {
  EXPECT_FLOAT_EQ(ActivationFn::parse("leaky_relu").alpha, 0.2f);  // Keras 3 negative_slope
  EXPECT_FLOAT_EQ(ActivationFn::parse("elu").alpha, 1.0f);
  Tensor x({1, 3}, {-1.0f, 0.0f, 2.0f});
  Tensor y = x;
  ActivationFn::parse("leaky_relu").forward(y);
  EXPECT_FLOAT_EQ(y[0], -0.2f);
  EXPECT_FLOAT_EQ(y[2], 2.0f);
  // softmax is over the last axis: each row of a (2, 3) tensor sums to 1 independently.
  Tensor s({2, 3}, {1, 2, 3, -5, 0, 5});
  ActivationFn::parse("softmax").forward(s);
  EXPECT_NEAR(s[0] + s[1] + s[2], 1.0, 1e-6);
  EXPECT_NEAR(s[3] + s[4] + s[5], 1.0, 1e-6);
  EXPECT_NEAR(s[2] / s[1], std::exp(1.0), 1e-5);
}

// ---- Dropout in training mode: structural and statistical properties -------------------------------------------

TEST(NnDropout, TrainingMaskScaleAndStatistics) {
  constexpr float kRate = 0.4f;
  Dropout d(kRate, 5);
  Rng rng(0);
  d.build({-1, 100000}, rng);
  Tensor x({1, 100000});
  for (int64_t i = 0; i < x.size(); ++i) x[i] = 0.5f + float(i % 7);
  const Tensor y = d.forward(x, true);
  Tensor dy({1, 100000});
  for (int64_t i = 0; i < dy.size(); ++i) dy[i] = 1.0f - float(i % 3);
  const Tensor dx = d.backward(dy);
  int64_t zeros = 0;
  double sum_x = 0, sum_y = 0;
  for (int64_t i = 0; i < x.size(); ++i) {
    sum_x += x[i];
    sum_y += y[i];
    if (y[i] == 0.0f) {
      ++zeros;
      EXPECT_EQ(dx[i], 0.0f) << i;  // the same mask backward
    } else {
      // Inverted dropout: kept values are scaled by 1 / (1 - rate), and so is their gradient.
      ASSERT_NEAR(y[i], double(x[i]) / (1.0 - kRate), 1e-6 * x[i]) << i;
      ASSERT_NEAR(dx[i], double(dy[i]) / (1.0 - kRate), 1e-6) << i;
    }
  }
  // Binomial(1e5, 0.4): standard deviation 0.0015 of the fraction; 0.01 is > 6 of them.
  EXPECT_NEAR(double(zeros) / double(x.size()), kRate, 0.01);
  // The expectation is kept: E[y] = x. Relative standard deviation of the sum ~ 0.3 %; allow 2 %.
  EXPECT_NEAR(sum_y / sum_x, 1.0, 0.02);

  // Another forward draws another mask; the same seed in a new layer repeats the first one.
  const Tensor y2 = d.forward(x, true);
  EXPECT_NE(std::memcmp(y.data(), y2.data(), sizeof(float) * std::size_t(y.size())), 0);
  Dropout again(kRate, 5);
  Rng other(123);
  again.build({-1, 100000}, other);
  const Tensor y3 = again.forward(x, true);
  EXPECT_EQ(std::memcmp(y.data(), y3.data(), sizeof(float) * std::size_t(y.size())), 0);

  // Inference, and rate 0 in training: the identity, and the identity backward.
  const Tensor yi = d.forward(x, false);
  EXPECT_EQ(std::memcmp(yi.data(), x.data(), sizeof(float) * std::size_t(x.size())), 0);
  const Tensor dxi = d.backward(dy);
  EXPECT_EQ(std::memcmp(dxi.data(), dy.data(), sizeof(float) * std::size_t(dy.size())), 0);
  Dropout none(0.0f);
  none.build({-1, 100000}, rng);
  const Tensor y0 = none.forward(x, true);
  EXPECT_EQ(std::memcmp(y0.data(), x.data(), sizeof(float) * std::size_t(x.size())), 0);
}

// The mask is the rule as written: element i kept (scaled by 1 / (1 - rate)) exactly when the i-th uniform() of
// the layer's generator is >= rate. The layer compares the raw 24-bit integers with ceil(rate * 2^24) instead;
// rates with rate * 2^24 whole and not, tiny and near 1. (A draw landing exactly on the threshold, where ceil
// against floor would show, is a 2^-24 chance per element: that rounding is argued in the layer, not sampled.)
TEST(NnDropout, MaskIsUniformAtLeastRate) {
  for (const float rate : {0.4f, 0.5f, 0.25f, 1.0f / 3.0f, 1e-7f, 0.999f, 0.99999994f}) {
    constexpr int64_t kN = 20000;
    Dropout d(rate, 11);
    Rng unused(0);
    d.build({-1, kN}, unused);
    const Tensor y = d.forward(Tensor({1, kN}, 1.0f), true);
    Rng draws(11);
    const float scale = 1.0f / (1.0f - rate);
    int64_t wrong = 0, kept = 0;
    for (int64_t i = 0; i < kN; ++i) {
      const float want = draws.uniform() >= rate ? scale : 0.0f;
      const float got = y[i];
      kept += want != 0.0f;
      if (std::memcmp(&got, &want, sizeof want) != 0 && ++wrong <= 3)
        ADD_FAILURE() << "rate " << rate << ": element " << i << " is " << got << ", want " << want;
    }
    EXPECT_EQ(wrong, 0) << "rate " << rate;
    if (rate < 0.5f) EXPECT_GT(kept, 0) << "rate " << rate;
  }
}

// ---- initialisers -------------------------------------------------------------------------------------------

struct Stats {
  double mean = 0, var = 0, max_abs = 0;
};

Stats stats(const Tensor& t) {
  Stats s;
  for (float v : t.values()) s.mean += v;
  s.mean /= double(t.size());
  for (float v : t.values()) {
    s.var += (v - s.mean) * (v - s.mean);
    s.max_abs = std::max(s.max_abs, std::fabs(double(v)));
  }
  s.var /= double(t.size());
  return s;
}

// Keras' VarianceScaling: a conv kernel (kh, kw, in, out) has fan_in = kh*kw*in, fan_out = kh*kw*out; uniform
// draws in [-limit, limit] with limit = sqrt(3 scale / n) (variance limit^2 / 3 = scale / n); "normal" draws a
// truncated normal (cut at 2 standard deviations) whose stddev is sqrt(scale / n) / 0.87962566 so that the
// variance is scale / n. glorot: scale 1, n = (fan_in + fan_out) / 2; he: scale 2, n = fan_in; lecun: scale 1,
// n = fan_in.
TEST(NnInitializers, StatisticsMatchKerasDefinitions) {
  const Shape kernel{3, 3, 64, 128};  // 73,728 values
  const double fan_in = 3 * 3 * 64, fan_out = 3 * 3 * 128;
  struct Case {
    Initializer init;
    double variance;
    bool uniform;
  };
  const Case cases[] = {{Initializer::glorot_uniform, 2.0 / (fan_in + fan_out), true},
                        {Initializer::he_uniform, 2.0 / fan_in, true},
                        {Initializer::glorot_normal, 2.0 / (fan_in + fan_out), false},
                        {Initializer::he_normal, 2.0 / fan_in, false},
                        {Initializer::lecun_normal, 1.0 / fan_in, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(to_string(c.init));
    Tensor t(kernel);
    Rng rng(17);
    initialize(t, c.init, rng);
    const Stats s = stats(t);
    const double sd = std::sqrt(c.variance);
    // Sample variance: relative standard error sqrt((kurtosis - 1) / N) <= 0.5 %; allow 3 %.
    EXPECT_NEAR(s.var / c.variance, 1.0, 0.03);
    EXPECT_LT(std::fabs(s.mean), 5 * sd / std::sqrt(double(t.size())));
    if (c.uniform) {
      const double limit = std::sqrt(3.0 * c.variance);
      EXPECT_LE(s.max_abs, limit * (1 + 1e-6));
      EXPECT_GT(s.max_abs, 0.999 * limit);  // 73,728 draws reach the edge
    } else {
      const double cut = 2.0 * sd / 0.87962566103423978;  // truncation at two of the untruncated stddevs
      EXPECT_LE(s.max_abs, cut * (1 + 1e-6));
      EXPECT_GT(s.max_abs, 0.99 * cut);
    }
    // Same seed: the same values; another seed: other values.
    Tensor again(kernel), other(kernel);
    Rng r1(17), r2(18);
    initialize(again, c.init, r1);
    initialize(other, c.init, r2);
    EXPECT_EQ(std::memcmp(t.data(), again.data(), sizeof(float) * std::size_t(t.size())), 0);
    EXPECT_NE(std::memcmp(t.data(), other.data(), sizeof(float) * std::size_t(t.size())), 0);
  }
  // Dense kernels (in, out) and rank-1 tensors: fan_in = shape[0] (= fan_out for rank 1).
  Tensor dense({400, 100});
  Rng rng(3);
  initialize(dense, Initializer::he_uniform, rng);
  EXPECT_NEAR(stats(dense).max_abs, std::sqrt(6.0 / 400), 1e-3 * std::sqrt(6.0 / 400));
  Tensor vec({50000});
  initialize(vec, Initializer::glorot_uniform, rng);
  EXPECT_NEAR(stats(vec).max_abs, std::sqrt(6.0 / 100000), 1e-3 * std::sqrt(6.0 / 100000));
  Tensor z({10}, 5.0f), o({10});
  initialize(z, Initializer::zeros, rng);
  initialize(o, Initializer::ones, rng);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(z[i], 0.0f);
    EXPECT_EQ(o[i], 1.0f);
  }
  for (Initializer i : {Initializer::glorot_uniform, Initializer::glorot_normal, Initializer::he_normal,
                        Initializer::he_uniform, Initializer::lecun_normal, Initializer::zeros, Initializer::ones})
    EXPECT_EQ(parse_initializer(to_string(i)), i);
}

TEST(NnInitializers, LayersUseTheirInitializersAndTheModelSeed) {
  Sequential a = fashion_cnn(7), b = fashion_cnn(7), c = fashion_cnn(8);
  auto wa = a.weights(), wb = b.weights(), wc = c.weights();
  ASSERT_EQ(wa.size(), 8u);
  bool any_differs = false;
  for (std::size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(std::memcmp(wa[i]->value.data(), wb[i]->value.data(), sizeof(float) * std::size_t(wa[i]->value.size())),
              0)
        << wa[i]->name;
    any_differs = any_differs || std::memcmp(wa[i]->value.data(), wc[i]->value.data(),
                                             sizeof(float) * std::size_t(wa[i]->value.size())) != 0;
  }
  EXPECT_TRUE(any_differs);
  // Biases start at zero (bias_initializer zeros); the first kernel is glorot_uniform over (5, 5, 1, 32).
  const Weight* bias = a.layer(0).weights()[1];
  for (float v : bias->value.values()) EXPECT_EQ(v, 0.0f);
  const double limit = std::sqrt(6.0 / (25 * 1 + 25 * 32));
  EXPECT_LE(stats(a.layer(0).weights()[0]->value).max_abs, limit * (1 + 1e-6));
  EXPECT_GT(stats(a.layer(0).weights()[0]->value).max_abs, 0.95 * limit);
  // Keras' weight names and BatchNormalization's initial state: gamma 1, beta 0, moving mean 0, variance 1.
  BatchNormalization bn;
  Rng rng(0);
  bn.build({-1, 3}, rng);
  const auto ws = bn.weights();
  ASSERT_EQ(ws.size(), 4u);
  const char* names[] = {"gamma", "beta", "moving_mean", "moving_variance"};
  const float init[] = {1.0f, 0.0f, 0.0f, 1.0f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(ws[std::size_t(i)]->name, names[i]);
    EXPECT_EQ(ws[std::size_t(i)]->trainable, i < 2);
    for (float v : ws[std::size_t(i)]->value.values()) EXPECT_EQ(v, init[i]);
  }
}

}  // namespace
