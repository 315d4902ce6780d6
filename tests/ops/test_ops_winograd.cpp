// The winograd Conv2D algorithm (src/ops/conv2d_winograd.cpp): forward and backward data against the reference
// kernels with the error bound of docs/numerics.md ("Winograd"), for every ISA of this CPU, on the edges of the
// 4x4 output tile and of the tile blocks, on random shapes; the transform matrices themselves (exact in double);
// the algorithm choice and refusals; the workspace bound; no allocation and concurrent calls.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/kernels.hpp"
#include "convkit/error.hpp"
#include "convkit/runtime.hpp"
#include "ops/conv_check.hpp"
#include "alloc_counter.hpp"  // this binary's operator new (one TU only)
#include "sanitizers.hpp"
#include "expect_error.hpp"


namespace convkit {
namespace {

using testops::Problem;

// F(4x4, 3x3) with the points 0, 1/2, -1/2, 2, -2, infinity, as docs/numerics.md gives the matrices. Written here
// from the Toom-Cook construction (not read from the library), and checked for exactness below.
constexpr double kBT[6][6] = {{1, 0, -4.25, 0, 1, 0},    {0, -2, -4, 0.5, 1, 0},    {0, 2, -4, -0.5, 1, 0},
                              {0, -0.5, -0.25, 2, 1, 0}, {0, 0.5, -0.25, -2, 1, 0}, {0, 1, 0, -4.25, 0, 1}};
constexpr double kG[6][3] = {{1, 0, 0},
                             {-8.0 / 15, -4.0 / 15, -2.0 / 15},
                             {-8.0 / 15, 4.0 / 15, -2.0 / 15},
                             {1.0 / 30, 1.0 / 15, 2.0 / 15},
                             {1.0 / 30, -1.0 / 15, 2.0 / 15},
                             {0, 0, 1}};
constexpr double kAT[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 0.5, -0.5, 2, -2, 0}, {0, 0.25, 0.25, 4, 4, 0}, {0, 0.125, -0.125, 8, -8, 1}};

// gamma_k = k u / (1 - k u), u = 2^-24 (fp32).
double gamma(double k) {
  const double u = std::ldexp(1.0, -24);
  return k * u / (1.0 - k * u);
}

// out (6x6) = M d M^T for M one of the 6-row transforms (abs: with |M| and |d|).
template <int R, int C>
void sandwich(const double (&m)[R][C], const double* d /* C x C */, double* out /* R x R */, bool abs) {
  double t[R][C];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) {
      double s = 0;
      for (int k = 0; k < C; ++k) s += (abs ? std::fabs(m[i][k]) * std::fabs(d[k * C + j]) : m[i][k] * d[k * C + j]);
      t[i][j] = s;
    }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < R; ++j) {
      double s = 0;
      for (int k = 0; k < C; ++k) s += t[i][k] * (abs ? std::fabs(m[j][k]) : m[j][k]);
      out[i * R + j] = s;
    }
}

// The transform is exact: A^T [(G g G^T) .* (B^T d B)] A is the 3x3 correlation of d, in double to 1e-12.
TEST(WinogradMatrices, ComputeTheCorrelationExactly) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int trial = 0; trial < 20; ++trial) {
    double d[36], g[9], U[36], V[36], P[36], y[16];
    for (double& v : d) v = u(rng);
    for (double& v : g) v = u(rng);
    sandwich(kG, g, U, false);
    sandwich(kBT, d, V, false);
    for (int e = 0; e < 36; ++e) P[e] = U[e] * V[e];
    sandwich(kAT, P, y, false);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        double direct = 0;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) direct += d[(i + ky) * 6 + j + kx] * g[ky * 3 + kx];
        EXPECT_NEAR(y[i * 4 + j], direct, 1e-12) << "trial " << trial << " output (" << i << ", " << j << ")";
      }
  }
}

