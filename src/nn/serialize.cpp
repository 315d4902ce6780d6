// Architectures as Keras Sequential JSON: model_to_json (Keras 3's shape) and model_from_json (Keras 2 and 3).
//
// Reading is strict on purpose: a field convkit does not know, or knows but cannot honour, would otherwise be
// dropped silently and the model would compute something other than what its author wrote. Every config object is
// read through Fields, which records the keys taken and reports the first one left over.
#include "convkit/serialize.hpp"

#include <charconv>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  // written in Keras' field order

// ---- reading helpers -------------------------------------------------------------------------------------------

// A value as it appears in the JSON, shortened for messages.
std::string show(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// "(None, 28, 28, 1)": a shape with an unknown batch, the way Keras prints it.
std::string shape_none(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i] < 0 ? std::string("None") : cat(s[i]));
  return out + (s.size() == 1 ? ",)" : ")");
}

// One JSON object being read: take() marks a key as understood; finish() reports the first key nobody took.
class Fields {
 public:
  Fields(const json& obj, std::string where, std::string noun = "config field")
      : obj_(obj), where_(std::move(where)), noun_(std::move(noun)) {}

  const std::string& where() const { return where_; }
  const json* take(const std::string& key) {
    auto it = obj_.find(key);
    if (it == obj_.end()) return nullptr;
    used_.insert(key);
    return &*it;
  }
  const json* peek(const std::string& key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(cat(where_, ": \"", key, "\" ", what));
  }
  void finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it)
      if (!used_.count(it.key()))
        throw Error(cat(where_, ": unknown ", noun_, " \"", it.key(), "\" (value ", show(it.value()),
                        "); convkit does not implement it"));
  }

 private:
  const json& obj_;
  std::string where_, noun_;
  std::set<std::string> used_;
};

int as_int(const Fields& f, const std::string& key, const json& v) {
  if (!v.is_number_integer()) f.fail(key, cat("must be an integer, got ", show(v)));
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(INT_MAX)
                             : (v.get<int64_t>() < INT_MIN || v.get<int64_t>() > INT_MAX))
    f.fail(key, cat("is out of range: ", show(v)));
  return int(v.get<int64_t>());
}

int read_int(Fields& f, const std::string& key, std::optional<int> def) {
  const json* v = f.take(key);
  if (!v) {
    if (!def) f.fail(key, "is required");
    return *def;
  }
  return as_int(f, key, *v);
}

bool read_bool(Fields& f, const std::string& key, bool def) {
  const json* v = f.take(key);
  if (!v) return def;
  if (!v->is_boolean()) f.fail(key, cat("must be true or false, got ", show(*v)));
  return v->get<bool>();
}

float read_float(Fields& f, const std::string& key, std::optional<float> def) {
  const json* v = f.take(key);
  if (!v) {
    if (!def) f.fail(key, "is required");
    return *def;
  }
  if (!v->is_number()) f.fail(key, cat("must be a number, got ", show(*v)));
  const double d = v->get<double>();
  if (!std::isfinite(float(d))) f.fail(key, cat("is not a finite float32: ", show(*v)));
  return float(d);
}

// An integer or [h, w] (Keras writes the pair; a hand-written config may give one number for both).
Size2 as_size2(const Fields& f, const std::string& key, const json& v) {
  if (v.is_number_integer()) {
    const int n = as_int(f, key, v);
    return {n, n};
  }
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer())
    f.fail(key, cat("must be an integer or a pair of integers [h, w], got ", show(v)));
  return {as_int(f, key, v[0]), as_int(f, key, v[1])};
}

Size2 read_size2(Fields& f, const std::string& key, std::optional<Size2> def) {
  const json* v = f.take(key);
  if (!v) {
    if (!def) f.fail(key, "is required");
    return *def;
  }
  return as_size2(f, key, *v);
}

// Fields Keras writes that convkit supports only at one value (absent counts as that value).
void require_null(Fields& f, const std::string& key, const char* why) {
  const json* v = f.take(key);
  if (v && !v->is_null()) f.fail(key, cat("must be null: ", why, " (got ", show(*v), ")"));
}
void require_false(Fields& f, const std::string& key, const char* why) {
  const json* v = f.take(key);
  if (v && !(v->is_boolean() && !v->get<bool>())) f.fail(key, cat("must be false: ", why, " (got ", show(*v), ")"));
}
void no_regularizers(Fields& f, std::initializer_list<const char*> keys) {
  for (const char* k : keys) require_null(f, k, "convkit has no regularizers");
}
void no_constraints(Fields& f, std::initializer_list<const char*> keys) {
  for (const char* k : keys) require_null(f, k, "convkit has no weight constraints");
}
// Keras 3's LoRA / DoRA fine-tuning and quantization options, written as null (or not at all) when off.
void no_adapters(Fields& f) {
  for (const char* k : {"lora_rank", "lora_alpha", "dora_rank", "dora_alpha"})
    require_null(f, k, "convkit has no LoRA / DoRA adapters");
  require_null(f, "quantization_config", "convkit computes in float32 only");
}

void read_data_format(Fields& f) {
  const json* v = f.take("data_format");
  if (!v || v->is_null()) return;  // null: Keras' global default, channels_last
  if (!v->is_string() || v->get<std::string>() != "channels_last")
    f.fail("data_format", cat("must be \"channels_last\" (convkit's activations are NHWC), got ", show(*v)));
}

// "float32", or a dtype policy object: Keras 3's {"class_name": "DTypePolicy", "config": {"name": "float32"}}
// (FloatDTypePolicy in some 3.x releases), Keras 2's {"class_name": "Policy", ...}.
void read_dtype(Fields& f, const std::string& key = "dtype") {
  const json* v = f.take(key);
  if (!v || v->is_null()) return;
  std::string name;
  if (v->is_string()) {
    name = v->get<std::string>();
  } else if (v->is_object()) {
    Fields p(*v, cat(f.where(), ": \"", key, "\""), "key");
    const json* cls = p.take("class_name");
    p.take("module");
    p.take("registered_name");
    const json* cfg = p.take("config");
    p.finish();
    if (!cls || !cls->is_string() ||
        (*cls != "DTypePolicy" && *cls != "FloatDTypePolicy" && *cls != "Policy"))
      f.fail(key, cat("must be \"float32\" or a DTypePolicy object, got ", show(*v)));
    if (!cfg || !cfg->is_object() || !cfg->contains("name") || !(*cfg)["name"].is_string() || cfg->size() != 1)
      f.fail(key, cat("policy must have config {\"name\": ...}, got ", show(*v)));
    name = (*cfg)["name"].get<std::string>();
  } else {
    f.fail(key, cat("must be \"float32\" or a DTypePolicy object, got ", show(*v)));
  }
  if (name != "float32") f.fail(key, cat("is '", name, "': convkit computes and stores float32 only"));
}

