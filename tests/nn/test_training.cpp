// Training (src/nn/fit.cpp): the loss falls on a learnable problem, a diverging run stops with an error naming the
// first layer whose output is not finite, early stopping, bit-identical results for the same seeds, evaluate()
// against a computation written here, and the checks on fit's arguments.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "convkit/model.hpp"
#include "convkit/train.hpp"
#include "expect_error.hpp"

namespace {

using namespace convkit;

using test_support::error_message;

// Four classes of 8x8 images: class k has a bright bar (row k or column k - 2) on uniform noise. Linearly
// separable, learnable by a small CNN in a few epochs.
void synthetic_bars(int n, uint64_t seed, Tensor& x, Tensor& y) {
  x = Tensor({n, 8, 8, 1});
  y = Tensor({n});
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    const int k = int(rng.below(4));
    y[i] = float(k);
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c) {
        const bool bar = k < 2 ? r == 2 + 3 * k : c == 2 + 3 * (k - 2);
        x[(i * 8 + r) * 8 + c] = 0.5f * rng.uniform() + (bar ? 0.6f : 0.0f);
      }
  }
}

Sequential small_cnn(const Shape& input, int classes, uint64_t seed, float dropout = 0.0f) {
  Sequential m;
  m.add<InputLayer>(input);
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 8, .kernel_size = {3, 3}, .padding = Padding::same()},
                                   .activation = ActivationFn::parse("relu")});
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  m.add<Flatten>();
  if (dropout > 0) m.add<Dropout>(dropout);
  m.add<Dense>(DenseOptions{.units = classes});
  m.build(seed);
  return m;
}

bool same_weights(Sequential& a, Sequential& b) {
  auto wa = a.weights(), wb = b.weights();
  if (wa.size() != wb.size()) return false;
  for (std::size_t i = 0; i < wa.size(); ++i)
    if (wa[i]->value.shape() != wb[i]->value.shape() ||
        std::memcmp(wa[i]->value.data(), wb[i]->value.data(), sizeof(float) * std::size_t(wa[i]->value.size())) != 0)
      return false;
  return true;
}

TEST(NnFit, LossFallsOnSyntheticBars) {
  Tensor x, y;
  synthetic_bars(512, 1, x, y);
  Sequential m = small_cnn({8, 8, 1}, 4, 3);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_adam();
  const EvalResult before = evaluate(m, x, y, *loss);
  FitOptions o;
  o.epochs = 4;
  o.batch_size = 32;
  o.schedule.initial = 0.01f;
  const History h = fit(m, x, y, *loss, *opt, o);
  const EvalResult after = evaluate(m, x, y, *loss);
  ASSERT_EQ(h.epochs.size(), 4u);
  EXPECT_EQ(h.stopped_reason, "");
  EXPECT_NEAR(before.loss, std::log(4.0), 0.5);  // an untrained 4-class model is near chance
  EXPECT_LT(after.loss, 0.25 * before.loss) << "before " << before.loss << ", after " << after.loss;
  EXPECT_GT(after.accuracy, 0.95);
  EXPECT_LT(h.epochs.back().loss, h.epochs.front().loss);
  for (std::size_t i = 0; i < h.epochs.size(); ++i) {
    EXPECT_EQ(h.epochs[i].epoch, int(i) + 1);
    EXPECT_FLOAT_EQ(h.epochs[i].learning_rate, 0.01f);
  }
  EXPECT_EQ(opt->iterations, 4 * (512 / 32));
}

TEST(NnFit, LossFallsOnFashionMnist) {
  struct stat st {};
  const std::string dir(kFashionMnistDir);
  if (::stat(dir.c_str(), &st) != 0) GTEST_SKIP() << dir << " is not installed (Debian's dataset-fashion-mnist)";
  const Dataset ds = load_fashion_mnist(dir, Split::test);  // 10,000 images: quicker to load than 60,000
  constexpr int kN = 2000;
  ASSERT_GE(ds.images.dim(0), kN);
  Tensor x({kN, 28, 28, 1}), y({kN});
  std::memcpy(x.data(), ds.images.data(), sizeof(float) * std::size_t(x.size()));
  for (int i = 0; i < kN; ++i) y[i] = float(ds.labels[std::size_t(i)]);
  Sequential m = small_cnn({28, 28, 1}, 10, 5);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_adam();
  const EvalResult before = evaluate(m, x, y, *loss);
  FitOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  const History h = fit(m, x, y, *loss, *opt, o);
  const EvalResult after = evaluate(m, x, y, *loss);
  // Chance is ln 10 = 2.30 and 10 %; two epochs over 2000 images reach well under half the loss.
  EXPECT_NEAR(before.loss, std::log(10.0), 0.7);
  EXPECT_LT(after.loss, 0.5 * before.loss) << "before " << before.loss << ", after " << after.loss;
  EXPECT_GT(after.accuracy, 0.65);
  EXPECT_LT(h.epochs.back().loss, h.epochs.front().loss);
}

