#include "core/shape.hpp"

#include "convkit/error.hpp"
#include "core/strings.hpp"

namespace convkit::core {

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

void check_mode(const AxisSpec& s, const char* side, int64_t pad) {
  if (pad == 0) return;
  if (s.mode == PaddingMode::reflect && pad >= s.in)
    throw Error(cat(s.op, ": padding_mode 'reflect' needs each pad smaller than the input, but the ", side,
                    " pad is ", pad, " for input ", s.axis, " ", s.in));
  if (s.mode == PaddingMode::circular && pad > s.in)
    throw Error(cat(s.op, ": padding_mode 'circular' needs each pad no larger than the input, but the ", side,
                    " pad is ", pad, " for input ", s.axis, " ", s.in));
}

}  // namespace

AxisGeometry resolve_axis(const AxisSpec& s) {
  if (s.in <= 0) throw Error(cat(s.op, ": input ", s.axis, " must be positive, got ", s.in));
  if (s.kernel <= 0) throw Error(cat(s.op, ": kernel ", s.axis, " must be positive, got ", s.kernel));
  if (s.stride <= 0) throw Error(cat(s.op, ": stride ", s.axis, " must be positive, got ", s.stride));
  if (s.dilation <= 0) throw Error(cat(s.op, ": dilation ", s.axis, " must be positive, got ", s.dilation));
  const int64_t k_eff = effective_kernel(s.kernel, s.dilation);
  AxisGeometry g;
  switch (s.padding) {
    case PaddingKind::same: {
      g.out = ceil_div(s.in, s.stride);
      const int64_t total = std::max<int64_t>((g.out - 1) * s.stride + k_eff - s.in, 0);
      g.pad_before = total / 2;
      g.pad_after = total - g.pad_before;
      break;
    }
    case PaddingKind::valid:
    case PaddingKind::explicit_: {
      if (s.padding == PaddingKind::explicit_) {
        if (s.pad_before < 0 || s.pad_after < 0)
          throw Error(cat(s.op, ": padding must be non-negative, got ", s.pad_before, " and ", s.pad_after,
                          " on the ", s.axis, " axis"));
        g.pad_before = s.pad_before;
        g.pad_after = s.pad_after;
      }
      const int64_t padded = s.in + g.pad_before + g.pad_after;
      if (padded < k_eff) {
        if (g.pad_before + g.pad_after == 0)
          throw Error(cat(s.op, ": kernel ", s.axis, " ", k_eff,
                          s.dilation > 1 ? cat(" (", s.kernel, " dilated by ", s.dilation, ")") : std::string(),
                          " is larger than the input ", s.axis, " ", s.in));
        throw Error(cat(s.op, ": kernel ", s.axis, " ", k_eff,
                        s.dilation > 1 ? cat(" (", s.kernel, " dilated by ", s.dilation, ")") : std::string(),
                        " is larger than the padded input ", s.axis, " ", padded, " (", s.in, " + padding ",
                        g.pad_before, " + ", g.pad_after, ")"));
      }
      if (s.ceil_mode) {
        g.out = ceil_div(padded - k_eff, s.stride) + 1;
        // PyTorch: windows that would start in the trailing padding are ignored. With PyTorch's symmetric
        // pad <= kernel / 2 at most one can; convkit's asymmetric pads can produce several, so drop them all.
        while ((g.out - 1) * s.stride >= s.in + g.pad_before) --g.out;
      } else {
        g.out = floor_div(padded - k_eff, s.stride) + 1;
      }
      break;
    }
  }
  check_mode(s, s.axis[0] == 'h' ? "top" : "left", g.pad_before);
  check_mode(s, s.axis[0] == 'h' ? "bottom" : "right", g.pad_after);
  return g;
}

}  // namespace convkit::core
