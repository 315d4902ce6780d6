// Writes a small trained-looking convkit model file for check_model_file.py, with what an independent reader needs
// to check it: every weight as a .npy file (read by NumPy's own np.load), an input and convkit's prediction.
//
//   nn_io_tool <dir>  ->  <dir>/model.safetensors, <dir>/x.npy (3, 5, 6, 2), <dir>/y.npy (3, 4),
//                         <dir>/weights/<layer>.<weight>.npy
#include <cstdio>
#include <filesystem>
#include <string>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/serialize.hpp"

int main(int argc, char** argv) {
  using namespace convkit;
  if (argc != 2) {
    std::fprintf(stderr, "usage: nn_io_tool <dir>\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    std::filesystem::create_directories(dir + "/weights");
    Sequential m("doc_check");
    m.add<InputLayer>(Shape{5, 6, 2});
    m.add<Conv2D>(Conv2dLayerOptions{.conv = {.filters = 3, .kernel_size = {3, 3}, .padding = Padding::same()},
                                     .activation = ActivationFn::parse("relu")});
    m.add<BatchNormalization>();
    m.add<Pooling2D>(PoolKind::max, Pool2dParams{.pool_size = {2, 2}});  // (2, 3, 3)
    m.add<Flatten>();                                                     // 18, NHWC order
    m.add<Dense>(DenseOptions{.units = 4});
    m.build(7);
    Rng rng(11);
    auto random = [&](const Shape& s, float lo, float hi) {
      Tensor t(s);
      for (int64_t i = 0; i < t.size(); ++i) t[i] = rng.uniform(lo, hi);
      return t;
    };
    // Non-trivial BatchNormalization statistics and bias, as after training.
    for (Weight* w : m.weights())
      if (w->name != "kernel") w->value = random(w->value.shape(), w->name == "moving_variance" ? 0.5f : -1.0f, 1.5f);
    save_model(dir + "/model.safetensors", m);
    for (std::size_t i = 0; i < m.size(); ++i)
      for (Weight* w : m.layer(i).weights())
        write_npy(dir + "/weights/" + m.layer(i).name() + "." + w->name + ".npy", w->value);
    const Tensor x = random({3, 5, 6, 2}, -1.0f, 1.0f);
    write_npy(dir + "/x.npy", x);
    write_npy(dir + "/y.npy", m.predict(x));
  } catch (const Error& e) {
    std::fprintf(stderr, "nn_io_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
