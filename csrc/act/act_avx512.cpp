// fp32 activations, AVX-512: act/act_simd.h over 16-lane vectors (bitwise the AVX2
// results: the same operations per lane).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "act/act.h"

namespace pyconv::avx512 {
namespace {

struct S {
  using R = __m512;
  using M = __mmask16;
  using I = __m512i;
  static constexpr int lanes = 16;
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R r) { _mm512_storeu_ps(p, r); }
  static void stream(float* p, R r) { _mm512_stream_ps(p, r); }
  static __mmask16 first(int k) { return static_cast<__mmask16>((1u << k) - 1); }
  static R load_n(const float* p, int k) { return _mm512_maskz_loadu_ps(first(k), p); }
  static void store_n(float* p, int k, R r) { _mm512_mask_storeu_ps(p, first(k), r); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R fnma(R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); }
  static R min(R a, R b) { return _mm512_min_ps(a, b); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R and_(R a, R b) { return _mm512_and_ps(a, b); }
  static R or_(R a, R b) { return _mm512_or_ps(a, b); }
  static R xor_(R a, R b) { return _mm512_xor_ps(a, b); }
  static R andnot(R a, R b) { return _mm512_andnot_ps(a, b); }
  static I bits(R x) { return _mm512_castps_si512(x); }
  static R exponent(I b) { return _mm512_castsi512_ps(_mm512_slli_epi32(b, 23)); }
  static R ldexp(R v, R n) { return _mm512_scalef_ps(v, n); }
  static R lookup8(const float* table, I i) {
    return _mm512_permutexvar_ps(i, _mm512_broadcast_f32x8(_mm256_load_ps(table)));
  }
  static M lt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M gt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static R blend(M m, R f, R t) { return _mm512_mask_blend_ps(m, f, t); }
  static R zero_where(M m, R x) { return _mm512_maskz_mov_ps(static_cast<__mmask16>(~m), x); }
};

#include "act/act_simd.h"

}  // namespace

PYCONV_ACT_EXPORTS(S)

}  // namespace pyconv::avx512
