// depthwise: groups == input channels (channel multiplier m = OC / IC >= 1). Each output channel o sees one input
// channel o / m, so there is no reduction over channels to make a GEMM of: the kernels run over the taps, vectorised
// over the channels (contiguous in NHWC). The kernel (KH, KW, 1, OC) is already tap-major, so forward needs no
// packing at all.
//   forward:          through the forward indirection table with one pixel per row;
//   backward data:    the stride-phase gather of conv2d_tables.hpp (one pixel per row), the phase's taps packed;
//   backward weights: per-thread partial sums over pixel chunks, summed at the end.
#include <algorithm>

#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_parallel.hpp"
#include "ops/conv2d_tables.hpp"
#include "ops/conv2d_wgrad.hpp"

namespace convkit::ops {

namespace {

// Pixels per kernel call: long enough to hide the call, short enough to balance the threads.
constexpr int64_t kChunk = 32;

class Depthwise final : public detail::Conv2dImpl {
 public:
  explicit Depthwise(const Conv2dContext& ctx)
      : ctx_(ctx),
        fwd_(forward_table(ctx.g, 1)),
        fold_(ctx.g.padding_mode != PaddingMode::zeros),
        gb_(fold_ ? padded_grid_geometry(ctx.g) : ctx.g),
        bwd_(backward_data_table(gb_, 1)) {
    const Conv2dGeometry& g = ctx_.g;
    mult_ = g.oc / g.ic;
    for (std::size_t s = 0; s < bwd_.segments.size(); ++s) {
      const IndirectionTable::Segment& seg = bwd_.segments[s];
      bwd_seg_offset_.push_back(bwd_pack_floats_);
      bwd_pack_floats_ += static_cast<int64_t>(seg.taps.size()) * g.oc;
      for (int64_t p = 0; p < seg.num_tiles; p += kChunk)
        bwd_chunks_.push_back({static_cast<int64_t>(s), seg.first_tile + p, std::min(kChunk, seg.num_tiles - p)});
    }
  }

  std::size_t workspace_size() const override {
    WorkspaceCarver f(nullptr), b(nullptr), w(nullptr);
    carve_forward(f);
    carve_backward_data(b);
    carve_weights(w);
    return std::max({f.required(), b.required(), w.required()});
  }

  std::string kernels() const override {
    return std::string(ctx_.k->dwconv_name) + (mult_ == 1 ? "" : " (channel multiplier > 1: its plain loops)");
  }

  void forward(const float* x, const float* w, const float* b, float* y, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    float* zero = carve_forward(carver);
    std::fill_n(zero, g.ic, 0.0f);
    const uk::GemmParams params = gemm_params(ctx_.activation);
    const bool post = needs_post_activation(ctx_.activation);
    const int64_t pixels = g.oh * g.ow, chunks = (pixels + kChunk - 1) / kChunk, taps = g.kh * g.kw;
    const int64_t x_image = g.ih * g.iw * g.ic, y_image = pixels * g.oc;
    parallel_for(ctx_.threads, g.n * chunks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t n = it / chunks, p0 = (it % chunks) * kChunk, np = std::min(kChunk, pixels - p0);
        float* y_n = y + n * y_image;
        ctx_.k->dwconv(static_cast<std::size_t>(np), static_cast<std::size_t>(g.oc), static_cast<std::size_t>(mult_),
                       static_cast<std::size_t>(taps), x + n * x_image, fwd_.a_off.data() + p0 * taps, zero, w, b, y_n,
                       fwd_.c_off.data() + p0, &params);
        if (post) activation_forward(ctx_.activation, y_n + p0 * g.oc, np * g.oc);
      }
    });
  }

  void backward_data(const float* dz, const float* w, float* dx, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const BwdBuffers buf = carve_backward_data(carver);
    // The taps of each stride phase, gathered into one [tap][OC] matrix per phase.
    const int64_t segs = static_cast<int64_t>(bwd_.segments.size());
    for (int64_t s = 0; s < segs; ++s) {
      const std::vector<int32_t>& taps = bwd_.segments[s].taps;
      for (std::size_t t = 0; t < taps.size(); ++t)
        std::copy_n(w + taps[t] * g.oc, g.oc, buf.packed + bwd_seg_offset_[s] + static_cast<int64_t>(t) * g.oc);
    }
    std::fill_n(buf.zero, g.oc, 0.0f);
    float* dxb = fold_ ? buf.padded_dx : dx;
    const uk::GemmParams params = gemm_params(Activation::none);
    const int64_t chunks = static_cast<int64_t>(bwd_chunks_.size()), dz_image = g.oh * g.ow * g.oc;
    const int64_t dx_image = gb_.ih * gb_.iw * g.ic;
    parallel_for(ctx_.threads, g.n * chunks, [&](int64_t i0, int64_t i1, int) {
      for (int64_t it = i0; it < i1; ++it) {
        const Chunk& ch = bwd_chunks_[it % chunks];
        const int64_t n = it / chunks;
        const std::size_t taps = bwd_.segments[ch.segment].taps.size();
        const int64_t* a_off = bwd_.a_off.data() + bwd_.tile_a_begin[ch.first];
        const float* wp = buf.packed + bwd_seg_offset_[ch.segment];
        if (mult_ == 1)
          ctx_.k->dwconv(static_cast<std::size_t>(ch.count), static_cast<std::size_t>(g.ic), 1, taps, dz + n * dz_image,
                         a_off, buf.zero, wp, nullptr, dxb + n * dx_image, bwd_.c_off.data() + ch.first, &params);
        else
          ctx_.k->dwconv_reduce(static_cast<std::size_t>(ch.count), static_cast<std::size_t>(g.ic),
                                static_cast<std::size_t>(mult_), taps, dz + n * dz_image, a_off, buf.zero, wp,
                                dxb + n * dx_image, bwd_.c_off.data() + ch.first);
      }
    });
    if (fold_) fold_padded_gradient(g, buf.padded_dx, dx, ctx_.threads);
  }

