// Shared helpers of the nn_io tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "convkit/model.hpp"
#include "convkit/random.hpp"
#include "expect_error.hpp"
#include "temp_dir.hpp"

namespace convkit::nn_io_test {

using convkit::test_support::expect_error;

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}

inline Tensor random_tensor(const Shape& s, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(s);
  Rng rng(seed);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = rng.uniform(lo, hi);
  return t;
}

using convkit::test_support::TempDir;

}  // namespace convkit::nn_io_test
