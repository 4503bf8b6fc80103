// Depthwise conv2d kernels over one (n, c) plane, vectorised along W by the
// compiler. Included by conv_depthwise.cpp (baseline) and
// conv_depthwise_avx2.cpp (-mavx2 -mfma), each inside its own namespace; kept
// free of std:: and shared inline functions so no ISA-specific code can be
// merged into the baseline build by the linker.

#include "common/store_lanes.h"

struct DwGeom {
  int64_t H, W, P, Q, R, S;
  int64_t sh, sw, dh, dw, pt, pl;
};

// A forward's bias and relu, applied by the plane kernels of small 3x3 planes as they store
// each finished vector (dw_fwd_plane tells whether its path did; else the caller runs the
// epilogue): a separate pass over the plane after the kernel cost 6-14% of a memory-bound
// depthwise layer. The same operations as the standalone epilogue (+ bias rounded, then
// x < 0 ? 0 : x), so the same bits.
struct DwEpi {
  float bias;
  bool add_bias, relu;
};

template <typename T>
static inline T dw_epi(const DwEpi* e, T v) {
  if (!e) return v;
  if (e->add_bias) v += static_cast<T>(e->bias);
  return e->relu && v < T(0) ? T(0) : v;
}

// ow in [lo, hi) such that 0 <= ow*st + off < lim, ow < Q.
static inline void dw_ow_range(int64_t off, int64_t st, int64_t lim, int64_t Q, int64_t& lo,
                               int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + st - 1) / st;
  hi = lim - off > 0 ? (lim - off + st - 1) / st : 0;
  if (hi > Q) hi = Q;
  if (hi < lo) hi = lo;
}

// Per-s ow ranges do not depend on the row: computed once per plane (two integer
// divisions each) instead of once per (row, r, s).
#define PYCONV_DW_MAXS 32
struct DwRanges {
  int64_t lo[PYCONV_DW_MAXS], hi[PYCONV_DW_MAXS];
  bool pre;
};
static inline void dw_ranges(const DwGeom& g, DwRanges& rg) {
  rg.pre = g.S <= PYCONV_DW_MAXS;
  if (rg.pre)
    for (int64_t s = 0; s < g.S; ++s) dw_ow_range(s * g.dw - g.pl, g.sw, g.W, g.Q, rg.lo[s], rg.hi[s]);
}
static inline void dw_range(const DwGeom& g, const DwRanges& rg, int64_t s, int64_t& lo,
                            int64_t& hi) {
  if (rg.pre) {
    lo = rg.lo[s];
    hi = rg.hi[s];
  } else {
    dw_ow_range(s * g.dw - g.pl, g.sw, g.W, g.Q, lo, hi);
  }
}

// One output row, columns [qa, qb) only: y[oh, q] = sum over in-range (r, s), in
// (r, s) order, of w[r,s] * x[...]. The whole row ([0, Q)) is the general kernel;
// the 3x3 path below uses it for the border columns and rows.
template <typename T>
static void dw_fwd_row(const DwGeom& g, const DwRanges& rg, const T* x, int64_t xs2, int64_t xs3,
                       const T* w, int64_t ws2, int64_t ws3, T* yr, int64_t oh, int64_t qa,
                       int64_t qb) {
  for (int64_t q = qa; q < qb; ++q) yr[q] = T(0);
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih = oh * g.sh - g.pt + r * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    const T* xr = x + ih * xs2;
    for (int64_t s = 0; s < g.S; ++s) {
      const T wv = w[r * ws2 + s * ws3];
      const int64_t off = s * g.dw - g.pl;
      int64_t lo, hi;
      dw_range(g, rg, s, lo, hi);
      if (lo < qa) lo = qa;
      if (hi > qb) hi = qb;
      if (g.sw == 1 && xs3 == 1) {
        const T* xs = xr + off;
        for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xs[q];
      } else if (g.sw == 2 && xs3 == 1) {
        const T* xs = xr + off;
        for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xs[2 * q];
      } else {
        for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xr[(q * g.sw + off) * xs3];
      }
    }
  }
}

// One output element of the general kernel (same taps, same order), for the few
// border columns of the 3x3 path.
template <typename T>
static inline T dw_fwd_elem(const DwGeom& g, const DwRanges& rg, const T* x, int64_t xs2,
                            int64_t xs3, const T* w, int64_t ws2, int64_t ws3, int64_t oh,
                            int64_t q) {
  T a = T(0);
  for (int64_t r = 0; r < 3; ++r) {  // 3x3 path only
    const int64_t ih = oh * g.sh - g.pt + r * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    const T* xr = x + ih * xs2;
    for (int64_t s = 0; s < 3; ++s) {
      if (q < rg.lo[s] || q >= rg.hi[s]) continue;
      a += w[r * ws2 + s * ws3] * xr[(q * g.sw + s * g.dw - g.pl) * xs3];
    }
  }
  return a;
}

// Columns where all three s taps are in range: [max lo_s, min hi_s).
static inline void dw_interior(const DwRanges& rg, int64_t& qlo, int64_t& qhi) {
  qlo = rg.lo[0];
  qhi = rg.hi[0];
  for (int s = 1; s < 3; ++s) {
    if (rg.lo[s] > qlo) qlo = rg.lo[s];
    if (rg.hi[s] < qhi) qhi = rg.hi[s];
  }
  if (qhi < qlo) qhi = qlo;
}

// Interior columns of an interior output row: all nine taps in (r, s) order.
// RM: bit r set when kernel row r is in range (7 inside, 6 / 3 on the top / bottom row).
template <typename T, int SW, int RM>
static void dw_fwd_interior(const T* __restrict x0, const T* __restrict x1,
                            const T* __restrict x2, int64_t d1, int64_t d2,
                            const T* __restrict wk, T* __restrict yr, int64_t qlo, int64_t qhi) {
  const T w00 = wk[0], w01 = wk[1], w02 = wk[2], w10 = wk[3], w11 = wk[4], w12 = wk[5],
          w20 = wk[6], w21 = wk[7], w22 = wk[8];
  for (int64_t q = qlo; q < qhi; ++q) {
    const int64_t i = SW * q;
    T a = T(0);
    if (RM & 1) { a += w00 * x0[i]; a += w01 * x0[i + d1]; a += w02 * x0[i + d2]; }
    if (RM & 2) { a += w10 * x1[i]; a += w11 * x1[i + d1]; a += w12 * x1[i + d2]; }
    if (RM & 4) { a += w20 * x2[i]; a += w21 * x2[i + d1]; a += w22 * x2[i + d2]; }
    yr[q] = a;
  }
}

#if defined(__AVX2__)
// dw_fwd_interior<float, 2, RM> over whole vectors (qhi - qlo >= 8): the compiler's version
// gathered each tap's even columns with lane-crossing permutes (18 per 8 outputs, and its
// row pointers spilled), 2x slower than the stride-1 kernel on the same bytes. Here tap s
// of output q reads x[2q + s]: two vectors from 2q give its even columns (s = 0) by one
// in-lane shuffle, two from 2q + 1 the s = 1 (even) and s = 2 (odd) ones. The shuffles
// leave the outputs in the order q + {0,1,4,5,2,3,6,7}, the same for every tap, so one
// permute per vector restores it before the store. Same FMAs in the same (r, s) order as
// the scalar loop; reads nothing beyond x[2(qhi - 1) + 2]. A last partial vector is
// recomputed over the previous one's columns (identical values).
template <int RM>
static void dw_fwd_s2_vecs(const float* x0, const float* x1, const float* x2, const float* wk,
                           float* yr, int64_t qlo, int64_t qhi) {
  const float* xr[3] = {x0, x1, x2};
  __m256 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm256_set1_ps(wk[t]);
  auto vec = [&](int64_t q) {
    __m256 a = _mm256_setzero_ps();
    for (int r = 0; r < 3; ++r) {
      if (!((RM >> r) & 1)) continue;
      const float* s = xr[r] + 2 * q;
      const __m256 e0 = _mm256_loadu_ps(s), e1 = _mm256_loadu_ps(s + 8);
      const __m256 o0 = _mm256_loadu_ps(s + 1), o1 = _mm256_loadu_ps(s + 9);
      a = _mm256_fmadd_ps(wv[3 * r], _mm256_shuffle_ps(e0, e1, 0x88), a);
      a = _mm256_fmadd_ps(wv[3 * r + 1], _mm256_shuffle_ps(o0, o1, 0x88), a);
      a = _mm256_fmadd_ps(wv[3 * r + 2], _mm256_shuffle_ps(o0, o1, 0xDD), a);
    }
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(a), 0xD8));
  };
  int64_t q = qlo;
  for (; q + 16 <= qhi; q += 16) {  // two independent chains of nine FMAs
    const __m256 a = vec(q), b = vec(q + 8);
    _mm256_storeu_ps(yr + q, a);
    _mm256_storeu_ps(yr + q + 8, b);
  }
  if (q + 8 <= qhi) {
    _mm256_storeu_ps(yr + q, vec(q));
    q += 8;
  }
  if (q < qhi) _mm256_storeu_ps(yr + qhi - 8, vec(qhi - 8));
}
#endif

