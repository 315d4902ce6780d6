// src/ukernels/dwconv/dwconv_impl.hpp — depthwise convolution microkernels, written once over simd.hpp and
// instantiated by each ISA's translation unit. Vectorised over channels (NHWC keeps them contiguous); the
// channel multiplier 1 case (the common one) keeps the most in registers; multipliers > 1 expand the input channels
// to the output lanes with one permutation per vector.
// Internal linkage throughout: see simd.hpp.
#pragma once

#include <type_traits>

#include "ukernels/simd.hpp"
#include "ukernels/ukernels.hpp"

namespace convkit::uk {
namespace {

using V = Simd::V;
constexpr std::size_t kLanes = Simd::W;

inline const float* row_or_zero(const float* base, int64_t off, const float* zero) {
  return off < 0 ? zero : base + off;
}

// P output pixels (1 or 2), multiplier 1: out_p[c] = act(bias[c] + sum_t a_pt[c] * w[t][c]). Two pixels share each
// weight load: 3 loads per 2 FMAs instead of 4.
template <int P>
inline void dwconv_pixels_m1(std::size_t channels, std::size_t taps, const float* a_base,
                             const int64_t* const (&off)[P], const float* zero, const float* w, const float* bias,
                             float* const (&out)[P], bool relu) {
  const V vzero = Simd::zero();
  std::size_t c = 0;
  // Four vectors of channels at a time: 4 * P independent FMA chains per tap.
  for (; c + 4 * kLanes <= channels; c += 4 * kLanes) {
    V acc[P][4];
#pragma GCC unroll 4
    for (std::size_t j = 0; j < 4; ++j) {
      const V b = bias ? Simd::loadu(bias + c + j * kLanes) : vzero;
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p) acc[p][j] = b;
    }
    for (std::size_t t = 0; t < taps; ++t) {
      const float* a[P];
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p) a[p] = row_or_zero(a_base, off[p][t], zero) + c;
      const float* wt = w + t * channels + c;
#pragma GCC unroll 4
      for (std::size_t j = 0; j < 4; ++j) {
        const V wv = Simd::loadu(wt + j * kLanes);
#pragma GCC unroll 2
        for (int p = 0; p < P; ++p) acc[p][j] = Simd::fma(Simd::loadu(a[p] + j * kLanes), wv, acc[p][j]);
      }
    }
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
      for (std::size_t j = 0; j < 4; ++j)
        Simd::storeu(out[p] + c + j * kLanes, relu ? uk::relu(acc[p][j]) : acc[p][j]);
  }
  for (; c < channels; c += kLanes) {
    const std::size_t n = channels - c;
    const V b = bias ? load_upto(bias + c, n) : vzero;
    V acc[P];
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) acc[p] = b;
    for (std::size_t t = 0; t < taps; ++t) {
      const V wv = load_upto(w + t * channels + c, n);
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p)
        acc[p] = Simd::fma(load_upto(row_or_zero(a_base, off[p][t], zero) + c, n), wv, acc[p]);
    }
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) store_upto(out[p] + c, relu ? uk::relu(acc[p]) : acc[p], n);
  }
}

// Multiplier > 1: output channel o reads input channel o / mult. A block of W output channels starting at o0 reads
// the input channels [o0 / mult, (o0 + n - 1) / mult]: one (masked) vector load, then a lane permutation puts input
// channel (o0 + l) / mult in lane l. The permutation depends on the block only, so it is computed once per block.
struct Expand {
  alignas(64) int32_t idx[kLanes];  // lane l takes loaded lane idx[l]
  std::size_t in0 = 0, nin = 0;     // the input channels loaded: [in0, in0 + nin)
  Expand(std::size_t o0, std::size_t n, std::size_t mult) : in0(o0 / mult), nin((o0 + n - 1) / mult - o0 / mult + 1) {
    for (std::size_t l = 0; l < kLanes; ++l) idx[l] = int32_t(l < n ? (o0 + l) / mult - in0 : 0);
  }
};

inline V permute(V v, const int32_t* idx) {
#if defined(__AVX512F__)
  return _mm512_maskz_permutexvar_ps(__mmask16(0xFFFF), _mm512_load_si512(idx), v);  // maskz: see Simd::max
#elif defined(__AVX2__)
  return _mm256_permutevar8x32_ps(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(idx)));
#elif defined(__clang__)
  // clang has no __builtin_shuffle with run-time indices (the sanitizer and fuzz builds use clang).
  V r;
  for (int l = 0; l < 4; ++l) r[l] = v[idx[l] & 3];
  return r;
#else
  typedef int32_t IV __attribute__((vector_size(16)));
  IV iv;
  std::memcpy(&iv, idx, sizeof iv);
  return __builtin_shuffle(v, iv);
#endif
}

// The input channels of block e of one input row, spread over the block's output lanes.
inline V load_expanded(const float* row, const Expand& e) { return permute(load_upto(row + e.in0, e.nin), e.idx); }

// Multiplier > 1, all pixels: blocks of W output channels outside (one permutation each), pixels inside.
inline void dwconv_mult(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                        const float* a_base, const int64_t* a_off, const float* zero, const float* w,
                        const float* bias, float* c_base, const int64_t* c_off, bool relu) {
  for (std::size_t o0 = 0; o0 < channels; o0 += kLanes) {
    const std::size_t n = channels - o0 < kLanes ? channels - o0 : kLanes;
    const Expand e(o0, n, mult);
    const V b = bias ? load_upto(bias + o0, n) : Simd::zero();
    for (std::size_t i = 0; i < npix; ++i) {
      const int64_t* off = a_off + i * taps;
      V acc = b;
      for (std::size_t t = 0; t < taps; ++t)
        acc = Simd::fma(load_expanded(row_or_zero(a_base, off[t], zero), e), load_upto(w + t * channels + o0, n), acc);
      store_upto(c_base + c_off[i] + o0, relu ? uk::relu(acc) : acc, n);
    }
  }
}

inline void dwconv(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps, const float* a_base,
                   const int64_t* a_off /* npix x taps */, const float* zero, const float* w /* taps x channels */,
                   const float* bias, float* c_base, const int64_t* c_off /* npix */, const GemmParams* p) {
  const bool relu = p->relu != 0;
  if (mult != 1) return dwconv_mult(npix, channels, mult, taps, a_base, a_off, zero, w, bias, c_base, c_off, relu);
  std::size_t i = 0;
  for (; i + 2 <= npix; i += 2) {
      const int64_t* const off[2] = {a_off + i * taps, a_off + (i + 1) * taps};
      float* const out[2] = {c_base + c_off[i], c_base + c_off[i + 1]};
      dwconv_pixels_m1<2>(channels, taps, a_base, off, zero, w, bias, out, relu);
    }
  for (; i < npix; ++i) {
    const int64_t* const off[1] = {a_off + i * taps};
    float* const out[1] = {c_base + c_off[i]};
    dwconv_pixels_m1<1>(channels, taps, a_base, off, zero, w, bias, out, relu);
  }
}

