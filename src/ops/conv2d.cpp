// The Conv2D operator: validate -> plan -> execute (DESIGN.md §2). For now the plan has a single algorithm,
// the reference; the fast engine adds algorithms ahead of it in the ordered list.
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "core/strings.hpp"
#include "ref/conv2d.hpp"

namespace convkit {

using core::cat;

Conv2dPlan Conv2dPlan::create(const Conv2dParams& p, const Shape& input_shape) {
  Conv2dPlan plan;
  plan.geom_ = conv2d_geometry(p, input_shape);
  plan.params_ = p;
  return plan;
}

std::string Conv2dPlan::algorithm() const { return "reference"; }

std::string Conv2dPlan::explain() const {
  const Conv2dGeometry& g = geom_;
  return cat("Conv2D input ", shape_to_string(g.input_shape()), " kernel ", shape_to_string(g.kernel_shape()),
             " -> output ", shape_to_string(g.output_shape()), "; padding top/bottom/left/right ", g.pad_top, "/",
             g.pad_bottom, "/", g.pad_left, "/", g.pad_right, " (", to_string(g.padding_mode),
             ")\n  reference: chosen (plain loops, supports every configuration)\n");
}

void Conv2dPlan::forward(const float* x, const float* w, const float* b, float* y) const {
  ref::conv2d_fwd(geom_, x, w, params_.use_bias ? b : nullptr, y);
  activation_forward(params_.activation, y, geom_.n * geom_.oh * geom_.ow * geom_.oc);
}

void Conv2dPlan::backward_data(const float* dz, const float* w, float* dx) const {
  ref::conv2d_bwd_data(geom_, dz, w, dx);
}

void Conv2dPlan::backward_weights(const float* x, const float* dz, float* dw, float* db) const {
  ref::conv2d_bwd_weights(geom_, x, dz, dw);
  if (db) ref::conv2d_bwd_bias(geom_, dz, db);
}

namespace {

void expect_shape(const char* what, const Tensor& t, const Shape& expected, const char* layout) {
  if (t.shape() != expected)
    throw Error(cat("Conv2D: ", what, " shape ", shape_to_string(t.shape()), " does not match the layer: expected ",
                    shape_to_string(expected), " ", layout));
}

Conv2dPlan checked_plan(const Conv2dParams& p, const Tensor& x, const Tensor& kernel) {
  Conv2dPlan plan = Conv2dPlan::create(p, x.shape());
  expect_shape("kernel", kernel, plan.geometry().kernel_shape(), "(kernel_h, kernel_w, in_channels / groups, filters)");
  return plan;
}

}  // namespace

Tensor conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& kernel, const Tensor* bias) {
  const Conv2dPlan plan = checked_plan(p, x, kernel);
  if (p.use_bias) {
    if (!bias || bias->empty()) throw Error("Conv2D: use_bias is set but no bias was given");
    expect_shape("bias", *bias, {p.filters}, "(filters,)");
  } else if (bias && !bias->empty()) {
    throw Error("Conv2D: a bias was given but use_bias is false");
  }
  Tensor y(plan.geometry().output_shape());
  plan.forward(x.data(), kernel.data(), p.use_bias ? bias->data() : nullptr, y.data());
  return y;
}

Conv2dGradients conv2d_backward(const Conv2dParams& p, const Tensor& x, const Tensor& kernel, const Tensor& y,
                                const Tensor& dy) {
  const Conv2dPlan plan = checked_plan(p, x, kernel);
  const Shape out = plan.geometry().output_shape();
  expect_shape("output", y, out, "(batch, out_height, out_width, filters)");
  expect_shape("output gradient", dy, out, "(batch, out_height, out_width, filters)");
  Tensor dz = dy;
  activation_backward(p.activation, y.data(), dz.data(), dz.size());
  Conv2dGradients g{Tensor(x.shape()), Tensor(kernel.shape()), p.use_bias ? Tensor({p.filters}) : Tensor()};
  plan.backward_data(dz.data(), kernel.data(), g.dx.data());
  plan.backward_weights(x.data(), dz.data(), g.dkernel.data(), p.use_bias ? g.dbias.data() : nullptr);
  return g;
}

}  // namespace convkit
