// convkit/random.hpp — a seedable generator whose streams are the same on every platform and compiler
// (std::*_distribution are implementation-defined, so the distributions are written here).
#pragma once

#include <array>
#include <cstdint>

namespace convkit {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  // Inline, so that a loop drawing one value per element (a dropout mask) keeps the state in registers.
  uint64_t next_u64() {  // xoshiro256** step
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  float uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }  // [0, 1)
  float uniform(float lo, float hi);      // [lo, hi)
  float normal(float mean, float stddev);  // Box-Muller
  // Normal redrawn until within two standard deviations (Keras' truncated_normal).
  float truncated_normal(float mean, float stddev);
  uint64_t below(uint64_t n);  // uniform integer in [0, n), unbiased
  // An independent generator derived from this one's stream (for a layer, a shuffle, a dropout mask).
  Rng split();
  // The generator's whole state, to save in a checkpoint and restore exactly.
  std::array<uint64_t, 4> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }
  void set_state(const std::array<uint64_t, 4>& s) { for (int i = 0; i < 4; ++i) s_[i] = s[i]; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4]{};
};

}  // namespace convkit
