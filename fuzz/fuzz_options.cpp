// Fuzz target: the CLI's option parsers (tools/convkit/options.cpp, compiled into this target). The first byte
// picks the parser, the rest is the option's text. Besides "no crash", each parser's contract is checked on what
// it accepts: integers within the bounds asked for, reals finite and within theirs, sizes and dims positive.
#include <cmath>
#include <string>

#include "fuzz_common.hpp"
#include "options.hpp"

namespace cli = convkit::cli;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  convkit::fuzz::expect_clean([&] {
    switch (data[0] % 10) {
      case 0: {
        const int64_t v = cli::parse_int("--int", text, -1000, 1000);
        if (v < -1000 || v > 1000) __builtin_trap();
        break;
      }
      case 1: {
        const int v = cli::parse_positive("--positive", text);
        if (v <= 0) __builtin_trap();
        break;
      }
      case 2: {
        const double v = cli::parse_real("--real", text, 1e-12, 100);
        if (!std::isfinite(v) || v < 1e-12 || v > 100) __builtin_trap();
        break;
      }
      case 3: {
        const convkit::Size2 s = cli::parse_size2("--size", text);
        if (s.h <= 0 || s.w <= 0) __builtin_trap();
        break;
      }
      case 4: cli::parse_padding("--padding", text); break;
      case 5: cli::parse_padding_mode("--padding-mode", text); break;
      case 6: cli::parse_activation("--activation", text); break;
      case 7: {
        const convkit::Shape s = cli::parse_dims("--dims", text, 4);
        if (s.size() != 4) __builtin_trap();
        for (int64_t d : s)
          if (d <= 0) __builtin_trap();
        break;
      }
      case 8: cli::parse_data_format("--data-format", text); break;
      default: {
        const int64_t v = cli::parse_int("--int64", text, INT64_MIN, INT64_MAX);
        (void)v;
        break;
      }
    }
  });
  return 0;
}
