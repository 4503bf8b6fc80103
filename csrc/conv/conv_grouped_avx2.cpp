// Direct stride-1 convolution of one group of one image, AVX2 + FMA, float: for
// grouped convolutions with few channels per group, where an im2col-style GEMM
// packs 9x the input to do 2*Kg flops per packed element. Here every input element
// is loaded from L1 once per tap and used for 4 or 6 output channels at a time.
// Kept free of std:: and shared inline functions (see depthwise_plane.h); the
// caller (conv_grouped.cpp) supplies the scratch buffers.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv_grouped.h"

namespace pyconv::avx2 {

namespace {

#include "common/store_lanes.h"

constexpr int kKB = 6;  // the most output channels per forward block (grouped_direct_block)

// acc[kk][v] over vectors v < NV of 8 output columns at xrow (row r of channel c at
// xrow + (c*Hp + r)*Wp), weights wv[((c*R + r)*S + s)*KB + kk]. RC, SC > 0 fix R
// and S at compile time (3x3): the taps of a channel then unroll into one straight
// block with constant offsets.
template <int KB, int NV, int RC, int SC>
inline void block(const float* xrow, int64_t Hp, int64_t Wp, int64_t Cin, int64_t Rr, int64_t Sr,
                  const float* wv, __m256 (&out)[kKB][2]) {
  const int64_t R = RC > 0 ? RC : Rr, S = SC > 0 ? SC : Sr;
  // Local accumulators, every loop over them fully unrolled: otherwise gcc keeps some
  // of them in memory (through the reference it stored them every step).
  __m256 acc[KB][NV];
#pragma GCC unroll 8
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[kk][v] = _mm256_setzero_ps();
  for (int64_t c = 0; c < Cin; ++c)
#pragma GCC unroll 7
    for (int64_t r = 0; r < R; ++r) {
      const float* row = xrow + (c * Hp + r) * Wp;
#pragma GCC unroll 7
      for (int64_t s = 0; s < S; ++s, wv += KB) {
        __m256 x[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) x[v] = _mm256_loadu_ps(row + s + 8 * v);
#pragma GCC unroll 8
        for (int kk = 0; kk < KB; ++kk) {
          const __m256 b = _mm256_broadcast_ss(wv + kk);
#pragma GCC unroll 2
          for (int v = 0; v < NV; ++v) acc[kk][v] = _mm256_fmadd_ps(b, x[v], acc[kk][v]);
        }
      }
    }
#pragma GCC unroll 8
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) out[kk][v] = acc[kk][v];
}

template <int KB, int NV>
inline void block_rs(const float* xrow, int64_t Hp, int64_t Wp, int64_t Cin, int64_t R,
                     int64_t S, const float* wv, __m256 (&out)[kKB][2]) {
  if (R == 3 && S == 3)
    block<KB, NV, 3, 3>(xrow, Hp, Wp, Cin, R, S, wv, out);
  else
    block<KB, NV, 0, 0>(xrow, Hp, Wp, Cin, R, S, wv, out);
}

// d[0, n) = s[0, n), then zeros up to d[m) (m >= n, m - n < 8 is the usual case); reads
// nothing past s[n).
inline void copy_row_zero_tail(const float* s, float* d, int64_t n, int64_t m) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
  if (j < n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)), lane);
    const __m256 v = _mm256_maskload_ps(s + j, mask);  // zero in the masked-off lanes
    if (j + 8 <= m) {
      _mm256_storeu_ps(d + j, v);
      j += 8;
    } else {  // (no masked store: microcoded and slow on AMD)
      store_lanes_f32(d + j, v, n - j);
      j = n;
    }
  }
  for (; j < m; ++j) d[j] = 0.0f;
}

