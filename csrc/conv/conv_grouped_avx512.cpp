// Grouped stride-1 convolutions with few channels per group, AVX-512, float: the weight
// gradient of 1, 2 or 4 groups at a time with output channels as the lanes (below), and
// the direct convolution of one group of one image, the forward kernel of
// conv_grouped_avx2.cpp (which also runs the backward-data) with 16-column vectors. A
// register block is kb (4 or 6) output channels x 16 columns x two output rows (8 or 12
// accumulators: one row's 4-6 would wait on the FMA latency); each source row
// vector serves the kb channels. The same products in the same order per output as the
// AVX2 kernel (channel, row, column of the filter), then + bias: bitwise its results.
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "conv/conv_grouped.h"

namespace pyconv::avx512 {

void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd);

namespace {

#include "common/store_lanes.h"

// acc[v][kk]: output rows p + v (v < NR2) of channels kk < KB, 16 columns from xrow (row r
// of channel c of the padded source at xrow + (c*Hp + r)*Wp), weights wv[((c*R + r)*S + s)*KB
// + kk]. RC, SC > 0 fix R and S (3x3). HALF: the row's last 8 columns (padded rows of a
// multiple of 8 columns), the loads masked to them (lanes 8..15 zero: nothing past the row
// is read).
template <int KB, int NR2, int RC, int SC, bool HALF>
inline void block(const float* xrow, int64_t Hp, int64_t Wp, int64_t Cin, int64_t Rr,
                  int64_t Sr, const float* wv, __m512 (&out)[2][6]) {
  const int64_t R = RC > 0 ? RC : Rr, S = SC > 0 ? SC : Sr;
  __m512 acc[NR2][KB];
#pragma GCC unroll 2
  for (int v = 0; v < NR2; ++v)
#pragma GCC unroll 6
    for (int kk = 0; kk < KB; ++kk) acc[v][kk] = _mm512_setzero_ps();
  for (int64_t c = 0; c < Cin; ++c)
#pragma GCC unroll 7
    for (int64_t r = 0; r < R; ++r) {
      const float* row = xrow + (c * Hp + r) * Wp;
#pragma GCC unroll 7
      for (int64_t s = 0; s < S; ++s, wv += KB) {
        __m512 x[NR2];
#pragma GCC unroll 2
        for (int v = 0; v < NR2; ++v)
          x[v] = HALF ? _mm512_maskz_loadu_ps(0xFF, row + v * Wp + s)
                      : _mm512_loadu_ps(row + v * Wp + s);
#pragma GCC unroll 6
        for (int kk = 0; kk < KB; ++kk) {
          const __m512 b = _mm512_set1_ps(wv[kk]);
#pragma GCC unroll 2
          for (int v = 0; v < NR2; ++v) acc[v][kk] = _mm512_fmadd_ps(b, x[v], acc[v][kk]);
        }
      }
    }
#pragma GCC unroll 2
  for (int v = 0; v < NR2; ++v)
#pragma GCC unroll 6
    for (int kk = 0; kk < KB; ++kk) out[v][kk] = acc[v][kk];
}

template <int KB, int NR2, bool HALF>
inline void block_rs(const float* xrow, int64_t Hp, int64_t Wp, int64_t Cin, int64_t R, int64_t S,
                     const float* wv, __m512 (&out)[2][6]) {
  if (R == 3 && S == 3)
    block<KB, NR2, 3, 3, HALF>(xrow, Hp, Wp, Cin, R, S, wv, out);
  else
    block<KB, NR2, 0, 0, HALF>(xrow, Hp, Wp, Cin, R, S, wv, out);
}

// Output channels [k0, k0 + kn) (kn <= KB) from their block's weights wv.
template <int KB>
void direct(const GdGeom& g, const float* wv, int64_t k0, int kn, const float* bias, float* y,
            const float* xp, bool stream) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1;
  for (int64_t p = 0; p < P; p += 2) {
    const int nr = p + 1 < P ? 2 : 1;
    for (int64_t q0 = 0; q0 < Qv; q0 += 16) {
      __m512 acc[2][6];
      const float* xr = xp + p * Wp + q0;
      if (q0 + 16 <= Qv)
        nr == 2 ? block_rs<KB, 2, false>(xr, Hp, Wp, Cin, R, S, wv, acc)
                : block_rs<KB, 1, false>(xr, Hp, Wp, Cin, R, S, wv, acc);
      else
        nr == 2 ? block_rs<KB, 2, true>(xr, Hp, Wp, Cin, R, S, wv, acc)
                : block_rs<KB, 1, true>(xr, Hp, Wp, Cin, R, S, wv, acc);
      const int64_t nq = Q - q0 < 16 ? Q - q0 : 16;
      const __mmask16 m = static_cast<__mmask16>((1u << nq) - 1u);
      for (int v = 0; v < nr; ++v)
        for (int kk = 0; kk < kn; ++kk) {
          const int64_t k = k0 + kk;
          // conv, then + bias (the order of the GEMM path's epilogue)
          const __m512 o = bias ? _mm512_add_ps(acc[v][kk], _mm512_set1_ps(bias[k])) : acc[v][kk];
          float* d = y + (k * P + p + v) * Q + q0;
          if (stream && nq == 16 && reinterpret_cast<uintptr_t>(d) % 64 == 0)
            _mm512_stream_ps(d, o);
          else
            _mm512_mask_storeu_ps(d, m, o);
        }
    }
  }
}