// A stride-1 3x3 correlation of src (n, sh, sw, cin) into (n, dh, dw, cout), output (oy, ox) reading source cell
// (oy - pt + ky, ox - pl + kx) (zeros outside), with kernel k(ky, kx, c, o): the bound of docs/numerics.md,
//   gamma_{cin + 21} * (|A^T| [sum_c (|G| |g| |G^T|) .* (|B^T| |d| |B|)] |A| + |b|)   per output,
// over the algorithm's 4x4 tiles (tile (ty, tx) starts at source row 4 ty - pt, column 4 tx - pl).
template <typename Kernel>
std::vector<double> winograd_bound(int64_t n, int64_t sh, int64_t sw, int64_t cin, int64_t dh, int64_t dw, int64_t cout,
                                   int64_t pt, int64_t pl, const std::vector<float>& src, Kernel k, const float* bias) {
  std::vector<double> ua(static_cast<std::size_t>(cin * cout * 36));
  for (int64_t c = 0; c < cin; ++c)
    for (int64_t o = 0; o < cout; ++o) {
      double g[9];
      for (int t = 0; t < 9; ++t) g[t] = k(t / 3, t % 3, c, o);
      sandwich(kG, g, &ua[static_cast<std::size_t>((c * cout + o) * 36)], true);
    }
  std::vector<double> bound(static_cast<std::size_t>(n * dh * dw * cout));
  const int64_t th = (dh + 3) / 4, tw = (dw + 3) / 4;
  std::vector<double> va(static_cast<std::size_t>(cin * 36));
  for (int64_t img = 0; img < n; ++img)
    for (int64_t ty = 0; ty < th; ++ty)
      for (int64_t tx = 0; tx < tw; ++tx) {
        for (int64_t c = 0; c < cin; ++c) {
          double d[36];
          for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 6; ++j) {
              const int64_t y = ty * 4 - pt + i, x = tx * 4 - pl + j;
              d[i * 6 + j] = y >= 0 && y < sh && x >= 0 && x < sw ? src[((img * sh + y) * sw + x) * cin + c] : 0.0;
            }
          sandwich(kBT, d, &va[static_cast<std::size_t>(c * 36)], true);
        }
        for (int64_t o = 0; o < cout; ++o) {
          double p[36] = {}, y[16];
          for (int64_t c = 0; c < cin; ++c)
            for (int e = 0; e < 36; ++e)
              p[e] += ua[static_cast<std::size_t>((c * cout + o) * 36 + e)] * va[static_cast<std::size_t>(c * 36 + e)];
          sandwich(kAT, p, y, true);
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
              const int64_t oy = ty * 4 + i, ox = tx * 4 + j;
              if (oy >= dh || ox >= dw) continue;
              const double b = bias ? std::fabs(bias[o]) : 0.0;
              bound[static_cast<std::size_t>(((img * dh + oy) * dw + ox) * cout + o)] =
                  gamma(double(cin) + 21) * (y[i * 4 + j] + b);
            }
        }
      }
  return bound;
}

// Printed when the binary ends (ReportWorstRatio below), for docs/numerics.md.
double g_worst_ratio = 0;   // the worst |fast - ref| / allowance seen
double g_worst_over_s = 0;  // the worst |fast - ref| / S (S: the direct sum on absolute values), in units of u

// Elements where |fast - ref| exceeds the Winograd bound plus the reference's own error, gamma_{9 cin + 1} * S
// (S: the reference on absolute values), plus 4 ulps of the result for tanh / sigmoid (rounded once more each
// side). Tracks the worst ratio of the difference to that allowance.
int64_t count_outside(const std::vector<float>& fast, const std::vector<float>& ref, const std::vector<float>& s,
                      const std::vector<double>& wbound, int64_t cin, Activation act, std::string& report,
                      double& worst) {
  int64_t bad = 0;
  const double extra_ulps = act == Activation::tanh || act == Activation::sigmoid ? std::ldexp(4.0, -24) : 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double allow = wbound[i] + gamma(9.0 * double(cin) + 1) * double(s[i]) + extra_ulps * std::fabs(ref[i]);
    const double diff = std::fabs(double(fast[i]) - double(ref[i]));
    if (allow > 0) worst = std::max(worst, diff / allow);
    if (s[i] > 0) g_worst_over_s = std::max(g_worst_over_s, diff / double(s[i]) / std::ldexp(1.0, -24));
    if (!(diff <= allow)) {
      if (bad < 3)
        report += "  [" + std::to_string(i) + "] fast " + std::to_string(fast[i]) + " ref " + std::to_string(ref[i]) +
                  " bound " + std::to_string(allow) + "\n";
      ++bad;
    }
  }
  return bad;
}

