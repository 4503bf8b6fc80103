// AVX2 packing copies for conv_gemm.cpp: the weight-gradient GEMM's B panels (eight source
// rows become eight interleaved columns; 16 values at a time with AVX-512, pack_avx512.cpp)
// and 6-row filter panels, 8x8 transposes at a time; contiguous B panel rows, B panels
// made of several runs of source columns by masked loads, and the stride-2 rows of a
// zero-padded source split by column phase.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "common/cpu.h"

namespace pyconv::avx512 {
void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd);  // (pack_avx512.cpp)
}  // namespace pyconv::avx512

namespace pyconv::avx2 {

namespace {
#include "common/store_lanes.h"
}  // namespace

// dst[l*ldd + q] (+)= rows[q][off + l] for q < 8, l < len: 8x8 transposes (on AVX-512, 16
// values at a time up to the last multiple of 16); the last 1-7 values by masked loads (no
// value past a row's end is read) and one more transpose (a value at a time, the 7 values of
// a 7x7 plane's rows took 11% of GoogLeNet 5a's 5x5 weight gradient at batch 128). ADD: one
// add per value (the scalar loop's rounding).
template <bool ADD>
static void transpose8_rows(const float* const* rows, int64_t off, int64_t len, float* dst,
                            int64_t ldd) {
  const auto put = [&](int64_t l, __m256 c) {
    float* d = dst + l * ldd;
    _mm256_storeu_ps(d, ADD ? _mm256_add_ps(_mm256_loadu_ps(d), c) : c);
  };
  int64_t l = 0;
  if (!ADD && len >= 16 && active_isa() >= Isa::avx512) {
    l = len / 16 * 16;
    avx512::transpose8_rows_float(rows, off, l, dst, ldd);
  }
  for (; l + 8 <= len; l += 8) {
    __m256 r[8], c[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(rows[q] + off + l);
    transpose8x8_f32(r, c);
    for (int q = 0; q < 8; ++q) put(l + q, c[q]);
  }
  if (l < len) {
    const __m256i m = first_lanes8(len - l);
    __m256 r[8], c[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_maskload_ps(rows[q] + off + l, m);
    transpose8x8_f32(r, c);
    for (int64_t q = 0; q < len - l; ++q) put(l + q, c[q]);
  }
}

void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd) {
  transpose8_rows<false>(rows, off, len, dst, ldd);
}

void transpose8_rows_add_float(const float* const* rows, int64_t len, float* dst, int64_t ldd) {
  transpose8_rows<true>(rows, 0, len, dst, ldd);
}

// d[kk*6 + i] = rows[i][kk] for kk < kc, i < 6: a 6-row panel of A from six unit-stride
// rows (conv_gemm.cpp's prepack_a), eight reduction indices at a time through the 8x8
// transpose (two zero rows), the columns stored in order so that each 8-wide store's last two
// values are overwritten by the next; the last one of the panel stores its six alone.
void pack6_rows_float(const float* const* rows, int64_t kc, float* d) {
  int64_t l = 0;
  for (; l + 8 <= kc; l += 8) {
    __m256 r[8], c[8];  // column l + q in c[q]: rows 0..5 in lanes 0..5
    for (int q = 0; q < 6; ++q) r[q] = _mm256_loadu_ps(rows[q] + l);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8x8_f32(r, c);
    for (int q = 0; q < 7; ++q) _mm256_storeu_ps(d + (l + q) * 6, c[q]);
    float* e = d + (l + 7) * 6;
    if (l + 8 < kc) {
      _mm256_storeu_ps(e, c[7]);
    } else {  // (the panel's end: no room for lanes 6, 7)
      _mm_storeu_ps(e, _mm256_castps256_ps128(c[7]));
      _mm_storel_pi(reinterpret_cast<__m64*>(e + 4), _mm256_extractf128_ps(c[7], 1));
    }
  }
  for (; l < kc; ++l)
    for (int q = 0; q < 6; ++q) d[l * 6 + q] = rows[q][l];
}

// d[kk*16 + j] = base[koff[kk] + j] for kk < kc, j < 16: one contiguous B panel row per
// reduction index, two 32-byte moves (conv_gemm.cpp's GridB; its baseline build made four
// 16-byte ones).
void copy_panel16_float(const float* base, const int64_t* koff, int64_t kc, float* d) {
  for (int64_t kk = 0; kk < kc; ++kk, d += 16) {
    const float* s = base + koff[kk];
    __builtin_prefetch(s + 48);  // for the panels after next
    _mm256_storeu_ps(d, _mm256_loadu_ps(s));
    _mm256_storeu_ps(d + 8, _mm256_loadu_ps(s + 8));
  }
}

// d[kk*16 + jp[i] + q] = base[i][koff[kk] + q] for q < len[i]: a 16-column panel made of
// nseg runs of source columns (an output grid narrower than the panel, or a panel that
// crosses the end of a grid row), columns past the last run zero. Per 8-column half, one
// masked load per run it meets (no lane past a run's ends is read), OR-ed together (the
// masked lanes load +0.0, all bits clear). Run by run through copy_run, 16 columns of a
// 14-wide grid were 35% of a 32 <- 128 5x5 stride-2 backward-data.
void pack_runs16_float(const float* const* base, const int64_t* jp, const int64_t* len,
                       int nseg, const int64_t* koff, int64_t kc, float* d) {
  struct Part {
    const float* s;  // lane l of the half reads s[koff[kk] + l]
    __m256i m;
  };
  Part parts[2][16];
  int np[2] = {0, 0};
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < nseg; ++i) {
      const int64_t a = std::max<int64_t>(jp[i], 8 * h);
      const int64_t b = std::min<int64_t>(jp[i] + len[i], 8 * h + 8);
      if (a >= b) continue;  // (else its lanes [a - 8h, b - 8h) of half h)
      const __m256i lo = _mm256_set1_epi32(static_cast<int>(a - 8 * h) - 1);
      const __m256i hi = _mm256_set1_epi32(static_cast<int>(b - 8 * h));
      const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(lane, lo),
                                          _mm256_cmpgt_epi32(hi, lane));
      parts[h][np[h]++] = {base[i] + (8 * h - jp[i]), in};
    }
  // Halves that are one whole run (rows of 8 or 16 columns: DCGAN's 8x8 outputs at stride 2)
  // by plain loads: masked ones took 10% of its transposed backward-data.
  if (np[0] == 1 && np[1] == 1 && _mm256_movemask_epi8(_mm256_and_si256(parts[0][0].m,
                                                                        parts[1][0].m)) == -1) {
    const float *s0 = parts[0][0].s, *s1 = parts[1][0].s;
    for (int64_t kk = 0; kk < kc; ++kk, d += 16) {
      _mm256_storeu_ps(d, _mm256_loadu_ps(s0 + koff[kk]));
      _mm256_storeu_ps(d + 8, _mm256_loadu_ps(s1 + koff[kk]));
    }
    return;
  }
  for (int64_t kk = 0; kk < kc; ++kk, d += 16) {
    const int64_t o = koff[kk];
    for (int h = 0; h < 2; ++h) {
      __m256 v = _mm256_setzero_ps();
      for (int q = 0; q < np[h]; ++q)
        v = _mm256_or_ps(v, _mm256_maskload_ps(parts[h][q].s + o, parts[h][q].m));
      _mm256_storeu_ps(d + 8 * h, v);
    }
  }
}

