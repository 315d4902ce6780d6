// Helpers shared by the tests in tests/ref: deterministic test data on a dyadic grid, and small checks.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "convkit/conv.hpp"
#include "convkit/tensor.hpp"

namespace convkit::testutil {

// Values k / 8 with k in [-8, 8] \ {0}: every value is exact in float, products are multiples of 1/64, and sums
// of a few thousand such products are exact in fp32 (they need far fewer than 24 significant bits). Tests built
// on this data can therefore demand exact agreement between computations that differ only in summation order,
// and zero is excluded so that no term of a sum silently vanishes.
inline float grid_value(std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(1, 8);
  std::bernoulli_distribution negative(0.5);
  const float v = static_cast<float>(pick(rng)) / 8.0f;
  return negative(rng) ? -v : v;
}

inline Tensor grid_tensor(const Shape& shape, std::mt19937& rng) {
  Tensor t(shape);
  for (float& v : t.values()) v = grid_value(rng);
  return t;
}

inline std::string describe(const Conv2dParams& p, const Shape& in) {
  return "input " + shape_to_string(in) + " filters " + std::to_string(p.filters) + " kernel " +
         std::to_string(p.kernel_size.h) + "x" + std::to_string(p.kernel_size.w) + " strides " +
         std::to_string(p.strides.h) + "x" + std::to_string(p.strides.w) + " dilation " +
         std::to_string(p.dilation_rate.h) + "x" + std::to_string(p.dilation_rate.w) + " padding " +
         to_string(p.padding) + " mode " + to_string(p.padding_mode) + " groups " + std::to_string(p.groups) +
         (p.use_bias ? " bias" : " no-bias") + " activation " + to_string(p.activation);
}

// Index of (n, h, w, c) in a dense NHWC / HWIO tensor of the given shape.
inline int64_t at4(const Shape& s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return ((a * s[1] + b) * s[2] + c) * s[3] + d;
}

}  // namespace convkit::testutil
