// Model files and checkpoints (src/nn/model_file.cpp): save/load round trips per layer type, corrupt files, and
// checkpoints that resume training bit for bit.
#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "convkit/io.hpp"
#include "convkit/safetensors.hpp"
#include "convkit/serialize.hpp"
#include "convkit/train.hpp"
#include "nn_io/test_util.hpp"

namespace convkit {
namespace {

using nn_io_test::expect_error;
using nn_io_test::random_tensor;
using nn_io_test::same_bits;
using nn_io_test::TempDir;

// Gives every weight values no initializer would produce (so a load that silently re-initialised would show), with
// BatchNormalization's moving variance kept positive.
void perturb(Sequential& m, uint64_t seed) {
  for (Weight* w : m.weights()) {
    const bool variance = w->name == "moving_variance";
    w->value = random_tensor(w->value.shape(), seed++, variance ? 0.5f : -1.0f, variance ? 1.5f : 1.0f);
  }
}

void expect_same_weights(Sequential& a, Sequential& b) {
  const auto wa = a.weights(), wb = b.weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) {
    SCOPED_TRACE(wa[i]->name);
    EXPECT_EQ(wa[i]->name, wb[i]->name);
    EXPECT_EQ(wa[i]->trainable, wb[i]->trainable);
    EXPECT_TRUE(same_bits(wa[i]->value, wb[i]->value));
  }
}

// ---- one round trip per layer type -------------------------------------------------------------------------------

struct LayerCase {
  std::string name;
  std::function<void(Sequential&)> add;  // the layer under test (and what it needs around it)
  Shape input;                           // without batch
};

std::vector<LayerCase> layer_cases() {
  const auto conv = [](Sequential& m) {
    m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 3, .kernel_size = {3, 3}, .padding = Padding::same()},
                                     .activation = ActivationFn::parse("relu")});
  };
  return {
      {"InputLayer_Dense", [](Sequential& m) { m.add<Dense>(DenseOptions{.units = 3}); }, {5}},
      {"Conv2D", conv, {6, 6, 2}},
      {"Conv2D_grouped_reflect",
       [](Sequential& m) {
         m.add<Conv2D>(Conv2dLayerOptions{
             .conv = {.filters = 4, .kernel_size = {3, 2}, .strides = {2, 1},
                      .padding = Padding::explicit_pad(1, 0, 1, 1), .groups = 2, .use_bias = false,
                      .padding_mode = PaddingMode::reflect},
             .activation = {ActivationFn::Kind::leaky_relu, 0.05f}});
       },
       {7, 6, 4}},
      {"DepthwiseConv2D",
       [](Sequential& m) {
         m.add<DepthwiseConv2D>(DepthwiseConv2dLayerOptions{
             .conv = {.kernel_size = {3, 3}, .padding = Padding::same(), .depth_multiplier = 2},
             .activation = ActivationFn::parse("tanh")});
       },
       {6, 5, 3}},
      {"SeparableConv2D",
       [](Sequential& m) {
         m.add<SeparableConv2D>(SeparableConv2dLayerOptions{.filters = 4, .kernel_size = {3, 3}, .depth_multiplier = 2,
                                                            .activation = ActivationFn::parse("elu")});
       },
       {6, 6, 3}},
      {"MaxPooling2D",
       [conv](Sequential& m) {
         conv(m);
         m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}, .ceil_mode = true});
       },
       {7, 7, 2}},
      {"AveragePooling2D",
       [conv](Sequential& m) {
         conv(m);
         m.add<Pooling2D>(PoolKind::average,
                          Pool2dParams{.pool_size = {3, 3}, .strides = Size2{2, 2}, .padding = Padding::same()});
       },
       {7, 7, 2}},
      {"GlobalAveragePooling2D",
       [conv](Sequential& m) {
         conv(m);
         m.add<GlobalPooling2D>(PoolKind::average);
       },
       {5, 5, 2}},
      {"GlobalMaxPooling2D",
       [conv](Sequential& m) {
         conv(m);
         m.add<GlobalPooling2D>(PoolKind::max);
       },
       {5, 5, 2}},
      {"Dense",
       [](Sequential& m) { m.add<Dense>(DenseOptions{.units = 4, .activation = ActivationFn::parse("sigmoid")}); },
       {6}},
      {"Flatten",
       [conv](Sequential& m) {
         conv(m);
         m.add<Flatten>();
         m.add<Dense>(DenseOptions{.units = 2});
       },
       {4, 4, 2}},
      {"Dropout",
       [](Sequential& m) {
         m.add<Dense>(DenseOptions{.units = 4});
         m.add<Dropout>(0.5f, uint64_t{11});
       },
       {3}},
      {"BatchNormalization", [](Sequential& m) { m.add<BatchNormalization>(BatchNormOptions{.momentum = 0.8f}); },
       {4, 4, 3}},
      {"BatchNormalization_no_center",
       [](Sequential& m) { m.add<BatchNormalization>(BatchNormOptions{.center = false}); }, {5}},
      {"Activation",
       [conv](Sequential& m) {
         conv(m);
         m.add<ActivationLayer>(ActivationFn::parse("softmax"));
       },
       {4, 4, 2}},
      {"ZeroPadding2D",
       [conv](Sequential& m) {
         m.add<ZeroPadding2D>(1, 0, 2, 3);
         conv(m);
       },
       {4, 4, 2}},
  };
}

