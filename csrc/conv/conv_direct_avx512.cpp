// The direct convolution's AVX-512 tiles (conv_direct.h): NP output pixels of one row times
// NV vectors of 16 output channels, NP * NV accumulators. Per reduction step NV filter
// vectors and NP broadcasts of source values feed NP * NV FMAs: 16 loads to 28 FMAs for the
// 14 x 2 tile, so the FMA ports, not the loads, bound it (the 8 x 48 GEMM tile's 11 loads a
// 24 FMAs, but without the im2col panels it reads them from).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "conv/conv_direct.h"

namespace pyconv::avx512 {
namespace {

#include "common/store_lanes.h"

template <int NP, int NV, int STW>
void tile(const DirectRows& d, const float* x, float* y, float* part) {
  __m512 acc[NV][16];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      acc[v][i] = d.first || i >= NP ? _mm512_setzero_ps()
                                     : _mm512_loadu_ps(part + (i * NV + v) * 16);
  const float* w = d.wp + d.k0 * 16 * NV;
  const int64_t* ko = d.koff;
#pragma GCC unroll 2
  for (int64_t k = d.k0; k < d.k1; ++k, w += 16 * NV) {
    const float* xk = x + ko[k];
    __m512 wv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(w + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      const __m512 b = _mm512_set1_ps(xk[i * STW]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[v][i] = _mm512_fmadd_ps(b, wv[v], acc[v][i]);
    }
  }
  if (!d.last) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i) _mm512_storeu_ps(part + (i * NV + v) * 16, acc[v][i]);
    return;
  }
  const __mmask16 m = first_lanes(NP);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    if (d.bias) {  // conv, then + bias, then relu: the GEMM's register epilogue, bit for bit
      const __m512 b = _mm512_loadu_ps(d.bias + 16 * v);
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i) acc[v][i] = _mm512_add_ps(acc[v][i], b);
    }
    if (d.relu)
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i)
        acc[v][i] = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask(acc[v][i], _mm512_setzero_ps(), _CMP_LT_OQ), acc[v][i],
            _mm512_setzero_ps());
    transpose16x16_f32(acc[v]);
    const int nj = d.nk - 16 * v < 16 ? d.nk - 16 * v : 16;
    float* yv = y + 16 * v * d.ldy;
    for (int j = 0; j < nj; ++j) _mm512_mask_storeu_ps(yv + j * d.ldy, m, acc[v][j]);
  }
}

template <int NV, int STW, int... NP>
void tile_n(std::integer_sequence<int, NP...>, int np, const DirectRows& d, const float* x,
            float* y, float* part) {
  ((np == NP + 1 ? tile<NP + 1, NV, STW>(d, x, y, part) : void()), ...);
}

template <int NV, int STW>
void rows(const DirectRows& d) {
  constexpr int kMaxNP = direct_max_pixels(NV);
  const int64_t nt = (d.Q + kMaxNP - 1) / kMaxNP;
  for (int64_t oh = d.oh0; oh < d.oh1; ++oh)
    for (int64_t i = 0, q0 = 0; i < nt; ++i) {
      const int np = static_cast<int>(d.Q / nt + (i < d.Q % nt ? 1 : 0));
      tile_n<NV, STW>(std::make_integer_sequence<int, kMaxNP>{}, np, d,
                      d.x + oh * d.sth * d.ldx + q0 * STW, d.y + oh * d.Q + q0,
                      d.part ? d.part + ((oh - d.oh0) * d.Q + q0) * 16 * NV : nullptr);
      q0 += np;
    }
}

