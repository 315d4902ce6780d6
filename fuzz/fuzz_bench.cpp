// Fuzz target: the benchmark descriptor syntax (convkit::bench::parse_descriptor and parse_descriptor_list). The
// first byte picks one descriptor or a whole shapes file. What parses must be consistent and canonical: its
// to_descriptor() text parses back to the same problem.
#include "convkit/bench.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text = convkit::fuzz::bytes_of(data + 1, size - 1);
  convkit::fuzz::expect_clean([&] {
    namespace bench = convkit::bench;
    std::vector<bench::ConvProblem> problems;
    if (data[0] & 1)
      problems = bench::parse_descriptor_list(text);
    else
      problems.push_back(bench::parse_descriptor(text));
    for (const bench::ConvProblem& p : problems) {
      if (p.ic <= 0 || p.oc <= 0 || p.ih <= 0 || p.kh <= 0 || p.oh <= 0 || p.ow <= 0 || p.g <= 0 || p.mb <= 0)
        __builtin_trap();
      if (bench::parse_descriptor(bench::to_descriptor(p)) != p) __builtin_trap();
    }
  });
  return 0;
}
