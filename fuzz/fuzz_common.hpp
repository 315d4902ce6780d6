// fuzz/fuzz_common.hpp — what every libFuzzer target shares: the input as bytes, and the one outcome allowed
// besides success. A rejected input must be a convkit::Error; any other exception escapes the target, which
// aborts the process, and libFuzzer reports it as a crash (as it does for every sanitizer finding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "convkit/error.hpp"

namespace convkit::fuzz {

inline std::string_view bytes_of(const uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs fn(); a convkit::Error is the expected way to refuse an input.
template <typename Fn>
void expect_clean(Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
  }
}

}  // namespace convkit::fuzz
