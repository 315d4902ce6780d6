// implicit_gemm's packed weights and its skipping of padded taps (src/ops/conv2d_igemm.cpp, conv2d_tables.cpp):
//   - forward_packed / backward_data_packed give forward's / backward_data's results bit for bit, on every ISA, for
//     1..3 threads, both backward-data forms, small and large weights (the packed forms run their items in chunks
//     of tiles, forward per call with the block fastest), and allocate nothing;
//   - pack_weights writes exactly packed_weights_size() floats (forward panels + backward-data blocks);
//   - the per-tile live tap ranges of the tables are exact (the taps cut off read only padding), some tiles really
//     skip taps, and shapes where taps are skipped (top / bottom borders, strides, dilation, asymmetric padding,
//     groups, tiles ending mid-row, whole tiles in the padding) agree with the reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "alloc_counter.hpp"  // this binary's operator new (one TU only)
#include "config/kernels.hpp"
#include "convkit/runtime.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_tables.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

using testops::Expected;
using testops::Problem;

// Tiny problems would run on one thread (ops/conv2d_threads.hpp); lift that so the thread splits are exercised.
const bool kEveryThreadRuns = (ops::g_min_ns_per_thread = 0.0, true);

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::generic})
    if (cpu_supports(i)) out.push_back(i);
  return out;
}

struct Case {
  const char* name;
  Conv2dParams p;
  Shape input;
};

Conv2dParams conv(int filters, int kh, int kw, Padding pad, int sh = 1, int sw = 1, int dil = 1, int groups = 1,
                  Activation act = Activation::none) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {kh, kw};
  p.strides = {sh, sw};
  p.padding = pad;
  p.dilation_rate = {dil, dil};
  p.groups = groups;
  p.activation = act;
  return p;
}

// Shapes whose tiles have padded leading / trailing taps (and a few that have none), at the tile edges of every
// register block (MR 14 / 6 / 4: rows of 5, 7, 13 pixels end tiles mid-row).
std::vector<Case> skip_cases() {
  std::vector<Case> c;
  c.push_back({"5x5 pad 2 (fmnist conv2)", conv(20, 5, 5, Padding::symmetric(2, 2)), {2, 14, 14, 9}});
  c.push_back({"5x5 pad 2 rows of 5", conv(33, 5, 5, Padding::symmetric(2, 2), 1, 1, 1, 1, Activation::relu),
               {1, 9, 5, 6}});
  c.push_back({"3x3 pad 1 rows of 13", conv(17, 3, 3, Padding::same()), {2, 6, 13, 11}});
  c.push_back({"7x7 stride 2 pad 3 (stem)", conv(16, 7, 7, Padding::explicit_pad(3, 2, 3, 2), 2, 2), {1, 17, 15, 5}});
  c.push_back({"3x3 stride 2 pad 1", conv(19, 3, 3, Padding::symmetric(1, 1), 2, 2), {2, 11, 9, 12}});
  c.push_back({"3x3 stride (2, 1)", conv(12, 3, 3, Padding::symmetric(1, 1), 2, 1), {1, 9, 7, 10}});
  c.push_back({"3x3 dilation 2 pad 2", conv(21, 3, 3, Padding::symmetric(2, 2), 1, 1, 2), {1, 10, 7, 8}});
  c.push_back({"5x3 dilation 3 pad (6, 1)", conv(9, 5, 3, Padding::explicit_pad(6, 6, 1, 1), 1, 1, 3), {1, 13, 6, 7}});
  c.push_back({"asymmetric pad (3, 0, 2, 1)", conv(15, 4, 3, Padding::explicit_pad(3, 0, 2, 1)), {2, 8, 9, 13}});
  c.push_back({"asymmetric pad (0, 4, 0, 2)", conv(10, 5, 3, Padding::explicit_pad(0, 4, 0, 2)), {1, 9, 11, 6}});
  c.push_back({"groups 4, 5x5 pad 2", conv(24, 5, 5, Padding::symmetric(2, 2), 1, 1, 1, 4), {2, 8, 7, 16}});
  c.push_back({"groups 2 stride 2", conv(12, 3, 3, Padding::symmetric(1, 1), 2, 2, 1, 2, Activation::tanh),
               {1, 9, 8, 10}});
  // Padding wider than the kernel reach: whole output rows (tiles) see only padding, no tap live (bias only).
  c.push_back({"pad 4 > kernel 3", conv(18, 3, 3, Padding::symmetric(4, 4), 1, 1, 1, 1, Activation::sigmoid),
               {1, 4, 5, 7}});
  c.push_back({"1x1 pad 2 (no reach)", conv(13, 1, 1, Padding::symmetric(2, 2)), {1, 5, 6, 9}});
  // One-row tiles (ow 1), where the column taps are skipped too.
  c.push_back({"ow 1, 3x5 pad (1, 2)", conv(11, 3, 5, Padding::symmetric(1, 2)), {2, 9, 1, 10}});
  // Reflect padding: every tap reads a real cell, nothing is skipped.
  Conv2dParams reflect = conv(14, 5, 5, Padding::symmetric(2, 2));
  reflect.padding_mode = PaddingMode::reflect;
  c.push_back({"reflect 5x5 pad 2", reflect, {1, 8, 9, 6}});
  return c;
}

