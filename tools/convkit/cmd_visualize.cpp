// convkit visualize — pictures of a trained model: the learned filters and the activation maps of every
// convolutional layer for one input, and DIR/index.html showing them with the predicted class.
//
//   convkit visualize --model MODEL.safetensors [--image IMG [--invert] | --sample N [--data DIR]] --out DIR
//                     [--attach FILE[=CAPTION] ...] [--note TEXT ...]
//
// The training curves that `convkit train` writes next to the model (MODEL.curves.svg) are copied in and shown
// when they exist. Everything is read and checked before the first file is written.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"
#include "convkit/viz.hpp"
#include "model_files.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {

namespace fs = std::filesystem;

struct VisualizeCliOptions {
  std::string model, image, sample, data = std::string(kFashionMnistDir), out, labels = "fashion-mnist";
  std::string max_filters = "64";
  std::vector<std::string> attach, notes;
  bool invert = false;
};

// MODEL.safetensors -> MODEL.curves.svg (the name `convkit train` gives the curves by default).
std::string curves_next_to(const std::string& model) {
  fs::path p(model);
  if (p.extension() == ".safetensors") p.replace_extension();
  return p.string() + ".curves.svg";
}

void run(const VisualizeCliOptions& o) {
  if (!o.image.empty() && !o.sample.empty()) throw Error("--image and --sample: give one or the other");
  const int max_filters = parse_positive("--max-filters", o.max_filters);
  Sequential model = load_any_model("--model", o.model);
  const Shape in = model.input_shape();
  if (in.size() != 4) throw Error(cat("--model: input ", shape_to_string(in), " is not an image (None, H, W, C)"));

  viz::VisualizeOptions vo;
  vo.out_dir = o.out;
  vo.max_filters = max_filters;
  vo.max_filter_rows = std::min(vo.max_filter_rows, max_filters);
  vo.outputs_are_probabilities = ends_in_softmax(model);
  const Shape out_shape = model.output_shape();
  const int64_t classes = out_shape.back();
  if (o.labels == "fashion-mnist" && classes == int64_t(fashion_mnist_class_names().size()))
    vo.class_names = fashion_mnist_class_names();
  else if (o.labels != "fashion-mnist" && o.labels != "index")
    throw Error(cat("--labels: expected fashion-mnist or index, got '", o.labels, "'"));

  Tensor x;
  if (!o.image.empty()) {
    Tensor img;
    try {
      img = viz::fit_image_to_input(read_image(o.image), in[1], in[2], in[3], o.invert);
    } catch (const Error& e) {
      throw Error(cat("--image: ", e.what()));
    }
    x = std::move(img);
    vo.input_caption = cat(fs::path(o.image).filename().string(), o.invert ? " (inverted)" : "");
  } else {
    const int64_t n = o.sample.empty() ? 0 : parse_int("--sample", o.sample, 0, int64_t{1} << 40);
    const LabelledData test = load_split("--data", o.data, Split::test);
    if (n >= test.x.dim(0)) throw Error(cat("--sample: ", n, " is past the last test image (", test.x.dim(0) - 1, ")"));
    if (test.x.dim(1) != in[1] || test.x.dim(2) != in[2] || test.x.dim(3) != in[3])
      throw Error(cat("--data: images of shape ", shape_to_string(test.x.shape()), " do not fit the model's input ",
                      shape_to_string(in)));
    const int64_t row = test.x.size() / test.x.dim(0);
    x = Tensor({in[1], in[2], in[3]});
    std::copy(test.x.data() + n * row, test.x.data() + (n + 1) * row, x.data());
    const int label = int(test.y[n]);
    vo.input_caption = cat("test image ", n, ", true label: ",
                           std::size_t(label) < test.class_names.size() ? test.class_names[std::size_t(label)]
                                                                        : std::to_string(label));
  }
  x.reshape({1, in[1], in[2], in[3]});

  // Attachments are checked before anything is written; copied after the pictures.
  std::vector<std::pair<std::string, std::string>> copies;  // source, name in DIR
  for (const std::string& a : o.attach) {
    const std::size_t eq = a.find('=');
    const std::string file = a.substr(0, eq), caption = eq == std::string::npos ? fs::path(file).filename().string()
                                                                                : a.substr(eq + 1);
    if (!fs::is_regular_file(file)) throw Error(cat("--attach: '", file, "' is not a file"));
    copies.emplace_back(file, fs::path(file).filename().string());
    vo.extra_pictures.emplace_back(copies.back().second, caption);
  }
  const std::string curves = curves_next_to(o.model);
  if (fs::is_regular_file(curves)) {
    copies.emplace_back(curves, "training_curves.svg");
    vo.extra_pictures.insert(vo.extra_pictures.begin(), {"training_curves.svg", "Training curves"});
  }
  vo.notes = o.notes;

  const viz::VisualizeReport r = viz::visualize_model(model, x, vo);
  for (const auto& [src, name] : copies) {
    const fs::path dst = fs::path(o.out) / name;
    std::error_code ec;
    if (fs::exists(dst) && fs::equivalent(src, dst, ec)) continue;
    write_file_atomic(dst.string(), read_file(src));
  }
  std::cout << "predicted: "
            << (std::size_t(r.predicted) < vo.class_names.size() ? vo.class_names[std::size_t(r.predicted)]
                                                                 : std::to_string(r.predicted))
            << " (" << r.probabilities.at(std::size_t(r.predicted)) * 100 << "%)\n";
  for (const viz::LayerPictures& lp : r.layers)
    std::cout << lp.layer_name << ": " << lp.filters_png << (lp.filters_png.empty() ? "" : ", ") << lp.activations_png
              << "\n";
  std::cout << "wrote " << r.index_html << "\n";
}

}  // namespace

void add_visualize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("visualize", "Pictures of a model's filters and activation maps, with index.html");
  auto o = std::make_shared<VisualizeCliOptions>();
  cmd->add_option("--model", o->model, "A convkit model file (.safetensors)")->required();
  cmd->add_option("--image", o->image, "Input picture (PNG / JPEG), fitted to the model's input");
  cmd->add_flag("--invert", o->invert, "--image: invert the grey levels (Fashion-MNIST items are light on dark)");
  cmd->add_option("--sample", o->sample, "Input: test image N of the dataset (the default: 0)");
  cmd->add_option("--data", o->data, "Dataset directory for --sample")->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory (created if missing)")->required();
  cmd->add_option("--labels", o->labels, "Class names: fashion-mnist (for 10 classes) or index")->capture_default_str();
  cmd->add_option("--max-filters", o->max_filters, "At most this many filters per picture")->capture_default_str();
  cmd->add_option("--attach", o->attach, "FILE[=CAPTION]: another picture to copy in and show on the page")
      ->allow_extra_args(false);
  cmd->add_option("--note", o->notes, "A paragraph at the end of the page (a source, a licence)")->allow_extra_args(false);
  cmd->callback([o] { run(*o); });
}

}  // namespace convkit::cli
