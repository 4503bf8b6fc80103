// fp32 AVX2 + FMA activation math, shared by the standalone activation kernels
// (act_avx2.cpp) and any GEMM epilogue that applies an activation while the tile
// is in registers. Include only from *_avx2.cpp files (compiled with -mavx2
// -mfma). vmath::ActFwd<K>{param}(x) and vmath::ActBwd<K>{param}(g, x) are the vector forms of
// activate() (common/activation_scalar.h) and activate_backward()
// (act/activation_grad.h), within a few ulp for the transcendental ones.
//
// Polynomial exp (Cephes coefficients, 2^n applied in two steps so the result
// under/overflows gracefully), expm1 for elu, tanh (odd polynomial below 0.625,
// 1 - 2/(e^2x + 1) above) and erf (x * P(x^2) below 1, a fitted polynomial on
// [1, 3.92], 1 above). NaN propagates through every path; signs of zero follow
// torch (restored explicitly where the arithmetic would lose them).
#pragma once
#include <immintrin.h>

#include "common/activation.h"

namespace pyconv::avx2::vmath {

// Always inlined and internal: as ordinary inline functions gcc kept exp_ps out of line in
// the activation loops, called through the PLT with its operands on the stack (sigmoid's
// backward ran at half speed on large arrays).
#define PYCONV_VMATH __attribute__((always_inline)) static inline

PYCONV_VMATH __m256 set1(float v) { return _mm256_set1_ps(v); }
PYCONV_VMATH __m256 sign_of(__m256 x) { return _mm256_and_ps(x, set1(-0.0f)); }
PYCONV_VMATH __m256 abs_of(__m256 x) { return _mm256_andnot_ps(set1(-0.0f), x); }

// exp(x) - 1 before scaling: returns em1 = exp(r) - 1 and n with x = n ln2 + r.
PYCONV_VMATH __m256 exp_reduce(__m256 x, __m256i& n_out) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, set1(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m256 y = set1(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, set1(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, set1(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, set1(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, set1(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, set1(5.0000001201e-1f));
  n_out = _mm256_cvtps_epi32(n);
  return _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
}

PYCONV_VMATH __m256 pow2i(__m256i n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

PYCONV_VMATH __m256 exp_ps(__m256 x) {
  // min/max return their second operand when it is NaN, so NaN passes through.
  x = _mm256_max_ps(set1(-104.0f), _mm256_min_ps(set1(89.0f), x));
  __m256i n;
  const __m256 em1 = exp_reduce(x, n);
  const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(em1, set1(1.0f)), pow2i(n1)), pow2i(n2));
}

// expm1 for x <= 0 (larger x is clamped to 0); keeps -0.0.
PYCONV_VMATH __m256 expm1_nonpos_ps(__m256 x) {
  const __m256 xc = _mm256_max_ps(set1(-87.0f), _mm256_min_ps(_mm256_setzero_ps(), x));
  __m256i n;
  const __m256 em1 = exp_reduce(xc, n);
  const __m256 s = pow2i(n);
  const __m256 r = _mm256_fmadd_ps(em1, s, _mm256_sub_ps(s, set1(1.0f)));
  return _mm256_or_ps(r, sign_of(x));
}

PYCONV_VMATH __m256 tanh_ps(__m256 x) {
  const __m256 a = abs_of(x);
  const __m256 z = _mm256_mul_ps(a, a);
  __m256 p = set1(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, set1(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, set1(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, set1(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, set1(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
  const __m256 e = exp_ps(_mm256_add_ps(a, a));
  const __m256 big = _mm256_sub_ps(set1(1.0f), _mm256_div_ps(set1(2.0f), _mm256_add_ps(e, set1(1.0f))));
  const __m256 t = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, set1(0.625f), _CMP_LT_OQ));
  return _mm256_or_ps(t, sign_of(x));
}

PYCONV_VMATH __m256 erf_ps(__m256 x) {
  const __m256 a = abs_of(x);
  const __m256 z = _mm256_mul_ps(a, a);
  __m256 p = set1(7.933493907330558e-05f);
  p = _mm256_fmadd_ps(p, z, set1(-0.0008034846396185458f));
  p = _mm256_fmadd_ps(p, z, set1(0.005191218573600054f));
  p = _mm256_fmadd_ps(p, z, set1(-0.02685539983212948f));
  p = _mm256_fmadd_ps(p, z, set1(0.11283625662326813f));
  p = _mm256_fmadd_ps(p, z, set1(-0.3761262893676758f));
  p = _mm256_fmadd_ps(p, z, set1(1.128379225730896f));
  const __m256 small = _mm256_mul_ps(a, p);
  const __m256 u = _mm256_sub_ps(a, set1(2.46f));
  __m256 q = set1(9.4817231399702e-08f);
  q = _mm256_fmadd_ps(q, u, set1(-9.166920790448785e-06f));
  q = _mm256_fmadd_ps(q, u, set1(2.4706278054509312e-05f));
  q = _mm256_fmadd_ps(q, u, set1(5.1896404329454526e-05f));
  q = _mm256_fmadd_ps(q, u, set1(-0.00029961674590595067f));
  q = _mm256_fmadd_ps(q, u, set1(0.0003906787314917892f));
  q = _mm256_fmadd_ps(q, u, set1(0.00045933123328723013f));
  q = _mm256_fmadd_ps(q, u, set1(-0.002963119884952903f));
  q = _mm256_fmadd_ps(q, u, set1(0.006799545604735613f));
  q = _mm256_fmadd_ps(q, u, set1(-0.009904964827001095f));
  q = _mm256_fmadd_ps(q, u, set1(0.009832456707954407f));
  q = _mm256_fmadd_ps(q, u, set1(-0.006535748485475779f));
  q = _mm256_fmadd_ps(q, u, set1(0.0026562369894236326f));
  q = _mm256_fmadd_ps(q, u, set1(0.9994966983795166f));
  __m256 big = _mm256_min_ps(set1(1.0f), q);
  big = _mm256_blendv_ps(big, set1(1.0f), _mm256_cmp_ps(a, set1(3.92f), _CMP_GE_OQ));
  const __m256 e = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, set1(1.0f), _CMP_LT_OQ));
  return _mm256_or_ps(e, sign_of(x));
}

PYCONV_VMATH __m256 sigmoid_ps(__m256 x) {
  return _mm256_div_ps(set1(1.0f), _mm256_add_ps(set1(1.0f), exp_ps(_mm256_xor_ps(x, set1(-0.0f)))));
}

constexpr float kSqrt1_2 = 0.70710678118654752440f;
constexpr float kGeluBeta = 0.39894228040143267794f;      // 1/sqrt(2 pi)
constexpr float kGeluTanhBeta = 0.79788456080286535588f;  // sqrt(2/pi)
constexpr float kKappa = 0.044715f;

template <ActKind kind>
struct ActFwd {
  float param;
  __attribute__((always_inline)) inline __m256 operator()(__m256 x) const {
    const __m256 zero = _mm256_setzero_ps();
    switch (kind) {  // a constant: each instantiation keeps one case
      case ActKind::relu:  // x < 0 ? 0 : x (keeps -0.0 and NaN)
        return _mm256_andnot_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), x);
      case ActKind::leaky_relu:
        return _mm256_blendv_ps(_mm256_mul_ps(x, set1(param)), x, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
      case ActKind::elu:
        // negative branch only below 0: at +-0 (and NaN) the input, as torch, also for alpha = +-Inf/NaN
        return _mm256_blendv_ps(x, _mm256_mul_ps(set1(param), expm1_nonpos_ps(x)),
                                _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
      case ActKind::gelu: {  // as activate(): one FMA, then x's sign
        const __m256 hx = _mm256_mul_ps(x, set1(0.5f)), sign = set1(-0.0f);
        const __m256 y = _mm256_fmadd_ps(hx, erf_ps(_mm256_mul_ps(x, set1(kSqrt1_2))), hx);
        return _mm256_or_ps(_mm256_andnot_ps(sign, y), _mm256_and_ps(sign, x));
      }
      case ActKind::gelu_tanh: {
        const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        const __m256 inner = _mm256_mul_ps(set1(kGeluTanhBeta), _mm256_fmadd_ps(set1(kKappa), x3, x));
        return _mm256_mul_ps(_mm256_mul_ps(set1(0.5f), x), _mm256_add_ps(set1(1.0f), tanh_ps(inner)));
      }
      case ActKind::silu:
        return _mm256_div_ps(x, _mm256_add_ps(set1(1.0f), exp_ps(_mm256_xor_ps(x, set1(-0.0f)))));
      case ActKind::sigmoid: return sigmoid_ps(x);
      case ActKind::tanh: return tanh_ps(x);
      case ActKind::hardswish: {
        // x * min(max(x + 3, 0), 6) / 6, NaN-propagating like torch's
        __m256 r = _mm256_add_ps(x, set1(3.0f));
        r = _mm256_max_ps(zero, r);
        r = _mm256_min_ps(set1(6.0f), r);
        return _mm256_div_ps(_mm256_mul_ps(x, r), set1(6.0f));
      }
      case ActKind::none: break;
    }
    return x;
  }
};

// dx = g * act'(x) through y = act(x), for sigmoid and tanh (grad_from_output_ok).
template <ActKind kind>
struct ActBwdFromOutput {
  static_assert(kind == ActKind::sigmoid || kind == ActKind::tanh);
  __attribute__((always_inline)) inline __m256 operator()(__m256 g, __m256 y) const {
    const __m256 one = set1(1.0f);
    if constexpr (kind == ActKind::sigmoid)
      return _mm256_mul_ps(_mm256_mul_ps(g, _mm256_sub_ps(one, y)), y);
    else
      return _mm256_mul_ps(g, _mm256_fnmadd_ps(y, y, one));
  }
};

template <ActKind kind>
struct ActBwd {
  float param;
  __attribute__((always_inline)) inline __m256 operator()(__m256 g, __m256 x) const {
    const __m256 zero = _mm256_setzero_ps(), one = set1(1.0f);
    switch (kind) {  // a constant: each instantiation keeps one case
      case ActKind::relu:  // x <= 0 ? 0 : g (NaN passes g, as torch's threshold_backward)
        return _mm256_andnot_ps(_mm256_cmp_ps(x, zero, _CMP_LE_OQ), g);
      case ActKind::leaky_relu:
        return _mm256_blendv_ps(_mm256_mul_ps(g, set1(param)), g, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
      case ActKind::elu: {
        const __m256 neg = _mm256_mul_ps(_mm256_mul_ps(g, set1(param)), exp_ps(x));
        return _mm256_blendv_ps(neg, g, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
      }
      case ActKind::gelu: {
        const __m256 cdf = _mm256_mul_ps(set1(0.5f), _mm256_add_ps(one, erf_ps(_mm256_mul_ps(x, set1(kSqrt1_2)))));
        const __m256 pdf = _mm256_mul_ps(set1(kGeluBeta), exp_ps(_mm256_mul_ps(_mm256_mul_ps(x, x), set1(-0.5f))));
        return _mm256_mul_ps(g, _mm256_fmadd_ps(x, pdf, cdf));
      }
      case ActKind::gelu_tanh: {
        const __m256 x2 = _mm256_mul_ps(x, x), x3 = _mm256_mul_ps(x2, x);
        const __m256 inner = _mm256_mul_ps(set1(kGeluTanhBeta), _mm256_fmadd_ps(set1(kKappa), x3, x));
        const __m256 t = tanh_ps(inner);
        const __m256 left = _mm256_mul_ps(set1(0.5f), x), right = _mm256_add_ps(one, t);
        const __m256 left_d = _mm256_mul_ps(set1(0.5f), right);
        const __m256 right_d = _mm256_mul_ps(left, _mm256_fnmadd_ps(t, t, one));
        const __m256 inner_d = _mm256_mul_ps(set1(kGeluTanhBeta), _mm256_fmadd_ps(set1(3.0f * kKappa), x2, one));
        return _mm256_mul_ps(g, _mm256_fmadd_ps(right_d, inner_d, left_d));
      }
      case ActKind::silu: {
        const __m256 s = sigmoid_ps(x);
        const __m256 t = _mm256_fmadd_ps(x, _mm256_sub_ps(one, s), one);
        return _mm256_mul_ps(_mm256_mul_ps(g, s), t);
      }
      case ActKind::sigmoid: return ActBwdFromOutput<ActKind::sigmoid>{}(g, sigmoid_ps(x));
      case ActKind::tanh: return ActBwdFromOutput<ActKind::tanh>{}(g, tanh_ps(x));
      case ActKind::hardswish: {
        const __m256 mid = _mm256_mul_ps(g, _mm256_add_ps(_mm256_div_ps(x, set1(3.0f)), set1(0.5f)));
        __m256 r = _mm256_blendv_ps(mid, g, _mm256_cmp_ps(x, set1(3.0f), _CMP_GE_OQ));
        return _mm256_andnot_ps(_mm256_cmp_ps(x, set1(-3.0f), _CMP_LE_OQ), r);
      }
      case ActKind::none: break;
    }
    return g;
  }
};

#undef PYCONV_VMATH

}  // namespace pyconv::avx2::vmath
