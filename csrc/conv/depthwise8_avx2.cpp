// AVX2 + FMA depthwise kernels over eight interleaved channels (depthwise8.h).
//
// Why: the per-plane kernels (depthwise_plane.h) vectorise along a row, so a 14-wide row is
// two vectors with two masked edge loads, three misaligned loads per source row and a
// zero-padded copy of every plane; on small planes that took 20-40 cycles per 8 outputs
// where the nine FMAs of a 3x3 need 4.5 (and kernels other than 3x3 ran a scalar loop:
// 5-12 GFLOP/s on 5x5). Here a vector is one pixel of eight channels: the interleaved plane
// is aligned, its zero border is written once per thread, and a stride or dilation only
// changes addresses. 3x3 and 5x5 are compiled with their taps unrolled; other sizes up to
// kDw8MaxTaps taps loop over them.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/depthwise8.h"

namespace pyconv::avx2 {

namespace {
#include "common/store_lanes.h"

// Interleaved bands up to 128 KiB: in L2 beside the source and output rows in flight.
constexpr int64_t kMaxBuf = int64_t(32) << 10;

// The interleaved band: rows of Wp pixels (the columns the taps read, for at least eight
// outputs), source column w at pixel w + pl for w in [w0, w1), the rest zero. A band of B
// output rows reads Bh = (B - 1)*sh + (R - 1)*dh + 1 source rows; B is as many as fit
// kMaxBuf. toff[t]: tap t = r*S + s's offset in the band, floats.
struct Layout {
  int64_t Wp, w0, w1, B, Bh;
  int64_t toff[kDw8MaxTaps];
};

Layout layout(const Dw8Geom& g) {
  Layout L;
  const int64_t span_h = (g.R - 1) * g.dh + 1;
  L.Wp = (std::max<int64_t>(g.Q, 8) - 1) * g.sw + (g.S - 1) * g.dw + 1;
  L.w0 = std::max<int64_t>(0, -g.pl), L.w1 = std::min(g.W, L.Wp - g.pl);
  const int64_t rows = kMaxBuf / (L.Wp * 8);  // source rows that fit
  L.B = rows < span_h ? 0 : std::min(g.P, (rows - span_h) / g.sh + 1);
  L.Bh = (L.B - 1) * g.sh + span_h;
  for (int64_t t = 0; t < g.R * g.S && t < kDw8MaxTaps; ++t)
    L.toff[t] = (t / g.S * g.dh * L.Wp + t % g.S * g.dw) * 8;
  return L;
}

// Pixels l - w0 (l in [w0, w1)) of d get x[c][l] in lane c from the rows x + c*xs1: 8x8
// transposes of eight columns, the last block overlapping the one before it (the same values
// twice); rows under eight columns by masked loads (a masked lane reads nothing).
void interleave_row(const float* x, int64_t xs1, int64_t w0, int64_t w1, float* d) {
  __m256 r[8], c[8];
  const int64_t n = w1 - w0;
  if (n <= 0) return;
  if (n < 8) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int q = 0; q < 8; ++q) r[q] = _mm256_maskload_ps(x + q * xs1 + w0, m);
    transpose8x8_f32(r, c);
    for (int64_t q = 0; q < n; ++q) _mm256_store_ps(d + q * 8, c[q]);
    return;
  }
  for (int64_t l = w0;; l += 8) {
    if (l + 8 > w1) l = w1 - 8;
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(x + q * xs1 + l);
    transpose8x8_f32(r, c);
    for (int q = 0; q < 8; ++q) _mm256_store_ps(d + (l - w0 + q) * 8, c[q]);
    if (l + 8 >= w1) break;
  }
}

// Eight pixels a[k] (lane = channel) to o + ch*ld + k, channel by channel (an 8x8 transpose):
// all eight columns, or the first n when n < 8.
inline void store_pixels(const __m256 (&a)[8], float* o, int64_t ld, int64_t n) {
  __m256 c[8];
  transpose8x8_f32(a, c);
  if (n >= 8)
    for (int ch = 0; ch < 8; ++ch) _mm256_storeu_ps(o + ch * ld, c[ch]);
  else
    for (int ch = 0; ch < 8; ++ch) store_lanes_f32(o + ch * ld, c[ch], n);
}