// ---- 3x3, multiplier 1, dilation 1: whole output rows, borders included ----
// Output pixel j of a row reads input columns ix0 + j * stride + kx (kx < 3) of up to three input rows; a column
// outside [0, iw) or a missing (null) row is padding, whose taps are skipped (never multiplied as zero: 0 * inf would
// make a NaN the reference does not have). Pixels run in tiles of TW: for each tile, every block of W channels
// keeps the tile's TW sums in registers and loads each input column once per row (stride 1: TW + 2 columns for
// 9 * TW FMAs), so the loads stream along the rows' contiguous channels. A tile at the row's left end may have its
// first window column in the padding (L), one at the right end its last (R); those columns are skipped at compile
// time. Pixels whose windows are cut otherwise (wide padding, rows narrower than the kernel, strides > 2) go
// through a per-pixel path that tests every column.

template <int N>
struct Int {
  static constexpr int value = N;
};

// f(Int<B>{}), ..., f(Int<E - 1>{}), unrolled at compile time.
template <int B, int E, typename F>
__attribute__((always_inline)) inline void static_for(F&& f) {
  if constexpr (B < E) {
    f(Int<B>{});
    static_for<B + 1, E>(f);
  }
}

// The whole-row kernels below are unrolled templates over tile width, stride, a tail mask (M) and whether the tile's
// first / last window column is padding (the edge flags). Optimized builds make the edge flags compile-time
// constants: four copies of every tile, measured 5-20% faster on small stride-2 layers than run-time flags.
// CONVKIT_LEAN_UKERNELS (the sanitizer presets) makes them run-time bools and gives the full channel blocks the
// masked form too: the same code with 8x fewer copies, which instrumented clang builds compile in minutes instead of
// a quarter of an hour (the masked full blocks would be slower: a masked store does not forward to the weight
// gradient's reload of its sums).
#if defined(CONVKIT_LEAN_UKERNELS)
constexpr bool kLeanKernels = true;
#else
constexpr bool kLeanKernels = false;
#endif
constexpr bool kMaskAlways = kLeanKernels;

// Calls f(l, r) with the edge flags as constants (or as they are, with kLeanKernels).
template <typename F>
__attribute__((always_inline)) inline void with_edges(bool l, bool r, F&& f) {
  using T = std::true_type;
  using N = std::false_type;
  if constexpr (kLeanKernels)
    f(l, r);
  else if (l && r)
    f(T{}, T{});
  else if (l)
    f(T{}, N{});
  else if (r)
    f(N{}, T{});
  else
    f(N{}, N{});
}

template <bool M>
__attribute__((always_inline)) inline V load_m(const float* p, std::size_t n) {
  if constexpr (M)
    return Simd::load_n(p, n);
  else
    return Simd::loadu(p);
}
template <bool M>
__attribute__((always_inline)) inline void store_m(float* p, V v, std::size_t n) {
  if constexpr (M)
    Simd::store_n(p, v, n);
  else
    Simd::storeu(p, v);
}

// Keeps v in a register: the compiler would otherwise fold a column's load into each of its (up to 3) FMAs as a
// memory operand, and the loads, not the FMAs, would bound the kernels (measured: 1.5x slower).
__attribute__((always_inline)) inline void in_register(V& v) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}

// Whether window column col of NC is a skipped padding column: the first with l, the last with r (bool, or
// std::bool_constant: see kLeanKernels). col is a compile-time constant at every call, so inner columns test
// nothing.
template <int NC>
__attribute__((always_inline)) inline bool edge_skipped(int col, auto l, auto r) {
  return (col == 0 && l) || (col == NC - 1 && r);
}

// The rows of one output row that exist: input row k (column 0) and its tap row of the [3][3][ld] weights (or dw).
struct DwRows {
  const float* x[3];
  int n = 0;
  int ky[3];
};

inline DwRows dw_rows(const float* const* rows) {
  DwRows r;
  for (int ky = 0; ky < 3; ++ky)
    if (rows[ky]) {
      r.x[r.n] = rows[ky];
      r.ky[r.n++] = ky;
    }
  return r;
}

// The FMAs of one block of channels [c, c + n) of a tile of TW outputs: for each row present (r.x[k], tap row
// r.ky[k] of the [3][3][ld] weights w), window column col (from column c0, ld floats apart) reaches output t through
// tap kx = Kx{}(col, t) where that is 0, 1 or 2: acc[t] += x[col] * w[ky][kx]. Kx is a stateless constexpr function
// (the forward and the stride-2 backward-data windows differ only there); edge flags as edge_skipped.
template <int NC, int TW, bool M, typename Kx>
__attribute__((always_inline)) inline void dw3_taps(V (&acc)[TW], const DwRows& r, int64_t c0, std::size_t ld,
                                                   std::size_t c, std::size_t n, const float* w, auto l, auto rr, Kx) {
  const int64_t sld = static_cast<int64_t>(ld);
  for (int k = 0; k < r.n; ++k) {
    const float* x = r.x[k] + c0 * sld + c;
    const float* wt = w + std::size_t(r.ky[k] * 3) * ld + c;
    const V w0 = load_m<M>(wt, n), w1 = load_m<M>(wt + ld, n), w2 = load_m<M>(wt + 2 * ld, n);
    static_for<0, NC>([&](auto col) {
      if (edge_skipped<NC>(col.value, l, rr)) return;
      V xv = load_m<M>(x + col.value * sld, n);
      in_register(xv);
      static_for<0, TW>([&](auto t) {
        constexpr int kx = Kx{}(decltype(col)::value, decltype(t)::value);
        if constexpr (kx >= 0 && kx < 3) acc[t.value] = Simd::fma(xv, kx == 0 ? w0 : kx == 1 ? w1 : w2, acc[t.value]);
      });
    });
  }
}

// Forward, one block of channels [c, c + n) of a tile of TW pixels whose window starts at input column xc; with l
// (r) the window's first (last) column is padding and skipped.
template <int S, int TW, bool M>
__attribute__((always_inline)) inline void dw3_fwd_block(const DwRows& r, int64_t xc, std::size_t ld, std::size_t c,
                                                        std::size_t n, const float* w, const float* bias, float* out,
                                                        bool relu, bool nt, auto l, auto rr) {
  constexpr int NC = (TW - 1) * S + 3;  // window columns
  const V b = bias ? load_m<M>(bias + c, n) : Simd::zero();
  V acc[TW];
  static_for<0, TW>([&](auto p) { acc[p.value] = b; });
  dw3_taps<NC, TW, M>(acc, r, xc, ld, c, n, w, l, rr, [](int col, int p) { return col - p * S; });
  static_for<0, TW>([&](auto p) {
    const V v = relu ? uk::relu(acc[p.value]) : acc[p.value];
    if (!M && nt)
      Simd::stream(out + std::size_t(p.value) * ld + c, v);
    else
      store_m<M>(out + std::size_t(p.value) * ld + c, v, n);
  });
}

