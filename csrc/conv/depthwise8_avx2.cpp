// AVX2 + FMA depthwise 3x3 kernels over eight interleaved channels (depthwise8.h).
//
// Why: the per-plane kernels (depthwise_plane.h) vectorise along a row, so a 14-wide row is
// two vectors with two masked edge loads, three misaligned loads per source row and a
// zero-padded copy of every plane; on small planes that took 20-40 cycles per 8 outputs
// where the nine FMAs need 4.5. Here a vector is one pixel of eight channels: the
// interleaved plane is aligned, its zero border is written once per thread, and a stride or
// dilation only changes addresses.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/depthwise8.h"

namespace pyconv::avx2 {

namespace {
#include "common/store_lanes.h"

// Interleaved planes up to 128 KiB: in L2 beside the source and output rows in flight.
constexpr int64_t kMaxBuf = int64_t(32) << 10;

// The interleaved plane: Hp x Wp pixels (the extent the taps read), source rows [h0, h1)
// and columns [w0, w1) copied to pixel (h + pt, w + pl), everything else zero.
struct Layout {
  int64_t Hp, Wp, h0, h1, w0, w1;
};

Layout layout(const Dw8Geom& g) {
  Layout L;
  L.Hp = (g.P - 1) * g.sh + 2 * g.dh + 1;
  L.Wp = (g.Q - 1) * g.sw + 2 * g.dw + 1;
  L.h0 = std::max<int64_t>(0, -g.pt), L.h1 = std::min(g.H, L.Hp - g.pt);
  L.w0 = std::max<int64_t>(0, -g.pl), L.w1 = std::min(g.W, L.Wp - g.pl);
  return L;
}

// Pixel (h - h0, l - w0) of dst (pixel rows ldp floats apart) gets x[c][h][l] in lane c, for
// h in [h0, h1), l in [w0, w1), w1 - w0 >= 8: 8x8 transposes of eight columns, the last
// block overlapping the one before it (the same values twice).
void interleave(const float* x, int64_t xs1, int64_t xs2, int64_t h0, int64_t h1, int64_t w0,
                int64_t w1, float* dst, int64_t ldp) {
  for (int64_t h = h0; h < h1; ++h) {
    const float* row = x + h * xs2;
    float* d = dst + (h - h0) * ldp;
    for (int64_t l = w0;; l += 8) {
      if (l + 8 > w1) l = w1 - 8;
      __m256 r[8], c[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(row + q * xs1 + l);
      transpose8x8_f32(r, c);
      for (int q = 0; q < 8; ++q) _mm256_store_ps(d + (l - w0 + q) * 8, c[q]);
      if (l + 8 >= w1) break;
    }
  }
}

void interleave_source(const Dw8Geom& g, const Layout& L, const float* x, int64_t xs1,
                       int64_t xs2, float* buf) {
  if (L.h1 > L.h0)
    interleave(x, xs1, xs2, L.h0, L.h1, L.w0, L.w1,
               buf + ((L.h0 + g.pt) * L.Wp + L.w0 + g.pl) * 8, L.Wp * 8);
}

}  // namespace

int64_t dw8_buffer(const Dw8Geom& g) {
  const Layout L = layout(g);
  if (g.P < 1 || g.Q < 8 || L.w1 - L.w0 < 8 || L.Hp * L.Wp * 8 > kMaxBuf) return 0;
  return L.Hp * L.Wp * 8;
}

void dw8_forward(const Dw8Geom& g, const float* x, int64_t xs1, int64_t xs2, const float* wv,
                 const float* bias, bool relu, float* y, int64_t ys1, float* buf) {
  const Layout L = layout(g);
  interleave_source(g, L, x, xs1, xs2, buf);
  const __m256 bv = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const int64_t ldp = L.Wp * 8, cs = g.sw * 8;
  for (int64_t oh = 0; oh < g.P; ++oh) {
    const float* rows = buf + oh * g.sh * ldp;
    // Eight output pixels at a time, each a chain of nine FMAs in (r, s) order; the last
    // block overlaps the one before it when Q is not a multiple of 8.
    for (int64_t q0 = 0;; q0 += 8) {
      if (q0 + 8 > g.Q) q0 = g.Q - 8;
      __m256 a[8], c[8];
      for (int k = 0; k < 8; ++k) a[k] = _mm256_setzero_ps();
#pragma GCC unroll 9
      for (int t = 0; t < 9; ++t) {
        const __m256 w = _mm256_loadu_ps(wv + 8 * t);
        const float* s = rows + (t / 3) * g.dh * ldp + (q0 * g.sw + (t % 3) * g.dw) * 8;
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k) a[k] = _mm256_fmadd_ps(w, _mm256_load_ps(s + k * cs), a[k]);
      }
      for (int k = 0; k < 8; ++k) {
        if (bias) a[k] = _mm256_add_ps(a[k], bv);
        // max(0, a) is 0 > a ? 0 : a: NaN and -0.0 kept (as the per-plane kernels)
        if (relu) a[k] = _mm256_max_ps(_mm256_setzero_ps(), a[k]);
      }
      transpose8x8_f32(a, c);  // c[ch]: channel ch's outputs q0 .. q0 + 7
      float* o = y + oh * g.Q + q0;
      for (int ch = 0; ch < 8; ++ch) _mm256_storeu_ps(o + ch * ys1, c[ch]);
      if (q0 + 8 >= g.Q) break;
    }
  }
}

void dw8_backward_weight(const Dw8Geom& g, const float* dy, int64_t ds1, int64_t ds2,
                         const float* x, int64_t xs1, int64_t xs2, float* acc, float* buf,
                         float* dyb) {
  const Layout L = layout(g);
  interleave_source(g, L, x, xs1, xs2, buf);
  interleave(dy, ds1, ds2, 0, g.P, 0, g.Q, dyb, g.Q * 8);
  const int64_t ldp = L.Wp * 8, cs = g.sw * 8;
  // Nine chains (one per tap) over the image's outputs in (oh, ow) order, then into acc.
  __m256 a[9];
  for (int t = 0; t < 9; ++t) a[t] = _mm256_setzero_ps();
  for (int64_t oh = 0; oh < g.P; ++oh) {
    const float* rows = buf + oh * g.sh * ldp;
    const float* d = dyb + oh * g.Q * 8;
    for (int64_t ow = 0; ow < g.Q; ++ow) {
      const __m256 dv = _mm256_load_ps(d + ow * 8);
      const float* s = rows + ow * cs;
#pragma GCC unroll 9
      for (int t = 0; t < 9; ++t)
        a[t] = _mm256_fmadd_ps(dv, _mm256_load_ps(s + (t / 3) * g.dh * ldp + (t % 3) * g.dw * 8),
                               a[t]);
    }
  }
  for (int t = 0; t < 9; ++t)
    _mm256_storeu_ps(acc + 8 * t, _mm256_add_ps(_mm256_loadu_ps(acc + 8 * t), a[t]));
}

}  // namespace pyconv::avx2
