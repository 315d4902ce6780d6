// Model files and training checkpoints: one safetensors file holding every weight as "<layer>/<weight>" and, in
// "__metadata__", the Keras JSON architecture (docs/model-files.md). Loading checks the whole file against the
// model before a single value is copied, so a bad file leaves the model (and the optimizer) as they were.
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "convkit/error.hpp"
#include "convkit/safetensors.hpp"
#include "convkit/serialize.hpp"
#include "core/strings.hpp"

// The build passes the project version (src/nn/CMakeLists.txt).
#ifndef CONVKIT_VERSION
#define CONVKIT_VERSION "unknown"
#endif

namespace convkit {

using core::cat;

namespace {

using json = nlohmann::json;

constexpr const char* kFormat = "convkit";
constexpr const char* kOptimizerPrefix = "optimizer/";

// A weight as the file names it, with what messages need to say about it.
struct NamedWeight {
  std::string file_name;  // "<layer>/<weight>"
  Weight* weight;
  const Layer* layer;
};

std::vector<NamedWeight> named_weights(Sequential& model) {
  std::vector<NamedWeight> out;
  for (std::size_t i = 0; i < model.size(); ++i) {
    Layer& l = model.layer(i);
    for (Weight* w : l.weights()) out.push_back({cat(l.name(), "/", w->name), w, &l});
  }
  return out;
}

std::string layer_label(const Layer& l) { return cat("layer '", l.name(), "' (", l.class_name(), ")"); }

void require_built(const Sequential& model, const char* what) {
  if (!model.built()) throw Error(cat(what, ": model '", model.name(), "' must be built (it has no weights yet)"));
}

// The file's metadata entry `key`, which must be there.
const std::string& metadata(const SafetensorsFile& f, const std::string& path, const std::string& key,
                            const char* what) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) throw Error(cat(path, ": __metadata__ has no \"", key, "\" (", what, ")"));
  return it->second;
}

// Checks that this is a convkit model file and returns its architecture JSON.
const std::string& architecture_of(const SafetensorsFile& f, const std::string& path) {
  const std::string& format = metadata(f, path, "format", "not a convkit model file");
  if (format != kFormat)
    throw Error(cat(path, ": __metadata__ \"format\" is '", format, "', not '", kFormat,
                    "': not a convkit model file"));
  return metadata(f, path, "architecture", "a convkit model file carries its Keras JSON architecture there");
}

// Checks that the file's tensors are exactly the model's weights with their shapes; tensors under "optimizer/" are
// skipped when the file is a checkpoint (they are checked against the optimizer separately).
void check_weights(const SafetensorsFile& f, const std::string& path, const std::vector<NamedWeight>& weights,
                   bool checkpoint) {
  std::set<std::string> expected;
  for (const NamedWeight& nw : weights) {
    expected.insert(nw.file_name);
    auto it = f.tensors.find(nw.file_name);
    if (it == f.tensors.end())
      throw Error(cat(path, ": missing tensor '", nw.file_name, "': ", layer_label(*nw.layer), " has weight '",
                      nw.weight->name, "' of shape ", shape_to_string(nw.weight->value.shape()),
                      " but the file does not hold it"));
    if (it->second.shape() != nw.weight->value.shape())
      throw Error(cat(path, ": tensor '", nw.file_name, "' has shape ", shape_to_string(it->second.shape()), " but ",
                      layer_label(*nw.layer), " needs ", shape_to_string(nw.weight->value.shape()), " for weight '",
                      nw.weight->name, "'"));
  }
  for (const auto& [name, t] : f.tensors) {
    if (expected.count(name)) continue;
    if (checkpoint && name.rfind(kOptimizerPrefix, 0) == 0) continue;
    throw Error(cat(path, ": extra tensor '", name, "' of shape ", shape_to_string(t.shape()),
                    " is not a weight of the model's architecture"));
  }
}

void copy_weights(const SafetensorsFile& f, const std::vector<NamedWeight>& weights) {
  for (const NamedWeight& nw : weights) nw.weight->value = f.tensors.at(nw.file_name);
}

// The model's tensors and the three metadata entries every convkit model file has.
SafetensorsFile model_file(Sequential& model) {
  SafetensorsFile f;
  f.metadata["format"] = kFormat;
  f.metadata["architecture"] = model_to_json(model);
  f.metadata["convkit_version"] = CONVKIT_VERSION;
  for (const NamedWeight& nw : named_weights(model)) f.tensors.emplace(nw.file_name, nw.weight->value);
  return f;
}