void PrintTo(const LayerCase& c, std::ostream* os) { *os << c.name; }

class NnIoFileLayer : public ::testing::TestWithParam<LayerCase> {};

TEST_P(NnIoFileLayer, SaveLoadRoundTrip) {
  const LayerCase& c = GetParam();
  TempDir dir;
  Sequential m("roundtrip");
  m.add<InputLayer>(c.input);
  c.add(m);
  m.build(1234);  // not the seed load_model builds with, so equal weights cannot come from equal initialisation
  perturb(m, 99);
  Shape xs{5};
  xs.insert(xs.end(), c.input.begin(), c.input.end());
  const Tensor x = random_tensor(xs, 7);
  // Training forwards move BatchNormalization's statistics (and Dropout's stream) away from their start.
  for (int i = 0; i < 3; ++i) m.forward(random_tensor(xs, 100 + uint64_t(i)), true);
  const Tensor y = m.predict(x);

  const std::string path = dir.file("model.safetensors");
  save_model(path, m);
  Sequential loaded = load_model(path);
  expect_same_weights(m, loaded);
  EXPECT_TRUE(same_bits(loaded.predict(x), y));
  EXPECT_EQ(loaded.summary(), m.summary());
  EXPECT_EQ(model_to_json(loaded), model_to_json(m));

  // The file holds exactly "<layer>/<weight>" for every weight, and the metadata.
  const SafetensorsFile f = read_safetensors(path);
  std::size_t n = 0;
  for (std::size_t i = 0; i < m.size(); ++i)
    for (Weight* w : m.layer(i).weights()) {
      const std::string name = m.layer(i).name() + "/" + w->name;
      ASSERT_TRUE(f.tensors.count(name)) << name;
      EXPECT_TRUE(same_bits(f.tensors.at(name), w->value)) << name;
      ++n;
    }
  EXPECT_EQ(f.tensors.size(), n);
  EXPECT_EQ(f.metadata.at("format"), "convkit");
  EXPECT_EQ(f.metadata.at("architecture"), model_to_json(m));
  EXPECT_EQ(f.metadata.at("convkit_version"), "0.1.0");
  EXPECT_EQ(f.metadata.size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Layers, NnIoFileLayer, ::testing::ValuesIn(layer_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(NnIoFile, BatchNormStatisticsPreserved) {
  TempDir dir;
  Sequential m;
  m.add<InputLayer>(Shape{3, 3, 4});
  m.add<BatchNormalization>();
  m.build(1);
  for (int i = 0; i < 4; ++i) m.forward(random_tensor({8, 3, 3, 4}, uint64_t(i), 2.0f, 5.0f), true);
  auto* bn = dynamic_cast<BatchNormalization*>(&m.layer(0));
  const auto ws = bn->weights();
  ASSERT_EQ(ws.size(), 4u);
  ASSERT_EQ(ws[2]->name, "moving_mean");
  // The statistics moved away from (0, 1) towards the data's mean 3.5.
  EXPECT_GT(ws[2]->value[0], 0.1f);
  save_model(dir.file("bn.safetensors"), m);
  Sequential loaded = load_model(dir.file("bn.safetensors"));
  const auto lw = loaded.layer(0).weights();
  EXPECT_TRUE(same_bits(lw[2]->value, ws[2]->value));
  EXPECT_TRUE(same_bits(lw[3]->value, ws[3]->value));
  EXPECT_FALSE(lw[2]->trainable);
  EXPECT_FALSE(lw[3]->trainable);
}

TEST(NnIoFile, ExampleArchitecturesSaveAndLoad) {
  TempDir dir;
  Sequential m = load_model_json(std::string(CONVKIT_EXAMPLES) + "/fashion_bn_cnn.json");
  m.build(5);
  save_model(dir.file("bn_cnn.safetensors"), m);
  Sequential loaded = load_model(dir.file("bn_cnn.safetensors"));
  expect_same_weights(m, loaded);
  const Tensor x = random_tensor({2, 28, 28, 1}, 3, 0.0f, 1.0f);
  EXPECT_TRUE(same_bits(loaded.predict(x), m.predict(x)));
}

TEST(NnIoFile, SaveNeedsBuiltModel) {
  TempDir dir;
  Sequential m;
  m.add<InputLayer>(Shape{3});
  m.add<Dense>(DenseOptions{.units = 2});
  expect_error([&] { save_model(dir.file("m.safetensors"), m); }, {"built"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.safetensors")));
}

// ---- corrupt model files ---------------------------------------------------------------------------------------

class NnIoFileCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    Sequential m("small");
    m.add<InputLayer>(Shape{4, 4, 1});
    m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 2, .kernel_size = {3, 3}}});
    m.add<Flatten>();
    m.add<Dense>(DenseOptions{.units = 3});
    m.build(2);
    path_ = dir_.file("good.safetensors");
    save_model(path_, m);
    good_ = read_safetensors(path_);
  }
  // Writes a modified copy of the good file and returns its path.
  std::string variant(const std::function<void(SafetensorsFile&)>& change) {
    SafetensorsFile f = good_;
    change(f);
    const std::string p = dir_.file("bad.safetensors");
    write_safetensors(p, f);
    return p;
  }
  TempDir dir_;
  std::string path_;
  SafetensorsFile good_;
};