template <int S, int TW>
inline void dw3_fwd_tile(const DwRows& r, int64_t xc, std::size_t count, std::size_t ld, const float* w,
                         const float* bias, float* out, bool relu, bool nt, auto l, auto rr) {
  std::size_t c = 0;
  for (; c + kLanes <= count; c += kLanes)
    dw3_fwd_block<S, TW, kMaskAlways>(r, xc, ld, c, kLanes, w, bias, out, relu, nt, l, rr);
  if (c < count) dw3_fwd_block<S, TW, true>(r, xc, ld, c, count - c, w, bias, out, relu, nt, l, rr);
}

// One pixel whose window starts at input column a, every column tested.
inline void dw3_fwd_pixel(const DwRows& r, int64_t a, int64_t iw, std::size_t count, std::size_t ld, const float* w,
                          const float* bias, float* out, bool relu) {
  const int64_t sld = static_cast<int64_t>(ld);
  for (std::size_t c = 0; c < count; c += kLanes) {
    const std::size_t n = count - c < kLanes ? count - c : kLanes;
    V acc = bias ? load_upto(bias + c, n) : Simd::zero();
    for (int k = 0; k < r.n; ++k)
      for (int kx = 0; kx < 3; ++kx)
        if (a + kx >= 0 && a + kx < iw)
          acc = Simd::fma(load_upto(r.x[k] + (a + kx) * sld + c, n),
                          load_upto(w + std::size_t(r.ky[k] * 3 + kx) * ld + c, n), acc);
    store_upto(out + c, relu ? uk::relu(acc) : acc, n);
  }
}

// Pixels [s, e) in tiles of 8, 4, 2, 1 (exactly: the weight gradient accumulates), the first with flag l when
// first_l, the one ending at e with flag r when last_r. tile(Int<TW>, j, l, r), flags as with_edges passes them.
template <int MaxTW, typename Tile>
inline void dw3_tiles(int64_t s, int64_t e, bool first_l, bool last_r, Tile&& tile) {
  auto run = [&](auto tw, int64_t j) {
    constexpr int TW = decltype(tw)::value;
    with_edges(first_l && j == s, last_r && j + TW == e, [&](auto l, auto r) { tile(tw, j, l, r); });
  };
  int64_t j = s;
  // Row lengths 7 * 2^k (most networks' sizes): equal tiles of 14 or 7 rather than 8 + 4 + 2 (+ 1), whose small
  // tiles load more per FMA.
  if (MaxTW >= 8 && (e - s) % 7 == 0) {
    if constexpr (MaxTW >= 14)
      for (; j + 14 <= e; j += 14) run(Int<14>{}, j);
    if constexpr (MaxTW >= 8)
      for (; j + 7 <= e; j += 7) run(Int<7>{}, j);
    return;
  }
  if constexpr (MaxTW == 16) {
    for (; j + 16 <= e; j += 16) run(Int<16>{}, j);
    if (j + 8 <= e) run(Int<8>{}, j), j += 8;
  } else if constexpr (MaxTW == 8) {
    for (; j + 8 <= e; j += 8) run(Int<8>{}, j);
  } else {
    for (; j + 4 <= e; j += 4) run(Int<4>{}, j);
  }
  if (MaxTW >= 8 && j + 4 <= e) run(Int<4>{}, j), j += 4;
  if (j + 2 <= e) run(Int<2>{}, j), j += 2;
  if (j < e) run(Int<1>{}, j);
}

// The input columns of a tile of tw pixels (three rows) ld floats apart, in bytes.
constexpr std::size_t dw3_tile_bytes(std::size_t tw, std::size_t stride, std::size_t ld) {
  return 3 * ((tw - 1) * stride + 3) * ld * sizeof(float);
}
constexpr std::size_t kDwTileL1Bytes = 32 * 1024;

// The split of a row: pixels [0, lo) and [hi, npix) per pixel, [s, e) in tiles (lo <= s, e <= hi), first_l / last_r
// as dw3_tiles. Interior pixels have their whole window inside [0, iw).
struct DwRowSplit {
  int64_t lo, hi, s, e;
  bool first_l, last_r;
};

inline DwRowSplit dw3_split(int64_t npix, int64_t stride, int64_t iw, int64_t ix0) {
  DwRowSplit d{npix, npix, npix, npix, false, false};
  if (stride > 2) {
    d.lo = d.s = d.e = d.hi = 0;  // everything per pixel
    return d;
  }
  // Interior: ix0 + j * stride >= 0 and ix0 + j * stride + 2 <= iw - 1.
  const int64_t j_lo = ix0 >= 0 ? 0 : (-ix0 + stride - 1) / stride;
  const int64_t j_hi = iw - 3 - ix0 < 0 ? -1 : ((iw - 3 - ix0) / stride < npix - 1 ? (iw - 3 - ix0) / stride : npix - 1);
  if (j_lo > j_hi) {
    d.lo = d.s = d.e = d.hi = 0;
    return d;
  }
  d.first_l = j_lo == 1 && ix0 == -1;  // pixel 0 misses only its first column
  d.last_r = j_hi == npix - 2 && ix0 + (npix - 1) * stride + 2 == iw;  // the last pixel only its last
  d.s = d.first_l ? 0 : j_lo;
  d.e = d.last_r ? npix : j_hi + 1;
  d.lo = d.s;
  d.hi = d.e;
  return d;
}

template <int S>
inline void dw3_fwd_row_s(std::size_t npix, std::size_t count, std::size_t ld, const DwRows& r, int64_t iw,
                          int64_t ix0, const float* w, const float* bias, float* out, bool relu, bool nt) {
  const DwRowSplit d = dw3_split(static_cast<int64_t>(npix), S, iw, ix0);
  for (int64_t j = 0; j < d.lo; ++j)
    dw3_fwd_pixel(r, ix0 + j * S, iw, count, ld, w, bias, out + std::size_t(j) * ld, relu);
  auto tile = [&](auto tw, int64_t j, auto l, auto rr) {
    dw3_fwd_tile<S, decltype(tw)::value>(r, ix0 + j * S, count, ld, w, bias, out + std::size_t(j) * ld, relu, nt, l,
                                         rr);
  };
  // Tiles of 16 where 16 sums, 3 weights and a column fit in the registers (32 of AVX-512) and the tile's input
  // columns in L1 (measured: wider tiles over many channels lose more to L1 misses than they save in loads); 8
  // otherwise.
  if (kLanes >= 16 && dw3_tile_bytes(16, S, ld) <= kDwTileL1Bytes)
    dw3_tiles<16>(d.s, d.e, d.first_l, d.last_r, tile);
  else
    dw3_tiles<8>(d.s, d.e, d.first_l, d.last_r, tile);
  for (int64_t j = d.hi; j < static_cast<int64_t>(npix); ++j)
    dw3_fwd_pixel(r, ix0 + j * S, iw, count, ld, w, bias, out + std::size_t(j) * ld, relu);
}

