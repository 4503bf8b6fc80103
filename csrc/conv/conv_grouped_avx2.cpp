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
  // Zero-padded source: xp[c][i][j] = src[c][i - pt][j - pl]; columns [jlo, jhi) inside.
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

}  // namespace pyconv::avx2
