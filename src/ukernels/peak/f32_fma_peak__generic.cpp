// The peak-FLOP loop for generic (src/ukernels/CMakeLists.txt).
#include "ukernels/peak/peak.hpp"
#include "ukernels/peak/peak_impl.hpp"

namespace convkit::uk {

double f32_fma_peak__generic(std::size_t iters, float* sink) { return fma_peak(iters, sink); }

}  // namespace convkit::uk