inline void dwconv3x3_row_any(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                              const float* const* rows, int64_t iw, int64_t ix0, const float* w, const float* bias,
                              float* out, const GemmParams* p) {
  const DwRows r = dw_rows(rows);
  const bool relu = p->relu != 0;
  // Non-temporal stores (GemmParams::stream) where every full block of the tiles starts on a 64-byte boundary.
  const bool nt = p->stream != 0 && reinterpret_cast<std::uintptr_t>(out) % 64 == 0 && ld % 16 == 0;
  if (stride == 1)
    dw3_fwd_row_s<1>(npix, count, ld, r, iw, ix0, w, bias, out, relu, nt);
  else if (stride == 2)
    dw3_fwd_row_s<2>(npix, count, ld, r, iw, ix0, w, bias, out, relu, nt);
  else
    for (std::size_t j = 0; j < npix; ++j)
      dw3_fwd_pixel(r, ix0 + int64_t(j * stride), iw, count, ld, w, bias, out + j * ld, relu);
}

// ---- 3x3, stride S (1 or 2), R output rows at once (AVX-512's 32 registers) ----
// Output row r of the group reads input rows r * S + ky, ky < 3, of the group's (R - 1) * S + 3 (null: padding,
// skipped). A tile of TW pixels keeps R x TW sums and the 9 weights of its channel block in registers and loads each
// input column once for the whole group: at stride 1, R + 2 rows of TW + 2 columns for 9 * R * TW FMAs (R = 3,
// TW = 7: 45 loads for 189 FMAs, 0.24 a FMA), where a row at a time loads 3 rows for 9 * TW (0.38 a FMA with tiles
// of 14); at stride 2 with R = 2, 75 loads for 126 FMAs (0.60; a row at a time 0.69-0.71). The loads are what bound
// these layers: a pixel of 256-1024 channels is 1-4 KiB, so a row's columns share few L1 sets and most loads go to
// L2. The lambdas are forced inline: GCC otherwise left the nested ones as calls, the sums in memory.
constexpr int kDwGroupRows = kLanes >= 16 ? 3 : 1;

#define CONVKIT_INLINE __attribute__((always_inline))

// The taps of a group tile, one block of channels [c, c + n): for each input row K of the group present and each
// window column C (edge flags as edge_skipped), the column is loaded once and fma_at(Int<r>, Int<p>, Int<t>, xv)
// called for every output row r and pixel p it reaches through tap t = ky * 3 + kx (ky = K - r * S, kx = C - p * S).
template <int S, int R, int TW, bool M, typename FmaAt>
CONVKIT_INLINE inline void dw3_group_taps(const float* const* x, int64_t xc, std::size_t ld, std::size_t c,
                                          std::size_t n, auto l, auto rr, FmaAt&& fma_at) {
  constexpr int NC = (TW - 1) * S + 3, NR = (R - 1) * S + 3;
  const int64_t sld = static_cast<int64_t>(ld);
  static_for<0, NR>([&](auto k) CONVKIT_INLINE {
    constexpr int K = decltype(k)::value;
    if (!x[K]) return;
    const float* xp = x[K] + xc * sld + c;
    static_for<0, NC>([&](auto col) CONVKIT_INLINE {
      constexpr int C = decltype(col)::value;
      if (edge_skipped<NC>(C, l, rr)) return;
      V xv = load_m<M>(xp + C * sld, n);
      in_register(xv);
      static_for<0, R>([&](auto r) CONVKIT_INLINE {
        constexpr int ky = K - decltype(r)::value * S;
        if constexpr (ky >= 0 && ky < 3)
          static_for<0, TW>([&](auto p) CONVKIT_INLINE {
            constexpr int kx = C - decltype(p)::value * S;
            if constexpr (kx >= 0 && kx < 3) fma_at(r, p, Int<ky * 3 + kx>{}, xv);
          });
      });
    });
  });
}

// The row loop of the group kernels: the pixels whose windows are cut otherwise than in one edge column,
// pixel(r, rows of output row r, j), one output row at a time; the others in tiles of 7, 4, 2, 1 pixels,
// tile(Int<TW>, j, l, rr) with the edge flags as with_edges passes them.
template <int S, int R, typename Pixel, typename Tile>
inline void dw3_group_row(std::size_t npix, const float* const* x, int64_t iw, int64_t ix0, Pixel&& pixel,
                          Tile&& tile) {
  const DwRowSplit d = dw3_split(static_cast<int64_t>(npix), S, iw, ix0);
  auto pixels = [&](int64_t j0, int64_t j1) {
    for (int r = 0; r < R; ++r) {
      const float* const rows[3] = {x[r * S], x[r * S + 1], x[r * S + 2]};
      const DwRows dr = dw_rows(rows);
      for (int64_t j = j0; j < j1; ++j) pixel(r, dr, j);
    }
  };
  pixels(0, d.lo);
  auto run = [&](auto tw, int64_t j) {
    constexpr int TW = decltype(tw)::value;
    with_edges(d.first_l && j == d.s, d.last_r && j + TW == d.e, [&](auto l, auto rr) { tile(tw, j, l, rr); });
  };
  int64_t j = d.s;
  for (; j + 7 <= d.e; j += 7) run(Int<7>{}, j);
  if (j + 4 <= d.e) run(Int<4>{}, j), j += 4;
  if (j + 2 <= d.e) run(Int<2>{}, j), j += 2;
  if (j < d.e) run(Int<1>{}, j);
  pixels(d.hi, static_cast<int64_t>(npix));
}

template <int S, int R, int TW, bool M>
CONVKIT_INLINE inline void dw3_fwd_group_block(const float* const* x, int64_t xc, std::size_t ld, std::size_t c,
                                               std::size_t n, const float* w, const float* bias, float* const* out,
                                               bool relu, bool nt, auto l, auto rr) {
  V wv[9];
  static_for<0, 9>([&](auto t) CONVKIT_INLINE { wv[t.value] = load_m<M>(w + std::size_t(t.value) * ld + c, n); });
  const V b = bias ? load_m<M>(bias + c, n) : Simd::zero();
  V acc[R][TW];
  static_for<0, R>([&](auto r) CONVKIT_INLINE {
    static_for<0, TW>([&](auto p) CONVKIT_INLINE { acc[r.value][p.value] = b; });
  });
  dw3_group_taps<S, R, TW, M>(x, xc, ld, c, n, l, rr, [&](auto r, auto p, auto t, V xv) CONVKIT_INLINE {
    acc[r.value][p.value] = Simd::fma(xv, wv[t.value], acc[r.value][p.value]);
  });
  static_for<0, R>([&](auto r) CONVKIT_INLINE {
    static_for<0, TW>([&](auto p) CONVKIT_INLINE {
      const V v = relu ? uk::relu(acc[r.value][p.value]) : acc[r.value][p.value];
      float* o = out[r.value] + std::size_t(p.value) * ld + c;
      if (!M && nt)
        Simd::stream(o, v);
      else
        store_m<M>(o, v, n);
    });
  });
}