void read_trainable(Fields& f) {
  const json* v = f.take("trainable");
  if (!v) return;
  if (!v->is_boolean()) f.fail("trainable", cat("must be true or false, got ", show(*v)));
  if (!v->get<bool>()) f.fail("trainable", "is false: convkit has no frozen layers");
}

ActivationFn read_activation(Fields& f, bool required) {
  ActivationFn fn;
  const json* v = f.take("activation");
  if (!v) {
    if (required) f.fail("activation", "is required");
  } else if (!v->is_null()) {
    if (!v->is_string()) f.fail("activation", cat("must be an activation name, got ", show(*v)));
    try {
      fn = ActivationFn::parse(v->get<std::string>());
    } catch (const Error& e) {
      std::string m = e.what();
      if (m.rfind("activation: ", 0) == 0) m = m.substr(12);  // the key is named already
      throw Error(cat(f.where(), ": \"activation\": ", m));
    }
  }
  if (const json* a = f.take("activation_alpha")) {
    if (fn.kind != ActivationFn::Kind::leaky_relu && fn.kind != ActivationFn::Kind::elu)
      f.fail("activation_alpha", cat("applies to leaky_relu and elu only, not to '", fn.name(), "'"));
    if (!a->is_number()) f.fail("activation_alpha", cat("must be a number, got ", show(*a)));
    fn.alpha = float(a->get<double>());
    if (!std::isfinite(fn.alpha)) f.fail("activation_alpha", cat("is not a finite float32: ", show(*a)));
  }
  return fn;
}

// Initializers: Keras' class names and their snake-case string aliases.
struct InitName {
  Initializer init;
  const char* cls;
  // VarianceScaling parameters (Keras 2's serialisation of the same initializers); scale 0 for zeros / ones.
  double scale;
  const char* mode;
  const char* distribution;
};
constexpr InitName kInits[] = {
    {Initializer::glorot_uniform, "GlorotUniform", 1.0, "fan_avg", "uniform"},
    {Initializer::glorot_normal, "GlorotNormal", 1.0, "fan_avg", "truncated_normal"},
    {Initializer::he_normal, "HeNormal", 2.0, "fan_in", "truncated_normal"},
    {Initializer::he_uniform, "HeUniform", 2.0, "fan_in", "uniform"},
    {Initializer::lecun_normal, "LecunNormal", 1.0, "fan_in", "truncated_normal"},
    {Initializer::zeros, "Zeros", 0, "", ""},
    {Initializer::ones, "Ones", 0, "", ""},
};
const InitName& init_name(Initializer init) {
  for (const auto& n : kInits)
    if (n.init == init) return n;
  throw Error("initializer: unknown value");
}
const char* kInitChoices = "GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, Zeros or Ones";

// A seed is accepted and not kept: convkit draws initial weights from the model's own seed (Sequential::build),
// and Keras' per-initializer seed would not reproduce Keras' numbers here anyway.
void read_seed(Fields& c) {
  const json* s = c.take("seed");
  if (s && !s->is_null() && !s->is_number_integer()) c.fail("seed", cat("must be null or an integer, got ", show(*s)));
}

Initializer read_initializer(Fields& f, const std::string& key, Initializer def) {
  const json* v = f.take(key);
  if (!v || v->is_null()) return def;
  if (v->is_string()) {
    const std::string s = v->get<std::string>();
    for (const auto& n : kInits)
      if (s == n.cls || s == to_string(n.init)) return n.init;
    f.fail(key, cat("is the unknown initializer '", s, "' (convkit has ", kInitChoices, ")"));
  }
  if (!v->is_object()) f.fail(key, cat("must be an initializer name or object, got ", show(*v)));
  Fields obj(*v, cat(f.where(), ": \"", key, "\""), "key");
  const json* cls = obj.take("class_name");
  obj.take("module");
  obj.take("registered_name");
  const json* cfg = obj.take("config");
  obj.finish();
  if (!cls || !cls->is_string()) f.fail(key, cat("needs a string \"class_name\", got ", show(*v)));
  const std::string c = cls->get<std::string>();
  static const json kEmpty = json::object();
  if (cfg && !cfg->is_object() && !cfg->is_null()) f.fail(key, cat("\"config\" must be an object, got ", show(*cfg)));
  Fields conf(cfg && cfg->is_object() ? *cfg : kEmpty, cat(f.where(), ": \"", key, "\" (", c, ")"));
  if (c == "VarianceScaling") {
    const json* scale = conf.take("scale");
    const json* mode = conf.take("mode");
    const json* dist = conf.take("distribution");
    read_seed(conf);
    conf.finish();
    // Keras 2 spelled truncated_normal "normal" before 2.1 and still accepts it as an alias.
    std::string d = dist && dist->is_string() ? dist->get<std::string>() : "truncated_normal";
    if (d == "normal") d = "truncated_normal";
    for (const auto& n : kInits)
      if (n.scale != 0 && scale && scale->is_number() && scale->get<double>() == n.scale && mode &&
          mode->is_string() && mode->get<std::string>() == n.mode && d == n.distribution)
        return n.init;
    f.fail(key, cat("is a VarianceScaling ", show(*cfg), " that matches none of convkit's initializers (",
                    kInitChoices, ")"));
  }
  for (const auto& n : kInits) {
    if (c != n.cls) continue;
    if (n.scale != 0) read_seed(conf);
    conf.finish();
    return n.init;
  }
  f.fail(key, cat("is the unknown initializer class \"", c, "\" (convkit has ", kInitChoices, ")"));
}

// An initializer convkit does not let the user choose (BatchNormalization's): it must be Keras' default.
void read_fixed_initializer(Fields& f, const std::string& key, Initializer fixed) {
  const Initializer got = read_initializer(f, key, fixed);
  if (got != fixed)
    f.fail(key, cat("is ", init_name(got).cls, ": convkit's BatchNormalization always starts from ",
                    init_name(fixed).cls));
}

