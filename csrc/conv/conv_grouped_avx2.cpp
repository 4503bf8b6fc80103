// Direct stride-1 convolution of one group of one image, AVX2 + FMA, float: for
// grouped convolutions with few channels per group, where an im2col-style GEMM
// packs 9x the input to do 2*Kg flops per packed element. Here every input element
// is loaded from L1 once per tap and used for 6 output channels at a time.
// Kept free of std:: and shared inline functions (see depthwise_plane.h); the
// caller (conv_grouped.cpp) supplies the scratch buffers.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv_grouped.h"

namespace pyconv::avx2 {

namespace {

constexpr int kKB = 6;  // output channels per register block (12 accumulators)

// acc[kk][v] over vectors v < NV of 8 output columns at xrow (row r of channel c at
// xrow + (c*Hp + r)*Wp), weights wv[((c*R + r)*S + s)*kKB + kk].
template <int NV>
inline void block(const float* xrow, int64_t Hp, int64_t Wp, int64_t Cin, int64_t R, int64_t S,
                  const float* wv, __m256 (&out)[kKB][2]) {
  // Local accumulators (through the reference the compiler stored them every step).
  __m256 acc[kKB][NV];
  for (int kk = 0; kk < kKB; ++kk)
    for (int v = 0; v < NV; ++v) acc[kk][v] = _mm256_setzero_ps();
  for (int64_t c = 0; c < Cin; ++c)
    for (int64_t r = 0; r < R; ++r) {
      const float* row = xrow + (c * Hp + r) * Wp;
      for (int64_t s = 0; s < S; ++s, wv += kKB) {
        __m256 x[NV];
        for (int v = 0; v < NV; ++v) x[v] = _mm256_loadu_ps(row + s + 8 * v);
        for (int kk = 0; kk < kKB; ++kk) {
          const __m256 b = _mm256_broadcast_ss(wv + kk);
          for (int v = 0; v < NV; ++v) acc[kk][v] = _mm256_fmadd_ps(b, x[v], acc[kk][v]);
        }
      }
    }
  for (int kk = 0; kk < kKB; ++kk)
    for (int v = 0; v < NV; ++v) out[kk][v] = acc[kk][v];
}

// Zero-padded source of one group: xp[c][i][j] = src[c][i - pt][j - pl] for rows
// i < P + R - 1 and columns j < Qv + S - 1.
inline void pad_source(const GdGeom& g, const float* src, float* xp) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1;
  // Columns [jlo, jhi) are inside the row.
  int64_t jlo = g.pl > 0 ? g.pl : 0, jhi = g.W + g.pl < Wp ? g.W + g.pl : Wp;
  if (jhi < jlo) jhi = jlo;
  for (int64_t c = 0; c < Cin; ++c)
    for (int64_t i = 0; i < Hp; ++i) {
      float* d = xp + (c * Hp + i) * Wp;
      const int64_t ih = i - g.pt;
      if (ih < 0 || ih >= g.H) {
        for (int64_t j = 0; j < Wp; ++j) d[j] = 0.0f;
        continue;
      }
      const float* sr = src + c * g.s1 + ih * g.s2 - g.pl * g.s3;
      for (int64_t j = 0; j < jlo; ++j) d[j] = 0.0f;
      if (g.s3 == 1)
        for (int64_t j = jlo; j < jhi; ++j) d[j] = sr[j];
      else
        for (int64_t j = jlo; j < jhi; ++j) d[j] = sr[j * g.s3];
      for (int64_t j = jhi; j < Wp; ++j) d[j] = 0.0f;
    }
}

}  // namespace

void grouped_direct_weights_float(const GdGeom& g, const float* w, float* wt) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, Kout = g.Kout;
  const int64_t nkb = (Kout + kKB - 1) / kKB, CRS = Cin * R * S;
  for (int64_t kb = 0; kb < nkb; ++kb)
    for (int64_t c = 0; c < Cin; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s)
          for (int kk = 0; kk < kKB; ++kk) {
            const int64_t k = kb * kKB + kk;
            wt[(kb * CRS + (c * R + r) * S + s) * kKB + kk] =
                k < Kout ? w[k * g.wk + c * g.wc + r * g.wr + s * g.ws] : 0.0f;
          }
}

void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q, Kout = g.Kout;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1;
  pad_source(g, src, xp);
  const int64_t nkb = (Kout + kKB - 1) / kKB, CRS = Cin * R * S;
  alignas(32) float tmp[2][8];
  for (int64_t kb = 0; kb < nkb; ++kb) {
    const float* wv = wt + kb * CRS * kKB;
    const int kn = Kout - kb * kKB < kKB ? static_cast<int>(Kout - kb * kKB) : kKB;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q0 = 0; q0 < Qv;) {
        __m256 acc[kKB][2];
        const int nv = q0 + 16 <= Qv ? 2 : 1;
        if (nv == 2)
          block<2>(xp + p * Wp + q0, Hp, Wp, Cin, R, S, wv, acc);
        else
          block<1>(xp + p * Wp + q0, Hp, Wp, Cin, R, S, wv, acc);
        const int64_t nq = Q - q0 < 8 * nv ? Q - q0 : 8 * nv;
        for (int kk = 0; kk < kn; ++kk) {
          const int64_t k = kb * kKB + kk;
          const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
          float* yr = y + (k * P + p) * Q + q0;
          for (int v = 0; v < nv; ++v) {
            // conv, then + bias (the order of the GEMM path's epilogue)
            const __m256 o = bias ? _mm256_add_ps(acc[kk][v], b) : acc[kk][v];
            if (8 * v + 8 <= nq)
              _mm256_storeu_ps(yr + 8 * v, o);
            else
              _mm256_store_ps(tmp[v], o);
          }
          for (int64_t q = (nq / 8) * 8; q < nq; ++q) yr[q] = tmp[q / 8][q % 8];
        }
        q0 += 8 * nv;
      }
  }
}

