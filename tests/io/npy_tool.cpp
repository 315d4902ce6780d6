// A minimal command-line front end to convkit's .npy I/O for the NumPy interoperability test
// (npy_numpy_interop.py). Not installed.
//   npy_tool copy IN OUT          read IN with read_npy and write it to OUT with write_npy
//   npy_tool pattern OUT D0 D1... write a tensor of shape (D0, D1, ...) holding (i % 251) * 0.5 - 17.25
// Errors print the convkit::Error message to stderr and exit with status 1.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/tensor.hpp"

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "copy" && argc == 4) {
      convkit::write_npy(argv[3], convkit::read_npy(argv[2]));
      return 0;
    }
    if (mode == "pattern" && argc >= 3) {
      convkit::Shape shape;
      for (int i = 3; i < argc; ++i) shape.push_back(std::strtoll(argv[i], nullptr, 10));
      convkit::Tensor t(shape);
      for (int64_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(i % 251) * 0.5f - 17.25f;
      convkit::write_npy(argv[2], t);
      return 0;
    }
    std::fprintf(stderr, "usage: npy_tool copy IN OUT | npy_tool pattern OUT DIMS...\n");
    return 2;
  } catch (const convkit::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