// NPP pairs of output columns of one row (pixel 2m + e: column w0 + 2m + e, column parity
// e) times NV vectors of channels: per reduction step 2 * NV filter vectors and NPP
// broadcasts feed 2 * NPP * NV FMAs (6 pairs x 2 vectors: 11 loads to 24 FMAs).
template <int NPP, int NV>
void tile2(const DirectPairs& d, const float* x, const float* wrow, float* y, __mmask16 m,
           bool shift, float* part) {
  __m512 acc[NV][16];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      acc[v][i] = d.first || i >= 2 * NPP ? _mm512_setzero_ps()
                                          : _mm512_loadu_ps(part + (i * NV + v) * 16);
  const float* w = wrow + d.k0 * 32 * NV;
  const int64_t* ko = d.koff;
#pragma GCC unroll 2
  for (int64_t k = d.k0; k < d.k1; ++k, w += 32 * NV) {
    const float* xk = x + ko[k];
    __m512 we[NV], wo[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      we[v] = _mm512_loadu_ps(w + 16 * v), wo[v] = _mm512_loadu_ps(w + 16 * (NV + v));
#pragma GCC unroll 8
    for (int i = 0; i < NPP; ++i) {
      const __m512 b = _mm512_set1_ps(xk[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        acc[v][2 * i] = _mm512_fmadd_ps(b, we[v], acc[v][2 * i]);
        acc[v][2 * i + 1] = _mm512_fmadd_ps(b, wo[v], acc[v][2 * i + 1]);
      }
    }
  }
  if (!d.last) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
#pragma GCC unroll 16
      for (int i = 0; i < 2 * NPP; ++i) _mm512_storeu_ps(part + (i * NV + v) * 16, acc[v][i]);
    return;
  }
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    transpose16x16_f32(acc[v]);
    const int nj = d.nk - 16 * v < 16 ? d.nk - 16 * v : 16;
    float* yv = y + 16 * v * d.ldy;
    for (int j = 0; j < nj; ++j) {
      __m512 r = acc[v][j];
      if (shift)  // (pixel 0 is column -1: lanes down by one, to store from column 0)
        r = _mm512_castsi512_ps(
            _mm512_alignr_epi32(_mm512_setzero_si512(), _mm512_castps_si512(r), 1));
      _mm512_mask_storeu_ps(yv + j * d.ldy, m, r);
    }
  }
}

template <int NV, int... NPP>
void tile2_n(std::integer_sequence<int, NPP...>, int npp, const DirectPairs& d, const float* x,
             const float* wrow, float* y, __mmask16 m, bool shift, float* part) {
  ((npp == NPP + 1 ? tile2<NPP + 1, NV>(d, x, wrow, y, m, shift, part) : void()), ...);
}

template <int NV>
void pair_rows(const DirectPairs& d) {
  constexpr int kMaxNPP = direct_max_pairs(NV);
  const int64_t w0 = -(d.pl % 2), pairs = (d.W - w0 + 1) / 2;
  const int64_t nt = (pairs + kMaxNPP - 1) / kMaxNPP;
  // Rows of one parity, then the other: each parity's filter rows stay in L1 across them.
  for (int64_t par = 0; par < 2; ++par)
    for (int64_t h = d.oh0; h < d.oh1; ++h) {
      if ((h + d.pt) % 2 != par) continue;
      const float* xr = d.x + (h + d.pt) / 2 * d.ldx + (w0 + d.pl) / 2;
      const float* wrow = d.wp + par * d.kd * 32 * NV;
      for (int64_t i = 0, p0 = 0; i < nt; ++i) {
        const int npp = static_cast<int>(pairs / nt + (i < pairs % nt ? 1 : 0));
        const int64_t c0 = w0 + 2 * p0;  // first column of the tile (-1: stored from 0)
        const bool shift = c0 < 0;
        const __mmask16 m = first_lanes(std::min<int64_t>(2 * npp - shift, d.W - c0 - shift));
        tile2_n<NV>(std::make_integer_sequence<int, kMaxNPP>{}, npp, d, xr + p0, wrow,
                    d.y + h * d.W + c0 + shift, m, shift,
                    d.part ? d.part + ((h - d.oh0) * 2 * pairs + 2 * p0) * 16 * NV : nullptr);
        p0 += npp;
      }
    }
}

}  // namespace

void direct_rows_float(const DirectRows& d) {
  switch (d.nv * 2 + (d.stw == 1 ? 0 : 1)) {
    case 2: return rows<1, 1>(d);
    case 3: return rows<1, 2>(d);
    case 4: return rows<2, 1>(d);
    case 5: return rows<2, 2>(d);
    case 6: return rows<3, 1>(d);
    case 7: return rows<3, 2>(d);
    case 8: return rows<4, 1>(d);
    default: return rows<4, 2>(d);
  }
}

}  // namespace pyconv::avx512

namespace pyconv::avx512 {
void direct_pairs_float(const DirectPairs& d) {
  d.nv == 1 ? pair_rows<1>(d) : d.nv == 2 ? pair_rows<2>(d) : pair_rows<3>(d);
}
}  // namespace pyconv::avx512

namespace pyconv::avx512 {
void copy_rows_float(const float* s, int64_t lds, int64_t rows, int64_t W, float* d,
                     int64_t ldd) {
  const __mmask16 tail = static_cast<__mmask16>((1u << (W % 16)) - 1);
  for (int64_t h = 0; h < rows; ++h, s += lds, d += ldd) {
    int64_t q = 0;
    for (; q + 16 <= W; q += 16) _mm512_storeu_ps(d + q, _mm512_loadu_ps(s + q));
    if (tail) _mm512_mask_storeu_ps(d + q, tail, _mm512_maskz_loadu_ps(tail, s + q));
  }
}
}  // namespace pyconv::avx512
