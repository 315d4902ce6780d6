// Finite-difference checks of every layer's backward pass (src/nn), independent of PyTorch: for a random upstream
// r and the objective L = sum(y * r) (summed in double), the directional derivative of L along a random direction
// v of one variable (the input, or one weight) is estimated by central differences and compared with the one the
// analytic gradients give. Also a whole small Sequential through a loss, and every loss on its own.
//
// The comparison (see DirectionalCheck):
//   fd = (L(theta + h v) - L(theta - h v)) / (2h)
//   an = sum_i g_i (theta+_i - theta-_i) / (2h)   where theta+- are the fp32 points actually evaluated, so that the
//        rounding of theta +- h v itself is not mistaken for an error;
//   mag = sum_i |g_i (theta+_i - theta-_i)| / (2h), the size of the terms behind an.
// It passes when |fd - an| <= rel * mag.
//  * Smooth layers (tanh, sigmoid, elu, softmax, BatchNormalization, averages): h = 1e-2 on O(1) data. The
//    truncation error is h^2/6 |L'''| ~ 2e-5 of the derivative's scale; the fp32 rounding of the two forward
//    passes (about sqrt(M) * 16 u |y| for M outputs, u = 6e-8) divided by 2h is ~1e-5 of it for the sizes here.
//    rel = 2e-3 leaves a wide margin over both, while a wrong gradient is off by a whole term: the negative
//    controls below show that a gradient 1 % off is caught.
//  * Piecewise-linear layers (relu, leaky_relu, max pooling): the central difference is exact up to rounding as
//    long as no kink lies between theta - h v and theta + h v. h = 1e-3 keeps the step below the kink distances
//    that are arranged (max-pool inputs on a grid with gaps larger than 2h, activation inputs with |x| >= 0.05) or
//    checked (fused relu: the pre-activation's signs at both ends are compared through a linear twin layer with
//    the same weights; the Sequential: the relu input's signs and each pooling window's arg-max at both ends); a
//    direction that crosses one is replaced by the next seed's. The rounding term grows by 10 (h is 10 x smaller).
//  Measured over every check in this file: |fd - an| / mag <= 1.2e-4 (the Sequential's biases and BatchNorm
//  parameters, h = 1e-3), <= 6e-5 for the single smooth layers: rel = 2e-3 is a margin of > 15.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "convkit/model.hpp"
#include "convkit/train.hpp"

