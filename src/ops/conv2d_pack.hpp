// src/ops/conv2d_pack.hpp — packing of HWIO weights into the column blocks the GEMM microkernels stream
// (src/ukernels/ukernels.hpp): per block of nr columns, one row of nr weights per reduction index, zero-padded past
// the last column. Forward needs none (it reads the HWIO kernel in place); the backward passes read the kernel
// transposed and pack it at every call (the weights change at every training step), into the workspace: one pass
// over the weights.
#pragma once

#include <cstdint>
#include <span>

#include "convkit/conv.hpp"

namespace convkit::ops {

// Floats in one packed block of `rows` reduction rows.
inline int64_t packed_block_floats(int64_t rows, int64_t nr) { return nr * rows; }

// Forward, group grp, output channels [j * nr, j * nr + nr) of the group, the kernel as it is: rows r < KH * KW *
// IC/G (tap, then channel) of nr floats, zero past the group's last column; B[r][n] = w[r][grp * OC/G + j * nr + n].
// (The kernel's rows are OC floats apart in place, which aliases in the caches for large OC; the block is dense.)
void pack_forward_block(const Conv2dGeometry& g, int64_t nr, const float* w, int64_t grp, int64_t j, float* out);

// Backward data, group grp, input channels [j * nr, j * nr + nr) of the group (the transposed kernel): rows (tap, o)
// over `taps` (ky * KW + kx) and o < OC/G; B[(t, o)][n] = w (KH, KW, IC/G, OC)[tap][j * nr + n][grp * OC/G + o].
void pack_backward_data_block(const Conv2dGeometry& g, int64_t nr, std::span<const int32_t> taps, const float* w,
                              int64_t grp, int64_t j, float* out);

// Backward data by scatter, group grp, columns [j * nr, j * nr + nr) of the (tap, c) columns (taps * IC/G of them,
// c fastest): rows o < OC/G; B[o][(tap, c)] = w[tap][c][grp * OC/G + o].
void pack_scatter_block(const Conv2dGeometry& g, int64_t nr, const float* w, int64_t grp, int64_t j, float* out);

}  // namespace convkit::ops
