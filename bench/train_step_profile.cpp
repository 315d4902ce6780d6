// bench/train_step_profile.cpp — where a training step of the classic Fashion-MNIST CNN spends its time: CPU time of
// each layer's forward_step / backward_step (the path Sequential runs), the loss and the Adam step, per step of
// batch 64 on random data. CPU time rather than wall time, so that a busy machine distorts it less; with one
// thread it is the work itself (with more, idle threads spinning at barriers count too).
//
//   g++ -std=c++20 -O2 -fopenmp -Iinclude bench/train_step_profile.cpp build/<dir>/libconvkit.a -lz -lpng -ljpeg
//       -o /tmp/train_step_profile && /tmp/train_step_profile [threads=1] [steps=20] [model=examples/fashion_cnn.json]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "convkit/runtime.hpp"
#include "convkit/serialize.hpp"
#include "convkit/train.hpp"

using namespace convkit;

namespace {
double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::stoi(argv[1]) : 1, steps = argc > 2 ? std::stoi(argv[2]) : 20;
  const std::string path = argc > 3 ? argv[3] : "examples/fashion_cnn.json";
  constexpr int kBatch = 64, kWarmup = 3;
  set_num_threads(threads);
  Sequential m = load_model_json(path);
  m.build(0);
  Shape xs = m.input_shape();
  xs[0] = kBatch;
  Tensor x(xs), y({kBatch});
  Rng rng(1);
  for (float& v : x.values()) v = rng.uniform();
  for (int i = 0; i < kBatch; ++i) y[i] = float(i % 10);
  const auto loss = make_loss("sparse_categorical_crossentropy", true);
  const auto opt = make_adam();
  const std::vector<Weight*> ws = m.trainable_weights();
  std::vector<double> fwd(m.size()), bwd(m.size());
  double t_loss = 0, t_opt = 0, start = 0;
  for (int s = 0; s < kWarmup + steps; ++s) {
    if (s == kWarmup) {  // buffers, plans and slots exist now: start counting
      std::fill(fwd.begin(), fwd.end(), 0.0);
      std::fill(bwd.begin(), bwd.end(), 0.0);
      t_loss = t_opt = 0;
      start = cpu_seconds();
    }
    const Tensor* h = &x;
    for (std::size_t i = 0; i < m.size(); ++i) {
      const double t = cpu_seconds();
      h = &m.layer(i).forward_step(*h, true);
      fwd[i] += cpu_seconds() - t;
    }
    double t = cpu_seconds();
    Tensor dy;
    loss->compute(*h, y, &dy);
    t_loss += cpu_seconds() - t;
    Tensor* g = &dy;
    for (std::size_t i = m.size(); i-- > 0;) {
      t = cpu_seconds();
      g = &m.layer(i).backward_step(*g, i > 0);
      bwd[i] += cpu_seconds() - t;
    }
    t = cpu_seconds();
    opt->step(ws, 1e-3f);
    t_opt += cpu_seconds() - t;
  }
  const double total = cpu_seconds() - start;
  std::printf("%s, batch %d, %d thread(s), %d steps; CPU ms per step\n", path.c_str(), kBatch, threads, steps);
  for (std::size_t i = 0; i < m.size(); ++i)
    std::printf("  %-18s forward %7.2f   backward %7.2f\n", m.layer(i).name().c_str(), 1e3 * fwd[i] / steps,
                1e3 * bwd[i] / steps);
  std::printf("  loss %.2f   optimizer (Adam) %.2f   total %.2f -> %.0f images per CPU second\n", 1e3 * t_loss / steps,
              1e3 * t_opt / steps, 1e3 * total / steps, kBatch * steps / total);
}
