// The run-time settings of the fast engine (convkit/runtime.hpp) and the plan's contract: the ISA override by API
// and environment, the thread count, the algorithm choice and its refusals, execution without allocation, and
// concurrent execution of one plan.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
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

using testops::Expected;
using testops::Problem;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

using test_support::error_message;

Conv2dParams conv3x3(int filters) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {3, 3};
  p.padding = Padding::same();
  return p;
}

class Runtime : public ::testing::Test {
 protected:
  void TearDown() override {
    reset_isa();
    set_num_threads(0);
  }
};

TEST_F(Runtime, IsaNamesRoundTrip) {
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) EXPECT_EQ(parse_isa(to_string(isa)), isa);
  const std::string e = error_message([] { parse_isa("sse9"); });
  EXPECT_TRUE(contains(e, "sse9") && contains(e, "avx512, avx2 or generic")) << e;
}

TEST_F(Runtime, BestIsaIsSupportedAndGenericAlwaysIs) {
  EXPECT_TRUE(cpu_supports(Isa::generic));
  EXPECT_TRUE(cpu_supports(best_isa()));
  // The ISAs are ordered: supporting AVX-512 here implies AVX2.
  if (cpu_supports(Isa::avx512)) EXPECT_TRUE(cpu_supports(Isa::avx2));
  EXPECT_FALSE(cpu_description().empty());
}

TEST_F(Runtime, SetIsaSelectsTheKernelsOfPlans) {
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (!cpu_supports(isa)) {
      const std::string e = error_message([&] { set_isa(isa); });
      EXPECT_TRUE(contains(e, "does not support " + to_string(isa))) << e;
      continue;
    }
    set_isa(isa);
    EXPECT_EQ(active_isa(), isa);
    const Conv2dPlan plan = Conv2dPlan::create(conv3x3(8), {1, 6, 6, 16});  // 16 channels: not kernel_rows
    EXPECT_EQ(plan.algorithm_id(), Conv2dAlgorithm::implicit_gemm);
    EXPECT_TRUE(contains(plan.explain(), "ISA " + to_string(isa))) << plan.explain();
    EXPECT_TRUE(contains(plan.explain(), "__" + to_string(isa))) << plan.explain();  // the kernel names
  }
  reset_isa();
  // Back to the environment's choice, or the best one.
  const char* env = std::getenv("CONVKIT_ISA");
  if (!env || !*env) EXPECT_EQ(active_isa(), best_isa());
}

// Registered a second time per ISA with CONVKIT_ISA set (tests/ops/CMakeLists.txt), and with bad values.
TEST_F(Runtime, EnvironmentIsa) {
  reset_isa();
  const char* env = std::getenv("CONVKIT_ISA");
  if (!env || !*env) {
    EXPECT_EQ(active_isa(), best_isa());
    return;
  }
  const std::string v = env;
  if (v != "avx512" && v != "avx2" && v != "generic") {
    const std::string e = error_message([] { active_isa(); });
    EXPECT_TRUE(contains(e, "CONVKIT_ISA") && contains(e, v) && contains(e, "expected")) << e;
    // Plans refuse to guess as well.
    const std::string e2 = error_message([] { Conv2dPlan::create(conv3x3(4), {1, 4, 4, 2}); });
    EXPECT_TRUE(contains(e2, "CONVKIT_ISA")) << e2;
    // The API still overrides the environment.
    set_isa(Isa::generic);
    EXPECT_EQ(active_isa(), Isa::generic);
    return;
  }
  const Isa isa = parse_isa(v);
  if (!cpu_supports(isa)) {
    const std::string e = error_message([] { active_isa(); });
    EXPECT_TRUE(contains(e, "CONVKIT_ISA") && contains(e, "does not support")) << e;
    return;
  }
  EXPECT_EQ(active_isa(), isa);
  const Conv2dPlan plan = Conv2dPlan::create(conv3x3(4), {1, 4, 4, 2});
  EXPECT_TRUE(contains(plan.explain(), "ISA " + v)) << plan.explain();
}

TEST_F(Runtime, ThreadCountSetter) {
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  EXPECT_TRUE(contains(Conv2dPlan::create(conv3x3(4), {1, 4, 4, 2}).explain(), "3 thread(s)"));
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  const std::string e = error_message([] { set_num_threads(-2); });
  EXPECT_TRUE(contains(e, "-2")) << e;
  EXPECT_EQ(num_threads(), 1);  // unchanged by the refused call
  set_num_threads(0);
  EXPECT_GE(num_threads(), 1);
}

