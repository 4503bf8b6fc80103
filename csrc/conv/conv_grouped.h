// Direct kernel for grouped stride-1 convolutions with few channels per group
// (conv_grouped.cpp dispatches, conv_grouped_avx2.cpp computes).
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
// grouped_direct_xp() floats.
void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp);
}  // namespace avx2

inline int64_t grouped_direct_xp(const GdGeom& g) {
  return g.Cin * (g.P + g.R - 1) * ((g.Q + 7) / 8 * 8 + g.S - 1);
}
inline int64_t grouped_direct_wt(const GdGeom& g) {
  return (g.Kout + 5) / 6 * 6 * g.Cin * g.R * g.S;
}

}  // namespace pyconv
