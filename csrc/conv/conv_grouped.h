// Direct kernels for grouped stride-1 convolutions with few channels per group
// (conv_grouped.cpp dispatches, conv_grouped_avx2.cpp and conv_grouped_avx512.cpp compute).
#pragma once
#include <cstdint>

namespace pyconv {

// One group of one image: result (Kout, P, Q) contiguous from source (Cin, H, W) at
// src + c*s1 + h*s2 + w*s3; result (p, q) reads source rows p - pt + r, columns
// q - pl + s (zero outside); filter (k, c, r, s) at w + k*wk + c*wc + r*wr + s*ws.
struct GdGeom {
  int64_t Cin, H, W, Kout, P, Q, R, S, pt, pl;
  int64_t s1, s2, s3, wk, wc, wr, ws;
};

namespace avx2 {
// The filter of one group rearranged for the kernel: grouped_direct_wt() floats.
void grouped_direct_weights_float(const GdGeom& g, const float* w, float* wt);
// y (+ bias per output channel, may be null) for one group; xp is scratch of
// grouped_direct_xp() floats, zero except where earlier calls with the same geometry wrote
// the source (only those positions are written: the caller zeroes it once per call).
void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp);
// The zero-padded source of grouped_direct_float (xp as there).
void grouped_pad_float(const GdGeom& g, const float* src, float* xp);
// The weight gradient of one group, summed over images [0, N) taken nb at a time:
// dw (Kout, Cin, R, S) contiguous; src image n at src + n*sn, grad_output (Kout, P, Q)
// of image n at dy + n*dn + k*d1 + p*d2 + q*d3. Scratch: xp of nb*grouped_direct_xp()
// (zero as for grouped_direct_float), dyp of nb*Kout*P*Qv, acc of Kout*Cin*R*S*8 floats.
void grouped_direct_weight_float(const GdGeom& g, int64_t N, int64_t nb, const float* src,
                                 int64_t sn, const float* dy, int64_t dn, int64_t d1,
                                 int64_t d2, int64_t d3, float* dw, float* xp, float* dyp,
                                 float* acc);
}  // namespace avx2

namespace avx512 {
// avx2::grouped_direct_float with 16-column vectors and two output rows per register block:
// bitwise the same results. stream: whole 64-byte-aligned rows of 16 outputs go out with
// non-temporal stores (stream_output; the caller fences). (AVX2's 32-byte halves of a line
// measured 0.83-1.07x that way: kept cached.)
void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp, bool stream);
// The weight gradient of gv groups at a time (grouped_weight_lanes()), their output
// channels as the 16 lanes of a vector: arguments as avx2::grouped_direct_weight_float's,
// group j's source at src + j*sg, grad_output at dy + j*dg, dw at dw + j*wg; xp and dyp
// hold gv times as much, acc at least gv*Kout*Cin*9 floats.
void grouped_direct_weight_float(const GdGeom& g, int gv, int64_t N, int64_t nb,
                                 const float* src, int64_t sn, int64_t sg, const float* dy,
                                 int64_t dn, int64_t dg, int64_t d1, int64_t d2, int64_t d3,
                                 float* dw, int64_t wg, float* xp, float* dyp, float* acc);
// Groups of 16 or 32 output channels, 3x3, 16 channels at a time as the 16 lanes (no lanes
// past a row's end, no padded copy of the source): one group of one image, y (Kout, P, Q)
// planes, from source rows with unit column stride (s3 == 1), the filter as
// grouped_lanes_weights_float() arranges it (Kout * Cin * 9 floats). Bitwise
// grouped_direct_float's results. Needs grouped_lanes_fit().
void grouped_lanes_weights_float(const GdGeom& g, const float* w, float* wl);
void grouped_lanes_float(const GdGeom& g, const float* src, const float* wl, const float* bias,
                         float* y);
}  // namespace avx512

// Whether avx512::grouped_lanes_float takes g: 16 or 32 outputs, 3x3, at most one column of
// padding on either side (each block of a row reads at most its first and last source
// column off the plane), unit column stride, and 16+ source channels (fewer: the transpose
// of each 16-output block outweighs its products).
inline bool grouped_lanes_fit(const GdGeom& g) {
  return g.Kout % 16 == 0 && g.R == 3 && g.S == 3 && g.Cin >= 16 && g.s3 == 1 && g.Q >= 4 &&
         (g.pl == 0 || g.pl == 1) && g.Q - g.pl <= g.W - 1;
}

// Groups per vector of avx512::grouped_direct_weight_float for G groups of g's geometry:
// the fewest of 1, 2, 4 that fill whole 16-lane vectors with output channels, 0 where none
// does (or the filter is not 3x3).
inline int grouped_weight_lanes(const GdGeom& g, int64_t G) {
  if (g.R != 3 || g.S != 3) return 0;
  for (int gv = 1; gv <= 4; gv *= 2)
    if (g.Kout * gv % 16 == 0 && G % gv == 0) return gv;
  return 0;
}

inline int64_t grouped_direct_xp(const GdGeom& g) {
  return g.Cin * (g.P + g.R - 1) * ((g.Q + 7) / 8 * 8 + g.S - 1);
}
// Output channels of the forward kernel's register block (x 16 columns) that starts at
// channel k0. When 4 divides Kout: blocks of 6 (12 accumulators, the FMA latency hidden
// with room to spare) while at least 10 or exactly 6 channels remain, then blocks of 4
// (ResNeXt's 16 = 6 + 6 + 4, 8 = 4 + 4: no idle accumulators). Otherwise blocks of 6,
// the last one partly idle.
inline int grouped_direct_block(int64_t Kout, int64_t k0) {
  const int64_t rem = Kout - k0;
  return Kout % 4 != 0 || rem >= 10 || rem == 6 ? 6 : 4;
}
// The forward blocks of Kout output channels in order: f(Block<kb>{}, k0, kn) for the
// block of kb (4 or 6, a compile-time value) starting at channel k0, kn <= kb of them live.
// (f is a lambda of the calling ISA's file: each file gets its own instantiation.)
template <int N>
struct GdBlock {
  static constexpr int value = N;
};
template <class F>
inline void grouped_direct_blocks(int64_t Kout, F&& f) {
  for (int64_t k0 = 0; k0 < Kout;) {
    const int kb = grouped_direct_block(Kout, k0);
    const int kn = Kout - k0 < kb ? static_cast<int>(Kout - k0) : kb;
    if (kb == 4)
      f(GdBlock<4>{}, k0, kn);
    else
      f(GdBlock<6>{}, k0, kn);
    k0 += kb;
  }
}
// Floats of the rearranged filter: the block starting at channel k0 has its weights at
// k0 * Cin * R * S (a partly idle last block of 6 padded with zeros).
inline int64_t grouped_direct_wt(const GdGeom& g) {
  return (g.Kout % 4 == 0 ? g.Kout : (g.Kout + 5) / 6 * 6) * g.Cin * g.R * g.S;
}

}  // namespace pyconv
