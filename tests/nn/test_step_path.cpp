// The training hot path (Layer::forward_step / backward_step, which Sequential runs on buffers kept from step to
// step) against the layers' public forward / backward chained by hand, which copy every tensor: same outputs,
// input gradients and weight gradients, bit for bit, across batch-size changes (buffers reshaped or reallocated),
// after the caller's input is gone, after a move of the model, and with the first layer's dL/dx skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "convkit/layers.hpp"
#include "convkit/model.hpp"

namespace {

using namespace convkit;

// Conv + relu, max pooling that leaves a trailing row and column uncovered, conv + tanh (not fused into the
// backward as relu is), flatten, dense + relu, seeded dropout, dense: every layer with its own step.
Sequential small_cnn() {
  Sequential m;
  m.add<InputLayer>(Shape{9, 9, 2});
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same()},
                                   .activation = ActivationFn::parse("relu")});
  m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 3, .kernel_size = {3, 3}},
                                   .activation = ActivationFn::parse("tanh")});
  m.add<Pooling2D>(PoolKind::average, Pool2dParams{.pool_size = {2, 2}, .strides = Size2{1, 1}});
  m.add<Flatten>();
  m.add<Dense>(DenseOptions{.units = 5, .activation = ActivationFn::parse("relu")});
  m.add<Dropout>(0.3f, uint64_t{7});
  m.add<Dense>(DenseOptions{.units = 3});
  m.build(11);
  return m;
}

Tensor random_tensor(Shape shape, uint32_t seed) {
  Tensor t(std::move(shape));
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : t.values()) v = dist(gen);
  return t;
}

void expect_bitwise(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(std::memcmp(got.data(), want.data(), static_cast<std::size_t>(got.size()) * sizeof(float)), 0) << what;
}

// The reference: each layer's public forward / backward, chained by hand.
struct Chain {
  Sequential m = small_cnn();
  Tensor forward(const Tensor& x) {
    Tensor h = x;
    for (std::size_t i = 0; i < m.size(); ++i) h = m.layer(i).forward(h, true);
    return h;
  }
  Tensor backward(const Tensor& dy) {
    Tensor g = dy;
    for (std::size_t i = m.size(); i-- > 0;) g = m.layer(i).backward(g);
    return g;
  }
};

void expect_same_grads(Sequential& a, Sequential& b, const std::string& what) {
  const std::vector<Weight*> wa = a.trainable_weights(), wb = b.trainable_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i)
    expect_bitwise(wa[i]->grad, wb[i]->grad, what + " grad " + std::to_string(i));
}

TEST(NnStepPath, MatchesTheCopyingPathAcrossBatchSizes) {
  Sequential model = small_cnn();
  Chain chain;
  uint32_t seed = 1;
  for (int64_t batch : {4, 3, 3, 5, 4}) {
    const std::string what = "batch " + std::to_string(batch);
    const Tensor x = random_tensor({batch, 9, 9, 2}, seed++);
    const Tensor dy = random_tensor({batch, 3}, seed++);
    const Tensor y = model.forward(x, true);
    expect_bitwise(y, chain.forward(x), what + " output");
    const Tensor dx = model.backward(dy);
    expect_bitwise(dx, chain.backward(dy), what + " input gradient");
    expect_same_grads(model, chain.m, what);
  }
}

TEST(NnStepPath, SkippingTheInputGradientKeepsTheWeightGradients) {
  Sequential model = small_cnn();
  Chain chain;
  const Tensor x = random_tensor({4, 9, 9, 2}, 31), dy = random_tensor({4, 3}, 32);
  model.forward(x, true);
  chain.forward(x);
  chain.backward(dy);
  EXPECT_TRUE(model.backward(dy, /*input_gradient=*/false).empty());
  expect_same_grads(model, chain.m, "without dx");
  // A second backward of the same forward (the steps overwrite their dy in place) gives the same again.
  expect_bitwise(model.backward(dy), chain.backward(dy), "second backward");
  expect_same_grads(model, chain.m, "second backward");
}