// ---- a run that produces NaN stops with an error naming the first layer with a non-finite output ---------------

TEST(NnFit, NaNWeightNamesTheLayer) {
  Sequential m;
  m.add<InputLayer>(Shape{4});
  m.add<Dense>(DenseOptions{.units = 5, .activation = ActivationFn::parse("tanh")});
  m.add<Dense>(DenseOptions{.units = 3});
  m.build(1);
  m.layer(1).weights()[0]->value[2] = NAN;  // dense_1's kernel: dense is finite, dense_1 is not
  Tensor x({6, 4}, 0.5f), y({6}, 1.0f);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_sgd();
  FitOptions o;
  o.epochs = 2;
  const std::string msg = error_message([&] { fit(m, x, y, *loss, *opt, o); });
  EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'dense_1'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("epoch 1, step 1"), std::string::npos) << msg;
  EXPECT_EQ(opt->iterations, 0);  // no update was applied from the non-finite step
}

// A finite loss whose gradient overflows: dL/dkernel of Dense sums x * dy over the batch, and two samples of 3e38
// (finite in fp32) times dy = -1 sum past FLT_MAX, while the output (zero kernel) and the loss stay finite.
TEST(NnFit, NonFiniteGradientStopsBeforeTheStep) {
  Sequential m("overflow");
  m.add<InputLayer>(Shape{1});
  m.add<Dense>(DenseOptions{.units = 1, .kernel_initializer = Initializer::zeros});
  m.build(1);
  Tensor x({2, 1}, 3e38f), y({2, 1}, 1.0f);
  const auto loss = make_loss("mean_squared_error", false);
  const auto opt = make_sgd();
  FitOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  const std::string msg = error_message([&] { fit(m, x, y, *loss, *opt, o); });
  EXPECT_NE(msg.find("the gradient of 'dense'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("became non-finite at epoch 1, step 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("every layer's output was finite"), std::string::npos) << msg;
  EXPECT_EQ(opt->iterations, 0);  // the step was not applied
  EXPECT_EQ(m.layer(0).weights()[0]->value[0], 0.0f);
}

TEST(NnFit, HugeLearningRateNamesTheFirstNonFiniteLayer) {
  Tensor x, y;
  synthetic_bars(64, 2, x, y);
  Sequential m = small_cnn({8, 8, 1}, 4, 3);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_sgd();
  FitOptions o;
  o.epochs = 50;
  o.batch_size = 64;  // the whole set, unshuffled: the failing batch is x itself
  o.shuffle = false;
  o.schedule.initial = 1e30f;
  const std::string msg = error_message([&] { fit(m, x, y, *loss, *opt, o); });
  ASSERT_NE(msg, "(no error)") << "training with lr 1e30 did not stop";
  EXPECT_NE(msg.find("training stopped"), std::string::npos) << msg;
  // The first layer whose output is not finite, found here by running the layers one by one.
  Tensor h = x;
  std::string first;
  for (std::size_t i = 0; i < m.size() && first.empty(); ++i) {
    h = m.layer(i).forward(h, true);
    for (float v : h.values())
      if (!std::isfinite(v)) {
        first = m.layer(i).name();
        break;
      }
  }
  ASSERT_NE(first, "") << msg;
  EXPECT_NE(msg.find("'" + first + "'"), std::string::npos) << msg << " (first non-finite output: " << first << ")";
}

TEST(NnFit, NaNInputIsReported) {
  Tensor x, y;
  synthetic_bars(16, 3, x, y);
  x[5 * 64 + 10] = NAN;
  for (const char* act : {"tanh", "relu"}) {
    SCOPED_TRACE(act);
    Sequential m;
    m.add<InputLayer>(Shape{8, 8, 1});
    m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same()},
                                     .activation = ActivationFn::parse(act)});
    m.add<Flatten>();
    m.add<Dense>(DenseOptions{.units = 4});
    m.build(3);
    const auto loss = make_loss("sparse_categorical_crossentropy", true);
    const auto opt = make_sgd();
    FitOptions o;
    o.batch_size = 16;
    const std::string msg = error_message([&] { fit(m, x, y, *loss, *opt, o); });
    // Both activations carry the NaN to the loss: relu keeps NaN, as torch.relu does (activation_forward).
    EXPECT_NE(msg.find("the loss became NaN"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the input batch holds non-finite values"), std::string::npos) << msg;
    EXPECT_EQ(opt->iterations, 0);
    for (Weight* w : m.weights())
      for (float v : w->value.values()) ASSERT_TRUE(std::isfinite(v)) << w->name;
  }
}

// ---- early stopping ---------------------------------------------------------------------------------------------

