// Interrupting and resuming training (FitOptions::stop_requested / FitOptions::state, checkpoints) and determinism
// (docs/determinism.md): a run cut after every single step, each piece restored from a checkpoint file into a
// fresh model and optimizer, ends with the same weights, bit for bit, as the run that was never cut; two runs with
// the same seed and thread count are bit-identical.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "convkit/model.hpp"
#include "convkit/runtime.hpp"
#include "convkit/serialize.hpp"
#include "convkit/train.hpp"
#include "expect_error.hpp"
#include "temp_dir.hpp"

namespace {

using namespace convkit;

// Random 6x6 images with 3 classes given by which third of the image is brightest: enough signal that the
// weights move every step.
void make_data(int n, Tensor& x, Tensor& y, int side = 6) {
  x = Tensor({n, side, side, 2});
  y = Tensor({n});
  Rng rng(42);
  const int image = side * side * 2;
  for (int i = 0; i < n; ++i) {
    const int k = int(rng.below(3));
    y[i] = float(k);
    for (int p = 0; p < image; ++p) x[i * image + p] = rng.uniform() + ((p / 2) % side * 3 / side == k ? 0.5f : 0.0f);
  }
}

// Every kind of state a step depends on: conv + batch norm (moving statistics), dropout (its own stream), dense.
Sequential make_model(int side = 6, int filters = 4) {
  Sequential m;
  m.add<InputLayer>(Shape{side, side, 2});
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = filters, .kernel_size = {3, 3}, .padding = Padding::same()},
                                   .activation = ActivationFn::parse("relu")});
  m.add<BatchNormalization>();
  m.add<Flatten>();
  m.add<Dropout>(0.3f);
  m.add<Dense>(DenseOptions{.units = 3});
  m.build(7);
  return m;
}

FitOptions options() {
  FitOptions o;
  o.epochs = 3;
  o.batch_size = 8;
  o.seed = 11;
  // 5 steps of 8 over 37 samples: passes over the data (shuffles) do not line up with epochs, and the last batch
  // of a pass is short.
  o.steps_per_epoch = 5;
  o.schedule = LrSchedule{.kind = LrSchedule::Kind::cosine, .initial = 0.01f};
  o.monitor = "loss";
  o.patience = 10;
  return o;
}

std::vector<std::vector<float>> weights_of(Sequential& m) {
  std::vector<std::vector<float>> out;
  for (Weight* w : m.weights()) out.emplace_back(w->value.values().begin(), w->value.values().end());
  return out;
}