std::vector<Dropout*> dropout_layers(Sequential& model) {
  std::vector<Dropout*> out;
  for (std::size_t i = 0; i < model.size(); ++i)
    if (auto* d = dynamic_cast<Dropout*>(&model.layer(i))) out.push_back(d);
  return out;
}

json parse_metadata_json(const std::string& text, const std::string& path, const char* key) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) throw Error(cat(path, ": __metadata__ \"", key, "\" must be a JSON object"));
    return j;
  } catch (const json::exception& e) {
    throw Error(cat(path, ": __metadata__ \"", key, "\" is not valid JSON: ", e.what()));
  }
}

// A member of a metadata object, of the expected JSON type, or an error naming it.
const json& member(const json& obj, const std::string& key, const std::string& path, const char* entry,
                   bool (json::*is_type)() const noexcept, const char* type) {
  auto it = obj.find(key);
  if (it == obj.end()) throw Error(cat(path, ": __metadata__ \"", entry, "\" has no \"", key, "\""));
  if (!((*it).*is_type)())
    throw Error(cat(path, ": __metadata__ \"", entry, "\" \"", key, "\" must be ", type, ", got ", it->dump()));
  return *it;
}

// The canonical architecture of each layer, to compare a checkpoint's architecture with the model's.
json layers_of(const std::string& architecture) { return json::parse(architecture)["config"]["layers"]; }

}  // namespace

// ---- model files -------------------------------------------------------------------------------------------------

void save_model(const std::string& path, Sequential& model) {
  require_built(model, "save_model");
  write_safetensors(path, model_file(model));
}

Sequential load_model(const std::string& path) {
  const SafetensorsFile f = read_safetensors(path);
  Sequential model = model_from_json(architecture_of(f, path), cat(path, ": architecture"));
  const std::vector<NamedWeight> weights = named_weights(model);
  check_weights(f, path, weights, f.metadata.count("optimizer") != 0);
  copy_weights(f, weights);
  return model;
}

// ---- checkpoints -------------------------------------------------------------------------------------------------

void save_checkpoint(const std::string& path, Sequential& model, Optimizer& optimizer,
                     const TrainingProgress& progress) {
  require_built(model, "save_checkpoint");
  const std::vector<Weight*> trainable = model.trainable_weights();
  optimizer.prepare(trainable);
  SafetensorsFile f = model_file(model);
  for (auto& [slot, tensor] : optimizer.state()) f.tensors.emplace(kOptimizerPrefix + slot, *tensor);

  // The slots are numbered by position in model.trainable_weights(); the names make the numbering checkable.
  json opt = json::object();
  opt["name"] = optimizer.name();
  json options = json::object();
  for (const auto& [k, v] : optimizer.options()) options[k] = v;
  opt["options"] = options;
  opt["iterations"] = optimizer.iterations;
  json names = json::array();
  for (const NamedWeight& nw : named_weights(model))
    if (nw.weight->trainable) names.push_back(nw.file_name);
  opt["weights"] = names;
  f.metadata["optimizer"] = opt.dump();

  json tr = json::object();
  tr["epoch"] = progress.epoch;
  tr["seed"] = progress.seed;
  tr["monitor"] = progress.monitor;
  tr["best_metric"] = progress.best_metric && std::isfinite(*progress.best_metric) ? json(*progress.best_metric)
                                                                                   : json(nullptr);
  tr["epochs_since_best"] = progress.epochs_since_best;
  json rngs = json::object();
  for (Dropout* d : dropout_layers(model)) {
    json s = json::array();
    for (uint64_t v : d->rng().state()) s.push_back(v);
    rngs[d->name()] = s;
  }
  tr["dropout_rng"] = rngs;
  if (progress.fit.started) {  // fit()'s exact position, to resume mid-epoch (FitState)
    const FitState& fs = progress.fit;
    json fj = json::object();
    fj["epoch"] = fs.epoch;
    fj["step"] = fs.step;
    fj["shuffle_rng"] = fs.shuffle_rng;
    fj["order"] = fs.order;
    fj["cursor"] = fs.cursor;
    fj["loss_sum"] = fs.loss_sum;  // nlohmann writes doubles with enough digits to read back exactly
    fj["acc_sum"] = fs.acc_sum;
    fj["seen"] = fs.seen;
    fj["learning_rate"] = fs.learning_rate;
    fj["best"] = fs.best ? json(*fs.best) : json(nullptr);
    fj["since_best"] = fs.since_best;
    tr["fit"] = fj;
  }
  f.metadata["training"] = tr.dump();
  write_safetensors(path, f);
}

