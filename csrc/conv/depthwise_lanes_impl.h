// The L-channel depthwise kernels (depthwise_lanes.h), included inside an ISA namespace by
// depthwise8_avx2.cpp and depthwise16_avx512.cpp after its vector traits V: V::R the vector
// of V::L floats; zero, load (64-byte aligned for L = 16, 32 for 8), loadu, store, storeu,
// fmadd, add, max; transpose(r) (L rows of L values to columns, in place); load_first(p, n)
// and store_first(p, v, n) (the first n < L lanes; nothing read or written past them);
// interleave(x, xs1, n, d): d[q*L + c] = x[c*xs1 + q] for c < L, q < n <= L (d aligned).
//
// Why: the per-plane kernels (depthwise_plane.h) vectorise along a row, so a 14-wide row is
// two vectors with two masked edge loads, three misaligned loads per source row and a
// zero-padded copy of every plane; on small planes that took 20-40 cycles per 8 outputs
// where the nine FMAs of a 3x3 need 4.5 (and kernels other than 3x3 ran a scalar loop:
// 5-12 GFLOP/s on 5x5). Here a vector is one pixel of L channels: the interleaved plane
// is aligned, its zero border is written once per thread, and a stride or dilation only
// changes addresses. 3x3 and 5x5 are compiled with their taps unrolled; other sizes up to
// kDwlMaxTaps taps loop over them. Blocks of L output pixels (L accumulators) go out by
// one L x L transpose.

namespace {

constexpr int NL = V::L;  // lanes: channels a vector, pixels a block
using Vec = V::R;

// Interleaved bands up to 4 Ki pixels (128 KiB of 8 lanes, 256 KiB of 16): in L2 beside the
// source and output rows in flight; the same rows a band at either width.
constexpr int64_t kMaxBuf = (int64_t(4) << 10) * NL;

// The interleaved band: rows of Wp pixels (the columns the taps read, for at least NL
// outputs), source column w at pixel w + pl for w in [w0, w1), the rest zero. A band of B
// output rows reads Bh = (B - 1)*sh + (R - 1)*dh + 1 source rows; B is as many as fit
// kMaxBuf. toff[t]: tap t = r*S + s's offset in the band, floats.
struct Layout {
  int64_t Wp, w0, w1, B, Bh;
  int64_t toff[kDwlMaxTaps];
};

Layout layout(const DwlGeom& g) {
  Layout L;
  const int64_t span_h = (g.R - 1) * g.dh + 1;
  L.Wp = (std::max<int64_t>(g.Q, NL) - 1) * g.sw + (g.S - 1) * g.dw + 1;
  L.w0 = std::max<int64_t>(0, -g.pl), L.w1 = std::min(g.W, L.Wp - g.pl);
  const int64_t rows = kMaxBuf / (L.Wp * NL);  // source rows that fit
  L.B = rows < span_h ? 0 : std::min(g.P, (rows - span_h) / g.sh + 1);
  L.Bh = (L.B - 1) * g.sh + span_h;
  for (int64_t t = 0; t < g.R * g.S && t < kDwlMaxTaps; ++t)
    L.toff[t] = (t / g.S * g.dh * L.Wp + t % g.S * g.dw) * NL;
  return L;
}

// Pixels l - w0 (l in [w0, w1)) of d get x[c][l] in lane c from the rows x + c*xs1: blocks
// of NL columns (V::interleave), the last block overlapping the one before it (the same
// values twice); rows under NL columns by masked loads (a masked lane reads nothing).
void interleave_row(const float* x, int64_t xs1, int64_t w0, int64_t w1, float* d) {
  const int64_t n = w1 - w0;
  if (n <= 0) return;
  if (n < NL) return V::interleave(x + w0, xs1, n, d);
  for (int64_t l = w0;; l += NL) {
    if (l + NL > w1) l = w1 - NL;
    V::interleave(x + l, xs1, NL, d + (l - w0) * NL);
    if (l + NL >= w1) break;
  }
}

// NL pixels a[k] (lane = channel) to o + ch*ld + k, channel by channel (an NL x NL
// transpose, in place): all NL columns, or the first n when n < NL.
inline void store_pixels(Vec (&a)[NL], float* o, int64_t ld, int64_t n) {
  V::transpose(a);
  if (n >= NL)
    for (int ch = 0; ch < NL; ++ch) V::storeu(o + ch * ld, a[ch]);
  else
    for (int ch = 0; ch < NL; ++ch) V::store_first(o + ch * ld, a[ch], n);
}

// Band rows i < rows: source row hs + i, zero outside the source (whole rows).
void interleave_band(const DwlGeom& g, const Layout& L, const float* x, int64_t xs1,
                     int64_t xs2, int64_t hs, int64_t rows, float* buf) {
  const int64_t ldp = L.Wp * NL;
  for (int64_t i = 0; i < rows; ++i) {
    float* d = buf + i * ldp;
    const int64_t h = hs + i;
    if (h < 0 || h >= g.H) {
      for (int64_t j = 0; j < ldp; j += NL) V::store(d + j, V::zero());
      continue;
    }
    interleave_row(x + h * xs2, xs1, L.w0, L.w1, d + (L.w0 + g.pl) * NL);
  }
}

}  // namespace

