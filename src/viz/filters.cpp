// Classic image filters as depthwise convolutions (convkit/viz.hpp): the named kernels, custom kernels, and the
// scaling of a response into a picture.
#include <algorithm>
#include <charconv>
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/viz.hpp"
#include "core/strings.hpp"

namespace convkit::viz {

using core::cat;

namespace {

// A (rows, cols) kernel from row-major values.
Tensor kernel(int64_t rows, int64_t cols, std::initializer_list<float> values) {
  return Tensor({rows, cols}, values);
}

Tensor gaussian_kernel(double sigma) {
  if (!std::isfinite(sigma) || sigma <= 0 || sigma > 50)
    throw Error(cat("--sigma: ", sigma, " is not a finite value in (0, 50]"));
  const int64_t r = static_cast<int64_t>(std::ceil(3 * sigma)), n = 2 * r + 1;
  Tensor k({n, n});
  double sum = 0;
  for (int64_t y = 0; y < n; ++y)
    for (int64_t x = 0; x < n; ++x) {
      const double dy = double(y - r), dx = double(x - r);
      const double v = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      k[y * n + x] = float(v);
      sum += v;
    }
  for (float& v : k.values()) v = float(v / sum);
  return k;
}

}  // namespace

std::string to_string(Scaling s) {
  switch (s) {
    case Scaling::clamp: return "clamp";
    case Scaling::signed_: return "signed";
    case Scaling::magnitude: return "magnitude";
  }
  return "?";
}

Scaling parse_scaling(std::string_view name) {
  if (name == "clamp") return Scaling::clamp;
  if (name == "signed") return Scaling::signed_;
  if (name == "magnitude") return Scaling::magnitude;
  throw Error(cat("unknown scaling '", name, "' (expected clamp, signed or magnitude)"));
}

const std::vector<std::string>& filter_names() {
  static const std::vector<std::string> names{"identity", "edge",     "sobel-x",       "sobel-y",
                                              "sobel",    "prewitt-x", "prewitt-y",     "box-blur",
                                              "gaussian-blur", "sharpen", "emboss", "outline"};
  return names;
}

Scaling scaling_for_kernel(const Tensor& k) {
  double sum = 0, abs_sum = 0;
  for (float v : k.values()) {
    sum += v;
    abs_sum += std::fabs(v);
  }
  return std::fabs(sum) <= 1e-6 * abs_sum ? Scaling::signed_ : Scaling::clamp;
}

Filter named_filter(std::string_view name, double sigma) {
  const Tensor sobel_x = kernel(3, 3, {-1, 0, 1, -2, 0, 2, -1, 0, 1});
  const Tensor sobel_y = kernel(3, 3, {-1, -2, -1, 0, 0, 0, 1, 2, 1});
  auto one = [&](Tensor k) {
    Filter f{std::string(name), {}, scaling_for_kernel(k)};
    f.kernels.push_back(std::move(k));
    return f;
  };
  if (name == "identity") return one(kernel(3, 3, {0, 0, 0, 0, 1, 0, 0, 0, 0}));
  if (name == "edge") return one(kernel(3, 3, {0, 1, 0, 1, -4, 1, 0, 1, 0}));
  if (name == "sobel-x") return one(sobel_x);
  if (name == "sobel-y") return one(sobel_y);
  if (name == "sobel") return Filter{"sobel", {sobel_x, sobel_y}, Scaling::magnitude};
  if (name == "prewitt-x") return one(kernel(3, 3, {-1, 0, 1, -1, 0, 1, -1, 0, 1}));
  if (name == "prewitt-y") return one(kernel(3, 3, {-1, -1, -1, 0, 0, 0, 1, 1, 1}));
  if (name == "box-blur") {
    const float w = 1.0f / 9.0f;
    return one(kernel(3, 3, {w, w, w, w, w, w, w, w, w}));
  }
  if (name == "gaussian-blur") return one(gaussian_kernel(sigma));
  if (name == "sharpen") return one(kernel(3, 3, {0, -1, 0, -1, 5, -1, 0, -1, 0}));
  if (name == "emboss") return one(kernel(3, 3, {-2, -1, 0, -1, 1, 1, 0, 1, 2}));
  if (name == "outline") return one(kernel(3, 3, {-1, -1, -1, -1, 8, -1, -1, -1, -1}));
  std::string known;
  for (const std::string& n : filter_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(cat("--kernel: unknown kernel '", name, "' (expected ", known,
                  ", a custom kernel such as \"0,-1,0;-1,5,-1;0,-1,0\", or an .npy file)"));
}

Filter parse_kernel_text(std::string_view text) {
  std::vector<std::vector<float>> rows;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(';', start);
    const std::string_view row = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    std::vector<float> values;
    std::size_t p = 0;
    while (true) {
      const std::size_t comma = row.find(',', p);
      std::string_view cell = row.substr(p, comma == std::string_view::npos ? std::string_view::npos : comma - p);
      while (!cell.empty() && cell.front() == ' ') cell.remove_prefix(1);
      while (!cell.empty() && cell.back() == ' ') cell.remove_suffix(1);
      double v = 0;
      const auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
      if (cell.empty() || ec != std::errc() || ptr != cell.data() + cell.size() || !std::isfinite(v))
        throw Error(cat("--kernel: '", cell, "' in row ", rows.size() + 1, " of \"", text,
                        "\" is not a finite number (expected rows separated by ';', values by ',')"));
      values.push_back(float(v));
      if (comma == std::string_view::npos) break;
      p = comma + 1;
    }
    if (!rows.empty() && values.size() != rows.front().size())
      throw Error(cat("--kernel: row ", rows.size() + 1, " of \"", text, "\" has ", values.size(),
                      " values, row 1 has ", rows.front().size()));
    rows.push_back(std::move(values));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (rows.size() > 64 || rows.front().size() > 64)
    throw Error(cat("--kernel: a ", rows.size(), "x", rows.front().size(), " kernel is larger than 64x64"));
  Tensor k({int64_t(rows.size()), int64_t(rows.front().size())});
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t c = 0; c < rows[r].size(); ++c) k[int64_t(r * rows[r].size() + c)] = rows[r][c];
  return filter_from_tensor(k, std::string(text));
}

Filter filter_from_tensor(const Tensor& k, std::string name) {
  const bool hw = k.rank() == 2, hw11 = k.rank() == 4 && k.dim(2) == 1 && k.dim(3) == 1;
  if (!(hw || hw11) || k.dim(0) < 1 || k.dim(1) < 1)
    throw Error(cat("--kernel: ", name, ": a kernel of shape ", shape_to_string(k.shape()),
                    " (expected (kh, kw) or (kh, kw, 1, 1))"));
  for (float v : k.values())
    if (!std::isfinite(v)) throw Error(cat("--kernel: ", name, ": the kernel holds a non-finite value"));
  Tensor k2 = k;
  k2.reshape({k.dim(0), k.dim(1)});
  const Scaling s = scaling_for_kernel(k2);
  return Filter{std::move(name), {std::move(k2)}, s};
}

Tensor filter_response(const Tensor& image, const Filter& filter, const FilterGeometry& g) {
  if (image.rank() != 3) throw Error(cat("filter: expected an (H, W, C) image, got ", shape_to_string(image.shape())));
  if (filter.kernels.empty()) throw Error("filter: no kernel");
  const int64_t h = image.dim(0), w = image.dim(1), c = image.dim(2);
  Tensor x = image;
  x.reshape({1, h, w, c});
  Tensor result;
  for (const Tensor& k : filter.kernels) {
    const int64_t kh = k.dim(0), kw = k.dim(1);
    DepthwiseConv2dParams dp{.kernel_size = {int(kh), int(kw)}, .strides = g.strides, .padding = g.padding,
                             .depth_multiplier = 1, .dilation_rate = g.dilation, .use_bias = false,
                             .padding_mode = g.padding_mode};
    const Conv2dParams p = depthwise_to_conv2d(dp, c);
    // The depthwise kernel (kh, kw, C, 1) is the same memory as the grouped Conv2D kernel (kh, kw, 1, C): the
    // one filter repeated for every channel.
    Tensor wk({kh, kw, 1, c});
    for (int64_t i = 0; i < kh * kw; ++i)
      for (int64_t ch = 0; ch < c; ++ch) wk[i * c + ch] = k[i];
    Tensor y = conv2d_forward(p, x, wk, nullptr);  // (1, OH, OW, C)
    if (filter.kernels.size() == 1) {
      result = std::move(y);
    } else if (result.empty()) {
      for (float& v : y.values()) v = v * v;
      result = std::move(y);
    } else {
      for (int64_t i = 0; i < y.size(); ++i) result[i] += y[i] * y[i];
    }
  }
  if (filter.kernels.size() > 1)
    for (float& v : result.values()) v = std::sqrt(v);
  result.reshape({result.dim(1), result.dim(2), result.dim(3)});
  return result;
}

Tensor scale_response(const Tensor& r, Scaling scaling) {
  Tensor out = r;
  if (scaling == Scaling::clamp) {
    for (float& v : out.values()) v = std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 1.0f);
    return out;
  }
  // The reference level: the 99.5th percentile of |r| (nearest rank), not the maximum, so that a handful of
  // extreme pixels (specular highlights, the image border) do not wash every other edge out to mid-grey.
  std::vector<float> mags;
  mags.reserve(std::size_t(r.size()));
  for (float v : r.values())
    if (!std::isnan(v)) mags.push_back(scaling == Scaling::signed_ ? std::fabs(v) : std::max(v, 0.0f));
  float m = 0;
  if (!mags.empty()) {
    const std::size_t rank = std::size_t(std::ceil(0.995 * double(mags.size()))) - 1;
    std::nth_element(mags.begin(), mags.begin() + std::ptrdiff_t(rank), mags.end());
    m = mags[rank];
  }
  for (float& v : out.values()) {
    if (scaling == Scaling::signed_)
      v = m > 0 ? std::clamp(0.5f + 0.5f * v / m, 0.0f, 1.0f) : 0.5f;
    else
      v = m > 0 ? std::clamp(v / m, 0.0f, 1.0f) : 0.0f;
  }
  return out;
}

Tensor apply_filter(const Tensor& image, const Filter& filter, const FilterGeometry& geometry) {
  return scale_response(filter_response(image, filter, geometry), filter.scaling);
}

}  // namespace convkit::viz