// Band rows i < rows: source row hs + i, zero outside the source (whole rows).
void interleave_band(const Dw8Geom& g, const Layout& L, const float* x, int64_t xs1,
                     int64_t xs2, int64_t hs, int64_t rows, float* buf) {
  const int64_t ldp = L.Wp * 8;
  for (int64_t i = 0; i < rows; ++i) {
    float* d = buf + i * ldp;
    const int64_t h = hs + i;
    if (h < 0 || h >= g.H) {
      for (int64_t j = 0; j < ldp; j += 8) _mm256_store_ps(d + j, _mm256_setzero_ps());
      continue;
    }
    interleave_row(x + h * xs2, xs1, L.w0, L.w1, d + (L.w0 + g.pl) * 8);
  }
}

}  // namespace

int64_t dw8_buffer(const Dw8Geom& g) {
  const Layout L = layout(g);
  if (g.P < 1 || g.Q < 1 || g.R < 1 || g.S < 1 || g.R * g.S > kDw8MaxTaps || L.B < 1) return 0;
  return L.Bh * L.Wp * 8;
}

int64_t dw8_dy_buffer(const Dw8Geom& g) {
  return layout(g).B * std::max<int64_t>(g.Q, 8) * 8;
}

namespace {

// Eight output pixels from src = (rows + q0*cs): each a chain of FMAs over the taps in (r, s)
// order. KR x KS: the kernel when known at compile time (taps unrolled, their offsets
// r*dh*ldp + s*dw*8 folded: 1.2x over reading them from toff on 56x56 3x3 planes), else 0 x 0
// (n taps at toff).
template <int KR, int KS>
inline void taps8(const float* src, int64_t cs, int64_t rstep, int64_t sstep, const float* wv,
                  const int64_t* toff, int64_t n, __m256 (&a)[8]) {
  for (int k = 0; k < 8; ++k) a[k] = _mm256_setzero_ps();
  if constexpr (KR > 0) {
#pragma GCC unroll 25
    for (int t = 0; t < KR * KS; ++t) {
      const __m256 w = _mm256_loadu_ps(wv + 8 * t);
      const float* s = src + (t / KS) * rstep + (t % KS) * sstep;
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) a[k] = _mm256_fmadd_ps(w, _mm256_load_ps(s + k * cs), a[k]);
    }
  } else {
    for (int64_t t = 0; t < n; ++t) {
      const __m256 w = _mm256_loadu_ps(wv + 8 * t);
      const float* s = src + toff[t];
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) a[k] = _mm256_fmadd_ps(w, _mm256_load_ps(s + k * cs), a[k]);
    }
  }
}

template <int KR, int KS>
void forward_rows(const Dw8Geom& g, const Layout& L, const float* x, int64_t xs1, int64_t xs2,
                  const float* wv, const float* bias, bool relu, float* y, int64_t ys1,
                  float* buf, int64_t oh_begin, int64_t oh_end) {
  const __m256 bv = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const int64_t ldp = L.Wp * 8, cs = g.sw * 8, nt = g.R * g.S;
  for (int64_t oh0 = oh_begin; oh0 < oh_end; oh0 += L.B) {
    const int64_t b = std::min(L.B, oh_end - oh0);
    interleave_band(g, L, x, xs1, xs2, oh0 * g.sh - g.pt, (b - 1) * g.sh + (g.R - 1) * g.dh + 1,
                    buf);
    for (int64_t oh = oh0; oh < oh0 + b; ++oh) {
      const float* rows = buf + (oh - oh0) * g.sh * ldp;
      // Eight output pixels at a time; the last block overlaps the one before it when Q is
      // not a multiple of 8 (under 8: its first Q lanes stored, the others read zero columns).
      for (int64_t q0 = 0;; q0 += 8) {
        if (q0 + 8 > g.Q) q0 = std::max<int64_t>(0, g.Q - 8);
        __m256 a[8];
        taps8<KR, KS>(rows + q0 * cs, cs, g.dh * ldp, g.dw * 8, wv, L.toff, nt, a);
        for (int k = 0; k < 8; ++k) {
          if (bias) a[k] = _mm256_add_ps(a[k], bv);
          // max(0, a) is 0 > a ? 0 : a: NaN and -0.0 kept (as the per-plane kernels)
          if (relu) a[k] = _mm256_max_ps(_mm256_setzero_ps(), a[k]);
        }
        store_pixels(a, y + oh * g.Q + q0, ys1, g.Q);
        if (q0 + 8 >= g.Q) break;
      }
    }
  }
}

}  // namespace

