// convkit/conv.hpp — Conv2D and DepthwiseConv2D: parameters, shape inference, and the operator.
//
// Layouts (DESIGN.md §1): activations NHWC, Conv2D kernels HWIO (kh, kw, in_channels / groups, filters),
// bias (filters). A DepthwiseConv2D kernel (kh, kw, in_channels, depth_multiplier) has exactly the memory
// layout of the grouped Conv2D kernel (kh, kw, 1, in_channels * depth_multiplier) with groups = in_channels,
// so depthwise convolution is a Conv2D with those parameters (see depthwise_to_conv2d()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "convkit/tensor.hpp"

namespace convkit {

struct Size2 {
  int h = 0;
  int w = 0;
  friend bool operator==(const Size2&, const Size2&) = default;
};

enum class PaddingKind { valid, same, explicit_ };

// "valid", TensorFlow-exact "same", or explicit {top, bottom, left, right} (asymmetric allowed).
struct Padding {
  PaddingKind kind = PaddingKind::valid;
  int top = 0, bottom = 0, left = 0, right = 0;

  static Padding valid() { return {}; }
  static Padding same() { return {PaddingKind::same}; }
  static Padding explicit_pad(int top, int bottom, int left, int right) {
    return {PaddingKind::explicit_, top, bottom, left, right};
  }
  // PyTorch's padding=(ph, pw): ph rows above and below, pw columns left and right.
  static Padding symmetric(int ph, int pw) { return explicit_pad(ph, ph, pw, pw); }
  friend bool operator==(const Padding&, const Padding&) = default;
};

// What the padded cells hold.
enum class PaddingMode { zeros, reflect, replicate, circular };

// Activation fused into a layer's output.
enum class Activation { none, relu, tanh, sigmoid };

std::string to_string(PaddingMode mode);
std::string to_string(Activation act);
std::string to_string(const Padding& padding);  // "valid", "same", "(t, b, l, r)"
PaddingMode parse_padding_mode(std::string_view name);  // throws convkit::Error naming the choices
Activation parse_activation(std::string_view name);     // "linear" is accepted for none, as in Keras

// Conv2D, with Keras' names and PyTorch's extras (asymmetric padding, padding modes).
struct Conv2dParams {
  int filters = 0;
  Size2 kernel_size{};
  Size2 strides{1, 1};
  Padding padding = Padding::valid();
  Size2 dilation_rate{1, 1};
  int groups = 1;
  bool use_bias = true;
  Activation activation = Activation::none;
  PaddingMode padding_mode = PaddingMode::zeros;
};

// DepthwiseConv2D: one filter bank of depth_multiplier filters per input channel.
struct DepthwiseConv2dParams {
  Size2 kernel_size{};
  Size2 strides{1, 1};
  Padding padding = Padding::valid();
  int depth_multiplier = 1;
  Size2 dilation_rate{1, 1};
  bool use_bias = true;
  Activation activation = Activation::none;
  PaddingMode padding_mode = PaddingMode::zeros;
};

// The equivalent grouped Conv2D (groups = in_channels, filters = in_channels * depth_multiplier).
Conv2dParams depthwise_to_conv2d(const DepthwiseConv2dParams& p, int64_t in_channels);

// Checks everything that does not depend on the input (sizes > 0, padding >= 0, ...).
// Throws convkit::Error naming the parameter and its value.
void validate(const Conv2dParams& p);

// A Conv2D applied to one input shape: every size resolved, the padding split per side.
struct Conv2dGeometry {
  int64_t n = 0, ih = 0, iw = 0, ic = 0;     // input  (N, IH, IW, IC)
  int64_t oh = 0, ow = 0, oc = 0;            // output (N, OH, OW, OC)
  int64_t kh = 0, kw = 0;                    // kernel (KH, KW, IC / G, OC)
  int64_t sh = 1, sw = 1;                    // strides
  int64_t dh = 1, dw = 1;                    // dilation (1 = none)
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t groups = 1;
  PaddingMode padding_mode = PaddingMode::zeros;