// "valid", "same" or convkit's explicit [[top, bottom], [left, right]].
Padding read_padding(Fields& f) {
  const json* v = f.take("padding");
  if (!v) return Padding::valid();
  if (v->is_string()) {
    if (*v == "valid") return Padding::valid();
    if (*v == "same") return Padding::same();
  } else if (v->is_array() && v->size() == 2 && (*v)[0].is_array() && (*v)[1].is_array() && (*v)[0].size() == 2 &&
             (*v)[1].size() == 2) {
    const json& a = *v;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        if (!a[i][j].is_number_integer()) f.fail("padding", cat("must hold integers, got ", show(*v)));
    return Padding::explicit_pad(as_int(f, "padding", a[0][0]), as_int(f, "padding", a[0][1]),
                                 as_int(f, "padding", a[1][0]), as_int(f, "padding", a[1][1]));
  }
  f.fail("padding", cat("must be \"valid\", \"same\" or [[top, bottom], [left, right]], got ", show(*v)));
}

PaddingMode read_padding_mode(Fields& f) {
  const json* v = f.take("padding_mode");
  if (!v) return PaddingMode::zeros;
  if (!v->is_string()) f.fail("padding_mode", cat("must be a string, got ", show(*v)));
  try {
    return parse_padding_mode(v->get<std::string>());
  } catch (const Error& e) {
    throw Error(cat(f.where(), ": \"padding_mode\": ", e.what()));
  }
}

// A shape with the batch first ([null, 28, 28, 1]); the batch, null or a number, is not kept.
Shape read_batch_shape(const Fields& f, const std::string& key, const json& v) {
  const char* want = "must be [batch, d1, d2, ...] with the batch null or an integer and every other dimension a "
                     "positive integer";
  if (!v.is_array() || v.size() < 2) f.fail(key, cat(want, ", got ", show(v)));
  if (!v[0].is_null() && !v[0].is_number_integer()) f.fail(key, cat(want, ", got ", show(v)));
  Shape s;
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (!v[i].is_number_integer() || v[i].get<int64_t>() <= 0) f.fail(key, cat(want, ", got ", show(v)));
    s.push_back(v[i].get<int64_t>());
  }
  return s;
}

// A shape without the batch ([28, 28, 1]).
Shape read_plain_shape(const Fields& f, const std::string& key, const json& v) {
  if (!v.is_array() || v.empty()) f.fail(key, cat("must be [d1, d2, ...] of positive integers, got ", show(v)));
  Shape s;
  for (const json& d : v) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0)
      f.fail(key, cat("must be [d1, d2, ...] of positive integers, got ", show(v)));
    s.push_back(d.get<int64_t>());
  }
  return s;
}

// The input shape a layer config declares ("batch_input_shape" Keras 2, "batch_shape" Keras 3, "input_shape"
// without batch), if any. Several must agree.
std::optional<Shape> read_declared_shape(Fields& f, bool allow_plain_shape_key) {
  std::optional<Shape> shape;
  std::string from;
  auto add = [&](const std::string& key, Shape s) {
    if (shape && *shape != s)
      f.fail(key, cat("declares input shape ", shape_to_string(s), " but \"", from, "\" declares ",
                      shape_to_string(*shape)));
    shape = std::move(s);
    from = key;
  };
  for (const char* key : {"batch_input_shape", "batch_shape"})
    if (const json* v = f.take(key)) add(key, read_batch_shape(f, key, *v));
  for (const char* key : {"input_shape", "shape"}) {
    if (std::string(key) == "shape" && !allow_plain_shape_key) continue;
    if (const json* v = f.take(key)) add(key, read_plain_shape(f, key, *v));
  }
  return shape;
}

std::string read_layer_name(Fields& f) {
  const json* v = f.take("name");
  if (!v || v->is_null()) return "";
  if (!v->is_string() || v->get<std::string>().empty())
    f.fail("name", cat("must be a non-empty string, got ", show(*v)));
  const std::string n = v->get<std::string>();
  if (n.find('/') != std::string::npos)
    f.fail("name", cat("'", n, "' contains '/', which layer names may not (weights are named <layer>/<weight>)"));
  return n;
}

// ---- the layers --------------------------------------------------------------------------------------------------

std::unique_ptr<Layer> read_conv2d(Fields& f) {
  Conv2dLayerOptions o;
  o.conv.filters = read_int(f, "filters", std::nullopt);
  o.conv.kernel_size = read_size2(f, "kernel_size", std::nullopt);
  o.conv.strides = read_size2(f, "strides", Size2{1, 1});
  o.conv.padding = read_padding(f);
  read_data_format(f);
  o.conv.dilation_rate = read_size2(f, "dilation_rate", Size2{1, 1});
  o.conv.groups = read_int(f, "groups", 1);
  o.activation = read_activation(f, false);
  o.conv.use_bias = read_bool(f, "use_bias", true);
  o.kernel_initializer = read_initializer(f, "kernel_initializer", Initializer::glorot_uniform);
  o.bias_initializer = read_initializer(f, "bias_initializer", Initializer::zeros);
  no_regularizers(f, {"kernel_regularizer", "bias_regularizer"});
  no_constraints(f, {"kernel_constraint", "bias_constraint"});
  no_adapters(f);
  o.conv.padding_mode = read_padding_mode(f);
  return std::make_unique<Conv2D>(o);
}

std::unique_ptr<Layer> read_depthwise(Fields& f) {
  DepthwiseConv2dLayerOptions o;
  o.conv.depth_multiplier = read_int(f, "depth_multiplier", 1);
  o.conv.kernel_size = read_size2(f, "kernel_size", std::nullopt);
  o.conv.strides = read_size2(f, "strides", Size2{1, 1});
  o.conv.padding = read_padding(f);
  read_data_format(f);
  o.conv.dilation_rate = read_size2(f, "dilation_rate", Size2{1, 1});
  if (read_int(f, "groups", 1) != 1)  // Keras 2 writes its Conv2D base's groups, always 1
    f.fail("groups", "must be 1 for DepthwiseConv2D (the grouping is one group per input channel)");
  o.activation = read_activation(f, false);
  o.conv.use_bias = read_bool(f, "use_bias", true);
  o.depthwise_initializer = read_initializer(f, "depthwise_initializer", Initializer::glorot_uniform);
  o.bias_initializer = read_initializer(f, "bias_initializer", Initializer::zeros);
  no_regularizers(f, {"depthwise_regularizer", "bias_regularizer"});
  no_constraints(f, {"depthwise_constraint", "bias_constraint"});
  o.conv.padding_mode = read_padding_mode(f);
  return std::make_unique<DepthwiseConv2D>(o);
}