TEST(NnStepPath, SurvivesTheCallersInputGoingAwayAndAMoveOfTheModel) {
  Sequential model = small_cnn();
  Chain chain;
  const Tensor dy = random_tensor({2, 3}, 42);
  {
    const Tensor x = random_tensor({2, 9, 9, 2}, 41);
    model.forward(x, true);
    chain.forward(x);
  }  // the layers must not have kept the caller's tensor
  std::vector<Tensor> scratch;
  for (int i = 0; i < 4; ++i) scratch.push_back(random_tensor({2, 9, 9, 2}, 50 + i));  // reuse the freed memory
  Sequential moved = std::move(model);
  expect_bitwise(moved.backward(dy), chain.backward(dy), "after a move");
  expect_same_grads(moved, chain.m, "after a move");
}

TEST(NnStepPath, InferenceDropoutIsTheIdentityAndLeavesTrainingAlone) {
  Sequential model = small_cnn();
  Chain chain;
  const Tensor x = random_tensor({3, 9, 9, 2}, 61);
  const Tensor inference = model.forward(x, false);
  Tensor h = x;
  for (std::size_t i = 0; i < chain.m.size(); ++i) h = chain.m.layer(i).forward(h, false);
  expect_bitwise(inference, h, "inference output");
  // Training right after: the masks come from the same streams on both sides.
  const Tensor dy = random_tensor({3, 3}, 62);
  expect_bitwise(model.forward(x, true), chain.forward(x), "training output");
  expect_bitwise(model.backward(dy), chain.backward(dy), "training input gradient");
}


// Weights packed once for inference (FrozenForInference, held by predict and evaluate): the same predictions as
// the per-call forward within the convolution tolerance, over a last partial batch (another plan and packing),
// and never stale: changing the weights between two predict() calls changes the prediction accordingly.
Sequential wide_cnn() {
  Sequential m;
  m.add<InputLayer>(Shape{12, 12, 24});
  // 3x3 stride 1 with >= 16 channels: a layer where packing once may change the algorithm (winograd).
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 32, .kernel_size = {3, 3}, .padding = Padding::same()},
                                   .activation = ActivationFn::parse("relu")});
  m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 16, .kernel_size = {1, 1}}});
  m.add<Flatten>();
  m.add<Dense>(DenseOptions{.units = 7});
  m.build(5);
  return m;
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  float scale = 0.0f;
  for (float v : want.values()) scale = std::max(scale, std::abs(v));
  for (int64_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got.data()[i], want.data()[i], 1e-4f * (1.0f + scale)) << what << " element " << i;
}

TEST(NnStepPath, PredictOnFrozenWeightsMatchesTheForwardAndFollowsWeightChanges) {
  for (auto make : {small_cnn, wide_cnn}) {
    Sequential model = make();
    Shape in = model.input_shape();
    in[0] = 11;
    const Tensor x = random_tensor(in, 71);
    const Tensor per_call = model.forward(x, false);
    expect_close(model.predict(x, 4), per_call, "predict in batches of 4 (last one of 3)");
    expect_close(model.predict(x, 11), per_call, "predict in one batch");
    // Inside a frozen scope, forward(x, false) runs on the packed weights too.
    {
      const FrozenForInference frozen(model);
      expect_close(model.forward(x, false), per_call, "forward inside FrozenForInference");
    }
    // A weight change between two predictions is seen (nothing packed survives the scope).
    for (Weight* w : model.weights())
      for (float& v : w->value.values()) v = v * 0.5f + 0.01f;
    const Tensor changed = model.forward(x, false);
    // The same batch shape as the last frozen pass: a plan kept across scopes would reuse the old packing.
    expect_close(model.predict(x, 11), changed, "predict after the weights changed");
    expect_close(model.predict(x, 4), changed, "predict in batches after the weights changed");
    float diff = 0.0f;
    for (int64_t i = 0; i < changed.size(); ++i) diff = std::max(diff, std::abs(changed.data()[i] - per_call.data()[i]));
    EXPECT_GT(diff, 1e-3f) << "the weight change should have changed the prediction";
    // Training still works after inference (the step buffers are not left pointing at an inference pass).
    Shape out = model.output_shape();
    out[0] = 11;
    model.forward(x, true);
    const Tensor dx = model.backward(random_tensor(out, 72));
    EXPECT_EQ(dx.shape(), x.shape());
  }
}

}  // namespace
