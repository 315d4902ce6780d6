// pool_driver — runs convkit's pooling over the cases of a JSON manifest, for pool_differential.py.
//
//   pool_driver MANIFEST.json RESULTS.json
//
// MANIFEST: {"cases": [{"id": "...", "op": "pool2d" | "global", "kind": "max" | "average",
//                       "pool_size": [h, w], "strides": [h, w] | null, "padding": "valid" | "same" | [t, b, l, r],
//                       "ceil_mode": bool, "count_include_pad": bool,             (pool2d only)
//                       "x": "in.npy", "dy": "in.npy", "y": "out.npy", "dx": "out.npy"}, ...]}
// x is NHWC; dy has the output's shape. For each case the driver writes y = forward(x) and dx = backward(x, dy),
// or records the convkit::Error message when convkit rejects the configuration.
// RESULTS: {"<id>": {"ok": true, "y_shape": [...]} | {"ok": false, "error": "..."}, ...}.
// Exit status 0 when every case was run (accepted or rejected), 2 when the manifest itself is unusable.
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/pool.hpp"

namespace {

using nlohmann::json;
using namespace convkit;

PoolKind parse_kind(const std::string& s) {
  if (s == "max") return PoolKind::max;
  if (s == "average") return PoolKind::average;
  throw std::runtime_error("unknown kind '" + s + "'");
}

Size2 parse_size2(const json& j) { return {j.at(0).get<int>(), j.at(1).get<int>()}; }

Pool2dParams parse_params(const json& c) {
  Pool2dParams p;
  p.pool_size = parse_size2(c.at("pool_size"));
  if (c.contains("strides") && !c.at("strides").is_null()) p.strides = parse_size2(c.at("strides"));
  const json& pad = c.at("padding");
  if (pad.is_string()) {
    const std::string s = pad.get<std::string>();
    if (s == "valid") p.padding = Padding::valid();
    else if (s == "same") p.padding = Padding::same();
    else throw std::runtime_error("unknown padding '" + s + "'");
  } else {
    p.padding = Padding::explicit_pad(pad.at(0).get<int>(), pad.at(1).get<int>(), pad.at(2).get<int>(),
                                      pad.at(3).get<int>());
  }
  p.ceil_mode = c.value("ceil_mode", false);
  p.count_include_pad = c.value("count_include_pad", false);
  return p;
}

json run_case(const json& c) {
  const PoolKind kind = parse_kind(c.at("kind").get<std::string>());
  const std::string op = c.at("op").get<std::string>();
  const Tensor x = read_npy(c.at("x").get<std::string>());
  const Tensor dy = read_npy(c.at("dy").get<std::string>());
  try {
    Tensor y, dx;
    if (op == "global") {
      y = global_pool_forward(kind, x);
      dx = global_pool_backward(kind, x, dy);
    } else if (op == "pool2d") {
      const Pool2dParams p = parse_params(c);
      y = pool2d_forward(kind, p, x);
      dx = pool2d_backward(kind, p, x, dy);
    } else {
      throw std::runtime_error("unknown op '" + op + "'");
    }
    write_npy(c.at("y").get<std::string>(), y);
    write_npy(c.at("dx").get<std::string>(), dx);
    return {{"ok", true}, {"y_shape", y.shape()}};
  } catch (const Error& e) {
    return {{"ok", false}, {"error", e.what()}};
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MANIFEST.json RESULTS.json\n", argv[0]);
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    if (!in) throw std::runtime_error(std::string("cannot open ") + argv[1]);
    const json manifest = json::parse(in);
    json results = json::object();
    for (const json& c : manifest.at("cases")) results[c.at("id").get<std::string>()] = run_case(c);
    write_file_atomic(argv[2], results.dump(1));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pool_driver: %s\n", e.what());
    return 2;
  }
  return 0;
}