TEST_F(NnIoFileCorrupt, WrongTensorShape) {
  const std::string p = variant([](SafetensorsFile& f) { f.tensors["dense/kernel"] = Tensor({3, 8}); });
  expect_error([&] { load_model(p); }, {p, "'dense/kernel' has shape (3, 8)", "layer 'dense' (Dense) needs (8, 3)"});
}

TEST_F(NnIoFileCorrupt, MissingTensor) {
  const std::string p = variant([](SafetensorsFile& f) { f.tensors.erase("conv2d/bias"); });
  expect_error([&] { load_model(p); }, {p, "missing tensor 'conv2d/bias'", "layer 'conv2d' (Conv2D)", "(2,)"});
}

TEST_F(NnIoFileCorrupt, ExtraTensor) {
  const std::string p = variant([](SafetensorsFile& f) { f.tensors["dense/extra"] = Tensor({2}); });
  expect_error([&] { load_model(p); }, {p, "extra tensor 'dense/extra'"});
  // Optimizer slots belong in checkpoints only.
  const std::string q = variant([](SafetensorsFile& f) { f.tensors["optimizer/0/m"] = Tensor({2}); });
  expect_error([&] { load_model(q); }, {"extra tensor 'optimizer/0/m'"});
}

TEST_F(NnIoFileCorrupt, MetadataProblems) {
  std::string p = variant([](SafetensorsFile& f) { f.metadata.erase("architecture"); });
  expect_error([&] { load_model(p); }, {p, "\"architecture\""});
  p = variant([](SafetensorsFile& f) { f.metadata.erase("format"); });
  expect_error([&] { load_model(p); }, {p, "\"format\"", "not a convkit model file"});
  p = variant([](SafetensorsFile& f) { f.metadata["format"] = "pt"; });
  expect_error([&] { load_model(p); }, {p, "'pt'"});
  p = variant([](SafetensorsFile& f) { f.metadata.clear(); });
  expect_error([&] { load_model(p); }, {p, "not a convkit model file"});
  p = variant([](SafetensorsFile& f) { f.metadata["architecture"] = "{\"class_name\": "; });
  expect_error([&] { load_model(p); }, {p, "architecture", "invalid JSON"});
  // An architecture whose weights do not match the tensors: Dense 4 instead of 3.
  p = variant([](SafetensorsFile& f) {
    std::string& a = f.metadata["architecture"];
    a.replace(a.find("\"units\":3"), 9, "\"units\":4");
  });
  expect_error([&] { load_model(p); }, {p, "'dense/kernel'", "(8, 3)", "(8, 4)"});
}

