// convkit/tensor.hpp — dense float32 tensors with 64-byte aligned storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace convkit {

// A shape is a list of dimensions, outermost first. Activations are NHWC.
using Shape = std::vector<int64_t>;

// "(10, 3, 7, 5)", the way Keras and NumPy print shapes; "(3,)" for rank 1.
std::string shape_to_string(const Shape& shape);
// Product of the dimensions; throws convkit::Error on a negative dimension or on overflow.
int64_t shape_elements(const Shape& shape);

inline constexpr std::size_t kTensorAlignment = 64;

// Owning, contiguous, row-major (C order) float32 tensor. Copies are deep; moves are cheap.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, float fill = 0.0f);
  Tensor(Shape shape, std::initializer_list<float> values);

  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(static_cast<std::size_t>(i)); }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::span<float> values() { return {data_.get(), static_cast<std::size_t>(size_)}; }
  std::span<const float> values() const { return {data_.get(), static_cast<std::size_t>(size_)}; }
  float& operator[](int64_t i) { return data_[static_cast<std::size_t>(i)]; }
  float operator[](int64_t i) const { return data_[static_cast<std::size_t>(i)]; }

  // Same data under another shape with the same number of elements (throws otherwise).
  void reshape(Shape shape);

 private:
  struct Free {
    void operator()(float* p) const;
  };
  Shape shape_;
  int64_t size_ = 0;
  std::unique_ptr<float[], Free> data_;
};

// Layout conversions between Keras (NHWC activations, HWIO kernels) and PyTorch (NCHW, OIHW).
// Always explicit: convkit never guesses a layout.
Tensor nchw_to_nhwc(const Tensor& x);
Tensor nhwc_to_nchw(const Tensor& x);
Tensor oihw_to_hwio(const Tensor& w);
Tensor hwio_to_oihw(const Tensor& w);

}  // namespace convkit
