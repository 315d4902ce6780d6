// Fuzz target: safetensors model files (convkit::parse_safetensors), and for a file that parses and carries an
// architecture in its metadata, that architecture too (as load_model() would read it).
#include "convkit/safetensors.hpp"
#include "convkit/serialize.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  convkit::fuzz::expect_clean([&] {
    const convkit::SafetensorsLimits limits{.max_header_bytes = 1 << 20, .max_total_elements = int64_t{1} << 22};
    const convkit::SafetensorsFile f = convkit::parse_safetensors(convkit::fuzz::bytes_of(data, size), "<fuzz>", limits);
    // A parsed file must serialise and parse back to the same names, shapes and metadata.
    const convkit::SafetensorsFile again = convkit::parse_safetensors(convkit::serialize_safetensors(f), "<rt>", limits);
    if (again.metadata != f.metadata || again.tensors.size() != f.tensors.size()) __builtin_trap();
    for (const auto& [name, t] : f.tensors) {
      auto it = again.tensors.find(name);
      if (it == again.tensors.end() || it->second.shape() != t.shape()) __builtin_trap();
    }
    if (auto it = f.metadata.find("architecture"); it != f.metadata.end())
      convkit::model_from_json(it->second, "<fuzz architecture>", int64_t{1} << 22);
  });
  return 0;
}