// The source of one group into its zero-padded copy: xp[c][i][j] = src[c][i - pt][j - pl]
// for rows i < P + R - 1 and columns j < Qv + S - 1. Only the source rows are written: xp
// already holds zeros everywhere else (the caller zeroes a thread's buffer once per call,
// and every group of the call writes the same positions; on ResNeXt's 14x14 planes the
// zero writes were most of a per-group copy's time).
inline void pad_source(const GdGeom& g, const float* src, float* xp) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1;
  // Columns [jlo, jhi) are inside the row.
  int64_t jlo = g.pl > 0 ? g.pl : 0, jhi = g.W + g.pl < Wp ? g.W + g.pl : Wp;
  if (jhi < jlo) jhi = jlo;
  for (int64_t c = 0; c < Cin; ++c)
    for (int64_t i = 0; i < Hp; ++i) {
      const int64_t ih = i - g.pt;
      if (ih < 0 || ih >= g.H) continue;
      float* d = xp + (c * Hp + i) * Wp;
      const float* sr = src + c * g.s1 + ih * g.s2 - g.pl * g.s3;
      if (g.s3 == 1) {  // (the row's zeros past jhi: room for whole-vector stores)
        copy_row_zero_tail(sr + jlo, d + jlo, jhi - jlo, Wp - jlo);
        continue;
      }
      for (int64_t j = jlo; j < jhi; ++j) d[j] = sr[j * g.s3];
    }
}

// The weights of filters [0, kn) (kn <= KB, the rest zero) at w, tap by tap: KB values
// per (c, r, s), in that order.
template <int KB>
void repack_block(const GdGeom& g, const float* w, int kn, float* d) {
  for (int64_t c = 0; c < g.Cin; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s, d += KB) {
        const float* src = w + c * g.wc + r * g.wr + s * g.ws;
#pragma GCC unroll 6
        for (int kk = 0; kk < KB; ++kk) d[kk] = kk < kn ? src[kk * g.wk] : 0.0f;
      }
}

}  // namespace

void grouped_direct_weights_float(const GdGeom& g, const float* w, float* wt) {
  const int64_t CRS = g.Cin * g.R * g.S;
  grouped_direct_blocks(g.Kout, [&](auto kb, int64_t k0, int kn) {
    repack_block<decltype(kb)::value>(g, w + k0 * g.wk, kn, wt + k0 * CRS);
  });
}

namespace {

// Output channels [k0, k0 + kn) (kn <= KB) from their block's weights wv.
template <int KB>
void direct(const GdGeom& g, const float* wv, int64_t k0, int kn, const float* bias, float* y,
            const float* xp) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t q0 = 0; q0 < Qv;) {
      __m256 acc[kKB][2];
      const int nv = q0 + 16 <= Qv ? 2 : 1;
      if (nv == 2)
        block_rs<KB, 2>(xp + p * Wp + q0, Hp, Wp, Cin, R, S, wv, acc);
      else
        block_rs<KB, 1>(xp + p * Wp + q0, Hp, Wp, Cin, R, S, wv, acc);
      const int64_t nq = Q - q0 < 8 * nv ? Q - q0 : 8 * nv;
      for (int kk = 0; kk < kn; ++kk) {
        const int64_t k = k0 + kk;
        const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
        float* yr = y + (k * P + p) * Q + q0;
        for (int v = 0; v < nv; ++v) {
          // conv, then + bias (the order of the GEMM path's epilogue)
          const __m256 o = bias ? _mm256_add_ps(acc[kk][v], b) : acc[kk][v];
          if (8 * v + 8 <= nq)
            _mm256_storeu_ps(yr + 8 * v, o);
          else
            store_lanes_f32(yr + 8 * v, o, nq - 8 * v);
        }
      }
      q0 += 8 * nv;
    }
}

}  // namespace

void grouped_pad_float(const GdGeom& g, const float* src, float* xp) { pad_source(g, src, xp); }

void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp) {
  pad_source(g, src, xp);
  const int64_t CRS = g.Cin * g.R * g.S;
  grouped_direct_blocks(g.Kout, [&](auto kb, int64_t k0, int kn) {
    direct<decltype(kb)::value>(g, wt + k0 * CRS, k0, kn, bias, y, xp);
  });
}