namespace {

using namespace convkit;

constexpr double kRel = 2e-3;
constexpr float kSmoothH = 1e-2f;
constexpr float kKinkH = 1e-3f;

Tensor random_tensor(const Shape& s, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(s);
  Rng rng(seed);
  for (float& v : t.values()) v = rng.uniform(lo, hi);
  return t;
}

// Uniform values with |v| >= margin: activation kinks stay further than any step taken here.
Tensor away_from_zero(const Shape& s, uint64_t seed, float margin, float hi) {
  Tensor t(s);
  Rng rng(seed);
  for (float& v : t.values()) {
    const float m = rng.uniform(margin, hi);
    v = rng.uniform() < 0.5f ? -m : m;
  }
  return t;
}

// A random permutation of a grid of distinct values with spacing 2 / size >= 4 h_kink for the sizes used: every
// max-pool window keeps its arg-max under any step of size h_kink.
Tensor distinct_values(const Shape& s, uint64_t seed) {
  Tensor t(s);
  std::vector<int64_t> idx(static_cast<std::size_t>(t.size()));
  std::iota(idx.begin(), idx.end(), 0);
  Rng rng(seed);
  for (std::size_t i = idx.size() - 1; i > 0; --i) std::swap(idx[i], idx[rng.below(i + 1)]);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = -1.0f + 2.0f * float(idx[std::size_t(i)]) / float(t.size());
  return t;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

struct Directional {
  double fd = 0, an = 0, mag = 0;
  double rel_error() const { return std::fabs(fd - an) / mag; }
};

// The directional derivative of f along v at `var` (modified in place and restored), given the analytic gradient g
// of f at the current point. f evaluates the objective at the current contents of var.
Directional directional(Tensor& var, const Tensor& g, float h, uint64_t seed, const std::function<double()>& f) {
  const Tensor original = var;
  const Tensor v = random_tensor(var.shape(), seed);
  Tensor plus = original, minus = original;
  for (int64_t i = 0; i < var.size(); ++i) {
    plus[i] = original[i] + h * v[i];
    minus[i] = original[i] - h * v[i];
  }
  Directional d;
  var = plus;
  const double lp = f();
  var = minus;
  const double lm = f();
  var = original;
  for (int64_t i = 0; i < var.size(); ++i) {
    const double step = double(plus[i]) - double(minus[i]);  // exact: the two points are within a factor of 2
    d.an += double(g[i]) * step;
    d.mag += std::fabs(double(g[i]) * step);
  }
  d.fd = (lp - lm) / (2.0 * double(h));
  d.an /= 2.0 * double(h);
  d.mag /= 2.0 * double(h);
  return d;
}

// ---- single layers ---------------------------------------------------------------------------------------------

using LayerFactory = std::function<std::unique_ptr<Layer>(ActivationFn)>;

struct LayerCase {
  std::string name;
  LayerFactory make;
  ActivationFn act;
  Shape input;
  bool training = false;
  enum class Data { uniform, away_from_zero, distinct } data = Data::uniform;
};

bool kinked(const ActivationFn& a) {
  return a.kind == ActivationFn::Kind::relu || a.kind == ActivationFn::Kind::leaky_relu;
}

// Copies every weight value of `from` into `to` (same layer type and input shape).
void copy_weights(Layer& from, Layer& to) {
  auto a = from.weights(), b = to.weights();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) b[i]->value = a[i]->value;
}

// Signs of the pre-activation of `layer` (fused relu-type activation) at its current weights and input x.
std::vector<bool> pre_activation_signs(const LayerCase& c, Layer& layer, const Tensor& x) {
  std::unique_ptr<Layer> twin = c.make(ActivationFn{});
  Rng rng(0);
  twin->build(x.shape(), rng);
  copy_weights(layer, *twin);
  const Tensor z = twin->forward(x, c.training);
  std::vector<bool> s(static_cast<std::size_t>(z.size()));
  for (int64_t i = 0; i < z.size(); ++i) s[std::size_t(i)] = z[i] > 0;
  return s;
}

// Runs the directional checks of one layer case: the input and every trainable weight, two directions each.
void check_layer(const LayerCase& c, double rel = kRel, double grad_scale = 1.0, bool expect_pass = true) {
  SCOPED_TRACE(c.name);
  std::unique_ptr<Layer> layer = c.make(c.act);
  Rng rng(42);
  layer->build(c.input, rng);
  // Non-zero biases, moving statistics and BatchNormalization parameters make every term matter.
  uint64_t seed = 1000;
  for (Weight* w : layer->weights()) {
    if (w->name == "moving_variance") w->value = random_tensor(w->value.shape(), ++seed, 0.5f, 2.0f);
    else if (w->name == "gamma") w->value = random_tensor(w->value.shape(), ++seed, 0.5f, 1.5f);
    else if (w->name != "kernel" && w->name != "depthwise_kernel" && w->name != "pointwise_kernel")
      w->value = random_tensor(w->value.shape(), ++seed, -0.5f, 0.5f);
  }
  Tensor x = c.data == LayerCase::Data::distinct         ? distinct_values(c.input, 7)
             : c.data == LayerCase::Data::away_from_zero ? away_from_zero(c.input, 7, 0.05f, 3.0f)
                                                         : random_tensor(c.input, 7);
  if (c.name.rfind("BatchNormalization", 0) == 0)  // per-channel offsets, so that the mean matters
    for (int64_t i = 0; i < x.size(); ++i) x[i] = 2.0f * x[i] + float(i % x.dim(x.rank() - 1)) - 1.0f;
  const Tensor y0 = layer->forward(x, c.training);
  const Tensor r = random_tensor(y0.shape(), 99);
  const float h = (kinked(c.act) || c.data == LayerCase::Data::distinct) ? kKinkH : kSmoothH;

  auto objective = [&]() { return dot(layer->forward(x, c.training), r); };
  std::vector<Tensor*> vars{&x};
  std::vector<std::string> names{"input"};
  for (Weight* w : layer->weights())
    if (w->trainable) vars.push_back(&w->value), names.push_back(w->name);

  bool all_pass = true;
  for (std::size_t k = 0; k < vars.size(); ++k) {
    for (uint64_t dir = 0, checked = 0; checked < 2; ++dir) {
      ASSERT_LT(dir, 20u) << "no kink-free direction for " << names[k];
      layer->forward(x, c.training);
      const Tensor dx = layer->backward(r);
      Tensor g = dx;
      for (Weight* w : layer->weights())
        if (&w->value == vars[k]) g = w->grad;
      for (float& v : g.values()) v = float(double(v) * grad_scale);
      if (kinked(c.act)) {  // the pre-activation signs must agree at theta, theta + hv and theta - hv
        const std::vector<bool> s0 = pre_activation_signs(c, *layer, x);
        const Tensor original = *vars[k];
        const Tensor v = random_tensor(vars[k]->shape(), 5000 + 17 * k + dir);
        bool same = true;
        for (float sign : {1.0f, -1.0f}) {
          for (int64_t i = 0; i < v.size(); ++i) (*vars[k])[i] = original[i] + sign * h * v[i];
          same = same && pre_activation_signs(c, *layer, x) == s0;
        }
        *vars[k] = original;
        if (!same) continue;
      }
      const Directional d = directional(*vars[k], g, h, 5000 + 17 * k + dir, objective);
      ++checked;
      ASSERT_GT(d.mag, 0.0) << names[k] << ": the gradient is identically zero along the direction";
      const bool pass = d.rel_error() <= rel;
      all_pass = all_pass && pass;
      if (expect_pass) {
        EXPECT_TRUE(pass) << names[k] << " direction " << dir << ": fd " << d.fd << ", analytic " << d.an
                          << ", |diff| / mag " << d.rel_error() << " > " << rel;
      }
    }
  }
  if (!expect_pass) {
    EXPECT_FALSE(all_pass) << "a gradient scaled by " << grad_scale << " was not caught";
  }
}

const char* kActivations[] = {"linear", "relu", "tanh", "sigmoid", "softmax", "leaky_relu", "elu"};

LayerFactory conv2d_factory(Conv2dParams p) {
  return [p](ActivationFn a) {
    return std::make_unique<Conv2D>(Conv2dLayerOptions{.conv = p, .activation = a});
  };
}

TEST(NnLayerGradcheck, Conv2DEveryActivation) {
  // "same" with reflect padding, stride 2 on one axis, a rectangular kernel: the padded border contributes.
  const Conv2dParams p{.filters = 4, .kernel_size = {3, 2}, .strides = {1, 2}, .padding = Padding::same(),
                       .padding_mode = PaddingMode::reflect};
  for (const char* a : kActivations)
    check_layer({std::string("Conv2D ") + a, conv2d_factory(p), ActivationFn::parse(a), {2, 5, 6, 3}});
}

TEST(NnLayerGradcheck, Conv2DGroupsDilationExplicitPadding) {
  const Conv2dParams p{.filters = 4, .kernel_size = {2, 3}, .padding = Padding::explicit_pad(1, 0, 2, 1),
                       .dilation_rate = {2, 1}, .groups = 2, .padding_mode = PaddingMode::circular};
  check_layer({"Conv2D groups", conv2d_factory(p), ActivationFn::parse("tanh"), {2, 6, 5, 4}});
  const Conv2dParams q{.filters = 3, .kernel_size = {3, 3}, .strides = {2, 2}, .use_bias = false};
  check_layer({"Conv2D no bias", conv2d_factory(q), ActivationFn::parse("sigmoid"), {1, 7, 7, 2}});
}

TEST(NnLayerGradcheck, DepthwiseConv2D) {
  for (const char* a : {"linear", "relu", "elu"}) {
    const DepthwiseConv2dParams p{.kernel_size = {3, 3}, .padding = Padding::same(), .depth_multiplier = 2,
                                  .padding_mode = PaddingMode::replicate};
    check_layer({std::string("DepthwiseConv2D ") + a,
                 [p](ActivationFn f) {
                   return std::make_unique<DepthwiseConv2D>(DepthwiseConv2dLayerOptions{.conv = p, .activation = f});
                 },
                 ActivationFn::parse(a), {2, 5, 5, 3}});
  }
}

TEST(NnLayerGradcheck, SeparableConv2D) {
  for (const char* a : {"linear", "leaky_relu", "softmax"}) {
    check_layer({std::string("SeparableConv2D ") + a,
                 [](ActivationFn f) {
                   return std::make_unique<SeparableConv2D>(SeparableConv2dLayerOptions{
                       .filters = 3, .kernel_size = {3, 2}, .strides = {2, 1}, .padding = Padding::same(),
                       .depth_multiplier = 2, .activation = f});
                 },
                 ActivationFn::parse(a), {2, 6, 5, 2}});
  }
}

TEST(NnLayerGradcheck, DenseEveryActivationAndRank3) {
  auto dense = [](int units, bool bias) {
    return [units, bias](ActivationFn f) {
      return std::make_unique<Dense>(DenseOptions{.units = units, .activation = f, .use_bias = bias});
    };
  };
  for (const char* a : kActivations) check_layer({std::string("Dense ") + a, dense(5, true), ActivationFn::parse(a), {4, 7}});
  check_layer({"Dense rank 3", dense(4, true), ActivationFn::parse("tanh"), {2, 3, 6}});
  check_layer({"Dense rank 3 no bias", dense(3, false), ActivationFn::parse("linear"), {3, 2, 5}});
}

TEST(NnLayerGradcheck, BatchNormalization) {
  auto bn = [](BatchNormOptions o) { return [o](ActivationFn) { return std::make_unique<BatchNormalization>(o); }; };
  check_layer({"BatchNormalization training 4-D", bn({}), {}, {3, 3, 4, 3}, true});
  check_layer({"BatchNormalization training 2-D", bn({.momentum = 0.5f, .epsilon = 0.1f}), {}, {6, 4}, true});
  check_layer({"BatchNormalization inference", bn({}), {}, {2, 3, 3, 4}, false});
  check_layer({"BatchNormalization no center", bn({.center = false}), {}, {5, 3}, true});
  check_layer({"BatchNormalization no scale", bn({.scale = false}), {}, {5, 3}, true});
}

TEST(NnLayerGradcheck, ActivationLayerEveryFunction) {
  for (const char* a : kActivations)
    check_layer({std::string("Activation ") + a,
                 [](ActivationFn f) { return std::make_unique<ActivationLayer>(f); }, ActivationFn::parse(a),
                 {2, 3, 3, 5}, false, LayerCase::Data::away_from_zero});
  ActivationFn leaky = ActivationFn::parse("leaky_relu"), elu = ActivationFn::parse("elu");
  leaky.alpha = 0.1f;
  elu.alpha = 0.5f;
  for (const ActivationFn& f : {leaky, elu})
    check_layer({"Activation " + f.name() + " alpha", [](ActivationFn g) { return std::make_unique<ActivationLayer>(g); },
                 f, {3, 7}, false, LayerCase::Data::away_from_zero});
}

TEST(NnLayerGradcheck, PoolingPaddingFlatten) {
  auto pool = [](PoolKind k, Pool2dParams p) {
    return [k, p](ActivationFn) { return std::make_unique<Pooling2D>(k, p); };
  };
  const Pool2dParams same{.pool_size = {3, 2}, .strides = Size2{2, 2}, .padding = Padding::same()};
  check_layer({"MaxPooling2D same", pool(PoolKind::max, same), {}, {2, 5, 6, 3}, false, LayerCase::Data::distinct});
  check_layer({"AveragePooling2D same", pool(PoolKind::average, same), {}, {2, 5, 6, 3}});
  const Pool2dParams cip{.pool_size = {2, 2}, .strides = Size2{1, 1}, .padding = Padding::symmetric(1, 1),
                         .count_include_pad = true};
  check_layer({"AveragePooling2D count_include_pad", pool(PoolKind::average, cip), {}, {1, 4, 4, 2}});
  check_layer({"GlobalMaxPooling2D", [](ActivationFn) { return std::make_unique<GlobalPooling2D>(PoolKind::max); },
               {}, {2, 4, 3, 3}, false, LayerCase::Data::distinct});
  check_layer({"GlobalAveragePooling2D",
               [](ActivationFn) { return std::make_unique<GlobalPooling2D>(PoolKind::average); }, {}, {2, 4, 3, 3}});
  check_layer({"ZeroPadding2D", [](ActivationFn) { return std::make_unique<ZeroPadding2D>(1, 0, 2, 1); }, {},
               {2, 3, 3, 2}});
  check_layer({"Flatten", [](ActivationFn) { return std::make_unique<Flatten>(); }, {}, {2, 3, 2, 2}});
  check_layer({"Dropout inference", [](ActivationFn) { return std::make_unique<Dropout>(0.5f); }, {}, {2, 3, 2, 2}});
}

// The checks above must be able to fail: a gradient off by 1 % is caught (and so is a wrong activation slope).
TEST(NnLayerGradcheck, NegativeControls) {
  const Conv2dParams p{.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same()};
  check_layer({"Conv2D gradient x 1.01", conv2d_factory(p), ActivationFn::parse("tanh"), {2, 5, 5, 3}}, kRel, 1.01,
              false);
  check_layer({"BatchNormalization gradient x 1.01",
               [](ActivationFn) { return std::make_unique<BatchNormalization>(); }, {}, {4, 3}, true},
              kRel, 1.01, false);
}

// ---- a whole Sequential, end to end through a loss ------------------------------------------------------------

// Input 8x8x2 -> Conv2D(4, 3x3, same) -> BatchNormalization -> relu -> MaxPooling2D(2) -> Flatten -> Dense(3),
// sparse categorical cross-entropy from logits, BatchNormalization in training mode (batch statistics).
struct SmallNet {
  Sequential model;
  Tensor x = random_tensor({4, 8, 8, 2}, 3);
  Tensor y{{4}, {0.0f, 2.0f, 1.0f, 2.0f}};
  std::unique_ptr<Loss> loss = make_loss("sparse_categorical_crossentropy", true);

