// A minimal command-line front end to convkit's image functions for the Python oracles (image_oracle.py).
// Not installed. Tensors travel as .npy files.
//   image_tool decode IMAGE OUT.npy              read_image -> (H, W, C)
//   image_tool png IN.npy OUT.png [BITS]          write_png (8 or 16 bits)
//   image_tool jpeg IN.npy OUT.jpg [QUALITY]      write_jpeg
//   image_tool resize IN.npy OUT.npy H W AA       resize_bilinear, AA 0 or 1 (antialias)
//   image_tool gray IN.npy OUT.npy                to_grayscale
// Errors print the convkit::Error message to stderr and exit with status 1.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"

int main(int argc, char** argv) {
  using namespace convkit;
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "decode" && argc == 4) {
      write_npy(argv[3], read_image(argv[2]));
      return 0;
    }
    if (mode == "png" && (argc == 4 || argc == 5)) {
      write_png(argv[3], read_npy(argv[2]), argc == 5 ? std::atoi(argv[4]) : 8);
      return 0;
    }
    if (mode == "jpeg" && (argc == 4 || argc == 5)) {
      write_jpeg(argv[3], read_npy(argv[2]), argc == 5 ? std::atoi(argv[4]) : 90);
      return 0;
    }
    if (mode == "resize" && argc == 7) {
      write_npy(argv[3], resize_bilinear(read_npy(argv[2]), std::atoll(argv[4]), std::atoll(argv[5]),
                                         std::atoi(argv[6]) != 0));
      return 0;
    }
    if (mode == "gray" && argc == 4) {
      write_npy(argv[3], to_grayscale(read_npy(argv[2])));
      return 0;
    }
    std::fprintf(stderr,
                 "usage: image_tool decode IMAGE OUT.npy | png IN.npy OUT.png [BITS] | jpeg IN.npy OUT.jpg [QUALITY]"
                 " | resize IN.npy OUT.npy H W AA | gray IN.npy OUT.npy\n");
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