int64_t dwl_buffer(const DwlGeom& g) {
  const Layout L = layout(g);
  if (g.P < 1 || g.Q < 1 || g.R < 1 || g.S < 1 || g.R * g.S > kDwlMaxTaps || L.B < 1) return 0;
  return L.Bh * L.Wp * NL;
}

int64_t dwl_dy_buffer(const DwlGeom& g) {
  return layout(g).B * std::max<int64_t>(g.Q, NL) * NL;
}

namespace {

// NL output pixels from src = (rows + q0*cs): each a chain of FMAs over the taps in (r, s)
// order. KR x KS: the kernel when known at compile time (taps unrolled, their offsets
// r*dh*ldp + s*dw*NL folded: 1.2x over reading them from toff on 56x56 3x3 planes), else
// 0 x 0 (n taps at toff).
template <int KR, int KS>
inline void taps(const float* src, int64_t cs, int64_t rstep, int64_t sstep, const float* wv,
                 const int64_t* toff, int64_t n, Vec (&a)[NL]) {
  for (int k = 0; k < NL; ++k) a[k] = V::zero();
  if constexpr (KR > 0) {
#pragma GCC unroll 25
    for (int t = 0; t < KR * KS; ++t) {
      const Vec w = V::loadu(wv + NL * t);
      const float* s = src + (t / KS) * rstep + (t % KS) * sstep;
#pragma GCC unroll 16
      for (int k = 0; k < NL; ++k) a[k] = V::fmadd(w, V::load(s + k * cs), a[k]);
    }
  } else {
    for (int64_t t = 0; t < n; ++t) {
      const Vec w = V::loadu(wv + NL * t);
      const float* s = src + toff[t];
#pragma GCC unroll 16
      for (int k = 0; k < NL; ++k) a[k] = V::fmadd(w, V::load(s + k * cs), a[k]);
    }
  }
}

template <int KR, int KS>
void forward_rows(const DwlGeom& g, const Layout& L, const float* x, int64_t xs1, int64_t xs2,
                  const float* wv, const float* bias, bool relu, float* y, int64_t ys1,
                  float* buf, int64_t oh_begin, int64_t oh_end) {
  const Vec bv = bias ? V::loadu(bias) : V::zero();
  const int64_t ldp = L.Wp * NL, cs = g.sw * NL, nt = g.R * g.S;
  for (int64_t oh0 = oh_begin; oh0 < oh_end; oh0 += L.B) {
    const int64_t b = std::min(L.B, oh_end - oh0);
    interleave_band(g, L, x, xs1, xs2, oh0 * g.sh - g.pt, (b - 1) * g.sh + (g.R - 1) * g.dh + 1,
                    buf);
    for (int64_t oh = oh0; oh < oh0 + b; ++oh) {
      const float* rows = buf + (oh - oh0) * g.sh * ldp;
      // NL output pixels at a time; the last block overlaps the one before it when Q is
      // not a multiple of NL (under NL: its first Q lanes stored, the others read zero
      // columns).
      for (int64_t q0 = 0;; q0 += NL) {
        if (q0 + NL > g.Q) q0 = std::max<int64_t>(0, g.Q - NL);
        Vec a[NL];
        taps<KR, KS>(rows + q0 * cs, cs, g.dh * ldp, g.dw * NL, wv, L.toff, nt, a);
        for (int k = 0; k < NL; ++k) {
          if (bias) a[k] = V::add(a[k], bv);
          // max(0, a) is 0 > a ? 0 : a: NaN and -0.0 kept (as the per-plane kernels)
          if (relu) a[k] = V::max(V::zero(), a[k]);
        }
        store_pixels(a, y + oh * g.Q + q0, ys1, g.Q);
        if (q0 + NL >= g.Q) break;
      }
    }
  }
}

}  // namespace

