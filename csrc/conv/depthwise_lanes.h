#pragma once
// Depthwise kernels over L channels at once (lane = channel): 8 on AVX2 + FMA
// (depthwise8_avx2.cpp), 16 on AVX-512 (depthwise16_avx512.cpp), one source
// (depthwise_lanes_impl.h). The L planes are interleaved into one zero-padded plane of L-lane
// pixels, so every output pixel is one FMA of whole vectors per tap with per-lane weights, for
// any kernel size up to kDwlMaxTaps taps, stride, dilation or padding, with no row edges and no
// misaligned loads; transposes bring the planes in (8x8 blocks) and the results out (one
// L x L). Each output is the same chain of FMAs in either width: the 16-lane kernels give the
// 8-lane ones' bits.
#include <cstdint>

namespace pyconv {

// Kernels of up to 7x7 taps.
constexpr int64_t kDwlMaxTaps = 49;

// A depthwise R x S correlation y[oh][ow] = sum_{r,s} w[r][s] x[oh*sh - pt + r*dh][ow*sw - pl
// + s*dw] (zero outside the H x W source), P x Q outputs.
struct DwlGeom {
  int64_t H, W, P, Q, R, S, sh, sw, dh, dw, pt, pl;
};

}  // namespace pyconv

// The same declarations in each ISA's namespace (its L lanes).
#define PYCONV_DWL_DECLARE                                                                     \
  /* Floats of the interleaved band of source rows the kernels take as buf (planes taller    \
     than a band run in bands of output rows), or 0 when not even one output row's source    \
     rows fit its budget (rows of several thousand columns) or the kernel has more than      \
     kDwlMaxTaps taps. */                                                                    \
  int64_t dwl_buffer(const DwlGeom& g);                                                      \
  /* Floats of the interleaved grad_output rows of a band (dwl_backward_weight's dyb). */    \
  int64_t dwl_dy_buffer(const DwlGeom& g);                                                   \
  /* Rows [oh_begin, oh_end) of y + c*ys1 (P x Q, row stride Q) for c < L from the planes    \
     x + c*xs1 (rows xs2 apart, unit column stride) and the weights wv[t*L + c] (tap t =     \
     r*S + s of channel c); then + bias[c] (when bias) and max(0, .) (when relu). buf:       \
     dwl_buffer(g) floats, 64-byte aligned, zero in the columns no source pixel lands on     \
     (zeroed once: every call writes the same ones). An output's value does not depend on   \
     the row range. */                                                                       \
  void dwl_forward(const DwlGeom& g, const float* x, int64_t xs1, int64_t xs2, const float* wv, \
                   const float* bias, bool relu, float* y, int64_t ys1, float* buf,           \
                   int64_t oh_begin, int64_t oh_end);                                         \
  /* acc[t*L + c] += sum_{oh, ow} dy[c][oh][ow] * x[c][oh*sh - pt + r*dh][ow*sw - pl + s*dw] \
     (t = r*S + s) for c < L: dy + c*ds1 (rows ds2 apart), x as in dwl_forward; buf as       \
     there, dyb: dwl_dy_buffer(g) floats, 64-byte aligned. */                                \
  void dwl_backward_weight(const DwlGeom& g, const float* dy, int64_t ds1, int64_t ds2,       \
                           const float* x, int64_t xs1, int64_t xs2, float* acc, float* buf,  \
                           float* dyb);                                                       \
  /* Rows [ih_begin, ih_end) of dx + c*dxs1 (H x W) for c < L: the input gradient of a       \
     stride-2 undilated forward of geometry g (up to kDwlMaxTaps taps), from dy + c*ds1      \
     (P x Q, rows ds2 apart) and the weights wv as dwl_forward's (not flipped). buf:         \
     dwl_s2_buffer(g) floats, 64-byte aligned, zero where no dy pixel lands (zeroed once);   \
     0 when g is not stride 2 or its interleaved dy exceeds the budget. */                   \
  int64_t dwl_s2_buffer(const DwlGeom& g);                                                   \
  void dwl_backward_data_s2(const DwlGeom& g, const float* dy, int64_t ds1, int64_t ds2,      \
                            const float* wv, float* dx, int64_t dxs1, float* buf,             \
                            int64_t ih_begin, int64_t ih_end);

namespace pyconv::avx2 {
constexpr int kDwlLanes = 8;
PYCONV_DWL_DECLARE
}  // namespace pyconv::avx2
namespace pyconv::avx512 {
constexpr int kDwlLanes = 16;
PYCONV_DWL_DECLARE
}  // namespace pyconv::avx512
#undef PYCONV_DWL_DECLARE