// The weight-gradient register block: acc lanes of kn (<= WK) output channels x sn
// (<= 3) taps along a row, summed over ni images of P rows of Qv columns: ap[kk*ks + j*8]
// += the lanes. KN, SN, NQ > 0 fix kn, sn and the row's vectors Qv / 8 at compile time,
// so that the accumulators stay in registers and a row is one straight block.
template <int WK, int KN, int SN, int NQ>
inline void weight_block(const float* xr, const float* dr, int64_t ni, int64_t xi, int64_t di,
                         int64_t P, int64_t Wp, int64_t Qv, __m256 tail, float* ap, int64_t ks,
                         bool first, int kn_ = WK, int sn_ = 3) {
  const int kn = KN > 0 ? KN : kn_, sn = SN > 0 ? SN : sn_;
  const int64_t nq = NQ > 0 ? NQ : Qv / 8, plane = P * Qv;
  __m256 a[WK][3];
#pragma GCC unroll 4
  for (int kk = 0; kk < WK; ++kk)
#pragma GCC unroll 3
    for (int j = 0; j < 3; ++j) a[kk][j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < ni; ++i)
    for (int64_t p = 0; p < P; ++p) {
      const float* xrow = xr + i * xi + p * Wp;
      const float* drow = dr + i * di + p * Qv;
#pragma GCC unroll 4
      for (int64_t v = 0; v < nq; ++v) {
        __m256 x[3];
#pragma GCC unroll 3
        for (int j = 0; j < 3; ++j)
          x[j] = j < sn ? _mm256_loadu_ps(xrow + 8 * v + j) : _mm256_setzero_ps();
        if (v == nq - 1) {
#pragma GCC unroll 3
          for (int j = 0; j < 3; ++j) x[j] = _mm256_and_ps(x[j], tail);
        }
#pragma GCC unroll 4
        for (int kk = 0; kk < WK; ++kk) {
          if (kk >= kn) break;
          const __m256 dv = _mm256_loadu_ps(drow + kk * plane + 8 * v);
#pragma GCC unroll 3
          for (int j = 0; j < 3; ++j) a[kk][j] = _mm256_fmadd_ps(dv, x[j], a[kk][j]);
        }
      }
    }
  for (int kk = 0; kk < kn; ++kk)
    for (int j = 0; j < sn; ++j) {
      float* d = ap + kk * ks + j * 8;
      _mm256_storeu_ps(d, first ? a[kk][j] : _mm256_add_ps(_mm256_loadu_ps(d), a[kk][j]));
    }
}

template <int WK, int KN>
inline void weight_block_q(const float* xr, const float* dr, int64_t ni, int64_t xi, int64_t di,
                           int64_t P, int64_t Wp, int64_t Qv, __m256 tail, float* ap, int64_t ks,
                           bool first) {
  switch (Qv / 8) {
    case 1: weight_block<WK, KN, 3, 1>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first); break;
    case 2: weight_block<WK, KN, 3, 2>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first); break;
    case 3: weight_block<WK, KN, 3, 3>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first); break;
    case 4: weight_block<WK, KN, 3, 4>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first); break;
    default: weight_block<WK, KN, 3, 0>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first); break;
  }
}

// Every register block of one pass (ni images) of the weight gradient, WK output channels
// at a time (remainders of 1 to WK - 1 channels and taps past the last 3 included).
template <int WK>
void weight_blocks(const GdGeom& g, int64_t ni, int64_t xi, int64_t di, int64_t Qv, __m256 tail,
                   const float* xp, const float* dyp, float* acc, bool first) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Kout = g.Kout;
  const int64_t Hp = P + R - 1, Wp = Qv + S - 1, ks = Cin * R * S * 8;
  for (int64_t k0 = 0; k0 < Kout; k0 += WK) {
    const int kn = Kout - k0 < WK ? static_cast<int>(Kout - k0) : WK;
    for (int64_t c = 0; c < Cin; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s0 = 0; s0 < S; s0 += 3) {
          const int sn3 = S - s0 < 3 ? static_cast<int>(S - s0) : 3;
          const float* xr = xp + (c * Hp + r) * Wp + s0;
          const float* dr = dyp + k0 * P * Qv;
          float* ap = acc + ((k0 * Cin + c) * R + r) * S * 8 + s0 * 8;
          if (sn3 == 3 && kn == WK)
            weight_block_q<WK, WK>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first);
          else if (sn3 == 3 && kn == 3)
            weight_block_q<WK, 3>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first);
          else if (sn3 == 3 && kn == 2)
            weight_block_q<WK, 2>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first);
          else if (sn3 == 3)
            weight_block_q<WK, 1>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first);
          else
            weight_block<WK, 0, 0, 0>(xr, dr, ni, xi, di, P, Wp, Qv, tail, ap, ks, first, kn,
                                      sn3);
        }
  }
}