bool bit_identical(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

// side 6 and 4 filters: the resume tests' small problem; side 16 and 16 filters: one where the threads split the
// weight-gradient sums (docs/determinism.md).
std::vector<std::vector<float>> train_uninterrupted(int threads, History* history = nullptr, int side = 6,
                                                    int filters = 4) {
  set_num_threads(threads);
  Tensor x, y;
  make_data(37, x, y, side);
  Sequential m = make_model(side, filters);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_adam();
  const History h = fit(m, x, y, *loss, *opt, options());
  if (history) *history = h;
  set_num_threads(0);
  return weights_of(m);
}

TEST(FitResume, CutAfterEveryStepThroughCheckpointFilesIsBitIdentical) {
  History whole_history;
  const auto whole = train_uninterrupted(2, &whole_history);
  ASSERT_EQ(whole_history.epochs.size(), 3u);

  set_num_threads(2);
  test_support::TempDir dir("fit_resume");
  const std::string ckpt = dir.file("run.ckpt");
  Tensor x, y;
  make_data(37, x, y);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  std::atomic<bool> stop{true};  // always set: every fit() call stops after its first step (or epoch end)
  int pieces = 0;
  std::vector<EpochLog> logs;
  bool finished = false;
  while (!finished) {
    ASSERT_LT(pieces, 40) << "training never finished";
    // A fresh process's view: a new model and optimizer, everything else from the checkpoint.
    Sequential m = make_model();
    auto opt = make_adam();
    TrainingProgress progress;
    if (pieces > 0) progress = load_checkpoint(ckpt, m, *opt);
    FitOptions o = options();
    o.stop_requested = &stop;
    o.state = &progress.fit;
    const History h = fit(m, x, y, *loss, *opt, o);
    logs.insert(logs.end(), h.epochs.begin(), h.epochs.end());
    ++pieces;
    if (h.stopped_reason == "interrupted") {
      EXPECT_TRUE(progress.fit.started);
      save_checkpoint(ckpt, m, *opt, progress);
    } else {
      EXPECT_EQ(h.stopped_reason, "");
      finished = true;
      EXPECT_TRUE(bit_identical(weights_of(m), whole)) << "the resumed run's weights differ from the uninterrupted run's";
    }
  }
  set_num_threads(0);
  // 15 steps: 4 mid-epoch cuts per epoch and one at each of the first two epoch ends, then the last piece.
  EXPECT_EQ(pieces, 15);
  ASSERT_EQ(logs.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e) {  // the epoch logs, mid-epoch sums carried across cuts, agree too
    EXPECT_EQ(logs[e].loss, whole_history.epochs[e].loss) << "epoch " << e + 1;
    EXPECT_EQ(logs[e].accuracy, whole_history.epochs[e].accuracy) << "epoch " << e + 1;
    EXPECT_EQ(logs[e].learning_rate, whole_history.epochs[e].learning_rate) << "epoch " << e + 1;
  }
}

TEST(FitResume, StateThatDoesNotFitTheRunIsRefused) {
  Tensor x, y;
  make_data(37, x, y);
  Sequential m = make_model();
  auto opt = make_adam();
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  FitState s;
  s.started = true;
  s.order.assign(20, 0);  // saved over 20 samples, this run has 37
  FitOptions o = options();
  o.state = &s;
  test_support::expect_error([&] { fit(m, x, y, *loss, *opt, o); }, {"cannot resume", "20 samples", "37 samples"});
  s.order.assign(37, 0);
  s.step = 5;  // an epoch has 5 steps: step 5 of 5 is not a mid-epoch position
  test_support::expect_error([&] { fit(m, x, y, *loss, *opt, o); }, {"cannot resume", "step 5", "5 steps"});
  s.step = 1;
  s.order[3] = 37;
  test_support::expect_error([&] { fit(m, x, y, *loss, *opt, o); }, {"sample 37 of 37"});
}

TEST(Determinism, SameSeedAndThreadCountGiveBitIdenticalWeights) {
  for (int threads : {1, 3}) {
    const auto a = train_uninterrupted(threads, nullptr, 16, 16), b = train_uninterrupted(threads, nullptr, 16, 16);
    EXPECT_TRUE(bit_identical(a, b)) << threads << " thread(s)";
  }
}

TEST(Determinism, ThreadCountChangesOnlyRoundingOfTheReductions) {
  // docs/determinism.md: the weight-gradient reductions are split by thread, so another thread count may change
  // the last bits, but never more than rounding.
  const auto one = train_uninterrupted(1, nullptr, 16, 16), four = train_uninterrupted(4, nullptr, 16, 16);
  ASSERT_EQ(one.size(), four.size());
  int64_t differ = 0, total = 0;
  for (std::size_t i = 0; i < one.size(); ++i)
    for (std::size_t k = 0; k < one[i].size(); ++k, ++total) differ += one[i][k] != four[i][k];
  std::cout << differ << " of " << total << " weights differ between 1 and 4 threads\n";
  for (std::size_t i = 0; i < one.size(); ++i)
    for (std::size_t k = 0; k < one[i].size(); ++k)
      EXPECT_NEAR(one[i][k], four[i][k], 1e-3f * (1.0f + std::abs(one[i][k]))) << "weight " << i << "[" << k << "]";
}

}  // namespace
