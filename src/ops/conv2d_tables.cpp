#include "ops/conv2d_tables.hpp"

#include <algorithm>

#include "core/shape.hpp"
#include "ops/conv2d_parallel.hpp"

namespace convkit::ops {

namespace {

// Appends one tile: rows [0, rows) come from pixel(r); the rest repeat the last row (computed, never stored).
template <typename PixelFn>
void add_tile(IndirectionTable& t, int64_t seg, int64_t ntaps, int64_t rows, PixelFn&& pixel) {
  const int64_t mr = t.mr;
  t.tile_segment.push_back(static_cast<int32_t>(seg));
  t.tile_rows.push_back(static_cast<int32_t>(rows));
  t.tile_a_begin.push_back(static_cast<int64_t>(t.a_off.size()));
  const std::size_t a0 = t.a_off.size();
  t.a_off.resize(a0 + static_cast<std::size_t>(ntaps * mr));
  for (int64_t r = 0; r < mr; ++r) {
    const int64_t rr = std::min(r, rows - 1);
    int64_t c_off = 0;
    pixel(rr, c_off, [&](int64_t tap_index, int64_t a_off) { t.a_off[a0 + tap_index * mr + r] = a_off; });
    t.c_off.push_back(c_off);
  }
  // The live taps: trim the leading and trailing taps that read padding in every row.
  const auto dead = [&](int64_t tap) {
    for (int64_t r = 0; r < mr; ++r)
      if (t.a_off[a0 + tap * mr + r] >= 0) return false;
    return true;
  };
  int64_t t0 = 0, t1 = ntaps;
  while (t0 < t1 && dead(t0)) ++t0;
  while (t1 > t0 && dead(t1 - 1)) --t1;
  t.tile_tap_begin.push_back(static_cast<int32_t>(t0));
  t.tile_tap_end.push_back(static_cast<int32_t>(t1));
}

int64_t pos_mod(int64_t a, int64_t m) { return ((a % m) + m) % m; }

}  // namespace

IndirectionTable forward_table(const Conv2dGeometry& g, int64_t mr) {
  IndirectionTable t;
  t.mr = mr;
  IndirectionTable::Segment seg;
  for (int32_t k = 0; k < g.kh * g.kw; ++k) seg.taps.push_back(k);
  const int64_t pixels = g.oh * g.ow, ntaps = g.kh * g.kw;
  seg.num_tiles = (pixels + mr - 1) / mr;
  t.segments.push_back(seg);
  // Source rows per axis, computed once: padded_source handles every padding mode.
  std::vector<int64_t> src_y(static_cast<std::size_t>(g.oh * g.kh)), src_x(static_cast<std::size_t>(g.ow * g.kw));
  for (int64_t oy = 0; oy < g.oh; ++oy)
    for (int64_t ky = 0; ky < g.kh; ++ky)
      src_y[oy * g.kh + ky] = core::padded_source(oy * g.sh - g.pad_top + ky * g.dh, g.ih, g.padding_mode);
  for (int64_t ox = 0; ox < g.ow; ++ox)
    for (int64_t kx = 0; kx < g.kw; ++kx)
      src_x[ox * g.kw + kx] = core::padded_source(ox * g.sw - g.pad_left + kx * g.dw, g.iw, g.padding_mode);
  t.a_off.reserve(static_cast<std::size_t>(seg.num_tiles * mr * ntaps));
  for (int64_t p0 = 0; p0 < pixels; p0 += mr) {
    add_tile(t, 0, ntaps, std::min(mr, pixels - p0), [&](int64_t r, int64_t& c_off, auto&& set) {
      const int64_t p = p0 + r, oy = p / g.ow, ox = p % g.ow;
      c_off = p * g.oc;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = src_y[oy * g.kh + ky];
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = src_x[ox * g.kw + kx];
          set(ky * g.kw + kx, iy < 0 || ix < 0 ? -1 : (iy * g.iw + ix) * g.ic);
        }
      }
    });
  }
  return t;
}