// y[oh, ow] = sum_{r,s} w[r,s] * x[oh*sh - pt + r*dh, ow*sw - pl + s*dw]   (y contiguous P x Q)
// Small planes, 3x3, stride 1 (where per-row border handling costs more than the
// arithmetic): the source is copied once into a zero-padded plane with rows padded to
// whole 8-lane vectors, and every output row runs the nine taps over whole vectors.
// Padded zeros take part in the sums (a tap outside the plane adds w * 0; as torch's
// materialised padding does). Returns false when the plane is too large for the stack
// buffer.
#define PYCONV_DW_SMALL 4096
// The zero-padded copy of a source plane for the small-plane kernels: xp[i][j] =
// in[i - pt][j - pl] (zero outside H x W), Hp rows of Wp. Copies run 8 values at a time
// (a loop of a few values would become a memcpy call).
template <typename T>
static void dw_small_pad(int64_t H, int64_t W, int64_t pt, int64_t pl, const T* in,
                         int64_t is2, int64_t is3, int64_t Hp, int64_t Wp, T* xp) {
#if defined(__AVX2__)
  // Whole 8-column vectors, masked loads for the columns outside the source row (a masked
  // lane reads nothing): 3 loads and stores for a 14-wide row instead of a copy loop and
  // two zero fills. Writes up to 7 values past the row (the caller's buffer has room).
  if constexpr (sizeof(T) == 4) {
    if (is3 == 1) {
      // Vector j covers padded columns j .. j+7 = source columns j - pl + lane: whole
      // vectors inside the row [ja, jb) are plain loads, the few at the edges masked.
      const int64_t ja = pl <= 0 ? 0 : (pl + 7) / 8 * 8;
      int64_t jb = ja;
      while (jb + 8 <= Wp && jb - pl + 8 <= W) jb += 8;
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      auto mask = [&](int64_t j) {  // lanes with 0 <= j + l - pl < W
        const __m256i c = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(j - pl)));
        return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), c),
                                   _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(W)), c));
      };
      for (int64_t i = 0; i < Hp; ++i) {
        const int64_t ih = i - pt;
        T* d = xp + i * Wp;
        if (ih < 0 || ih >= H) {
          for (int64_t j = 0; j < Wp; j += 8) _mm256_storeu_ps(d + j, _mm256_setzero_ps());
          continue;
        }
        const T* sr = in + ih * is2 - pl;  // column j of the padded row: sr[j]
        for (int64_t j = 0; j < ja && j < Wp; j += 8)
          _mm256_storeu_ps(d + j, _mm256_maskload_ps(sr + j, mask(j)));
        for (int64_t j = ja; j < jb; j += 8) {
          __m256 v = _mm256_loadu_ps(sr + j);
          asm("" : "+x"(v));  // an opaque value: gcc would make the loop a memcpy call
          _mm256_storeu_ps(d + j, v);
        }
        for (int64_t j = jb > ja ? jb : ja; j < Wp; j += 8)
          _mm256_storeu_ps(d + j, _mm256_maskload_ps(sr + j, mask(j)));
      }
      return;
    }
  }
#endif
  int64_t jlo = pl > 0 ? pl : 0, jhi = W + pl < Wp ? W + pl : Wp;
  if (jhi < jlo) jhi = jlo;
  for (int64_t i = 0; i < Hp; ++i) {
    const int64_t ih = i - pt;
    T* d = xp + i * Wp;
    if (ih < 0 || ih >= H) {
      for (int64_t j = 0; j < Wp; ++j) d[j] = T(0);
      continue;
    }
    const T* sr = in + ih * is2 - pl * is3;
    for (int64_t j = 0; j < jlo; ++j) d[j] = T(0);
    int64_t j = jlo;
    if (is3 == 1)
      for (; j + 8 <= jhi; j += 8) __builtin_memcpy(d + j, sr + j, 8 * sizeof(T));
    for (; j < jhi; ++j) d[j] = sr[j * is3];
    for (j = jhi; j < Wp; ++j) d[j] = T(0);
  }
}

#if defined(__AVX2__)
// DwEpi in registers (the kernels take it by value: through the pointer, every store
// reloaded it).
struct DwEpiV {
  __m256 bias;
  bool add_bias, relu;
  explicit DwEpiV(const DwEpi* e)
      : bias(_mm256_set1_ps(e ? e->bias : 0.0f)), add_bias(e && e->add_bias), relu(e && e->relu) {}
};

static inline __m256 dw_epi_vec(const DwEpiV& e, __m256 a) {
  if (e.add_bias) a = _mm256_add_ps(a, e.bias);
  // max(0, a) is 0 > a ? 0 : a: NaN and -0.0 kept, one instruction
  if (e.relu) a = _mm256_max_ps(_mm256_setzero_ps(), a);
  return a;
}

// RB output rows x NV vectors of a small-plane 3x3 depthwise correlation: tap t of output
// row rr, vector v reads tb[t] + rr*rstep + 8v; stored to o (rows Q apart, n valid
// columns). RB*NV independent accumulators: one chain of nine FMAs per vector would wait
// on their latency.
template <int RB, int NV>
static inline void dw_corr_vecs(const float* const* tb, int64_t rstep, const float* wk, float* o,
                                int64_t Q, int64_t n, DwEpiV e) {
  __m256 a[RB][NV];
  for (int rr = 0; rr < RB; ++rr)
    for (int v = 0; v < NV; ++v) a[rr][v] = _mm256_setzero_ps();
  for (int t = 0; t < 9; ++t) {
    const __m256 wv = _mm256_set1_ps(wk[t]);
    for (int rr = 0; rr < RB; ++rr)
      for (int v = 0; v < NV; ++v)
        a[rr][v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(tb[t] + rr * rstep + 8 * v), a[rr][v]);
  }
  for (int rr = 0; rr < RB; ++rr)
    for (int v = 0; v < NV; ++v) {
      const __m256 r = dw_epi_vec(e, a[rr][v]);
      if (8 * v + 8 <= n) _mm256_storeu_ps(o + rr * Q + 8 * v, r);
      else if (8 * v < n) store_lanes_f32(o + rr * Q + 8 * v, r, n - 8 * v);
    }
}

// Output rows [0, P), up to 4 vectors from column q: blocks of RB rows, then one at a time.
// Tap t of output row oh reads from tb0[t] + oh*rstep (+ the column).
template <int NV>
static inline void dw_corr_cols(const float* const* tb0, int64_t rstep, const float* wk,
                                float* out, int64_t P, int64_t Q, int64_t q, DwEpiV e) {
  constexpr int RB = NV <= 2 ? 4 : 2;
  const float* tb[9];
  for (int64_t oh = 0; oh < P;) {
    const int rb = oh + RB <= P ? RB : 1;
    for (int t = 0; t < 9; ++t) tb[t] = tb0[t] + oh * rstep + q;
    if (rb == RB) dw_corr_vecs<RB, NV>(tb, rstep, wk, out + oh * Q + q, Q, Q - q, e);
    else dw_corr_vecs<1, NV>(tb, rstep, wk, out + oh * Q + q, Q, Q - q, e);
    oh += rb;
  }
}

// The whole P x Q output of a small-plane correlation, column blocks of up to 4 vectors.
static inline void dw_corr_plane(const float* const* tb0, int64_t rstep, const float* wk,
                                 float* out, int64_t P, int64_t Q, const DwEpi* ep) {
  const DwEpiV e(ep);
  const int64_t Qv = (Q + 7) / 8 * 8;
  for (int64_t q = 0; q < Qv; q += 32) switch ((Qv - q) / 8) {
      case 1: dw_corr_cols<1>(tb0, rstep, wk, out, P, Q, q, e); break;
      case 2: dw_corr_cols<2>(tb0, rstep, wk, out, P, Q, q, e); break;
      case 3: dw_corr_cols<3>(tb0, rstep, wk, out, P, Q, q, e); break;
      default: dw_corr_cols<4>(tb0, rstep, wk, out, P, Q, q, e); break;
    }
}

