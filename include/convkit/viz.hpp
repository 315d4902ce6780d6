// convkit/viz.hpp — pictures: classic image filters through the depthwise convolution engine, tile grids, a small
// bitmap font, training curves (CSV + SVG), and the model visualisation (filters, activation maps, index.html)
// behind `convkit filter` and `convkit visualize`.
//
// Images are (H, W, C) tensors in [0, 1] as in convkit/image.hpp (C = 1 grey or 3 RGB here; alpha is removed by the
// caller). Every picture written is an 8-bit PNG.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/conv.hpp"
#include "convkit/model.hpp"
#include "convkit/tensor.hpp"
#include "convkit/train.hpp"

namespace convkit::viz {

// ---- image filters --------------------------------------------------------------------------------------------

// How a filter's raw response becomes a picture in [0, 1].
//   clamp:     values outside [0, 1] are cut. For kernels whose weights sum to a non-zero value (smoothing kernels
//              sum to 1, sharpen and emboss too): the response stays in the image's range.
//   signed:    v = 0.5 + 0.5 * r / M, clamped to [0, 1], where M is the 99.5th percentile (nearest rank) of |r| over
//              the whole output (all channels together, so colours keep their relation): zero is mid-grey, strong
//              negative responses black, strong positive ones white. The percentile rather than the maximum keeps
//              a few extreme pixels from washing every other edge out. For kernels summing to zero (edges,
//              gradients): their response is signed and small.
//   magnitude: v = r / M, clamped, M the 99.5th percentile of r: zero is black. For the gradient magnitude (sobel).
// An all-zero response (M = 0) maps to 0.5 (signed) or 0 (magnitude) without dividing by zero.
enum class Scaling { clamp, signed_, magnitude };
std::string to_string(Scaling s);  // "clamp", "signed", "magnitude"
Scaling parse_scaling(std::string_view name);

// A filter: one (kh, kw) kernel applied to every channel (depthwise, depth multiplier 1), or two whose responses
// combine into the gradient magnitude sqrt(gx^2 + gy^2) (sobel). Kernels are correlated, not flipped, like every
// convolution in convkit: sobel-x = [-1 0 1; -2 0 2; -1 0 1] responds positively where the image gets brighter to
// the right.
struct Filter {
  std::string name;
  std::vector<Tensor> kernels;  // each (kh, kw); one, or two for a magnitude
  Scaling scaling = Scaling::clamp;
};

// identity, edge (Laplacian), sobel-x, sobel-y, sobel, prewitt-x, prewitt-y, box-blur, gaussian-blur, sharpen,
// emboss, outline.
const std::vector<std::string>& filter_names();
// A named filter; sigma is used by gaussian-blur only (a finite value in (0, 50]: the kernel is
// (2 * ceil(3 sigma) + 1)^2, weights exp(-(x^2 + y^2) / (2 sigma^2)) normalised to sum 1). An unknown name is a
// convkit::Error listing the known ones.
Filter named_filter(std::string_view name, double sigma = 1.0);
// A kernel typed as rows separated by ';' and values by ',' ("0,-1,0;-1,5,-1;0,-1,0"); every row the same length,
// every value a finite number. Scaling by the rule: weights summing to zero (|sum| <= 1e-6 * sum |w|) -> signed,
// otherwise clamp.
Filter parse_kernel_text(std::string_view text);
// A kernel from a tensor of shape (kh, kw) or (kh, kw, 1, 1) (an .npy file), scaled by the same rule.
Filter filter_from_tensor(const Tensor& kernel, std::string name);
Scaling scaling_for_kernel(const Tensor& kernel);

// Where the kernel slides. The defaults keep the picture's size: "same" padding filled by reflection.
struct FilterGeometry {
  Size2 strides{1, 1};
  Padding padding = Padding::same();
  PaddingMode padding_mode = PaddingMode::reflect;
  Size2 dilation{1, 1};
};

// The raw response of image (H, W, C) to the filter: (OH, OW, C), through the depthwise convolution engine.
Tensor filter_response(const Tensor& image, const Filter& filter, const FilterGeometry& geometry = {});
// response (..., C) -> [0, 1] following the scaling rule above.
Tensor scale_response(const Tensor& response, Scaling scaling);
// scale_response(filter_response(...), filter.scaling).
Tensor apply_filter(const Tensor& image, const Filter& filter, const FilterGeometry& geometry = {});

// ---- pictures ------------------------------------------------------------------------------------------------

// Nearest-neighbour enlargement by an integer factor >= 1: (H, W, C) -> (H * f, W * f, C).
Tensor upscale_nearest(const Tensor& image, int factor);
// Grey (H, W, 1) -> (H, W, 3); 3 channels unchanged.
Tensor to_rgb(const Tensor& image);

// The font: 5 x 7 pixel glyphs on a 6 x 8 cell (one column and one row of spacing), printable ASCII. Letters are
// drawn as capitals (lower case maps to upper case); a character without a glyph draws as a hollow box.
inline constexpr int kGlyphWidth = 5, kGlyphHeight = 7, kCellWidth = 6, kCellHeight = 8;
// Whether glyph pixel (row, col) of character c is set; 0 <= row < 7, 0 <= col < 5.
bool glyph_pixel(char c, int row, int col);
// Width and height in pixels of a line of text at `scale` (each font pixel becomes scale x scale):
// (6 * n - 1) * scale wide, 7 * scale high; 0 x 0 for empty text.
int text_width(std::string_view text, int scale = 1);
int text_height(std::string_view text, int scale = 1);
// Draws one line of text with its top-left corner at (x, y) on image (H, W, C), clipped to the image, in `rgb`
// (grey images get the mean of the three).
void draw_text(Tensor& image, int64_t x, int64_t y, std::string_view text, const float (&rgb)[3], int scale = 1);

struct GridOptions {
  int columns = 0;         // 0: about square
  int gap = 2;             // pixels between tiles and around them
  float background = 0.15f;
  int label_scale = 1;     // tile labels: font scale (0: no labels)
  std::string title;       // drawn above the grid (may be empty)
  int title_scale = 2;
};
// Tiles (each (h, w, 1) or (h, w, 3), values in [0, 1], sizes may differ: each is centred in a cell of the
// largest size) laid out row by row; labels (empty, or one per tile) under each tile. The result is RGB if any
// tile is, else grey. Size, with cell = (max h, max w), L = labels ? 7 * label_scale + 2 : 0, T = title ?
// 7 * title_scale + 2 * gap : 0:  width  = max(gap + columns * (cell_w + gap), title width + 2 * gap),
//                                 height = T + gap + rows * (cell_h + L + gap).
Tensor compose_grid(const std::vector<Tensor>& tiles, const std::vector<std::string>& labels,
                    const GridOptions& options);

// ---- training curves ------------------------------------------------------------------------------------------

// "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds" then one row per epoch; absent validation
// values are empty fields. Numbers in shortest round-trip form.
std::string history_csv(const std::vector<EpochLog>& epochs);
// The inverse, for a resumed run to continue the curves of the run it resumes: exactly that header and
// columns; anything else is a convkit::Error naming `what` (the file) and the line.
std::vector<EpochLog> parse_history_csv(std::string_view text, const std::string& what);
// Two line charts side by side (loss; accuracy), training and validation, epochs on the x axis: a standalone SVG
// document of width x height user units.
std::string history_svg(const std::vector<EpochLog>& epochs, int width = 900, int height = 360);
// Writes both atomically (either path may be empty: not written).
void write_history(const std::string& csv_path, const std::string& svg_path, const std::vector<EpochLog>& epochs);

// ---- model visualisation --------------------------------------------------------------------------------------

// An image (H, W, C) with C in {1, 2, 3, 4} fitted to a model input (h, w, c): alpha composited over black, grey
// or colour as c asks, antialiased bilinear resizing (as `convkit predict` does), optionally inverted.
Tensor fit_image_to_input(const Tensor& image, int64_t height, int64_t width, int64_t channels, bool invert);

struct VisualizeOptions {
  std::string out_dir;                   // created if missing; pictures and index.html go there
  std::vector<std::string> class_names;  // one per output unit (else "0", "1", ...)
  bool outputs_are_probabilities = true; // false: the model outputs logits and softmax is applied for display
  int max_filters = 64;                  // filter pictures show at most this many filters (one tile each), ...
  int max_filter_rows = 32;              // ... or this many rows of per-input-channel tiles (kernels whose input
  int max_input_channels = 16;           // is not 1 or 3 channels), of at most this many input channels
  std::string input_caption;             // e.g. "test image 0 (label: Ankle boot)"
  // Other pictures to show on the page: each already inside out_dir (a file name relative to it) with a caption.
  std::vector<std::pair<std::string, std::string>> extra_pictures;
  std::vector<std::string> notes;        // paragraphs at the end of the page (sources, licences)
};

struct LayerPictures {
  std::string layer_name, class_name;
  Shape kernel_shape, output_shape;     // output (1, OH, OW, F)
  std::string filters_png, activations_png;  // file names inside out_dir ("" if none)
  std::string filters_layout;                // e.g. "rows: filters, columns: input channels"
  int64_t filters_width = 0, filters_height = 0, activations_width = 0, activations_height = 0;
};

struct VisualizeReport {
  std::vector<LayerPictures> layers;
  std::vector<float> probabilities;  // for the input, one per class
  int predicted = -1;
  std::string index_html;            // path of the page written
};

// For every Conv2D, DepthwiseConv2D and SeparableConv2D layer: <name>_filters.png (one tile per filter, per input
// channel when there are not 3 of them; weights shown as 0.5 + 0.5 w / max|w| per filter, mid-grey = 0) and
// <name>_activations.png (one tile per output channel for `input` (1, H, W, C), each normalised to its own
// [min, max]); input.png; and index.html, which references only these files by relative name.
VisualizeReport visualize_model(Sequential& model, const Tensor& input, const VisualizeOptions& options);

// Escapes &, <, >, " and ' for HTML text and attributes.
std::string html_escape(std::string_view text);

}  // namespace convkit::viz
