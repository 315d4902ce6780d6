// convkit/safetensors.hpp — named float32 tensors in one safetensors file (convkit's model file format).
//
// The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian unsigned header length N, then N
// bytes of UTF-8 JSON, then the data section. The JSON is an object mapping each tensor name to
//   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// with byte offsets relative to the start of the data section, plus an optional "__metadata__" object of string
// values. The data is raw little-endian, C order, and the tensors cover the data section exactly: no gaps, no
// overlap, nothing after the last one.
//
// Reading with NumPy alone (no safetensors package needed):
//
//   import json, struct, numpy as np
//   with open(path, "rb") as f:
//       buf = f.read()
//   (n,) = struct.unpack("<Q", buf[:8])
//   header = json.loads(buf[8:8 + n])
//   metadata = header.pop("__metadata__", {})
//   data = memoryview(buf)[8 + n:]
//   tensors = {}
//   for name, info in header.items():
//       begin, end = info["data_offsets"]
//       tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "convkit/tensor.hpp"

namespace convkit {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" object; omitted from the file when empty
};

// What a reader accepts before it allocates anything. The defaults are far above any convkit model and stop a
// hostile or corrupt file from asking for absurd amounts of memory.
struct SafetensorsLimits {
  uint64_t max_header_bytes = 100'000'000;        // the reference implementation's limit
  int64_t max_total_elements = int64_t{1} << 32;  // summed over all tensors: 16 GiB of float32
};

// Reads a safetensors file. Everything is checked before any tensor data is read: the header length against the
// file size and the limit, the JSON (well-formed, an object, no duplicate keys), each entry (dtype F32 only —
// another dtype is an error naming the tensor and the dtype; a shape of non-negative integers whose product * 4
// equals end - begin; offsets in bounds), the offsets as a whole (sorted by position they must tile the data
// section exactly), the total element count against the limit. Errors are convkit::Error naming the file and
// the tensor.
SafetensorsFile read_safetensors(const std::string& path, const SafetensorsLimits& limits = {});
// The same checks over bytes already in memory; `name` is used in messages.
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name = "<memory>",
                                  const SafetensorsLimits& limits = {});

// The file as bytes: tensors in name order, laid out back to back in that order, the JSON header padded with
// spaces to a multiple of 8 bytes (as the reference implementation does) so that the data section is 8-byte
// aligned. Throws convkit::Error for a tensor named "__metadata__" or a tensor without a shape (default-constructed).
std::string serialize_safetensors(const SafetensorsFile& file);
// Written to a temporary file beside the target and renamed over it (write_file_atomic): the target is either the
// old file or the complete new one.
void write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace convkit