// x (n, ih, iw, c) padded per the geometry's mode (DESIGN.md §1): reflect mirrors without repeating the edge,
// replicate repeats it, circular wraps around.
std::vector<float> padded_image(const std::vector<float>& x, const Conv2dGeometry& g) {
  const int64_t ph = g.ih + g.pad_top + g.pad_bottom, pw = g.iw + g.pad_left + g.pad_right;
  auto source = [&](int64_t i, int64_t n) -> int64_t {
    if (i >= 0 && i < n) return i;
    switch (g.padding_mode) {
      case PaddingMode::reflect:
        return i < 0 ? -i : 2 * n - 2 - i;
      case PaddingMode::replicate:
        return i < 0 ? 0 : n - 1;
      case PaddingMode::circular:
        return (i + n) % n;
      case PaddingMode::zeros:
        break;
    }
    return -1;
  };
  std::vector<float> out(static_cast<std::size_t>(g.n * ph * pw * g.ic));
  for (int64_t img = 0; img < g.n; ++img)
    for (int64_t y = 0; y < ph; ++y)
      for (int64_t xx = 0; xx < pw; ++xx) {
        const int64_t sy = source(y - g.pad_top, g.ih), sx = source(xx - g.pad_left, g.iw);
        for (int64_t c = 0; c < g.ic; ++c)
          out[static_cast<std::size_t>(((img * ph + y) * pw + xx) * g.ic + c)] =
              x[static_cast<std::size_t>(((img * g.ih + sy) * g.iw + sx) * g.ic + c)];
      }
  return out;
}

struct Case {
  std::string name;
  Conv2dParams p;
  Shape input;
  int threads = 2;
};

// Runs forward (zeros or other padding modes), backward data and backward weights of the forced winograd plan,
// through the workspace overloads (workspace poisoned with NaN, misaligned), against the reference.
void check_case(const Case& c, const std::string& isa) {
  set_num_threads(c.threads);
  const Conv2dPlan plan = Conv2dPlan::create(c.p, c.input, Conv2dAlgorithm::winograd);
  ASSERT_EQ(plan.algorithm_id(), Conv2dAlgorithm::winograd);
  const std::string what =
      testops::describe(c.p, c.input) + " threads " + std::to_string(c.threads) + " [" + isa + "] " + c.name;
  const Problem pr(c.p, c.input, 23u + static_cast<uint32_t>(c.name.size()));
  const Conv2dGeometry& g = pr.g;
  const testops::Expected e(pr);
  std::vector<unsigned char> ws(plan.workspace_size() + 5);
  auto poison = [&] {
    const float nan = std::nanf("");
    for (std::size_t i = 0; i + 4 <= ws.size(); i += 4) std::memcpy(ws.data() + i, &nan, 4);
  };
  void* w_ptr = ws.data() + 5;
  std::string report;
  const float* bias = c.p.use_bias ? pr.b.data() : nullptr;

  std::vector<float> y(e.y.size(), -7.0f);
  poison();
  plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), w_ptr);
  {
    const auto k = [&](int64_t ky, int64_t kx, int64_t ci, int64_t o) {
      return double(pr.w[static_cast<std::size_t>(((ky * 3 + kx) * g.ic + ci) * g.oc + o)]);
    };
    // Other padding modes: the same bound over the explicitly padded image (padded cells copy input cells).
    const bool zeros = g.padding_mode == PaddingMode::zeros;
    const std::vector<float> src = zeros ? pr.x : padded_image(pr.x, g);
    const int64_t sh = zeros ? g.ih : g.ih + g.pad_top + g.pad_bottom;
    const int64_t sw = zeros ? g.iw : g.iw + g.pad_left + g.pad_right;
    const std::vector<double> wb = winograd_bound(g.n, sh, sw, g.ic, g.oh, g.ow, g.oc, zeros ? g.pad_top : 0,
                                                  zeros ? g.pad_left : 0, src, k, bias);
    EXPECT_EQ(count_outside(y, e.y, e.y_s, wb, g.ic, c.p.activation, report, g_worst_ratio), 0) << what << " forward\n"
                                                                                                << report;
  }

  report.clear();
  std::vector<float> dx(e.dx.size(), -7.0f);
  poison();
  plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), w_ptr);
  if (g.padding_mode == PaddingMode::zeros) {
    // dx is the correlation of dz with w rotated by 180 degrees, channels swapped, padding 2 - pad.
    const auto k = [&](int64_t ky, int64_t kx, int64_t o, int64_t ci) {
      return double(pr.w[static_cast<std::size_t>((((2 - ky) * 3 + (2 - kx)) * g.ic + ci) * g.oc + o)]);
    };
    const std::vector<double> wb =
        winograd_bound(g.n, g.oh, g.ow, g.oc, g.ih, g.iw, g.ic, 2 - g.pad_top, 2 - g.pad_left, pr.dz, k, nullptr);
    EXPECT_EQ(count_outside(dx, e.dx, e.dx_s, wb, g.oc, Activation::none, report, g_worst_ratio), 0)
        << what << " backward data\n"
        << report;
  } else {
    EXPECT_EQ(testops::count_mismatches(dx, e.dx, e.dx_s, report), 0) << what << " backward data (fallback)\n"
                                                                      << report;
  }

  // Weights packed once: forward_packed and backward_data_packed give the per-call results above bit for bit (so
  // they are within the same bound), and pack_weights writes exactly packed_weights_size() floats.
  {
    std::vector<float> packed(plan.packed_weights_size() + 1, std::nanf(""));
    plan.pack_weights(pr.w.data(), packed.data());
    EXPECT_TRUE(std::isnan(packed.back())) << what << " pack_weights wrote past packed_weights_size()";
    std::vector<float> yp(y.size(), -8.0f), dxp(dx.size(), -8.0f);
    poison();
    plan.forward_packed(pr.x.data(), pr.w.data(), packed.data(), pr.b.data(), yp.data(), w_ptr);
    EXPECT_TRUE(std::memcmp(yp.data(), y.data(), y.size() * sizeof(float)) == 0) << what << " forward_packed";
    poison();
    plan.backward_data_packed(pr.dz.data(), pr.w.data(), packed.data(), dxp.data(), w_ptr);
    EXPECT_TRUE(std::memcmp(dxp.data(), dx.data(), dx.size() * sizeof(float)) == 0)
        << what << " backward_data_packed";
  }

  report.clear();
  std::vector<float> dw(e.dw.size(), -7.0f), db(e.db.size(), -7.0f);
  poison();
  plan.backward_weights(pr.x.data(), pr.dz.data(), dw.data(), db.data(), w_ptr);
  EXPECT_EQ(testops::count_mismatches(dw, e.dw, e.dw_s, report), 0) << what << " backward weights\n" << report;
  EXPECT_EQ(testops::count_mismatches(db, e.db, e.db_s, report), 0) << what << " backward bias\n" << report;
}

