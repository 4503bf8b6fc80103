// Direct stride-1 convolution of one group of one image, AVX-512, float: the forward
// kernel of conv_grouped_avx2.cpp (which also runs the backward-data) with 16-column
// vectors. A register block is kb (4 or 6) output channels x 16 columns x two output rows
// (8 or 12 accumulators: one row's 4-6 would wait on the FMA latency); each source row
// vector serves the kb channels. The same products in the same order per output as the
// AVX2 kernel (channel, row, column of the filter), then + bias: bitwise its results.
#include <immintrin.h>

#include <cstdint>

#include "conv/conv_grouped.h"

namespace pyconv::avx512 {

namespace {

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
            const float* xp) {
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
          _mm512_mask_storeu_ps(y + (k * P + p + v) * Q + q0, m, o);
        }
    }
  }
}

}  // namespace

void grouped_direct_float(const GdGeom& g, const float* src, const float* wt, const float* bias,
                          float* y, float* xp) {
  avx2::grouped_pad_float(g, src, xp);
  const int64_t CRS = g.Cin * g.R * g.S;
  grouped_direct_blocks(g.Kout, [&](auto kb, int64_t k0, int kn) {
    direct<decltype(kb)::value>(g, wt + k0 * CRS, k0, kn, bias, y, xp);
  });
}

}  // namespace pyconv::avx512
