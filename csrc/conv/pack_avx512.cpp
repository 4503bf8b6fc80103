// AVX-512 packing copy for conv_gemm.cpp and conv_winograd.cpp: eight source rows become
// eight interleaved columns, 16 values of each row at a time (pack_avx2.cpp's
// transpose8_rows_float with half the loads and shuffles).
#include <immintrin.h>

#include <cstdint>

namespace pyconv::avx512 {

// dst[l*ldd + q] = rows[q][off + l] for q < 8, l < len: per 16 values, the 8x8 transpose of
// each 256-bit half (unpack, shuffle within 128-bit lanes, then 128-bit lanes interleaved
// from two registers), the halves stored to rows l + q and l + 8 + q.
void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd) {
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
  const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  int64_t l = 0;
  for (; l + 16 <= len; l += 16) {
    __m512 r[8], t[8], u[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm512_loadu_ps(rows[q] + off + l);
    for (int q = 0; q < 4; ++q) {
      t[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
      t[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
    }
    for (int h = 0; h < 2; ++h) {
      u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
      u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
      u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
      u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; ++q) {
      const __m512 a = _mm512_permutex2var_ps(u[q], lo, u[q + 4]);  // columns l + q, l + 8 + q
      const __m512 b = _mm512_permutex2var_ps(u[q], hi, u[q + 4]);  // l + 4 + q, l + 12 + q
      _mm256_storeu_ps(dst + (l + q) * ldd, _mm512_castps512_ps256(a));
      _mm256_storeu_ps(dst + (l + 8 + q) * ldd, _mm512_extractf32x8_ps(a, 1));
      _mm256_storeu_ps(dst + (l + 4 + q) * ldd, _mm512_castps512_ps256(b));
      _mm256_storeu_ps(dst + (l + 12 + q) * ldd, _mm512_extractf32x8_ps(b, 1));
    }
  }
  for (; l < len; ++l)
    for (int q = 0; q < 8; ++q) dst[l * ldd + q] = rows[q][off + l];
}

namespace {
#include "common/store_lanes.h"
}  // namespace

// Panel rows kk < kc of NR (a multiple of 16) columns from nseg runs of source columns
// STEP (1 or 2) apart: d[kk*NR + jp[i] + q] = base[i][koff[kk] + STEP*q] for q < len[i]; the
// columns past the last run are zero. Per 16 columns one vector (STEP 2: the even lanes of
// two, one permute); masked loads read nothing past a run's last value.
template <int STEP>
void pack_runs(const float* const* base, const int64_t* jp, const int64_t* len, int nseg,
               const int64_t* koff, int64_t kc, float* d, int NR) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const int64_t pv = jp[nseg - 1] + len[nseg - 1];
  for (int64_t kk = 0; kk < kc; ++kk, d += NR) {
    for (int i = 0; i < nseg; ++i) {
      const float* s = base[i] + koff[kk];
      float* o = d + jp[i];
      int64_t q = 0;
      if constexpr (STEP == 1) {
        for (; q + 16 <= len[i]; q += 16) _mm512_storeu_ps(o + q, _mm512_loadu_ps(s + q));
        if (q < len[i]) {
          const __mmask16 m = first_lanes(len[i] - q);
          _mm512_mask_storeu_ps(o + q, m, _mm512_maskz_loadu_ps(m, s + q));
        }
      } else {
        __builtin_prefetch(s + 4 * NR);  // (two panels on: rows of many taps and channels)
        for (; q + 16 <= len[i]; q += 16) {
          const __m512 a = _mm512_loadu_ps(s + 2 * q);
          const __m512 b = _mm512_maskz_loadu_ps(0x7FFF, s + 2 * q + 16);
          _mm512_storeu_ps(o + q, _mm512_permutex2var_ps(a, even, b));
        }
        if (q < len[i]) {
          const int64_t need = 2 * (len[i] - q) - 1;  // source values up to the last one
          const __m512 a = _mm512_maskz_loadu_ps(first_lanes(need), s + 2 * q);
          const __m512 b = _mm512_maskz_loadu_ps(first_lanes(need - 16), s + 2 * q + 16);
          _mm512_mask_storeu_ps(o + q, first_lanes(len[i] - q),
                                _mm512_permutex2var_ps(a, even, b));
        }
      }
    }
    for (int64_t j = pv; j < NR; ++j) d[j] = 0.0f;
  }
}

void pack_runs_float(const float* const* base, const int64_t* jp, const int64_t* len, int nseg,
                     const int64_t* koff, int64_t kc, float* d, int NR, int step) {
  (step == 2 ? pack_runs<2> : pack_runs<1>)(base, jp, len, nseg, koff, kc, d, NR);
}

}  // namespace pyconv::avx512