// acc[t*Q + q + i] += a[t] lane i, for the lanes below Q.
static inline void dw_add_taps(const __m256* a, float* acc, int64_t Q, int64_t q) {
  for (int t = 0; t < 9; ++t) {
    float* dst = acc + t * Q + q;
    if (q + 8 <= Q) {
      _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), a[t]));
    } else {
      alignas(32) float tt[8];
      _mm256_store_ps(tt, a[t]);
      for (int64_t i = 0; i < Q - q; ++i) dst[i] += tt[i];
    }
  }
}

// The weight gradient of a small plane: acc[t*Q + q] += sum_oh dy[oh][q] * (tap t's source),
// dp: dy rows zero-padded to Qv columns; per 8-column vector the nine sums in registers
// over every output row (nine independent chains), in the order of the scalar loops.
static inline void dw_bwd_weight_taps(const float* dp, int64_t P, int64_t Q,
                                      const float* const* tb0, int64_t rstep, float* acc) {
  const int64_t Qv = (Q + 7) / 8 * 8;
  for (int64_t q = 0; q < Qv; q += 8) {
    __m256 a[9];
    for (int t = 0; t < 9; ++t) a[t] = _mm256_setzero_ps();
    for (int64_t oh = 0; oh < P; ++oh) {
      const __m256 d = _mm256_loadu_ps(dp + oh * Qv + q);
      for (int t = 0; t < 9; ++t)
        a[t] = _mm256_fmadd_ps(d, _mm256_loadu_ps(tb0[t] + oh * rstep + q), a[t]);
    }
    dw_add_taps(a, acc, Q, q);
  }
}

// dw_bwd_weight_taps for kernel rows of consecutive source rows (dh = 1; the taps of
// output row oh at xp + (oh + r) * Wp + s * dw): source row i feeds kernel row r of output
// row i - r, so its three shifted vectors are loaded once for up to three dy rows (held in
// registers as they roll by) instead of nine loads per output row, half of them split
// across cache lines. Each tap still sums its output rows in ascending order, with the
// same FMAs.
template <bool R0, bool R1, bool R2>
static inline void dw_bwd_weight_row3(const float* xr, int64_t dw, __m256 d0, __m256 d1,
                                      __m256 d2, __m256* a) {
  const __m256 v0 = _mm256_loadu_ps(xr), v1 = _mm256_loadu_ps(xr + dw),
               v2 = _mm256_loadu_ps(xr + 2 * dw);
  if (R0) {  // kernel row 0 of output row i (dy row d0)
    a[0] = _mm256_fmadd_ps(d0, v0, a[0]);
    a[1] = _mm256_fmadd_ps(d0, v1, a[1]);
    a[2] = _mm256_fmadd_ps(d0, v2, a[2]);
  }
  if (R1) {  // kernel row 1 of output row i - 1
    a[3] = _mm256_fmadd_ps(d1, v0, a[3]);
    a[4] = _mm256_fmadd_ps(d1, v1, a[4]);
    a[5] = _mm256_fmadd_ps(d1, v2, a[5]);
  }
  if (R2) {  // kernel row 2 of output row i - 2
    a[6] = _mm256_fmadd_ps(d2, v0, a[6]);
    a[7] = _mm256_fmadd_ps(d2, v1, a[7]);
    a[8] = _mm256_fmadd_ps(d2, v2, a[8]);
  }
}

static inline void dw_bwd_weight_rows(const float* dp, int64_t P, int64_t Q, const float* xp,
                                      int64_t Wp, int64_t dw, float* acc) {
  const int64_t Qv = (Q + 7) / 8 * 8;
  const __m256 z = _mm256_setzero_ps();
  for (int64_t q = 0; q < Qv; q += 8) {
    __m256 a[9];
    for (int t = 0; t < 9; ++t) a[t] = z;
    const float* x = xp + q;
    const float* d = dp + q;
    // dy rows i, i - 1, i - 2 while source row i goes by.
    __m256 d0 = _mm256_loadu_ps(d), d1 = z, d2 = z;
    dw_bwd_weight_row3<true, false, false>(x, dw, d0, d1, d2, a);
    if (P == 1) {
      dw_bwd_weight_row3<false, true, false>(x + Wp, dw, z, d0, z, a);
      dw_bwd_weight_row3<false, false, true>(x + 2 * Wp, dw, z, z, d0, a);
    } else {
      d1 = d0, d0 = _mm256_loadu_ps(d + Qv);
      dw_bwd_weight_row3<true, true, false>(x + Wp, dw, d0, d1, d2, a);
      for (int64_t i = 2; i < P; ++i) {
        d2 = d1, d1 = d0, d0 = _mm256_loadu_ps(d + i * Qv);
        dw_bwd_weight_row3<true, true, true>(x + i * Wp, dw, d0, d1, d2, a);
      }
      dw_bwd_weight_row3<false, true, true>(x + P * Wp, dw, z, d0, d1, a);
      dw_bwd_weight_row3<false, false, true>(x + (P + 1) * Wp, dw, z, z, d0, a);
    }
    dw_add_taps(a, acc, Q, q);
  }
}

// dy rows zero-padded to whole vectors (masked loads when unit stride).
static inline void dw_pad_rows(const float* dy, int64_t ds2, int64_t ds3, int64_t P, int64_t Q,
                               float* dp) {
  const int64_t Qv = (Q + 7) / 8 * 8;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t oh = 0; oh < P; ++oh)
    for (int64_t q = 0; q < Qv; q += 8) {
      if (ds3 == 1) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(Q - q)), lane);
        _mm256_storeu_ps(dp + oh * Qv + q, _mm256_maskload_ps(dy + oh * ds2 + q, m));
      } else {
        for (int64_t i = 0; i < 8; ++i)
          dp[oh * Qv + q + i] = q + i < Q ? dy[oh * ds2 + (q + i) * ds3] : 0.f;
      }
    }
}