// Registered again with CONVKIT_NUM_THREADS=3 and =abc.
TEST_F(Runtime, EnvironmentThreads) {
  const char* env = std::getenv("CONVKIT_NUM_THREADS");
  if (!env || !*env) {
    EXPECT_GE(num_threads(), 1);
    return;
  }
  const std::string v = env;
  if (v == "3") {
    EXPECT_EQ(num_threads(), 3);
    set_num_threads(2);  // the API wins
    EXPECT_EQ(num_threads(), 2);
  } else {
    const std::string e = error_message([] { num_threads(); });
    EXPECT_TRUE(contains(e, "CONVKIT_NUM_THREADS") && contains(e, v)) << e;
  }
}

// More threads than work items, fewer, one: every split gives the reference's results.
TEST_F(Runtime, ResultsDoNotDependOnTheThreadCount) {
  struct Shape_ {
    Conv2dParams p;
    Shape in;
  };
  Conv2dParams dw = conv3x3(6);
  dw.groups = 6;
  Conv2dParams pw;
  pw.filters = 5;
  pw.kernel_size = {1, 1};
  const Shape_ shapes[] = {{conv3x3(9), {2, 5, 6, 3}}, {dw, {1, 5, 4, 6}}, {pw, {3, 2, 3, 4}}};
  for (const Shape_& s : shapes) {
    const Problem pr(s.p, s.in, 5u);
    const Expected e(pr);
    for (int t : {1, 2, 3, 9}) {
      set_num_threads(t);
      const Conv2dPlan plan = Conv2dPlan::create(s.p, s.in);
      testops::check_plan(plan, pr, e, testops::describe(s.p, s.in) + " threads " + std::to_string(t));
    }
  }
}

TEST_F(Runtime, ForcedAlgorithmsAreRefusedWithTheirReason) {
  const Shape in = {1, 6, 6, 4};
  std::string e = error_message([&] { Conv2dPlan::create(conv3x3(4), in, Conv2dAlgorithm::gemm_1x1); });
  EXPECT_TRUE(contains(e, "'gemm_1x1' cannot run") && contains(e, "needs a 1x1 kernel, got 3x3")) << e;
  e = error_message([&] { Conv2dPlan::create(conv3x3(4), in, Conv2dAlgorithm::depthwise); });
  EXPECT_TRUE(contains(e, "'depthwise' cannot run") && contains(e, "groups == input channels")) << e;
  Conv2dParams strided;
  strided.filters = 4;
  strided.kernel_size = {1, 1};
  strided.strides = {2, 2};
  strided.padding = Padding::symmetric(1, 1);  // gemm_1x1 takes strided 1x1, but not padded
  e = error_message([&] { Conv2dPlan::create(strided, in, Conv2dAlgorithm::gemm_1x1); });
  EXPECT_TRUE(contains(e, "needs no padding")) << e;
  e = error_message([] { parse_conv2d_algorithm("fft"); });
  EXPECT_TRUE(contains(e, "'fft'") && contains(e, "winograd") && contains(e, "implicit_gemm")) << e;
  // The reference and implicit_gemm take anything valid.
  EXPECT_EQ(Conv2dPlan::create(conv3x3(4), in, Conv2dAlgorithm::reference).algorithm(), "reference");
  EXPECT_EQ(Conv2dPlan::create(strided, in, Conv2dAlgorithm::implicit_gemm).algorithm(), "implicit_gemm");
  // An invalid configuration is still the geometry's error, whatever the algorithm.
  e = error_message([&] { Conv2dPlan::create(conv3x3(5), in, Conv2dAlgorithm::implicit_gemm); });
  EXPECT_EQ(e, "(no error)");  // filters need not divide anything with groups = 1
  Conv2dParams bad = conv3x3(5);
  bad.groups = 2;
  e = error_message([&] { Conv2dPlan::create(bad, in, Conv2dAlgorithm::implicit_gemm); });
  EXPECT_TRUE(contains(e, "divisible by groups")) << e;
}

TEST_F(Runtime, ExplainListsEveryAlgorithmAndTheChoice) {
  const Conv2dPlan plan = Conv2dPlan::create(conv3x3(4), {1, 6, 6, 16});
  const std::string s = plan.explain();
  EXPECT_TRUE(contains(s, "gemm_1x1: not chosen: needs a 1x1 kernel")) << s;
  EXPECT_TRUE(contains(s, "depthwise: not chosen: needs groups == input channels")) << s;
  EXPECT_TRUE(contains(s, "kernel_rows: supported, not chosen: it pays only with <= 8 input channels")) << s;
  EXPECT_TRUE(contains(s, "implicit_gemm: chosen")) << s;
  EXPECT_TRUE(contains(s, "reference: not tried")) << s;
  Conv2dParams pw;
  pw.filters = 4;
  pw.kernel_size = {1, 1};
  EXPECT_EQ(Conv2dPlan::create(pw, {1, 6, 6, 4}).algorithm(), "gemm_1x1");
  Conv2dParams dw = conv3x3(8);
  dw.groups = 4;
  EXPECT_EQ(Conv2dPlan::create(dw, {1, 6, 6, 4}).algorithm(), "depthwise");
}

