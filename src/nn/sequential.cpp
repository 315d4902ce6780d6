// Sequential: shape inference from the input, Keras' summary, forward / backward over the stack.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <set>

#include "convkit/error.hpp"
#include "convkit/model.hpp"
#include "core/strings.hpp"
#include "nn/step_buffers.hpp"

namespace convkit {

using core::cat;

namespace {

// Keras' default layer names: the class name in snake case ("MaxPooling2D" -> "max_pooling2d"): an underscore
// before an upper-case letter that starts a lower-case run, and between a lower-case and an upper-case letter.
std::string snake_case(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool upper = std::isupper(static_cast<unsigned char>(s[i]));
    if (upper && i > 0) {
      const bool next_lower = i + 1 < s.size() && std::islower(static_cast<unsigned char>(s[i + 1]));
      const bool prev_lower = std::islower(static_cast<unsigned char>(s[i - 1]));
      if (prev_lower || next_lower) out += '_';
    }
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  }
  return out;
}

std::string shape_with_none(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += s[i] < 0 ? "None" : std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

std::string thousands(int64_t v) {
  std::string d = std::to_string(v), out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB"};
  int u = 0;
  while (bytes >= 1024 && u < 3) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", bytes, units[u]);
  return buf;
}

bool all_finite(const Tensor& t) {
  for (float v : t.values())
    if (!std::isfinite(v)) return false;
  return true;
}

}  // namespace

Layer& Sequential::add(std::unique_ptr<Layer> layer) {
  if (!layer) throw Error("Sequential: cannot add a null layer");
  if (built_) throw Error("Sequential: cannot add layers after build()");
  if (auto* in = dynamic_cast<InputLayer*>(layer.get())) {
    if (input_ || !layers_.empty()) throw Error("Sequential: an InputLayer may only come first, and only once");
    layer.release();
    input_.reset(in);
    if (input_->name().empty()) input_->set_name("input_layer");
    return *input_;
  }
  std::set<std::string> names;
  for (const auto& l : layers_) names.insert(l->name());
  if (layer->name().empty()) {
    const std::string base = snake_case(layer->class_name());
    std::string name = base;
    for (int k = 1; names.count(name); ++k) name = cat(base, "_", k);
    layer->set_name(name);
  } else if (names.count(layer->name())) {
    throw Error(cat("Sequential: a layer named '", layer->name(), "' is already in the model"));
  }
  layers_.push_back(std::move(layer));
  return *layers_.back();
}

Layer* Sequential::find(const std::string& name) {
  for (auto& l : layers_)
    if (l->name() == name) return l.get();
  return nullptr;
}

void Sequential::build(uint64_t seed) {
  if (!input_) throw Error("Sequential: the model needs an Input (its input shape) before it can be built");
  if (layers_.empty()) throw Error("Sequential: the model has no layers");
  Rng rng(seed);
  Shape shape = input_shape();
  output_shapes_.clear();
  for (auto& l : layers_) {
    try {
      l->build(shape, rng);
      shape = l->compute_output_shape(shape);
    } catch (const Error& e) {
      throw Error(cat("layer '", l->name(), "' (", l->class_name(), ") cannot take input ", shape_with_none(shape),
                      ": ", e.what()));
    }
    output_shapes_.push_back(shape);
  }
  built_ = true;
}

Shape Sequential::input_shape() const {
  if (!input_) throw Error("Sequential: the model has no Input");
  Shape s{-1};
  s.insert(s.end(), input_->shape().begin(), input_->shape().end());
  return s;
}

Shape Sequential::output_shape() const {
  if (!built_) throw Error("Sequential: output_shape() before build()");
  return output_shapes_.back();
}

int64_t Sequential::count_params(bool trainable) const {
  int64_t n = 0;
  for (const auto& l : layers_) n += l->count_params(trainable);
  return n;
}

std::string Sequential::summary(int line_length) const {
  if (!built_) throw Error("Sequential: summary() before build()");
  // Keras' column stops for sequential models: 45% and 85% of the line.
  if (line_length < 40) throw Error(cat("summary: line_length must be at least 40, got ", line_length));
  const std::size_t c1 = std::size_t(line_length) * 45 / 100, c2 = std::size_t(line_length) * 85 / 100;
  // Removes and returns the first n characters of s.
  auto take = [](std::string& s, std::size_t n) {
    std::string head = s.substr(0, n);
    s.erase(0, head.size());
    return head;
  };
  auto row = [&](std::string a, std::string b, const std::string& c) {
    // Cells that do not fit wrap onto continuation lines, as in Keras; the count only on the first.
    std::string out;
    bool first = true;
    do {
      std::string line(1, ' ');
      line += take(a, c1 - 2);
      line.resize(c1, ' ');
      line += take(b, c2 - c1 - 1);
      line.resize(c2, ' ');
      if (first) line += c;
      first = false;
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line;
      out += '\n';
    } while (!a.empty() || !b.empty());
    return out;
  };
  const std::string thin(std::size_t(line_length), '_'), thick(std::size_t(line_length), '=');
  std::string s = cat("Model: \"", name_, "\"\n", thin, "\n");
  s += row("Layer (type)", "Output Shape", "Param #");
  s += thick + "\n";
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = *layers_[i];
    if (i) s += "\n";
    s += row(cat(l.name(), " (", l.class_name(), ")"), shape_with_none(output_shapes_[i]),
             thousands(l.count_params(true) + l.count_params(false)));
  }
  const int64_t tr = count_params(true), nt = count_params(false);
  s += thick + "\n";
  s += cat("Total params: ", thousands(tr + nt), " (", human_bytes(double(tr + nt) * 4), ")\n");
  s += cat("Trainable params: ", thousands(tr), " (", human_bytes(double(tr) * 4), ")\n");
  s += cat("Non-trainable params: ", thousands(nt), " (", human_bytes(double(nt) * 4), ")\n");
  s += thin + "\n";
  return s;
}