template <int S, int R>
inline void dw3_fwd_group(std::size_t npix, std::size_t count, std::size_t ld, const float* const* x, int64_t iw,
                          int64_t ix0, const float* w, const float* bias, float* const* out, bool relu, bool nt) {
  dw3_group_row<S, R>(
      npix, x, iw, ix0,
      [&](int r, const DwRows& dr, int64_t j) {
        dw3_fwd_pixel(dr, ix0 + j * S, iw, count, ld, w, bias, out[r] + std::size_t(j) * ld, relu);
      },
      [&](auto tw, int64_t j, auto l, auto rr) {
        constexpr int TW = decltype(tw)::value;
        float* outs[R];
        for (int r = 0; r < R; ++r) outs[r] = out[r] + std::size_t(j) * ld;
        std::size_t c = 0;
        for (; c + kLanes <= count; c += kLanes)
          dw3_fwd_group_block<S, R, TW, kMaskAlways>(x, ix0 + j * S, ld, c, kLanes, w, bias, outs, relu, nt, l, rr);
        if (c < count)
          dw3_fwd_group_block<S, R, TW, true>(x, ix0 + j * S, ld, c, count - c, w, bias, outs, relu, nt, l, rr);
      });
}

// nrows output rows from in_rows[0 .. (nrows - 1) * stride + 3) into out_rows[0 .. nrows): 2 or 3 at once at stride
// 1 and 2 at stride 2 where the ISA has the registers, otherwise one row at a time.
inline void dwconv3x3_rows_any(std::size_t nrows, std::size_t npix, std::size_t count, std::size_t ld,
                               std::size_t stride, const float* const* in_rows, int64_t iw, int64_t ix0,
                               const float* w, const float* bias, float* const* out_rows, const GemmParams* p) {
  const bool nt = p->stream != 0 && reinterpret_cast<std::uintptr_t>(out_rows[0]) % 64 == 0 && ld % 16 == 0;
  const bool relu = p->relu != 0;
  // (Stride 2 runs groups of 2 only: 3 measured slower there, see conv2d_depthwise.cpp.)
  if constexpr (kDwGroupRows >= 3) {
    if (stride == 1 && nrows == 3)
      return dw3_fwd_group<1, 3>(npix, count, ld, in_rows, iw, ix0, w, bias, out_rows, relu, nt);
    if (stride == 1 && nrows == 2)
      return dw3_fwd_group<1, 2>(npix, count, ld, in_rows, iw, ix0, w, bias, out_rows, relu, nt);
    if (stride == 2 && nrows == 2)
      return dw3_fwd_group<2, 2>(npix, count, ld, in_rows, iw, ix0, w, bias, out_rows, relu, nt);
  }
  for (std::size_t r = 0; r < nrows; ++r)
    dwconv3x3_row_any(npix, count, ld, stride, in_rows + r * stride, iw, ix0, w, bias, out_rows[r], p);
}

// Backward data of the 3x3 stride-2 convolution, one dx row: dx column ix (q = q0 + ix) gets dz column ox through
// tap kx = q - 2 * ox (kx < 3) of every dz row present (rows[ky]: the dz row whose output row reads this dx row
// through tap row ky, or null). A tile of TW dx columns starting at q = 2b + P reads dz columns b - 1 + r,
// r < NC = (P + TW - 1) / 2 + 2, and dx column i of the tile gets dz column r through tap P + i + 2 - 2r; a tile
// whose first (L) or last (R) dz column is outside [0, ow) skips it, other cut tiles go per pixel.
template <int P, int TW, bool M>
__attribute__((always_inline)) inline void dw3_bwd2_block(const DwRows& r, int64_t oc0, std::size_t ld,
                                                         std::size_t c, std::size_t n, const float* w, float* out,
                                                         auto l, auto rr) {
  constexpr int NC = (P + TW - 1) / 2 + 2;
  V acc[TW];
  static_for<0, TW>([&](auto i) { acc[i.value] = Simd::zero(); });
  dw3_taps<NC, TW, M>(acc, r, oc0, ld, c, n, w, l, rr, [](int col, int i) { return P + i + 2 - 2 * col; });
  static_for<0, TW>([&](auto i) { store_m<M>(out + std::size_t(i.value) * ld + c, acc[i.value], n); });
}

template <int P, int TW>
inline void dw3_bwd2_tile(const DwRows& r, int64_t oc0, std::size_t count, std::size_t ld, const float* w, float* out,
                          auto l, auto rr) {
  std::size_t c = 0;
  for (; c + kLanes <= count; c += kLanes) dw3_bwd2_block<P, TW, kMaskAlways>(r, oc0, ld, c, kLanes, w, out, l, rr);
  if (c < count) dw3_bwd2_block<P, TW, true>(r, oc0, ld, c, count - c, w, out, l, rr);
}

// One dx column q, every tap tested.
inline void dw3_bwd2_pixel(const DwRows& r, int64_t q, int64_t ow, std::size_t count, std::size_t ld, const float* w,
                           float* out) {
  const int64_t sld = static_cast<int64_t>(ld);
  for (std::size_t c = 0; c < count; c += kLanes) {
    const std::size_t n = count - c < kLanes ? count - c : kLanes;
    V acc = Simd::zero();
    for (int k = 0; k < r.n; ++k)
      for (int kx = 0; kx < 3; ++kx) {
        const int64_t t = q - kx;
        if (t < 0 || t % 2 != 0 || t / 2 >= ow) continue;
        acc = Simd::fma(load_upto(r.x[k] + (t / 2) * sld + c, n),
                        load_upto(w + std::size_t(r.ky[k] * 3 + kx) * ld + c, n), acc);
      }
    store_upto(out + c, acc, n);
  }
}

template <int P>
inline void dw3_bwd2_row_p(std::size_t npix, std::size_t count, std::size_t ld, const DwRows& r, int64_t ow,
                           int64_t q0, const float* w, float* out) {
  // A tile of TW columns starting at dx column j: q = q0 + j = 2b + P, dz columns b - 1 .. b - 2 + NC.
  auto run = [&](auto tw, int64_t j) {
    constexpr int TW = decltype(tw)::value, NC = (P + TW - 1) / 2 + 2;
    const int64_t b = (q0 + j - P) / 2, first = b - 1, last = b - 2 + NC;
    float* o = out + std::size_t(j) * ld;
    const bool l = first < 0, rr = last >= ow;
    if ((!l || first == -1) && (!rr || last == ow) && NC > int(l) + int(rr))
      with_edges(l, rr, [&](auto el, auto er) { dw3_bwd2_tile<P, TW>(r, first, count, ld, w, o, el, er); });
    else
      for (int i = 0; i < TW; ++i) dw3_bwd2_pixel(r, q0 + j + i, ow, count, ld, w, o + std::size_t(i) * ld);
  };
  const int64_t e = static_cast<int64_t>(npix);
  int64_t j = 0;
  if constexpr (kLanes >= 16)
    for (; j + 16 <= e; j += 16) run(Int<16>{}, j);
  for (; j + 8 <= e; j += 8) run(Int<8>{}, j);
  if (j + 4 <= e) run(Int<4>{}, j), j += 4;
  if (j + 2 <= e) run(Int<2>{}, j), j += 2;
  if (j < e) dw3_bwd2_pixel(r, q0 + j, ow, count, ld, w, out + std::size_t(j) * ld);
}

