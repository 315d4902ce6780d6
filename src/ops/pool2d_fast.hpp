// src/ops/pool2d_fast.hpp — the fast pooling algorithm: NHWC windows with the channels innermost, so that every
// inner loop runs over contiguous channels and vectorises (plain loops in the generic compile: pooling moves far
// more bytes than it computes, so wider vectors would buy little). Supports every configuration the reference
// does, with the same semantics and the same fp32 operation order, so its results are bitwise the reference's.
#pragma once

#include <cstdint>

#include "convkit/pool.hpp"

namespace convkit::ops {

// y (N, OH, OW, C) = pool(x (N, IH, IW, C)). Overwrites y. Threads over batch x output rows when the work is
// large enough to pay for them.
void pool2d_fast_fwd(const Pool2dGeometry& g, const float* x, float* y, int threads);
// dx (N, IH, IW, C) = dL/dx given x (N, IH, IW, C) and dy (N, OH, OW, C). Overwrites dx. Max pooling recomputes
// each window's argmax from x (PyTorch's rule: first maximum, last NaN). Threads over batch x channel blocks.
void pool2d_fast_bwd(const Pool2dGeometry& g, const float* x, const float* dy, float* dx, int threads);

// Max pooling: forward that also writes argmax (N, OH, OW, C), each output's cell (iy * IW + ix in its image) by
// the same rule; and backward from those cells, without reading x: for the x the forward saw, the same dx as
// pool2d_fast_bwd, bit for bit (the same windows in the same order, the same additions).
void pool2d_fast_fwd_argmax(const Pool2dGeometry& g, const float* x, float* y, int32_t* argmax, int threads);
void pool2d_fast_bwd_argmax(const Pool2dGeometry& g, const int32_t* argmax, const float* dy, float* dx, int threads);

}  // namespace convkit::ops