std::unique_ptr<Layer> read_separable(Fields& f) {
  SeparableConv2dLayerOptions o;
  o.depth_multiplier = read_int(f, "depth_multiplier", 1);
  o.filters = read_int(f, "filters", std::nullopt);
  o.kernel_size = read_size2(f, "kernel_size", std::nullopt);
  o.strides = read_size2(f, "strides", Size2{1, 1});
  o.padding = read_padding(f);
  read_data_format(f);
  o.dilation_rate = read_size2(f, "dilation_rate", Size2{1, 1});
  if (read_int(f, "groups", 1) != 1) f.fail("groups", "must be 1 for SeparableConv2D");
  o.activation = read_activation(f, false);
  o.use_bias = read_bool(f, "use_bias", true);
  o.depthwise_initializer = read_initializer(f, "depthwise_initializer", Initializer::glorot_uniform);
  o.pointwise_initializer = read_initializer(f, "pointwise_initializer", Initializer::glorot_uniform);
  o.bias_initializer = read_initializer(f, "bias_initializer", Initializer::zeros);
  // Keras 2 writes its Conv2D base's kernel_initializer too; SeparableConv2D never uses it (checked, not kept).
  read_initializer(f, "kernel_initializer", Initializer::glorot_uniform);
  no_regularizers(f, {"depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "kernel_regularizer"});
  no_constraints(f, {"depthwise_constraint", "pointwise_constraint", "bias_constraint", "kernel_constraint"});
  o.padding_mode = read_padding_mode(f);
  return std::make_unique<SeparableConv2D>(o);
}

std::unique_ptr<Layer> read_pooling(Fields& f, PoolKind kind) {
  Pool2dParams p;
  p.pool_size = read_size2(f, "pool_size", Size2{2, 2});
  if (const json* s = f.take("strides"); s && !s->is_null()) p.strides = as_size2(f, "strides", *s);
  p.padding = read_padding(f);
  read_data_format(f);
  p.ceil_mode = read_bool(f, "ceil_mode", false);
  if (kind == PoolKind::average) p.count_include_pad = read_bool(f, "count_include_pad", false);
  return std::make_unique<Pooling2D>(kind, p);
}

std::unique_ptr<Layer> read_global_pooling(Fields& f, PoolKind kind) {
  read_data_format(f);
  require_false(f, "keepdims", "convkit's global poolings return (batch, channels)");
  return std::make_unique<GlobalPooling2D>(kind);
}

std::unique_ptr<Layer> read_dense(Fields& f) {
  DenseOptions o;
  o.units = read_int(f, "units", std::nullopt);
  o.activation = read_activation(f, false);
  o.use_bias = read_bool(f, "use_bias", true);
  o.kernel_initializer = read_initializer(f, "kernel_initializer", Initializer::glorot_uniform);
  o.bias_initializer = read_initializer(f, "bias_initializer", Initializer::zeros);
  no_regularizers(f, {"kernel_regularizer", "bias_regularizer"});
  no_constraints(f, {"kernel_constraint", "bias_constraint"});
  no_adapters(f);
  return std::make_unique<Dense>(o);
}

std::unique_ptr<Layer> read_dropout(Fields& f) {
  const float rate = read_float(f, "rate", std::nullopt);
  std::optional<uint64_t> seed;
  if (const json* s = f.take("seed"); s && !s->is_null()) {
    if (!s->is_number_integer() || (s->is_number_integer() && !s->is_number_unsigned() && s->get<int64_t>() < 0))
      f.fail("seed", cat("must be null or a non-negative integer, got ", show(*s)));
    seed = s->get<uint64_t>();
  }
  require_null(f, "noise_shape", "convkit's Dropout draws one mask value per element");
  return std::make_unique<Dropout>(rate, seed);
}

std::unique_ptr<Layer> read_batch_norm(Fields& f, const Shape& in) {
  const int last = int(in.size()) - 1;  // the channel axis of the input, counting the batch
  if (const json* a = f.take("axis")) {
    // Keras 3 writes -1; Keras 2 writes the resolved axes as a list ([3]) once built.
    const json* axis = a;
    if (a->is_array() && a->size() == 1) axis = &(*a)[0];
    if (!axis->is_number_integer() || (axis->get<int64_t>() != -1 && axis->get<int64_t>() != last))
      f.fail("axis", cat("must be -1 (the last axis, ", last, " for input ", shape_none(in),
                         "): convkit normalises over the channels; got ", show(*a)));
  }
  BatchNormOptions o;
  o.momentum = read_float(f, "momentum", 0.99f);
  o.epsilon = read_float(f, "epsilon", 1e-3f);
  o.center = read_bool(f, "center", true);
  o.scale = read_bool(f, "scale", true);
  read_fixed_initializer(f, "beta_initializer", Initializer::zeros);
  read_fixed_initializer(f, "gamma_initializer", Initializer::ones);
  read_fixed_initializer(f, "moving_mean_initializer", Initializer::zeros);
  read_fixed_initializer(f, "moving_variance_initializer", Initializer::ones);
  no_regularizers(f, {"beta_regularizer", "gamma_regularizer"});
  no_constraints(f, {"beta_constraint", "gamma_constraint"});
  require_false(f, "synchronized", "convkit trains on one device");
  require_false(f, "renorm", "convkit has no batch renormalization");
  require_null(f, "virtual_batch_size", "convkit normalises over the whole batch");
  return std::make_unique<BatchNormalization>(o);
}

std::unique_ptr<Layer> read_zero_padding(Fields& f) {
  const json* v = f.take("padding");
  if (!v) return std::make_unique<ZeroPadding2D>(1, 1, 1, 1);  // Keras' default padding=(1, 1)
  const char* want = "must be an integer, [rows, cols] or [[top, bottom], [left, right]]";
  auto i = [&](const json& x) {
    if (!x.is_number_integer()) f.fail("padding", cat(want, ", got ", show(*v)));
    return as_int(f, "padding", x);
  };
  read_data_format(f);
  if (v->is_number_integer()) return std::make_unique<ZeroPadding2D>(i(*v), i(*v), i(*v), i(*v));
  if (v->is_array() && v->size() == 2) {
    const json& a = *v;
    if (a[0].is_array() && a[1].is_array() && a[0].size() == 2 && a[1].size() == 2)
      return std::make_unique<ZeroPadding2D>(i(a[0][0]), i(a[0][1]), i(a[1][0]), i(a[1][1]));
    if (a[0].is_number_integer() && a[1].is_number_integer())
      return std::make_unique<ZeroPadding2D>(i(a[0]), i(a[0]), i(a[1]), i(a[1]));
  }
  f.fail("padding", cat(want, ", got ", show(*v)));
}

const char* kLayerChoices =
    "InputLayer, Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, "
    "GlobalMaxPooling2D, Dense, Flatten, Dropout, BatchNormalization, Activation, ZeroPadding2D";

bool is_layer_class(const std::string& cls) {
  static const std::set<std::string> known = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D",
                                              "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                                              "Dense", "Flatten", "Dropout", "BatchNormalization", "Activation",
                                              "ZeroPadding2D"};
  return known.count(cls) != 0;
}

// Keras 2 also exports the short aliases MaxPool2D / AvgPool2D / GlobalAvgPool2D / GlobalMaxPool2D as class names
// of the same classes; serialised configs use the long names, which are the only ones accepted here.
std::unique_ptr<Layer> read_layer(const std::string& cls, Fields& f, const Shape& in) {
  if (cls == "Conv2D") return read_conv2d(f);
  if (cls == "DepthwiseConv2D") return read_depthwise(f);
  if (cls == "SeparableConv2D") return read_separable(f);
  if (cls == "MaxPooling2D") return read_pooling(f, PoolKind::max);
  if (cls == "AveragePooling2D") return read_pooling(f, PoolKind::average);
  if (cls == "GlobalAveragePooling2D") return read_global_pooling(f, PoolKind::average);
  if (cls == "GlobalMaxPooling2D") return read_global_pooling(f, PoolKind::max);
  if (cls == "Dense") return read_dense(f);
  if (cls == "Flatten") {
    read_data_format(f);
    return std::make_unique<Flatten>();
  }
  if (cls == "Dropout") return read_dropout(f);
  if (cls == "BatchNormalization") return read_batch_norm(f, in);
  if (cls == "Activation") return std::make_unique<ActivationLayer>(read_activation(f, true));
  if (cls == "ZeroPadding2D") return read_zero_padding(f);
  return nullptr;
}

// "module" of a built-in Keras object ("keras", "keras.layers", "keras.src.layers...", tf_keras'): anything else
// belongs to a custom object convkit cannot know.
void check_module(Fields& f, const std::string& cls) {
  const json* m = f.take("module");
  if (!m || m->is_null()) return;
  if (!m->is_string()) f.fail("module", cat("must be a string, got ", show(*m)));
  const std::string s = m->get<std::string>();
  if (s.rfind("keras", 0) != 0 && s.rfind("tf_keras", 0) != 0)
    f.fail("module", cat("is '", s, "': ", cls, " from outside Keras is a custom object convkit does not have"));
}
void check_registered_name(Fields& f, const std::string& cls) {
  const json* r = f.take("registered_name");
  if (!r || r->is_null()) return;
  if (!r->is_string() || r->get<std::string>() != cls)
    f.fail("registered_name", cat("is ", show(*r), ": a custom registered object, which convkit does not have"));
}

json parse_json_text(std::string_view text, const std::string& source) {
  // nlohmann keeps the last of duplicate keys silently; a config naming a field twice is ambiguous, so it is refused.
  // The depth limit bounds the parser's work on adversarial nesting (a Keras config nests about 6 deep).
  std::vector<std::set<std::string>> keys;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= 64) throw Error(cat(source, ": JSON nests deeper than 64 levels"));
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(k).second) throw Error(cat(source, ": JSON object has the key \"", k, "\" twice"));
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    throw Error(cat(source, ": invalid JSON: ", e.what()));
  }
}

