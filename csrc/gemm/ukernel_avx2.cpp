// AVX2 + FMA register tiles: fp32 6x16, fp64 6x8 (compiled with -mavx2 -mfma).
#include <immintrin.h>

#include <cstdint>

namespace pyconv::avx2 {
namespace {

struct VF {
  using T = float;
  using reg = __m256;
  static constexpr int lanes = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, reg r) { _mm256_storeu_ps(p, r); }
  static reg bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg relu(reg r) {
    return _mm256_blendv_ps(r, _mm256_setzero_ps(), _mm256_cmp_ps(r, _mm256_setzero_ps(), _CMP_LT_OQ));
  }
};
struct VD {
  using T = double;
  using reg = __m256d;
  static constexpr int lanes = 4;
  static reg zero() { return _mm256_setzero_pd(); }
  static reg load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, reg r) { _mm256_storeu_pd(p, r); }
  static reg bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg relu(reg r) {
    return _mm256_blendv_pd(r, _mm256_setzero_pd(), _mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ));
  }
};

#include "gemm/ukernel_tmpl.h"

}  // namespace

void f32_gemm_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                  bool acc) {
  ukr_tile<VF, 6, false>(kc, a, 0, b, c, ldc, acc);
}
void f32_gemm_6x16_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                       int64_t ldc, bool acc) {
  ukr_tile<VF, 6, true>(kc, a, lda, b, c, ldc, acc);
}
void f64_gemm_6x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                  bool acc) {
  ukr_tile<VD, 6, false>(kc, a, 0, b, c, ldc, acc);
}
void f64_gemm_6x8_rows(int64_t kc, const double* a, int64_t lda, const double* b, double* c,
                       int64_t ldc, bool acc) {
  ukr_tile<VD, 6, true>(kc, a, lda, b, c, ldc, acc);
}

template <class V>
static void rem(int mv, int64_t kc, const typename V::T* a, const typename V::T* b,
                typename V::T* c, int64_t ldc, bool acc) {
  switch (mv) {
    case 1: return ukr_rem<V, 1, 6>(kc, a, b, c, ldc, acc);
    case 2: return ukr_rem<V, 2, 6>(kc, a, b, c, ldc, acc);
    case 3: return ukr_rem<V, 3, 6>(kc, a, b, c, ldc, acc);
    case 4: return ukr_rem<V, 4, 6>(kc, a, b, c, ldc, acc);
    default: return ukr_rem<V, 5, 6>(kc, a, b, c, ldc, acc);
  }
}
void f32_gemm_rem(int mv, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                  bool acc) {
  rem<VF>(mv, kc, a, b, c, ldc, acc);
}
void f64_gemm_rem(int mv, int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                  bool acc) {
  rem<VD>(mv, kc, a, b, c, ldc, acc);
}

void f32_gemm_epi(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc,
                  const float* bias, bool relu) {
  ukr_tile<VF, 6, false, true>(kc, a, 0, b, c, ldc, acc, bias, relu);
}
void f64_gemm_epi(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                  bool acc, const double* bias, bool relu) {
  ukr_tile<VD, 6, false, true>(kc, a, 0, b, c, ldc, acc, bias, relu);
}

}  // namespace pyconv::avx2
