// conv2d_oracle_driver — runs convkit's Conv2D on a directory of cases so that conv2d_differential.py can compare
// the results with PyTorch. One process handles every case: starting a process per case would cost more than the
// convolutions themselves.
//
//   conv2d_oracle_driver DIR [--algorithm auto|gemm_1x1|depthwise|winograd|kernel_rows|implicit_gemm|reference]
//
// With auto (the default) the cases run through the public wrappers conv2d_forward / conv2d_backward, as users
// call them. A named algorithm forces it through Conv2dPlan::create(p, shape, algo) and the plan's execute
// functions, with the same steps the wrappers take; that is how the reference kernels themselves are judged.
// reads DIR/manifest.json:
//   {"cases": [{"id": 0, "layer": "Conv2D" | "DepthwiseConv2D",
//               "filters": 4, "groups": 2,            (Conv2D only)
//               "depth_multiplier": 2,                (DepthwiseConv2D only)
//               "kernel_size": [kh, kw], "strides": [sh, sw], "dilation_rate": [dh, dw],
//               "padding": "valid" | "same" | [top, bottom, left, right],
//               "padding_mode": "zeros" | "reflect" | "replicate" | "circular",
//               "activation": "linear" | "relu" | "tanh" | "sigmoid", "use_bias": true,
//               "x": "c0_x.npy", "kernel": "c0_kernel.npy", "bias": "c0_bias.npy", "dy": "c0_dy.npy",
//               "y": "c0_y.npy", "dx": "c0_dx.npy", "dkernel": "c0_dkernel.npy", "dbias": "c0_dbias.npy"}, ...]}
// File names are relative to DIR. Inputs: x (N, IH, IW, IC); kernel (KH, KW, IC/G, OC) for Conv2D and Keras'
// (KH, KW, IC, depth_multiplier) for DepthwiseConv2D; bias (OC) when use_bias; dy (N, OH, OW, OC), optional (a case
// without dy only runs the forward pass: the rejection cases, which must throw before that).
// Outputs: y = conv2d_forward(...), and from conv2d_backward(y, dy): dx, dkernel (in the kernel file's shape),
// dbias (only when use_bias).
// Writes DIR/results.json: {"results": [{"id": 0, "status": "ok", "algorithm": "implicit_gemm"} |
// {"id": 1, "status": "error", "message": "..."}]} where "error" is a convkit::Error (expected for rejection
// cases), "crash" any other exception, and "algorithm" the name Conv2dPlan reports for the case.
// Exit status: 0 when every case was attempted, 2 when the manifest itself is unusable.
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "oracle_driver.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

convkit::Size2 size2(const json& c, const char* key) {
  const json& v = c.at(key);
  if (!v.is_array() || v.size() != 2) throw convkit::Error(std::string(key) + ": expected [h, w]");
  return {v[0].get<int>(), v[1].get<int>()};
}

convkit::Padding padding_from(const json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "valid") return convkit::Padding::valid();
    if (s == "same") return convkit::Padding::same();
    throw convkit::Error("padding: unknown string '" + s + "'");
  }
  if (!v.is_array() || v.size() != 4) throw convkit::Error("padding: expected \"valid\", \"same\" or [t, b, l, r]");
  return convkit::Padding::explicit_pad(v[0].get<int>(), v[1].get<int>(), v[2].get<int>(), v[3].get<int>());
}

// The explicit case -> Conv2dParams mapping. Every manifest field lands in exactly one named field; a
// DepthwiseConv2D case goes through DepthwiseConv2dParams and depthwise_to_conv2d() so that mapping is tested too.
convkit::Conv2dParams params_from_case(const json& c, int64_t in_channels) {
  const std::string layer = c.at("layer").get<std::string>();
  const convkit::Activation act = convkit::parse_activation(c.at("activation").get<std::string>());
  const convkit::PaddingMode mode = convkit::parse_padding_mode(c.at("padding_mode").get<std::string>());
  if (layer == "Conv2D") {
    convkit::Conv2dParams p;
    p.filters = c.at("filters").get<int>();
    p.kernel_size = size2(c, "kernel_size");
    p.strides = size2(c, "strides");
    p.padding = padding_from(c.at("padding"));
    p.dilation_rate = size2(c, "dilation_rate");
    p.groups = c.at("groups").get<int>();
    p.use_bias = c.at("use_bias").get<bool>();
    p.activation = act;
    p.padding_mode = mode;
    return p;
  }
  if (layer == "DepthwiseConv2D") {
    convkit::DepthwiseConv2dParams d;
    d.kernel_size = size2(c, "kernel_size");
    d.strides = size2(c, "strides");
    d.padding = padding_from(c.at("padding"));
    d.depth_multiplier = c.at("depth_multiplier").get<int>();
    d.dilation_rate = size2(c, "dilation_rate");
    d.use_bias = c.at("use_bias").get<bool>();
    d.activation = act;
    d.padding_mode = mode;
    return convkit::depthwise_to_conv2d(d, in_channels);
  }
  throw convkit::Error("layer: unknown layer '" + layer + "'");
}

