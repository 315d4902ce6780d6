// Fuzz target: IDX datasets, plain and gzip-compressed (convkit::parse_idx); the seed corpus holds both kinds.
#include "convkit/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  convkit::fuzz::expect_clean([&] {
    const convkit::IdxLimits limits{.max_elements = int64_t{1} << 22};
    const convkit::IdxArray a = convkit::parse_idx(convkit::fuzz::bytes_of(data, size), "<fuzz>", limits);
    if (a.values.rank() < 1) __builtin_trap();  // an IDX file has at least one dimension
  });
  return 0;
}