// One row of pad_source's zero-padded copy at column stride 2 (conv_gemm.cpp): a
// unit-stride source row of W values placed pl columns in and split by column phase,
// d[ph*Wq + q] = s[2q + ph - pl], zero where that column is outside [0, W); Wq >= 8.
// Eight values a phase at a time from two loads (masked at the row's ends: no lane outside
// it is read) and two in-lane shuffles; the last eight of a phase end at its end,
// overlapping the ones before with the same values (masked stores are microcoded on Zen).
// (Four at a time by SSE and the edges one by one, the per-row work dominated 13-24 wide
// planes: 3x3 stride-2 forwards and weight gradients 1.03-1.40x, old/new alternated. At
// stride 1, memcpy's rows were as fast.)
void pad_row2_float(const float* s, int64_t W, int64_t pl, int64_t Wq, float* d) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lo = _mm256_set1_epi32(-1), hi = _mm256_set1_epi32(static_cast<int>(W));
  // Source columns c .. c + 7, zero outside the row.
  const auto load = [&](int64_t c) {
    if (c >= 0 && c + 8 <= W) return _mm256_loadu_ps(s + c);
    const __m256i col = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(c)));
    return _mm256_maskload_ps(
        s + c, _mm256_and_si256(_mm256_cmpgt_epi32(col, lo), _mm256_cmpgt_epi32(hi, col)));
  };
  for (int64_t q0 = 0; q0 < Wq; q0 += 8) {
    const int64_t q = std::min(q0, Wq - 8), c = 2 * q - pl;  // c: even lane 0's column
    const __m256 a = load(c), b = load(c + 8);
    // [a0 a2 b0 b2 | a4 a6 b4 b6] -> a0 a2 a4 a6 b0 b2 b4 b6 (and the odd lanes alike).
    const __m256 even = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    const __m256 odd = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
    _mm256_storeu_ps(d + q, even);
    _mm256_storeu_ps(d + Wq + q, odd);
  }
}

}  // namespace pyconv::avx2
