// Weight initialisers with Keras' definitions of fan_in and fan_out.
#include <cmath>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "core/strings.hpp"

namespace convkit {

namespace {
constexpr std::pair<Initializer, const char*> kNames[] = {
    {Initializer::glorot_uniform, "glorot_uniform"}, {Initializer::glorot_normal, "glorot_normal"},
    {Initializer::he_normal, "he_normal"},           {Initializer::he_uniform, "he_uniform"},
    {Initializer::lecun_normal, "lecun_normal"},     {Initializer::zeros, "zeros"},
    {Initializer::ones, "ones"}};

// Keras: for a kernel of rank >= 2 the receptive field is the product of all but the last two dimensions;
// fan_in = receptive * shape[-2], fan_out = receptive * shape[-1]. Rank 1: both are shape[0].
void fans(const Shape& s, double& fan_in, double& fan_out) {
  if (s.empty()) {
    fan_in = fan_out = 1;
  } else if (s.size() == 1) {
    fan_in = fan_out = double(s[0]);
  } else {
    double receptive = 1;
    for (std::size_t i = 0; i + 2 < s.size(); ++i) receptive *= double(s[i]);
    fan_in = receptive * double(s[s.size() - 2]);
    fan_out = receptive * double(s[s.size() - 1]);
  }
}
}  // namespace

std::string to_string(Initializer init) {
  for (const auto& [i, n] : kNames)
    if (i == init) return n;
  return "?";
}

Initializer parse_initializer(std::string_view name) {
  for (const auto& [i, n] : kNames)
    if (name == n) return i;
  throw Error(core::cat("initializer: unknown initializer '", name,
                        "' (expected glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal, zeros or "
                        "ones)"));
}

void initialize(Tensor& t, Initializer init, Rng& rng) {
  double fan_in = 1, fan_out = 1;
  fans(t.shape(), fan_in, fan_out);
  float* p = t.data();
  const int64_t n = t.size();
  // Keras' truncated normal keeps the variance by dividing the stddev by 0.87962566 (the stddev of a
  // standard normal truncated to two standard deviations).
  constexpr double kTruncCorrection = 0.87962566103423978;
  switch (init) {
    case Initializer::zeros:
    case Initializer::ones:
      std::fill_n(p, n, init == Initializer::ones ? 1.0f : 0.0f);
      return;
    case Initializer::glorot_uniform:
    case Initializer::he_uniform: {
      const double limit = init == Initializer::glorot_uniform ? std::sqrt(6.0 / (fan_in + fan_out))
                                                                : std::sqrt(6.0 / fan_in);
      for (int64_t i = 0; i < n; ++i) p[i] = rng.uniform(float(-limit), float(limit));
      return;
    }
    case Initializer::glorot_normal:
    case Initializer::he_normal:
    case Initializer::lecun_normal: {
      const double var = init == Initializer::glorot_normal ? 2.0 / (fan_in + fan_out)
                         : init == Initializer::he_normal   ? 2.0 / fan_in
                                                            : 1.0 / fan_in;
      const float stddev = float(std::sqrt(var) / kTruncCorrection);
      for (int64_t i = 0; i < n; ++i) p[i] = rng.truncated_normal(0.0f, stddev);
      return;
    }
  }
}

}  // namespace convkit