void dwl_forward(const DwlGeom& g, const float* x, int64_t xs1, int64_t xs2, const float* wv,
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
// edges read zero), then NL dx pixels at a time: per kernel row, each kernel column adds
// to the NL/2 of the block's pixels of its parity, their taps in (r, s) order.
namespace {
struct S2 {
  int64_t E, Wb, Hb;
};
S2 s2_layout(const DwlGeom& g) {
  S2 L;
  L.E = (std::max(g.R, g.S) - 1 + 1) / 2;  // ceil((max(R, S) - 1) / 2)
  L.Wb = std::max(g.Q + 2 * L.E, (std::max<int64_t>(g.W, NL) - 1 + g.pl) / 2 + L.E + 1);
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
                   Vec (&a)[NL]) {
  const int64_t ns = KS ? KS : S;
#pragma GCC unroll 2
  for (int par = 0; par < 2; ++par) {
#pragma GCC unroll 3
    for (int64_t s = (par + P0) & 1; s < ns; s += 2) {
      const Vec w = V::loadu(wr + NL * s);
      const float* q = p + ((v0 + par - s) / 2 + E) * NL;
#pragma GCC unroll 8
      for (int j = 0; j < NL / 2; ++j)
        a[par + 2 * j] = V::fmadd(w, V::load(q + j * NL), a[par + 2 * j]);
    }
  }
}

// The 3x3 case of s2_row with each dy vector loaded once for both parities (an even
// column v = 2c takes s = 0 from dy column c and s = 2 from c - 1, an odd one v = 2c + 1
// takes s = 1 from c; v0 = 2m + ODD): 1.3-1.7x over the parity passes on 3x3 layers.
template <bool ODD>
inline void s2_row3(const float* p, int64_t m, int64_t E, const float* w3, Vec (&a)[NL]) {
  const Vec w0 = V::loadu(w3), w1 = V::loadu(w3 + NL), w2 = V::loadu(w3 + 2 * NL);
  const float* q = p + (m + E - 1) * NL;  // q + NL is dy column m (pixel m + E)
#pragma GCC unroll 8
  for (int j = 0; j < NL / 2; ++j) {
    if (!ODD) {
      a[2 * j] = V::fmadd(w0, V::load(q + (j + 1) * NL), a[2 * j]);
      a[2 * j] = V::fmadd(w2, V::load(q + j * NL), a[2 * j]);
      a[2 * j + 1] = V::fmadd(w1, V::load(q + (j + 1) * NL), a[2 * j + 1]);
    } else {
      a[2 * j] = V::fmadd(w1, V::load(q + (j + 1) * NL), a[2 * j]);
      a[2 * j + 1] = V::fmadd(w0, V::load(q + (j + 2) * NL), a[2 * j + 1]);
      a[2 * j + 1] = V::fmadd(w2, V::load(q + (j + 1) * NL), a[2 * j + 1]);
    }
  }
}

template <int KS>
void backward_data_s2(const DwlGeom& g, const float* dy, int64_t ds1, int64_t ds2,
                      const float* wv, float* dx, int64_t dxs1, float* buf, int64_t ih_begin,
                      int64_t ih_end) {
  const S2 L = s2_layout(g);
  const int64_t ldp = L.Wb * NL;
  // The dy rows dx rows [ih_begin, ih_end) read: (ih + pt - r)/2 for r < R.
  const int64_t j0 = std::max<int64_t>(0, (ih_begin + g.pt - (g.R - 1)) / 2);
  const int64_t j1 = std::min(g.P, (ih_end - 1 + g.pt) / 2 + 1);
  for (int64_t j = j0; j < j1; ++j)
    interleave_row(dy + j * ds2, ds1, 0, g.Q, buf + ((j + L.E) * L.Wb + L.E) * NL);
  for (int64_t ih = ih_begin; ih < ih_end; ++ih) {
    const int64_t u = ih + g.pt;  // kernel rows r = u % 2, u % 2 + 2, ... read dy row (u - r)/2
    for (int64_t iw0 = 0;; iw0 += NL) {
      if (iw0 + NL > g.W) iw0 = std::max<int64_t>(0, g.W - NL);
      Vec a[NL];
      for (int k = 0; k < NL; ++k) a[k] = V::zero();
      const int64_t v0 = iw0 + g.pl;
      for (int64_t r = u % 2; r < g.R; r += 2) {
        const float* p = buf + ((u - r) / 2 + L.E) * ldp;
        const float* wr = wv + NL * g.S * r;
        if constexpr (KS == 3) {
          if (v0 % 2 == 0) s2_row3<false>(p, v0 / 2, L.E, wr, a);
          else s2_row3<true>(p, v0 / 2, L.E, wr, a);
        } else {
          if (v0 % 2 == 0) s2_row<KS, 0>(p, v0, L.E, wr, g.S, a);
          else s2_row<KS, 1>(p, v0, L.E, wr, g.S, a);
        }
      }
      store_pixels(a, dx + ih * g.W + iw0, dxs1, g.W);
      if (iw0 + NL >= g.W) break;
    }
  }
}
}  // namespace

int64_t dwl_s2_buffer(const DwlGeom& g) {
  const S2 L = s2_layout(g);
  const int64_t n = L.Hb * L.Wb * NL;
  const bool ok = g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 && g.H >= 1 && g.W >= 1 &&
                  g.P >= 1 && g.Q >= 1 && g.R * g.S <= kDwlMaxTaps && n <= kMaxBuf;
  return ok ? n : 0;
}

void dwl_backward_data_s2(const DwlGeom& g, const float* dy, int64_t ds1, int64_t ds2,
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

// sum[i] (NL lanes each) += sum over the band's outputs of dy * tap t0 + i's source pixel,
// for i < NT: NT chains in (oh, ow) order, continuing from sum.
template <int NT>
void weight_taps(const DwlGeom& g, const Layout& L, const float* buf, const float* dyb,
                 int64_t b, int64_t t0, float* sum) {
  const int64_t ldp = L.Wp * NL, cs = g.sw * NL;
  int64_t off[NT];  // (a local copy: kept in registers, not reloaded per pixel)
  for (int j = 0; j < NT; ++j) off[j] = L.toff[t0 + j];
  Vec a[NT];
  for (int i = 0; i < NT; ++i) a[i] = V::loadu(sum + NL * i);
  for (int64_t i = 0; i < b; ++i) {
    const float* rows = buf + i * g.sh * ldp;
    const float* d = dyb + i * g.Q * NL;
    for (int64_t ow = 0; ow < g.Q; ++ow) {
      const Vec dv = V::load(d + ow * NL);
      const float* s = rows + ow * cs;
#pragma GCC unroll 9
      for (int j = 0; j < NT; ++j) a[j] = V::fmadd(dv, V::load(s + off[j]), a[j]);
    }
  }
  for (int i = 0; i < NT; ++i) V::storeu(sum + NL * i, a[i]);
}

}  // namespace

void dwl_backward_weight(const DwlGeom& g, const float* dy, int64_t ds1, int64_t ds2,
                         const float* x, int64_t xs1, int64_t xs2, float* acc, float* buf,
                         float* dyb) {
  const Layout L = layout(g);
  const int64_t nt = g.R * g.S;
  // Per tap, one chain over the image's outputs in (oh, ow) order (across bands), then into
  // acc; taps nine at a time (nine chains in registers).
  alignas(64) float sum[kDwlMaxTaps * NL] = {};
  for (int64_t oh0 = 0; oh0 < g.P; oh0 += L.B) {
    const int64_t b = std::min(L.B, g.P - oh0);
    interleave_band(g, L, x, xs1, xs2, oh0 * g.sh - g.pt, (b - 1) * g.sh + (g.R - 1) * g.dh + 1,
                    buf);
    for (int64_t i = 0; i < b; ++i)
      interleave_row(dy + (oh0 + i) * ds2, ds1, 0, g.Q, dyb + i * g.Q * NL);
    for (int64_t t0 = 0; t0 < nt; t0 += 9) {
      float* s = sum + NL * t0;
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
    V::storeu(acc + NL * t, V::add(V::loadu(acc + NL * t), V::load(sum + NL * t)));
}