IndirectionTable backward_data_table(const Conv2dGeometry& g, int64_t mr) {
  IndirectionTable t;
  t.mr = mr;
  for (int64_t py = 0; py < std::min(g.sh, g.ih); ++py)
    for (int64_t px = 0; px < std::min(g.sw, g.iw); ++px) {
      // Taps that reach the pixels of this phase: (i + pad - k * dilation) divisible by the stride.
      std::vector<int64_t> kys, kxs;
      for (int64_t ky = 0; ky < g.kh; ++ky)
        if (pos_mod(py + g.pad_top - ky * g.dh, g.sh) == 0) kys.push_back(ky);
      for (int64_t kx = 0; kx < g.kw; ++kx)
        if (pos_mod(px + g.pad_left - kx * g.dw, g.sw) == 0) kxs.push_back(kx);
      IndirectionTable::Segment seg;
      for (int64_t ky : kys)
        for (int64_t kx : kxs) seg.taps.push_back(static_cast<int32_t>(ky * g.kw + kx));
      const int64_t ntaps = static_cast<int64_t>(seg.taps.size());
      const int64_t rows_y = (g.ih - py + g.sh - 1) / g.sh, rows_x = (g.iw - px + g.sw - 1) / g.sw;
      const int64_t pixels = rows_y * rows_x;
      seg.first_tile = t.num_tiles();
      seg.num_tiles = (pixels + mr - 1) / mr;
      const int64_t segi = static_cast<int64_t>(t.segments.size());
      t.segments.push_back(seg);
      for (int64_t q0 = 0; q0 < pixels; q0 += mr) {
        add_tile(t, segi, ntaps, std::min(mr, pixels - q0), [&](int64_t r, int64_t& c_off, auto&& set) {
          const int64_t q = q0 + r;
          const int64_t iy = py + (q / rows_x) * g.sh, ix = px + (q % rows_x) * g.sw;
          c_off = (iy * g.iw + ix) * g.ic;
          int64_t tap = 0;
          for (int64_t ky : kys) {
            const int64_t ny = iy + g.pad_top - ky * g.dh;  // divisible by sh by the choice of the phase
            const int64_t oy = ny >= 0 ? ny / g.sh : -1;
            for (int64_t kx : kxs) {
              const int64_t nx = ix + g.pad_left - kx * g.dw;
              const int64_t ox = nx >= 0 ? nx / g.sw : -1;
              const bool ok = oy >= 0 && oy < g.oh && ox >= 0 && ox < g.ow;
              set(tap++, ok ? (oy * g.ow + ox) * g.oc : -1);
            }
          }
        });
      }
    }
  return t;
}

WgradTable wgrad_table(const Conv2dGeometry& g) {
  WgradTable t;
  t.begin.push_back(0);
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t iy = core::padded_source(oy * g.sh - g.pad_top + ky * g.dh, g.ih, g.padding_mode);
        if (iy < 0) continue;
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t ix = core::padded_source(ox * g.sw - g.pad_left + kx * g.dw, g.iw, g.padding_mode);
          if (ix < 0) continue;
          t.x_off.push_back((iy * g.iw + ix) * g.ic);
          t.dz_off.push_back((oy * g.ow + ox) * g.oc);
        }
      }
      t.begin.push_back(static_cast<int64_t>(t.x_off.size()));
      t.per_image.push_back(t.begin.back() - t.begin[t.begin.size() - 2]);
      t.max_len = std::max(t.max_len, t.per_image.back());
    }
  return t;
}

WgradTable wgrad_table_images(const WgradTable& one, const Conv2dGeometry& g, int64_t images) {
  const int64_t x_image = g.ih * g.iw * g.ic, dz_image = g.oh * g.ow * g.oc;
  WgradTable t;
  t.begin.push_back(0);
  t.per_image = one.per_image;
  for (std::size_t tap = 0; tap + 1 < one.begin.size(); ++tap) {
    for (int64_t j = 0; j < images; ++j)
      for (int64_t e = one.begin[tap]; e < one.begin[tap + 1]; ++e) {
        t.x_off.push_back(j * x_image + one.x_off[static_cast<std::size_t>(e)]);
        t.dz_off.push_back(j * dz_image + one.dz_off[static_cast<std::size_t>(e)]);
      }
    t.begin.push_back(static_cast<int64_t>(t.x_off.size()));
  }
  t.max_len = images * one.max_len;
  return t;
}

Conv2dGeometry padded_grid_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry p = g;
  p.ih = g.ih + g.pad_top + g.pad_bottom;
  p.iw = g.iw + g.pad_left + g.pad_right;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 0;
  p.padding_mode = PaddingMode::zeros;
  return p;
}

void fold_padded_gradient(const Conv2dGeometry& g, const float* dxp, float* dx, int threads) {
  const int64_t hp = g.ih + g.pad_top + g.pad_bottom, wp = g.iw + g.pad_left + g.pad_right, c = g.ic;
  // Images are independent; inside one image several padded cells may land on the same input cell.
  parallel_for(threads, g.n, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n) {
      float* d = dx + n * g.ih * g.iw * c;
      const float* s = dxp + n * hp * wp * c;
      std::fill_n(d, g.ih * g.iw * c, 0.0f);
      for (int64_t y = 0; y < hp; ++y) {
        const int64_t sy = core::padded_source(y - g.pad_top, g.ih, g.padding_mode);
        if (sy < 0) continue;
        for (int64_t x = 0; x < wp; ++x) {
          const int64_t sx = core::padded_source(x - g.pad_left, g.iw, g.padding_mode);
          if (sx < 0) continue;
          float* dr = d + (sy * g.iw + sx) * c;
          const float* sr = s + (y * wp + x) * c;
          for (int64_t k = 0; k < c; ++k) dr[k] += sr[k];
        }
      }
    }
  });
}

}  // namespace convkit::ops
