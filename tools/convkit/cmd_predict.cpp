// convkit predict — class probabilities of a trained model for a batch of inputs (.npy) or one image (PNG/JPEG).
// An image is converted to the model's input: grey or colour as the model's channels ask, alpha composited over
// black, resized with antialiased bilinear interpolation (PyTorch's convention) to the model's height and width,
// and optionally inverted (--invert: Fashion-MNIST items are light on a dark background).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "commands.hpp"
#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"
#include "convkit/layers.hpp"
#include "model_files.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {
struct PredictOptions {
  std::string model, input, output, top = "3", labels = "fashion-mnist";
  bool invert = false;
};

// One image file as a (1, H, W, C) batch for a model whose input is (None, H, W, C).
Tensor image_batch(const std::string& path, const Shape& in, bool invert) {
  Tensor img = read_image(path);
  if (img.dim(2) == 2 || img.dim(2) == 4) img = flatten_alpha(img, 0.0f);
  if (in[3] == 1 && img.dim(2) != 1) img = to_grayscale(img);
  if (in[3] != img.dim(2))
    throw Error(cat(path, ": an image with ", img.dim(2), " channel(s) cannot feed a model with ", in[3]));
  img = resize_bilinear(img, in[1], in[2], /*antialias=*/true);
  if (invert)
    for (float& v : img.values()) v = 1.0f - v;
  img.reshape({1, in[1], in[2], in[3]});
  return img;
}

std::vector<std::string> class_labels(const std::string& which, int64_t classes) {
  if (which == "fashion-mnist" && classes == int64_t(fashion_mnist_class_names().size()))
    return fashion_mnist_class_names();
  if (which != "fashion-mnist" && which != "index")
    throw Error(cat("--labels: expected fashion-mnist or index, got '", which, "'"));
  std::vector<std::string> names;
  for (int64_t i = 0; i < classes; ++i) names.push_back(std::to_string(i));
  return names;
}
}  // namespace

void add_predict_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Class probabilities of a trained model for an input batch");
  auto o = std::make_shared<PredictOptions>();
  cmd->add_option("--model", o->model, "A convkit model file (.safetensors)")->required();
  cmd->add_option("--input", o->input, ".npy float32 batch (N, H, W, C) or one (H, W, C); or a PNG / JPEG image")
      ->required();
  cmd->add_flag("--invert", o->invert, "Image input: invert the grey levels (dark items on a light background)");
  cmd->add_option("--top", o->top, "How many classes to print per input")->capture_default_str();
  cmd->add_option("--labels", o->labels, "Class names: fashion-mnist (for 10 classes) or index")->capture_default_str();
  cmd->add_option("--output", o->output, "Also write all probabilities to this .npy file (N, classes)");
  cmd->callback([o] {
    const int top = parse_positive("--top", o->top);
    if (!o->output.empty()) check_writable("--output", o->output);
    Sequential model = load_any_model("--model", o->model);
    const Shape in = model.input_shape();
    Tensor x;
    try {
      const bool image = in.size() == 4 && detect_image_format(read_file(o->input).substr(0, 16)) != ImageFormat::unknown;
      x = image ? image_batch(o->input, in, o->invert) : read_npy(o->input);
    } catch (const Error& e) {
      throw Error(cat("--input: ", e.what()));
    }
    if (x.rank() == int(in.size()) - 1) {  // a single image: add the batch axis
      Shape s{1};
      s.insert(s.end(), x.shape().begin(), x.shape().end());
      x.reshape(s);
    }
    if (x.rank() != int(in.size()) || !std::equal(in.begin() + 1, in.end(), x.shape().begin() + 1))
      throw Error(cat("--input: shape ", shape_to_string(x.shape()), " does not fit the model's input (None",
                      [&] { std::string s; for (std::size_t i = 1; i < in.size(); ++i) s += cat(", ", in[i]); return s; }(),
                      ")"));
    Tensor p = model.predict(x);
    if (p.rank() != 2) throw Error(cat("the model's output ", shape_to_string(p.shape()), " is not (batch, classes)"));
    if (!ends_in_softmax(model)) ActivationFn{ActivationFn::Kind::softmax}.forward(p);  // logits -> probabilities
    const int64_t classes = p.dim(1);
    const std::vector<std::string> names = class_labels(o->labels, classes);
    for (int64_t i = 0; i < p.dim(0); ++i) {
      std::vector<int64_t> order(static_cast<std::size_t>(classes));
      std::iota(order.begin(), order.end(), 0);
      const float* row = p.data() + i * classes;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
      std::cout << "input " << i << ":";
      for (int64_t k = 0; k < std::min<int64_t>(top, classes); ++k) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.4f", double(row[order[std::size_t(k)]]));
        std::cout << (k ? ", " : " ") << names[std::size_t(order[std::size_t(k)])] << " " << buf;
      }
      std::cout << "\n";
    }
    if (!o->output.empty()) write_npy(o->output, p);
  });
}

}  // namespace convkit::cli