Conv2dParams conv3(int filters, Padding pad, Activation act = Activation::none, bool bias = true) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {3, 3};
  p.padding = pad;
  p.activation = act;
  p.use_bias = bias;
  return p;
}

const Activation kActs[] = {Activation::none, Activation::relu, Activation::tanh, Activation::sigmoid};

std::vector<Case> edge_cases(const config::KernelTable& k) {
  const int mr = k.mr, nr = k.nr, lanes = k.isa == Isa::avx512 ? 16 : k.isa == Isa::avx2 ? 8 : 4;
  std::vector<Case> cases;
  int act = 0;
  auto add = [&](std::string name, Conv2dParams p, Shape in, int threads = 2) {
    if (name.rfind("act_", 0) != 0) p.activation = kActs[act++ % 4];
    cases.push_back({std::move(name), p, std::move(in), threads});
  };
  // Every image size 1..9 ("same": outputs 1..9, not multiples of 4 but for 4 and 8), and odd larger ones.
  for (int h = 1; h <= 9; ++h) add("same_h" + std::to_string(h), conv3(5, Padding::same()), {2, h, 10 - h, 3});
  for (int h : {3, 5, 6, 7, 9}) add("valid_h" + std::to_string(h), conv3(4, Padding::valid()), {1, h, h + 2, 2});
  add("odd_13x17", conv3(7, Padding::same()), {1, 13, 17, 5});
  // Channels around the vector width and the GEMM's register block; one channel.
  for (int c : {1, lanes - 1, lanes + 1, nr - 1, nr + 1, 2 * nr + 3})
    add("ic" + std::to_string(c), conv3(6, Padding::same()), {1, 5, 6, c});
  for (int c : {1, lanes + 1, nr - 1, nr + 1, 2 * nr + 3})
    add("oc" + std::to_string(c), conv3(c, Padding::same()), {1, 6, 5, 4});
  // Tile blocks: tiles around MR and its multiples, over images; several blocks, the last partially full.
  for (int tiles : {mr - 1, mr, mr + 1, 2 * mr + 1})
    add("tiles" + std::to_string(tiles), conv3(nr + 2, Padding::same()), {1, 4, 4 * tiles, 9});
  add("tiles_over_images", conv3(9, Padding::same()), {3, 7, 9, 6});
  add("many_blocks_3_threads", conv3(40, Padding::same()), {2, 23, 19, 36}, 3);
  add("one_thread", conv3(nr + 1, Padding::same()), {2, 9, 7, lanes + 2}, 1);
  add("batch1_wide_split", conv3(4 * nr + 5, Padding::same()), {1, 5, 7, 33}, 2);
  // Asymmetric, zero, larger-than-kernel padding (backward data then crops).
  add("pad_asym_0210", conv3(5, Padding::explicit_pad(0, 2, 1, 0)), {2, 7, 8, 3});
  add("pad_asym_2001", conv3(6, Padding::explicit_pad(2, 0, 0, 1)), {1, 6, 9, 4});
  add("pad_3", conv3(4, Padding::explicit_pad(3, 1, 0, 3)), {1, 5, 6, 3});
  add("pad_1_2_same_even", conv3(5, Padding::same()), {1, 8, 6, 3});
  // Every activation, bias or none.
  for (Activation a : kActs) {
    add("act_" + to_string(a), conv3(nr + 3, Padding::same(), a), {2, 6, 7, 5});
    add("act_" + to_string(a) + "_nobias", conv3(7, Padding::symmetric(1, 0), a, false), {1, 5, 9, lanes + 1});
  }
  // Padding modes other than zeros: forward through the padded cells, backward data through implicit_gemm.
  for (PaddingMode m : {PaddingMode::reflect, PaddingMode::replicate, PaddingMode::circular}) {
    Conv2dParams p = conv3(6, Padding::same());
    p.padding_mode = m;
    add("mode_" + to_string(m), p, {2, 6, 7, 4});
    Conv2dParams q = conv3(5, Padding::explicit_pad(2, 0, 1, 2));
    q.padding_mode = m;
    add("mode_" + to_string(m) + "_asym", q, {1, 5, 9, 3});
  }
  return cases;
}

