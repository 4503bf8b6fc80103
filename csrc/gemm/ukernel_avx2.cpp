// AVX2 + FMA register tiles: fp32 6x16, fp64 6x8 (compiled with -mavx2 -mfma).
#include <immintrin.h>

#include <cstdint>

#include "gemm/gemm.h"

namespace pyconv::avx2 {
namespace {

struct VF {
  using T = float;
  using reg = __m256;
  static constexpr int lanes = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, reg r) { _mm256_storeu_ps(p, r); }
  static constexpr uintptr_t kStreamAlign = 32;
  static void stream(T* p, reg r) { _mm256_stream_ps(p, r); }
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
  static constexpr uintptr_t kStreamAlign = 32;
  static void stream(T* p, reg r) { _mm256_stream_pd(p, r); }
  static reg bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg relu(reg r) {
    return _mm256_blendv_pd(r, _mm256_setzero_pd(), _mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ));
  }
};

#include "gemm/ukernel_tmpl.h"

}  // namespace

PYCONV_UKERNEL_EXPORTS(VF, VD, f32_gemm_6x16, f64_gemm_6x8, 6, 6)

// The 8 x 8 fp32 tile, A through row pointers (ukr_ind, one vector of columns):
// conv_gemm.cpp's weight gradient with 8 output channels (a group).
void f32_gemm_ind8x8(int64_t kc, const float* const* a, const int64_t* aoff, const float* b,
                     float* c, int64_t ldc, bool acc) {
  ukr_ind<VF, 8, 1>(kc, a, aoff, b, c, ldc, acc);
}

}  // namespace pyconv::avx2
