// convkit/runtime.hpp — run-time choices of the fast engine: which instruction set the kernels use, and how many
// threads they run on.
//
// The library is built for any x86-64 CPU; the best kernels the CPU (and the operating system) support are chosen
// at run time. The choice can be forced, for testing every path on one machine or for comparing them:
//   - environment: CONVKIT_ISA=avx512|avx2|generic, CONVKIT_NUM_THREADS=<n>  (read once, at first use);
//   - API: set_isa() / set_num_threads(), which take precedence over the environment.
// A Conv2dPlan captures the ISA and the thread count in force when it is created.
#pragma once

#include <string>
#include <string_view>

namespace convkit {

// Kernel families, from the portable one up. generic: plain C++ (whatever the compiler makes of x86-64's SSE2);
// avx2: AVX2 + FMA; avx512: AVX-512 F/BW/VL/DQ + FMA.
enum class Isa { generic, avx2, avx512 };

std::string to_string(Isa isa);                  // "generic", "avx2", "avx512"
Isa parse_isa(std::string_view name);             // throws convkit::Error naming the choices

// Whether this CPU and operating system can run the kernels of `isa` (cpuid + xgetbv: the OS saves the registers).
bool cpu_supports(Isa isa);
// The best ISA this machine supports.
Isa best_isa();
// The ISA new plans use: set_isa() if called, else CONVKIT_ISA if set, else best_isa(). Throws convkit::Error when
// CONVKIT_ISA names an unknown ISA or one this CPU lacks.
Isa active_isa();
// Forces `isa` for the plans created from now on; throws convkit::Error if the CPU lacks it.
void set_isa(Isa isa);
// Forgets set_isa(): back to CONVKIT_ISA or the best ISA.
void reset_isa();

// Threads the kernels run on: set_num_threads(n) if called with n > 0, else CONVKIT_NUM_THREADS if set, else
// OpenMP's default (OMP_NUM_THREADS or the number of cores). set_num_threads(0) forgets the setting; a negative
// count, or a CONVKIT_NUM_THREADS that is not a positive integer, throws convkit::Error.
int num_threads();
void set_num_threads(int n);

// "AMD EPYC ... (avx2 fma avx512f ...)": the CPU's name and the features the ISA choice looks at.
std::string cpu_description();

}  // namespace convkit