// The workspace overloads allocate nothing (the plan was built beforehand); the plain overloads may.
TEST_F(Runtime, ExecutionWithAWorkspaceDoesNotAllocate) {
  set_num_threads(2);
  Conv2dParams dw = conv3x3(8);
  dw.groups = 4;
  dw.padding_mode = PaddingMode::reflect;  // the padded-grid path of backward data too
  Conv2dParams pw;
  pw.filters = 40;
  pw.kernel_size = {1, 1};
  pw.activation = Activation::tanh;
  Conv2dParams gr = conv3x3(6);
  gr.padding_mode = PaddingMode::circular;
  gr.groups = 2;
  const std::pair<Conv2dParams, Shape> cases[] = {{dw, {2, 6, 6, 4}}, {pw, {2, 6, 6, 4}}, {gr, {2, 6, 7, 4}}};
  for (const auto& [p, in] : cases) {
    const Problem pr(p, in, 3u);
    const Conv2dPlan plan = Conv2dPlan::create(p, in);
    std::vector<unsigned char> ws(plan.workspace_size());
    std::vector<float> y(pr.dz.size()), dx(pr.x.size()), dwt(pr.w.size()), db(pr.b.size());
    // Once untimed, so that OpenMP's thread pool exists before counting.
    plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), ws.data());
    g_allocations = 0;
    g_counting = true;
    plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data(), ws.data());
    plan.backward_data(pr.dz.data(), pr.w.data(), dx.data(), ws.data());
    plan.backward_weights(pr.x.data(), pr.dz.data(), dwt.data(), db.data(), ws.data());
    g_counting = false;
    if (CONVKIT_TEST_COUNTS_ALLOCATIONS) EXPECT_EQ(g_allocations.load(), 0) << plan.algorithm();
    // The counter does count: the allocating overload is seen.
    g_allocations = 0;
    g_counting = true;
    plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), y.data());
    g_counting = false;
    if (CONVKIT_TEST_COUNTS_ALLOCATIONS) EXPECT_GT(g_allocations.load(), 0);
  }
}

// One plan, executed from several threads at once, each with its own workspace.
TEST_F(Runtime, OnePlanRunsConcurrently) {
  const Conv2dParams p = conv3x3(20);
  const Shape in = {2, 7, 8, 6};
  const Problem pr(p, in, 11u);
  const Expected e(pr);
  const Conv2dPlan plan = Conv2dPlan::create(p, in);
  std::vector<std::thread> threads;
  std::vector<std::vector<float>> ys(4, std::vector<float>(pr.dz.size()));
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<unsigned char> ws(plan.workspace_size());
      for (int rep = 0; rep < 5; ++rep) plan.forward(pr.x.data(), pr.w.data(), pr.b.data(), ys[t].data(), ws.data());
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < 4; ++t) {
    std::string report;
    EXPECT_EQ(testops::count_mismatches(ys[t], e.y, e.y_s, report), 0) << "thread " << t << "\n" << report;
  }
}

// The tensor wrappers run the fast plan: compare them with the reference too (activation and its gradient
// included: conv2d_backward applies activation_backward before the plan).
TEST_F(Runtime, TensorWrappersUseTheFastPlan) {
  Conv2dParams p = conv3x3(7);
  p.activation = Activation::relu;
  const Shape in = {2, 5, 6, 3};
  const Problem pr(p, in, 21u);
  const Expected e(pr);
  Tensor x(in), w(pr.g.kernel_shape()), b({7});
  std::copy(pr.x.begin(), pr.x.end(), x.data());
  std::copy(pr.w.begin(), pr.w.end(), w.data());
  std::copy(pr.b.begin(), pr.b.end(), b.data());
  const Tensor y = conv2d_forward(p, x, w, &b);
  std::string report;
  EXPECT_EQ(testops::count_mismatches(std::vector<float>(y.values().begin(), y.values().end()), e.y, e.y_s, report), 0)
      << report;
}

}  // namespace
}  // namespace convkit
