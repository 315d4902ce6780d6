// convkit::bench — benchdnn descriptors (parse, validate, map to Conv2dParams) and the machine measurements.
//
// Expected values are worked out by hand here (or taken from the networks' well-known layer counts), never from
// the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/bench.hpp"
#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/runtime.hpp"
#include "expect_error.hpp"

namespace convkit::bench {
namespace {

template <typename Fn, typename... Pieces>
void expect_error(Fn&& fn, const Pieces&... pieces) {
  test_support::expect_error(fn, std::vector<std::string>{std::string(pieces)...});
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// The value of `key` written in a descriptor's text (before the name), or -1. Keys follow a digit or '_' (or start
// the text), which is how the shapes files are written.
int64_t written(const std::string& line, const std::string& key) {
  const std::string body = line.substr(0, line.find("n\""));
  std::smatch m;
  if (!std::regex_search(body, m, std::regex("(^|[0-9_])" + key + "([0-9]+)"))) return -1;
  return std::stoll(m[2].str());
}

struct ShapesFile {
  const char* file;
  std::size_t lines;  // descriptor lines
  int64_t layers;     // sum of the *N counts: the network's convolution layers
};

class ShapesFiles : public ::testing::TestWithParam<ShapesFile> {};

// Every line of every shapes file parses; oh / ow are the values written in the file (or, where absent, PyTorch's
// symmetric-padding formula, which these networks use), convkit's geometry agrees, and the canonical descriptor
// parses back to the same problem.
TEST_P(ShapesFiles, EveryLineParsesAndMatchesConvkitGeometry) {
  const ShapesFile f = GetParam();
  const std::string text = read_text(std::string(CONVKIT_SHAPES_DIR) + "/" + f.file);
  const std::vector<ConvProblem> problems = parse_descriptor_list(text);
  ASSERT_EQ(problems.size(), f.lines);

  std::istringstream lines(text);
  std::string line;
  std::size_t i = 0;
  int64_t layers = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    ASSERT_LT(i, problems.size());
    const ConvProblem& p = problems[i++];
    SCOPED_TRACE(line);
    EXPECT_EQ(p, parse_descriptor(line));
    EXPECT_FALSE(p.name.empty());
    EXPECT_EQ(p.name.find('*'), std::string::npos);
    layers += p.repeat;
    const int64_t keh = (p.kh - 1) * (p.dh + 1) + 1, kew = (p.kw - 1) * (p.dw + 1) + 1;
    const int64_t sym_oh = (p.ih + 2 * p.ph - keh) / p.sh + 1, sym_ow = (p.iw + 2 * p.pw - kew) / p.sw + 1;
    EXPECT_EQ(p.oh, written(line, "oh") >= 0 ? written(line, "oh") : sym_oh);
    EXPECT_EQ(p.ow, written(line, "ow") >= 0 ? written(line, "ow") : sym_ow);
    EXPECT_EQ(p.oh, sym_oh);
    EXPECT_EQ(p.ow, sym_ow);
    for (const char* key : {"ic", "oc", "ih", "kh", "mb", "g"}) {
      const int64_t v = written(line, key);
      if (v < 0) continue;
      const int64_t got = std::string(key) == "ic"   ? p.ic
                          : std::string(key) == "oc" ? p.oc
                          : std::string(key) == "ih" ? p.ih
                          : std::string(key) == "kh" ? p.kh
                          : std::string(key) == "mb" ? p.mb
                                                     : p.g;
      EXPECT_EQ(got, v) << key;
    }
    const Conv2dGeometry geom = conv2d_geometry(to_conv2d_params(p), input_shape(p));
    EXPECT_EQ(geom.oh, p.oh);
    EXPECT_EQ(geom.ow, p.ow);
    EXPECT_EQ(geom.oc, p.oc);
    EXPECT_EQ(geom.groups, p.g);
    EXPECT_DOUBLE_EQ(geom.flops(), flops(p));
    EXPECT_EQ(parse_descriptor(to_descriptor(p)), p);
  }
  EXPECT_EQ(i, problems.size());
  EXPECT_EQ(layers, f.layers);
}

// Layer counts: ResNet-50 has 53 convolutions (stem, 16 bottlenecks x 3, 4 projections), MobileNet v1 27 (stem and
// 13 depthwise/pointwise pairs), VGG-19 16.
INSTANTIATE_TEST_SUITE_P(Bench, ShapesFiles,
                         ::testing::Values(ShapesFile{"resnet50.txt", 20, 53}, ShapesFile{"mobilenet_v1.txt", 19, 27},
                                           ShapesFile{"vgg19.txt", 9, 16}, ShapesFile{"suite.txt", 13, 13},
                                           ShapesFile{"fashion_mnist_cnn.txt", 2, 2}),
                         [](const auto& info) {
                           std::string n = info.param.file;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(Descriptor, ResNetStemByHand) {
  const ConvProblem p = parse_descriptor("g1mb1ic3ih224iw224oc64oh112ow112kh7kw7sh2sw2ph3pw3n\"resnet_50:conv1\"");
  EXPECT_EQ(p.name, "resnet_50:conv1");
  EXPECT_EQ(p.repeat, 1);
  EXPECT_EQ(p.g, 1);
  EXPECT_EQ(p.mb, 1);
  EXPECT_EQ(p.ic, 3);
  EXPECT_EQ(p.oc, 64);
  EXPECT_EQ(p.ih, 224);
  EXPECT_EQ(p.iw, 224);
  EXPECT_EQ(p.oh, 112);
  EXPECT_EQ(p.ow, 112);
  EXPECT_EQ(p.kh, 7);
  EXPECT_EQ(p.sw, 2);
  EXPECT_EQ(p.pw, 3);
  // (112 - 1) * 2 + 7 = 229 rows are read: 3 above the image, 224 of it, 2 below.
  EXPECT_EQ(p.pad_bottom(), 2);
  EXPECT_EQ(p.pad_right(), 2);
  const Conv2dParams c = to_conv2d_params(p);
  EXPECT_EQ(c.padding, Padding::explicit_pad(3, 2, 3, 2));
  EXPECT_EQ(c.filters, 64);
  EXPECT_EQ(c.kernel_size, (Size2{7, 7}));
  EXPECT_EQ(c.strides, (Size2{2, 2}));
  EXPECT_EQ(c.dilation_rate, (Size2{1, 1}));
  EXPECT_EQ(c.groups, 1);
  EXPECT_EQ(input_shape(p), (Shape{1, 224, 224, 3}));
  // 2 * 112 * 112 * 64 * 3 * 7 * 7 = 2 * 12544 * 64 * 147 = 236027904.
  EXPECT_DOUBLE_EQ(flops(p), 236027904.0);
  EXPECT_EQ(to_descriptor(p), "mb1ic3ih224oc64oh112kh7sh2ph3n\"resnet_50:conv1\"");
}

TEST(Descriptor, DefaultsAndDeduction) {
  // mb 2, g 1, stride 1, no padding: oh = ow = 5 - 3 + 1 = 3.
  const ConvProblem p = parse_descriptor("ic3ih5oc2kh3");
  EXPECT_EQ(p.mb, 2);
  EXPECT_EQ(p.g, 1);
  EXPECT_EQ(p.iw, 5);
  EXPECT_EQ(p.kw, 3);
  EXPECT_EQ(p.oh, 3);
  EXPECT_EQ(p.ow, 3);
  EXPECT_TRUE(p.name.empty());
  EXPECT_EQ(p.repeat, 1);
  // 2 * 2 * 3 * 3 * 2 * 3 * 3 * 3 = 1944.
  EXPECT_DOUBLE_EQ(flops(p), 1944.0);

  // Per-axis values: oh = (10 - 3) / 2 + 1 = 4, ow = (8 - 2) / 3 + 1 = 3.
  const ConvProblem a = parse_descriptor("mb1ic1ih10iw8oc1kh3kw2sh2sw3");
  EXPECT_EQ(a.oh, 4);
  EXPECT_EQ(a.ow, 3);
  EXPECT_EQ(a.pad_bottom(), 0);  // rows 9 of the input are never reached: (4 - 1) * 2 + 3 = 9 < 10
  EXPECT_EQ(a.pad_right(), 0);   // (3 - 1) * 3 + 2 = 8

  // Padding given for the top only defaults the left one: ph2 -> pw2; oh = (6 + 4 - 3) / 1 + 1 = 8.
  const ConvProblem q = parse_descriptor("ic1ih6iw7oc1kh3ph2");
  EXPECT_EQ(q.pw, 2);
  EXPECT_EQ(q.oh, 8);
  EXPECT_EQ(q.ow, 9);
  EXPECT_EQ(q.pad_bottom(), 2);
}

TEST(Descriptor, DilationCountsFromZero) {
  // dh1: a gap of one pixel, Keras dilation_rate 2; dilated kernel (3 - 1) * 2 + 1 = 5, oh = 10 - 5 + 1 = 6.
  const ConvProblem p = parse_descriptor("ic1ih10oc1kh3dh1");
  EXPECT_EQ(p.dw, 1);
  EXPECT_EQ(p.oh, 6);
  EXPECT_EQ(p.ow, 6);
  EXPECT_EQ(to_conv2d_params(p).dilation_rate, (Size2{2, 2}));
  // dw0 given explicitly: the width is not dilated, ow = 10 - 3 + 1 = 8.
  const ConvProblem q = parse_descriptor("ic1ih10oc1kh3dh1dw0");
  EXPECT_EQ(q.ow, 8);
  EXPECT_EQ(to_conv2d_params(q).dilation_rate, (Size2{2, 1}));
  // dh0 is no dilation at all.
  EXPECT_EQ(to_conv2d_params(parse_descriptor("ic1ih10oc1kh3dh0")).dilation_rate, (Size2{1, 1}));
}

TEST(Descriptor, OwCopiesOhWhenTheWidthCopiesTheHeight) {
  // No w key at all: the width axis is the height axis, ow = oh = 6 (benchdnn), with a column of padding on the
  // right as on the bottom (TF "same" for kernel 2).
  const ConvProblem p = parse_descriptor("ic4ih6oc8oh6kh2");
  EXPECT_EQ(p.ow, 6);
  EXPECT_EQ(p.pad_right(), 1);
  // A different width: ow comes from the width's own values, (8 - 2) / 1 + 1 = 7, with no padding after.
  const ConvProblem q = parse_descriptor("ic4ih6iw8oc8oh6kh2");
  EXPECT_EQ(q.ow, 7);
  EXPECT_EQ(q.pad_right(), 0);
  // The canonical form writes ow whenever the width differs from the height, even with ow = oh, since parsing it
  // back would deduce ow from the width values: here ow 112 takes 5 columns of right padding, pw0 alone gives 109.
  const ConvProblem r = parse_descriptor("mb1ic9ih224oc64oh112ow112kh7sh2ph3pw0");
  EXPECT_EQ(r.pad_right(), 5);  // (112 - 1) * 2 + 7 - 224 - 0
  EXPECT_EQ(to_descriptor(r), "mb1ic9ih224oc64oh112ow112kh7sh2ph3pw0");
  EXPECT_EQ(parse_descriptor(to_descriptor(r)), r);
}

TEST(Descriptor, BottomPaddingMakesOhComeOut) {
  // TensorFlow "same" for an even kernel: 4 rows, kernel 2, stride 1 -> total pad 1, none above, 1 below.
  const ConvProblem p = parse_descriptor("ic1ih4oc1kh2oh4");
  EXPECT_EQ(p.ph, 0);
  EXPECT_EQ(p.pad_bottom(), 1);
  EXPECT_EQ(to_conv2d_params(p).padding, Padding::explicit_pad(0, 1, 0, 1));
  // Symmetric top padding but a smaller oh: 1 above, none below: (4 + 1 - 3) / 1 + 1 = 3.
  const ConvProblem q = parse_descriptor("ic1ih4oc1kh3ph1oh3ow4");
  EXPECT_EQ(q.pad_bottom(), 0);
  EXPECT_EQ(q.pad_right(), 1);
  const Conv2dGeometry g = conv2d_geometry(to_conv2d_params(q), input_shape(q));
  EXPECT_EQ(g.oh, 3);
  EXPECT_EQ(g.ow, 4);
  EXPECT_EQ(g.pad_top, 1);
  EXPECT_EQ(g.pad_bottom, 0);
  EXPECT_EQ(g.pad_right, 1);
}

TEST(Descriptor, GroupsAndDepthwise) {
  // MobileNet's conv2_1/dw: 2 * 112 * 112 * 32 * 1 * 3 * 3 = 7225344 FLOPs per image.
  const ConvProblem p = parse_descriptor("g32mb1ic32ih112oc32oh112kh3ph1n\"mobilenet_v1:conv2_1/dw\"");
  EXPECT_EQ(p.g, 32);
  EXPECT_DOUBLE_EQ(flops(p), 7225344.0);
  EXPECT_EQ(to_conv2d_params(p).groups, 32);
  EXPECT_EQ(conv2d_geometry(to_conv2d_params(p), input_shape(p)).kernel_shape(), (Shape{3, 3, 1, 32}));
}

TEST(Descriptor, NameRepeatSeparatorsAndBlanks) {
  const ConvProblem p = parse_descriptor("mb1ic512ih14oc512oh14kh1ph0n\"mobilenet_v1:conv5_1/pw*5\"");
  EXPECT_EQ(p.name, "mobilenet_v1:conv5_1/pw");
  EXPECT_EQ(p.repeat, 5);
  EXPECT_EQ(to_descriptor(p), "mb1ic512ih14oc512oh14kh1n\"mobilenet_v1:conv5_1/pw*5\"");
  EXPECT_EQ(to_descriptor(p, false), "mb1ic512ih14oc512oh14kh1");
  // A name holding a '*' writes its count even when it is 1, so that it reads back the same (a fuzzing finding:
  // n"a*2*1" came back as name "a" repeated twice).
  const ConvProblem once = parse_descriptor("ic1ih3oc1kh1n\"a*2*1\"");
  EXPECT_EQ(once.name, "a*2");
  EXPECT_EQ(once.repeat, 1);
  EXPECT_EQ(to_descriptor(once), "mb2ic1ih3oc1oh3kh1n\"a*2*1\"");
  EXPECT_EQ(parse_descriptor(to_descriptor(once)), once);
  // Only the last '*' counts.
  const ConvProblem s = parse_descriptor("ic1ih3oc1kh1n\"a*b*12\"");
  EXPECT_EQ(s.name, "a*b");
  EXPECT_EQ(s.repeat, 12);
  // benchdnn's underscores between pairs; oh = (300 + 2 - 3) / 2 + 1 = 150.
  const ConvProblem u = parse_descriptor("mb2_ic3oc64_ih300oh150kh3sh2ph1n\"ssd_300_voc0712:conv1_1\"");
  EXPECT_EQ(u.oh, 150);
  EXPECT_EQ(u.ic, 3);
  EXPECT_EQ(u.name, "ssd_300_voc0712:conv1_1");
  // Surrounding blanks and a CRLF line end.
  EXPECT_EQ(parse_descriptor(" \tic3ih5oc2kh3\r"), parse_descriptor("ic3ih5oc2kh3"));
  // Names may hold spaces and commas: everything up to the closing quote.
  EXPECT_EQ(parse_descriptor("ic3ih5oc2kh3n\"a, b\"").name, "a, b");
}

TEST(Descriptor, ListSkipsCommentsAndBlankLines) {
  const std::vector<ConvProblem> ps =
      parse_descriptor_list("# header\n\nic3ih5oc2kh3n\"a\"\n   # indented comment\n\t\r\nic1ih4oc1kh1n\"b*2\"");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].name, "a");
  EXPECT_EQ(ps[1].name, "b");
  EXPECT_EQ(ps[1].repeat, 2);
  EXPECT_TRUE(parse_descriptor_list("# nothing\n\n").empty());
  EXPECT_TRUE(parse_descriptor_list("").empty());
}

TEST(Descriptor, ListErrorsNameTheLine) {
  expect_error([] { parse_descriptor_list("# ok\nic3ih5oc2kh3\n\nic3ih5oc2kh3zz1\n"); },
               "line 4: ", "unknown key 'zz'");
  expect_error([] { parse_descriptor_list("ic3ih5oc2kh3\r\nic3ic3ih5oc2kh3\r\n"); }, "line 2: ", "'ic' given twice");
}

TEST(Descriptor, Errors) {
  // Keys.
  expect_error([] { parse_descriptor("mb1ic3ih5oc2kh3xy2"); }, "unknown key 'xy'", "mb1ic3ih5oc2kh3xy2");
  expect_error([] { parse_descriptor("ic3id5ih5oc2kh3"); }, "unknown key 'id'");  // 3-D keys are not 2-D problems
  expect_error([] { parse_descriptor("ic3ic4ih5oc2kh3"); }, "key 'ic' given twice");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3kh3"); }, "key 'kh' given twice");
  expect_error([] { parse_descriptor("MB1ic3ih5oc2kh3"); }, "unexpected character 'M'");
  expect_error([] { parse_descriptor("mb1 ic3ih5oc2kh3"); }, "unexpected character ' '");
  expect_error([] { parse_descriptor("ic3ih5oc2kh"); }, "key 'kh' needs a non-negative integer value", "the end");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3ph-1"); }, "key 'ph' needs a non-negative integer value", "'-'");
  expect_error([] { parse_descriptor(""); }, "empty");
  expect_error([] { parse_descriptor("  \t"); }, "empty");
  // Required keys.
  expect_error([] { parse_descriptor("ih5oc2kh3"); }, "missing ic");
  expect_error([] { parse_descriptor("ic3ih5kh3"); }, "missing oc");
  expect_error([] { parse_descriptor("ic3iw5oc2kh3"); }, "missing ih");
  expect_error([] { parse_descriptor("ic3ih5oc2"); }, "missing kh");
  // Values.
  expect_error([] { parse_descriptor("ic0ih5oc2kh3"); }, "ic must be positive, got 0");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3sh0"); }, "sh must be positive");
  expect_error([] { parse_descriptor("mb0ic3ih5oc2kh3"); }, "mb must be positive");
  expect_error([] { parse_descriptor("ic99999999999999999999ih5oc2kh3"); }, "ic value 99999999999999999999",
               "out of range");
  expect_error([] { parse_descriptor("ic2147483648ih5oc2kh3"); }, "ic value 2147483648 is out of range");
  expect_error([] { parse_descriptor("ic1ih5oc1kh3dh2147483647"); }, "dh value 2147483647 is out of range");
  expect_error([] { parse_descriptor("mb2147483647ic2147483647ih2147483647oc1kh1"); }, "too many elements");
  // Groups.
  expect_error([] { parse_descriptor("g3ic4ih5oc6kh3"); }, "ic 4 and oc 6 must both be divisible by g 3");
  expect_error([] { parse_descriptor("g2ic4ih5oc3kh3"); }, "divisible by g 2");
  // Geometry.
  expect_error([] { parse_descriptor("ic1ih2oc1kh5"); }, "larger than the padded input");
  expect_error([] { parse_descriptor("ic1ih10oc1kh3dh4"); },
               "larger than the padded input");  // (3 - 1) * 5 + 1 = 11 > 10
  expect_error([] { parse_descriptor("ic1ih10oc1kh3oh20"); }, "oh20 is too large", "at most 10");
  expect_error([] { parse_descriptor("ic1ih10oc1kh3oh5"); }, "oh5 is too small", "give 8 rows");
  expect_error([] { parse_descriptor("ic1ih10oc1kh3ow11"); }, "ow11 is too large", "at most 10");
  EXPECT_EQ(parse_descriptor("ic1ih10oc1kh3ow9").pad_right(), 1);  // one column of padding after: consistent
  expect_error([] { parse_descriptor("ic1ih10oc1kh3sh2oh3"); }, "oh3 is too small");
  // Names.
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"abc"); }, "no closing quote");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"abc\"x"); }, "unexpected text 'x' after the name");
  expect_error([] { parse_descriptor("n\"abc\"ic3ih5oc2kh3"); }, "after the name");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n5"); }, "the name must be quoted");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3nabc"); }, "unknown key 'nabc'");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"\""); }, "empty name");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"*3\""); }, "empty name");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"a*0\""); }, "repeat count", "'0'");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"a*x\""); }, "repeat count", "'x'");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"a*\""); }, "repeat count");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"a*-2\""); }, "repeat count");
  expect_error([] { parse_descriptor("ic3ih5oc2kh3n\"a*99999999999\""); }, "repeat count");
}

