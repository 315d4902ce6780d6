// CPU feature detection. Compiled without ISA flags: it must run on every x86-64 CPU.
#include "config/cpu.hpp"

#include <cstdint>
#include <cstring>

#if __has_include(<unistd.h>)
#include <unistd.h>  // sysconf
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CONVKIT_X86 1
#endif

namespace convkit::config {

namespace {

#ifdef CONVKIT_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return Regs{};
  return r;
}

// xgetbv(0) reads XCR0. Written as inline assembly so that this file needs no -mxsave; only called when cpuid
// says the OS enabled XSAVE (OSXSAVE), otherwise the instruction faults.
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  const Regs l1 = cpuid(1, 0);
  f.sse2 = (l1.d >> 26) & 1;
  f.fma = (l1.c >> 12) & 1;
  f.avx = (l1.c >> 28) & 1;
  const bool osxsave = (l1.c >> 27) & 1;
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = (l7.b >> 5) & 1;
    f.avx512f = (l7.b >> 16) & 1;
    f.avx512dq = (l7.b >> 17) & 1;
    f.avx512bw = (l7.b >> 30) & 1;
    f.avx512vl = (l7.b >> 31) & 1;
  }
  if (osxsave) {
    const uint64_t xcr0 = xgetbv0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;
    f.os_zmm = f.os_ymm && (xcr0 & 0xe0) == 0xe0;
  }
  const unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i + 0, &r.a, 4);
      std::memcpy(brand + 16 * i + 4, &r.b, 4);
      std::memcpy(brand + 16 * i + 8, &r.c, 4);
      std::memcpy(brand + 16 * i + 12, &r.d, 4);
    }
    f.brand = brand;
    // Brand strings are padded with spaces on some CPUs.
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    while (!f.brand.empty() && f.brand.front() == ' ') f.brand.erase(f.brand.begin());
  }
  return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

CpuFeatures detect_all() {
  CpuFeatures f = detect();
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  f.l2_bytes = l2 > 0 ? l2 : 0;
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect_all();  // thread-safe initialisation, done once
  return features;
}

}  // namespace convkit::config