// Each layer's step reads the previous layer's output buffer in place; the model keeps its own copy of the input
// (small next to the activations), so that the caller's tensor may go away before backward.
Tensor Sequential::forward(const Tensor& x, bool training) {
  if (!built_) throw Error("Sequential: forward() before build()");
  if (!batch_) batch_ = std::make_unique<Tensor>();
  nn::copy_into(*batch_, x);
  const Tensor* h = batch_.get();
  for (auto& l : layers_) h = &l->forward_step(*h, training);
  return *h;
}

Tensor Sequential::backward(const Tensor& dy, bool input_gradient) {
  if (!grad_) grad_ = std::make_unique<Tensor>();
  nn::copy_into(*grad_, dy);
  Tensor* g = grad_.get();
  for (std::size_t i = layers_.size(); i-- > 0;) g = &layers_[i]->backward_step(*g, i > 0 || input_gradient);
  return input_gradient ? *g : Tensor();
}

FrozenForInference::FrozenForInference(Sequential& model) : model_(model) {
  for (std::size_t i = 0; i < model_.size(); ++i) model_.layer(i).freeze_for_inference(true);
}

FrozenForInference::~FrozenForInference() {
  for (std::size_t i = 0; i < model_.size(); ++i) model_.layer(i).freeze_for_inference(false);
}

Tensor Sequential::predict(const Tensor& x, int batch_size) {
  if (batch_size <= 0) throw Error(cat("predict: batch_size must be positive, got ", batch_size));
  if (x.rank() < 1 || x.dim(0) == 0) throw Error(cat("predict: empty input ", shape_to_string(x.shape())));
  const FrozenForInference frozen(*this);
  const int64_t n = x.dim(0), row = x.size() / n;
  Tensor out;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t b = std::min<int64_t>(batch_size, n - start);
    Shape bs = x.shape();
    bs[0] = b;
    Tensor xb(bs);
    std::memcpy(xb.data(), x.data() + start * row, std::size_t(b * row) * sizeof(float));
    Tensor yb = forward(xb, false);
    if (out.empty()) {
      Shape os = yb.shape();
      os[0] = n;
      out = Tensor(os);
    }
    const int64_t orow = yb.size() / b;
    std::memcpy(out.data() + start * orow, yb.data(), std::size_t(yb.size()) * sizeof(float));
  }
  return out;
}

std::vector<Weight*> Sequential::weights() {
  std::vector<Weight*> ws;
  for (auto& l : layers_)
    for (Weight* w : l->weights()) ws.push_back(w);
  return ws;
}

std::vector<Weight*> Sequential::trainable_weights() {
  std::vector<Weight*> ws;
  for (Weight* w : weights())
    if (w->trainable) ws.push_back(w);
  return ws;
}

std::string Sequential::first_nonfinite_layer(const Tensor& x, bool training) {
  if (!all_finite(x)) return "input";
  Tensor h = x;
  for (auto& l : layers_) {
    h = l->forward(h, training);
    if (!all_finite(h)) return l->name();
  }
  return "";
}

}  // namespace convkit
