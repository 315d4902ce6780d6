// Picture composition (convkit/viz.hpp): nearest-neighbour enlargement and labelled tile grids.
#include <algorithm>
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/viz.hpp"
#include "core/strings.hpp"

namespace convkit::viz {

using core::cat;

Tensor upscale_nearest(const Tensor& image, int factor) {
  if (image.rank() != 3 || factor < 1)
    throw Error(cat("upscale_nearest: image ", shape_to_string(image.shape()), ", factor ", factor));
  const int64_t h = image.dim(0), w = image.dim(1), c = image.dim(2);
  Tensor out({h * factor, w * factor, c});
  for (int64_t y = 0; y < h * factor; ++y)
    for (int64_t x = 0; x < w * factor; ++x)
      for (int64_t k = 0; k < c; ++k) out[(y * w * factor + x) * c + k] = image[((y / factor) * w + x / factor) * c + k];
  return out;
}

Tensor to_rgb(const Tensor& image) {
  if (image.rank() != 3 || (image.dim(2) != 1 && image.dim(2) != 3))
    throw Error(cat("to_rgb: expected (H, W, 1) or (H, W, 3), got ", shape_to_string(image.shape())));
  if (image.dim(2) == 3) return image;
  Tensor out({image.dim(0), image.dim(1), 3});
  for (int64_t i = 0; i < image.size(); ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = image[i];
  return out;
}

Tensor compose_grid(const std::vector<Tensor>& tiles, const std::vector<std::string>& labels,
                    const GridOptions& o) {
  if (tiles.empty()) throw Error("compose_grid: no tiles");
  if (!labels.empty() && labels.size() != tiles.size())
    throw Error(cat("compose_grid: ", labels.size(), " labels for ", tiles.size(), " tiles"));
  if (o.gap < 0 || o.columns < 0 || o.label_scale < 0 || o.title_scale < 1)
    throw Error("compose_grid: negative gap, columns or scale");
  int64_t cell_h = 0, cell_w = 0;
  bool rgb = false;
  for (const Tensor& t : tiles) {
    if (t.rank() != 3 || (t.dim(2) != 1 && t.dim(2) != 3))
      throw Error(cat("compose_grid: a tile of shape ", shape_to_string(t.shape()), " (expected (h, w, 1 or 3))"));
    cell_h = std::max(cell_h, t.dim(0));
    cell_w = std::max(cell_w, t.dim(1));
    rgb = rgb || t.dim(2) == 3;
  }
  const int64_t n = int64_t(tiles.size());
  const int64_t cols = o.columns > 0 ? std::min<int64_t>(o.columns, n)
                                     : std::max<int64_t>(1, int64_t(std::ceil(std::sqrt(double(n)))));
  const int64_t rows = (n + cols - 1) / cols;
  const bool labelled = !labels.empty() && o.label_scale > 0;
  const int64_t label_h = labelled ? kGlyphHeight * o.label_scale + 2 : 0;
  const int64_t title_h = o.title.empty() ? 0 : kGlyphHeight * o.title_scale + 2 * o.gap;
  const int64_t gap = o.gap;
  const int64_t width = std::max<int64_t>(gap + cols * (cell_w + gap), text_width(o.title, o.title_scale) + 2 * gap);
  const int64_t height = title_h + gap + rows * (cell_h + label_h + gap);
  const int64_t c = rgb ? 3 : 1;
  Tensor out({height, width, c}, o.background);
  const float white[3] = {1.0f, 1.0f, 1.0f}, light[3] = {0.8f, 0.8f, 0.8f};
  if (!o.title.empty()) draw_text(out, gap, gap, o.title, white, o.title_scale);
  for (int64_t i = 0; i < n; ++i) {
    const Tensor& t = tiles[std::size_t(i)];
    const int64_t r = i / cols, col = i % cols;
    const int64_t x0 = gap + col * (cell_w + gap) + (cell_w - t.dim(1)) / 2;
    const int64_t y0 = title_h + gap + r * (cell_h + label_h + gap) + (cell_h - t.dim(0)) / 2;
    for (int64_t y = 0; y < t.dim(0); ++y)
      for (int64_t x = 0; x < t.dim(1); ++x)
        for (int64_t k = 0; k < c; ++k) {
          const float v = t[(y * t.dim(1) + x) * t.dim(2) + (t.dim(2) == 3 ? k : 0)];
          out[((y0 + y) * width + x0 + x) * c + k] = std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 1.0f);
        }
    if (labelled) {
      const std::string& label = labels[std::size_t(i)];
      const int64_t lx = gap + col * (cell_w + gap) + std::max<int64_t>(0, (cell_w - text_width(label, o.label_scale)) / 2);
      const int64_t ly = title_h + gap + r * (cell_h + label_h + gap) + cell_h + 1;
      draw_text(out, lx, ly, label, light, o.label_scale);
    }
  }
  return out;
}

}  // namespace convkit::viz