// Weight gradient of one group, summed over the images [0, N): images are taken nb at a
// time, each source padded into xp (as above, image i at xp + i*Cin*Hp*Wp) and its
// grad_output rows into dyp (Qv columns, zero past Q; image i at dyp + i*Kout*P*Qv);
// acc holds 8 lanes per weight (Kout*Cin*R*S*8 floats: every block of the first pass
// writes its lanes, later passes add to them), reduced in lane order into
// dw (Kout, Cin, R, S) contiguous at the end. A register block is 3 or 4 output channels
// x 3 taps along the row (one row at a time: a row's vectors unrolled, its loads folded
// into the FMAs); source lanes past the row's last output are masked to zero so that an
// inf or NaN there never meets a zero of grad_output.
void grouped_direct_weight_float(const GdGeom& g, int64_t N, int64_t nb, const float* src,
                                 int64_t sn, const float* dy, int64_t dn, int64_t d1,
                                 int64_t d2, int64_t d3, float* dw, float* xp, float* dyp,
                                 float* acc) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q, Kout = g.Kout;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1, RS = R * S;
  const int64_t nacc = Kout * Cin * RS * 8, xi = Cin * Hp * Wp, di = Kout * P * Qv;
  // 4-channel blocks load each source row fewer times, but with 12 accumulators gcc
  // spills one: worth it only on rows of 3+ vectors (measured: 4 channels 1.10-1.25x
  // faster at widths 28 and 56, 3 channels 1.19x at width 14).
  const int wk = Kout % 4 == 0 && Qv > 16 ? 4 : 3;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 tail = _mm256_castsi256_ps(
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(Q - (Qv - 8))), lane));
  if (N == 0)
    for (int64_t i = 0; i < nacc; ++i) acc[i] = 0.0f;
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t ni = N - n0 < nb ? N - n0 : nb;
    for (int64_t i = 0; i < ni; ++i) {
      pad_source(g, src + (n0 + i) * sn, xp + i * xi);
      for (int64_t k = 0; k < Kout; ++k)
        for (int64_t p = 0; p < P; ++p) {
          float* d = dyp + i * di + (k * P + p) * Qv;
          const float* sr = dy + (n0 + i) * dn + k * d1 + p * d2;
          if (d3 == 1)
            copy_row_zero_tail(sr, d, Q, Qv);
          else
            for (int64_t q = 0; q < Qv; ++q) d[q] = q < Q ? sr[q * d3] : 0.0f;
        }
    }
    if (wk == 4)
      weight_blocks<4>(g, ni, xi, di, Qv, tail, xp, dyp, acc, n0 == 0);
    else
      weight_blocks<3>(g, ni, xi, di, Qv, tail, xp, dyp, acc, n0 == 0);
  }
  // dw[i] = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) of its 8 lanes, eight
  // weights at a time by hadd (the same sums in the same order as the scalar tail).
  const int64_t nw = Kout * Cin * RS;
  int64_t i = 0;
  for (; i + 8 <= nw; i += 8) {
    const float* ap = acc + i * 8;
    __m256 v[8];
    for (int j = 0; j < 8; ++j) v[j] = _mm256_loadu_ps(ap + 8 * j);
    const __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
    // per 128-bit half: weights (0 1 2 3) and (4 5 6 7), low half lanes 0-3, high 4-7
    const __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
    const __m256 lo = _mm256_permute2f128_ps(q0, q1, 0x20);
    const __m256 hi = _mm256_permute2f128_ps(q0, q1, 0x31);
    _mm256_storeu_ps(dw + i, _mm256_add_ps(lo, hi));
  }
  for (; i < nw; ++i) {
    const float* ap = acc + i * 8;
    dw[i] = ((ap[0] + ap[1]) + (ap[2] + ap[3])) + ((ap[4] + ap[5]) + (ap[6] + ap[7]));
  }
}

}  // namespace pyconv::avx2