TEST(NnFit, EarlyStoppingAfterPatienceEpochsWithoutImprovement) {
  Tensor x, y;
  synthetic_bars(64, 4, x, y);
  for (const char* monitor : {"loss", "val_loss", "accuracy"}) {
    for (int patience : {1, 3}) {
      SCOPED_TRACE(std::string(monitor) + " patience " + std::to_string(patience));
      Sequential m = small_cnn({8, 8, 1}, 4, 3);
      const auto loss = make_loss("sparse_categorical_crossentropy", true);
      const auto opt = make_sgd();
      // Learning rate 0 and no shuffling: every epoch sees the same batches in the same order, so the monitored
      // value is identical each epoch. The first epoch improves on nothing; then nothing improves.
      FitOptions o;
      o.epochs = 20;
      o.batch_size = 16;
      o.shuffle = false;
      o.schedule.initial = 0.0f;
      o.monitor = monitor;
      o.patience = patience;
      o.x_val = &x;
      o.y_val = &y;
      std::vector<bool> improved;
      o.on_epoch_end = [&](const EpochLog&, bool imp) {
        improved.push_back(imp);
        return true;
      };
      const History h = fit(m, x, y, *loss, *opt, o);
      EXPECT_EQ(h.stopped_reason, "early stopping");
      ASSERT_EQ(h.epochs.size(), std::size_t(patience + 1));
      ASSERT_EQ(improved.size(), h.epochs.size());
      EXPECT_TRUE(improved[0]);
      for (std::size_t i = 1; i < improved.size(); ++i) EXPECT_FALSE(improved[i]);
      for (const EpochLog& e : h.epochs) EXPECT_EQ(e.loss, h.epochs[0].loss);
    }
  }
}

TEST(NnFit, RestoreBestWeightsAndCallbackStop) {
  // Validation labels are the training labels shifted by one class: as training fits the training labels the
  // validation loss gets worse, so early stopping triggers, and the weights of the best epoch come back.
  Tensor x, y, y_bad;
  synthetic_bars(128, 5, x, y);
  y_bad = y;
  for (float& v : y_bad.values()) v = float((int(v) + 1) % 4);
  Sequential m = small_cnn({8, 8, 1}, 4, 3);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_adam();
  FitOptions o;
  o.epochs = 30;
  o.batch_size = 16;
  o.schedule.initial = 0.01f;
  o.x_val = &x;
  o.y_val = &y_bad;
  o.monitor = "val_loss";
  o.patience = 2;
  o.restore_best_weights = true;
  std::vector<Tensor> best, last;
  int best_epoch = 0;
  o.on_epoch_end = [&](const EpochLog& log, bool improved) {
    last.clear();
    for (Weight* w : m.weights()) last.push_back(w->value);
    if (improved) {
      best = last;
      best_epoch = log.epoch;
    }
    return true;
  };
  const History h = fit(m, x, y, *loss, *opt, o);
  ASSERT_EQ(h.stopped_reason, "early stopping");
  EXPECT_EQ(int(h.epochs.size()), best_epoch + 2);
  const auto ws = m.weights();
  ASSERT_EQ(ws.size(), best.size());
  ASSERT_EQ(ws.size(), last.size());
  bool restored_something = false;  // the last epoch's weights are not the best ones: restoring changes them
  for (std::size_t i = 0; i < ws.size(); ++i)
    restored_something = restored_something ||
                         std::memcmp(last[i].data(), best[i].data(), sizeof(float) * std::size_t(best[i].size())) != 0;
  EXPECT_TRUE(restored_something);
  for (std::size_t i = 0; i < ws.size(); ++i)
    EXPECT_EQ(std::memcmp(ws[i]->value.data(), best[i].data(), sizeof(float) * std::size_t(best[i].size())), 0)
        << ws[i]->name;

  // A callback returning false stops after that epoch.
  FitOptions c;
  c.epochs = 10;
  c.on_epoch_end = [](const EpochLog& log, bool) { return log.epoch < 2; };
  const History hc = fit(m, x, y, *loss, *opt, c);
  EXPECT_EQ(hc.epochs.size(), 2u);
  EXPECT_EQ(hc.stopped_reason, "callback");
}

// ---- determinism ---------------------------------------------------------------------------------------------

TEST(NnFit, SameSeedsGiveBitIdenticalWeights) {
  Tensor x, y;
  synthetic_bars(96, 6, x, y);
  auto train = [&](uint64_t build_seed, uint64_t fit_seed) {
    Sequential m = small_cnn({8, 8, 1}, 4, build_seed, 0.3f);  // with Dropout: its masks must repeat too
    const auto loss = make_loss("sparse_categorical_crossentropy", true);
    const auto opt = make_adam();
    FitOptions o;
    o.epochs = 2;
    o.batch_size = 16;
    o.seed = fit_seed;
    o.schedule.initial = 0.01f;
    fit(m, x, y, *loss, *opt, o);
    return m;
  };
  Sequential a = train(1, 2), b = train(1, 2), c = train(1, 3), d = train(4, 2);
  EXPECT_TRUE(same_weights(a, b));
  EXPECT_FALSE(same_weights(a, c));  // another shuffle / dropout stream
  EXPECT_FALSE(same_weights(a, d));  // other initial weights
}