  SmallNet() {
    model.add<InputLayer>(Shape{8, 8, 2});
    model.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 4, .kernel_size = {3, 3}, .padding = Padding::same()}});
    model.add<BatchNormalization>();
    model.add<ActivationLayer>(ActivationFn::parse("relu"));
    model.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});
    model.add<Flatten>();
    model.add<Dense>(DenseOptions{.units = 3});
    model.build(11);
    uint64_t seed = 300;
    for (Weight* w : model.trainable_weights())  // non-trivial biases, gamma and beta
      if (w->name == "bias" || w->name == "beta") w->value = random_tensor(w->value.shape(), ++seed, -0.3f, 0.3f);
      else if (w->name == "gamma") w->value = random_tensor(w->value.shape(), ++seed, 0.5f, 1.5f);
  }
  double objective() { return loss->compute(model.forward(x, true), y, nullptr); }
  // The kink pattern: the relu input's signs and every pooling window's arg-max (2x2, stride 2: disjoint windows).
  std::vector<int64_t> kinks() {
    Tensor h = x;
    std::vector<int64_t> pattern;
    for (std::size_t i = 0; i < model.size(); ++i) {
      if (model.layer(i).class_name() == "Activation")
        for (float v : h.values()) pattern.push_back(v > 0);
      if (model.layer(i).class_name() == "MaxPooling2D") {
        const int64_t n = h.dim(0), hh = h.dim(1), ww = h.dim(2), c = h.dim(3);
        for (int64_t b = 0; b < n; ++b)
          for (int64_t oi = 0; oi < hh / 2; ++oi)
            for (int64_t oj = 0; oj < ww / 2; ++oj)
              for (int64_t ch = 0; ch < c; ++ch) {
                int64_t best = 0;
                float m = -INFINITY;
                for (int64_t k = 0; k < 4; ++k) {
                  const float v = h[((b * hh + 2 * oi + k / 2) * ww + 2 * oj + k % 2) * c + ch];
                  if (v > m) m = v, best = k;
                }
                pattern.push_back(best);
              }
      }
      h = model.layer(i).forward(h, true);
    }
    return pattern;
  }
};

