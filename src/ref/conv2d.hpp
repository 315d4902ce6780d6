// src/ref/conv2d.hpp — plain-loop reference kernels for Conv2D, one file per direction. Never optimised:
// they are the definition the fast paths are checked against. fp32 storage and accumulation.
// Padded cells are read through core::padded_source(), so reflect / replicate / circular padding needs no
// padded copy, and gradients flow back into the input cells a padded cell mirrors.
#pragma once

#include "convkit/conv.hpp"

namespace convkit::ref {

// y (N, OH, OW, OC) = conv(x (N, IH, IW, IC), w (KH, KW, IC/G, OC)) + b (OC, or null). No activation.
void conv2d_fwd(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
// dx (N, IH, IW, IC) = dL/dx given dz = dL/dy (N, OH, OW, OC). Overwrites dx.
void conv2d_bwd_data(const Conv2dGeometry& g, const float* dz, const float* w, float* dx);
// dw (KH, KW, IC/G, OC) = dL/dw given x and dz. Overwrites dw.
void conv2d_bwd_weights(const Conv2dGeometry& g, const float* x, const float* dz, float* dw);
// db (OC) = dL/db = sum of dz over batch and positions. Overwrites db.
void conv2d_bwd_bias(const Conv2dGeometry& g, const float* dz, float* db);

}  // namespace convkit::ref