std::vector<Case> random_cases(uint32_t seed, int count) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Case> cases;
  while (static_cast<int>(cases.size()) < count) {
    Conv2dParams p = conv3(pick(1, 48), Padding::explicit_pad(pick(0, 2), pick(0, 2), pick(0, 2), pick(0, 2)),
                           kActs[pick(0, 3)], pick(0, 3) != 0);
    if (pick(0, 3) == 0) p.padding = Padding::same();
    const Shape in = {pick(1, 3), pick(1, 16), pick(1, 16), pick(1, 40)};
    try {
      const Conv2dGeometry g = conv2d_geometry(p, in);
      if (g.flops() > 6e6) continue;  // keep the reference quick
    } catch (const Error&) {
      continue;
    }
    cases.push_back({"random" + std::to_string(cases.size()), p, in, pick(1, 3)});
  }
  return cases;
}

struct Param {
  std::string isa;
  Case c;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.isa << " " << p.c.name << " " << shape_to_string(p.c.input); }

std::vector<Param> params() {
  std::vector<Param> out;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    for (Case& c : edge_cases(config::kernels(isa))) out.push_back({to_string(isa), c});
    for (Case& c : random_cases(77u + static_cast<uint32_t>(isa), 20)) out.push_back({to_string(isa), c});
  }
  return out;
}

class WinogradSweep : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override { set_isa(parse_isa(GetParam().isa)); }
  void TearDown() override {
    reset_isa();
    set_num_threads(0);
  }
};

TEST_P(WinogradSweep, MatchesReferenceWithinTheWinogradBound) { check_case(GetParam().c, GetParam().isa); }

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string s = info.param.isa + "_" + info.param.c.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Isa, WinogradSweep, ::testing::ValuesIn(params()), param_name);

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

using test_support::error_message;

class Winograd : public ::testing::Test {
 protected:
  void TearDown() override {
    reset_isa();
    set_num_threads(0);
  }
};

TEST_F(Winograd, ChosenForWideLayersAndExplained) {
  const Conv2dPlan plan = Conv2dPlan::create(conv3(64, Padding::same(), Activation::relu), {1, 56, 56, 64});
  EXPECT_EQ(plan.algorithm(), "winograd") << plan.explain();
  EXPECT_TRUE(contains(plan.explain(), "winograd: chosen")) << plan.explain();
  EXPECT_TRUE(contains(plan.explain(), "f32_wino_")) << plan.explain();
}

