// The peak-FLOP loop for avx2 compiled with -mavx2 -mfma (src/ukernels/CMakeLists.txt).
#include "ukernels/peak/peak.hpp"
#include "ukernels/peak/peak_impl.hpp"

namespace convkit::uk {

double f32_fma_peak__avx2(std::size_t iters, float* sink) { return fma_peak(iters, sink); }

}  // namespace convkit::uk