// One value of each of GV groups, broadcast: lanes l hold group l % GV.
template <int GV>
inline __m512 broadcast_groups(const float* x) {
  if constexpr (GV == 1)
    return _mm512_set1_ps(*x);
  else if constexpr (GV == 2)
    return _mm512_castpd_ps(_mm512_broadcastsd_pd(_mm_load_sd(reinterpret_cast<const double*>(x))));
  else
    return _mm512_broadcast_f32x4(_mm_loadu_ps(x));
}

// The weight-gradient register block: acc[c][t][v] = the 3x3 filter's taps t = 3r + s of
// source channels c < CB against 16 lanes v (lane l: output channel l / GV of group l % GV),
// summed over ni images of P x Q outputs. Per output position: the grad_output vectors at
// d (its lanes contiguous, ldd floats per position) times one source value per group and
// tap, broadcast (an outer product: no horizontal sums, no lanes past the row). Source
// (group j, channel c, row, column) at xc + i*xi + c*cs + (row*Wp + column)*GV + j; the sums
// land in ap[((c*9 + t)*KV + v)*16] (first pass: stored, later ones: added).
// (No predictive commoning: gcc otherwise carries the taps' shared source values from one
// column to the next through the stack, 1.55x slower.)
template <int GV, int CB, int KV>
__attribute__((optimize("no-predictive-commoning"))) inline void weight_block(
    const float* xc, int64_t cs, const float* d, int64_t ldd, int64_t ni, int64_t xi, int64_t di,
    int64_t P, int64_t Q, int64_t Wp, float* ap, bool first) {
  __m512 acc[CB][9][KV];
#pragma GCC unroll 3
  for (int c = 0; c < CB; ++c)
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t)
#pragma GCC unroll 2
      for (int v = 0; v < KV; ++v) acc[c][t][v] = _mm512_setzero_ps();
  for (int64_t i = 0; i < ni; ++i)
    for (int64_t p = 0; p < P; ++p) {
      const float* x0 = xc + i * xi + p * Wp * GV;
      const float* dr = d + i * di + p * Q * ldd;
      for (int64_t q = 0; q < Q; ++q, dr += ldd) {
        __m512 dv[KV];
#pragma GCC unroll 2
        for (int v = 0; v < KV; ++v) dv[v] = _mm512_loadu_ps(dr + 16 * v);
#pragma GCC unroll 3
        for (int c = 0; c < CB; ++c)
#pragma GCC unroll 9
          for (int t = 0; t < 9; ++t) {
            const __m512 b =
                broadcast_groups<GV>(x0 + c * cs + ((t / 3) * Wp + q + t % 3) * GV);
#pragma GCC unroll 2
            for (int v = 0; v < KV; ++v) acc[c][t][v] = _mm512_fmadd_ps(b, dv[v], acc[c][t][v]);
          }
      }
    }
  for (int c = 0; c < CB; ++c)
    for (int t = 0; t < 9; ++t)
      for (int v = 0; v < KV; ++v) {
        float* o = ap + ((c * 9 + t) * KV + v) * 16;
        _mm512_storeu_ps(o, first ? acc[c][t][v] : _mm512_add_ps(_mm512_loadu_ps(o), acc[c][t][v]));
      }
}

