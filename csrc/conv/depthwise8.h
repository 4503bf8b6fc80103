#pragma once
// Depthwise kernels over eight channels at once (AVX2 + FMA, depthwise8_avx2.cpp): the
// eight planes are interleaved into one zero-padded plane of 8-lane pixels (lane = channel),
// so every output pixel is one FMA of whole vectors per tap with per-lane weights, for any
// kernel size up to kDw8MaxTaps taps, stride, dilation or padding, with no row edges and no
// misaligned loads; 8x8 transposes bring the planes in and the results out.
#include <cstdint>

namespace pyconv::avx2 {

// Kernels of up to 7x7 taps.
constexpr int64_t kDw8MaxTaps = 49;

// A depthwise R x S correlation y[oh][ow] = sum_{r,s} w[r][s] x[oh*sh - pt + r*dh][ow*sw - pl
// + s*dw] (zero outside the H x W source), P x Q outputs.
struct Dw8Geom {
  int64_t H, W, P, Q, R, S, sh, sw, dh, dw, pt, pl;
};

// Floats of the interleaved band of source rows the kernels take as buf (planes taller
// than a band run in bands of output rows), or 0 when not even one output row's source
// rows fit its budget (rows of several thousand columns) or the kernel has more than
// kDw8MaxTaps taps.
int64_t dw8_buffer(const Dw8Geom& g);
// Floats of the interleaved grad_output rows of a band (dw8_backward_weight's dyb).
int64_t dw8_dy_buffer(const Dw8Geom& g);

// Rows [oh_begin, oh_end) of y + c*ys1 (P x Q, row stride Q) for c < 8 from the planes
// x + c*xs1 (rows xs2 apart, unit column stride) and the weights wv[t*8 + c] (tap t = r*S + s
// of channel c); then + bias[c] (when bias) and max(0, .) (when relu). buf: dw8_buffer(g)
// floats, 32-byte aligned, zero in the columns no source pixel lands on (zeroed once: every
// call writes the same ones). An output's value does not depend on the row range.
void dw8_forward(const Dw8Geom& g, const float* x, int64_t xs1, int64_t xs2, const float* wv,
                 const float* bias, bool relu, float* y, int64_t ys1, float* buf,
                 int64_t oh_begin, int64_t oh_end);

// acc[t*8 + c] += sum_{oh, ow} dy[c][oh][ow] * x[c][oh*sh - pt + r*dh][ow*sw - pl + s*dw]
// (t = r*S + s) for c < 8: dy + c*ds1 (rows ds2 apart), x as in dw8_forward; buf as there,
// dyb: dw8_dy_buffer(g) floats, 32-byte aligned.
void dw8_backward_weight(const Dw8Geom& g, const float* dy, int64_t ds1, int64_t ds2,
                         const float* x, int64_t xs1, int64_t xs2, float* acc, float* buf,
                         float* dyb);

// Rows [ih_begin, ih_end) of dx + c*dxs1 (H x W) for c < 8: the input gradient of a stride-2
// undilated forward of geometry g (up to kDw8MaxTaps taps), from dy + c*ds1 (P x Q, rows ds2
// apart) and the weights wv as dw8_forward's (not flipped). buf: dw8_s2_buffer(g) floats,
// 32-byte aligned, zero where no dy pixel lands (zeroed once); 0 when g is not stride 2 or
// its interleaved dy exceeds the budget.
int64_t dw8_s2_buffer(const Dw8Geom& g);
void dw8_backward_data_s2(const Dw8Geom& g, const float* dy, int64_t ds1, int64_t ds2,
                          const float* wv, float* dx, int64_t dxs1, float* buf,
                          int64_t ih_begin, int64_t ih_end);

}  // namespace pyconv::avx2
