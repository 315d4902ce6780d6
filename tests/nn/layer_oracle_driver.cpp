// layer_oracle_driver — runs convkit's layers, losses, optimisers and learning-rate schedules on a directory of
// cases so that layers_vs_torch.py can compare them with a PyTorch float64 oracle. One process runs every case.
//
//   layer_oracle_driver DIR      (reads DIR/manifest.json, writes DIR/results.json and the output .npy files)
//
// Every case has an "id" and a "kind"; file names are relative to DIR and outputs are named c<id>_<what>.npy.
//
// kind "layer": builds ONE layer from a Keras-style config, sets its weights, runs forward(x, training) and
// backward(dy).
//   {"id": 0, "kind": "layer", "layer": "Conv2D", "config": {...}, "training": false,
//    "x": "c0_x.npy", "dy": "c0_dy.npy",                        x (N, ...) the input, dy the output's shape
//    "weights": [["kernel", "c0_w_kernel.npy"], ["bias", "c0_w_bias.npy"]]}
//   "weights" lists every variable in the order Layer::weights() must return it (Keras' order): the driver fails
//   the case when the names, the order or the shapes differ. Config fields use Keras' names:
//     Conv2D:           filters, kernel_size [h, w], strides, padding ("valid" | "same" | [t, b, l, r]),
//                       dilation_rate, groups, use_bias, activation, padding_mode, alpha (optional)
//     DepthwiseConv2D:  kernel_size, strides, padding, depth_multiplier, dilation_rate, use_bias, activation,
//                       padding_mode
//     SeparableConv2D:  filters, kernel_size, strides, padding, depth_multiplier, dilation_rate, use_bias,
//                       activation, padding_mode
//     MaxPooling2D / AveragePooling2D: pool_size, strides (null = pool_size), padding, ceil_mode,
//                       count_include_pad
//     GlobalMaxPooling2D / GlobalAveragePooling2D, Flatten: nothing
//     Dense:            units, activation, use_bias
//     Dropout:          rate, seed (optional)
//     BatchNormalization: momentum, epsilon, center, scale
//     Activation:       activation, alpha (optional: overrides the default slope / scale)
//     ZeroPadding2D:    padding [[top, bottom], [left, right]]
//   Outputs: c<id>_y.npy (forward), c<id>_dx.npy (backward), c<id>_grad_<name>.npy for each trainable weight, and
//   c<id>_value_<name>.npy for each weight after the forward (BatchNormalization's updated moving statistics).
//
// kind "loss": {"loss": "categorical_crossentropy", "from_logits": true, "pred": "...", "target": "..."}.
//   Result "loss" (a double in results.json) and c<id>_dpred.npy.
//
// kind "optimizer": {"optimizer": "sgd" | "adam" | "adamw", "options": {...}, "lrs": [lr per step],
//   "weights": ["c3_w0.npy", ...], "grads": ["c3_g0.npy", ...]} where grads[k] is (steps, weight k's shape): the
//   gradient fed at each step. Output c<id>_w<k>.npy: (steps, shape), weight k after each step.
//
// kind "schedule": {"schedule": {"kind": "step" | "cosine" | "constant", "initial", "step_epochs", "factor",
//   "min_fraction"}, "queries": [[step, total_steps, steps_per_epoch], ...]}. Result "values": LrSchedule::at().
//
// DIR/results.json: {"results": [{"id": 0, "status": "ok", "weights": [...], ...} |
//                                {"id": 1, "status": "error", "message": "..."}]}
// "error" is a convkit::Error (expected for the rejection cases), "crash" any other exception.
// Exit status: 0 when every case was attempted, 2 when the manifest itself is unusable.
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/layers.hpp"
#include "convkit/train.hpp"
#include "oracle_driver.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using convkit::Error;
using convkit::Tensor;

convkit::Size2 size2(const json& c, const char* key) {
  const json& v = c.at(key);
  if (!v.is_array() || v.size() != 2) throw Error(std::string(key) + ": expected [h, w]");
  return {v[0].get<int>(), v[1].get<int>()};
}

convkit::Padding padding_from(const json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "valid") return convkit::Padding::valid();
    if (s == "same") return convkit::Padding::same();
    throw Error("padding: unknown string '" + s + "'");
  }
  if (!v.is_array() || v.size() != 4) throw Error("padding: expected \"valid\", \"same\" or [t, b, l, r]");
  return convkit::Padding::explicit_pad(v[0].get<int>(), v[1].get<int>(), v[2].get<int>(), v[3].get<int>());
}