void dw8_forward(const Dw8Geom& g, const float* x, int64_t xs1, int64_t xs2, const float* wv,
                 const float* bias, bool relu, float* y, int64_t ys1, float* buf,
                 int64_t oh_begin, int64_t oh_end) {
  const Layout L = layout(g);
  if (g.R == 3 && g.S == 3)
    forward_rows<3, 3>(g, L, x, xs1, xs2, wv, bias, relu, y, ys1, buf, oh_begin, oh_end);
  else if (g.R == 5 && g.S == 5)
    forward_rows<5, 5>(g, L, x, xs1, xs2, wv, bias, relu, y, ys1, buf, oh_begin, oh_end);
  else
    forward_rows<0, 0>(g, L, x, xs1, xs2, wv, bias, relu, y, ys1, buf, oh_begin, oh_end);
}

// Backward-data at stride 2 (undilated): dx[ih][iw] sums w[r][s] dy[(ih + pt - r)/2][(iw + pl -
// s)/2] over the taps whose divisions are exact: r of the parity of ih + pt, s of the parity
// of iw + pl (for 3x3: r in {0, 2} or r = 1), so no tap of the stride's zeros. dy is
// interleaved with a border of E = ceil((R - 1)/2) zero pixels on each side (taps past its
// edges read zero), then eight dx pixels at a time: per kernel row, each kernel column adds
// to the four of the block's pixels of its parity, their taps in (r, s) order.
namespace {
struct S2 {
  int64_t E, Wb, Hb;
};
S2 s2_layout(const Dw8Geom& g) {
  S2 L;
  L.E = (std::max(g.R, g.S) - 1 + 1) / 2;  // ceil((max(R, S) - 1) / 2)
  L.Wb = std::max(g.Q + 2 * L.E, (std::max<int64_t>(g.W, 8) - 1 + g.pl) / 2 + L.E + 1);
  L.Hb = g.P + 2 * L.E;
  return L;
}

// a[k] (dx pixels iw0 + k, iw0 + pl = v0, P0 = v0 % 2) += kernel row wr's taps (wr: S weight
// vectors) from the interleaved dy row p (pixel = dy column + E): pixel k takes the columns s
// with v0 + k - s even, in ascending order, from dy column (v0 + k - s)/2. The pixels of one
// parity (k = par, par + 2, ...) are one pass over their columns, so the accumulator each
// FMA updates is known at compile time (indexed at run time they went through memory:
// 0.6x). KS: S when unrolled, else 0.
template <int KS, int P0>
inline void s2_row(const float* p, int64_t v0, int64_t E, const float* wr, int64_t S,
                   __m256 (&a)[8]) {
  const int64_t ns = KS ? KS : S;
#pragma GCC unroll 2
  for (int par = 0; par < 2; ++par) {
#pragma GCC unroll 3
    for (int64_t s = (par + P0) & 1; s < ns; s += 2) {
      const __m256 w = _mm256_loadu_ps(wr + 8 * s);
      const float* q = p + ((v0 + par - s) / 2 + E) * 8;
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
        a[par + 2 * j] = _mm256_fmadd_ps(w, _mm256_load_ps(q + j * 8), a[par + 2 * j]);
    }
  }
}

// The 3x3 case of s2_row with each dy vector loaded once for both parities (an even
// column v = 2c takes s = 0 from dy column c and s = 2 from c - 1, an odd one v = 2c + 1
// takes s = 1 from c; v0 = 2m + ODD): 1.3-1.7x over the parity passes on 3x3 layers.
template <bool ODD>
inline void s2_row3(const float* p, int64_t m, int64_t E, const float* w3, __m256 (&a)[8]) {
  const __m256 w0 = _mm256_loadu_ps(w3), w1 = _mm256_loadu_ps(w3 + 8),
               w2 = _mm256_loadu_ps(w3 + 16);
  const float* q = p + (m + E - 1) * 8;  // q + 8 is dy column m (pixel m + E)
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    if (!ODD) {
      a[2 * j] = _mm256_fmadd_ps(w0, _mm256_load_ps(q + (j + 1) * 8), a[2 * j]);
      a[2 * j] = _mm256_fmadd_ps(w2, _mm256_load_ps(q + j * 8), a[2 * j]);
      a[2 * j + 1] = _mm256_fmadd_ps(w1, _mm256_load_ps(q + (j + 1) * 8), a[2 * j + 1]);
    } else {
      a[2 * j] = _mm256_fmadd_ps(w1, _mm256_load_ps(q + (j + 1) * 8), a[2 * j]);
      a[2 * j + 1] = _mm256_fmadd_ps(w0, _mm256_load_ps(q + (j + 2) * 8), a[2 * j + 1]);
      a[2 * j + 1] = _mm256_fmadd_ps(w2, _mm256_load_ps(q + (j + 1) * 8), a[2 * j + 1]);
    }
  }
}