// Scratch outputs are written plainly: write_npy()'s fsync per file would dominate the run time, and a torn file
// here would only fail the comparison.
void write_scratch_npy(const fs::path& path, const convkit::Tensor& t) {
  const std::string bytes = convkit::serialize_npy(t);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

// The steps of conv2d_forward / conv2d_backward, spelled out for a plan built with a forced algorithm.
// x (N, IH, IW, IC), w (KH, KW, IC/G, OC), b (OC) or null; returns y (N, OH, OW, OC).
convkit::Tensor forced_forward(const convkit::Conv2dPlan& plan, const convkit::Tensor& x, const convkit::Tensor& w,
                               const convkit::Tensor* b) {
  convkit::Tensor y(plan.geometry().output_shape());
  plan.forward(x.data(), w.data(), b ? b->data() : nullptr, y.data());
  return y;
}

// y and dy (N, OH, OW, OC); returns dx (N, IH, IW, IC), dkernel (KH, KW, IC/G, OC), dbias (OC) or empty.
convkit::Conv2dGradients forced_backward(const convkit::Conv2dPlan& plan, const convkit::Tensor& x,
                                         const convkit::Tensor& w, const convkit::Tensor& y,
                                         const convkit::Tensor& dy) {
  const convkit::Conv2dParams& p = plan.params();
  if (dy.shape() != y.shape()) throw convkit::Error("dy: shape does not match the output");
  convkit::Tensor dz = dy;  // dL/dz from dL/dy and y, as conv2d_backward does
  convkit::activation_backward(p.activation, y.data(), dz.data(), dz.size());
  convkit::Conv2dGradients g{convkit::Tensor(x.shape()), convkit::Tensor(w.shape()),
                             p.use_bias ? convkit::Tensor({p.filters}) : convkit::Tensor()};
  plan.backward_data(dz.data(), w.data(), g.dx.data());
  plan.backward_weights(x.data(), dz.data(), g.dkernel.data(), p.use_bias ? g.dbias.data() : nullptr);
  return g;
}

// Returns the name of the algorithm that ran.
std::string run_case(const fs::path& dir, const json& c, convkit::Conv2dAlgorithm algo) {
  const convkit::Tensor x = convkit::read_npy((dir / c.at("x").get<std::string>()).string());
  const convkit::Tensor kernel_file = convkit::read_npy((dir / c.at("kernel").get<std::string>()).string());
  if (x.rank() != 4)
    throw convkit::Error("x: expected a 4-D NHWC tensor, got " + convkit::shape_to_string(x.shape()));
  const convkit::Conv2dParams p = params_from_case(c, x.dim(3));

  // A DepthwiseConv2D kernel (KH, KW, IC, M) has the memory layout of the grouped Conv2D kernel
  // (KH, KW, 1, IC * M) (conv.hpp); the reshape checks that the element counts agree.
  convkit::Tensor kernel = kernel_file;
  if (c.at("layer") == "DepthwiseConv2D") kernel.reshape(convkit::conv2d_kernel_shape(p, x.dim(3)));

  convkit::Tensor bias;
  if (c.contains("bias")) bias = convkit::read_npy((dir / c.at("bias").get<std::string>()).string());
  const convkit::Tensor* b = c.contains("bias") ? &bias : nullptr;
  const bool automatic = algo == convkit::Conv2dAlgorithm::automatic;
  // Automatic: the public wrapper runs (and validates) first, then a plan built the same way names the algorithm
  // the wrapper used (same parameters, shape, ISA and thread count). Forced: the plan is the validation.
  convkit::Tensor y;
  if (automatic) y = convkit::conv2d_forward(p, x, kernel, b);
  const convkit::Conv2dPlan plan = convkit::Conv2dPlan::create(p, x.shape(), algo);
  if (!automatic) {
    if (kernel.shape() != plan.geometry().kernel_shape()) throw convkit::Error("kernel: shape does not match");
    if (p.use_bias != (b != nullptr) || (b && b->shape() != convkit::Shape{p.filters}))
      throw convkit::Error("bias: does not match use_bias / filters");
    y = forced_forward(plan, x, kernel, b);
  }
  write_scratch_npy(dir / c.at("y").get<std::string>(), y);
  if (!c.contains("dy")) return plan.algorithm();

  const convkit::Tensor dy = convkit::read_npy((dir / c.at("dy").get<std::string>()).string());
  convkit::Conv2dGradients g =
      automatic ? convkit::conv2d_backward(p, x, kernel, y, dy) : forced_backward(plan, x, kernel, y, dy);
  g.dkernel.reshape(kernel_file.shape());
  write_scratch_npy(dir / c.at("dx").get<std::string>(), g.dx);
  write_scratch_npy(dir / c.at("dkernel").get<std::string>(), g.dkernel);
  if (p.use_bias) write_scratch_npy(dir / c.at("dbias").get<std::string>(), g.dbias);
  return plan.algorithm();
}

}  // namespace

int main(int argc, char** argv) {
  convkit::Conv2dAlgorithm algo = convkit::Conv2dAlgorithm::automatic;
  if (argc == 4 && std::string(argv[2]) == "--algorithm") {
    try {
      algo = convkit::parse_conv2d_algorithm(argv[3]);
    } catch (const convkit::Error& e) {
      std::cerr << "conv2d_oracle_driver: " << e.what() << "\n";
      return 2;
    }
  } else if (argc != 2) {
    std::cerr << "usage: conv2d_oracle_driver DIR [--algorithm NAME]   (reads DIR/manifest.json, writes "
                 "DIR/results.json)\n";
    return 2;
  }
  return convkit::test_support::run_oracle_manifest(
      "conv2d_oracle_driver", argv[1], [&](const json& c, json& r) { r["algorithm"] = run_case(argv[1], c, algo); });
}
