// AVX2 packing copies for conv_gemm.cpp: the weight-gradient GEMM's B panels (eight source
// rows become eight interleaved columns; 16 values at a time with AVX-512, pack_avx512.cpp)
// and 6-row filter panels, 8x8 transposes at a time; contiguous B panel rows.
#include <immintrin.h>

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

void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd) {
  if (len >= 16 && active_isa() >= Isa::avx512)
    return avx512::transpose8_rows_float(rows, off, len, dst, ldd);
  int64_t l = 0;
  for (; l + 8 <= len; l += 8) {
    __m256 r[8], c[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(rows[q] + off + l);
    transpose8x8_f32(r, c);
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (l + q) * ldd, c[q]);
  }
  for (; l < len; ++l)
    for (int q = 0; q < 8; ++q) dst[l * ldd + q] = rows[q][off + l];
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

}  // namespace pyconv::avx2
