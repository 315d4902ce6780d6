// The Conv2D operator: validate -> plan (pick the algorithm for the geometry and the CPU, build its indirection
// tables) -> execute (DESIGN.md §2). The algorithms are tried in order; the reference is last, so every valid
// problem has a path.
#include "ref/conv2d.hpp"

#include <cstdlib>
#include <new>
#include <vector>

#include "config/cpu.hpp"
#include "config/kernels.hpp"
#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/runtime.hpp"
#include "core/strings.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/thread_pool.hpp"

namespace convkit {

using core::cat;

namespace ops {

namespace {

// The plain loops of src/ref: no workspace, one thread, any configuration.
class Reference final : public detail::Conv2dImpl {
 public:
  explicit Reference(const Conv2dContext& ctx) : ctx_(ctx) {}
  std::size_t workspace_size() const override { return 0; }
  std::string kernels() const override { return "plain loops (src/ref), one thread"; }
  void forward(const float* x, const float* w, const float* b, float* y, void*) const override {
    const Conv2dGeometry& g = ctx_.g;
    ref::conv2d_fwd(g, x, w, b, y);
    activation_forward(ctx_.activation, y, g.n * g.oh * g.ow * g.oc);
  }
  void backward_data(const float* dz, const float* w, float* dx, void*) const override {
    ref::conv2d_bwd_data(ctx_.g, dz, w, dx);
  }
  void backward_weights(const float* x, const float* dz, float* dw, float* db, void*) const override {
    ref::conv2d_bwd_weights(ctx_.g, x, dz, dw);
    if (db) ref::conv2d_bwd_bias(ctx_.g, dz, db);
  }