// ---- writing helpers ---------------------------------------------------------------------------------------------

// A float32 as the shortest decimal that reads back as the same float32 (0.99f is written 0.99, as Keras writes the
// Python float it was given, not 0.9900000095367432).
ojson number(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  double d = 0;
  std::from_chars(buf, r.ptr, d);
  return d;
}

ojson pair(Size2 s) { return ojson::array({s.h, s.w}); }

ojson shape_json(const Shape& s) {
  ojson a = ojson::array();
  for (int64_t d : s) a.push_back(d < 0 ? ojson(nullptr) : ojson(d));
  return a;
}

ojson keras_object(const char* module, const std::string& cls, ojson config) {
  ojson o = ojson::object();
  o["module"] = module;
  o["class_name"] = cls;
  o["config"] = std::move(config);
  o["registered_name"] = nullptr;
  return o;
}

ojson dtype_policy() { return keras_object("keras", "DTypePolicy", ojson::object({{"name", "float32"}})); }

ojson initializer(Initializer init) {
  const InitName& n = init_name(init);
  ojson cfg = ojson::object();
  if (n.scale != 0) cfg["seed"] = nullptr;
  return keras_object("keras.initializers", n.cls, std::move(cfg));
}

ojson padding_json(const Padding& p) {
  switch (p.kind) {
    case PaddingKind::valid: return "valid";
    case PaddingKind::same: return "same";
    case PaddingKind::explicit_: break;
  }
  return ojson::array({ojson::array({p.top, p.bottom}), ojson::array({p.left, p.right})});
}

// convkit's fields beyond Keras', appended after Keras' own only when they change the computation.
struct Extensions {
  ojson fields = ojson::object();
  void activation(const ActivationFn& fn) {
    if (fn.kind != ActivationFn::Kind::leaky_relu && fn.kind != ActivationFn::Kind::elu) return;
    if (fn.alpha != ActivationFn::parse(fn.name()).alpha) fields["activation_alpha"] = number(fn.alpha);
  }
  void padding_mode(PaddingMode m) {
    if (m != PaddingMode::zeros) fields["padding_mode"] = to_string(m);
  }
  void append_to(ojson& cfg) const {
    for (auto it = fields.begin(); it != fields.end(); ++it) cfg[it.key()] = it.value();
  }
};

