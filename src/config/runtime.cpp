// Run-time choices: the ISA of the kernels and the thread count (include/convkit/runtime.hpp).
#include "convkit/runtime.hpp"

#ifndef CONVKIT_NO_OPENMP
#include <omp.h>
#else
#include <thread>
#endif

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "config/cpu.hpp"
#include "convkit/error.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

std::string to_string(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(std::string_view name) {
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512})
    if (name == to_string(isa)) return isa;
  throw Error(cat("ISA: unknown instruction set '", name, "' (expected avx512, avx2 or generic)"));
}

bool cpu_supports(Isa isa) {
  const config::CpuFeatures& f = config::cpu_features();
  switch (isa) {
    case Isa::generic: return true;
    case Isa::avx2: return f.avx && f.avx2 && f.fma && f.os_ymm;
    case Isa::avx512: return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.os_zmm;
  }
  return false;
}

Isa best_isa() {
  static const Isa best = cpu_supports(Isa::avx512) ? Isa::avx512 : cpu_supports(Isa::avx2) ? Isa::avx2 : Isa::generic;
  return best;
}

namespace {

// Environment settings are read once; a bad value is remembered as its message and thrown at every use, so that a
// typo never silently falls back to the default.
template <typename T>
struct EnvSetting {
  bool set = false;
  T value{};
  std::string error;
};

EnvSetting<Isa> read_env_isa() {
  EnvSetting<Isa> s;
  const char* v = std::getenv("CONVKIT_ISA");
  if (!v || !*v) return s;
  try {
    s.value = parse_isa(v);
  } catch (const Error&) {
    s.error = cat("CONVKIT_ISA: unknown instruction set '", v, "' (expected avx512, avx2 or generic)");
    return s;
  }
  if (!cpu_supports(s.value)) {
    s.error = cat("CONVKIT_ISA=", v, ": this CPU (or operating system) does not support ", v, "; it supports up to ",
                  to_string(best_isa()));
    return s;
  }
  s.set = true;
  return s;
}

EnvSetting<int> read_env_threads() {
  EnvSetting<int> s;
  const char* v = std::getenv("CONVKIT_NUM_THREADS");
  if (!v || !*v) return s;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n <= 0 || n > 4096) {
    s.error = cat("CONVKIT_NUM_THREADS: expected a positive integer, got '", v, "'");
    return s;
  }
  s.set = true;
  s.value = static_cast<int>(n);
  return s;
}

const EnvSetting<Isa>& env_isa() {
  static const EnvSetting<Isa> s = read_env_isa();
  return s;
}

const EnvSetting<int>& env_threads() {
  static const EnvSetting<int> s = read_env_threads();
  return s;
}

std::atomic<int> g_isa_override{-1};  // -1: none, else an Isa
std::atomic<int> g_threads{0};        // 0: not set

}  // namespace

Isa active_isa() {
  const int forced = g_isa_override.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  const EnvSetting<Isa>& env = env_isa();
  if (!env.error.empty()) throw Error(env.error);
  return env.set ? env.value : best_isa();
}

void set_isa(Isa isa) {
  if (!cpu_supports(isa))
    throw Error(cat("set_isa: this CPU (or operating system) does not support ", to_string(isa), "; it supports up to ",
                    to_string(best_isa())));
  g_isa_override.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void reset_isa() { g_isa_override.store(-1, std::memory_order_relaxed); }

int num_threads() {
  const int forced = g_threads.load(std::memory_order_relaxed);
  if (forced > 0) return forced;
  const EnvSetting<int>& env = env_threads();
  if (!env.error.empty()) throw Error(env.error);
  if (env.set) return env.value;
#ifndef CONVKIT_NO_OPENMP
  const int n = omp_get_max_threads();
#else
  const int n = static_cast<int>(std::thread::hardware_concurrency());
#endif
  return n > 0 ? n : 1;
}

void set_num_threads(int n) {
  if (n < 0) throw Error(cat("set_num_threads: thread count must be positive (or 0 for the default), got ", n));
  g_threads.store(n, std::memory_order_relaxed);
}

std::string cpu_description() {
  const config::CpuFeatures& f = config::cpu_features();
  std::string s = f.brand.empty() ? std::string("unknown x86-64 CPU") : f.brand;
  s += " (";
  const std::pair<const char*, bool> bits[] = {
      {"avx", f.avx},           {"fma", f.fma},           {"avx2", f.avx2},
      {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl},
      {"avx512dq", f.avx512dq}, {"os-ymm", f.os_ymm},     {"os-zmm", f.os_zmm}};
  bool first = true;
  for (const auto& [name, on] : bits)
    if (on) {
      s += first ? "" : " ";
      s += name;
      first = false;
    }
  s += ")";
  return s;
}

}  // namespace convkit
