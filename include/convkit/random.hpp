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
  uint64_t next_u64();                    // xoshiro256** step
  float uniform();                        // [0, 1)
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
  uint64_t s_[4]{};
};

}  // namespace convkit
