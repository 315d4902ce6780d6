// src/ops/conv2d_tables.hpp — indirection tables for the fast Conv2D algorithms. They depend only on the geometry,
// so a plan builds them once; the kernels then read rows of the activations through them, with no im2col copy.
//
// An offset is the element offset of channel 0 of a pixel inside one image (NHWC: (y * W + x) * C); the batch and
// group offsets are added to the base pointer at execution. -1 marks a padded cell that holds zero.
#pragma once

#include <cstdint>
#include <vector>

#include "convkit/conv.hpp"

namespace convkit::ops {

// Output rows grouped in tiles of `mr` rows (the microkernel's register block). For tile i:
//   a_off[tile_a_begin[i] + t * mr + r]: source row of tap t for row r (rows past tile_rows[i] repeat the last);
//   c_off[i * mr + r]: the destination row.
// Tiles come in segments that share one list of kernel taps (the backward-data stride phases; forward has one).
struct IndirectionTable {
  struct Segment {
    std::vector<int32_t> taps;  // ky * KW + kx, in the order the packed weights follow
    int64_t first_tile = 0, num_tiles = 0;
  };
  int64_t mr = 1;
  std::vector<Segment> segments;
  std::vector<int32_t> tile_segment;
  std::vector<int32_t> tile_rows;
  std::vector<int64_t> tile_a_begin;
  std::vector<int64_t> a_off;
  std::vector<int64_t> c_off;
  // Per tile, its live taps: indices [tile_tap_begin[i], tile_tap_end[i]) of its segment's list. The taps before
  // and after read only padding (offset -1) in every row of the tile (e.g. the kernel rows above the image for a
  // tile of the top output row), so the kernels may skip them: start the weights and a_off at the first live tap.
  std::vector<int32_t> tile_tap_begin, tile_tap_end;

  int64_t num_tiles() const { return static_cast<int64_t>(tile_rows.size()); }
};

// Forward: output pixels in raster order, every tap (ky-major). Sources go through core::padded_source, so every
// padding mode reads the right cell without a padded copy. a_off counts in x (pixel * IC), c_off in y (pixel * OC).
IndirectionTable forward_table(const Conv2dGeometry& g, int64_t mr);

// Backward data as a gather: dx[i] = sum over taps (ky, kx) and output pixels o with
// o * stride - pad + k * dilation = i of dz[o] . w[k]^T. The input pixels are split into stride phases
// (i mod stride); within a phase the contributing taps are the same for every pixel, so each phase is one segment
// of a dense indirect GEMM (no wasted zero taps; a phase no tap reaches has an empty tap list and gets zeros).
// Needs zero padding (the algorithms map the other modes onto a padded grid first). a_off counts in dz
// (pixel * OC), c_off in dx (pixel * IC).
IndirectionTable backward_data_table(const Conv2dGeometry& g, int64_t mr);

// Weight gradient: for each tap, the (x row, dz row) pairs of the output pixels whose source cell is real (not a
// zero pad); padded cells of the other modes point at the input cell they mirror. Entries of tap t are
// [begin[t], begin[t + 1]): one image's, or (wgrad_table_images) several consecutive images', image by image,
// per_image[t] of them for each (offsets from the first image's x and dz).
struct WgradTable {
  std::vector<int64_t> begin;
  std::vector<int64_t> per_image;
  std::vector<int64_t> x_off;
  std::vector<int64_t> dz_off;
  int64_t max_len = 0;  // the most entries of one tap
};
WgradTable wgrad_table(const Conv2dGeometry& g);
// The one-image table `one` of g repeated over `images` consecutive images.
WgradTable wgrad_table_images(const WgradTable& one, const Conv2dGeometry& g, int64_t images);

// The geometry of the same convolution over the input padded explicitly (zero padding, no pads): the backward
// data of the non-zero padding modes runs on it, then fold_padded_gradient() maps the padded cells back.
Conv2dGeometry padded_grid_geometry(const Conv2dGeometry& g);
// dx (N, IH, IW, IC) = the gradient dxp (N, IH + pads, IW + pads, IC) on the padded grid, each padded cell added
// into the input cell it copies (core::padded_source). Overwrites dx.
void fold_padded_gradient(const Conv2dGeometry& g, const float* dxp, float* dx, int threads);

}  // namespace convkit::ops
