// The pooling operator: validate -> plan -> execute (DESIGN.md §2). Two algorithms in order: the NHWC
// channel-vectorised loops (ops/pool2d_fast.hpp), then the reference, which supports everything.
#include <limits>

#include "convkit/error.hpp"
#include "convkit/pool.hpp"
#include "convkit/runtime.hpp"
#include "core/shape.hpp"
#include "core/strings.hpp"
#include "ops/pool2d_fast.hpp"
#include "ref/pool2d.hpp"

namespace convkit {

using core::cat;

const char* pool_op_name(PoolKind kind) { return kind == PoolKind::max ? "MaxPooling2D" : "AveragePooling2D"; }

namespace {

const char* global_op_name(PoolKind kind) {
  return kind == PoolKind::max ? "GlobalMaxPooling2D" : "GlobalAveragePooling2D";
}

Size2 strides_of(const Pool2dParams& p) { return p.strides.value_or(p.pool_size); }

// A window lying entirely in the padding has no input cell: nothing to take the maximum of, nothing to divide
// by. resolve_axis() has already fixed the sizes; this only checks the first and the last window (the ones in
// between start later than the first and earlier than the last).
void check_windows_reach_input(PoolKind kind, const char* axis, const char* before_name, const char* after_name,
                               int64_t in, int64_t kernel, int64_t stride, const core::AxisGeometry& a) {
  if (a.pad_before >= kernel)
    throw Error(cat(pool_op_name(kind), ": padding ", before_name, " ", a.pad_before, " is not smaller than pool_size ",
                    axis, " ", kernel, ", so the first window covers only padding"));
  const int64_t last_start = (a.out - 1) * stride - a.pad_before;
  if (last_start >= in)
    throw Error(cat(pool_op_name(kind), ": padding ", after_name, " ", a.pad_after, " is too large for pool_size ",
                    axis, " ", kernel, " and stride ", stride, ": the last window starts at ", last_start,
                    ", past the input ", axis, " ", in, ", and covers only padding"));
}

// Why the fast algorithm cannot take a geometry, or "" when it can. It indexes the cells of one image with int32.
std::string fast_unsupported(const Pool2dGeometry& g) {
  if (g.ih * g.iw > std::numeric_limits<int32_t>::max())
    return cat("an image of ", g.ih, " x ", g.iw, " cells has more than 2^31 - 1 of them");
  return "";
}

}  // namespace

void validate(PoolKind kind, const Pool2dParams& p) {
  const char* op = pool_op_name(kind);
  if (p.pool_size.h <= 0 || p.pool_size.w <= 0)
    throw Error(cat(op, ": pool_size must be positive, got (", p.pool_size.h, ", ", p.pool_size.w, ")"));
  if (p.strides && (p.strides->h <= 0 || p.strides->w <= 0))
    throw Error(cat(op, ": strides must be positive, got (", p.strides->h, ", ", p.strides->w, ")"));
  if (p.padding.kind == PaddingKind::explicit_ &&
      (p.padding.top < 0 || p.padding.bottom < 0 || p.padding.left < 0 || p.padding.right < 0))
    throw Error(cat(op, ": padding must be non-negative, got ", to_string(p.padding)));
}

Pool2dGeometry pool2d_geometry(PoolKind kind, const Pool2dParams& p, const Shape& in) {
  validate(kind, p);
  const char* op = pool_op_name(kind);
  if (in.size() != 4)
    throw Error(cat(op, ": input must be 4-D (batch, height, width, channels), got shape ", shape_to_string(in)));
  if (in[0] <= 0) throw Error(cat(op, ": batch size must be positive, got input shape ", shape_to_string(in)));
  if (in[3] <= 0) throw Error(cat(op, ": input channels must be positive, got input shape ", shape_to_string(in)));
  const Size2 s = strides_of(p);
  const core::AxisSpec hs{.op = op, .axis = "height", .in = in[1], .kernel = p.pool_size.h, .stride = s.h,
                          .padding = p.padding.kind, .pad_before = p.padding.top, .pad_after = p.padding.bottom,
                          .ceil_mode = p.ceil_mode};
  const core::AxisSpec ws{.op = op, .axis = "width", .in = in[2], .kernel = p.pool_size.w, .stride = s.w,
                          .padding = p.padding.kind, .pad_before = p.padding.left, .pad_after = p.padding.right,
                          .ceil_mode = p.ceil_mode};
  const core::AxisGeometry h = core::resolve_axis(hs);
  const core::AxisGeometry w = core::resolve_axis(ws);
  check_windows_reach_input(kind, "height", "top", "bottom", in[1], p.pool_size.h, s.h, h);
  check_windows_reach_input(kind, "width", "left", "right", in[2], p.pool_size.w, s.w, w);
  Pool2dGeometry g;
  g.kind = kind;
  g.n = in[0];
  g.ih = in[1];
  g.iw = in[2];
  g.c = in[3];
  g.oh = h.out;
  g.ow = w.out;
  g.kh = p.pool_size.h;
  g.kw = p.pool_size.w;
  g.sh = s.h;
  g.sw = s.w;
  g.pad_top = h.pad_before;
  g.pad_bottom = h.pad_after;
  g.pad_left = w.pad_before;
  g.pad_right = w.pad_after;
  g.count_include_pad = kind == PoolKind::average && p.count_include_pad;
  return g;
}

Shape pool2d_output_shape(PoolKind kind, const Pool2dParams& p, const Shape& input_shape) {
  return pool2d_geometry(kind, p, input_shape).output_shape();
}

Pool2dPlan Pool2dPlan::create(PoolKind kind, const Pool2dParams& p, const Shape& input_shape) {
  Pool2dPlan plan;
  plan.geom_ = pool2d_geometry(kind, p, input_shape);
  plan.params_ = p;
  plan.fast_ = fast_unsupported(plan.geom_).empty();
  plan.threads_ = num_threads();
  return plan;
}

std::string Pool2dPlan::algorithm() const { return fast_ ? "nhwc_direct" : "reference"; }

std::string Pool2dPlan::explain() const {
  const Pool2dGeometry& g = geom_;
  return cat(pool_op_name(g.kind), " input ", shape_to_string(g.input_shape()), " pool_size (", g.kh, ", ", g.kw,
             ") strides (", g.sh, ", ", g.sw, ") -> output ", shape_to_string(g.output_shape()),
             "; padding top/bottom/left/right ", g.pad_top, "/", g.pad_bottom, "/", g.pad_left, "/", g.pad_right,
             g.kind == PoolKind::average
                 ? (g.count_include_pad ? ", divisor counts padding (PyTorch)" : ", divisor counts real cells (Keras)")
                 : "",
             "\n  nhwc_direct: ",
             fast_ ? cat("chosen (channel-vectorised window loops, ", threads_, " thread(s))")
                   : cat("not supported: ", fast_unsupported(g)),
             "\n  reference: ", fast_ ? "not needed" : "chosen", " (plain loops, supports every configuration)\n");
}

void Pool2dPlan::forward(const float* x, float* y) const {
  if (fast_) return ops::pool2d_fast_fwd(geom_, x, y, threads_);
  ref::pool2d_fwd(geom_, x, y);
}

void Pool2dPlan::backward(const float* x, const float* dy, float* dx) const {
  if (fast_) return ops::pool2d_fast_bwd(geom_, x, dy, dx, threads_);
  ref::pool2d_bwd(geom_, x, dy, dx);
}

void Pool2dPlan::forward(const float* x, float* y, int32_t* argmax) const {
  if (!keeps_argmax())
    throw Error(cat(pool_op_name(geom_.kind), ": forward with argmax needs max pooling on the nhwc_direct algorithm"));
  ops::pool2d_fast_fwd_argmax(geom_, x, y, argmax, threads_);
}

void Pool2dPlan::backward_from_argmax(const int32_t* argmax, const float* dy, float* dx) const {
  if (!keeps_argmax())
    throw Error(cat(pool_op_name(geom_.kind), ": backward from argmax needs max pooling on the nhwc_direct algorithm"));
  ops::pool2d_fast_bwd_argmax(geom_, argmax, dy, dx, threads_);
}

namespace {

void expect_shape(const char* op, const char* what, const Tensor& t, const Shape& expected, const char* layout) {
  if (t.shape() != expected)
    throw Error(cat(op, ": ", what, " shape ", shape_to_string(t.shape()), " does not match the layer: expected ",
                    shape_to_string(expected), " ", layout));
}

// The global pools are poolings whose window is the whole image.
Pool2dPlan global_plan(PoolKind kind, const Tensor& x) {
  const char* op = global_op_name(kind);
  if (x.rank() != 4)
    throw Error(cat(op, ": input must be 4-D (batch, height, width, channels), got shape ",
                    shape_to_string(x.shape())));
  for (int i = 0; i < 4; ++i)
    if (x.dim(i) <= 0) throw Error(cat(op, ": every input dimension must be positive, got shape ",
                                       shape_to_string(x.shape())));
  if (x.dim(1) > std::numeric_limits<int>::max() || x.dim(2) > std::numeric_limits<int>::max())
    throw Error(cat(op, ": input height and width must fit in an int, got shape ", shape_to_string(x.shape())));
  Pool2dParams p;
  p.pool_size = {static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2))};
  return Pool2dPlan::create(kind, p, x.shape());
}

}  // namespace