TEST_F(NnIoFileCorrupt, TruncatedFile) {
  const std::string bytes = read_file(path_);
  const std::string p = dir_.file("truncated.safetensors");
  for (std::size_t keep : {std::size_t(4), std::size_t(20), bytes.size() - 4}) {
    SCOPED_TRACE(keep);
    write_file_atomic(p, bytes.substr(0, keep));
    expect_error([&] { load_model(p); }, {p});
  }
  expect_error([] { load_model("/nonexistent/convkit/m.safetensors"); }, {"/nonexistent/convkit/m.safetensors"});
}

TEST_F(NnIoFileCorrupt, GoodFileLoads) {  // the control for the cases above
  Sequential m = load_model(path_);
  EXPECT_EQ(m.name(), "small");
  EXPECT_EQ(m.count_params(), 3 * 3 * 2 + 2 + 8 * 3 + 3);
}

// ---- checkpoints -------------------------------------------------------------------------------------------------

Sequential checkpoint_model() {
  Sequential m("ckpt");
  m.add<InputLayer>(Shape{6, 6, 2});
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 3, .kernel_size = {3, 3}, .padding = Padding::same()},
                                   .activation = ActivationFn::parse("relu")});
  m.add<BatchNormalization>();
  m.add<Dropout>(0.3f);
  m.add<Flatten>();
  m.add<Dense>(DenseOptions{.units = 4});
  return m;
}

void train_step(Sequential& m, Optimizer& opt, const Tensor& x, const Tensor& y) {
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const Tensor pred = m.forward(x, true);
  Tensor d;
  loss->compute(pred, y, &d);
  m.backward(d);
  opt.step(m.trainable_weights(), 0.01f);
}

struct OptimizerCase {
  std::string name;
  std::function<std::unique_ptr<Optimizer>()> make;
};

void PrintTo(const OptimizerCase& c, std::ostream* os) { *os << c.name; }

class NnIoCheckpoint : public ::testing::TestWithParam<OptimizerCase> {
 protected:
  Tensor x_ = random_tensor({8, 6, 6, 2}, 1);
  Tensor y_ = Tensor({8}, {0, 1, 2, 3, 3, 2, 1, 0});
};