 private:
  Conv2dContext ctx_;
};

std::string reference_supports(const Conv2dGeometry&) { return {}; }
std::unique_ptr<detail::Conv2dImpl> reference_create(const Conv2dContext& ctx) {
  return std::make_unique<Reference>(ctx);
}

const Conv2dAlgorithmInfo kAlgorithms[] = {
    {Conv2dAlgorithm::gemm_1x1, "1x1 convolution as a GEMM over the NHWC rows", gemm_1x1_supports, gemm_1x1_create},
    {Conv2dAlgorithm::depthwise, "depthwise kernels vectorised over channels", depthwise_supports, depthwise_create},
    {Conv2dAlgorithm::winograd, "Winograd F(4x4, 3x3): input/output transforms around 36 GEMMs per tile block",
     winograd_supports, winograd_create, winograd_pays},
    {Conv2dAlgorithm::kernel_rows, "GEMMs over whole kernel rows (KW * IC/G contiguous floats) of a padded copy",
     kernel_rows_supports, kernel_rows_create, kernel_rows_pays},
    {Conv2dAlgorithm::implicit_gemm, "GEMM through an indirection table of input rows (no im2col)",
     implicit_gemm_supports, implicit_gemm_create},
    {Conv2dAlgorithm::reference, "plain loops, every configuration", reference_supports, reference_create},
};

}  // namespace

std::span<const Conv2dAlgorithmInfo> conv2d_algorithms() { return kAlgorithms; }

}  // namespace ops

std::string to_string(Conv2dAlgorithm algo) {
  switch (algo) {
    case Conv2dAlgorithm::automatic: return "auto";
    case Conv2dAlgorithm::gemm_1x1: return "gemm_1x1";
    case Conv2dAlgorithm::depthwise: return "depthwise";
    case Conv2dAlgorithm::winograd: return "winograd";
    case Conv2dAlgorithm::kernel_rows: return "kernel_rows";
    case Conv2dAlgorithm::implicit_gemm: return "implicit_gemm";
    case Conv2dAlgorithm::reference: return "reference";
  }
  return "?";
}

Conv2dAlgorithm parse_conv2d_algorithm(std::string_view name) {
  for (Conv2dAlgorithm a : {Conv2dAlgorithm::automatic, Conv2dAlgorithm::gemm_1x1, Conv2dAlgorithm::depthwise,
                            Conv2dAlgorithm::winograd, Conv2dAlgorithm::kernel_rows, Conv2dAlgorithm::implicit_gemm,
                            Conv2dAlgorithm::reference})
    if (name == to_string(a)) return a;
  throw Error(cat("Conv2D algorithm: unknown algorithm '", name,
                  "' (expected auto, gemm_1x1, depthwise, winograd, kernel_rows, implicit_gemm or reference)"));
}

Conv2dPlan Conv2dPlan::create(const Conv2dParams& p, const Shape& input_shape, Conv2dAlgorithm algo,
                              Conv2dWeights weights) {
  Conv2dPlan plan;
  plan.geom_ = conv2d_geometry(p, input_shape);
  plan.params_ = p;
  const Conv2dGeometry& g = plan.geom_;
  const Isa isa = active_isa();
  const int available = num_threads();
  ops::Conv2dContext ctx{g, p.activation, &config::kernels(isa), ops::conv2d_threads(g, available)};
  ops::pool_reserve(ctx.threads);  // the calls then start no threads: they allocate nothing
  ctx.weights = weights;
  if (const int64_t l2 = ops::g_l2_bytes.load(); l2 > 0)
    ctx.l2_bytes = l2;
  else if (config::cpu_features().l2_bytes > 0)
    ctx.l2_bytes = config::cpu_features().l2_bytes;
  plan.weights_ = weights;

  std::string why =
      cat("Conv2D input ", shape_to_string(g.input_shape()), " kernel ", shape_to_string(g.kernel_shape()),
          " -> output ", shape_to_string(g.output_shape()), "; strides (", g.sh, ", ", g.sw, "), dilation (", g.dh,
          ", ", g.dw, "), groups ", g.groups, ", padding top/bottom/left/right ", g.pad_top, "/", g.pad_bottom, "/",
          g.pad_left, "/", g.pad_right, " (", to_string(g.padding_mode), "), activation ", to_string(p.activation),
          "\n  ISA ", to_string(isa), ", L2 ", ctx.l2_bytes / 1024, " KiB, ", available, " thread(s)",
          ctx.threads == available ? std::string() : cat(" (", ctx.threads, " used: too little work for more)"),
          algo == Conv2dAlgorithm::automatic ? std::string() : cat(", algorithm forced to ", to_string(algo)),
          weights == Conv2dWeights::packed_once ? ", weights packed once" : "", "\n");
  const ops::Conv2dAlgorithmInfo* chosen = nullptr;
  for (const ops::Conv2dAlgorithmInfo& a : ops::conv2d_algorithms()) {
    const std::string reason = a.supports(g);
    // A supported algorithm that does not pay for this geometry is only taken when forced.
    const std::string slow = reason.empty() && algo == Conv2dAlgorithm::automatic && a.pays ? a.pays(g, weights) : "";
    const bool wanted = (algo == Conv2dAlgorithm::automatic && slow.empty()) || algo == a.id;
    if (a.id == algo && !reason.empty())
      throw Error(cat("Conv2D: algorithm '", to_string(algo), "' cannot run this convolution (input ",
                      shape_to_string(g.input_shape()), ", kernel ", shape_to_string(g.kernel_shape()), "): it ",
                      reason));
    std::string line;
    if (chosen)
      line = "not tried (an earlier algorithm was chosen)";
    else if (!reason.empty())
      line = cat("not chosen: ", reason);
    else if (!slow.empty())
      line = cat("supported, not chosen: it ", slow);
    else if (!wanted)
      line = "supported, not chosen (another algorithm was forced)";
    else {
      chosen = &a;
      plan.algo_ = a.id;
      plan.impl_ = a.create(ctx);
      line = cat("chosen (", a.summary, "); kernels ", plan.impl_->kernels(), "; workspace ",
                 plan.impl_->workspace_size(), " bytes");
    }
    why += cat("  ", to_string(a.id), ": ", line, "\n");
  }
  plan.explain_ = why;
  return plan;
}

std::string Conv2dPlan::algorithm() const { return to_string(algo_); }
std::string Conv2dPlan::explain() const { return explain_; }
std::size_t Conv2dPlan::workspace_size() const { return impl_->workspace_size(); }

namespace {

// The scratch memory of the overloads that allocate.
struct Workspace {
  explicit Workspace(std::size_t bytes) : p(bytes ? ::operator new (bytes, std::align_val_t{64}) : nullptr) {}
  ~Workspace() {
    if (p) ::operator delete (p, std::align_val_t{64});
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* p;
};

}  // namespace

void Conv2dPlan::forward(const float* x, const float* w, const float* b, float* y, void* workspace) const {
  impl_->forward(x, w, params_.use_bias ? b : nullptr, y, workspace);
}

void Conv2dPlan::forward(const float* x, const float* w, const float* b, float* y) const {
  Workspace ws(workspace_size());
  forward(x, w, b, y, ws.p);
}

std::size_t Conv2dPlan::packed_weights_size() const { return impl_->packed_weights_floats(); }

void Conv2dPlan::pack_weights(const float* w, float* packed) const { impl_->pack_weights(w, packed); }

std::size_t Conv2dPlan::packed_forward_size() const { return impl_->packed_forward_floats(); }

void Conv2dPlan::pack_forward_weights(const float* w, float* packed) const { impl_->pack_forward_weights(w, packed); }

void Conv2dPlan::forward_packed(const float* x, const float* w, const float* packed, const float* b, float* y,
                                void* workspace) const {
  impl_->forward_packed(x, w, packed, params_.use_bias ? b : nullptr, y, workspace);
}

void Conv2dPlan::backward_data_packed(const float* dz, const float* w, const float* packed, float* dx,
                                      void* workspace) const {
  impl_->backward_data_packed(dz, w, packed, dx, workspace);
}

void Conv2dPlan::backward_data(const float* dz, const float* w, float* dx, void* workspace) const {
  impl_->backward_data(dz, w, dx, workspace);
}

void Conv2dPlan::backward_data(const float* dz, const float* w, float* dx) const {
  Workspace ws(workspace_size());
  backward_data(dz, w, dx, ws.p);
}

void Conv2dPlan::backward_weights(const float* x, const float* dz, float* dw, float* db, void* workspace) const {
  impl_->backward_weights(x, dz, dw, db, workspace);
}

void Conv2dPlan::backward_weights(const float* x, const float* dz, float* dw, float* db) const {
  Workspace ws(workspace_size());
  backward_weights(x, dz, dw, db, ws.p);
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
  Workspace ws(plan.workspace_size());
  plan.forward(x.data(), kernel.data(), p.use_bias ? bias->data() : nullptr, y.data(), ws.p);
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
  Workspace ws(plan.workspace_size());
  plan.backward_data(dz.data(), kernel.data(), g.dx.data(), ws.p);
  plan.backward_weights(x.data(), dz.data(), g.dkernel.data(), p.use_bias ? g.dbias.data() : nullptr, ws.p);
  return g;
}

}  // namespace convkit
