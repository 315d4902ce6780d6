// src/nn/step_buffers.hpp — the buffers the layers' training steps keep from one step to the next: reshaped or
// refilled in place while the element count stays the same, reallocated only when it changes (a new batch size).
#pragma once

#include <cstring>
#include <vector>

#include "convkit/tensor.hpp"

namespace convkit::nn {

// t with shape s; its values are unspecified unless it was just allocated (zeros).
inline Tensor& ensure_shape(Tensor& t, const Shape& s) {
  if (t.shape() == s) return t;
  if (t.size() == shape_elements(s) && !t.empty()) {
    t.reshape(s);
  } else {
    t = Tensor(s);
  }
  return t;
}

// dst := src (shape and values), reusing dst's storage when it can.
inline void copy_into(Tensor& dst, const Tensor& src) {
  ensure_shape(dst, src.shape());
  if (src.size() > 0) std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(src.size()) * sizeof(float));
}

// At least `bytes` of scratch memory.
inline void* ensure_bytes(std::vector<unsigned char>& buf, std::size_t bytes) {
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

}  // namespace convkit::nn
