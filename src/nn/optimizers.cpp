// Optimisers with Keras' update rules.
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/train.hpp"
#include "convkit/runtime.hpp"
#include "core/strings.hpp"
#include "ops/conv2d_parallel.hpp"

namespace convkit {

using core::cat;

namespace {

// Runs fn(begin, end) over [0, n) on the library's threads when the weight is large enough to pay for them (the
// Dense kernels of a small CNN hold millions of values; biases a few). The updates are elementwise, so the split
// does not change any value.
template <typename Fn>
void for_elements(int64_t n, Fn&& fn) {
  constexpr int64_t kMinParallel = int64_t{1} << 16;
  ops::parallel_for(n < kMinParallel ? 1 : num_threads(), n, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

// The updates of n elements. Plain loops over restrict pointers and by-value scalars, which GCC vectorises (as
// lambdas reading the scalars through captured references they stayed scalar: a float store might have changed
// them; Adam on Fashion-MNIST's 3.3 M weights took 4.5 ms a step, now about 1). The vector code runs the same
// operations in the same order, each correctly rounded (no FMA in the x86-64 baseline this file is compiled for;
// -fno-math-errno lets std::sqrt vectorise), so the results are those of the scalar rule.
void sgd_update(float* __restrict w, const float* __restrict g, float* __restrict v, int64_t n, float lr,
                float momentum, bool nesterov) {
  if (momentum == 0.0f) {
    for (int64_t j = 0; j < n; ++j) w[j] -= lr * g[j];
  } else if (nesterov) {
    for (int64_t j = 0; j < n; ++j) {
      v[j] = momentum * v[j] - lr * g[j];
      w[j] += momentum * v[j] - lr * g[j];
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      v[j] = momentum * v[j] - lr * g[j];
      w[j] += v[j];
    }
  }
}

// Adam's rule below, after AdamW's decay (decay 0: none).
void adam_update(float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                 float decay, float b1, float b2, float alpha, float eps) {
  if (decay != 0.0f)
    for (int64_t j = 0; j < n; ++j) w[j] -= decay * w[j];
  for (int64_t j = 0; j < n; ++j) {
    m[j] = b1 * m[j] + (1 - b1) * g[j];
    v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
    w[j] -= alpha * m[j] / (std::sqrt(v[j]) + eps);
  }
}

// Slots shaped like each weight, created once for a given list of weights.
struct Slots {
  std::vector<std::vector<Tensor>> per_weight;  // [weight][slot]
  void ensure(const std::vector<Weight*>& ws, std::size_t count) {
    if (per_weight.size() == ws.size()) {
      bool same = true;
      for (std::size_t i = 0; i < ws.size() && same; ++i) same = per_weight[i][0].shape() == ws[i]->value.shape();
      if (same) return;
      if (!per_weight.empty())
        throw Error("optimizer: the weights changed shape since the optimizer's slots were created");
    } else if (!per_weight.empty()) {
      throw Error(cat("optimizer: prepared for ", per_weight.size(), " weights, asked to update ", ws.size()));
    }
    per_weight.assign(ws.size(), {});
    for (std::size_t i = 0; i < ws.size(); ++i)
      for (std::size_t k = 0; k < count; ++k) per_weight[i].emplace_back(ws[i]->value.shape());
  }
  std::vector<std::pair<std::string, Tensor*>> state(const char* const* names, std::size_t count) {
    std::vector<std::pair<std::string, Tensor*>> out;
    for (std::size_t i = 0; i < per_weight.size(); ++i)
      for (std::size_t k = 0; k < count; ++k) out.emplace_back(cat(i, "/", names[k]), &per_weight[i][k]);
    return out;
  }
};

// SGD: v = momentum * v - lr * g; w += v (Nesterov: w += momentum * v - lr * g). No momentum: w -= lr * g.
class Sgd final : public Optimizer {
 public:
  explicit Sgd(SgdOptions o) : o_(o) {
    if (o.momentum < 0 || o.momentum >= 1) throw Error(cat("SGD: momentum must be in [0, 1), got ", o.momentum));
  }
  std::string name() const override { return "SGD"; }
  void prepare(const std::vector<Weight*>& ws) override { slots_.ensure(ws, 1); }
  void step(const std::vector<Weight*>& ws, float lr) override {
    prepare(ws);
    for (std::size_t i = 0; i < ws.size(); ++i) {
      float* w = ws[i]->value.data();
      const float* g = ws[i]->grad.data();
      float* v = slots_.per_weight[i][0].data();
      const int64_t n = ws[i]->value.size();
      const float momentum = o_.momentum;
      const bool nesterov = o_.nesterov;
      for_elements(n, [&](int64_t j0, int64_t j1) {
        sgd_update(w + j0, g + j0, v + j0, j1 - j0, lr, momentum, nesterov);
      });
    }
    ++iterations;
  }
  std::vector<std::pair<std::string, Tensor*>> state() override {
    static const char* const names[] = {"velocity"};
    return slots_.state(names, 1);
  }
  std::vector<std::pair<std::string, double>> options() const override {
    return {{"momentum", o_.momentum}, {"nesterov", o_.nesterov ? 1.0 : 0.0}};
  }

 private:
  SgdOptions o_;
  Slots slots_;
};

// Adam (Keras): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps). AdamW first decays w -= lr * wd * w.
class Adam final : public Optimizer {
 public:
  Adam(AdamOptions o, bool decoupled) : o_(o), decoupled_(decoupled) {
    if (!(o.beta_1 >= 0 && o.beta_1 < 1) || !(o.beta_2 >= 0 && o.beta_2 < 1))
      throw Error(cat(name(), ": beta_1 and beta_2 must be in [0, 1), got ", o.beta_1, " and ", o.beta_2));
    if (!(o.epsilon > 0)) throw Error(cat(name(), ": epsilon must be positive, got ", o.epsilon));
    if (o.weight_decay < 0) throw Error(cat(name(), ": weight_decay must be non-negative, got ", o.weight_decay));
  }
  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  void prepare(const std::vector<Weight*>& ws) override { slots_.ensure(ws, 2); }
  void step(const std::vector<Weight*>& ws, float lr) override {
    prepare(ws);
    const double t = double(iterations + 1);
    const float alpha = float(lr * std::sqrt(1 - std::pow(double(o_.beta_2), t)) / (1 - std::pow(double(o_.beta_1), t)));
    for (std::size_t i = 0; i < ws.size(); ++i) {
      float* w = ws[i]->value.data();
      const float* g = ws[i]->grad.data();
      float* m = slots_.per_weight[i][0].data();
      float* v = slots_.per_weight[i][1].data();
      const int64_t n = ws[i]->value.size();
      const float decay = decoupled_ ? lr * o_.weight_decay : 0.0f;
      const float b1 = o_.beta_1, b2 = o_.beta_2, eps = o_.epsilon;
      for_elements(n, [&](int64_t j0, int64_t j1) {
        adam_update(w + j0, g + j0, m + j0, v + j0, j1 - j0, decay, b1, b2, alpha, eps);
      });
    }
    ++iterations;
  }
  std::vector<std::pair<std::string, Tensor*>> state() override {
    static const char* const names[] = {"m", "v"};
    return slots_.state(names, 2);
  }
  std::vector<std::pair<std::string, double>> options() const override {
    return {{"beta_1", o_.beta_1}, {"beta_2", o_.beta_2}, {"epsilon", o_.epsilon}, {"weight_decay", o_.weight_decay}};
  }

 private:
  AdamOptions o_;
  bool decoupled_;
  Slots slots_;
};

}  // namespace

std::unique_ptr<Optimizer> make_sgd(SgdOptions o) { return std::make_unique<Sgd>(o); }
std::unique_ptr<Optimizer> make_adam(AdamOptions o) { return std::make_unique<Adam>(o, false); }
std::unique_ptr<Optimizer> make_adamw(AdamOptions o) { return std::make_unique<Adam>(o, true); }

float LrSchedule::at(int64_t step, int64_t total_steps, int64_t steps_per_epoch) const {
  switch (kind) {
    case Kind::constant: return initial;
    case Kind::step: {
      const int64_t epoch = steps_per_epoch > 0 ? step / steps_per_epoch : 0;
      return initial * float(std::pow(double(factor), double(epoch / std::max(step_epochs, 1))));
    }
    case Kind::cosine: {
      const double progress = total_steps > 0 ? std::min(1.0, double(step) / double(total_steps)) : 0.0;
      const double cosine = 0.5 * (1 + std::cos(3.14159265358979323846 * progress));
      return float(initial * (min_fraction + (1 - min_fraction) * cosine));
    }
  }
  return initial;
}

}  // namespace convkit