// n <= 16 values of GV (2 or 4) rows at s + v*sg, interleaved: d[j*GV + v] = s[v*sg + j].
template <int GV>
inline void interleave16(const float* s, int64_t sg, int64_t n, float* d) {
  const __mmask16 m = first_lanes(n);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512 a = _mm512_maskz_loadu_ps(m, s), b = _mm512_maskz_loadu_ps(m, s + sg);
  __m512 out[4];
  if constexpr (GV == 2) {
    out[0] = _mm512_permutex2var_ps(a, lo, b);  // columns 0-7
    out[1] = _mm512_permutex2var_ps(a, hi, b);  // 8-15
  } else {
    const __m512 c = _mm512_maskz_loadu_ps(m, s + 2 * sg), e = _mm512_maskz_loadu_ps(m, s + 3 * sg);
    // pairs (a b) and (c e) of columns 0-7 and 8-15, then the pairs interleaved
    const __m512d ab0 = _mm512_castps_pd(_mm512_permutex2var_ps(a, lo, b));
    const __m512d ab1 = _mm512_castps_pd(_mm512_permutex2var_ps(a, hi, b));
    const __m512d ce0 = _mm512_castps_pd(_mm512_permutex2var_ps(c, lo, e));
    const __m512d ce1 = _mm512_castps_pd(_mm512_permutex2var_ps(c, hi, e));
    const __m512i plo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i phi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    out[0] = _mm512_castpd_ps(_mm512_permutex2var_pd(ab0, plo, ce0));  // columns 0-3
    out[1] = _mm512_castpd_ps(_mm512_permutex2var_pd(ab0, phi, ce0));  // 4-7
    out[2] = _mm512_castpd_ps(_mm512_permutex2var_pd(ab1, plo, ce1));  // 8-11
    out[3] = _mm512_castpd_ps(_mm512_permutex2var_pd(ab1, phi, ce1));  // 12-15
  }
  for (int k = 0; k < GV; ++k)
    _mm512_mask_storeu_ps(d + 16 * k, first_lanes(GV * n - 16 * k), out[k]);
}

// The zero-padded sources of GV groups (group j at src + j*sg), interleaved as
// weight_block reads them; only the source's positions are written (as avx2's pad).
template <int GV>
void pad_groups(const GdGeom& g, const float* src, int64_t sg, float* xp) {
  if constexpr (GV == 1) {
    avx2::grouped_pad_float(g, src, xp);
  } else {
    const int64_t Hp = g.P + 2, Wp = (g.Q + 7) / 8 * 8 + 2;
    const int64_t jlo = g.pl > 0 ? g.pl : 0, jhi = g.W + g.pl < Wp ? g.W + g.pl : Wp;
    for (int64_t c = 0; c < g.Cin; ++c)
      for (int64_t i = 0; i < Hp; ++i) {
        const int64_t ih = i - g.pt;
        if (ih < 0 || ih >= g.H) continue;
        float* d = xp + (c * Hp + i) * Wp * GV;
        const float* sr = src + c * g.s1 + ih * g.s2 - g.pl * g.s3;
        if (g.s3 == 1)
          for (int64_t j = jlo; j < jhi; j += 16)
            interleave16<GV>(sr + j, sg, jhi - j < 16 ? jhi - j : 16, d + j * GV);
        else
          for (int64_t j = jlo; j < jhi; ++j)
            for (int v = 0; v < GV; ++v) d[j * GV + v] = sr[v * sg + j * g.s3];
      }
  }
}

