// src/ukernels/peak/peak.hpp — FMA loops for measuring the machine's fp32 peak (convkit::bench), one per ISA.
#pragma once

#include <cstddef>

namespace convkit::uk {

// Runs `iters` iterations of independent multiply-add chains in the ISA's vectors (mul + add on generic), stores
// a value computed from every chain in *sink, and returns the FLOPs done (a multiply-add counts as 2).
double f32_fma_peak__generic(std::size_t iters, float* sink);
double f32_fma_peak__avx2(std::size_t iters, float* sink);
double f32_fma_peak__avx512(std::size_t iters, float* sink);

}  // namespace convkit::uk