TEST_F(Winograd, NotChosenWhereItDoesNotPayButCanBeForced) {
  // Few channels: supported, slower than a later algorithm (implicit_gemm, or kernel_rows on 3 channels), so not
  // taken automatically; explain() says why.
  const Conv2dParams p = conv3(8, Padding::same());
  const Conv2dPlan plan = Conv2dPlan::create(p, {1, 32, 32, 3});
  EXPECT_NE(plan.algorithm(), "winograd") << plan.explain();
  EXPECT_TRUE(contains(plan.explain(), "winograd: supported, not chosen: it pays only with")) << plan.explain();
  EXPECT_EQ(Conv2dPlan::create(p, {1, 32, 32, 3}, Conv2dAlgorithm::winograd).algorithm(), "winograd");
  // Few output pixels in the batch (2 x 7 x 7): the transformed kernel is not amortised.
  const Conv2dPlan small = Conv2dPlan::create(conv3(64, Padding::same()), {2, 7, 7, 64});
  EXPECT_EQ(small.algorithm(), "implicit_gemm") << small.explain();
  EXPECT_TRUE(contains(small.explain(), "pays only with >= 512 output pixels in the batch")) << small.explain();
}

// With the weights packed once (Conv2dWeights::packed_once) the kernel transforms leave the calls, and winograd is
// taken on small images too (winograd_pays: >= 4 tiles, >= 8 output pixels per 4x4 tile, >= 16 channels; >= 8
// tiles when U exceeds 16 MiB): ResNet-50's res4a_branch2b at batch 1 among them, not res5a_branch2b (4 tiles, U
// 37.7 MB) until batch 2. Per call (the default), the choice is as before.
TEST_F(Winograd, PackedOnceTakesItOnSmallImages) {
  struct Choice {
    int c, hw, oc, mb;
    bool packed, per_call;  // winograd chosen with packed_once / per_call
  };
  for (const Choice& ch : {Choice{256, 14, 256, 1, true, false}, Choice{512, 7, 512, 1, false, false},
                           Choice{512, 7, 512, 2, true, false}, Choice{512, 14, 512, 1, true, false},
                           Choice{128, 7, 128, 1, true, false}, Choice{64, 6, 64, 1, true, false},
                           Choice{16, 7, 16, 1, true, false}, Choice{64, 7, 64, 2, true, false},
                           Choice{256, 5, 256, 1, false, false}, Choice{256, 3, 256, 1, false, false},
                           Choice{512, 4, 512, 1, false, false}, Choice{256, 3, 256, 4, true, false},
                           Choice{8, 14, 8, 1, false, false}, Choice{16, 14, 8, 1, false, false},
                           Choice{64, 56, 64, 1, true, true}, Choice{512, 7, 512, 32, true, true}}) {
    const Conv2dParams p = conv3(ch.oc, Padding::same());
    const Shape in{ch.mb, ch.hw, ch.hw, ch.c};
    const std::string what = std::to_string(ch.c) + "@" + std::to_string(ch.hw) + " -> " + std::to_string(ch.oc) +
                             " batch " + std::to_string(ch.mb);
    const Conv2dPlan packed = Conv2dPlan::create(p, in, Conv2dAlgorithm::automatic, Conv2dWeights::packed_once);
    const Conv2dPlan per_call = Conv2dPlan::create(p, in, Conv2dAlgorithm::automatic, Conv2dWeights::per_call);
    EXPECT_EQ(packed.algorithm() == "winograd", ch.packed) << what << "\n" << packed.explain();
    EXPECT_EQ(per_call.algorithm() == "winograd", ch.per_call) << what << "\n" << per_call.explain();
    EXPECT_EQ(Conv2dPlan::create(p, in).algorithm(), per_call.algorithm()) << what << ": per_call is the default";
    if (!ch.per_call && ch.c >= 16 && ch.oc >= 16)
      EXPECT_TRUE(contains(per_call.explain(), "pays only with >= 512 output pixels in the batch")) << what;
    if (!ch.packed && ch.c >= 16 && ch.oc >= 16)
      EXPECT_TRUE(contains(packed.explain(), "pays, with the weights packed once, only with >= 4 4x4 output tiles"))
          << what << "\n" << packed.explain();
  }
}

// The two tile schedules of conv2d_winograd.cpp: blocks of tiles per thread, and, where the transformed tiles of the
// whole batch are no larger than U (few tiles, many channels), all tiles at once in three phases. Both are in the
// sweep above; this pins which shapes take which, and runs each against the reference on every ISA.
TEST_F(Winograd, BothTileSchedulesMatchTheReference) {
  struct Sched {
    Conv2dParams p;
    Shape in;
    const char* kernels;
  };
  const Sched scheds[] = {
      {conv3(48, Padding::same(), Activation::relu), {1, 6, 7, 40}, "36 GEMMs over all 4 tiles"},
      {conv3(70, Padding::same()), {2, 5, 9, 33}, "36 GEMMs over all 12 tiles"},
      {conv3(9, Padding::same()), {2, 13, 11, 6}, "36 GEMMs per block of"},
      {conv3(24, Padding::same(), Activation::tanh), {1, 17, 16, 20}, "36 GEMMs per block of"}};
  for (const Sched& sc : scheds)
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
      if (!cpu_supports(isa)) continue;
      set_isa(isa);
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        const Conv2dPlan plan = Conv2dPlan::create(sc.p, sc.in, Conv2dAlgorithm::winograd);
        EXPECT_TRUE(contains(plan.explain(), sc.kernels)) << plan.explain();
        check_case(Case{std::string("schedule_") + sc.kernels, sc.p, sc.in, threads}, to_string(isa));
      }
    }
}