template <int GV>
void weight_groups(const GdGeom& g, int64_t N, int64_t nb, const float* src, int64_t sn,
                   int64_t sg, const float* dy, int64_t dn, int64_t dg, int64_t d1, int64_t d2,
                   int64_t d3, float* dw, int64_t wg, float* xp, float* dyp, float* acc) {
  const int64_t Cin = g.Cin, P = g.P, Q = g.Q, PQ = P * Q, L = g.Kout * GV;
  const int64_t Hp = P + 2, Wp = (Q + 7) / 8 * 8 + 2, cs = Hp * Wp * GV, xi = Cin * cs;
  const int64_t di = PQ * L, nw = L * Cin * 9;
  // Two lane vectors per block where there are (18 accumulators, one source channel),
  // else three source channels of one vector (27).
  constexpr int kMaxCB = 3;
  const int KV = L % 32 == 0 ? 2 : 1, CB = KV == 2 ? 1 : kMaxCB;
  if (N == 0)
    for (int64_t i = 0; i < nw; ++i) acc[i] = 0.0f;
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t ni = N - n0 < nb ? N - n0 : nb;
    for (int64_t i = 0; i < ni; ++i) {
      pad_groups<GV>(g, src + (n0 + i) * sn, sg, xp + i * xi);
      // dyT: lane l = k*GV + j of position (p, q) from grad_output (k, p, q) of group j.
      const float* d0 = dy + (n0 + i) * dn;
      float* t = dyp + i * di;
      if (d3 == 1 && d2 == Q) {
        for (int64_t l0 = 0; l0 < L; l0 += 8) {
          const float* rows[8];
          for (int l = 0; l < 8; ++l) rows[l] = d0 + (l0 + l) % GV * dg + (l0 + l) / GV * d1;
          transpose8_rows_float(rows, 0, PQ, t + l0, L);
        }
      } else {
        for (int64_t p = 0; p < P; ++p)
          for (int64_t q = 0; q < Q; ++q)
            for (int64_t l = 0; l < L; ++l)
              t[(p * Q + q) * L + l] = d0[l % GV * dg + l / GV * d1 + p * d2 + q * d3];
      }
    }
    for (int64_t l0 = 0; l0 < L; l0 += 16 * KV)
      for (int64_t c0 = 0; c0 < Cin; c0 += CB) {
        const int cb = Cin - c0 < CB ? static_cast<int>(Cin - c0) : CB;
        const float* xc = xp + c0 * cs;
        float* ap = acc + (l0 * Cin + c0 * 16 * KV) * 9;
        const bool first = n0 == 0;
        if (KV == 2)
          weight_block<GV, 1, 2>(xc, cs, dyp + l0, L, ni, xi, di, P, Q, Wp, ap, first);
        else if (cb == 3)
          weight_block<GV, 3, 1>(xc, cs, dyp + l0, L, ni, xi, di, P, Q, Wp, ap, first);
        else if (cb == 2)
          weight_block<GV, 2, 1>(xc, cs, dyp + l0, L, ni, xi, di, P, Q, Wp, ap, first);
        else
          weight_block<GV, 1, 1>(xc, cs, dyp + l0, L, ni, xi, di, P, Q, Wp, ap, first);
      }
  }
  // dw of group j, (k, c, t), from lane l = k*GV + j of its block of 16*KV lanes,
  // acc[l0][c][t][v][lane].
  const int64_t LB = 16 * KV;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t l0 = l / LB * LB, lv = l - l0;
    float* w = dw + l % GV * wg + l / GV * Cin * 9;
    const float* a = acc + l0 * Cin * 9 + (lv / 16) * 16 + lv % 16;
    for (int64_t c = 0; c < Cin; ++c)
      for (int t = 0; t < 9; ++t) w[c * 9 + t] = a[(c * 9 + t) * LB];
  }
}

// ---- 16 output channels as the lanes (grouped_lanes_float) --------------------------------

alignas(64) constexpr float kZeroRow[32] = {};  // source rows and columns on the padding

// Output pixels q0 .. q0 + NP - 1 of output row `row` of all 16 channels: acc[p] lane k is
// channel k's output p. Source row h = row - pt + r of channel c at xs + c*s1 + h*s2 (rows
// outside [0, H) read kZeroRow), column q0 - pl + j at + j for j < NP + 2: each broadcast
// serves up to three outputs (one per filter column); column j = 0 is padding when left,
// j = NP + 1 when right (read as zeros). Per output, the products in (c, r, s) order and
// the padding's zeros included, as direct(): the same sums, bit for bit.
template <int NP>
inline void lanes_block(const GdGeom& g, const float* xs, int64_t row, int64_t q0,
                        const float* wl, bool left, bool right, __m512 (&acc)[16]) {
#pragma GCC unroll 16
  for (int p = 0; p < 16; ++p) acc[p] = _mm512_setzero_ps();
  const float* base = xs + q0 - g.pl;
  for (int64_t c = 0; c < g.Cin; ++c)
#pragma GCC unroll 3
    for (int64_t r = 0; r < 3; ++r, wl += 48) {
      const int64_t h = row - g.pt + r;
      const float* x = h >= 0 && h < g.H ? base + c * g.s1 + h * g.s2 : kZeroRow;
      const float* xl = left ? kZeroRow : x;
      const float* xr = right ? kZeroRow : x + NP + 1;
      const __m512 w0 = _mm512_loadu_ps(wl), w1 = _mm512_loadu_ps(wl + 16),
                   w2 = _mm512_loadu_ps(wl + 32);
#pragma GCC unroll 18
      for (int j = 0; j < NP + 2; ++j) {
        const __m512 v = _mm512_set1_ps(j == 0 ? *xl : j == NP + 1 ? *xr : x[j]);
        if (j < NP) acc[j] = _mm512_fmadd_ps(v, w0, acc[j]);
        if (j >= 1 && j <= NP) acc[j - 1] = _mm512_fmadd_ps(v, w1, acc[j - 1]);
        if (j >= 2) acc[j - 2] = _mm512_fmadd_ps(v, w2, acc[j - 2]);
      }
    }
}

