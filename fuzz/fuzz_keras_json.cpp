// Fuzz target: Keras Sequential JSON architectures (convkit::model_from_json), which also builds the model.
// A model that loads must write JSON that loads again.
#include "convkit/serialize.hpp"
#include "fuzz_common.hpp"

// A small weight budget (the default's check is the same code) keeps each input cheap for the fuzzer.
constexpr int64_t kMaxWeights = int64_t{1} << 22;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  convkit::fuzz::expect_clean([&] {
    const convkit::Sequential m = convkit::model_from_json(convkit::fuzz::bytes_of(data, size), "<fuzz>", kMaxWeights);
    convkit::model_from_json(convkit::model_to_json(m), "<fuzz round trip>", kMaxWeights);
  });
  return 0;
}