// One more step after save + load equals one more step without them, bit for bit: weights, BatchNormalization
// statistics, optimizer slots and the Dropout masks all carry over.
TEST_P(NnIoCheckpoint, ResumesBitIdentical) {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  Sequential a = checkpoint_model();
  a.build(42);
  auto opt_a = GetParam().make();
  for (int i = 0; i < 3; ++i) train_step(a, *opt_a, x_, y_);
  const TrainingProgress progress{.epoch = 3, .seed = 0xfeedfacecafebeefULL, .monitor = "val_loss",
                                  .best_metric = 0.125, .epochs_since_best = 1};
  save_checkpoint(path, a, *opt_a, progress);
  train_step(a, *opt_a, x_, y_);  // the uninterrupted run

  Sequential b = load_model(path);  // a checkpoint is also a model file
  auto opt_b = GetParam().make();
  const TrainingProgress got = load_checkpoint(path, b, *opt_b);
  EXPECT_EQ(got, progress);
  EXPECT_EQ(opt_b->iterations, 3);
  train_step(b, *opt_b, x_, y_);  // the resumed run
  expect_same_weights(a, b);
  EXPECT_EQ(opt_b->iterations, opt_a->iterations);
  const auto sa = opt_a->state(), sb = opt_b->state();
  ASSERT_EQ(sa.size(), sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(same_bits(*sa[i].second, *sb[i].second)) << sa[i].first;
  }
  const Tensor probe = random_tensor({3, 6, 6, 2}, 5);
  EXPECT_TRUE(same_bits(a.predict(probe), b.predict(probe)));

  // The control: the weights alone (a fresh optimizer and fresh Dropout streams) do not resume the same run, so the
  // comparison above can fail.
  Sequential c = load_model(path);
  auto opt_c = GetParam().make();
  train_step(c, *opt_c, x_, y_);
  bool all_equal = true;
  const auto wa = a.weights(), wc = c.weights();
  for (std::size_t i = 0; i < wa.size(); ++i) all_equal = all_equal && same_bits(wa[i]->value, wc[i]->value);
  EXPECT_FALSE(all_equal);
}

TEST_P(NnIoCheckpoint, FileLayout) {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  Sequential a = checkpoint_model();
  a.build(1);
  auto opt = GetParam().make();
  save_checkpoint(path, a, *opt, TrainingProgress{});  // before any step: prepare() creates the (zero) slots
  const SafetensorsFile f = read_safetensors(path);
  std::size_t slots = 0;
  for (const auto& [name, t] : f.tensors)
    if (name.rfind("optimizer/", 0) == 0) ++slots;
  // Trainable weights: conv2d kernel + bias, BN gamma + beta, dense kernel + bias = 6; SGD has 1 slot each, Adam 2.
  EXPECT_EQ(slots, 6u * (GetParam().name == "SGD" ? 1 : 2));
  EXPECT_TRUE(f.tensors.count("optimizer/0/" + std::string(GetParam().name == "SGD" ? "velocity" : "m")));
  EXPECT_TRUE(f.tensors.count("batch_normalization/moving_variance"));
  for (const char* key : {"format", "architecture", "convkit_version", "optimizer", "training"})
    EXPECT_TRUE(f.metadata.count(key)) << key;
  EXPECT_NE(f.metadata.at("optimizer").find("\"name\":\"" + opt->name() + "\""), std::string::npos);
  EXPECT_NE(f.metadata.at("optimizer").find("\"conv2d/kernel\""), std::string::npos);
  EXPECT_NE(f.metadata.at("training").find("\"dropout\""), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Optimizers, NnIoCheckpoint,
    ::testing::Values(OptimizerCase{"Adam", [] { return make_adam(); }},
                      OptimizerCase{"AdamW", [] { return make_adamw(); }},
                      OptimizerCase{"SGD", [] { return make_sgd({.momentum = 0.9f, .nesterov = true}); }}),
    [](const auto& info) { return info.param.name; });

class NnIoCheckpointErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    Sequential a = checkpoint_model();
    a.build(3);
    auto opt = make_adam({.beta_1 = 0.8f});
    train_step(a, *opt, random_tensor({4, 6, 6, 2}, 1), Tensor({4}, {0, 1, 2, 3}));
    path_ = dir_.file("ckpt.safetensors");
    save_checkpoint(path_, a, *opt, TrainingProgress{.epoch = 1});
    good_ = read_safetensors(path_);
  }
  // A model and optimizer to load into, and a snapshot to prove a failed load changes nothing.
  void expect_rejected(const std::string& path, Sequential& m, Optimizer& opt, const std::vector<std::string>& pieces) {
    std::vector<Tensor> before;
    for (Weight* w : m.weights()) before.push_back(w->value);
    const int64_t iterations = opt.iterations;
    expect_error([&] { load_checkpoint(path, m, opt); }, pieces);
    const auto ws = m.weights();
    for (std::size_t i = 0; i < ws.size(); ++i) EXPECT_TRUE(same_bits(ws[i]->value, before[i])) << ws[i]->name;
    EXPECT_EQ(opt.iterations, iterations);
  }
  std::string variant(const std::function<void(SafetensorsFile&)>& change) {
    SafetensorsFile f = good_;
    change(f);
    const std::string p = dir_.file("bad.safetensors");
    write_safetensors(p, f);
    return p;
  }
  TempDir dir_;
  std::string path_;
  SafetensorsFile good_;
};

