// convkit/pool.hpp — 2-D pooling (MaxPooling2D, AveragePooling2D) and global pooling: parameters, shape
// inference, and the operator.
//
// Semantics (DESIGN.md §1 "Pooling"), activations NHWC:
// - Output sizes follow the Conv2D rules (valid, TensorFlow-exact "same", explicit asymmetric padding), plus
//   PyTorch's ceil_mode: round the output size up, keeping only windows that start inside the input or the
//   leading padding. "same" already rounds up (out = ceil(in / stride)), so ceil_mode does not change it.
// - Max pooling treats padded cells as -inf: they are never selected. The gradient goes to the FIRST maximum
//   in scan order (row-major over the window), as PyTorch does. A window whose real cells are all -inf yields
//   -inf and routes its gradient to its first real cell.
// - NaN, as in PyTorch: a NaN anywhere in a window makes that window's maximum NaN, and the gradient goes to the
//   LAST NaN in scan order (PyTorch's kernels replace the running maximum at every NaN they meet). Average
//   pooling propagates NaN through the sum.
// - Average pooling divides by the number of real (unpadded) cells in the window by default, as Keras and
//   TensorFlow do. count_include_pad = true gives PyTorch's default divisor: the window clipped to the padded
//   input extent [-pad_before, in + pad_after) — padded cells count, but with ceil_mode the part of the last
//   window that hangs past the padding does not.
// - Every window must contain at least one input cell; padding so large that a window lies entirely in the
//   padding is an error (with ceil_mode, trailing windows that would start in the padding are simply not
//   produced, as in PyTorch). PyTorch's pad <= pool_size / 2 always satisfies this; convkit allows more: any pad
//   smaller than the pool size, and a larger trailing pad only where no window falls entirely inside it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "convkit/conv.hpp"
#include "convkit/tensor.hpp"

namespace convkit {

enum class PoolKind { max, average };

// "MaxPooling2D" or "AveragePooling2D" (Keras' class names), used in messages.
const char* pool_op_name(PoolKind kind);

struct Pool2dParams {
  Size2 pool_size{};
  std::optional<Size2> strides;  // default = pool_size, as in Keras and PyTorch
  Padding padding = Padding::valid();
  bool ceil_mode = false;          // PyTorch's ceil_mode (explicit / valid padding)
  bool count_include_pad = false;  // average only: false = Keras/TF divisor (real cells), true = PyTorch default
};

// Checks everything that does not depend on the input (sizes > 0, padding >= 0). Throws convkit::Error naming
// the op, the parameter and its value.
void validate(PoolKind kind, const Pool2dParams& p);

// A pooling applied to one input shape: every size resolved, the padding split per side.
struct Pool2dGeometry {
  PoolKind kind = PoolKind::max;
  int64_t n = 0, ih = 0, iw = 0, c = 0;  // input  (N, IH, IW, C)
  int64_t oh = 0, ow = 0;                // output (N, OH, OW, C)
  int64_t kh = 0, kw = 0;                // pool_size
  int64_t sh = 1, sw = 1;                // strides
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool count_include_pad = false;  // average only (see above)

  Shape input_shape() const { return {n, ih, iw, c}; }
  Shape output_shape() const { return {n, oh, ow, c}; }
};

// Resolves the parameters against an NHWC input shape (sizes through core::resolve_axis, the one place for that
// arithmetic); throws convkit::Error for every inconsistency (pool larger than the padded input, a window lying
// entirely in the padding, a non-4-D input, ...).
Pool2dGeometry pool2d_geometry(PoolKind kind, const Pool2dParams& p, const Shape& input_shape);
Shape pool2d_output_shape(PoolKind kind, const Pool2dParams& p, const Shape& input_shape);

// The pooling operator for one geometry (DESIGN.md §2, operator/plan). Built once, executed many times; the
// execute functions allocate nothing and may be called from several threads at once. Buffers are dense NHWC
// float32 of the shapes in the comments.
class Pool2dPlan {
 public:
  static Pool2dPlan create(PoolKind kind, const Pool2dParams& p, const Shape& input_shape);

  PoolKind kind() const { return geom_.kind; }
  const Pool2dParams& params() const { return params_; }
  const Pool2dGeometry& geometry() const { return geom_; }
  // Name of the chosen algorithm, and a printable account of the choice.
  std::string algorithm() const;
  std::string explain() const;

  // y (N, OH, OW, C) = pool(x (N, IH, IW, C)).
  void forward(const float* x, float* y) const;
  // dx (N, IH, IW, C) = dL/dx given x (N, IH, IW, C) and dy = dL/dy (N, OH, OW, C); overwritten. Max pooling
  // recomputes the argmax of each window from x (no index buffer to keep between the passes).
  void backward(const float* x, const float* dy, float* dx) const;

  // Max pooling on the fast algorithm (keeps_argmax()): forward that also writes argmax (N, OH, OW, C), the cell
  // iy * IW + ix (within its image) each output came from, and backward from those cells, which does not read x:
  // the dx backward() gives for the x that forward saw, bit for bit. Training keeps them between the passes
  // (Pooling2D), so that the backward pass does not re-read an input long gone from the caches. Throw
  // convkit::Error where keeps_argmax() is false.
  bool keeps_argmax() const { return fast_ && geom_.kind == PoolKind::max; }
  void forward(const float* x, float* y, int32_t* argmax) const;
  void backward_from_argmax(const int32_t* argmax, const float* dy, float* dx) const;

 private:
  Pool2dParams params_;
  Pool2dGeometry geom_;
  bool fast_ = false;  // the NHWC channel-vectorised algorithm (src/ops/pool2d_fast.hpp), else the reference
  int threads_ = 1;    // num_threads() when the plan was created
};

// Convenience wrappers over Pool2dPlan for whole tensors, with shape checks that name the tensor.
Tensor pool2d_forward(PoolKind kind, const Pool2dParams& p, const Tensor& x);           // -> (N, OH, OW, C)
Tensor pool2d_backward(PoolKind kind, const Pool2dParams& p, const Tensor& x, const Tensor& dy);  // -> dx

// GlobalMaxPooling2D / GlobalAveragePooling2D (Keras, keepdims = false): x (N, H, W, C) -> (N, C). The same
// semantics as a pooling whose window is the whole image (first maximum, NaN as above; mean over H * W).
Tensor global_pool_forward(PoolKind kind, const Tensor& x);
// dy (N, C) = dL/dy -> dx (N, H, W, C).
Tensor global_pool_backward(PoolKind kind, const Tensor& x, const Tensor& dy);

}  // namespace convkit