TEST_F(Winograd, RefusedOnUnsupportedShapesWithTheReason) {
  struct Refusal {
    Conv2dParams p;
    Shape in;
    const char* reason;
  };
  Conv2dParams k5 = conv3(8, Padding::same());
  k5.kernel_size = {5, 5};
  Conv2dParams k31 = conv3(8, Padding::same());
  k31.kernel_size = {3, 1};
  Conv2dParams s2 = conv3(8, Padding::same());
  s2.strides = {1, 2};
  Conv2dParams d2 = conv3(8, Padding::same());
  d2.dilation_rate = {2, 2};
  Conv2dParams g2 = conv3(8, Padding::same());
  g2.groups = 2;
  for (const Refusal& r : {Refusal{k5, {1, 8, 8, 8}, "needs a 3x3 kernel, got 5x5"},
                           Refusal{k31, {1, 8, 8, 8}, "needs a 3x3 kernel, got 3x1"},
                           Refusal{s2, {1, 8, 8, 8}, "needs stride 1, got (1, 2)"},
                           Refusal{d2, {1, 8, 8, 8}, "needs dilation 1, got (2, 2)"},
                           Refusal{g2, {1, 8, 8, 8}, "needs groups 1, got 2"}}) {
    const std::string e = error_message([&] { Conv2dPlan::create(r.p, r.in, Conv2dAlgorithm::winograd); });
    EXPECT_TRUE(contains(e, "'winograd' cannot run this convolution") && contains(e, r.reason)) << e;
    const std::string ex = Conv2dPlan::create(r.p, r.in).explain();
    EXPECT_TRUE(contains(ex, std::string("winograd: not chosen: ") + r.reason)) << ex;
  }
  EXPECT_EQ(parse_conv2d_algorithm("winograd"), Conv2dAlgorithm::winograd);
  EXPECT_TRUE(contains(error_message([] { parse_conv2d_algorithm("winogard"); }), "winograd"));
}

// The issue's target: the scratch (transformed inputs and GEMM results of one tile block per thread) stays below
// the layer's input plus its packed transformed kernel U (36 x Cin x Cout floats). The workspace
// holds U too (the API passes the weights at every call), so: workspace <= input + 2 U, for each direction's
// "input" (x forward, dz backward data). ResNet-50 and VGG 3x3 layers, batch 1 and 32, 1 and 2 threads.
TEST_F(Winograd, WorkspaceStaysBelowInputPlusPackedWeights) {
  struct Layer {
    int c, hw, oc;
  };
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    for (int threads : {1, 2})
      for (int mb : {1, 32})
        for (const Layer& l : {Layer{64, 56, 64}, Layer{128, 28, 128}, Layer{256, 14, 256}, Layer{512, 7, 512},
                               Layer{3, 224, 64}, Layer{64, 224, 64}, Layer{256, 56, 256}, Layer{512, 14, 512}}) {
          set_num_threads(threads);
          const Conv2dPlan plan =
              Conv2dPlan::create(conv3(l.oc, Padding::same()), {mb, l.hw, l.hw, l.c}, Conv2dAlgorithm::winograd);
          const double input = 4.0 * mb * l.hw * l.hw * std::max(l.c, l.oc);
          const double u = 4.0 * 36 * l.c * l.oc;  // U: 36 x IC x OC floats (the same for both directions)
          EXPECT_LE(double(plan.workspace_size()), input + 2 * u)
              << to_string(isa) << " threads " << threads << " batch " << mb << " layer " << l.c << "@" << l.hw;
        }
  }
}

