#include "convkit/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>

#include "convkit/error.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

std::string shape_to_string(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

int64_t shape_elements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(cat("tensor shape ", shape_to_string(shape), " has a negative dimension"));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw Error(cat("tensor shape ", shape_to_string(shape), " has too many elements"));
    n *= d;
  }
  return n;
}

void Tensor::Free::operator()(float* p) const { ::operator delete[](p, std::align_val_t(kTensorAlignment)); }

namespace {
float* allocate(int64_t count) {
  // count * 4 bytes, rounded up, must not wrap around size_t (it would allocate a few bytes for a huge shape).
  if (static_cast<uint64_t>(count) > (std::numeric_limits<std::size_t>::max() - kTensorAlignment) / sizeof(float))
    throw Error(cat("a tensor of ", count, " float32 elements is too large to allocate"));
  // Round up to whole cache lines so that vector loops may read a full line at the end.
  const std::size_t bytes = (static_cast<std::size_t>(count) * sizeof(float) + kTensorAlignment - 1) /
                            kTensorAlignment * kTensorAlignment;
  return static_cast<float*>(::operator new[](std::max<std::size_t>(bytes, kTensorAlignment),
                                              std::align_val_t(kTensorAlignment)));
}
}  // namespace

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)), size_(shape_elements(shape_)) {
  data_.reset(allocate(size_));
  std::fill_n(data_.get(), size_, fill);
}

Tensor::Tensor(Shape shape, std::initializer_list<float> values) : Tensor(std::move(shape)) {
  if (static_cast<int64_t>(values.size()) != size_)
    throw Error(cat("tensor of shape ", shape_to_string(shape_), " needs ", size_, " values, got ", values.size()));
  std::copy(values.begin(), values.end(), data_.get());
}

Tensor::Tensor(const Tensor& other) : shape_(other.shape_), size_(other.size_) {
  if (other.data_) {
    data_.reset(allocate(size_));
    std::memcpy(data_.get(), other.data_.get(), static_cast<std::size_t>(size_) * sizeof(float));
  }
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) *this = Tensor(other);
  return *this;
}

void Tensor::reshape(Shape shape) {
  const int64_t n = shape_elements(shape);
  if (n != size_)
    throw Error(cat("cannot reshape a tensor of shape ", shape_to_string(shape_), " (", size_, " elements) to ",
                    shape_to_string(shape), " (", n, " elements)"));
  shape_ = std::move(shape);
}

namespace {
// out[perm-ordered] = in: out dim j is in dim perm[j].
Tensor permute4(const Tensor& in, const int perm[4], const char* what) {
  if (in.rank() != 4) throw Error(cat(what, ": expected a 4-D tensor, got shape ", shape_to_string(in.shape())));
  const Shape& s = in.shape();
  Shape os{s[perm[0]], s[perm[1]], s[perm[2]], s[perm[3]]};
  Tensor out(os);
  int64_t in_stride[4] = {s[1] * s[2] * s[3], s[2] * s[3], s[3], 1};
  const float* src = in.data();
  float* dst = out.data();
  for (int64_t a = 0; a < os[0]; ++a)
    for (int64_t b = 0; b < os[1]; ++b)
      for (int64_t c = 0; c < os[2]; ++c)
        for (int64_t d = 0; d < os[3]; ++d)
          *dst++ = src[a * in_stride[perm[0]] + b * in_stride[perm[1]] + c * in_stride[perm[2]] +
                       d * in_stride[perm[3]]];
  return out;
}
}  // namespace

Tensor nchw_to_nhwc(const Tensor& x) {
  static constexpr int p[4] = {0, 2, 3, 1};
  return permute4(x, p, "nchw_to_nhwc");
}
Tensor nhwc_to_nchw(const Tensor& x) {
  static constexpr int p[4] = {0, 3, 1, 2};
  return permute4(x, p, "nhwc_to_nchw");
}
Tensor oihw_to_hwio(const Tensor& w) {
  static constexpr int p[4] = {2, 3, 1, 0};
  return permute4(w, p, "oihw_to_hwio");
}
Tensor hwio_to_oihw(const Tensor& w) {
  static constexpr int p[4] = {3, 2, 0, 1};
  return permute4(w, p, "hwio_to_oihw");
}

}  // namespace convkit
