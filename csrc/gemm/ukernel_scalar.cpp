// Portable register tiles (baseline x86-64 or any CPU): fp32 6x16, fp64 6x8,
// the same template over a plain array "vector" the compiler may vectorise.
#include <cstdint>

namespace pyconv::scalar {
namespace {

template <typename T_, int L>
struct VArr {
  using T = T_;
  static constexpr int lanes = L;
  struct reg {
    T v[L];
  };
  static reg zero() {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = T(0);
    return r;
  }
  static reg load(const T* p) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = p[l];
    return r;
  }
  static void store(T* p, const reg& r) {
    for (int l = 0; l < L; ++l) p[l] = r.v[l];
  }
  static reg bcast(const T* p) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = *p;
    return r;
  }
  static reg add(const reg& a, const reg& b) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = a.v[l] + b.v[l];
    return r;
  }
  static reg relu(const reg& a) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = a.v[l] < T(0) ? T(0) : a.v[l];
    return r;
  }
  static reg fma(const reg& a, const reg& b, const reg& c) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
    return r;
  }
};

#include "gemm/ukernel_tmpl.h"

}  // namespace

void f32_gemm_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                  bool acc) {
  ukr_tile<VArr<float, 8>, 6, false>(kc, a, 0, b, c, ldc, acc);
}
void f32_gemm_6x16_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                       int64_t ldc, bool acc) {
  ukr_tile<VArr<float, 8>, 6, true>(kc, a, lda, b, c, ldc, acc);
}
void f64_gemm_6x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                  bool acc) {
  ukr_tile<VArr<double, 4>, 6, false>(kc, a, 0, b, c, ldc, acc);
}
void f64_gemm_6x8_rows(int64_t kc, const double* a, int64_t lda, const double* b, double* c,
                       int64_t ldc, bool acc) {
  ukr_tile<VArr<double, 4>, 6, true>(kc, a, lda, b, c, ldc, acc);
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
  rem<VArr<float, 8>>(mv, kc, a, b, c, ldc, acc);
}
void f64_gemm_rem(int mv, int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                  bool acc) {
  rem<VArr<double, 4>>(mv, kc, a, b, c, ldc, acc);
}

void f32_gemm_epi(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc,
                  const float* bias, bool relu) {
  ukr_tile<VArr<float, 8>, 6, false, true>(kc, a, 0, b, c, ldc, acc, bias, relu);
}
void f64_gemm_epi(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                  bool acc, const double* bias, bool relu) {
  ukr_tile<VArr<double, 4>, 6, false, true>(kc, a, 0, b, c, ldc, acc, bias, relu);
}

}  // namespace pyconv::scalar