// Forward and backward data allocate nothing with a workspace, and one plan runs from several threads at once
// (each with its own workspace) with the results of a lone call, bit for bit.
TEST_F(Winograd, NoAllocationAndConcurrentCalls) {
  set_num_threads(2);
  const Conv2dParams p = conv3(40, Padding::same(), Activation::relu);
  const Shape in{2, 13, 11, 36};
  const Conv2dPlan plan = Conv2dPlan::create(p, in, Conv2dAlgorithm::winograd);
  const Problem pr(p, in, 3);
  std::vector<unsigned char> ws(plan.workspace_size());
  std::vector<float> y(pr.dz.size()), dx(pr.x.size());
  g_allocations = 0;
  g_counting = true;
  plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), ws.data());
  plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), ws.data());
  g_counting = false;
  if (CONVKIT_TEST_COUNTS_ALLOCATIONS) EXPECT_EQ(g_allocations.load(), 0);

  constexpr int kCallers = 3;
  std::vector<std::vector<unsigned char>> wss(kCallers, std::vector<unsigned char>(plan.workspace_size()));
  std::vector<std::vector<float>> ys(kCallers, std::vector<float>(y.size())),
      dxs(kCallers, std::vector<float>(dx.size()));
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t)
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep) {
        plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), ys[t].data(), wss[t].data());
        plan.backward_data(pr.dz.data(), pr.w.data(), dxs[t].data(), wss[t].data());
      }
    });
  for (std::thread& c : callers) c.join();
  for (int t = 0; t < kCallers; ++t) {
    EXPECT_EQ(ys[t], y) << "caller " << t;
    EXPECT_EQ(dxs[t], dx) << "caller " << t;
  }
}

// Weights packed once (inference): forward_packed and backward_data_packed give forward's and backward_data's
// results bit for bit, on every ISA and thread count, and allocate nothing. winograd packs both directions' transformed
// kernels (2 x 36 x IC x OC floats), or, with a padding mode other than zeros (backward data through implicit_gemm),
// forward's and implicit_gemm's packed form; implicit_gemm is checked alongside.
TEST_F(Winograd, PackedWeightsGiveThePerCallResults) {
  struct Layer {
    Conv2dParams p;
    Shape in;
  };
  Conv2dParams reflect = conv3(21, Padding::same(), Activation::tanh);
  reflect.padding_mode = PaddingMode::reflect;
  const Layer layers[] = {{conv3(37, Padding::explicit_pad(1, 2, 0, 1), Activation::relu), {2, 11, 9, 19}},
                          {conv3(70, Padding::same()), {1, 7, 7, 45}},
                          {conv3(33, Padding::explicit_pad(0, 2, 2, 0), Activation::none, false), {3, 6, 13, 17}},
                          {reflect, {2, 6, 9, 10}}};
  for (const Layer& l : layers) {
    const Problem pr(l.p, l.in, 9);
    const Conv2dGeometry& g = pr.g;
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
      if (!cpu_supports(isa)) continue;
      set_isa(isa);
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        for (Conv2dAlgorithm algo : {Conv2dAlgorithm::winograd, Conv2dAlgorithm::implicit_gemm}) {
          const std::string what = to_string(isa) + " " + to_string(algo) + " threads " + std::to_string(threads) +
                                   " " + testops::describe(l.p, l.in);
          const Conv2dPlan plan = Conv2dPlan::create(l.p, l.in, algo, Conv2dWeights::packed_once);
          const std::size_t u = std::size_t(36) * std::size_t(g.ic * g.oc);
          if (algo == Conv2dAlgorithm::winograd && g.padding_mode == PaddingMode::zeros) {
            EXPECT_EQ(plan.packed_weights_size(), 2 * u) << what;
          } else if (algo == Conv2dAlgorithm::winograd) {
            const Conv2dPlan ig = Conv2dPlan::create(l.p, l.in, Conv2dAlgorithm::implicit_gemm);
            EXPECT_EQ(plan.packed_weights_size(), u + ig.packed_weights_size()) << what;
          }
          const testops::AllocationCounter count{g_counting, g_allocations};
          testops::expect_packed_matches_per_call(plan, pr, what, CONVKIT_TEST_COUNTS_ALLOCATIONS ? &count : nullptr);
        }
      }
    }
  }
}

// Prints how close the sweep came to the bound (for docs/numerics.md) when the binary ends: not a test.
class ReportWorstRatio : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_worst_ratio > 0)
      std::printf("worst |winograd - ref| / allowance over this run: %.4f; worst |winograd - ref| / S: %.2f u\n",
                  g_worst_ratio, g_worst_over_s);
  }
};
const auto* const kReport = ::testing::AddGlobalTestEnvironment(new ReportWorstRatio);

}  // namespace
}  // namespace convkit
