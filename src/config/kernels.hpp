// src/config/kernels.hpp — the table of microkernels for each ISA (what an algorithm calls, and the register
// block it must lay its data out for).
#pragma once

#include "convkit/runtime.hpp"
#include "ukernels/ukernels.hpp"

namespace convkit::config {

struct KernelTable {
  Isa isa;
  int mr;  // GEMM register block: rows (output pixels) ...
  int nr;  // ... x columns (output channels); packed weight blocks are nr wide
  uk::GemmFn gemm;
  uk::IgemmFn igemm;
  uk::WgradFn wgrad;
  uk::DwconvFn dwconv;
  uk::DwconvReduceFn dwconv_reduce;
  uk::DwconvWgradFn dwconv_wgrad;
  const char* gemm_name;  // "f32_gemm_14x32__avx512", for explain()
  const char* igemm_name;
  const char* wgrad_name;
  const char* dwconv_name;
  uk::Dwconv3x3RowFn dwconv3x3_row;  // depthwise 3x3 along a whole output row (zero padding inside)
  uk::Dwconv3x3RowWgradFn dwconv3x3_row_wgrad;  // ... and its weight gradient
  uk::Dwconv3x3RowBwd2Fn dwconv3x3_row_bwd2;    // ... and the backward data of its stride 2
  uk::Dwconv3x3RowsFn dwconv3x3_rows;           // ... up to dw_group_rows output rows at once
  uk::Dwconv3x3RowsWgradFn dwconv3x3_rows_wgrad;  // ... and their weight gradient
  int dw_group_rows;                            // rows dwconv3x3_rows does in one pass (1: one at a time)
  // A plain GEMM over two nr-wide blocks at once (null where the ISA has none): wide_mr rows x 2 nr columns.
  uk::GemmWideFn gemm_wide;
  int wide_mr;
  const char* gemm_wide_name;
};

// The kernels of `isa`; the caller checks cpu_supports(isa) first (active_isa() only returns supported ones).
const KernelTable& kernels(Isa isa);

}  // namespace convkit::config
