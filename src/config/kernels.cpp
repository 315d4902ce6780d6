#include "config/kernels.hpp"

namespace convkit::config {

namespace {

#define CONVKIT_KERNEL_TABLE(isa, MR, NR, DW_ROWS, WIDE, WIDE_MR, WIDE_NAME)                                \
  KernelTable {                                                                                             \
    Isa::isa, MR, NR, uk::f32_gemm_##MR##x##NR##__##isa, uk::f32_igemm_##MR##x##NR##__##isa,                \
        uk::f32_wgrad_##MR##x##NR##__##isa, uk::f32_dwconv__##isa, uk::f32_dwconv_reduce__##isa,            \
        uk::f32_dwconv_wgrad__##isa, "f32_gemm_" #MR "x" #NR "__" #isa, "f32_igemm_" #MR "x" #NR "__" #isa, \
        "f32_wgrad_" #MR "x" #NR "__" #isa, "f32_dwconv__" #isa, uk::f32_dwconv3x3_row__##isa,              \
        uk::f32_dwconv3x3_row_wgrad__##isa, uk::f32_dwconv3x3_row_bwd2__##isa,                              \
        uk::f32_dwconv3x3_rows__##isa, uk::f32_dwconv3x3_rows_wgrad__##isa, DW_ROWS, WIDE, WIDE_MR,         \
        WIDE_NAME                                                                                           \
  }

// Depthwise rows per pass: 3 where 32 vector registers hold 3 x 7 sums and the 9 weights (dwconv_impl.hpp).
// The wide GEMM: AVX-512 only (16 ymm registers hold no useful block two packed blocks wide).
const KernelTable kGeneric = CONVKIT_KERNEL_TABLE(generic, 4, 8, 1, nullptr, 0, "");
const KernelTable kAvx2 = CONVKIT_KERNEL_TABLE(avx2, 6, 16, 1, nullptr, 0, "");
const KernelTable kAvx512 =
    CONVKIT_KERNEL_TABLE(avx512, 14, 32, 3, uk::f32_gemm_wide_6x64__avx512, 6, "f32_gemm_wide_6x64__avx512");

#undef CONVKIT_KERNEL_TABLE

}  // namespace

const KernelTable& kernels(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kAvx512;
    case Isa::avx2: return kAvx2;
    case Isa::generic: break;
  }
  return kGeneric;
}

}  // namespace convkit::config
