#pragma once
// Lane helpers (partial stores, an 8x8 transpose) included inside the ISA namespaces of the
// AVX2 and AVX-512 kernel files (each gets its own copy: nothing shared across ISA flags);
// nothing here needs an include.
//
// The first n < 8 lanes of an AVX2 vector to memory, without masked stores (microcoded
// and slow on AMD) and without a copy loop gcc would turn into a memcpy call.
#if defined(__AVX2__)
// The mask of an AVX2 vector's first n lanes (all for n >= 8), for masked loads.
static inline __m256i first_lanes8(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 8 ? n : 8)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline void store_lanes_f32(float* d, __m256 v, int64_t n) {
  __m128 x = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(d, x);
    x = _mm256_extractf128_ps(v, 1);
    d += 4, n -= 4;
  }
  if (n >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(d), x);
    x = _mm_movehl_ps(x, x);
    d += 2, n -= 2;
  }
  if (n >= 1) _mm_store_ss(d, x);
}
#endif

#if defined(__AVX512F__)
// Mask of the first n lanes of 16 (none for n <= 0, all for n >= 16).
static inline __mmask16 first_lanes(int64_t n) {
  return n <= 0 ? 0 : n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1u);
}

// Rows r[0..15] (16 values each) to columns, in place: r[q] lane i = old r[i] lane q.
// Pairs of lanes, then pairs of pairs, then 128-bit quarters twice.
static inline void transpose16x16_f32(__m512 (&r)[16]) {
  __m512 t[16];
  for (int q = 0; q < 8; ++q) {
    t[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
  }
  const auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  const auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int q = 0; q < 4; ++q) {
    r[4 * q] = lo(t[4 * q], t[4 * q + 2]);
    r[4 * q + 1] = hi(t[4 * q], t[4 * q + 2]);
    r[4 * q + 2] = lo(t[4 * q + 1], t[4 * q + 3]);
    r[4 * q + 3] = hi(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int h = 0; h < 2; ++h)
    for (int q = 0; q < 4; ++q) {
      t[8 * h + q] = _mm512_shuffle_f32x4(r[8 * h + q], r[8 * h + q + 4], 0x88);
      t[8 * h + q + 4] = _mm512_shuffle_f32x4(r[8 * h + q], r[8 * h + q + 4], 0xdd);
    }
  for (int q = 0; q < 8; ++q) {
    r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
    r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
  }
}
#endif

#if defined(__AVX2__)
// Rows r[0..7] (8 values each) to columns c[0..7]: c[q] lane i = r[i] lane q.
static inline void transpose8x8_f32(const __m256 (&r)[8], __m256 (&c)[8]) {
  __m256 t[8], u[8];
  for (int q = 0; q < 4; ++q) {
    t[2 * q] = _mm256_unpacklo_ps(r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm256_unpackhi_ps(r[2 * q], r[2 * q + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // u[0..3]: rows 0..3 of columns {0,4}, {1,5}, {2,6}, {3,7}
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int q = 0; q < 4; ++q) {
    c[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
    c[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
  }
}
#endif
