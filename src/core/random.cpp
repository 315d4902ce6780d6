#include "convkit/random.hpp"

#include <cmath>
#include <numbers>

namespace convkit {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

void Rng::reseed(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

float Rng::uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }

float Rng::normal(float mean, float stddev) {
  // Box-Muller in double; u1 in (0, 1] so the log is finite.
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  return static_cast<float>(mean + stddev * z);
}

float Rng::truncated_normal(float mean, float stddev) {
  while (true) {
    const float v = normal(0.0f, 1.0f);
    if (std::fabs(v) <= 2.0f) return mean + stddev * v;
  }
}

uint64_t Rng::below(uint64_t n) {
  // Rejection of the top partial block keeps every residue equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

Rng Rng::split() { return Rng(next_u64()); }

}  // namespace convkit
