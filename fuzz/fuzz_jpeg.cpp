// Fuzz target: JPEG decoding (convkit::decode_image, which picks the decoder by the file's magic bytes; this
// target's seed corpus holds JPEG files, so the mutations mostly exercise the JPEG path). The limits are
// small so that a header claiming a large but legal image is refused instead of exhausting the fuzzer's memory.
#include "convkit/image.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  convkit::fuzz::expect_clean([&] {
    const convkit::ImageLimits limits{.max_values = int64_t{1} << 20, .max_side = 4096};
    const convkit::Tensor img = convkit::decode_image(convkit::fuzz::bytes_of(data, size), "<fuzz>", limits);
    // Decoded pixels are (H, W, C) in [0, 1].
    if (img.rank() != 3) __builtin_trap();
    for (float v : img.values())
      if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();
  });
  return 0;
}