TrainingProgress load_checkpoint(const std::string& path, Sequential& model, Optimizer& optimizer) {
  require_built(model, "load_checkpoint");
  const SafetensorsFile f = read_safetensors(path);
  const std::string& arch = architecture_of(f, path);
  const json opt = parse_metadata_json(metadata(f, path, "optimizer", "not a checkpoint; a model file loads with "
                                                                      "load_model()"), path, "optimizer");
  const json tr = parse_metadata_json(metadata(f, path, "training", "not a checkpoint"), path, "training");

  // The same architecture, compared layer by layer in canonical form (the file's JSON re-read and re-written).
  {
    const json mine = layers_of(model_to_json(model));
    const json theirs = layers_of(model_to_json(model_from_json(arch, cat(path, ": architecture"))));
    for (std::size_t i = 0; i < std::max(mine.size(), theirs.size()); ++i) {
      if (i < mine.size() && i < theirs.size() && mine[i] == theirs[i]) continue;
      const auto label = [](const json& layers, std::size_t k) {
        return k < layers.size() ? cat("'", layers[k]["config"]["name"].get<std::string>(), "' (",
                                       layers[k]["class_name"].get<std::string>(), ")")
                                 : std::string("nothing");
      };
      throw Error(cat(path, ": the checkpoint's architecture differs from the model's at layer ", i, ": the file has ",
                      label(theirs, i), ", the model has ", label(mine, i),
                      i < mine.size() && i < theirs.size() ? " with another configuration" : ""));
    }
  }
  const std::vector<NamedWeight> weights = named_weights(model);
  check_weights(f, path, weights, true);

  // The optimizer: same kind, same options, slots for the same weights in the same order.
  const std::string name = member(opt, "name", path, "optimizer", &json::is_string, "a string").get<std::string>();
  if (name != optimizer.name())
    throw Error(cat(path, ": the checkpoint was saved with optimizer ", name, ", cannot restore it into ",
                    optimizer.name()));
  const json& saved_options = member(opt, "options", path, "optimizer", &json::is_object, "an object");
  const auto options = optimizer.options();
  for (const auto& [k, v] : options) {
    auto it = saved_options.find(k);
    if (it == saved_options.end() || !it->is_number())
      throw Error(cat(path, ": the checkpoint's ", name, " options have no number \"", k, "\""));
    if (it->get<double>() != v)
      throw Error(cat(path, ": the checkpoint's ", name, " has ", k, " = ", it->get<double>(),
                      " but this optimizer has ", k, " = ", v));
  }
  if (saved_options.size() != options.size())
    throw Error(cat(path, ": the checkpoint's ", name, " options ", saved_options.dump(), " are not this optimizer's"));
  const json& iterations = member(opt, "iterations", path, "optimizer", &json::is_number_integer, "an integer");
  const json& names = member(opt, "weights", path, "optimizer", &json::is_array, "an array");
  std::vector<std::string> trainable_names;
  for (const NamedWeight& nw : weights)
    if (nw.weight->trainable) trainable_names.push_back(nw.file_name);
  if (names != json(trainable_names))
    throw Error(cat(path, ": the optimizer slots were saved for the trainable weights ", names.dump(),
                    " but the model's are ", json(trainable_names).dump()));

  const std::vector<Weight*> trainable = model.trainable_weights();
  optimizer.prepare(trainable);
  const auto slots = optimizer.state();
  std::set<std::string> slot_names;
  for (const auto& [slot, tensor] : slots) {
    const std::string tname = kOptimizerPrefix + slot;
    slot_names.insert(tname);
    auto it = f.tensors.find(tname);
    if (it == f.tensors.end())
      throw Error(cat(path, ": missing tensor '", tname, "': the ", name, " slot of shape ",
                      shape_to_string(tensor->shape()), " is not in the checkpoint"));
    if (it->second.shape() != tensor->shape())
      throw Error(cat(path, ": tensor '", tname, "' has shape ", shape_to_string(it->second.shape()), " but the ",
                      name, " slot has shape ", shape_to_string(tensor->shape())));
  }
  for (const auto& [tname, t] : f.tensors)
    if (tname.rfind(kOptimizerPrefix, 0) == 0 && !slot_names.count(tname))
      throw Error(cat(path, ": extra tensor '", tname, "' of shape ", shape_to_string(t.shape()), " is not a slot of ",
                      name));

  // The progress and the Dropout streams.
  TrainingProgress p;
  p.epoch = member(tr, "epoch", path, "training", &json::is_number_integer, "an integer").get<int>();
  p.seed = member(tr, "seed", path, "training", &json::is_number_unsigned, "a non-negative integer").get<uint64_t>();
  p.monitor = member(tr, "monitor", path, "training", &json::is_string, "a string").get<std::string>();
  if (auto it = tr.find("best_metric"); it != tr.end() && !it->is_null()) {
    if (!it->is_number())
      throw Error(cat(path, ": __metadata__ \"training\" \"best_metric\" must be a number or null"));
    p.best_metric = it->get<double>();
  }
  p.epochs_since_best =
      member(tr, "epochs_since_best", path, "training", &json::is_number_integer, "an integer").get<int>();
  const json& rngs = member(tr, "dropout_rng", path, "training", &json::is_object, "an object");
  std::vector<std::pair<Dropout*, std::array<uint64_t, 4>>> streams;
  for (Dropout* d : dropout_layers(model)) {
    auto it = rngs.find(d->name());
    if (it == rngs.end())
      throw Error(cat(path, ": __metadata__ \"training\" has no random stream for Dropout layer '", d->name(), "'"));
    std::array<uint64_t, 4> s{};
    if (!it->is_array() || it->size() != 4)
      throw Error(cat(path, ": the random stream of Dropout layer '", d->name(), "' must be 4 integers, got ",
                      it->dump()));
    for (std::size_t k = 0; k < 4; ++k) {
      if (!(*it)[k].is_number_unsigned())
        throw Error(cat(path, ": the random stream of Dropout layer '", d->name(), "' must be 4 integers, got ",
                        it->dump()));
      s[k] = (*it)[k].get<uint64_t>();
    }
    streams.emplace_back(d, s);
  }
  if (rngs.size() != streams.size())
    throw Error(cat(path, ": __metadata__ \"training\" has random streams for ", rngs.size(),
                    " Dropout layers, the model has ", streams.size()));
  if (auto it = tr.find("fit"); it != tr.end()) {  // absent in epoch-end checkpoints of older versions
    if (!it->is_object()) throw Error(cat(path, ": __metadata__ \"training\" \"fit\" must be an object"));
    const json& fj = *it;
    const std::string entry = "training\" \"fit";
    FitState& fs = p.fit;
    fs.started = true;
    fs.epoch = member(fj, "epoch", path, entry.c_str(), &json::is_number_unsigned, "a non-negative integer").get<int>();
    fs.step = member(fj, "step", path, entry.c_str(), &json::is_number_unsigned, "a non-negative integer").get<int64_t>();
    const json& rs = member(fj, "shuffle_rng", path, entry.c_str(), &json::is_array, "an array");
    if (rs.size() != 4) throw Error(cat(path, ": the shuffle stream must be 4 integers, got ", rs.dump()));
    for (std::size_t k = 0; k < 4; ++k) {
      if (!rs[k].is_number_unsigned()) throw Error(cat(path, ": the shuffle stream must be 4 integers, got ", rs.dump()));
      fs.shuffle_rng[k] = rs[k].get<uint64_t>();
    }
    const json& order = member(fj, "order", path, entry.c_str(), &json::is_array, "an array");
    fs.order.reserve(order.size());
    for (const json& v : order) {
      if (!v.is_number_unsigned()) throw Error(cat(path, ": the saved sample order holds ", v.dump()));
      fs.order.push_back(v.get<int64_t>());
    }
    fs.cursor = member(fj, "cursor", path, entry.c_str(), &json::is_number_unsigned, "a non-negative integer").get<int64_t>();
    fs.loss_sum = member(fj, "loss_sum", path, entry.c_str(), &json::is_number, "a number").get<double>();
    fs.acc_sum = member(fj, "acc_sum", path, entry.c_str(), &json::is_number, "a number").get<double>();
    fs.seen = member(fj, "seen", path, entry.c_str(), &json::is_number_unsigned, "a non-negative integer").get<int64_t>();
    fs.learning_rate = member(fj, "learning_rate", path, entry.c_str(), &json::is_number, "a number").get<float>();
    if (auto b = fj.find("best"); b != fj.end() && !b->is_null()) {
      if (!b->is_number()) throw Error(cat(path, ": __metadata__ \"training\" \"fit\" \"best\" must be a number or null"));
      fs.best = b->get<double>();
    }
    fs.since_best =
        member(fj, "since_best", path, entry.c_str(), &json::is_number_unsigned, "a non-negative integer").get<int>();
  }

  // Everything checked: commit.
  copy_weights(f, weights);
  for (const auto& [slot, tensor] : slots) *tensor = f.tensors.at(kOptimizerPrefix + slot);
  optimizer.iterations = iterations.get<int64_t>();
  for (auto& [d, s] : streams) d->rng().set_state(s);
  return p;
}

}  // namespace convkit