  int64_t ic_per_group() const { return ic / groups; }
  int64_t oc_per_group() const { return oc / groups; }
  Shape input_shape() const { return {n, ih, iw, ic}; }
  Shape output_shape() const { return {n, oh, ow, oc}; }
  Shape kernel_shape() const { return {kh, kw, ic / groups, oc}; }
  // Multiply-adds of one forward pass (padding not subtracted), times two.
  double flops() const { return 2.0 * double(n) * double(oh) * double(ow) * double(oc) * double(ic / groups) *
                                double(kh) * double(kw); }
};

// Resolves the parameters against an NHWC input shape; throws convkit::Error for every inconsistency
// (channels not divisible by groups, kernel larger than the padded input, reflect pad >= input, ...).
Conv2dGeometry conv2d_geometry(const Conv2dParams& p, const Shape& input_shape);
Shape conv2d_output_shape(const Conv2dParams& p, const Shape& input_shape);
Shape conv2d_kernel_shape(const Conv2dParams& p, int64_t in_channels);
int64_t conv2d_param_count(const Conv2dParams& p, int64_t in_channels);

// Elementwise activation, in place, and its backward: given y = act(z) and dL/dy, writes dL/dz into dy.
void activation_forward(Activation act, float* y, int64_t count);
void activation_backward(Activation act, const float* y, float* dy, int64_t count);

namespace detail {
class Conv2dImpl;  // one algorithm's plan (src/ops/conv2d_algorithms.hpp)
}

// The algorithms behind Conv2dPlan, in the order they are tried (the first that supports the geometry wins):
//   gemm_1x1:      1x1 kernel, no padding, any stride: a GEMM over the NHWC rows (strided: rows via offsets);
//   depthwise:     groups == input channels (> 1): a kernel vectorised over channels;
//   winograd:      3x3, stride 1, dilation 1, groups 1: Winograd F(4x4, 3x3) (36 GEMMs between transforms); taken
//                  automatically only where it was measured to pay (explain() says why not elsewhere), and with
//                  its own, looser error bound (docs/numerics.md, "Winograd");
//   kernel_rows:   few input channels per group (image stems), dilation 1 along the width: GEMMs whose reduction
//                  runs along whole kernel rows (KW * IC/G contiguous floats of a padded copy); taken automatically
//                  only where it was measured to pay;
//   implicit_gemm: everything else: GEMM through an indirection table of input rows (no im2col copy);
//   reference:     the plain loops of src/ref, which support every valid configuration.
enum class Conv2dAlgorithm { automatic, gemm_1x1, depthwise, winograd, kernel_rows, implicit_gemm, reference };

// How the caller hands the plan its weights. per_call: the kernel changes between calls (training), so whatever an
// algorithm packs it packs at every call, and the choice of algorithm counts that cost. packed_once: the caller
// packs them once with pack_weights() and calls forward_packed() / backward_data_packed() (inference, and the
// benchmark, whose oneDNN side also reorders its weights once outside the timed loop); algorithms whose packing
// does not pay per call (winograd on few pixels) may then be chosen.
enum class Conv2dWeights { per_call, packed_once };
std::string to_string(Conv2dAlgorithm algo);                 // "auto", "gemm_1x1", "depthwise", ...
Conv2dAlgorithm parse_conv2d_algorithm(std::string_view name);  // throws convkit::Error naming the choices

// The convolution operator for one geometry (DESIGN.md §2, operator/plan). Built once, executed many times.
// create() resolves the geometry, picks the algorithm for it and for the active ISA (convkit/runtime.hpp) and
// builds the indirection tables; the thread count in force at creation is the one the plan uses.
//
// Buffers are dense NHWC / HWIO float32 of the shapes in the comments. The weights are read (and packed into the
// workspace) on every call, because training changes them at every step. The overloads taking a workspace
// allocate nothing; the workspace must hold workspace_size() bytes (any alignment) and may only be shared by calls
// that do not run at the same time. Several threads may execute one plan at once, each with its own workspace.
// The overloads without a workspace allocate one per call.
//
// Numerical agreement with the reference kernels (tests/ops): |fast - ref| <= 1e-5 * S + 1e-6 elementwise, with S
// the same computation on absolute values (the summation order differs; docs/numerics.md §6).
class Conv2dPlan {
 public:
  // algo = automatic picks the first algorithm that supports the geometry; any other value forces that algorithm
  // and throws convkit::Error with its reason if it cannot run this convolution.
  static Conv2dPlan create(const Conv2dParams& p, const Shape& input_shape,
                           Conv2dAlgorithm algo = Conv2dAlgorithm::automatic,
                           Conv2dWeights weights = Conv2dWeights::per_call);