void null_fields(ojson& c, std::initializer_list<const char*> keys) {
  for (const char* k : keys) c[k] = nullptr;
}

// The config of one layer, Keras 3's fields in Keras 3's order.
ojson layer_config(const Layer& l) {
  ojson c = ojson::object();
  c["name"] = l.name();
  c["trainable"] = true;
  c["dtype"] = dtype_policy();
  Extensions ext;
  if (auto* conv = dynamic_cast<const Conv2D*>(&l)) {
    const Conv2dLayerOptions& o = conv->options();
    c["filters"] = o.conv.filters;
    c["kernel_size"] = pair(o.conv.kernel_size);
    c["strides"] = pair(o.conv.strides);
    c["padding"] = padding_json(o.conv.padding);
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(o.conv.dilation_rate);
    c["groups"] = o.conv.groups;
    c["activation"] = o.activation.name();
    c["use_bias"] = o.conv.use_bias;
    c["kernel_initializer"] = initializer(o.kernel_initializer);
    c["bias_initializer"] = initializer(o.bias_initializer);
    null_fields(c, {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                    "bias_constraint"});
    ext.activation(o.activation);
    ext.padding_mode(o.conv.padding_mode);
  } else if (auto* dw = dynamic_cast<const DepthwiseConv2D*>(&l)) {
    const DepthwiseConv2dLayerOptions& o = dw->options();
    c["depth_multiplier"] = o.conv.depth_multiplier;
    c["kernel_size"] = pair(o.conv.kernel_size);
    c["strides"] = pair(o.conv.strides);
    c["padding"] = padding_json(o.conv.padding);
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(o.conv.dilation_rate);
    c["activation"] = o.activation.name();
    c["use_bias"] = o.conv.use_bias;
    c["depthwise_initializer"] = initializer(o.depthwise_initializer);
    c["bias_initializer"] = initializer(o.bias_initializer);
    null_fields(c, {"depthwise_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_constraint",
                    "bias_constraint"});
    ext.activation(o.activation);
    ext.padding_mode(o.conv.padding_mode);
  } else if (auto* sep = dynamic_cast<const SeparableConv2D*>(&l)) {
    const SeparableConv2dLayerOptions& o = sep->options();
    c["depth_multiplier"] = o.depth_multiplier;
    c["filters"] = o.filters;
    c["kernel_size"] = pair(o.kernel_size);
    c["strides"] = pair(o.strides);
    c["padding"] = padding_json(o.padding);
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(o.dilation_rate);
    c["activation"] = o.activation.name();
    c["use_bias"] = o.use_bias;
    c["depthwise_initializer"] = initializer(o.depthwise_initializer);
    c["pointwise_initializer"] = initializer(o.pointwise_initializer);
    c["bias_initializer"] = initializer(o.bias_initializer);
    null_fields(c, {"depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
                    "depthwise_constraint", "pointwise_constraint", "bias_constraint"});
    ext.activation(o.activation);
    ext.padding_mode(o.padding_mode);
  } else if (auto* pool = dynamic_cast<const Pooling2D*>(&l)) {
    const Pool2dParams& p = pool->params();
    c["pool_size"] = pair(p.pool_size);
    c["padding"] = padding_json(p.padding);
    c["strides"] = pair(p.strides.value_or(p.pool_size));  // Keras writes the resolved strides
    c["data_format"] = "channels_last";
    if (p.ceil_mode) ext.fields["ceil_mode"] = true;
    if (pool->kind() == PoolKind::average && p.count_include_pad) ext.fields["count_include_pad"] = true;
  } else if (dynamic_cast<const GlobalPooling2D*>(&l)) {
    c["data_format"] = "channels_last";
    c["keepdims"] = false;
  } else if (auto* dense = dynamic_cast<const Dense*>(&l)) {
    const DenseOptions& o = dense->options();
    c["units"] = o.units;
    c["activation"] = o.activation.name();
    c["use_bias"] = o.use_bias;
    c["kernel_initializer"] = initializer(o.kernel_initializer);
    c["bias_initializer"] = initializer(o.bias_initializer);
    null_fields(c, {"kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint"});
    ext.activation(o.activation);
  } else if (dynamic_cast<const Flatten*>(&l)) {
    c["data_format"] = "channels_last";
  } else if (auto* drop = dynamic_cast<const Dropout*>(&l)) {
    c["rate"] = number(drop->rate());
    c["seed"] = drop->seed() ? ojson(*drop->seed()) : ojson(nullptr);
    c["noise_shape"] = nullptr;
  } else if (auto* bn = dynamic_cast<const BatchNormalization*>(&l)) {
    const BatchNormOptions& o = bn->options();
    c["axis"] = -1;
    c["momentum"] = number(o.momentum);
    c["epsilon"] = number(o.epsilon);
    c["center"] = o.center;
    c["scale"] = o.scale;
    c["beta_initializer"] = initializer(Initializer::zeros);
    c["gamma_initializer"] = initializer(Initializer::ones);
    c["moving_mean_initializer"] = initializer(Initializer::zeros);
    c["moving_variance_initializer"] = initializer(Initializer::ones);
    null_fields(c, {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"});
    c["synchronized"] = false;
  } else if (auto* act = dynamic_cast<const ActivationLayer*>(&l)) {
    c["activation"] = act->function().name();
    ext.activation(act->function());
  } else if (auto* zp = dynamic_cast<const ZeroPadding2D*>(&l)) {
    c["padding"] = ojson::array({ojson::array({zp->top(), zp->bottom()}), ojson::array({zp->left(), zp->right()})});
    c["data_format"] = "channels_last";
  } else {
    throw Error(cat("model_to_json: layer '", l.name(), "' (", l.class_name(),
                    ") is not a layer convkit can serialise (", kLayerChoices, ")"));
  }
  ext.append_to(c);
  return c;
}

void check_name_for_file(const std::string& name, const std::string& what) {
  if (name.empty()) throw Error(cat("model_to_json: ", what, " has an empty name"));
  if (name.find('/') != std::string::npos)
    throw Error(cat("model_to_json: ", what, " '", name,
                    "' contains '/', which layer names may not (weights are named <layer>/<weight>)"));
}

}  // namespace

// ---- model_to_json ---------------------------------------------------------------------------------------------

std::string model_to_json(const Sequential& model, int indent) {
  const InputLayer* input = model.input_layer();
  if (!input)
    throw Error(cat("model_to_json: model '", model.name(), "' has no InputLayer, so its input shape is unknown"));
  const Shape batch_shape = model.input_shape();
  ojson layers = ojson::array();
  {
    check_name_for_file(input->name(), "the InputLayer");
    ojson c = ojson::object();
    c["batch_shape"] = shape_json(batch_shape);
    c["dtype"] = "float32";
    c["sparse"] = false;
    c["ragged"] = false;
    c["name"] = input->name();
    layers.push_back(keras_object("keras.layers", "InputLayer", std::move(c)));
  }
  Shape shape = batch_shape;
  for (std::size_t i = 0; i < model.size(); ++i) {
    const Layer& l = model.layer(i);
    check_name_for_file(l.name(), cat("layer ", i + 1, " (", l.class_name(), ")"));
    ojson entry = keras_object("keras.layers", l.class_name(), layer_config(l));
    entry["build_config"] = ojson::object({{"input_shape", shape_json(shape)}});
    layers.push_back(std::move(entry));
    try {
      shape = l.compute_output_shape(shape);
    } catch (const Error& e) {
      throw Error(cat("model_to_json: layer '", l.name(), "' (", l.class_name(), ") cannot take input ",
                      shape_none(shape), ": ", e.what()));
    }
  }
  ojson cfg = ojson::object();
  cfg["name"] = model.name();
  cfg["trainable"] = true;
  cfg["dtype"] = dtype_policy();
  cfg["layers"] = std::move(layers);
  cfg["build_input_shape"] = shape_json(batch_shape);
  ojson root = keras_object("keras", "Sequential", std::move(cfg));
  root["build_config"] = ojson::object({{"input_shape", shape_json(batch_shape)}});
  try {
    return root.dump(indent);
  } catch (const ojson::exception& e) {
    throw Error(cat("model_to_json: model '", model.name(), "': ", e.what()));  // a name that is not valid UTF-8
  }
}

// ---- model_from_json -------------------------------------------------------------------------------------------

namespace {

// Activations per sample a JSON architecture may ask for (the weights' limit is model_from_json's argument).
constexpr double kMaxActivationsPerSample = double(int64_t{1} << 31);

// The weights `layer` will create for a per-sample input ending in `channels` channels (doubles: no overflow).
double planned_weights(const Layer& layer, double channels) {
  if (const auto* d = dynamic_cast<const Dense*>(&layer)) return (channels + 1) * d->options().units;
  if (const auto* c = dynamic_cast<const Conv2D*>(&layer)) {
    const Conv2dParams& p = c->options().conv;
    return double(p.kernel_size.h) * p.kernel_size.w * (channels / std::max(p.groups, 1) + 1) * p.filters;
  }
  if (const auto* c = dynamic_cast<const DepthwiseConv2D*>(&layer)) {
    const DepthwiseConv2dParams& p = c->options().conv;
    return (double(p.kernel_size.h) * p.kernel_size.w + 1) * channels * p.depth_multiplier;
  }
  if (const auto* c = dynamic_cast<const SeparableConv2D*>(&layer)) {
    const SeparableConv2dLayerOptions& o = c->options();
    return double(o.kernel_size.h) * o.kernel_size.w * channels * o.depth_multiplier +
           (channels * o.depth_multiplier + 1) * o.filters;
  }
  return 4 * channels;  // BatchNormalization's four vectors; the other layers have no weights
}

}  // namespace

Sequential model_from_json(std::string_view text, const std::string& source, int64_t max_weights) {
  const json root = parse_json_text(text, source);
  if (!root.is_object())
    throw Error(cat(source, ": a Keras model config must be a JSON object, got ", root.type_name()));

  Fields top(root, source, "key");
  const json* cls = top.take("class_name");
  if (!cls) top.fail("class_name", "is missing: not a Keras model config");
  if (!cls->is_string() || *cls != "Sequential")
    top.fail("class_name", cat("is ", show(*cls), ": convkit loads Sequential models only"));
  check_module(top, "Sequential");
  check_registered_name(top, "Sequential");
  for (const char* k : {"keras_version", "backend"})
    if (const json* v = top.take(k); v && !v->is_string()) top.fail(k, cat("must be a string, got ", show(*v)));
  top.take("compile_config");  // the training setup (optimizer, loss), not the architecture
  std::optional<Shape> fallback_shape;  // from Keras 3's build_config / build_input_shape
  if (const json* b = top.take("build_config"); b && !b->is_null()) {
    if (!b->is_object()) top.fail("build_config", cat("must be an object, got ", show(*b)));
    Fields bc(*b, cat(source, ": \"build_config\""), "key");
    if (const json* s = bc.take("input_shape"); s && !s->is_null())
      fallback_shape = read_batch_shape(bc, "input_shape", *s);
    bc.finish();
  }
  const json* config = top.take("config");
  top.finish();
  if (!config) top.fail("config", "is missing");

  // Keras 2.0 wrote a Sequential's config as the bare list of layers.
  static const json kNoConfig = json::object();
  const json* layers = config->is_array() ? config : nullptr;
  if (!layers && !config->is_object()) top.fail("config", cat("must be an object, got ", show(*config)));
  Fields cfg(layers ? kNoConfig : *config, cat(source, ": Sequential config"));
  std::string model_name = "sequential";
  if (!layers) {
    if (const json* n = cfg.take("name"); n && !n->is_null()) {
      if (!n->is_string()) cfg.fail("name", cat("must be a string, got ", show(*n)));
      model_name = n->get<std::string>();
    }
    read_trainable(cfg);
    read_dtype(cfg);
    if (const json* s = cfg.take("build_input_shape"); s && !s->is_null()) {
      const Shape bs = read_batch_shape(cfg, "build_input_shape", *s);
      if (fallback_shape && *fallback_shape != bs)
        cfg.fail("build_input_shape", cat("is ", shape_to_string(bs), " but build_config's input_shape is ",
                                          shape_to_string(*fallback_shape)));
      fallback_shape = bs;
    }
    layers = cfg.take("layers");
    cfg.finish();
    if (!layers) cfg.fail("layers", "is missing");
    if (!layers->is_array()) cfg.fail("layers", cat("must be an array, got ", show(*layers)));
  }

  Sequential model(model_name);
  std::optional<Shape> input;  // without the batch
  Shape shape;                 // the current layer's input, batch -1
  double planned = 0;          // weights the layers so far will create (kMaxModelWeights)
  for (std::size_t i = 0; i < layers->size(); ++i) {
    const json& entry = (*layers)[i];
    const std::string at = cat(source, ": layer ", i);
    if (!entry.is_object()) throw Error(cat(at, ": must be an object {\"class_name\", \"config\"}, got ", show(entry)));
    // Messages name the layer by position, name and class: "model.json: layer 2 'conv2d_1' (Conv2D): ...".
    const auto cit = entry.find("class_name");
    if (cit == entry.end() || !cit->is_string())
      throw Error(cat(at, ": \"class_name\" must be a string, got ", cit == entry.end() ? "nothing" : show(*cit)));
    const std::string cls = cit->get<std::string>();
    std::string where = at;
    if (const auto cfgit = entry.find("config"); cfgit != entry.end() && cfgit->is_object())
      if (const auto nit = cfgit->find("name"); nit != cfgit->end() && nit->is_string())
        where = cat(at, " '", nit->get<std::string>(), "'");
    where = cat(where, " (", cls, ")");
    if (cls != "InputLayer" && !is_layer_class(cls))
      throw Error(cat(where, ": unknown layer class_name \"", cls, "\" (convkit has ", kLayerChoices, ")"));
    Fields e(entry, where, "key");
    e.take("class_name");
    const json* lc = e.take("config");
    if (!lc || !lc->is_object()) e.fail("config", cat("must be an object, got ", lc ? show(*lc) : "nothing"));
    check_module(e, cls);
    check_registered_name(e, cls);
    e.take("build_config");  // Keras' record of the input shape it was built for; convkit infers the shapes
    e.finish();
    Fields f(*lc, where);

    const std::string name = read_layer_name(f);
    read_trainable(f);
    read_dtype(f);
    require_null(f, "activity_regularizer", "convkit has no regularizers");

    if (cls == "InputLayer") {
      if (i != 0) throw Error(cat(where, ": an InputLayer may only come first"));
      auto s = read_declared_shape(f, true);
      require_false(f, "sparse", "convkit's tensors are dense");
      require_false(f, "ragged", "convkit's tensors are dense");
      require_false(f, "optional", "convkit's input is always given");
      if (const json* b = f.take("batch_size"); b && !b->is_null() && !b->is_number_integer())
        f.fail("batch_size", cat("must be null or an integer, got ", show(*b)));
      f.finish();
      if (!s) throw Error(cat(where, ": no input shape (\"batch_shape\", \"batch_input_shape\" or \"shape\")"));
      input = *s;
      auto layer = std::make_unique<InputLayer>(*s);
      if (!name.empty()) layer->set_name(name);
      model.add(std::move(layer));
      shape = Shape{-1};
      shape.insert(shape.end(), s->begin(), s->end());
      continue;
    }

    // Keras 2 puts the input shape on the first layer when the model was built with input_shape=...; on a later
    // layer Keras ignores it, and so does convkit.
    const std::optional<Shape> declared = read_declared_shape(f, false);
    if (!input) {
      if (declared) {
        input = declared;
      } else if (fallback_shape) {
        input = fallback_shape;
      } else {
        throw Error(cat(where, ": missing input shape: the model has no InputLayer, the first layer declares no "
                               "\"batch_input_shape\" / \"batch_shape\" / \"input_shape\", and there is no "
                               "\"build_input_shape\""));
      }
      model.add(std::make_unique<InputLayer>(*input));
      shape = Shape{-1};
      shape.insert(shape.end(), input->begin(), input->end());
    } else if (declared && model.size() == 0 && *declared != *input) {
      f.fail("batch_input_shape", cat("declares input ", shape_to_string(*declared), " but the InputLayer has ",
                                      shape_to_string(*input)));
    }

    std::unique_ptr<Layer> layer;
    try {
      layer = read_layer(cls, f, shape);
    } catch (const Error& err) {
      const std::string msg = err.what();
      // Messages from the reading helpers already start with the layer; a constructor's do not.
      if (msg.rfind(where, 0) == 0) throw;
      throw Error(cat(where, ": ", msg));
    }
    f.finish();
    if (!name.empty()) layer->set_name(name);
    const Shape in_shape = shape;
    try {
      shape = layer->compute_output_shape(shape);
    } catch (const Error& err) {
      throw Error(cat(where, ": cannot take input ", shape_none(shape), ": ", err.what()));
    }
    planned += planned_weights(*layer, in_shape.size() > 1 ? double(in_shape.back()) : 1.0);
    if (planned > double(max_weights))
      throw Error(cat(where, ": the model would need ", int64_t(std::min(planned, 9e18)), " weights up to this layer, ",
                      "more than the ", max_weights, " allowed"));
    double per_sample = 1;
    for (std::size_t i = 1; i < shape.size(); ++i) per_sample *= double(shape[i]);
    if (per_sample > kMaxActivationsPerSample)
      throw Error(cat(where, ": its output ", shape_none(shape), " would hold more than ",
                      int64_t(kMaxActivationsPerSample), " values per sample"));
    try {
      model.add(std::move(layer));
    } catch (const Error& err) {
      throw Error(cat(where, ": ", err.what()));
    }
  }
  if (!input) {
    if (!fallback_shape) throw Error(cat(source, ": the model has no layers and no input shape"));
    model.add(std::make_unique<InputLayer>(*fallback_shape));
  }
  if (model.size() == 0) throw Error(cat(source, ": the model has no layers after its InputLayer"));
  try {
    model.build(0);
  } catch (const Error& err) {
    throw Error(cat(source, ": ", err.what()));
  }
  return model;
}

Sequential load_model_json(const std::string& path) { return model_from_json(read_file(path), path); }

void save_model_json(const std::string& path, const Sequential& model, int indent) {
  write_file_atomic(path, model_to_json(model, indent) + "\n");
}

}  // namespace convkit
