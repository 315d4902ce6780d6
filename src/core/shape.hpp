// src/core/shape.hpp — THE place where output sizes and padding splits are computed, for convolution and
// pooling alike (DESIGN.md §1). Nothing else in convkit does this arithmetic.
#pragma once

#include <cstdint>
#include <string>

#include "convkit/conv.hpp"

namespace convkit::core {

// One spatial axis of a sliding-window operation.
struct AxisSpec {
  const char* op = "";    // "Conv2D", "MaxPooling2D", ... for messages
  const char* axis = "";  // "height" or "width"
  int64_t in = 0;         // input extent
  int64_t kernel = 0;     // window extent before dilation
  int64_t stride = 1;
  int64_t dilation = 1;
  PaddingKind padding = PaddingKind::valid;
  int64_t pad_before = 0, pad_after = 0;  // only for PaddingKind::explicit_
  bool ceil_mode = false;                 // PyTorch pooling's ceil_mode
  PaddingMode mode = PaddingMode::zeros;  // checked against the resolved pads
};

struct AxisGeometry {
  int64_t out = 0;
  int64_t pad_before = 0, pad_after = 0;
};

// k_eff = (k - 1) * dilation + 1.
inline int64_t effective_kernel(int64_t kernel, int64_t dilation) { return (kernel - 1) * dilation + 1; }

// valid:    out = floor((in - k_eff) / s) + 1, an error if in < k_eff;
// same:     out = ceil(in / s), total = max((out - 1) * s + k_eff - in, 0), before = total / 2, after = rest;
// explicit: out = floor((in + before + after - k_eff) / s) + 1, an error if the padded input is too small.
// ceil_mode rounds up instead, keeping the last window starting inside the input or the left padding.
// Also rejects pads the padding mode cannot fill (reflect: pad < in; circular: pad <= in).
// Throws convkit::Error naming the op, the axis and the values.
AxisGeometry resolve_axis(const AxisSpec& spec);

// Source index along one axis for a padded coordinate i (which may be < 0 or >= n): the index of the input
// cell whose value the padded cell holds, or -1 for a zero cell. Valid for |overhang| within the limits
// resolve_axis() enforces.
inline int64_t padded_source(int64_t i, int64_t n, PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PaddingMode::zeros: return -1;
    case PaddingMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PaddingMode::replicate: return i < 0 ? 0 : n - 1;
    case PaddingMode::circular: return i < 0 ? i + n : i - n;
  }
  return -1;
}

}  // namespace convkit::core