  const Conv2dParams& params() const { return params_; }
  const Conv2dGeometry& geometry() const { return geom_; }
  // Name of the chosen algorithm ("implicit_gemm", ...), and a printable account of the choice: the geometry, the
  // ISA, the kernels and thread count, and why each algorithm ahead of the chosen one was not taken.
  std::string algorithm() const;
  Conv2dAlgorithm algorithm_id() const { return algo_; }
  std::string explain() const;

  // Bytes of scratch memory the execute functions need (the same for all three).
  std::size_t workspace_size() const;

  // y (N, OH, OW, OC) = act(conv(x (N, IH, IW, IC), w (KH, KW, IC/G, OC)) + b (OC)); b is ignored when use_bias is
  // false and may then be null.
  void forward(const float* x, const float* w, const float* b, float* y, void* workspace) const;
  void forward(const float* x, const float* w, const float* b, float* y) const;
  // Gradients of the pre-activation output dz (N, OH, OW, OC) (see activation_backward):
  // dx (N, IH, IW, IC) = dL/dx, overwritten.
  void backward_data(const float* dz, const float* w, float* dx, void* workspace) const;
  void backward_data(const float* dz, const float* w, float* dx) const;
  // dw (KH, KW, IC/G, OC) = dL/dw, overwritten; db (OC) = dL/db, overwritten (may be null).
  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* workspace) const;
  void backward_weights(const float* x, const float* dz, float* dw, float* db) const;

  // Weights that do not change between calls (inference; see Conv2dWeights): the algorithms rearrange the kernel
  // at every call (winograd transforms it, the GEMMs pack it into register-block panels for forward and
  // backward data); pack_weights() does it once into `packed` (packed_weights_size() floats, 0 for an algorithm
  // with nothing to pack), and forward_packed() / backward_data_packed() use it, with the same results as
  // forward() / backward_data() bit for bit. w is still passed (an algorithm with no packed form of a direction
  // reads it); the workspace is workspace_size() bytes.
  std::size_t packed_weights_size() const;
  void pack_weights(const float* w, float* packed) const;
  // Forward only (inference): the part of pack_weights()' layout that forward_packed() reads, which comes first
  // (packed_forward_size() floats, at most packed_weights_size(); about half of it for the GEMM algorithms).
  // forward_packed() over it gives the same results; backward_data_packed() needs the whole pack_weights().
  std::size_t packed_forward_size() const;
  void pack_forward_weights(const float* w, float* packed) const;
  void forward_packed(const float* x, const float* w, const float* packed, const float* b, float* y,
                      void* workspace) const;
  void backward_data_packed(const float* dz, const float* w, const float* packed, float* dx, void* workspace) const;
  Conv2dWeights weights() const { return weights_; }

 private:
  Conv2dParams params_;
  Conv2dGeometry geom_;
  Conv2dAlgorithm algo_ = Conv2dAlgorithm::reference;
  Conv2dWeights weights_ = Conv2dWeights::per_call;
  std::string explain_;
  std::shared_ptr<const detail::Conv2dImpl> impl_;  // immutable once built: copies of the plan share it
};

// Convenience wrappers over Conv2dPlan for whole tensors, with shape checks that name the tensor.
Tensor conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& kernel, const Tensor* bias);
struct Conv2dGradients {
  Tensor dx;       // (N, IH, IW, IC)
  Tensor dkernel;  // (KH, KW, IC/G, OC)
  Tensor dbias;    // (OC), empty when use_bias is false
};
// y is the forward output (after activation) and dy = dL/dy.
Conv2dGradients conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& kernel, const Tensor& y,
                                const Tensor& dy);

}  // namespace convkit
