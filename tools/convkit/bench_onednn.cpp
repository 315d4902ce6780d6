// The oneDNN side of `convkit bench --vs onednn` (bench_onednn.hpp). oneDNN 2.x API (Debian's libdnnl-dev 2.6).
#include "bench_onednn.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "convkit/error.hpp"
#include "core/strings.hpp"

namespace convkit::cli {

namespace {

using core::cat;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// The logical weights dims oneDNN expects, {OC, IC, KH, KW} or {G, OC/G, IC/G, KH, KW} for groups, with the strides
// of convkit's HWIO buffer (KH, KW, IC/G, OC): element (g, o, i, h, w) lives at ((h * KW + w) * ICg + i) * OC +
// g * OCg + o.
memory::desc hwio_weights_desc(const Conv2dGeometry& g) {
  const memory::dim oc = g.oc, icg = g.ic_per_group(), ocg = g.oc_per_group(), kh = g.kh, kw = g.kw;
  const memory::dim s_i = oc, s_w = icg * oc, s_h = kw * icg * oc;
  if (g.groups == 1) return memory::desc({oc, icg, kh, kw}, dt::f32, memory::dims{1, s_i, s_h, s_w});
  return memory::desc({g.groups, ocg, icg, kh, kw}, dt::f32, memory::dims{ocg, 1, s_i, s_h, s_w});
}

memory::desc any_weights_desc(const Conv2dGeometry& g) {
  if (g.groups == 1) return memory::desc({g.oc, g.ic, g.kh, g.kw}, dt::f32, tag::any);
  return memory::desc({g.groups, g.oc_per_group(), g.ic_per_group(), g.kh, g.kw}, dt::f32, tag::any);
}

}  // namespace

struct OnednnConv::Impl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  memory scratch;
  memory user_dw, prim_dw;  // bwd_w: oneDNN's diff weights and the caller's HWIO buffer
  std::string impl_name;
};

OnednnConv::OnednnConv(const Conv2dGeometry& g, BenchDir dir, const Buffers& buf) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  try {
    const memory::desc src_md({g.n, g.ic, g.ih, g.iw}, dt::f32, tag::nhwc);
    const memory::desc dst_md({g.n, g.oc, g.oh, g.ow}, dt::f32, tag::nhwc);
    const memory::desc bias_md({g.oc}, dt::f32, tag::x);
    const memory::desc w_any = any_weights_desc(g), w_user = hwio_weights_desc(g);
    const memory::dims strides{g.sh, g.sw}, dilates{g.dh - 1, g.dw - 1};  // oneDNN counts dilation from 0
    const memory::dims pad_l{g.pad_top, g.pad_left}, pad_r{g.pad_bottom, g.pad_right};
    // auto: oneDNN picks direct or Winograd by its own heuristics, its best effort for the shape.
    const auto alg = dnnl::algorithm::convolution_auto;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // allocated once here, not on every run

    // Reorders the caller's HWIO weights into the primitive's layout, once.
    auto weights_for = [&](const memory::desc& prim_md) {
      memory user(w_user, m.eng, const_cast<float*>(buf.w));
      if (prim_md == w_user) return user;
      memory packed(prim_md, m.eng);
      dnnl::reorder(user, packed).execute(m.strm, user, packed);
      m.strm.wait();
      return packed;
    };

    if (dir == BenchDir::fwd) {
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_md, w_any, bias_md, dst_md,
                                              strides, dilates, pad_l, pad_r);
      const dnnl::convolution_forward::primitive_desc pd(d, attr, m.eng);
      m.prim = dnnl::convolution_forward(pd);
      m.impl_name = pd.impl_info_str();
      m.scratch = memory(pd.scratchpad_desc(), m.eng);
      m.args = {{DNNL_ARG_SRC, memory(src_md, m.eng, const_cast<float*>(buf.x))},
                {DNNL_ARG_WEIGHTS, weights_for(pd.weights_desc())},
                {DNNL_ARG_BIAS, memory(bias_md, m.eng, const_cast<float*>(buf.b))},
                {DNNL_ARG_DST, memory(dst_md, m.eng, buf.y)},
                {DNNL_ARG_SCRATCHPAD, m.scratch}};
      return;
    }
    // The backward primitives need the forward (training) primitive they are the backward of.
    const dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, alg, src_md, w_any, bias_md, dst_md,
                                             strides, dilates, pad_l, pad_r);
    const dnnl::convolution_forward::primitive_desc hint(fd, m.eng);
    if (dir == BenchDir::bwd_d) {
      const dnnl::convolution_backward_data::desc d(alg, src_md, w_any, dst_md, strides, dilates, pad_l, pad_r);
      const dnnl::convolution_backward_data::primitive_desc pd(d, attr, m.eng, hint);
      m.prim = dnnl::convolution_backward_data(pd);
      m.impl_name = pd.impl_info_str();
      m.scratch = memory(pd.scratchpad_desc(), m.eng);
      m.args = {{DNNL_ARG_DIFF_DST, memory(dst_md, m.eng, const_cast<float*>(buf.dy))},
                {DNNL_ARG_WEIGHTS, weights_for(pd.weights_desc())},
                {DNNL_ARG_DIFF_SRC, memory(src_md, m.eng, buf.dx)},
                {DNNL_ARG_SCRATCHPAD, m.scratch}};
      return;
    }
    const dnnl::convolution_backward_weights::desc d(alg, src_md, w_any, bias_md, dst_md, strides, dilates, pad_l,
                                                     pad_r);
    const dnnl::convolution_backward_weights::primitive_desc pd(d, attr, m.eng, hint);
    m.prim = dnnl::convolution_backward_weights(pd);
    m.impl_name = pd.impl_info_str();
    m.scratch = memory(pd.scratchpad_desc(), m.eng);
    m.user_dw = memory(w_user, m.eng, buf.dw);
    m.prim_dw = pd.diff_weights_desc() == w_user ? m.user_dw : memory(pd.diff_weights_desc(), m.eng);
    m.args = {{DNNL_ARG_SRC, memory(src_md, m.eng, const_cast<float*>(buf.x))},
              {DNNL_ARG_DIFF_DST, memory(dst_md, m.eng, const_cast<float*>(buf.dy))},
              {DNNL_ARG_DIFF_WEIGHTS, m.prim_dw},
              {DNNL_ARG_DIFF_BIAS, memory(bias_md, m.eng, buf.db)},
              {DNNL_ARG_SCRATCHPAD, m.scratch}};
  } catch (const dnnl::error& e) {
    throw Error(cat("oneDNN: ", e.what(), " (status ", int(e.status), ")"));
  }
}

OnednnConv::~OnednnConv() = default;

void OnednnConv::run() {
  try {
    impl_->prim.execute(impl_->strm, impl_->args);
    impl_->strm.wait();
  } catch (const dnnl::error& e) {
    throw Error(cat("oneDNN: ", e.what(), " (status ", int(e.status), ")"));
  }
}

void OnednnConv::finish() {
  Impl& m = *impl_;
  if (!m.prim_dw || m.prim_dw.get() == m.user_dw.get()) return;
  dnnl::reorder(m.prim_dw, m.user_dw).execute(m.strm, m.prim_dw, m.user_dw);
  m.strm.wait();
}

std::string OnednnConv::implementation() const { return impl_->impl_name; }

}  // namespace convkit::cli
