// tests/ops/conv_check.hpp — running a Conv2dPlan and the reference kernels on the same random data and comparing
// them with the documented tolerance (docs/numerics.md §6):
//   |fast - ref| <= 1e-5 * S + 1e-6   elementwise,
// S being the same computation on absolute values (|x|, |w|, |b|, |dz|): a bound on the magnitude of the terms
// whose summation order differs. The activations are 1-Lipschitz, so the bound carries through them. Both sides are
// within gamma_K * S of the exact sum; over this whole suite the worst |fast - ref| / S measured is 4.2 * 2^-24
// (2.5e-7), 40 times below the tolerance, and elements with S = 0 agree exactly.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/tensor.hpp"
#include "ref/conv2d.hpp"
#include "ref/conv_test_util.hpp"

namespace convkit::testops {

using testutil::describe;  // "input (...) filters ... activation ...", shared with the reference tests

inline std::vector<float> random_values(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

inline std::vector<float> absolute(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// Number of elements outside the tolerance; the first few are described in `report`.
inline int64_t count_mismatches(const std::vector<float>& fast, const std::vector<float>& ref,
                                const std::vector<float>& s, std::string& report) {
  int64_t bad = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double bound = 1e-5 * double(s[i]) + 1e-6;
    const double diff = std::fabs(double(fast[i]) - double(ref[i]));
    if (!(diff <= bound)) {  // also catches NaN
      if (bad < 3)
        report += "  [" + std::to_string(i) + "] fast " + std::to_string(fast[i]) + " ref " + std::to_string(ref[i]) +
                  " bound " + std::to_string(bound) + "\n";
      ++bad;
    }
  }
  return bad;
}

// One problem's data: x, w, b, dz random in [-1, 1].
struct Problem {
  Conv2dGeometry g;
  Conv2dParams p;
  std::vector<float> x, w, b, dz;
  Problem(const Conv2dParams& params, const Shape& input, uint32_t seed)
      : g(conv2d_geometry(params, input)), p(params) {
    std::mt19937 rng(seed);
    x = random_values(shape_elements(g.input_shape()), rng);
    w = random_values(shape_elements(g.kernel_shape()), rng);
    b = random_values(g.oc, rng);
    dz = random_values(shape_elements(g.output_shape()), rng);
  }
};

// A named convolution for the sweeps: parameters and input shape.
struct Case {
  std::string name;
  Conv2dParams p;
  Shape input;
};

// The reference results (and their S bounds), computed once per problem.
struct Expected {
  std::vector<float> y, y_s, dx, dx_s, dw, dw_s, db, db_s;
  explicit Expected(const Problem& pr) {
    const Conv2dGeometry& g = pr.g;
    const float* b = pr.p.use_bias ? pr.b.data() : nullptr;
    const std::vector<float> ax = absolute(pr.x), aw = absolute(pr.w), ab = absolute(pr.b), adz = absolute(pr.dz);
    y.resize(pr.dz.size());
    y_s.resize(pr.dz.size());
    ref::conv2d_fwd(g, pr.x.data(), pr.w.data(), b, y.data());
    activation_forward(pr.p.activation, y.data(), static_cast<int64_t>(y.size()));
    ref::conv2d_fwd(g, ax.data(), aw.data(), pr.p.use_bias ? ab.data() : nullptr, y_s.data());
    dx.resize(pr.x.size());
    dx_s.resize(pr.x.size());
    ref::conv2d_bwd_data(g, pr.dz.data(), pr.w.data(), dx.data());
    ref::conv2d_bwd_data(g, adz.data(), aw.data(), dx_s.data());
    dw.resize(pr.w.size());
    dw_s.resize(pr.w.size());
    ref::conv2d_bwd_weights(g, pr.x.data(), pr.dz.data(), dw.data());
    ref::conv2d_bwd_weights(g, ax.data(), adz.data(), dw_s.data());
    db.resize(static_cast<std::size_t>(g.oc));
    db_s.resize(static_cast<std::size_t>(g.oc));
    ref::conv2d_bwd_bias(g, pr.dz.data(), db.data());
    ref::conv2d_bwd_bias(g, adz.data(), db_s.data());
  }
};

// Runs the three directions of `plan` through the workspace overloads (the workspace filled with NaN first, so that
// a kernel reading scratch memory it did not write shows up) and checks them against `e`.
inline void check_plan(const Conv2dPlan& plan, const Problem& pr, const Expected& e, const std::string& what) {
  std::vector<unsigned char> ws(plan.workspace_size() + 3);
  auto poison = [&] {
    const float nan = std::nanf("");
    for (std::size_t i = 0; i + 4 <= ws.size(); i += 4) std::memcpy(ws.data() + i, &nan, 4);
  };
  void* w_ptr = ws.data() + 3;  // any alignment must do
  std::string report;

  std::vector<float> y(e.y.size(), -7.0f);
  poison();
  plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), w_ptr);
  EXPECT_EQ(count_mismatches(y, e.y, e.y_s, report), 0) << what << " forward\n" << report;

  report.clear();
  std::vector<float> dx(e.dx.size(), -7.0f);
  poison();
  plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), w_ptr);
  EXPECT_EQ(count_mismatches(dx, e.dx, e.dx_s, report), 0) << what << " backward data\n" << report;

  report.clear();
  std::vector<float> dw(e.dw.size(), -7.0f), db(e.db.size(), -7.0f);
  poison();
  plan.backward_weights(pr.x.data(), pr.dz.data(), dw.data(), db.data(), w_ptr);
  EXPECT_EQ(count_mismatches(dw, e.dw, e.dw_s, report), 0) << what << " backward weights\n" << report;
  report.clear();
  EXPECT_EQ(count_mismatches(db, e.db, e.db_s, report), 0) << what << " backward bias\n" << report;
}

