// The weight-gradient reduction shared by implicit_gemm, gemm_1x1 and winograd (src/ops/conv2d_wgrad.cpp) against
// the reference on every ISA of this CPU, 1 to 3 threads: input channels per group around the even split of the
// channel tiles (1, MR - 1 .. 2 MR + 1, 32, 64), output pixels per tap around the reduction chunk (the chunk edge
// and several chunks per image; narrower chunks or grouped output blocks for wide layers; several small images per
// unit; per-thread partial sums: few items, many pixels), padded taps, strides, dilation, groups and the non-zero
// padding modes.
#include <gtest/gtest.h>

#include <exception>
#include <string>
#include <vector>

#include "config/cpu.hpp"
#include "config/kernels.hpp"
#include "convkit/runtime.hpp"
#include "ops/conv2d_algorithms.hpp"
#include "ops/conv2d_threads.hpp"
#include "ops/conv_check.hpp"

namespace convkit {
namespace {

using testops::Expected;
using testops::Problem;

const bool kEveryThreadRuns = (ops::g_min_ns_per_thread = 0.0, true);

using testops::Case;

Conv2dParams conv(int filters, int k, int s = 1, int pad = 0, int dil = 1, int groups = 1) {
  Conv2dParams p;
  p.filters = filters;
  p.kernel_size = {k, k};
  p.strides = {s, s};
  p.padding = Padding::symmetric(pad, pad);
  p.dilation_rate = {dil, dil};
  p.groups = groups;
  return p;
}

std::vector<Case> cases(const config::KernelTable& k) {
  const int mr = k.mr, nr = k.nr;
  std::vector<Case> c;
  // Channel tiles: every IC from 1 to 2 MR + 1 splits differently (one tile, even tiles, one row over).
  for (int ic : {1, mr - 1, mr, mr + 1, 2 * mr - 1, 2 * mr + 1, 32, 64})
    c.push_back({"ic" + std::to_string(ic), conv(nr + 3, 3, 1, 1), {1, 5, 6, ic}});
  // Groups: the tiles split each group's channels.
  c.push_back({"groups2", conv(2 * nr, 3, 1, 1, 1, 2), {2, 5, 4, 2 * (mr + 3)}});
  c.push_back({"groups3_1x1", conv(9, 1, 1, 0, 1, 3), {1, 7, 5, 3 * (2 * mr + 1)}});
  // Pixels per tap around the chunk (512): 512 exactly (1x1 on 16 x 32), 513, several chunks and images.
  c.push_back({"chunk_exact", conv(nr, 1), {1, 16, 32, mr + 2}});
  c.push_back({"chunk_plus1", conv(nr - 1, 1), {2, 19, 27, mr + 1}});
  c.push_back({"chunks_3x3", conv(nr + 1, 3, 1, 1), {2, 35, 33, 2 * mr + 3}});
  // Over 256 channels the chunk narrows (to 163 pixels at 400 output channels, 218 at 300): several narrow chunks
  // per image, the last one partial; past 512 output channels with 512 pixels or more per tap, the output blocks go
  // in groups (the last one partial: 19 blocks of 32 in groups of 4), over 512-pixel chunks.
  c.push_back({"wide_chunks", conv(400, 1), {2, 19, 27, mr + 1}});
  c.push_back({"wide_chunks_3x3", conv(300, 3, 1, 1), {1, 23, 24, 20}});
  c.push_back({"wide_groups", conv(600, 1), {2, 19, 27, mr + 1}});
  c.push_back({"wide_groups_3x3", conv(530, 3, 1, 1), {1, 23, 24, 5}});
  // Few items and many pixels: the threads split the pixels into partial sums.
  c.push_back({"split_pixels", conv(3, 1), {1, 40, 41, 5}});
  c.push_back({"split_pixels_3x3", conv(4, 3, 1, 1), {2, 33, 20, 3}});
  // Many items, but x and dz many times dw: at 2 threads the threads split the images too (8 and 10 images).
  c.push_back({"split_streamed_1x1", conv(nr + 3, 1), {8, 6, 7, 2 * mr + 1}});
  c.push_back({"split_streamed_3x3", conv(nr, 3, 1, 1), {10, 16, 16, 2 * mr + 1}});
  // Padded taps (rows crossing the padding, runs of one pixel), strides, dilation, asymmetric padding.
  c.push_back({"pad2_k5", conv(nr, 5, 1, 2), {1, 3, 4, mr + 5}});
  c.push_back({"stride2", conv(nr + 5, 3, 2, 1), {2, 9, 11, mr + 3}});
  c.push_back({"stride3_dil2", conv(7, 3, 3, 2, 2), {1, 13, 12, 2 * mr}});
  c.push_back({"dil3", conv(nr, 3, 1, 3, 3), {1, 8, 7, 11}});
  Conv2dParams asym = conv(nr + 2, 3);
  asym.padding = Padding::explicit_pad(0, 2, 1, 0);
  c.push_back({"asym_pad", asym, {1, 6, 7, mr + 4}});
  Conv2dParams refl = conv(5, 3, 1, 1);
  refl.padding_mode = PaddingMode::reflect;
  c.push_back({"reflect", refl, {1, 6, 5, mr + 1}});
  return c;
}

// Small images reduced several at a time where dw is large (here forced by a zero threshold): 169 pixels, 3 images a
// unit, the last unit 2 of the 5; narrowed chunks inside a unit (3 images of 144 pixels x 600 output channels); a
// strided 1x1 (49 pixels an image, all 4 in one unit); and with split pixels, which keeps one image a unit.
std::vector<Case> image_group_cases(const config::KernelTable& k) {
  const int mr = k.mr, nr = k.nr;
  return {{"image_groups", conv(nr + 1, 3, 1, 1), {5, 13, 13, mr + 2}},
          {"image_groups_wide", conv(600, 3, 1, 1), {3, 12, 12, 5}},
          {"image_groups_strided_1x1", conv(nr + 3, 1, 2), {4, 14, 14, mr + 1}},
          {"image_groups_split_pixels", conv(3, 1), {3, 20, 21, 5}}};
}

class Wgrad : public ::testing::Test {
 protected:
  void TearDown() override {
    reset_isa();
    set_num_threads(0);
    ops::g_wgrad_image_group_dw_bytes = int64_t{1} << 20;
    ops::g_l2_bytes = 0;
  }
  static void check_all(std::vector<Case> (*make)(const config::KernelTable&));
};

TEST_F(Wgrad, MatchesTheReferenceOnEveryIsaAndAlgorithm) { check_all(cases); }

TEST_F(Wgrad, ImageGroupsMatchTheReference) {
  ops::g_wgrad_image_group_dw_bytes = 0;
  check_all(image_group_cases);
}

// The reduction chunk follows the L2 the plan is made for (512 output pixels at 1 MiB, in proportion below it, 128
// at least, 512 at most; the wide layers' dz rows within a quarter of it), as explain() says; and the cases above,
// chunk edges included, match the reference with the chunks of a 512 KiB L2.
TEST_F(Wgrad, ChunkFollowsTheL2) {
  const auto chunk = [](const Conv2dParams& p, const Shape& in, int64_t l2) {
    ops::g_l2_bytes = l2;
    const std::string e = Conv2dPlan::create(p, in, Conv2dAlgorithm::gemm_1x1).explain();
    EXPECT_NE(e.find("L2 " + std::to_string(l2 / 1024) + " KiB"), std::string::npos) << e;
    const std::size_t at = e.find("chunks of ");
    return at == std::string::npos ? -1 : std::stoi(e.substr(at + 10));
  };
  // Without a setting, the plan takes the L2 the CPU reports (1 MiB where it reports none).
  const int64_t cpu_l2 = config::cpu_features().l2_bytes > 0 ? config::cpu_features().l2_bytes : int64_t{1} << 20;
  const std::string e = Conv2dPlan::create(conv(8, 1), {1, 4, 4, 8}).explain();
  EXPECT_NE(e.find("L2 " + std::to_string(cpu_l2 / 1024) + " KiB,"), std::string::npos) << e;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    const Conv2dParams res3b = conv(128, 1);  // 512 -> 128 channels, 28x28 at mb 32: a long reduction
    EXPECT_EQ(chunk(res3b, {32, 28, 28, 512}, int64_t{1} << 20), 512) << to_string(isa);
    EXPECT_EQ(chunk(res3b, {32, 28, 28, 512}, int64_t{2} << 20), 512) << to_string(isa);
    EXPECT_EQ(chunk(res3b, {32, 28, 28, 512}, int64_t{512} << 10), 256) << to_string(isa);
    EXPECT_EQ(chunk(res3b, {32, 28, 28, 512}, int64_t{384} << 10), 192) << to_string(isa);
    EXPECT_EQ(chunk(res3b, {32, 28, 28, 512}, int64_t{64} << 10), 128) << to_string(isa);
    // 512 output channels, dz rows of 2 KiB kept to a quarter of the L2: the chunk narrowed to 128 pixels with 1 MiB;
    // with 512 KiB not below 128 pixels, so the output blocks go in groups over 256-pixel chunks instead.
    EXPECT_EQ(chunk(conv(512, 1), {32, 14, 14, 512}, int64_t{1} << 20), 128) << to_string(isa);
    EXPECT_EQ(chunk(conv(512, 1), {32, 14, 14, 512}, int64_t{512} << 10), 256) << to_string(isa);
  }
  ops::g_l2_bytes = int64_t{512} << 10;
  check_all(cases);
}

// Where the threads split the images: x and dz streamed at 6 partial dw's a thread or more, dw within L2, 4 units a
// thread shared out evenly (ResNet-50 res2a_branch1 at mb 32 and 8, not at mb 1: 7 chunks of one image; not on one
// thread; not where dw passes 1 MiB: res4a_branch1; not over 9 images), as explain() says; and the two new cases
// above take it at 2 threads.
TEST_F(Wgrad, ThreadsSplitTheImagesWhereXAndDzStream) {
  const auto splits = [](const Conv2dParams& p, const Shape& in, int threads) {
    set_num_threads(threads);
    const Conv2dPlan plan = Conv2dPlan::create(p, in);
    return plan.explain().find("output pixels, the threads splitting the output pixels)") != std::string::npos;
  };
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    const config::KernelTable& k = config::kernels(isa);
    EXPECT_TRUE(splits(conv(256, 1), {32, 56, 56, 64}, 2)) << to_string(isa);
    EXPECT_TRUE(splits(conv(256, 1), {8, 56, 56, 64}, 2)) << to_string(isa);
    EXPECT_FALSE(splits(conv(256, 1), {1, 56, 56, 64}, 2)) << to_string(isa);
    EXPECT_FALSE(splits(conv(256, 1), {32, 56, 56, 64}, 1)) << to_string(isa);
    EXPECT_FALSE(splits(conv(1024, 1, 2), {32, 28, 28, 512}, 2)) << to_string(isa);
    EXPECT_TRUE(splits(conv(k.nr + 3, 1), {8, 6, 7, 2 * k.mr + 1}, 2)) << to_string(isa);
    EXPECT_TRUE(splits(conv(k.nr, 3, 1, 1), {10, 16, 16, 2 * k.mr + 1}, 2)) << to_string(isa);
    EXPECT_FALSE(splits(conv(k.nr, 3, 1, 1), {9, 16, 16, 2 * k.mr + 1}, 2)) << to_string(isa);
  }
}

void Wgrad::check_all(std::vector<Case> (*make)(const config::KernelTable&)) {
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (!cpu_supports(isa)) continue;
    set_isa(isa);
    for (const Case& c : make(config::kernels(isa))) {
      const Problem pr(c.p, c.input, 3u);
      const Expected e(pr);
      int ran = 0;
      for (Conv2dAlgorithm algo :
           {Conv2dAlgorithm::implicit_gemm, Conv2dAlgorithm::gemm_1x1, Conv2dAlgorithm::winograd}) {
        for (int threads : {1, 2, 3}) {
          set_num_threads(threads);
          std::vector<Conv2dPlan> plan;
          try {
            plan.push_back(Conv2dPlan::create(c.p, c.input, algo));
          } catch (const std::exception&) {
            break;  // this algorithm does not take the shape
          }
          ++ran;
          testops::check_plan(plan[0], pr, e,
                              to_string(isa) + " " + c.name + " " + plan[0].algorithm() + " " +
                                  testops::describe(c.p, c.input) + " threads " + std::to_string(threads));
        }
      }
      EXPECT_GT(ran, 0) << c.name << ": no algorithm took it";
    }
  }
}

}  // namespace
}  // namespace convkit