TEST(NnSequentialGradcheck, ConvBnReluPoolFlattenDenseThroughLoss) {
  SmallNet net;
  std::vector<Tensor*> vars{&net.x};
  std::vector<std::string> names{"input"};
  for (std::size_t i = 0; i < net.model.size(); ++i)
    for (Weight* w : net.model.layer(i).weights())
      if (w->trainable) vars.push_back(&w->value), names.push_back(net.model.layer(i).name() + "/" + w->name);
  ASSERT_EQ(vars.size(), 7u);  // input, conv kernel + bias, gamma, beta, dense kernel + bias

  for (std::size_t k = 0; k < vars.size(); ++k) {
    if (names[k] == "conv2d/bias") {
      // BatchNormalization in training mode subtracts the batch mean: the loss does not depend on the bias of
      // the convolution before it, and its gradient must vanish up to rounding (relative to the kernel's).
      const Tensor pred = net.model.forward(net.x, true);
      Tensor dpred;
      net.loss->compute(pred, net.y, &dpred);
      net.model.backward(dpred);
      const auto conv = net.model.layer(0).weights();
      double gk = 0, gb = 0;
      for (float v : conv[0]->grad.values()) gk = std::max(gk, std::fabs(double(v)));
      for (float v : conv[1]->grad.values()) gb = std::max(gb, std::fabs(double(v)));
      EXPECT_GT(gk, 0.0);
      EXPECT_LE(gb, 1e-5 * gk) << "the conv bias gradient through training-mode BatchNormalization";
      continue;
    }
    for (uint64_t dir = 0, checked = 0; checked < 2; ++dir) {
      ASSERT_LT(dir, 30u) << "no kink-free direction for " << names[k];
      const Tensor pred = net.model.forward(net.x, true);
      Tensor dpred;
      net.loss->compute(pred, net.y, &dpred);
      const Tensor dx = net.model.backward(dpred);
      Tensor g = dx;
      for (Weight* w : net.model.trainable_weights())
        if (&w->value == vars[k]) g = w->grad;
      // Skip a direction along which a relu input changes sign or a pooling window changes its arg-max.
      const std::vector<int64_t> k0 = net.kinks();
      const Tensor original = *vars[k];
      const Tensor v = random_tensor(vars[k]->shape(), 9000 + 31 * k + dir);
      bool same = true;
      for (float sign : {1.0f, -1.0f}) {
        for (int64_t i = 0; i < v.size(); ++i) (*vars[k])[i] = original[i] + sign * kKinkH * v[i];
        same = same && net.kinks() == k0;
      }
      *vars[k] = original;
      if (!same) continue;
      const Directional d = directional(*vars[k], g, kKinkH, 9000 + 31 * k + dir, [&] { return net.objective(); });
      ++checked;
      ASSERT_GT(d.mag, 0.0) << names[k];
      EXPECT_LE(d.rel_error(), kRel) << names[k] << " direction " << dir << ": fd " << d.fd << ", analytic " << d.an;
    }
  }
}