  void backward_weights(const float* x, const float* dz, float* dw, float* db, void* ws) const override {
    const Conv2dGeometry& g = ctx_.g;
    WorkspaceCarver carver(ws);
    const WBuffers buf = carve_weights(carver);
    std::fill_n(buf.zero, g.ic, 0.0f);
    const int64_t pixels = g.oh * g.ow, chunks = (pixels + kChunk - 1) / kChunk, taps = g.kh * g.kw;
    const int64_t x_image = g.ih * g.iw * g.ic, dz_image = pixels * g.oc, dw_size = taps * g.oc;
    // Each thread sums its slice of (image, pixel chunk) into its own partial dw; the partials are added at the end.
    const int used = parallel_for(ctx_.threads, g.n * chunks, [&](int64_t i0, int64_t i1, int t) {
      float* part = buf.partials + t * dw_size;
      std::fill_n(part, dw_size, 0.0f);
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t n = it / chunks, p0 = (it % chunks) * kChunk, np = std::min(kChunk, pixels - p0);
        ctx_.k->dwconv_wgrad(static_cast<std::size_t>(np), static_cast<std::size_t>(g.oc),
                             static_cast<std::size_t>(mult_), static_cast<std::size_t>(taps), x + n * x_image,
                             fwd_.a_off.data() + p0 * taps, buf.zero, dz + n * dz_image, fwd_.c_off.data() + p0, part);
      }
    });
    for (int64_t e = 0; e < dw_size; ++e) {
      float s = 0.0f;
      for (int t = 0; t < used; ++t) s += buf.partials[t * dw_size + e];
      dw[e] = s;
    }
    if (db) bias_gradient(g.n * pixels, g.oc, dz, db, buf.bias_partials, ctx_.threads);
  }

 private:
  struct Chunk {
    int64_t segment, first, count;  // pixels [first, first + count) of the backward table, all in one phase
  };
  struct BwdBuffers {
    float* packed;
    float* zero;
    float* padded_dx;
  };
  struct WBuffers {
    float* partials;
    float* bias_partials;
    float* zero;
  };
  float* carve_forward(WorkspaceCarver& ws) const { return ws.take_floats(ctx_.g.ic); }
  BwdBuffers carve_backward_data(WorkspaceCarver& ws) const {
    BwdBuffers b{};
    b.packed = ws.take_floats(bwd_pack_floats_);
    b.zero = ws.take_floats(ctx_.g.oc);
    b.padded_dx = fold_ ? ws.take_floats(gb_.n * gb_.ih * gb_.iw * gb_.ic) : nullptr;
    return b;
  }
  WBuffers carve_weights(WorkspaceCarver& ws) const {
    const Conv2dGeometry& g = ctx_.g;
    WBuffers b{};
    b.partials = ws.take_floats(int64_t{ctx_.threads} * g.kh * g.kw * g.oc);
    b.bias_partials = ws.take_floats(int64_t{ctx_.threads} * g.oc);
    b.zero = ws.take_floats(g.ic);
    return b;
  }

  Conv2dContext ctx_;
  IndirectionTable fwd_;
  bool fold_;
  Conv2dGeometry gb_;
  IndirectionTable bwd_;
  int64_t mult_ = 1;
  std::vector<int64_t> bwd_seg_offset_;
  int64_t bwd_pack_floats_ = 0;
  std::vector<Chunk> bwd_chunks_;
};

}  // namespace

std::string depthwise_supports(const Conv2dGeometry& g) {
  if (g.groups != g.ic || g.groups == 1)
    return "needs groups == input channels > 1 (a depthwise convolution), got groups " + std::to_string(g.groups) +
           " for " + std::to_string(g.ic) + " input channels";
  return {};
}

std::unique_ptr<detail::Conv2dImpl> depthwise_create(const Conv2dContext& ctx) {
  return std::make_unique<Depthwise>(ctx);
}

}  // namespace convkit::ops