convkit::ActivationFn activation_from(const json& c) {
  convkit::ActivationFn fn = convkit::ActivationFn::parse(c.value("activation", std::string("linear")));
  if (c.contains("alpha")) fn.alpha = c.at("alpha").get<float>();
  return fn;
}

// The explicit config -> options mapping: every manifest field lands in one named field.
std::unique_ptr<convkit::Layer> make_layer(const std::string& layer, const json& c) {
  using namespace convkit;
  if (layer == "Conv2D") {
    Conv2dLayerOptions o;
    o.conv.filters = c.at("filters").get<int>();
    o.conv.kernel_size = size2(c, "kernel_size");
    o.conv.strides = size2(c, "strides");
    o.conv.padding = padding_from(c.at("padding"));
    o.conv.dilation_rate = size2(c, "dilation_rate");
    o.conv.groups = c.at("groups").get<int>();
    o.conv.use_bias = c.at("use_bias").get<bool>();
    o.conv.padding_mode = parse_padding_mode(c.at("padding_mode").get<std::string>());
    o.activation = activation_from(c);
    return std::make_unique<Conv2D>(o);
  }
  if (layer == "DepthwiseConv2D") {
    DepthwiseConv2dLayerOptions o;
    o.conv.kernel_size = size2(c, "kernel_size");
    o.conv.strides = size2(c, "strides");
    o.conv.padding = padding_from(c.at("padding"));
    o.conv.depth_multiplier = c.at("depth_multiplier").get<int>();
    o.conv.dilation_rate = size2(c, "dilation_rate");
    o.conv.use_bias = c.at("use_bias").get<bool>();
    o.conv.padding_mode = parse_padding_mode(c.at("padding_mode").get<std::string>());
    o.activation = activation_from(c);
    return std::make_unique<DepthwiseConv2D>(o);
  }
  if (layer == "SeparableConv2D") {
    SeparableConv2dLayerOptions o;
    o.filters = c.at("filters").get<int>();
    o.kernel_size = size2(c, "kernel_size");
    o.strides = size2(c, "strides");
    o.padding = padding_from(c.at("padding"));
    o.depth_multiplier = c.at("depth_multiplier").get<int>();
    o.dilation_rate = size2(c, "dilation_rate");
    o.use_bias = c.at("use_bias").get<bool>();
    o.padding_mode = parse_padding_mode(c.at("padding_mode").get<std::string>());
    o.activation = activation_from(c);
    return std::make_unique<SeparableConv2D>(o);
  }
  if (layer == "MaxPooling2D" || layer == "AveragePooling2D") {
    Pool2dParams p;
    p.pool_size = size2(c, "pool_size");
    if (c.contains("strides") && !c.at("strides").is_null()) p.strides = size2(c, "strides");
    p.padding = padding_from(c.at("padding"));
    p.ceil_mode = c.value("ceil_mode", false);
    p.count_include_pad = c.value("count_include_pad", false);
    return std::make_unique<Pooling2D>(layer == "MaxPooling2D" ? PoolKind::max : PoolKind::average, p);
  }
  if (layer == "GlobalMaxPooling2D") return std::make_unique<GlobalPooling2D>(PoolKind::max);
  if (layer == "GlobalAveragePooling2D") return std::make_unique<GlobalPooling2D>(PoolKind::average);
  if (layer == "Dense") {
    DenseOptions o;
    o.units = c.at("units").get<int>();
    o.use_bias = c.at("use_bias").get<bool>();
    o.activation = activation_from(c);
    return std::make_unique<Dense>(o);
  }
  if (layer == "Flatten") return std::make_unique<Flatten>();
  if (layer == "Dropout") {
    std::optional<uint64_t> seed;
    if (c.contains("seed")) seed = c.at("seed").get<uint64_t>();
    return std::make_unique<Dropout>(c.at("rate").get<float>(), seed);
  }
  if (layer == "BatchNormalization") {
    BatchNormOptions o;
    o.momentum = c.at("momentum").get<float>();
    o.epsilon = c.at("epsilon").get<float>();
    o.center = c.at("center").get<bool>();
    o.scale = c.at("scale").get<bool>();
    return std::make_unique<BatchNormalization>(o);
  }
  if (layer == "Activation") return std::make_unique<ActivationLayer>(activation_from(c));
  if (layer == "ZeroPadding2D") {
    const json& p = c.at("padding");
    return std::make_unique<ZeroPadding2D>(p.at(0).at(0).get<int>(), p.at(0).at(1).get<int>(),
                                           p.at(1).at(0).get<int>(), p.at(1).at(1).get<int>());
  }
  throw std::runtime_error("unknown layer '" + layer + "'");
}