// Weight gradient of one group, summed over the images [0, N): images are taken nb at a
// time, each source padded into xp (as above, image i at xp + i*Cin*Hp*Wp) and its
// grad_output rows into dyp (Qv columns, zero past Q; image i at dyp + i*Kout*P*Qv);
// acc holds 8 lanes per weight (Kout*Cin*R*S*8 floats), reduced in lane order into
// dw (Kout, Cin, R, S) contiguous at the end. A register block is 4 output channels x
// 3 taps along the row; source lanes past the row's last output are masked to zero so
// that an inf or NaN there never meets a zero of grad_output.
void grouped_direct_weight_float(const GdGeom& g, int64_t N, int64_t nb, const float* src,
                                 int64_t sn, const float* dy, int64_t dn, int64_t d1,
                                 int64_t d2, int64_t d3, float* dw, float* xp, float* dyp,
                                 float* acc) {
  const int64_t Cin = g.Cin, R = g.R, S = g.S, P = g.P, Q = g.Q, Kout = g.Kout;
  const int64_t Qv = (Q + 7) / 8 * 8, Hp = P + R - 1, Wp = Qv + S - 1, RS = R * S;
  const int64_t nacc = Kout * Cin * RS * 8, xi = Cin * Hp * Wp, di = Kout * P * Qv;
  for (int64_t i = 0; i < nacc; ++i) acc[i] = 0.0f;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 tail = _mm256_castsi256_ps(
      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(Q - (Qv - 8))), lane));
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t ni = N - n0 < nb ? N - n0 : nb;
    for (int64_t i = 0; i < ni; ++i) {
      pad_source(g, src + (n0 + i) * sn, xp + i * xi);
      for (int64_t k = 0; k < Kout; ++k)
        for (int64_t p = 0; p < P; ++p) {
          float* d = dyp + i * di + (k * P + p) * Qv;
          const float* sr = dy + (n0 + i) * dn + k * d1 + p * d2;
          for (int64_t q = 0; q < Qv; ++q) d[q] = q < Q ? sr[q * d3] : 0.0f;
        }
    }
    for (int64_t k0 = 0; k0 < Kout; k0 += 4) {
      const int kn = Kout - k0 < 4 ? static_cast<int>(Kout - k0) : 4;
      for (int64_t c = 0; c < Cin; ++c)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t s0 = 0; s0 < S; s0 += 3) {
            const int sn3 = S - s0 < 3 ? static_cast<int>(S - s0) : 3;
            __m256 a[4][3];
            for (int kk = 0; kk < 4; ++kk)
              for (int j = 0; j < 3; ++j) a[kk][j] = _mm256_setzero_ps();
            for (int64_t i = 0; i < ni; ++i)
              for (int64_t p = 0; p < P; ++p) {
                const float* xr = xp + i * xi + (c * Hp + p + r) * Wp + s0;
                const float* dr = dyp + i * di + (k0 * P + p) * Qv;
                for (int64_t q = 0; q < Qv; q += 8) {
                  __m256 x[3];
                  for (int j = 0; j < 3; ++j)
                    x[j] = j < sn3 ? _mm256_loadu_ps(xr + q + j) : _mm256_setzero_ps();
                  if (q + 8 == Qv)
                    for (int j = 0; j < 3; ++j) x[j] = _mm256_and_ps(x[j], tail);
                  for (int kk = 0; kk < 4; ++kk) {
                    if (kk >= kn) break;
                    const __m256 dv = _mm256_loadu_ps(dr + kk * P * Qv + q);
                    for (int j = 0; j < 3; ++j) a[kk][j] = _mm256_fmadd_ps(dv, x[j], a[kk][j]);
                  }
                }
              }
            for (int kk = 0; kk < kn; ++kk)
              for (int j = 0; j < sn3; ++j) {
                float* ap = acc + ((((k0 + kk) * Cin + c) * R + r) * S + s0 + j) * 8;
                _mm256_storeu_ps(ap, _mm256_add_ps(_mm256_loadu_ps(ap), a[kk][j]));
              }
          }
    }
  }
  for (int64_t i = 0; i < Kout * Cin * RS; ++i) {
    const float* ap = acc + i * 8;
    dw[i] = ((ap[0] + ap[1]) + (ap[2] + ap[3])) + ((ap[4] + ap[5]) + (ap[6] + ap[7]));
  }
}

}  // namespace pyconv::avx2