// Weights large enough (e.g. 3x3 x 96 x 100 floats per group, > 256 KiB) for the items of the packed forward and of
// backward data to be chunked over several tiles (conv2d_igemm.cpp, chunk_tiles).
std::vector<Case> large_cases() {
  std::vector<Case> c;
  c.push_back({"large 3x3 pad 1", conv(100, 3, 3, Padding::symmetric(1, 1), 1, 1, 1, 1, Activation::relu),
               {2, 7, 9, 96}});
  c.push_back({"large 5x5 pad 2 stride 2", conv(70, 5, 5, Padding::symmetric(2, 2), 2, 2), {3, 9, 8, 80}});
  c.push_back({"large groups 2", conv(200, 3, 3, Padding::explicit_pad(2, 0, 1, 1), 1, 1, 1, 2), {1, 6, 11, 192}});
  return c;
}

std::string describe(const Case& c, Isa isa, int threads, ops::BackwardDataForm form) {
  return std::string(c.name) + " " + to_string(isa) + " threads " + std::to_string(threads) +
         (form == ops::BackwardDataForm::gather ? " gather" : " scatter") + ": " + testops::describe(c.p, c.input);
}

// forward / backward_data against the reference, their packed forms bit for bit against them, the packed size
// exact, no allocation.
void check_case(const Case& c, Isa isa, int threads, ops::BackwardDataForm form) {
  const Problem pr(c.p, c.input, 17);
  const Expected e(pr);
  const std::string what = describe(c, isa, threads, form);
  const ops::Conv2dContext ctx{pr.g, c.p.activation, &config::kernels(isa), threads, form,
                               Conv2dWeights::packed_once};
  const std::unique_ptr<detail::Conv2dImpl> impl = ops::implicit_gemm_create(ctx);
  const float* b = c.p.use_bias ? pr.b.data() : nullptr;

  // pack_weights writes exactly packed_weights_floats(): NaN guards on both sides stay, everything inside is set.
  const std::size_t np = impl->packed_weights_floats();
  ASSERT_GT(np, 0u) << what;
  std::vector<float> guarded(np + 2, std::nanf(""));
  impl->pack_weights(pr.w.data(), guarded.data() + 1);
  EXPECT_TRUE(std::isnan(guarded.front()) && std::isnan(guarded.back())) << what << ": pack_weights wrote outside";
  int64_t unset = 0;
  for (std::size_t i = 1; i <= np; ++i) unset += std::isnan(guarded[i]) ? 1 : 0;
  EXPECT_EQ(unset, 0) << what << ": pack_weights left floats unwritten";
  const float* packed = guarded.data() + 1;

  std::vector<unsigned char> ws(impl->workspace_size() + 3);
  auto poison = [&] {
    const float nan = std::nanf("");
    for (std::size_t i = 0; i + 4 <= ws.size(); i += 4) std::memcpy(ws.data() + i, &nan, 4);
  };
  void* w_ptr = ws.data() + 3;
  std::string report;

  std::vector<float> y(e.y.size(), -7.0f), yp(e.y.size(), -8.0f);
  poison();
  impl->forward(pr.x.data(), pr.w.data(), b, y.data(), w_ptr);
  EXPECT_EQ(testops::count_mismatches(y, e.y, e.y_s, report), 0) << what << " forward\n" << report;
  poison();
  g_allocations = 0;
  g_counting = true;
  impl->forward_packed(pr.x.data(), pr.w.data(), packed, b, yp.data(), w_ptr);
  g_counting = false;
  if (CONVKIT_TEST_COUNTS_ALLOCATIONS) EXPECT_EQ(g_allocations.load(), 0) << what << " forward_packed";
  EXPECT_EQ(std::memcmp(yp.data(), y.data(), y.size() * sizeof(float)), 0) << what << " forward_packed != forward";

  report.clear();
  std::vector<float> dx(e.dx.size(), -7.0f), dxp(e.dx.size(), -8.0f);
  poison();
  impl->backward_data(pr.dz.data(), pr.w.data(), dx.data(), w_ptr);
  EXPECT_EQ(testops::count_mismatches(dx, e.dx, e.dx_s, report), 0) << what << " backward data\n" << report;
  poison();
  g_allocations = 0;
  g_counting = true;
  impl->backward_data_packed(pr.dz.data(), pr.w.data(), packed, dxp.data(), w_ptr);
  g_counting = false;
  if (CONVKIT_TEST_COUNTS_ALLOCATIONS) EXPECT_EQ(g_allocations.load(), 0) << what << " backward_data_packed";
  EXPECT_EQ(std::memcmp(dxp.data(), dx.data(), dx.size() * sizeof(float)), 0)
      << what << " backward_data_packed != backward_data";
}