template <int KS>
void backward_data_s2(const Dw8Geom& g, const float* dy, int64_t ds1, int64_t ds2,
                      const float* wv, float* dx, int64_t dxs1, float* buf, int64_t ih_begin,
                      int64_t ih_end) {
  const S2 L = s2_layout(g);
  const int64_t ldp = L.Wb * 8;
  // The dy rows dx rows [ih_begin, ih_end) read: (ih + pt - r)/2 for r < R.
  const int64_t j0 = std::max<int64_t>(0, (ih_begin + g.pt - (g.R - 1)) / 2);
  const int64_t j1 = std::min(g.P, (ih_end - 1 + g.pt) / 2 + 1);
  for (int64_t j = j0; j < j1; ++j)
    interleave_row(dy + j * ds2, ds1, 0, g.Q, buf + ((j + L.E) * L.Wb + L.E) * 8);
  for (int64_t ih = ih_begin; ih < ih_end; ++ih) {
    const int64_t u = ih + g.pt;  // kernel rows r = u % 2, u % 2 + 2, ... read dy row (u - r)/2
    for (int64_t iw0 = 0;; iw0 += 8) {
      if (iw0 + 8 > g.W) iw0 = std::max<int64_t>(0, g.W - 8);
      __m256 a[8];
      for (int k = 0; k < 8; ++k) a[k] = _mm256_setzero_ps();
      const int64_t v0 = iw0 + g.pl;
      for (int64_t r = u % 2; r < g.R; r += 2) {
        const float* p = buf + ((u - r) / 2 + L.E) * ldp;
        const float* wr = wv + 8 * g.S * r;
        if constexpr (KS == 3) {
          if (v0 % 2 == 0) s2_row3<false>(p, v0 / 2, L.E, wr, a);
          else s2_row3<true>(p, v0 / 2, L.E, wr, a);
        } else {
          if (v0 % 2 == 0) s2_row<KS, 0>(p, v0, L.E, wr, g.S, a);
          else s2_row<KS, 1>(p, v0, L.E, wr, g.S, a);
        }
      }
      store_pixels(a, dx + ih * g.W + iw0, dxs1, g.W);
      if (iw0 + 8 >= g.W) break;
    }
  }
}
}  // namespace

int64_t dw8_s2_buffer(const Dw8Geom& g) {
  const S2 L = s2_layout(g);
  const int64_t n = L.Hb * L.Wb * 8;
  const bool ok = g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 && g.H >= 1 && g.W >= 1 &&
                  g.P >= 1 && g.Q >= 1 && g.R * g.S <= kDw8MaxTaps && n <= kMaxBuf;
  return ok ? n : 0;
}