// Stride 2 (undilated): the zero-padded source as its even and odd columns, two planes of
// Hp rows x ld (xe[i][j] = padded[i][2j], xo = xe + Hp*ld the odd ones), so every tap of a
// stride-2 output row is a unit-stride read: (s = 0, 1, 2) -> xe[.][q], xo[.][q],
// xe[.][q + 1]. Source column 2j - pl of row i - pt (zero outside H x W). The rows are
// zero-padded first (dw_small_pad: plain loads inside a unit-stride row, masks only at its
// edges), then split with plain loads (splitting straight from the source took two masked
// loads per edge vector, each stalling on memory). Hp * (2*ld + 8) <= PYCONV_DW_SMALL.
static inline void dw_pad_split(int64_t H, int64_t W, int64_t pt, int64_t pl, const float* in,
                                int64_t is2, int64_t is3, int64_t Hp, int64_t ld, float* xe) {
  float* xo = xe + Hp * ld;
  const int64_t Wq = 2 * ld + 8;
  alignas(32) float xp[PYCONV_DW_SMALL + 8];
  dw_small_pad(H, W, pt, pl, in, is2, is3, Hp, Wq, xp);
  for (int64_t i = 0; i < Hp; ++i) {
    const float* r = xp + i * Wq;
    for (int64_t j = 0; j < ld; j += 8) {
      const __m256 h0 = _mm256_loadu_ps(r + 2 * j), h1 = _mm256_loadu_ps(r + 2 * j + 8);
      _mm256_storeu_ps(xe + i * ld + j, _mm256_castpd_ps(_mm256_permute4x64_pd(
          _mm256_castps_pd(_mm256_shuffle_ps(h0, h1, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8)));
      _mm256_storeu_ps(xo + i * ld + j, _mm256_castpd_ps(_mm256_permute4x64_pd(
          _mm256_castps_pd(_mm256_shuffle_ps(h0, h1, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8)));
    }
  }
}

// RB output rows of one 8-column vector of a stride-1 3x3 correlation whose kernel rows
// are consecutive source rows (dh = 1): output row rr takes kernel row r from source row
// rr + r, so each of the RB + 2 source rows is loaded once (three vectors, dw apart) and
// feeds up to three output rows, with the nine weights held in registers (dw_corr_vecs
// loads every tap of every row). Each output still sums its nine taps in (r, s) order,
// with the same FMAs as dw_corr_vecs.
template <int RB>
static inline void dw_corr_rows(const float* x, int64_t ld, int64_t dw, const __m256* wv,
                                float* o, int64_t Q, int64_t n, DwEpiV e) {
  __m256 a[RB];
  for (int rr = 0; rr < RB; ++rr) a[rr] = _mm256_setzero_ps();
  // Fully unrolled (gcc left the r-range tests to run time otherwise).
#pragma GCC unroll 16
  for (int i = 0; i < RB + 2; ++i) {
    const float* xr = x + i * ld;
    const __m256 v0 = _mm256_loadu_ps(xr), v1 = _mm256_loadu_ps(xr + dw),
                 v2 = _mm256_loadu_ps(xr + 2 * dw);
#pragma GCC unroll 16
    for (int rr = 0; rr < RB; ++rr) {
      const int r = i - rr;
      if (r < 0 || r > 2) continue;
      a[rr] = _mm256_fmadd_ps(wv[3 * r], v0, a[rr]);
      a[rr] = _mm256_fmadd_ps(wv[3 * r + 1], v1, a[rr]);
      a[rr] = _mm256_fmadd_ps(wv[3 * r + 2], v2, a[rr]);
    }
  }
  for (int rr = 0; rr < RB; ++rr) {
    const __m256 r = dw_epi_vec(e, a[rr]);
    if (n >= 8) _mm256_storeu_ps(o + rr * Q, r);
    else store_lanes_f32(o + rr * Q, r, n);
  }
}

// RB-row blocks of dw_corr_rows over output rows [oh, oh + RB), left to right.
template <int RB>
static inline void dw_corr_block(const float* xp, int64_t ld, int64_t dw, const __m256* wv,
                                 float* out, int64_t oh, int64_t Q, DwEpiV e) {
  for (int64_t q = 0; q < Q; q += 8)
    dw_corr_rows<RB>(xp + oh * ld + q, ld, dw, wv, out + oh * Q + q, Q, Q - q, e);
}

// The P x Q output of a stride-1, dh = 1 correlation over the padded rows xp (row stride
// ld): blocks of 8 output rows (eight FMA chains: four were bound by their latency), each
// written left to right (column strips down the plane were store-miss bound).
static inline void dw_corr_plane_s1(const float* xp, int64_t ld, int64_t dw, const float* wk,
                                    float* out, int64_t P, int64_t Q, const DwEpi* ep) {
  const DwEpiV e(ep);
  __m256 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm256_set1_ps(wk[t]);
  int64_t oh = 0;
  for (; oh + 8 <= P; oh += 8) dw_corr_block<8>(xp, ld, dw, wv, out, oh, Q, e);
  if (oh + 4 <= P) dw_corr_block<4>(xp, ld, dw, wv, out, oh, Q, e), oh += 4;
  if (oh + 2 <= P) dw_corr_block<2>(xp, ld, dw, wv, out, oh, Q, e), oh += 2;
  if (oh < P) dw_corr_block<1>(xp, ld, dw, wv, out, oh, Q, e);
}

// Forward (and weight gradient) of a small 3x3 stride-2 undilated plane: false when its
// split rows do not fit the stack buffer. (Larger planes take the per-row kernel,
// dw_fwd_s2_vecs: banded copies measured 0.89-0.97x of its compiler-vectorised
// predecessor on 112x112 planes; on 28x28 ones the two run at the same speed.)
static bool dw_small_s2(const DwGeom& g, const float* x, int64_t xs2, int64_t xs3,
                        const float* wk, const float* dy, int64_t ds2, int64_t ds3,
                        float* out, const DwEpi* e) {
  const int64_t P = g.P, Q = g.Q, Qv = (Q + 7) / 8 * 8, ld = Qv + 8, Hp = 2 * P + 1;
  // 2P + 1 source rows, each split in two rows of ld (and padded first to 2*ld + 8 values).
  if (Hp * (2 * ld + 8) > PYCONV_DW_SMALL || Q > 256) return false;
  alignas(32) float xe[PYCONV_DW_SMALL];
  dw_pad_split(g.H, g.W, g.pt, g.pl, x, xs2, xs3, Hp, ld, xe);
  // Taps (s = 0, 1, 2) of a row: xe[q], xo[q], xe[q + 1]. (The row-sharing kernel of
  // stride 1 measured slower here: a source row serves at most two output rows.)
  const float* xo = xe + Hp * ld;
  const float* tb[9];
  for (int r = 0; r < 3; ++r) {
    tb[3 * r] = xe + r * ld;
    tb[3 * r + 1] = xo + r * ld;
    tb[3 * r + 2] = xe + r * ld + 1;
  }
  if (!dy) {
    dw_corr_plane(tb, 2 * ld, wk, out, P, Q, e);
  } else {
    float dp[PYCONV_DW_SMALL];
    dw_pad_rows(dy, ds2, ds3, P, Q, dp);
    dw_bwd_weight_taps(dp, P, Q, tb, 2 * ld, out);
  }
  return true;
}
#endif


#if defined(__AVX2__)
// Backward-data of a 3x3 stride-2 undilated plane by its polyphase parts: dx row ih takes
// kernel rows r = 0, 2 (u = ih + pt even: dy rows u/2, u/2 - 1) or r = 1 (u odd: row
// (u - 1)/2); column iw likewise s = 0, 2 or s = 1 by the parity of v = iw + pl. With dy
// copied zero-padded (dp[rho][kappa] = dy[rho - 1][kappa - 1]), an even v = 2m sums
// w[r][0] dp[.][m + 1] + w[r][2] dp[.][m] and an odd v = 2m + 1 takes w[r][1] dp[.][m + 1]:
// eight of each per vector, interleaved into 16 dx columns. No scatter, no zero taps of the
// stride (the generic kernel gathers each dx column's taps one by one). Bands of dx rows
// whose dy rows fit the stack buffer; false when not even one fits. wk: w in (r, s) order.
static bool dw_bwd_data_s2(const DwGeom& g, const float* dy, int64_t ds2, int64_t ds3,
                           const float* wk, float* dx) {
  const int64_t H = g.H, W = g.W, pt = g.pt, pl = g.pl, c = pl / 2;
  if (pt < 0 || pl < 0) return false;
  // Columns read: M + kappa for M = iw0/2 + c (iw0 < W, a multiple of 16), kappa in [0, 10).
  const int64_t Wd = ((W - 1) / 2 + c + 10 + 7) / 8 * 8;
  const int64_t B = 2 * (PYCONV_DW_SMALL / Wd - 3);  // dx rows per band (b/2 + 2 dy rows)
  if (B < 2) return false;
  alignas(32) float dp[PYCONV_DW_SMALL + 8];
  __m256 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm256_set1_ps(wk[t]);
  const bool odd = pl % 2 != 0;
  const int64_t e = odd ? 1 : 0;  // even-v outputs at m = M + e, odd-v ones at m = M
  for (int64_t ih0 = 0; ih0 < H; ih0 += B) {
    const int64_t b = H - ih0 < B ? H - ih0 : B;
    const int64_t rho0 = (ih0 + pt) / 2, rho1 = (ih0 + b - 1 + pt) / 2 + 1;
    // Band row i is dp row rho0 + i = dy row rho0 + i - 1.
    dw_small_pad(g.P, g.Q, 1 - rho0, 1, dy, ds2, ds3, rho1 - rho0 + 1, Wd, dp);
    for (int64_t ih = ih0; ih < ih0 + b; ++ih) {
      const int64_t u = ih + pt;
      float* xr = dx + ih * W;
      // Kernel rows of this dx row: (ra, rows da) and, for even u, (rb, rows db).
      const bool ev = u % 2 == 0;
      const float* da = dp + ((ev ? u / 2 + 1 : (u - 1) / 2 + 1) - rho0) * Wd;
      const float* db = dp + (u / 2 - rho0) * Wd;  // (used for even u only)
      const int ra = ev ? 0 : 1;
      for (int64_t iw0 = 0; iw0 < W; iw0 += 16) {
        const int64_t M = iw0 / 2 + c;
        __m256 E = _mm256_mul_ps(wv[3 * ra], _mm256_loadu_ps(da + M + e + 1));
        E = _mm256_fmadd_ps(wv[3 * ra + 2], _mm256_loadu_ps(da + M + e), E);
        __m256 O = _mm256_mul_ps(wv[3 * ra + 1], _mm256_loadu_ps(da + M + 1));
        if (ev) {
          E = _mm256_fmadd_ps(wv[6], _mm256_loadu_ps(db + M + e + 1), E);
          E = _mm256_fmadd_ps(wv[8], _mm256_loadu_ps(db + M + e), E);
          O = _mm256_fmadd_ps(wv[7], _mm256_loadu_ps(db + M + 1), O);
        }
        // dx[iw0 + 2j] and dx[iw0 + 2j + 1]: (E, O) for even pl, (O, E) for odd.
        const __m256 lo = odd ? O : E, hi = odd ? E : O;
        const __m256 u0 = _mm256_unpacklo_ps(lo, hi), u1 = _mm256_unpackhi_ps(lo, hi);
        const __m256 f0 = _mm256_permute2f128_ps(u0, u1, 0x20),
                     f1 = _mm256_permute2f128_ps(u0, u1, 0x31);
        const int64_t n = W - iw0;
        if (n >= 16) {
          _mm256_storeu_ps(xr + iw0, f0);
          _mm256_storeu_ps(xr + iw0 + 8, f1);
        } else if (n >= 8) {  // (store_lanes_f32 stores at most 7 lanes)
          _mm256_storeu_ps(xr + iw0, f0);
          if (n > 8) store_lanes_f32(xr + iw0 + 8, f1, n - 8);
        } else {
          store_lanes_f32(xr + iw0, f0, n);
        }
      }
    }
  }
  return true;
}
#endif

// Output rows per band of a banded small-plane kernel: bands of at most PYCONV_DW_SMALL
// padded values (Wp wide, halo rows above and below), as even as possible; 0 when not even
// one row fits.
static inline int64_t dw_band_rows(int64_t P, int64_t Wp, int64_t halo) {
  const int64_t most = PYCONV_DW_SMALL / Wp - halo;
  if (most < 1) return 0;
  if (P <= most) return P > 0 ? P : 1;
  const int64_t nb = (P + most - 1) / most;
  return (P + nb - 1) / nb;
}

// out[oh][ow] = sum_{r, s} wk[3r + s] * in[oh + r*dh - pt][ow + s*dw - pl] (zero outside
// in's H x W), for the P x Q outputs (row stride Q). Bands of output rows: each band's
// source rows are copied zero-padded into a stack buffer (in L1), then every output row
// runs the nine taps over whole vectors; false when the rows are too wide for the buffer.
template <typename T>
static bool dw_small_corr(int64_t H, int64_t W, int64_t P, int64_t Q, int64_t pt, int64_t pl,
                          int64_t dh, int64_t dw, const T* in, int64_t is2, int64_t is3,
                          const T* wk, T* out, const DwEpi* e) {
  // Padded rows of whole aligned vectors: the copy's stores never straddle cache lines.
  const int64_t Qv = (Q + 7) / 8 * 8, Wp = (Qv + 2 * dw + 7) / 8 * 8;
  const int64_t B = dw_band_rows(P, Wp, 2 * dh);
  if (B == 0 || Q > 256) return false;
  alignas(32) T xp[PYCONV_DW_SMALL + 8];  // (dw_small_pad may write 7 values past the plane)
  for (int64_t oh0 = 0; oh0 < P; oh0 += B) {
    const int64_t b = P - oh0 < B ? P - oh0 : B;
    // Padded row i of the band is source row oh0 + i - pt.
    dw_small_pad(H, W, pt - oh0, pl, in, is2, is3, b + 2 * dh, Wp, xp);
    T* ob = out + oh0 * Q;
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
      if (dh == 1) {
        dw_corr_plane_s1(xp, Wp, dw, wk, ob, b, Q, e);
      } else {
        // Up to 32 columns of up to 4 rows in registers across the nine taps.
        const float* tb[9];
        for (int t = 0; t < 9; ++t) tb[t] = xp + t / 3 * dh * Wp + t % 3 * dw;
        dw_corr_plane(tb, Wp, wk, ob, b, Q, e);
      }
      continue;
    }
#endif
    T acc[256];
    for (int64_t oh = 0; oh < b; ++oh) {
      for (int64_t q = 0; q < Qv; ++q) acc[q] = T(0);
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) {
          const T wv = wk[3 * r + s];
          const T* xr = xp + (oh + r * dh) * Wp + s * dw;
          for (int64_t q = 0; q < Qv; ++q) acc[q] += wv * xr[q];
        }
      T* o = ob + oh * Q;
      int64_t q = 0;
      if (e)
        for (; q < Q; ++q) o[q] = dw_epi(e, acc[q]);
      for (; q + 8 <= Q; q += 8) __builtin_memcpy(o + q, acc + q, 8 * sizeof(T));
      for (; q < Q; ++q) o[q] = acc[q];
    }
  }
  return true;
}

// Returns whether its path applied e (when not null): the small-plane 3x3 kernels do.
template <typename T>
static bool dw_fwd_plane(const DwGeom& g, const T* x, int64_t xs2, int64_t xs3, const T* w,
                         int64_t ws2, int64_t ws3, T* y, const DwEpi* e) {
  if (g.R == 3 && g.S == 3 && g.sh == 1 && g.sw == 1) {
    const T wk[9] = {w[0], w[ws3], w[2 * ws3], w[ws2], w[ws2 + ws3], w[ws2 + 2 * ws3],
                     w[2 * ws2], w[2 * ws2 + ws3], w[2 * ws2 + 2 * ws3]};
    if (dw_small_corr(g.H, g.W, g.P, g.Q, g.pt, g.pl, g.dh, g.dw, x, xs2, xs3, wk, y, e))
      return true;
  }
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    if (g.R == 3 && g.S == 3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1) {
      const float wk[9] = {w[0], w[ws3], w[2 * ws3], w[ws2], w[ws2 + ws3], w[ws2 + 2 * ws3],
                           w[2 * ws2], w[2 * ws2 + ws3], w[2 * ws2 + 2 * ws3]};
      if (dw_small_s2(g, x, xs2, xs3, wk, nullptr, 0, 0, y, e)) return true;
    }
  }
#endif
  DwRanges rg;
  dw_ranges(g, rg);
  if (!(g.R == 3 && g.S == 3 && xs3 == 1 && (g.sw == 1 || g.sw == 2))) {
    for (int64_t oh = 0; oh < g.P; ++oh)
      dw_fwd_row(g, rg, x, xs2, xs3, w, ws2, ws3, y + oh * g.Q, oh, 0, g.Q);
    return false;
  }
  // 3x3: interior columns of interior rows take all nine taps in one pass, in the
  // same (r, s) order and with the same operations as the general kernel.
  int64_t qlo, qhi;
  dw_interior(rg, qlo, qhi);
  const T w00 = w[0], w01 = w[ws3], w02 = w[2 * ws3];
  const T w10 = w[ws2], w11 = w[ws2 + ws3], w12 = w[ws2 + 2 * ws3];
  const T w20 = w[2 * ws2], w21 = w[2 * ws2 + ws3], w22 = w[2 * ws2 + 2 * ws3];
  const int64_t d1 = g.dw, d2 = 2 * g.dw;
  const T wk[9] = {w00, w01, w02, w10, w11, w12, w20, w21, w22};
  for (int64_t oh = 0; oh < g.P; ++oh) {
    T* yr = y + oh * g.Q;
    const int64_t ih0 = oh * g.sh - g.pt;
    const bool v0 = ih0 >= 0 && ih0 < g.H, v1 = ih0 + g.dh >= 0 && ih0 + g.dh < g.H,
               v2 = ih0 + 2 * g.dh >= 0 && ih0 + 2 * g.dh < g.H;
    const int rm = (v0 ? 1 : 0) | (v1 ? 2 : 0) | (v2 ? 4 : 0);
    if (!(rm == 7 || rm == 6 || rm == 3) || qlo >= qhi) {
      for (int64_t q = 0; q < g.Q; ++q)
        yr[q] = dw_fwd_elem(g, rg, x, xs2, xs3, w, ws2, ws3, oh, q);
      continue;
    }
    for (int64_t q = 0; q < qlo; ++q) yr[q] = dw_fwd_elem(g, rg, x, xs2, xs3, w, ws2, ws3, oh, q);
    // Row pointers of out-of-range kernel rows are never dereferenced.
    const T* x0 = x + ih0 * xs2 - g.pl;
    const T* x1 = x0 + g.dh * xs2;
    const T* x2 = x1 + g.dh * xs2;
    if (g.sw == 1) {
      if (rm == 7) dw_fwd_interior<T, 1, 7>(x0, x1, x2, d1, d2, wk, yr, qlo, qhi);
      else if (rm == 6) dw_fwd_interior<T, 1, 6>(x0, x1, x2, d1, d2, wk, yr, qlo, qhi);
      else dw_fwd_interior<T, 1, 3>(x0, x1, x2, d1, d2, wk, yr, qlo, qhi);
    } else {
#if defined(__AVX2__)
      if constexpr (sizeof(T) == 4) {
        if (g.dw == 1 && qhi - qlo >= 8) {
          if (rm == 7) dw_fwd_s2_vecs<7>(x0, x1, x2, wk, yr, qlo, qhi);
          else if (rm == 6) dw_fwd_s2_vecs<6>(x0, x1, x2, wk, yr, qlo, qhi);
          else dw_fwd_s2_vecs<3>(x0, x1, x2, wk, yr, qlo, qhi);
          for (int64_t q = qhi; q < g.Q; ++q)
            yr[q] = dw_fwd_elem(g, rg, x, xs2, xs3, w, ws2, ws3, oh, q);
          continue;
        }
      }
#endif
      if (rm == 7) dw_fwd_interior<T, 2, 7>(x0, x1, x2, d1, d2, wk, yr, qlo, qhi);
      else if (rm == 6) dw_fwd_interior<T, 2, 6>(x0, x1, x2, d1, d2, wk, yr, qlo, qhi);
      else dw_fwd_interior<T, 2, 3>(x0, x1, x2, d1, d2, wk, yr, qlo, qhi);
    }
    for (int64_t q = qhi; q < g.Q; ++q)
      yr[q] = dw_fwd_elem(g, rg, x, xs2, xs3, w, ws2, ws3, oh, q);
  }
  return false;
}

// One dx row, columns [ia, ib) only (general kernel; see dw_bwd_data_plane).
template <typename T>
static void dw_bwd_data_row(const DwGeom& g, const DwRanges& rg, const T* dy, int64_t ds2,
                            int64_t ds3, const T* w, int64_t ws2, int64_t ws3, T* xr, int64_t ih,
                            int64_t ia, int64_t ib) {
  for (int64_t i = ia; i < ib; ++i) xr[i] = T(0);
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t th = ih + g.pt - r * g.dh;
    if (th < 0) continue;
    int64_t oh = th;
    if (g.sh != 1) {
      if (th % g.sh) continue;
      oh = th / g.sh;
    }
    if (oh >= g.P) continue;
    const T* dr = dy + oh * ds2;
    for (int64_t s = 0; s < g.S; ++s) {
      const T wv = w[r * ws2 + s * ws3];
      const int64_t off = s * g.dw - g.pl;
      int64_t lo, hi;
      dw_range(g, rg, s, lo, hi);
      // iw = q*sw + off in [ia, ib)
      if (ia > 0) {
        const int64_t t = ia - off;
        const int64_t l2 = t <= 0 ? 0 : (t + g.sw - 1) / g.sw;
        if (l2 > lo) lo = l2;
      }
      if (ib < g.W) {
        const int64_t t = ib - off;
        const int64_t h2 = t <= 0 ? 0 : (t + g.sw - 1) / g.sw;
        if (h2 < hi) hi = h2;
      }
      if (g.sw == 1 && ds3 == 1) {
        T* xs = xr + off;
        for (int64_t q = lo; q < hi; ++q) xs[q] += wv * dr[q];
      } else if (g.sw == 2 && ds3 == 1) {
        T* xs = xr + off;
        for (int64_t q = lo; q < hi; ++q) xs[2 * q] += wv * dr[q];
      } else {
        for (int64_t q = lo; q < hi; ++q) xr[q * g.sw + off] += wv * dr[q * ds3];
      }
    }
  }
}