TEST_F(NnIoCheckpointErrors, Rejections) {
  Sequential m = checkpoint_model();
  m.build(9);
  auto adam = make_adam({.beta_1 = 0.8f});
  auto sgd = make_sgd();
  auto other_adam = make_adam();
  expect_rejected(path_, m, *sgd, {path_, "Adam", "SGD"});
  expect_rejected(path_, m, *other_adam, {path_, "beta_1", "0.8", "0.9"});

  Sequential other = checkpoint_model();
  other.add<Dense>(DenseOptions{.units = 2});
  other.build(1);
  expect_rejected(path_, other, *adam, {path_, "architecture", "dense_1"});
  Sequential unbuilt = checkpoint_model();
  expect_error([&] { load_checkpoint(path_, unbuilt, *adam); }, {"built"});

  std::string p = variant([](SafetensorsFile& f) { f.tensors.erase("optimizer/0/m"); });
  expect_rejected(p, m, *adam, {p, "missing tensor 'optimizer/0/m'"});
  p = variant([](SafetensorsFile& f) { f.tensors["optimizer/5/v"] = Tensor({3}); });
  expect_rejected(p, m, *adam, {p, "'optimizer/5/v'", "(3,)"});
  p = variant([](SafetensorsFile& f) { f.tensors["optimizer/9/m"] = Tensor({3}); });
  expect_rejected(p, m, *adam, {p, "extra tensor 'optimizer/9/m'"});
  p = variant([](SafetensorsFile& f) { f.tensors.erase("dense/bias"); });
  expect_rejected(p, m, *adam, {p, "missing tensor 'dense/bias'"});
  p = variant([](SafetensorsFile& f) { f.metadata.erase("optimizer"); });
  expect_rejected(p, m, *adam, {p, "\"optimizer\"", "load_model"});
  p = variant([](SafetensorsFile& f) { f.metadata["training"] = "[]"; });
  expect_rejected(p, m, *adam, {p, "\"training\""});
  p = variant([](SafetensorsFile& f) {
    std::string& t = f.metadata["training"];
    t.replace(t.find("\"dropout\""), 9, "\"drop\"");
  });
  expect_rejected(p, m, *adam, {p, "Dropout layer 'dropout'"});

  // A plain model file is not a checkpoint.
  save_model(dir_.file("model.safetensors"), m);
  expect_rejected(dir_.file("model.safetensors"), m, *adam, {"\"optimizer\""});

  // The control: the good file loads into the same model and optimizer.
  EXPECT_EQ(load_checkpoint(path_, m, *adam).epoch, 1);
  EXPECT_EQ(adam->iterations, 1);
}

}  // namespace
}  // namespace convkit