// The row entry: q0 = pad_left (dx column 0 is q = pad_left); tiles start at even offsets, so every tile has the
// parity of q0.
inline void dwconv3x3_row_bwd2_any(std::size_t npix, std::size_t count, std::size_t ld, const float* const* rows,
                                   int64_t ow, int64_t q0, const float* w, float* out) {
  const DwRows r = dw_rows(rows);
  if (q0 % 2 == 0)
    dw3_bwd2_row_p<0>(npix, count, ld, r, ow, q0, w, out);
  else
    dw3_bwd2_row_p<1>(npix, count, ld, r, ow, q0, w, out);
}

// Weight gradient, one block of channels of a tile: the tile's TW dz vectors stay in registers; NR = 3 keeps the 9
// tap sums of the block in registers (all three rows exist), NR = 1 the 3 of row r.x[k0]. db (when not null) gets
// the dz sums.
template <int S, int TW, bool M, int NR>
__attribute__((always_inline)) inline void dw3_wgrad_block(const DwRows& r, int k0, int64_t xc, std::size_t ld,
                                                          std::size_t c, std::size_t n, const float* dz, float* dw,
                                                          float* db, auto l, auto rr) {
  constexpr int NC = (TW - 1) * S + 3;
  const int64_t sld = static_cast<int64_t>(ld);
  V d[TW];
  static_for<0, TW>([&](auto p) { d[p.value] = load_m<M>(dz + std::size_t(p.value) * ld + c, n); });
  if (db) {
    V s = load_m<M>(db + c, n);
    static_for<0, TW>([&](auto p) { s = Simd::add(s, d[p.value]); });
    store_m<M>(db + c, s, n);
  }
  V a[NR][3];
  const float* x[NR];
  float* dwk[NR];
  static_for<0, NR>([&](auto k) {
    x[k.value] = r.x[k0 + k.value] + xc * sld + c;
    dwk[k.value] = dw + std::size_t(r.ky[k0 + k.value] * 3) * ld + c;
    static_for<0, 3>([&](auto kx) { a[k.value][kx.value] = load_m<M>(dwk[k.value] + kx.value * ld, n); });
  });
  static_for<0, NC>([&](auto col) {
    if (edge_skipped<NC>(col.value, l, rr)) return;
    static_for<0, NR>([&](auto k) {
      V xv = load_m<M>(x[k.value] + col.value * sld, n);
      in_register(xv);
      static_for<0, TW>([&](auto p) {
        constexpr int kx = decltype(col)::value - decltype(p)::value * S;
        if constexpr (kx >= 0 && kx < 3) a[k.value][kx] = Simd::fma(xv, d[p.value], a[k.value][kx]);
      });
    });
  });
  static_for<0, NR>([&](auto k) {
    static_for<0, 3>([&](auto kx) { store_m<M>(dwk[k.value] + kx.value * ld, a[k.value][kx.value], n); });
  });
}

template <int S, int TW, int NR>
inline void dw3_wgrad_tile_nr(const DwRows& r, int k0, int64_t xc, std::size_t count, std::size_t ld, const float* dz,
                              float* dw, float* db, auto l, auto rr) {
  std::size_t c = 0;
  for (; c + kLanes <= count; c += kLanes)
    dw3_wgrad_block<S, TW, kMaskAlways, NR>(r, k0, xc, ld, c, kLanes, dz, dw, db, l, rr);
  if (c < count) dw3_wgrad_block<S, TW, true, NR>(r, k0, xc, ld, c, count - c, dz, dw, db, l, rr);
}

template <int S, int TW>
inline void dw3_wgrad_tile(const DwRows& r, int64_t xc, std::size_t count, std::size_t ld, const float* dz, float* dw,
                           float* db, auto l, auto rr) {
  if (r.n == 3) return dw3_wgrad_tile_nr<S, TW, 3>(r, 0, xc, count, ld, dz, dw, db, l, rr);
  for (int k = 0; k < r.n; ++k)
    dw3_wgrad_tile_nr<S, TW, 1>(r, k, xc, count, ld, dz, dw, k == 0 ? db : nullptr, l, rr);
  if (r.n == 0 && db)  // no input row: only the bias gradient
    for (int p = 0; p < TW; ++p)
      for (std::size_t c = 0; c < count; c += kLanes) {
        const std::size_t n = count - c < kLanes ? count - c : kLanes;
        store_upto(db + c, Simd::add(load_upto(db + c, n), load_upto(dz + std::size_t(p) * ld + c, n)), n);
      }
}

inline void dw3_wgrad_pixel(const DwRows& r, int64_t a, int64_t iw, std::size_t count, std::size_t ld,
                            const float* dz, float* dw, float* db) {
  const int64_t sld = static_cast<int64_t>(ld);
  for (std::size_t c = 0; c < count; c += kLanes) {
    const std::size_t n = count - c < kLanes ? count - c : kLanes;
    const V d = load_upto(dz + c, n);
    if (db) store_upto(db + c, Simd::add(load_upto(db + c, n), d), n);
    for (int k = 0; k < r.n; ++k)
      for (int kx = 0; kx < 3; ++kx)
        if (a + kx >= 0 && a + kx < iw) {
          float* t = dw + std::size_t(r.ky[k] * 3 + kx) * ld + c;
          store_upto(t, Simd::fma(load_upto(r.x[k] + (a + kx) * sld + c, n), d, load_upto(t, n)), n);
        }
  }
}

template <int S>
inline void dw3_wgrad_row_s(std::size_t npix, std::size_t count, std::size_t ld, const DwRows& r, int64_t iw,
                            int64_t ix0, const float* dz, float* dw, float* db) {
  const DwRowSplit d = dw3_split(static_cast<int64_t>(npix), S, iw, ix0);
  for (int64_t j = 0; j < d.lo; ++j) dw3_wgrad_pixel(r, ix0 + j * S, iw, count, ld, dz + std::size_t(j) * ld, dw, db);
  auto tile = [&](auto tw, int64_t j, auto l, auto rr) {
    dw3_wgrad_tile<S, decltype(tw)::value>(r, ix0 + j * S, count, ld, dz + std::size_t(j) * ld, dw, db, l, rr);
  };
  // Tiles of up to 16 pixels where 16 dz vectors, 9 sums and a column fit in the registers (32 of AVX-512) and the
  // tile's columns in L1, 8 where not; 4 with 16 registers.
  if constexpr (kLanes >= 16) {
    if (dw3_tile_bytes(16, S, ld) <= kDwTileL1Bytes)
      dw3_tiles<16>(d.s, d.e, d.first_l, d.last_r, tile);
    else
      dw3_tiles<8>(d.s, d.e, d.first_l, d.last_r, tile);
  } else {
    dw3_tiles<4>(d.s, d.e, d.first_l, d.last_r, tile);
  }
  for (int64_t j = d.hi; j < static_cast<int64_t>(npix); ++j)
    dw3_wgrad_pixel(r, ix0 + j * S, iw, count, ld, dz + std::size_t(j) * ld, dw, db);
}