// One dx element of the general kernel at stride 1 (same taps, same order).
template <typename T>
static inline T dw_bwd_data_elem1(const DwGeom& g, const DwRanges& rg, const T* dy, int64_t ds2,
                                  const T* w, int64_t ws2, int64_t ws3, int64_t ih, int64_t iw) {
  T a = T(0);
  for (int64_t r = 0; r < 3; ++r) {  // 3x3 path only
    const int64_t oh = ih + g.pt - r * g.dh;
    if (oh < 0 || oh >= g.P) continue;
    const T* dr = dy + oh * ds2;
    for (int64_t s = 0; s < 3; ++s) {
      const int64_t q = iw - (s * g.dw - g.pl);
      if (q < rg.lo[s] || q >= rg.hi[s]) continue;
      a += w[r * ws2 + s * ws3] * dr[q];
    }
  }
  return a;
}

// One dx element of the general kernel, any stride (same taps, same order).
template <typename T>
static inline T dw_bwd_data_elem(const DwGeom& g, const DwRanges& rg, const T* dy, int64_t ds2,
                                 int64_t ds3, const T* w, int64_t ws2, int64_t ws3, int64_t ih,
                                 int64_t iw) {
  T a = T(0);
  for (int64_t r = 0; r < 3; ++r) {  // 3x3 path only
    const int64_t th = ih + g.pt - r * g.dh;
    if (th < 0) continue;
    int64_t oh;
    if (g.sh == 2) {  // no integer division on the common stride
      if (th & 1) continue;
      oh = th >> 1;
    } else {
      if (th % g.sh) continue;
      oh = th / g.sh;
    }
    if (oh >= g.P) continue;
    const T* dr = dy + oh * ds2;
    for (int64_t s = 0; s < 3; ++s) {
      const int64_t t = iw - (s * g.dw - g.pl);
      if (t < 0) continue;
      int64_t q;
      if (g.sw == 2) {
        if (t & 1) continue;
        q = t >> 1;
      } else {
        if (t % g.sw) continue;
        q = t / g.sw;
      }
      if (q < rg.lo[s] || q >= rg.hi[s]) continue;
      a += w[r * ws2 + s * ws3] * dr[q * ds3];
    }
  }
  return a;
}