TEST(ImplicitGemmPacked, SkippedTapsAgreeWithReferenceAndPackedIsBitIdentical) {
  for (Isa isa : isas())
    for (const Case& c : skip_cases())
      for (int threads : {1, 2, 3})
        for (ops::BackwardDataForm form : {ops::BackwardDataForm::gather, ops::BackwardDataForm::scatter})
          check_case(c, isa, threads, form);
}

// Last tiles of 1..8 rows (AVX-512's 14-row block runs tiles of <= 7 rows with its 7-row half, gemm_impl.hpp
// igemm_tile), full and partial column blocks (40 filters = 32 + 8), padded taps skipped or not; tiles of one
// output row of 14 whose first / last 1..3 rows read padding in a tap (igemm_body leaves up to 2 at each end out).
TEST(ImplicitGemmPacked, HalfHeightLastTilesAndPaddedTileEnds) {
  std::vector<Case> cases;
  cases.push_back({"7x7 pad 1 (res5a, 49 = 3 x 14 + 7)", conv(40, 3, 3, Padding::symmetric(1, 1)), {1, 7, 7, 24}});
  cases.push_back({"3x5 (last tile 1)", conv(40, 3, 3, Padding::symmetric(1, 1), 1, 1, 1, 1, Activation::relu),
                   {2, 3, 5, 7}});
  cases.push_back({"3x6 (last tile 4)", conv(33, 3, 3, Padding::symmetric(1, 1)), {1, 3, 6, 9}});
  cases.push_back({"4x5 (last tile 6)", conv(40, 5, 5, Padding::symmetric(2, 2)), {1, 4, 5, 5}});
  cases.push_back({"3x7 (last tile 7)", conv(32, 3, 3, Padding::symmetric(1, 1)), {1, 3, 7, 16}});
  cases.push_back({"2x11 (last tile 8)", conv(40, 3, 3, Padding::symmetric(1, 1)), {1, 2, 11, 6}});
  cases.push_back({"rows of 14, 5x5 pad 2", conv(40, 5, 5, Padding::symmetric(2, 2), 1, 1, 1, 1, Activation::relu),
                   {1, 6, 14, 12}});
  cases.push_back({"rows of 14, 7x7 pad 3", conv(24, 7, 7, Padding::symmetric(3, 3)), {1, 5, 14, 3}});
  cases.push_back({"rows of 14, 5x3 pad (2, 1, 0, 2)", conv(33, 5, 3, Padding::explicit_pad(2, 1, 0, 2)),
                   {2, 5, 14, 4}});
  for (Isa isa : isas())
    for (const Case& c : cases)
      for (int threads : {1, 2}) check_case(c, isa, threads, ops::BackwardDataForm::gather);
}

TEST(ImplicitGemmPacked, LargeWeightsPanelsAndChunks) {
  for (Isa isa : isas())
    for (const Case& c : large_cases())
      for (int threads : {1, 2, 3}) check_case(c, isa, threads, ops::BackwardDataForm::gather);
}