inline void dwconv3x3_row_wgrad_any(std::size_t npix, std::size_t count, std::size_t ld, std::size_t stride,
                                    const float* const* rows, int64_t iw, int64_t ix0, const float* dz, float* dw,
                                    float* db) {
  const DwRows r = dw_rows(rows);
  if (stride == 1)
    dw3_wgrad_row_s<1>(npix, count, ld, r, iw, ix0, dz, dw, db);
  else if (stride == 2)
    dw3_wgrad_row_s<2>(npix, count, ld, r, iw, ix0, dz, dw, db);
  else
    for (std::size_t j = 0; j < npix; ++j)
      dw3_wgrad_pixel(r, ix0 + int64_t(j * stride), iw, count, ld, dz + j * ld, dw, db);
}

// Weight gradient, R output rows at once (as dw3_fwd_group_block): the tile's R x TW dz vectors and the
// block's 9 tap sums stay in registers while each input column of the group's R + 2 rows is loaded once: R = 3,
// TW = 7: 9 sums loaded and stored, 21 dz and 45 x loads for 189 FMAs, where a row at a time with tiles of 14 loads
// 9 sums, 14 dz and 48 x for 126.
template <int S, int R, int TW, bool M>
CONVKIT_INLINE inline void dw3_wgrad_group_block(const float* const* x, int64_t xc, std::size_t ld, std::size_t c,
                                                 std::size_t n, const float* const* dz, float* dw, float* db, auto l,
                                                 auto rr) {
  V d[R][TW];
  static_for<0, R>([&](auto r) CONVKIT_INLINE {
    static_for<0, TW>([&](auto p) CONVKIT_INLINE {
      d[r.value][p.value] = load_m<M>(dz[r.value] + std::size_t(p.value) * ld + c, n);
    });
  });
  if (db) {
    V s = load_m<M>(db + c, n);
    static_for<0, R>([&](auto r) CONVKIT_INLINE {
      static_for<0, TW>([&](auto p) CONVKIT_INLINE { s = Simd::add(s, d[r.value][p.value]); });
    });
    store_m<M>(db + c, s, n);
  }
  V a[9];
  static_for<0, 9>([&](auto t) CONVKIT_INLINE { a[t.value] = load_m<M>(dw + std::size_t(t.value) * ld + c, n); });
  dw3_group_taps<S, R, TW, M>(x, xc, ld, c, n, l, rr, [&](auto r, auto p, auto t, V xv) CONVKIT_INLINE {
    a[t.value] = Simd::fma(xv, d[r.value][p.value], a[t.value]);
  });
  static_for<0, 9>([&](auto t) CONVKIT_INLINE { store_m<M>(dw + std::size_t(t.value) * ld + c, a[t.value], n); });
}

template <int S, int R>
inline void dw3_wgrad_group(std::size_t npix, std::size_t count, std::size_t ld, const float* const* x, int64_t iw,
                            int64_t ix0, const float* const* dz, float* dw, float* db) {
  dw3_group_row<S, R>(
      npix, x, iw, ix0,
      [&](int r, const DwRows& dr, int64_t j) {
        dw3_wgrad_pixel(dr, ix0 + j * S, iw, count, ld, dz[r] + std::size_t(j) * ld, dw, db);
      },
      [&](auto tw, int64_t j, auto l, auto rr) {
        constexpr int TW = decltype(tw)::value;
        const float* dzs[R];
        for (int r = 0; r < R; ++r) dzs[r] = dz[r] + std::size_t(j) * ld;
        std::size_t c = 0;
        for (; c + kLanes <= count; c += kLanes)
          dw3_wgrad_group_block<S, R, TW, kMaskAlways>(x, ix0 + j * S, ld, c, kLanes, dzs, dw, db, l, rr);
        if (c < count) dw3_wgrad_group_block<S, R, TW, true>(x, ix0 + j * S, ld, c, count - c, dzs, dw, db, l, rr);
      });
}

#undef CONVKIT_INLINE

// The weight gradient of nrows output rows of stride 1 or 2 (dz rows dz_rows[r], input rows in_rows[r * stride ..
// r * stride + 2]), accumulated into dw and db as dwconv3x3_row_wgrad_any does row by row.
inline void dwconv3x3_rows_wgrad_any(std::size_t nrows, std::size_t npix, std::size_t count, std::size_t ld,
                                     std::size_t stride, const float* const* in_rows, int64_t iw, int64_t ix0,
                                     const float* const* dz_rows, float* dw, float* db) {
  if constexpr (kDwGroupRows >= 3) {
    if (stride == 1 && nrows == 3) return dw3_wgrad_group<1, 3>(npix, count, ld, in_rows, iw, ix0, dz_rows, dw, db);
    if (stride == 1 && nrows == 2) return dw3_wgrad_group<1, 2>(npix, count, ld, in_rows, iw, ix0, dz_rows, dw, db);
    if (stride == 2 && nrows == 2) return dw3_wgrad_group<2, 2>(npix, count, ld, in_rows, iw, ix0, dz_rows, dw, db);
  }
  for (std::size_t r = 0; r < nrows; ++r)
    dwconv3x3_row_wgrad_any(npix, count, ld, stride, in_rows + r * stride, iw, ix0, dz_rows[r], dw, db);
}

// For two vectors holding 2W consecutive products of multiplier 2, the W sums of adjacent pairs, in order:
// lane l = a[2l] + a[2l + 1] over the concatenation a = (lo, hi).
inline V add_pairs(V lo, V hi) {
#if defined(__AVX512F__)
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  return _mm512_add_ps(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
#elif defined(__AVX2__)
  // Within each 128-bit half: (lo0+lo1, lo2+lo3, hi0+hi1, hi2+hi3); then the 64-bit quarters put in order.
  const __m256 sums = _mm256_add_ps(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)),
                                    _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(sums), _MM_SHUFFLE(3, 1, 2, 0)));
#else
  // __builtin_shufflevector (constant indices): GCC >= 12 and clang both have it; __builtin_shuffle is GCC's only.
  return __builtin_shufflevector(lo, hi, 0, 2, 4, 6) + __builtin_shufflevector(lo, hi, 1, 3, 5, 7);
#endif
}