// Scratch outputs are written plainly: write_npy()'s fsync per file would dominate the run time, and a torn file
// here would only fail the comparison.
void write_scratch_npy(const fs::path& path, const Tensor& t) {
  const std::string bytes = convkit::serialize_npy(t);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

Tensor read_input(const fs::path& dir, const json& c, const char* key) {
  return convkit::read_npy((dir / c.at(key).get<std::string>()).string());
}

// Appends rather than prepending to a temporary: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string&&.
std::string numbered(const char* prefix, int64_t k) {
  std::string s = prefix;
  s += std::to_string(k);
  return s;
}

std::string out_name(const json& c, const std::string& what) {
  std::string s = numbered("c", c.at("id").get<int>());
  s += "_";
  s += what;
  s += ".npy";
  return s;
}

void run_layer(const fs::path& dir, const json& c, json& r) {
  std::unique_ptr<convkit::Layer> layer = make_layer(c.at("layer").get<std::string>(), c.value("config", json::object()));
  const Tensor x = read_input(dir, c, "x");
  convkit::Rng rng(0);
  layer->build(x.shape(), rng);

  // Weights in Layer::weights() order must be exactly the manifest's list: Keras' names, Keras' order.
  std::vector<convkit::Weight*> ws = layer->weights();
  const json& expected = c.at("weights");
  json names = json::array();
  for (const convkit::Weight* w : ws) names.push_back(w->name);
  r["weights"] = names;
  if (ws.size() != expected.size())
    throw std::runtime_error("the layer has " + std::to_string(ws.size()) + " weights " + names.dump() +
                             ", the manifest lists " + std::to_string(expected.size()));
  for (std::size_t i = 0; i < ws.size(); ++i) {
    const std::string want = expected[i].at(0).get<std::string>();
    if (ws[i]->name != want)
      throw std::runtime_error("weight " + std::to_string(i) + " is '" + ws[i]->name + "', expected '" + want + "'");
    Tensor v = convkit::read_npy((dir / expected[i].at(1).get<std::string>()).string());
    if (v.shape() != ws[i]->value.shape())
      throw std::runtime_error("weight '" + want + "' has shape " + convkit::shape_to_string(ws[i]->value.shape()) +
                               ", the file holds " + convkit::shape_to_string(v.shape()));
    ws[i]->value = std::move(v);
  }
  json trainable = json::array();
  for (const convkit::Weight* w : ws) trainable.push_back(w->trainable);
  r["trainable"] = trainable;

  const bool training = c.value("training", false);
  const Tensor y = layer->forward(x, training);
  json oshape = json::array();
  for (int64_t d : y.shape()) oshape.push_back(d);
  r["output_shape"] = oshape;
  write_scratch_npy(dir / out_name(c, "y"), y);
  for (const convkit::Weight* w : ws) write_scratch_npy(dir / out_name(c, "value_" + w->name), w->value);
  if (!c.contains("dy")) return;
  const Tensor dy = read_input(dir, c, "dy");
  if (dy.shape() != y.shape())
    throw std::runtime_error("dy " + convkit::shape_to_string(dy.shape()) + " does not have the output's shape " +
                             convkit::shape_to_string(y.shape()));
  const Tensor dx = layer->backward(dy);
  write_scratch_npy(dir / out_name(c, "dx"), dx);
  for (const convkit::Weight* w : ws)
    if (w->trainable) write_scratch_npy(dir / out_name(c, "grad_" + w->name), w->grad);
}

void run_loss(const fs::path& dir, const json& c, json& r) {
  const auto loss = convkit::make_loss(c.at("loss").get<std::string>(), c.value("from_logits", false));
  r["name"] = loss->name();
  const Tensor pred = read_input(dir, c, "pred"), target = read_input(dir, c, "target");
  Tensor dpred;
  r["loss"] = loss->compute(pred, target, &dpred);
  if (dpred.shape() != pred.shape())
    throw std::runtime_error("dpred " + convkit::shape_to_string(dpred.shape()) + " does not have pred's shape");
  write_scratch_npy(dir / out_name(c, "dpred"), dpred);
}

void run_optimizer(const fs::path& dir, const json& c, json& r) {
  const std::string kind = c.at("optimizer").get<std::string>();
  const json& o = c.value("options", json::object());
  std::unique_ptr<convkit::Optimizer> opt;
  if (kind == "sgd") {
    opt = convkit::make_sgd({.momentum = o.value("momentum", 0.0f), .nesterov = o.value("nesterov", false)});
  } else if (kind == "adam" || kind == "adamw") {
    convkit::AdamOptions a = kind == "adam" ? convkit::AdamOptions{} : convkit::AdamOptions{.weight_decay = 0.004f};
    a.beta_1 = o.value("beta_1", a.beta_1);
    a.beta_2 = o.value("beta_2", a.beta_2);
    a.epsilon = o.value("epsilon", a.epsilon);
    a.weight_decay = o.value("weight_decay", a.weight_decay);
    opt = kind == "adam" ? convkit::make_adam(a) : convkit::make_adamw(a);
  } else {
    throw std::runtime_error("unknown optimizer '" + kind + "'");
  }
  r["name"] = opt->name();
  const json& lrs = c.at("lrs");
  const json& wfiles = c.at("weights");
  const json& gfiles = c.at("grads");
  const auto steps = static_cast<int64_t>(lrs.size());
  std::vector<convkit::Weight> ws(wfiles.size());
  std::vector<Tensor> grads, history;
  for (std::size_t k = 0; k < ws.size(); ++k) {
    ws[k].name = numbered("w", int64_t(k));
    ws[k].value = convkit::read_npy((dir / wfiles[k].get<std::string>()).string());
    ws[k].grad = Tensor(ws[k].value.shape());
    grads.push_back(convkit::read_npy((dir / gfiles[k].get<std::string>()).string()));
    if (grads.back().rank() < 1 || grads.back().dim(0) != steps ||
        grads.back().size() != steps * ws[k].value.size())
      throw std::runtime_error("grads " + std::to_string(k) + " must be (steps, weight shape)");
    convkit::Shape hs = grads.back().shape();
    history.emplace_back(hs);
  }
  std::vector<convkit::Weight*> ptrs;
  for (auto& w : ws) ptrs.push_back(&w);
  for (int64_t t = 0; t < steps; ++t) {
    for (std::size_t k = 0; k < ws.size(); ++k) {
      const int64_t n = ws[k].value.size();
      std::copy_n(grads[k].data() + t * n, n, ws[k].grad.data());
    }
    opt->step(ptrs, lrs[static_cast<std::size_t>(t)].get<float>());
    for (std::size_t k = 0; k < ws.size(); ++k) {
      const int64_t n = ws[k].value.size();
      std::copy_n(ws[k].value.data(), n, history[k].data() + t * n);
    }
  }
  r["iterations"] = opt->iterations;
  for (std::size_t k = 0; k < ws.size(); ++k) write_scratch_npy(dir / out_name(c, numbered("w", int64_t(k))), history[k]);
}

void run_schedule(const json& c, json& r) {
  const json& s = c.at("schedule");
  convkit::LrSchedule sched;
  const std::string kind = s.at("kind").get<std::string>();
  sched.kind = kind == "step"     ? convkit::LrSchedule::Kind::step
               : kind == "cosine" ? convkit::LrSchedule::Kind::cosine
                                  : convkit::LrSchedule::Kind::constant;
  sched.initial = s.value("initial", sched.initial);
  sched.step_epochs = s.value("step_epochs", sched.step_epochs);
  sched.factor = s.value("factor", sched.factor);
  sched.min_fraction = s.value("min_fraction", sched.min_fraction);
  json values = json::array();
  for (const json& q : c.at("queries"))
    values.push_back(double(sched.at(q.at(0).get<int64_t>(), q.at(1).get<int64_t>(), q.at(2).get<int64_t>())));
  r["values"] = values;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: layer_oracle_driver DIR   (reads DIR/manifest.json, writes DIR/results.json)\n";
    return 2;
  }
  const fs::path dir = argv[1];
  return convkit::test_support::run_oracle_manifest("layer_oracle_driver", dir, [&](const json& c, json& r) {
    const std::string kind = c.at("kind").get<std::string>();
    if (kind == "layer") run_layer(dir, c, r);
    else if (kind == "loss") run_loss(dir, c, r);
    else if (kind == "optimizer") run_optimizer(dir, c, r);
    else if (kind == "schedule") run_schedule(c, r);
    else throw std::runtime_error("unknown case kind '" + kind + "'");
  });
}