// 3x3, stride 2, dilation 1: dx row ih takes r in {0, 2} (ih + pt even) or r = 1 (odd),
// column iw takes s in {0, 2} (iw + pl even) or s = 1 (odd); the pair of columns
// (2u - pl, 2u + 1 - pl) reads dy columns u and u - 1. Border rows and columns go
// through the general kernel.
template <typename T>
static void dw_bwd_data_plane_3x3s2(const DwGeom& g, const DwRanges& rg, const T* dy,
                                    int64_t ds2, const T* w, int64_t ws2, int64_t ws3, T* dx) {
  int64_t ilo = 0, ihi = g.W;
  for (int s = 0; s < 3; ++s) {
    const int64_t off = s - g.pl;
    if (rg.lo[s] * 2 + off > ilo) ilo = rg.lo[s] * 2 + off;
    if ((rg.hi[s] - 1) * 2 + off + 1 < ihi) ihi = (rg.hi[s] - 1) * 2 + off + 1;
  }
  if (ihi < ilo) ihi = ilo;
  const T w00 = w[0], w01 = w[ws3], w02 = w[2 * ws3];
  const T w10 = w[ws2], w11 = w[ws2 + ws3], w12 = w[ws2 + 2 * ws3];
  const T w20 = w[2 * ws2], w21 = w[2 * ws2 + ws3], w22 = w[2 * ws2 + 2 * ws3];
  for (int64_t ih = 0; ih < g.H; ++ih) {
    T* xr = dx + ih * g.W;
    const int64_t th = ih + g.pt;
    const bool two = (th % 2) == 0;
    const int64_t oh = two ? th / 2 : (th - 1) / 2;  // r = 0 (two) or r = 1; r = 2 is oh - 1
    if (oh >= g.P || (two && oh - 1 < 0) || ilo >= ihi) {
      for (int64_t i = 0; i < g.W; ++i)
        xr[i] = dw_bwd_data_elem(g, rg, dy, ds2, int64_t(1), w, ws2, ws3, ih, i);
      continue;
    }
    int64_t iw = 0;
    for (; iw < ilo; ++iw) xr[iw] = dw_bwd_data_elem(g, rg, dy, ds2, int64_t(1), w, ws2, ws3, ih, iw);
    if ((iw + g.pl) % 2) {
      xr[iw] = dw_bwd_data_elem(g, rg, dy, ds2, int64_t(1), w, ws2, ws3, ih, iw);
      ++iw;
    }
    // pairs (iw, iw + 1) = (2u - pl, 2u + 1 - pl) while iw + 1 < ihi
    const int64_t u0 = (iw + g.pl) / 2;
    const int64_t npair = iw + 1 < ihi ? (ihi - iw) / 2 : 0;
    T* xe = xr + iw;
    if (two) {
      const T* dA = dy + oh * ds2 + u0;
      const T* dB = dA - ds2;
      for (int64_t j = 0; j < npair; ++j) {
        T a = T(0);
        a += w00 * dA[j]; a += w02 * dA[j - 1]; a += w20 * dB[j]; a += w22 * dB[j - 1];
        T b = T(0);
        b += w01 * dA[j]; b += w21 * dB[j];
        xe[2 * j] = a;
        xe[2 * j + 1] = b;
      }
    } else {
      const T* dC = dy + oh * ds2 + u0;
      for (int64_t j = 0; j < npair; ++j) {
        T a = T(0);
        a += w10 * dC[j]; a += w12 * dC[j - 1];
        T b = T(0);
        b += w11 * dC[j];
        xe[2 * j] = a;
        xe[2 * j + 1] = b;
      }
    }
    for (iw += 2 * npair; iw < g.W; ++iw)
      xr[iw] = dw_bwd_data_elem(g, rg, dy, ds2, int64_t(1), w, ws2, ws3, ih, iw);
  }
}