// Transposed product, multiplier 2: blocks of W input channels (2W products, two accumulators), the pairs summed
// in registers.
inline void dwconv_reduce_m2(std::size_t npix, std::size_t channels, std::size_t taps, const float* a_base,
                             const int64_t* a_off, const float* zero, const float* w, float* c_base,
                             const int64_t* c_off) {
  const std::size_t oc = channels * 2;
  for (std::size_t i = 0; i < npix; ++i) {
    const int64_t* off = a_off + i * taps;
    float* out = c_base + c_off[i];
    for (std::size_t c0 = 0; c0 < channels; c0 += kLanes) {
      const std::size_t n = channels - c0 < kLanes ? channels - c0 : kLanes;
      const std::size_t o0 = 2 * c0, n_lo = oc - o0 < kLanes ? oc - o0 : kLanes, n_hi = 2 * n - n_lo;
      V lo = Simd::zero(), hi = Simd::zero();
      for (std::size_t t = 0; t < taps; ++t) {
        const float* a = row_or_zero(a_base, off[t], zero) + o0;
        const float* wt = w + t * oc + o0;
        lo = Simd::fma(load_upto(a, n_lo), load_upto(wt, n_lo), lo);
        if (n_hi) hi = Simd::fma(load_upto(a + kLanes, n_hi), load_upto(wt + kLanes, n_hi), hi);
      }
      store_upto(out + c0, add_pairs(lo, hi), n);
    }
  }
}

inline void dwconv_reduce(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                          const float* a_base, const int64_t* a_off /* npix x taps */, const float* zero,
                          const float* w /* taps x channels * mult */, float* c_base, const int64_t* c_off) {
  // Per pixel, blocks of W of the channels * mult products: the taps summed in a vector, then each lane added to
  // its input channel (o / mult) in the output row, which stays in L1.
  if (mult == 2) return dwconv_reduce_m2(npix, channels, taps, a_base, a_off, zero, w, c_base, c_off);
  const std::size_t oc = channels * mult;
  alignas(64) float lanes[kLanes];
  for (std::size_t i = 0; i < npix; ++i) {
    const int64_t* off = a_off + i * taps;
    float* out = c_base + c_off[i];
    for (std::size_t c = 0; c < channels; ++c) out[c] = 0.0f;
    for (std::size_t o0 = 0; o0 < oc; o0 += kLanes) {
      const std::size_t n = oc - o0 < kLanes ? oc - o0 : kLanes;
      V acc = Simd::zero();
      for (std::size_t t = 0; t < taps; ++t)
        acc = Simd::fma(load_upto(row_or_zero(a_base, off[t], zero) + o0, n), load_upto(w + t * oc + o0, n), acc);
      Simd::storeu(lanes, acc);
      // Each run of lanes that belongs to one input channel summed in a register, then added once.
      for (std::size_t l = 0; l < n;) {
        const std::size_t c = (o0 + l) / mult, end = (c + 1) * mult - o0 < n ? (c + 1) * mult - o0 : n;
        float sum = lanes[l++];
        for (; l < end; ++l) sum += lanes[l];
        out[c] += sum;
      }
    }
  }
}

// Depthwise weight gradient, multiplier 1, channels [c, c + n) with n <= NV * W: blocks of 8 taps, each a pass over the
// pixels with 8 x NV accumulators.
template <int NV>
inline void dwconv_wgrad_m1(std::size_t npix, std::size_t channels, std::size_t taps, std::size_t c, std::size_t n,
                            const float* x_base, const int64_t* x_off, const float* dz_base,
                            const int64_t* dz_off, float* dw) {
  constexpr std::size_t kTaps = 8;
  std::size_t nv[NV];  // lanes of each vector
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    const std::size_t done = std::size_t(v) * kLanes;
    nv[v] = n > done ? (n - done < kLanes ? n - done : kLanes) : 0;
  }
  for (std::size_t t0 = 0; t0 < taps; t0 += kTaps) {
    const std::size_t nt = taps - t0 < kTaps ? taps - t0 : kTaps;
    V acc[kTaps][NV];
#pragma GCC unroll 8
    for (std::size_t t = 0; t < kTaps; ++t)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v)
        acc[t][v] = t < nt ? load_upto(dw + (t0 + t) * channels + c + v * kLanes, nv[v]) : Simd::zero();
    for (std::size_t i = 0; i < npix; ++i) {
      V dzv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) dzv[v] = load_upto(dz_base + dz_off[i] + c + v * kLanes, nv[v]);
      const int64_t* off = x_off + i * taps + t0;
#pragma GCC unroll 8
      for (std::size_t t = 0; t < kTaps; ++t)
        // A padded cell is skipped, not multiplied as zero: 0 * inf would make a NaN the reference does not have.
        if (t < nt && off[t] >= 0) {
          const float* x = x_base + off[t] + c;
#pragma GCC unroll 2
          for (int v = 0; v < NV; ++v) acc[t][v] = Simd::fma(load_upto(x + v * kLanes, nv[v]), dzv[v], acc[t][v]);
        }
    }
#pragma GCC unroll 8
    for (std::size_t t = 0; t < kTaps; ++t)
      if (t < nt)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) store_upto(dw + (t0 + t) * channels + c + v * kLanes, acc[t][v], nv[v]);
  }
}

inline void dwconv_wgrad(std::size_t npix, std::size_t channels, std::size_t mult, std::size_t taps,
                         const float* x_base, const int64_t* x_off /* npix x taps */, const float* zero,
                         const float* dz_base, const int64_t* dz_off /* npix */, float* dw /* taps x channels */) {
  (void)zero;  // padded cells are skipped, never read (see dwconv_wgrad_m1)
  if (mult != 1) {
    // Blocks of W output channels, each with its input expansion; 8 taps' accumulators in registers per pass.
    constexpr std::size_t kTaps = 8;
    for (std::size_t o0 = 0; o0 < channels; o0 += kLanes) {
      const std::size_t n = channels - o0 < kLanes ? channels - o0 : kLanes;
      const Expand e(o0, n, mult);
      for (std::size_t t0 = 0; t0 < taps; t0 += kTaps) {
        const std::size_t nt = taps - t0 < kTaps ? taps - t0 : kTaps;
        V acc[kTaps];
#pragma GCC unroll 8
        for (std::size_t t = 0; t < kTaps; ++t)
          acc[t] = t < nt ? load_upto(dw + (t0 + t) * channels + o0, n) : Simd::zero();
        for (std::size_t i = 0; i < npix; ++i) {
          const V dzv = load_upto(dz_base + dz_off[i] + o0, n);
          const int64_t* off = x_off + i * taps + t0;
#pragma GCC unroll 8
          for (std::size_t t = 0; t < kTaps; ++t)
            if (t < nt && off[t] >= 0) acc[t] = Simd::fma(load_expanded(x_base + off[t], e), dzv, acc[t]);
        }
#pragma GCC unroll 8
        for (std::size_t t = 0; t < kTaps; ++t)
          if (t < nt) store_upto(dw + (t0 + t) * channels + o0, acc[t], n);
      }
    }
    return;
  }
  // Multiplier 1: up to 8 taps x NV vectors of channels live in registers while the pixels stream by.
  std::size_t c = 0;
  for (; c + 2 * kLanes <= channels; c += 2 * kLanes)
    dwconv_wgrad_m1<2>(npix, channels, taps, c, 2 * kLanes, x_base, x_off, dz_base, dz_off, dw);
  for (; c < channels; c += kLanes)
    dwconv_wgrad_m1<1>(npix, channels, taps, c, channels - c, x_base, x_off, dz_base, dz_off, dw);
}

}  // namespace
}  // namespace convkit::uk