// ---- evaluate ------------------------------------------------------------------------------------------------

TEST(NnEvaluate, AgreesWithAManualComputation) {
  Tensor x, y;
  synthetic_bars(53, 7, x, y);  // 53 = 7 batches of 7 + 4: the last batch is partial
  Sequential m = small_cnn({8, 8, 1}, 4, 3);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_sgd({.momentum = 0.9f});
  FitOptions o;
  o.epochs = 1;
  o.batch_size = 8;
  o.schedule.initial = 0.05f;
  fit(m, x, y, *loss, *opt, o);

  const EvalResult r = evaluate(m, x, y, *loss, 7);
  // The mean cross-entropy and accuracy written out: -log softmax(z)[label], arg-max == label.
  const Tensor z = m.forward(x, false);
  ASSERT_EQ(z.shape(), (Shape{53, 4}));
  double total = 0;
  int hits = 0;
  for (int i = 0; i < 53; ++i) {
    const float* row = z.data() + i * 4;
    double mx = row[0];
    int arg = 0;
    for (int j = 1; j < 4; ++j)
      if (row[j] > mx) mx = row[j], arg = j;
    double s = 0;
    for (int j = 0; j < 4; ++j) s += std::exp(double(row[j]) - mx);
    total += mx + std::log(s) - double(row[int(y[i])]);
    hits += arg == int(y[i]);
  }
  EXPECT_EQ(r.samples, 53);
  EXPECT_NEAR(r.loss, total / 53, 1e-6 * (total / 53));
  EXPECT_DOUBLE_EQ(r.accuracy, double(hits) / 53);
  // predict() in batches gives the same rows as one forward.
  const Tensor p = m.predict(x, 10);
  ASSERT_EQ(p.shape(), z.shape());
  for (int64_t i = 0; i < z.size(); ++i) EXPECT_NEAR(p[i], z[i], 1e-5f * (1 + std::fabs(z[i])));
}

TEST(NnAccuracy, SparseOneHotAndBinary) {
  const Tensor pred({3, 3}, {0.1f, 0.7f, 0.2f, 0.5f, 0.1f, 0.4f, 0.0f, 0.2f, 0.9f});
  EXPECT_DOUBLE_EQ(accuracy(pred, Tensor({3}, {1, 0, 0})), 2.0 / 3);
  EXPECT_DOUBLE_EQ(accuracy(pred, Tensor({3, 3}, {0, 1, 0, 0, 0, 1, 0, 0, 1})), 2.0 / 3);
  EXPECT_DOUBLE_EQ(accuracy(Tensor({4, 1}, {0.2f, 0.8f, 0.6f, 0.1f}), Tensor({4, 1}, {0, 1, 0, 0})), 0.75);
}

TEST(NnFit, ArgumentErrors) {
  Tensor x, y;
  synthetic_bars(8, 8, x, y);
  Sequential m = small_cnn({8, 8, 1}, 4, 3);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_sgd();
  auto msg = [&](FitOptions o, const Tensor& xx, const Tensor& yy) {
    return error_message([&] { fit(m, xx, yy, *loss, *opt, o); });
  };
  EXPECT_NE(msg({.epochs = 0}, x, y).find("epochs"), std::string::npos);
  EXPECT_NE(msg({.batch_size = 0}, x, y).find("batch_size"), std::string::npos);
  EXPECT_NE(msg({}, x, Tensor({7})).find("8 inputs"), std::string::npos);
  FitOptions val;
  val.patience = 2;
  EXPECT_NE(msg(val, x, y).find("validation"), std::string::npos);
  FitOptions mon;
  mon.monitor = "val_acc";
  EXPECT_NE(msg(mon, x, y).find("monitor"), std::string::npos);
  EXPECT_NE(error_message([&] { evaluate(m, x, y, *loss, 0); }).find("batch_size"), std::string::npos);
  EXPECT_NE(error_message([] { make_loss("hinge"); }).find("hinge"), std::string::npos);
  EXPECT_NE(error_message([] { make_sgd({.momentum = 1.0f}); }).find("momentum"), std::string::npos);
  EXPECT_NE(error_message([] { make_adam({.beta_1 = 1.0f}); }).find("beta_1"), std::string::npos);
  EXPECT_NE(error_message([] { make_adam({.epsilon = 0.0f}); }).find("epsilon"), std::string::npos);
}

}  // namespace
