// src/config/cpu.hpp — what the CPU and the operating system support, detected once (cpuid + xgetbv).
#pragma once

#include <cstdint>
#include <string>

namespace convkit::config {

struct CpuFeatures {
  std::string brand;  // cpuid's brand string, "" when the CPU has none
  // Instruction-set bits from cpuid.
  bool sse2 = false, avx = false, fma = false, avx2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  // Register state the OS saves on context switches (XCR0 through xgetbv): without it the instructions fault.
  bool os_ymm = false;  // XMM + YMM state (bits 1, 2)
  bool os_zmm = false;  // + opmask, ZMM0-15 upper halves, ZMM16-31 (bits 5, 6, 7)
  // The level-2 data cache of one core, in bytes (the C library's sysconf(_SC_LEVEL2_CACHE_SIZE), which reads cpuid);
  // 0 where it cannot tell.
  int64_t l2_bytes = 0;
};

// Detected on first call, then cached.
const CpuFeatures& cpu_features();

}  // namespace convkit::config
