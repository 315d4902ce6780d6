// A program outside the project that uses the installed convkit package.
#include <convkit/conv.hpp>
#include <iostream>

int main() {
  convkit::Conv2dParams p{.filters = 5, .kernel_size = {3, 3}, .strides = {2, 2}};
  std::cout << convkit::shape_to_string(convkit::conv2d_output_shape(p, {10, 8, 16, 3})) << "\n";
  // And run it: a convolution through the installed library.
  convkit::Tensor x({10, 8, 16, 3}, 1.0f), w({3, 3, 3, 5}, 0.5f), b({5}, 0.25f);
  const convkit::Tensor y = convkit::conv2d_forward(p, x, w, &b);
  return y[0] == 0.5f * 27 + 0.25f ? 0 : 1;
}