TEST(Descriptor, LargestValuesStillParse) {
  // 2^31 - 1 is in range; the tensors (2 * 1 * 1 * 2147483647 elements) still index in int64.
  const ConvProblem p = parse_descriptor("ic2147483647ih1oc1kh1");
  EXPECT_EQ(p.ic, 2147483647);
  EXPECT_EQ(p.oh, 1);
  EXPECT_DOUBLE_EQ(flops(p), 2.0 * 2 * 2147483647.0);
}

TEST(Measure, PeakAndBandwidthArePositiveAndFinite) {
  const double peak = measure_peak_gflops(best_isa(), 1, 0.02);
  EXPECT_GT(peak, 0.0);
  EXPECT_TRUE(std::isfinite(peak));
  const double generic = measure_peak_gflops(Isa::generic, 2, 0.02);
  EXPECT_GT(generic, 0.0);
  EXPECT_TRUE(std::isfinite(generic));
  const double bw = measure_bandwidth_gbs(1, std::size_t(8) << 20);
  EXPECT_GT(bw, 0.0);
  EXPECT_TRUE(std::isfinite(bw));
}

TEST(Measure, BadArguments) {
  expect_error([] { measure_peak_gflops(Isa::generic, 0); }, "thread count must be positive, got 0");
  expect_error([] { measure_peak_gflops(Isa::generic, 1, 0.0); }, "duration must be positive");
  expect_error([] { measure_bandwidth_gbs(-1); }, "thread count must be positive, got -1");
  expect_error([] { measure_bandwidth_gbs(1, 100); }, "too small");
}

}  // namespace
}  // namespace convkit::bench