// dx[ih, iw] = sum over (r, s, oh, ow) with ih = oh*sh - pt + r*dh, iw = ow*sw - pl + s*dw
// of w[r,s] * dy[oh, ow]; each dx row gathers its own taps (dx contiguous H x W).
template <typename T>
static void dw_bwd_data_plane(const DwGeom& g, const T* dy, int64_t ds2, int64_t ds3, const T* w,
                              int64_t ws2, int64_t ws3, T* dx) {
  if (g.R == 3 && g.S == 3 && g.sh == 1 && g.sw == 1) {
    // dx[ih][iw] = sum_{r, s} dy[ih + pt - r*dh][iw + pl - s*dw] w[r][s]: the correlation of
    // dy with the flipped filter, padded by 2*dh - pt and 2*dw - pl.
    const T wk[9] = {w[2 * ws2 + 2 * ws3], w[2 * ws2 + ws3], w[2 * ws2], w[ws2 + 2 * ws3],
                     w[ws2 + ws3], w[ws2], w[2 * ws3], w[ws3], w[0]};
    if (dw_small_corr(g.P, g.Q, g.H, g.W, 2 * g.dh - g.pt, 2 * g.dw - g.pl, g.dh, g.dw, dy, ds2,
                      ds3, wk, dx, static_cast<const DwEpi*>(nullptr)))
      return;
  }
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    if (g.R == 3 && g.S == 3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1) {
      const float wk[9] = {w[0], w[ws3], w[2 * ws3], w[ws2], w[ws2 + ws3], w[ws2 + 2 * ws3],
                           w[2 * ws2], w[2 * ws2 + ws3], w[2 * ws2 + 2 * ws3]};
      if (dw_bwd_data_s2(g, dy, ds2, ds3, wk, dx)) return;
    }
  }
#endif
  DwRanges rg;
  dw_ranges(g, rg);
  if (g.R == 3 && g.S == 3 && ds3 == 1 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 &&
      g.S <= PYCONV_DW_MAXS) {
    dw_bwd_data_plane_3x3s2(g, rg, dy, ds2, w, ws2, ws3, dx);
    return;
  }
  if (!(g.R == 3 && g.S == 3 && ds3 == 1 && g.sh == 1 && g.sw == 1)) {
    for (int64_t ih = 0; ih < g.H; ++ih)
      dw_bwd_data_row(g, rg, dy, ds2, ds3, w, ws2, ws3, dx + ih * g.W, ih, 0, g.W);
    return;
  }
  // 3x3 stride 1: dx[ih, iw] takes tap (r, s) from dy[ih + pt - r*dh, iw - off_s]; interior
  // columns are those where every s is in range.
  int64_t ilo = 0, ihi = g.W;
  for (int s = 0; s < 3; ++s) {
    const int64_t off = s * g.dw - g.pl;
    if (rg.lo[s] + off > ilo) ilo = rg.lo[s] + off;
    if (rg.hi[s] + off < ihi) ihi = rg.hi[s] + off;
  }
  if (ihi < ilo) ihi = ilo;
  const T w00 = w[0], w01 = w[ws3], w02 = w[2 * ws3];
  const T w10 = w[ws2], w11 = w[ws2 + ws3], w12 = w[ws2 + 2 * ws3];
  const T w20 = w[2 * ws2], w21 = w[2 * ws2 + ws3], w22 = w[2 * ws2 + 2 * ws3];
  const int64_t o0 = g.pl, o1 = g.pl - g.dw, o2 = g.pl - 2 * g.dw;  // dy col = iw + o_s
  for (int64_t ih = 0; ih < g.H; ++ih) {
    T* xr = dx + ih * g.W;
    const int64_t oh0 = ih + g.pt;  // r = 0; r = 2 is oh0 - 2*dh
    if (oh0 >= g.P || oh0 - 2 * g.dh < 0 || ilo >= ihi) {
      for (int64_t i = 0; i < g.W; ++i)
        xr[i] = dw_bwd_data_elem1(g, rg, dy, ds2, w, ws2, ws3, ih, i);
      continue;
    }
    for (int64_t i = 0; i < ilo; ++i) xr[i] = dw_bwd_data_elem1(g, rg, dy, ds2, w, ws2, ws3, ih, i);
    const T* d0 = dy + oh0 * ds2;
    const T* d1 = d0 - g.dh * ds2;
    const T* d2 = d1 - g.dh * ds2;
    for (int64_t i = ilo; i < ihi; ++i) {
      T a = T(0);
      a += w00 * d0[i + o0]; a += w01 * d0[i + o1]; a += w02 * d0[i + o2];
      a += w10 * d1[i + o0]; a += w11 * d1[i + o1]; a += w12 * d1[i + o2];
      a += w20 * d2[i + o0]; a += w21 * d2[i + o1]; a += w22 * d2[i + o2];
      xr[i] = a;
    }
    for (int64_t i = ihi; i < g.W; ++i)
      xr[i] = dw_bwd_data_elem1(g, rg, dy, ds2, w, ws2, ws3, ih, i);
  }
}

// One dy row of the general weight-gradient kernel, columns [qa, qb) only.
template <typename T>
static void dw_bwd_weight_row(const DwGeom& g, const DwRanges& rg, const T* dr, int64_t ds3,
                              const T* x, int64_t xs2, int64_t xs3, T* acc, int64_t oh,
                              int64_t qa, int64_t qb) {
  for (int64_t r = 0; r < g.R; ++r) {
    const int64_t ih = oh * g.sh - g.pt + r * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    const T* xr = x + ih * xs2;
    for (int64_t s = 0; s < g.S; ++s) {
      T* a = acc + (r * g.S + s) * g.Q;
      const int64_t off = s * g.dw - g.pl;
      int64_t lo, hi;
      dw_range(g, rg, s, lo, hi);
      if (lo < qa) lo = qa;
      if (hi > qb) hi = qb;
      if (g.sw == 1 && xs3 == 1 && ds3 == 1) {
        const T* xs = xr + off;
        for (int64_t q = lo; q < hi; ++q) a[q] += dr[q] * xs[q];
      } else if (g.sw == 2 && xs3 == 1 && ds3 == 1) {
        const T* xs = xr + off;
        for (int64_t q = lo; q < hi; ++q) a[q] += dr[q] * xs[2 * q];
      } else {
        for (int64_t q = lo; q < hi; ++q) a[q] += dr[q * ds3] * xr[(q * g.sw + off) * xs3];
      }
    }
  }
}

// 3x3 interior columns of one interior dy row, one kernel row r: the three tap
// accumulators of r in one pass (each acc element still gets one update per row).
template <typename T, int SW>
static void dw_bwd_weight_interior(const T* __restrict dr, const T* __restrict xr, int64_t d1,
                                   int64_t d2, T* __restrict a0, T* __restrict a1,
                                   T* __restrict a2, int64_t qlo, int64_t qhi) {
  for (int64_t q = qlo; q < qhi; ++q) {
    const T d = dr[q];
    const int64_t i = SW * q;
    a0[q] += d * xr[i];
    a1[q] += d * xr[i + d1];
    a2[q] += d * xr[i + d2];
  }
}

