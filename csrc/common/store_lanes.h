#pragma once
// Lane helpers included inside the ISA namespaces of the AVX2 and AVX-512 kernel files
// (each gets its own copy: nothing shared across ISA flags); nothing here needs an include.
//
// The first n < 8 lanes of an AVX2 vector to memory, without masked stores (microcoded
// and slow on AMD) and without a copy loop gcc would turn into a memcpy call.
#if defined(__AVX2__)
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
#endif