Tensor pool2d_forward(PoolKind kind, const Pool2dParams& p, const Tensor& x) {
  const Pool2dPlan plan = Pool2dPlan::create(kind, p, x.shape());
  Tensor y(plan.geometry().output_shape());
  plan.forward(x.data(), y.data());
  return y;
}

Tensor pool2d_backward(PoolKind kind, const Pool2dParams& p, const Tensor& x, const Tensor& dy) {
  const Pool2dPlan plan = Pool2dPlan::create(kind, p, x.shape());
  expect_shape(pool_op_name(kind), "output gradient", dy, plan.geometry().output_shape(),
               "(batch, out_height, out_width, channels)");
  Tensor dx(x.shape());
  plan.backward(x.data(), dy.data(), dx.data());
  return dx;
}

Tensor global_pool_forward(PoolKind kind, const Tensor& x) {
  const Pool2dPlan plan = global_plan(kind, x);
  Tensor y({x.dim(0), x.dim(3)});  // the (N, 1, 1, C) output, without the unit axes
  plan.forward(x.data(), y.data());
  return y;
}

Tensor global_pool_backward(PoolKind kind, const Tensor& x, const Tensor& dy) {
  const Pool2dPlan plan = global_plan(kind, x);
  expect_shape(global_op_name(kind), "output gradient", dy, {x.dim(0), x.dim(3)}, "(batch, channels)");
  Tensor dx(x.shape());
  plan.backward(x.data(), dy.data(), dx.data());
  return dx;
}

}  // namespace convkit
