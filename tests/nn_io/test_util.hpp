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

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string leaf = std::string("convkit_nn_io_") + info->test_suite_name() + "_" + info->name() + "_" +
                       std::to_string(::getpid());
    std::replace(leaf.begin(), leaf.end(), '/', '_');  // parameterised test names contain '/'
    path_ = std::filesystem::temp_directory_path() / leaf;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace convkit::nn_io_test
