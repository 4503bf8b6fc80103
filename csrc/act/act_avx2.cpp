// fp32 activations, AVX2 + FMA: act/act_simd.h over 8-lane vectors.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "act/act.h"

namespace pyconv::avx2 {
namespace {

struct S {
  using R = __m256;
  using M = __m256;  // all-ones lanes
  using I = __m256i;
  static constexpr int lanes = 8;
  static R set1(float v) { return _mm256_set1_ps(v); }
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R r) { _mm256_storeu_ps(p, r); }
  static void stream(float* p, R r) { _mm256_stream_ps(p, r); }
  static __m256i first(int k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R load_n(const float* p, int k) { return _mm256_maskload_ps(p, first(k)); }
  static void store_n(float* p, int k, R r) { _mm256_maskstore_ps(p, first(k), r); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R fnma(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }
  static R min(R a, R b) { return _mm256_min_ps(a, b); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static R and_(R a, R b) { return _mm256_and_ps(a, b); }
  static R or_(R a, R b) { return _mm256_or_ps(a, b); }
  static R xor_(R a, R b) { return _mm256_xor_ps(a, b); }
  static R andnot(R a, R b) { return _mm256_andnot_ps(a, b); }
  static I bits(R x) { return _mm256_castps_si256(x); }
  static R exponent(I b) { return _mm256_castsi256_ps(_mm256_slli_epi32(b, 23)); }
  // two exact steps (2^(n/2) and 2^(n - n/2) are normal), so the product rounds once, as
  // AVX-512's scalef
  static R ldexp(R v, R n) {
    const __m256i k = _mm256_cvtps_epi32(n), k1 = _mm256_srai_epi32(k, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const R s1 = exponent(_mm256_add_epi32(k1, bias));
    const R s2 = exponent(_mm256_add_epi32(_mm256_sub_epi32(k, k1), bias));
    return _mm256_mul_ps(_mm256_mul_ps(v, s1), s2);
  }
  static R lookup8(const float* table, I i) {
    return _mm256_permutevar8x32_ps(_mm256_load_ps(table), i);
  }
  static M lt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M le(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M gt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static R blend(M m, R f, R t) { return _mm256_blendv_ps(f, t, m); }
  static R zero_where(M m, R x) { return _mm256_andnot_ps(m, x); }
};

#include "act/act_simd.h"

}  // namespace

PYCONV_ACT_EXPORTS(S)

}  // namespace pyconv::avx2
