// convkit/bench.hpp — convolution problems in oneDNN benchdnn's descriptor syntax, and the machine figures the
// op-level benchmark (`convkit bench`) measures its results against.
//
// A descriptor is a run of <key><integer> pairs, then an optional n"name" (bench/shapes/README.md):
//   g1mb1ic3ih224oc64oh112kh7sh2ph3n"resnet_50:conv1"
// Keys: g mb ic oc ih iw oh ow kh kw sh sw ph pw dh dw. Defaults: g 1, mb 2, iw = ih, kw = kh, sw = sh, pw = ph,
// dw = dh, strides 1, padding 0, dilation 0. Dilation counts from 0 as in benchdnn (dh0 = none; Keras'
// dilation_rate = dh + 1). ph / pw pad the top / left; the bottom / right padding is whatever makes oh / ow come
// out. An absent oh is deduced with the bottom padding equal to the top one, as benchdnn does; an absent ow is oh
// when every w value equals its h counterpart (a square problem), else deduced like oh from the w values.
// A name ending in "*N" marks a layer that occurs N times in its network: N goes to `repeat` and is removed from
// `name`. An underscore may separate pairs (benchdnn writes "mb2_ic3oc64_ih300..."), nothing else may.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/runtime.hpp"
#include "convkit/tensor.hpp"

namespace convkit::bench {

// One convolution problem, every size resolved (after parsing, oh / ow are always set and consistent).
struct ConvProblem {
  std::string name;  // without the "*N" suffix; empty when the descriptor has none
  int64_t g = 1, mb = 2, ic = 0, oc = 0, ih = 0, iw = 0, oh = 0, ow = 0, kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0,
          dh = 0, dw = 0;
  int64_t repeat = 1;  // the '*N' suffix of the name: occurrences of this layer in its network

  // The bottom / right padding that makes oh / ow come out (never negative: when the last input rows are simply
  // not reached by the stride, it is 0).
  int64_t pad_bottom() const;
  int64_t pad_right() const;

  friend bool operator==(const ConvProblem&, const ConvProblem&) = default;
};

// Parses one descriptor (surrounding spaces, tabs and a trailing '\r' are ignored). Every problem is checked:
// unknown or repeated keys, a key without a value, values out of range (sizes must be positive, paddings and
// dilations non-negative, every value below 2^31), missing ic / oc / ih / kh, channels not divisible by g, an
// oh / ow that no bottom / right padding smaller than the dilated kernel can produce, tensors too large to index,
// and a malformed name (missing quotes, text after the closing quote, a bad "*N") each throw convkit::Error
// quoting the descriptor and naming the key and the value.
ConvProblem parse_descriptor(std::string_view text);

// Parses a shapes file: one descriptor per line; blank lines and lines whose first non-blank character is '#' are
// skipped. An error names the line number: "line 3: ...".
std::vector<ConvProblem> parse_descriptor_list(std::string_view file_text);

// The canonical descriptor of a problem: every key whose value differs from its default (the w keys when they
// differ from the h ones; oh always, ow unless the problem is square with ow = oh), then n"name*N" when there is
// a name. parse_descriptor() of it gives the
// problem back.
std::string to_descriptor(const ConvProblem& p, bool with_name = true);

// FLOPs of one forward pass (also counted for each backward pass, as benchdnn does): a multiply-add counts as 2,
// padding is not subtracted: 2 * mb * oh * ow * oc * (ic / g) * kh * kw.
double flops(const ConvProblem& p);

// The problem as convkit's Conv2D: explicit padding {ph, pad_bottom, pw, pad_right}, dilation_rate dh + 1, groups
// g, filters oc, use_bias as asked. conv2d_geometry(to_conv2d_params(p), input_shape(p)) gives p.oh and p.ow.
Conv2dParams to_conv2d_params(const ConvProblem& p, bool use_bias = true);
// NHWC input shape (mb, ih, iw, ic).
Shape input_shape(const ConvProblem& p);

// Machine figures for roofline percentages.
//
// measure_peak_gflops: fp32 GFLOP/s of independent FMA chains (mul + add on the generic ISA, which has no FMA)
// in the kernels of `isa` (which the CPU must support), run on `threads` OpenMP threads at once: the best of
// trials of about 2 ms each, repeated for about `seconds` (short trials, so that on a shared machine some run
// undisturbed). A multiply-add counts as 2 FLOPs.
double measure_peak_gflops(Isa isa, int threads, double seconds = 0.2);
// measure_bandwidth_gbs: sustained memory bandwidth in GB/s (1e9 bytes) of a streaming triad a[i] = b[i] + s * c[i]
// over three arrays of `bytes_per_array` bytes each (far bigger than the caches), on `threads` threads; bytes are
// counted as STREAM does (two reads and one write per element, write-allocate traffic not counted); best of a few
// trials.
double measure_bandwidth_gbs(int threads, std::size_t bytes_per_array = std::size_t(128) << 20);

}  // namespace convkit::bench
