// convkit/io.hpp — tensors in and out of files.
#pragma once

#include <string>
#include <string_view>

#include "convkit/tensor.hpp"

namespace convkit {

// NumPy .npy (format versions 1.0, 2.0, 3.0), float32 little-endian ('<f4'), C order. Anything else — a bad
// magic string, a malformed header, another dtype, Fortran order, a truncated or oversized payload, a shape
// claiming more than max_elements — throws convkit::Error naming the file and the problem.
inline constexpr int64_t kNpyMaxElements = int64_t{1} << 32;  // 16 GiB of float32
Tensor read_npy(const std::string& path, int64_t max_elements = kNpyMaxElements);
Tensor parse_npy(std::string_view bytes, const std::string& name = "<memory>",
                 int64_t max_elements = kNpyMaxElements);
std::string serialize_npy(const Tensor& t);
// Written to a temporary file beside the target and renamed over it, so the target is either the old file or
// the complete new one.
void write_npy(const std::string& path, const Tensor& t);

// Writes bytes to path atomically (temporary file in the same directory, fsync, rename). Throws convkit::Error
// naming the path on failure and removes the temporary file.
void write_file_atomic(const std::string& path, std::string_view bytes);
// Reads a whole file; throws convkit::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace convkit