// ---- losses: the gradient with respect to the predictions ------------------------------------------------------

// The losses are computed in double from float predictions, so the only error is truncation: h = 1e-3 gives
// ~h^2 |L'''| ~ 1e-6 of the scale; rel = 1e-4. The data stays away from the probability clipping bounds, where
// the clipped loss has kinks.
TEST(NnLossGradcheck, EveryLoss) {
  struct Case {
    const char* name;
    bool logits;
    Shape shape;
    bool sparse;
  };
  const Case cases[] = {{"sparse_categorical_crossentropy", true, {5, 4}, true},
                        {"sparse_categorical_crossentropy", false, {5, 4}, true},
                        {"categorical_crossentropy", true, {3, 2, 5}, false},
                        {"categorical_crossentropy", false, {4, 5}, false},
                        {"binary_crossentropy", true, {4, 3}, false},
                        {"binary_crossentropy", false, {4, 3}, false},
                        {"mean_squared_error", false, {4, 3}, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + (c.logits ? " from logits" : " from probabilities"));
    const auto loss = make_loss(c.name, c.logits);
    Tensor pred = c.logits || std::string(c.name) == "mean_squared_error" ? random_tensor(c.shape, 1, -3, 3)
                                                                          : random_tensor(c.shape, 1, 0.1f, 0.9f);
    Tensor target;
    if (c.sparse) {
      target = Tensor({c.shape[0]});
      for (int64_t i = 0; i < target.size(); ++i) target[i] = float((i * 3) % c.shape.back());
    } else {
      target = random_tensor(c.shape, 2, 0.0f, 1.0f);
    }
    Tensor g;
    loss->compute(pred, target, &g);
    for (uint64_t dir = 0; dir < 3; ++dir) {
      const Directional d =
          directional(pred, g, 1e-3f, 70 + dir, [&] { return loss->compute(pred, target, nullptr); });
      ASSERT_GT(d.mag, 0.0);
      EXPECT_LE(d.rel_error(), 1e-4) << "fd " << d.fd << ", analytic " << d.an;
    }
  }
}

}  // namespace