// The packed size: forward panels (G x blocks of NR output channels x taps * IC/G rows of NR) plus backward data's
// blocks (gather: per stride phase, G x blocks of NR input channels x phase taps * OC/G rows of NR; scatter: G x
// blocks of NR (tap, channel) columns x OC/G rows of NR).
TEST(ImplicitGemmPacked, PackedSizeIsForwardPanelsPlusBackwardBlocks) {
  for (Isa isa : isas()) {
    const int64_t nr = config::kernels(isa).nr;
    const auto up = [nr](int64_t v) { return (v + nr - 1) / nr * nr; };
    for (const Case& c : skip_cases()) {
      const Conv2dGeometry g = conv2d_geometry(c.p, c.input);
      if (g.padding_mode != PaddingMode::zeros || g.sh > g.ih || g.sw > g.iw) continue;
      const int64_t icg = g.ic_per_group(), ocg = g.oc_per_group(), taps = g.kh * g.kw;
      for (ops::BackwardDataForm form : {ops::BackwardDataForm::gather, ops::BackwardDataForm::scatter}) {
        const ops::Conv2dContext ctx{g, c.p.activation, &config::kernels(isa), 1, form, Conv2dWeights::packed_once};
        const std::unique_ptr<detail::Conv2dImpl> impl = ops::implicit_gemm_create(ctx);
        const int64_t fwd = g.groups * taps * icg * up(ocg);
        // Every tap belongs to exactly one stride phase (the input being at least a stride wide).
        const int64_t bwd = form == ops::BackwardDataForm::gather ? g.groups * taps * ocg * up(icg)
                                                                  : g.groups * up(taps * icg) * ocg;
        EXPECT_EQ(impl->packed_weights_floats(), static_cast<std::size_t>(fwd + bwd))
            << c.name << " " << to_string(isa) << (form == ops::BackwardDataForm::gather ? " gather" : " scatter");
      }
    }
  }
}

// The tables' live tap ranges: every tap before / after the range reads padding in every row of the tile (so
// skipping it changes nothing but the zeros multiplied), and the range is the tightest (its first and last taps
// are live somewhere). The border cases do skip taps, in forward and backward data.
void check_ranges(const ops::IndirectionTable& t, const std::string& what, int64_t& skipped) {
  ASSERT_EQ(t.tile_tap_begin.size(), t.tile_rows.size()) << what;
  ASSERT_EQ(t.tile_tap_end.size(), t.tile_rows.size()) << what;
  for (int64_t i = 0; i < t.num_tiles(); ++i) {
    const int64_t ntaps = static_cast<int64_t>(t.segments[t.tile_segment[i]].taps.size());
    const int64_t t0 = t.tile_tap_begin[i], t1 = t.tile_tap_end[i];
    ASSERT_TRUE(0 <= t0 && t0 <= t1 && t1 <= ntaps) << what << " tile " << i;
    const auto live = [&](int64_t tap) {
      for (int64_t r = 0; r < t.tile_rows[i]; ++r)
        if (t.a_off[t.tile_a_begin[i] + tap * t.mr + r] >= 0) return true;
      return false;
    };
    for (int64_t tap = 0; tap < ntaps; ++tap)
      if (tap < t0 || tap >= t1) EXPECT_FALSE(live(tap)) << what << " tile " << i << " tap " << tap;
    if (t1 > t0) {
      EXPECT_TRUE(live(t0)) << what << " tile " << i;
      EXPECT_TRUE(live(t1 - 1)) << what << " tile " << i;
    }
    skipped += ntaps - (t1 - t0);
  }
}

TEST(ImplicitGemmPacked, TablesTapRangesAreExact) {
  for (int64_t mr : {1, 4, 6, 14}) {
    for (const Case& c : skip_cases()) {
      const Conv2dGeometry g = conv2d_geometry(c.p, c.input);
      const std::string what = std::string(c.name) + " mr " + std::to_string(mr);
      int64_t fwd_skipped = 0, bwd_skipped = 0;
      check_ranges(ops::forward_table(g, mr), what + " forward", fwd_skipped);
      const Conv2dGeometry gb = g.padding_mode == PaddingMode::zeros ? g : ops::padded_grid_geometry(g);
      check_ranges(ops::backward_data_table(gb, mr), what + " backward data", bwd_skipped);
      if (g.padding_mode != PaddingMode::zeros) {
        EXPECT_EQ(fwd_skipped, 0) << what << ": every tap of a reflect-padded conv reads a real cell";
      } else if (g.kh > 1 && g.pad_top > 0 && mr <= g.ow) {
        // A tile inside the first output row has the kernel rows above the image in the padding.
        EXPECT_GT(fwd_skipped, 0) << what;
      }
    }
  }
  // fmnist conv2 (5x5 pad 2, 14x14, MR 14): the first and last output rows skip 2 kernel rows, the second and
  // second-to-last 1: (10 + 5) * 2 taps per border in forward, as many in backward data (stride 1, same geometry).
  const Conv2dGeometry g = conv2d_geometry(conv(64, 5, 5, Padding::symmetric(2, 2)), {1, 14, 14, 32});
  int64_t fwd = 0, bwd = 0;
  check_ranges(ops::forward_table(g, 14), "fmnist forward", fwd);
  check_ranges(ops::backward_data_table(g, 14), "fmnist backward data", bwd);
  EXPECT_EQ(fwd, 2 * (10 + 5));
  EXPECT_EQ(bwd, 2 * (10 + 5));
}

}  // namespace
}  // namespace convkit
