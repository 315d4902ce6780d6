// Fuzz target: NumPy .npy parsing (convkit::parse_npy). The element limit is small so that a header claiming a
// large but legal shape is refused cheaply instead of exhausting the fuzzer's memory; the default limit's check is
// the same code.
#include <algorithm>
#include <cstring>

#include "convkit/io.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  convkit::fuzz::expect_clean([&] {
    const convkit::Tensor t = convkit::parse_npy(convkit::fuzz::bytes_of(data, size), "<fuzz>", int64_t{1} << 22);
    // Whatever parses must serialise and parse back to the same values (bit for bit, NaN payloads included).
    const convkit::Tensor again = convkit::parse_npy(convkit::serialize_npy(t), "<fuzz round trip>", int64_t{1} << 22);
    if (again.shape() != t.shape() || !std::equal(t.values().begin(), t.values().end(), again.values().begin(),
                                                   [](float a, float b) { return std::memcmp(&a, &b, 4) == 0; }))
      __builtin_trap();
  });
  return 0;
}