void dw8_backward_data_s2(const Dw8Geom& g, const float* dy, int64_t ds1, int64_t ds2,
                          const float* wv, float* dx, int64_t dxs1, float* buf,
                          int64_t ih_begin, int64_t ih_end) {
  if (g.S == 3)
    backward_data_s2<3>(g, dy, ds1, ds2, wv, dx, dxs1, buf, ih_begin, ih_end);
  else if (g.S == 5)
    backward_data_s2<5>(g, dy, ds1, ds2, wv, dx, dxs1, buf, ih_begin, ih_end);
  else
    backward_data_s2<0>(g, dy, ds1, ds2, wv, dx, dxs1, buf, ih_begin, ih_end);
}

namespace {

// sum[i] (8 lanes each) += sum over the band's outputs of dy * tap t0 + i's source pixel,
// for i < NT: NT chains in (oh, ow) order, continuing from sum.
template <int NT>
void weight_taps(const Dw8Geom& g, const Layout& L, const float* buf, const float* dyb,
                 int64_t b, int64_t t0, float* sum) {
  const int64_t ldp = L.Wp * 8, cs = g.sw * 8;
  int64_t off[NT];  // (a local copy: kept in registers, not reloaded per pixel)
  for (int j = 0; j < NT; ++j) off[j] = L.toff[t0 + j];
  __m256 a[NT];
  for (int i = 0; i < NT; ++i) a[i] = _mm256_loadu_ps(sum + 8 * i);
  for (int64_t i = 0; i < b; ++i) {
    const float* rows = buf + i * g.sh * ldp;
    const float* d = dyb + i * g.Q * 8;
    for (int64_t ow = 0; ow < g.Q; ++ow) {
      const __m256 dv = _mm256_load_ps(d + ow * 8);
      const float* s = rows + ow * cs;
#pragma GCC unroll 9
      for (int j = 0; j < NT; ++j)
        a[j] = _mm256_fmadd_ps(dv, _mm256_load_ps(s + off[j]), a[j]);
    }
  }
  for (int i = 0; i < NT; ++i) _mm256_storeu_ps(sum + 8 * i, a[i]);
}

}  // namespace

void dw8_backward_weight(const Dw8Geom& g, const float* dy, int64_t ds1, int64_t ds2,
                         const float* x, int64_t xs1, int64_t xs2, float* acc, float* buf,
                         float* dyb) {
  const Layout L = layout(g);
  const int64_t nt = g.R * g.S;
  // Per tap, one chain over the image's outputs in (oh, ow) order (across bands), then into
  // acc; taps nine at a time (nine chains in registers).
  alignas(32) float sum[kDw8MaxTaps * 8] = {};
  for (int64_t oh0 = 0; oh0 < g.P; oh0 += L.B) {
    const int64_t b = std::min(L.B, g.P - oh0);
    interleave_band(g, L, x, xs1, xs2, oh0 * g.sh - g.pt, (b - 1) * g.sh + (g.R - 1) * g.dh + 1,
                    buf);
    for (int64_t i = 0; i < b; ++i)
      interleave_row(dy + (oh0 + i) * ds2, ds1, 0, g.Q, dyb + i * g.Q * 8);
    for (int64_t t0 = 0; t0 < nt; t0 += 9) {
      float* s = sum + 8 * t0;
      switch (std::min<int64_t>(9, nt - t0)) {
        case 1: weight_taps<1>(g, L, buf, dyb, b, t0, s); break;
        case 2: weight_taps<2>(g, L, buf, dyb, b, t0, s); break;
        case 3: weight_taps<3>(g, L, buf, dyb, b, t0, s); break;
        case 4: weight_taps<4>(g, L, buf, dyb, b, t0, s); break;
        case 5: weight_taps<5>(g, L, buf, dyb, b, t0, s); break;
        case 6: weight_taps<6>(g, L, buf, dyb, b, t0, s); break;
        case 7: weight_taps<7>(g, L, buf, dyb, b, t0, s); break;
        case 8: weight_taps<8>(g, L, buf, dyb, b, t0, s); break;
        default: weight_taps<9>(g, L, buf, dyb, b, t0, s); break;
      }
    }
  }
  for (int64_t t = 0; t < nt; ++t)
    _mm256_storeu_ps(acc + 8 * t,
                     _mm256_add_ps(_mm256_loadu_ps(acc + 8 * t), _mm256_load_ps(sum + 8 * t)));
}

}  // namespace pyconv::avx2