template <int NP>
void lanes_row(const GdGeom& g, const float* xs, int64_t row, int64_t q0, const float* wl,
               bool left, bool right, const float* bias, float* y) {
  __m512 acc[16];
  lanes_block<NP>(g, xs, row, q0, wl, left, right, acc);
  if (bias) {
    const __m512 b = _mm512_loadu_ps(bias);
    for (int p = 0; p < NP; ++p) acc[p] = _mm512_add_ps(acc[p], b);  // conv, then + bias
  }
  transpose16x16_f32(acc);
  const __mmask16 m = first_lanes(NP);
  float* d = y + row * g.Q + q0;
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) _mm512_mask_storeu_ps(d + k * g.P * g.Q, m, acc[k]);
}

template <int... NP>
void lanes_row_n(std::integer_sequence<int, NP...>, int np, const GdGeom& g, const float* xs,
                 int64_t row, int64_t q0, const float* wl, bool left, bool right,
                 const float* bias, float* y) {
  ((np == NP + 1 ? lanes_row<NP + 1>(g, xs, row, q0, wl, left, right, bias, y) : void()), ...);
}

}  // namespace

void grouped_direct_weight_float(const GdGeom& g, int gv, int64_t N, int64_t nb,
                                 const float* src, int64_t sn, int64_t sg, const float* dy,
                                 int64_t dn, int64_t dg, int64_t d1, int64_t d2, int64_t d3,
                                 float* dw, int64_t wg, float* xp, float* dyp, float* acc) {
  if (gv == 1)
    weight_groups<1>(g, N, nb, src, sn, sg, dy, dn, dg, d1, d2, d3, dw, wg, xp, dyp, acc);
  else if (gv == 2)
    weight_groups<2>(g, N, nb, src, sn, sg, dy, dn, dg, d1, d2, d3, dw, wg, xp, dyp, acc);
  else
    weight_groups<4>(g, N, nb, src, sn, sg, dy, dn, dg, d1, d2, d3, dw, wg, xp, dyp, acc);
}

void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp, bool stream) {
  avx2::grouped_pad_float(g, src, xp);
  const int64_t CRS = g.Cin * g.R * g.S;
  grouped_direct_blocks(g.Kout, [&](auto kb, int64_t k0, int kn) {
    direct<decltype(kb)::value>(g, wt + k0 * CRS, k0, kn, bias, y, xp, stream);
  });
}

void grouped_lanes_weights_float(const GdGeom& g, const float* w, float* wl) {
  // A filter's 9 taps in a run (the forward's filter: ascending; the backward-data's
  // flipped one: descending): per channel, 16 filters' runs by masked loads and one 16x16
  // transpose (value by value, with the filter index inner, the rearrangement took 11% of
  // ResNeXt 1024@7 at batch 4; with it outer 9%, by gathers as slow).
  const bool up = g.ws == 1 && g.wr == 3, down = g.ws == -1 && g.wr == -3;
  for (int64_t k0 = 0; k0 < g.Kout; k0 += 16)
    for (int64_t c = 0; c < g.Cin; ++c, wl += 9 * 16) {
      const float* wc = w + k0 * g.wk + c * g.wc;
      if (up || down) {
        __m512 t[16];
        for (int k = 0; k < 16; ++k)
          t[k] = _mm512_maskz_loadu_ps(0x1FF, wc + k * g.wk - (down ? 8 : 0));
        transpose16x16_f32(t);
        for (int i = 0; i < 9; ++i) _mm512_storeu_ps(wl + 16 * i, t[down ? 8 - i : i]);
      } else {
        for (int k = 0; k < 16; ++k)
          for (int64_t i = 0; i < 9; ++i)
            wl[16 * i + k] = wc[k * g.wk + i / 3 * g.wr + i % 3 * g.ws];
      }
    }
}

void grouped_lanes_float(const GdGeom& g, const float* src, const float* wl, const float* bias,
                         float* y) {
  // Each row in near-equal blocks of at most 16 outputs (14x14: one of 14; 56: four of 14).
  const int64_t nb = (g.Q + 15) / 16;
  for (int64_t k0 = 0; k0 < g.Kout; k0 += 16)
    for (int64_t row = 0; row < g.P; ++row)
      for (int64_t i = 0, q0 = 0; i < nb; ++i) {
        const int np = static_cast<int>(g.Q / nb + (i < g.Q % nb ? 1 : 0));
        const bool left = q0 - g.pl < 0, right = q0 + np + 1 - g.pl > g.W - 1;
        lanes_row_n(std::make_integer_sequence<int, 16>{}, np, g, src, row, q0,
                    wl + k0 * g.Cin * 9, left, right, bias ? bias + k0 : nullptr,
                    y + k0 * g.P * g.Q);
        q0 += np;
      }
}

}  // namespace pyconv::avx512