// Where a test binary counts allocations (tests/alloc_counter.hpp, one TU per binary): its two counters.
struct AllocationCounter {
  std::atomic<bool>& counting;
  std::atomic<int64_t>& allocations;
};

// The packed-weights contract of a plan: pack_weights writes exactly packed_weights_size() floats, and
// forward_packed / backward_data_packed give forward's / backward_data's results bit for bit (so any bound checked
// on the per-call results holds for them), without allocating when `count` is given; the forward-only packing is
// the start of that layout and serves forward_packed alike.
inline void expect_packed_matches_per_call(const Conv2dPlan& plan, const Problem& pr, const std::string& what,
                                           const AllocationCounter* count = nullptr) {
  std::vector<float> packed(plan.packed_weights_size() + 1, std::nanf(""));
  plan.pack_weights(pr.w.data(), packed.data());
  EXPECT_TRUE(std::isnan(packed.back())) << what << ": pack_weights wrote past packed_weights_size()";
  std::vector<unsigned char> ws(plan.workspace_size() + 1);
  std::vector<float> y(pr.dz.size(), -3.0f), yp(pr.dz.size(), -5.0f);
  std::vector<float> dx(pr.x.size(), -3.0f), dxp(pr.x.size(), -5.0f);
  plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), ws.data());
  plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), ws.data());
  if (count) {
    count->allocations = 0;
    count->counting = true;
  }
  plan.forward_packed(pr.x.data(), pr.w.data(), packed.data(), pr.b.data(), yp.data(), ws.data());
  plan.backward_data_packed(pr.dz.data(), pr.w.data(), packed.data(), dxp.data(), ws.data());
  if (count) {
    count->counting = false;
    EXPECT_EQ(count->allocations.load(), 0) << what << ": the packed calls allocated";
  }
  EXPECT_EQ(std::memcmp(yp.data(), y.data(), y.size() * sizeof(float)), 0) << what << ": forward_packed";
  EXPECT_EQ(std::memcmp(dxp.data(), dx.data(), dx.size() * sizeof(float)), 0) << what << ": backward_data_packed";

  // Forward only: pack_forward_weights writes packed_forward_size() floats, the same as the start of
  // pack_weights' layout, and forward_packed over them gives forward's results bit for bit.
  const std::size_t nf = plan.packed_forward_size();
  EXPECT_LE(nf, plan.packed_weights_size()) << what;
  std::vector<float> fwd_only(nf + 1, std::nanf(""));
  plan.pack_forward_weights(pr.w.data(), fwd_only.data());
  EXPECT_TRUE(std::isnan(fwd_only.back())) << what << ": pack_forward_weights wrote past packed_forward_size()";
  EXPECT_EQ(std::memcmp(fwd_only.data(), packed.data(), nf * sizeof(float)), 0)
      << what << ": pack_forward_weights differs from the start of pack_weights";
  std::vector<float> yf(pr.dz.size(), -9.0f);
  plan.forward_packed(pr.x.data(), pr.w.data(), fwd_only.data(), pr.b.data(), yf.data(), ws.data());
  EXPECT_EQ(std::memcmp(yf.data(), y.data(), y.size() * sizeof(float)), 0) << what << ": forward over the forward part";
}

// Outputs larger than ops::kStreamBytes go out with non-temporal stores where the kernel's rows start on 64-byte
// boundaries (uk::GemmParams::stream). Runs forward and backward data into outputs that start on a 64-byte
// boundary (streamed) and 16 bytes past one (plain stores), checks the first against the reference and the second
// bit for bit against the first. `dirs`: 1 forward, 2 backward data, 3 both.
inline void check_streamed_outputs(const Conv2dPlan& plan, const Problem& pr, const Expected& e, int dirs,
                                   const std::string& what) {
  std::vector<unsigned char> ws(plan.workspace_size());
  auto run = [&](bool fwd, std::size_t n, std::size_t offset) {
    Tensor buf(Shape{static_cast<int64_t>(n + 16)});  // 64-byte aligned
    float* out = buf.data() + offset;
    std::fill_n(out, n, -7.0f);
    if (fwd)
      plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), out, ws.data());
    else
      plan.backward_data(pr.dz.data(), pr.w.data(), out, ws.data());
    return std::vector<float>(out, out + n);
  };
  for (int d = 1; d <= 2; ++d) {
    if (!(dirs & d)) continue;
    const bool fwd = d == 1;
    const std::vector<float>& ref = fwd ? e.y : e.dx;
    const std::vector<float>& s = fwd ? e.y_s : e.dx_s;
    const char* dir = fwd ? " forward" : " backward data";
    const std::vector<float> streamed = run(fwd, ref.size(), 0), plain = run(fwd, ref.size(), 4);
    std::string report;
    EXPECT_EQ(count_mismatches(streamed, ref, s, report), 0) << what << dir << " (64-byte aligned output)\n" << report;
    EXPECT_EQ(std::memcmp(streamed.data(), plain.data(), ref.size() * sizeof(float)), 0)
        << what << dir << ": the aligned (streamed) and the offset (plain) output differ";
  }
}

}  // namespace convkit::testops