// acc[(r*S + s)*Q + ow] += dy[oh, ow] * x[oh*sh - pt + r*dh, ow*sw - pl + s*dw] over oh.
// acc[(3r + s)*Q + q] += sum_oh dy[oh][q] * x[oh + r*dh - pt][q + s*dw - pl] (stride 1;
// bands of dy rows as in dw_small_corr): per band into a local sum over whole vectors (dy
// rows zero past Q), then added to acc.
template <typename T>
static bool dw_small_bwd_weight(const DwGeom& g, const T* dy, int64_t ds2, int64_t ds3,
                                const T* x, int64_t xs2, int64_t xs3, T* acc) {
  const int64_t P = g.P, Q = g.Q, Qv = (Q + 7) / 8 * 8, Wp = (Qv + 2 * g.dw + 7) / 8 * 8;
  const int64_t B = dw_band_rows(P, Wp, 2 * g.dh);
  if (B == 0 || Q > 256) return false;
  alignas(32) T xp[PYCONV_DW_SMALL + 8];  // (dw_small_pad may write 7 values past the plane)
  for (int64_t oh0 = 0; oh0 < P; oh0 += B) {
    const int64_t b = P - oh0 < B ? P - oh0 : B;
    const T* dyb = dy + oh0 * ds2;
    dw_small_pad(g.H, g.W, g.pt - oh0, g.pl, x, xs2, xs3, b + 2 * g.dh, Wp, xp);
#if defined(__AVX2__)
    // dy rows padded once, then the nine taps' sums in registers (dw_bwd_weight_taps).
    if constexpr (sizeof(T) == 4) {
      T dp[PYCONV_DW_SMALL];  // b * Qv <= b * Wp values
      dw_pad_rows(dyb, ds2, ds3, b, Q, dp);
      if (g.dh == 1) {
        dw_bwd_weight_rows(dp, b, Q, xp, Wp, g.dw, acc);
      } else {
        const float* tb[9];
        for (int t = 0; t < 9; ++t) tb[t] = xp + t / 3 * g.dh * Wp + t % 3 * g.dw;
        dw_bwd_weight_taps(dp, b, Q, tb, Wp, acc);
      }
      continue;
    }
#endif
    T loc[9 * 256], dr[256];
    for (int64_t i = 0; i < 9 * Qv; ++i) loc[i] = T(0);
    for (int64_t oh = 0; oh < b; ++oh) {
      for (int64_t q = 0; q < Qv; ++q) dr[q] = q < Q ? dyb[oh * ds2 + q * ds3] : T(0);
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) {
          T* a = loc + (3 * r + s) * Qv;
          const T* xr = xp + (oh + r * g.dh) * Wp + s * g.dw;
          for (int64_t q = 0; q < Qv; ++q) a[q] += dr[q] * xr[q];
        }
    }
    for (int rs = 0; rs < 9; ++rs)
      for (int64_t q = 0; q < Q; ++q) acc[rs * Q + q] += loc[rs * Qv + q];
  }
  return true;
}

template <typename T>
static void dw_bwd_weight_plane(const DwGeom& g, const T* dy, int64_t ds2, int64_t ds3,
                                const T* x, int64_t xs2, int64_t xs3, T* acc) {
  if (g.R == 3 && g.S == 3 && g.sh == 1 && g.sw == 1 &&
      dw_small_bwd_weight(g, dy, ds2, ds3, x, xs2, xs3, acc))
    return;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    if (g.R == 3 && g.S == 3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 &&
        dw_small_s2(g, x, xs2, xs3, nullptr, dy, ds2, ds3, acc, nullptr))
      return;
  }
#endif
  DwRanges rg;
  dw_ranges(g, rg);
  if (!(g.R == 3 && g.S == 3 && xs3 == 1 && ds3 == 1 && (g.sw == 1 || g.sw == 2))) {
    for (int64_t oh = 0; oh < g.P; ++oh)
      dw_bwd_weight_row(g, rg, dy + oh * ds2, ds3, x, xs2, xs3, acc, oh, 0, g.Q);
    return;
  }
  int64_t qlo, qhi;
  dw_interior(rg, qlo, qhi);
  const int64_t Q = g.Q, d1 = g.dw, d2 = 2 * g.dw;
  for (int64_t oh = 0; oh < g.P; ++oh) {
    const T* dr = dy + oh * ds2;
    const int64_t ih0 = oh * g.sh - g.pt;
    if (ih0 < 0 || ih0 + 2 * g.dh >= g.H || qlo >= qhi) {
      dw_bwd_weight_row(g, rg, dr, ds3, x, xs2, xs3, acc, oh, 0, Q);
      continue;
    }
    const T* x0 = x + ih0 * xs2 - g.pl;
    const T* x1 = x0 + g.dh * xs2;
    const T* x2 = x1 + g.dh * xs2;
    const T* xs[3] = {x0, x1, x2};
    for (int r = 0; r < 3; ++r) {
      T* a = acc + 3 * r * Q;
      if (g.sw == 1)
        dw_bwd_weight_interior<T, 1>(dr, xs[r], d1, d2, a, a + Q, a + 2 * Q, qlo, qhi);
      else
        dw_bwd_weight_interior<T, 2>(dr, xs[r], d1, d2, a, a + Q, a + 2 * Q, qlo, qhi);
    }
    // Border columns: scalar, only the in-range taps (all three rows are in range).
    for (int64_t q = 0; q < Q; ++q) {
      if (q == qlo) q = qhi;
      if (q >= Q) break;
      const T d = dr[q];
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) {
          if (q < rg.lo[s] || q >= rg.hi[s]) continue;
          acc[(3 * r + s) * Q + q] += d * xs[r][q * g.sw + s * g.dw];
        }
    }
  }
}

// Adds the P x Q plane r (rows s2 apart, unit stride along them) into 16 double lanes by
// row parity and position along the row, lane[(oh % 2)*8 + ow % 8] (the bias gradient,
// conv_depthwise.cpp): rows go in pairs, so four vector chains hide the add latency.
template <typename T>
static void bias_plane(const T* r, int64_t s2, int64_t P, int64_t Q, double* lane) {
#if defined(__AVX2__)
  // (gcc vectorises the loops below poorly: scalar conversions and inserts.) A row's last
  // vector is a masked load: its zero lanes add +0.0, which changes no lane (the lanes
  // start at +0.0, so none is ever -0.0): the same sums as the scalar loops.
  if constexpr (sizeof(T) == 4) {
    __m256d a[2] = {_mm256_loadu_pd(lane), _mm256_loadu_pd(lane + 4)};
    __m256d b[2] = {_mm256_loadu_pd(lane + 8), _mm256_loadu_pd(lane + 12)};
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    auto add = [](__m256d (&acc)[2], __m256 x) {
      acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
      acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
    };
    for (int64_t oh = 0; oh < P; oh += 2, r += 2 * s2) {
      const T* r1 = oh + 1 < P ? r + s2 : nullptr;
      int64_t ow = 0;
      for (; ow + 8 <= Q; ow += 8) {
        add(a, _mm256_loadu_ps(r + ow));
        if (r1) add(b, _mm256_loadu_ps(r1 + ow));
      }
      if (ow < Q) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(Q - ow)), idx);
        add(a, _mm256_maskload_ps(r + ow, m));
        if (r1) add(b, _mm256_maskload_ps(r1 + ow, m));
      }
    }
    _mm256_storeu_pd(lane, a[0]), _mm256_storeu_pd(lane + 4, a[1]);
    _mm256_storeu_pd(lane + 8, b[0]), _mm256_storeu_pd(lane + 12, b[1]);
    return;
  }
#endif
  double a[8], b[8];
  for (int j = 0; j < 8; ++j) a[j] = lane[j], b[j] = lane[8 + j];
  int64_t oh = 0;
  for (; oh + 2 <= P; oh += 2, r += 2 * s2) {
    const T* r1 = r + s2;
    int64_t ow = 0;
    for (; ow + 8 <= Q; ow += 8)
      for (int j = 0; j < 8; ++j) {
        a[j] += static_cast<double>(r[ow + j]);
        b[j] += static_cast<double>(r1[ow + j]);
      }
    for (; ow < Q; ++ow) {
      a[ow % 8] += static_cast<double>(r[ow]);
      b[ow % 8] += static_cast<double>(r1[ow]);
    }
  }
  if (oh < P)
    for (int64_t ow = 0; ow < Q; ++ow) a[ow % 8] += static_cast<double>(r[ow]);
  for (int j = 0; j < 8; ++j) lane[j] = a[j], lane[8 + j] = b[j];
}
