// float64 activations on AVX2 + FMA, 4 lanes: the kinds built on exp (sigmoid, silu, elu,
// tanh, gelu_tanh) and hardswish (a division, slow in 2-lane loops), forward and backward
// from the input; sigmoid's and tanh's backward from the output. Through libm one value at a time the exp kinds ran 2-3x slower than
// torch's vectorised float64 (Sleef). The others (relu, leaky_relu: compiler-vectorised
// loops in act.cpp; gelu: erf, libm) are not taken here.
//
// exp(x) = 2^n e^r, n = round(x / ln2), r = x - n ln2 in two FMA steps (ln2's leading 32
// bits exact in n * hi for |n| < 2^21), |r| <= ln2/2; e^r - 1 = r + r^2 P(r) by its Taylor
// series to r^13 (truncation below 5e-18 relative), so expm1 keeps its digits near 0; 2^n
// applied as two exact powers of two, so subnormal and overflowing results round once.
// Within 2 ulp of the correctly rounded results on the tests' sweeps; NaN propagates, and
// signed zeros follow the scalar formulas (common/activation_scalar.h, act/activation_grad.h).
// The last n % 4 values go through a padded vector, so a value's result does not depend on
// its position.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "act/act.h"

namespace pyconv::avx2 {
namespace {

using R = __m256d;

inline R set(double v) { return _mm256_set1_pd(v); }

// 2^k for integral k in [-1022, 1023] (as doubles), by the exponent field.
inline R pow2(R k) {
  const __m128i ki = _mm256_cvtpd_epi32(k);
  const __m256i e = _mm256_slli_epi64(
      _mm256_add_epi64(_mm256_cvtepi32_epi64(ki), _mm256_set1_epi64x(1023)), 52);
  return _mm256_castsi256_pd(e);
}

// e^r - 1 for |r| <= ln2/2 (plus rounding): r + r^2 (1/2! + r/3! + ... + r^11/13!).
inline R expm1_poly(R r) {
  static constexpr double c[12] = {1.0 / 2,         1.0 / 6,          1.0 / 24,
                                   1.0 / 120,       1.0 / 720,        1.0 / 5040,
                                   1.0 / 40320,     1.0 / 362880,     1.0 / 3628800,
                                   1.0 / 39916800,  1.0 / 479001600,  1.0 / 6227020800};
  R p = set(c[11]);
  for (int i = 10; i >= 0; --i) p = _mm256_fmadd_pd(p, r, set(c[i]));
  return _mm256_fmadd_pd(_mm256_mul_pd(r, r), p, r);
}

// x = n ln2 + r; returns e^r - 1 and n (NaN x: NaN r).
inline R reduce(R x, R& n) {
  n = _mm256_round_pd(_mm256_mul_pd(x, set(1.4426950408889634074)),
                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  R r = _mm256_fnmadd_pd(n, set(6.93147180369123816490e-01), x);
  r = _mm256_fnmadd_pd(n, set(1.90821492927058770002e-10), r);
  return expm1_poly(r);
}

// e^x: 0 below -745.2, inf above 709.8, NaN for NaN.
inline R exp(R x) {
  x = _mm256_max_pd(set(-746.0), _mm256_min_pd(set(710.0), x));  // (NaN passes through)
  R n;
  const R e = _mm256_add_pd(reduce(x, n), set(1.0));
  // 2^n as 2^h 2^(n-h), h = trunc(n / 2): each factor within the exponent range.
  const R h = _mm256_round_pd(_mm256_mul_pd(n, set(0.5)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const R nan = _mm256_cmp_pd(x, x, _CMP_UNORD_Q);
  const R v = _mm256_mul_pd(_mm256_mul_pd(e, pow2(_mm256_andnot_pd(nan, h))),
                            pow2(_mm256_andnot_pd(nan, _mm256_sub_pd(n, h))));
  return _mm256_blendv_pd(v, x, nan);
}

// e^x - 1 for x <= 40 (larger x: callers clamp): 2^n (e^r - 1) + (2^n - 1); below -40, -1.
inline R expm1(R x) {
  x = _mm256_max_pd(set(-40.0), x);  // (e^-40 < 2^-57: -1 after rounding; NaN passes)
  R n;
  const R em1 = reduce(x, n);
  const R nan = _mm256_cmp_pd(x, x, _CMP_UNORD_Q);
  const R s = pow2(_mm256_andnot_pd(nan, n));
  const R v = _mm256_fmadd_pd(s, em1, _mm256_sub_pd(s, set(1.0)));
  return _mm256_blendv_pd(v, x, nan);
}

inline R sign_of(R x) { return _mm256_and_pd(x, set(-0.0)); }
inline R abs_of(R x) { return _mm256_andnot_pd(set(-0.0), x); }

// tanh |x| = E / (E + 2), E = expm1(2|x|); +-1 from |x| = 20 (tanh rounds to 1 from 19.06);
// x's sign put back (tanh(-0.0) = -0.0).
inline R tanh(R x) {
  const R a = _mm256_min_pd(set(20.0), abs_of(x));  // (NaN passes through)
  const R e = expm1(_mm256_add_pd(a, a));
  return _mm256_or_pd(_mm256_div_pd(e, _mm256_add_pd(e, set(2.0))), sign_of(x));
}

inline R sigmoid(R x) {
  return _mm256_div_pd(set(1.0), _mm256_add_pd(set(1.0), exp(_mm256_xor_pd(x, set(-0.0)))));
}

constexpr double kGeluTanhBeta = M_SQRT2 * M_2_SQRTPI * 0.5;  // sqrt(2/pi), as the scalar formula
constexpr double kKappa = 0.044715;

// The scalar formulas' operations in their order (common/activation_scalar.h).
template <ActKind K>
inline R forward(R x, double param) {
  const R one = set(1.0);
  if constexpr (K == ActKind::sigmoid) return sigmoid(x);
  if constexpr (K == ActKind::silu)
    return _mm256_div_pd(x, _mm256_add_pd(one, exp(_mm256_xor_pd(x, set(-0.0)))));
  if constexpr (K == ActKind::tanh) return tanh(x);
  if constexpr (K == ActKind::elu)  // x < 0 ? param * expm1(x) : x
    return _mm256_blendv_pd(x, _mm256_mul_pd(set(param), expm1(x)),
                            _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ));
  if constexpr (K == ActKind::gelu_tanh) {
    const R x3 = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(set(kKappa), x), x), x);
    const R t = tanh(_mm256_mul_pd(set(kGeluTanhBeta), _mm256_add_pd(x, x3)));
    return _mm256_mul_pd(_mm256_mul_pd(set(0.5), x), _mm256_add_pd(one, t));
  }
  if constexpr (K == ActKind::hardswish) {  // x * clamp(x + 3, 0, 6) / 6, NaN kept
    R r = _mm256_add_pd(x, set(3.0));
    r = _mm256_blendv_pd(r, _mm256_setzero_pd(), _mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ));
    r = _mm256_blendv_pd(r, set(6.0), _mm256_cmp_pd(r, set(6.0), _CMP_GT_OQ));
    return _mm256_div_pd(_mm256_mul_pd(x, r), set(6.0));
  }
  return x;
}

// dx = g * act'(x), as act/activation_grad.h.
template <ActKind K>
inline R backward(R g, R x, double param) {
  const R one = set(1.0);
  if constexpr (K == ActKind::sigmoid) {
    const R y = sigmoid(x);
    return _mm256_mul_pd(_mm256_mul_pd(g, _mm256_sub_pd(one, y)), y);
  }
  if constexpr (K == ActKind::silu) {
    const R s = sigmoid(x);
    return _mm256_mul_pd(_mm256_mul_pd(g, s),
                         _mm256_add_pd(one, _mm256_mul_pd(x, _mm256_sub_pd(one, s))));
  }
  if constexpr (K == ActKind::tanh) {
    const R t = tanh(x);
    return _mm256_mul_pd(g, _mm256_sub_pd(one, _mm256_mul_pd(t, t)));
  }
  if constexpr (K == ActKind::elu)  // x > 0 ? g : g * param * exp(x)
    return _mm256_blendv_pd(_mm256_mul_pd(_mm256_mul_pd(g, set(param)), exp(x)), g,
                            _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_GT_OQ));
  if constexpr (K == ActKind::gelu_tanh) {
    const R beta = set(kGeluTanhBeta), kappa = set(kKappa);
    const R x_sq = _mm256_mul_pd(x, x), x_cube = _mm256_mul_pd(x_sq, x);
    const R inner = _mm256_mul_pd(beta, _mm256_add_pd(x, _mm256_mul_pd(kappa, x_cube)));
    const R e = exp(_mm256_mul_pd(set(-2.0), _mm256_andnot_pd(set(-0.0), inner)));
    const R d = _mm256_add_pd(one, e);
    const R left_d = _mm256_div_pd(
        _mm256_blendv_pd(e, one, _mm256_cmp_pd(inner, _mm256_setzero_pd(), _CMP_GE_OQ)), d);
    const R right_d =
        _mm256_div_pd(_mm256_mul_pd(_mm256_add_pd(x, x), e), _mm256_mul_pd(d, d));
    const R inner_d = _mm256_mul_pd(
        beta, _mm256_add_pd(one, _mm256_mul_pd(_mm256_mul_pd(set(3.0), kappa), x_sq)));
    return _mm256_mul_pd(g, _mm256_add_pd(left_d, _mm256_mul_pd(right_d, inner_d)));
  }
  if constexpr (K == ActKind::hardswish) {  // 0 to -3, g from 3, g (x/3 + 1/2) between
    const R mid = _mm256_mul_pd(g, _mm256_add_pd(_mm256_div_pd(x, set(3.0)), set(0.5)));
    const R r = _mm256_blendv_pd(mid, g, _mm256_cmp_pd(x, set(3.0), _CMP_GE_OQ));
    return _mm256_blendv_pd(r, _mm256_setzero_pd(), _mm256_cmp_pd(x, set(-3.0), _CMP_LE_OQ));
  }
  return g;
}

// out[i] = f(a[i], b[i]) (b unused by the forward), the tail through a padded vector.
template <class F>
void drive(const F& f, const double* a, const double* b, double* out, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    _mm256_storeu_pd(out + i, f(_mm256_loadu_pd(a + i), b ? _mm256_loadu_pd(b + i) : R{}));
  if (i < n) {
    alignas(32) double ta[4] = {}, tb[4] = {}, to[4];
    std::memcpy(ta, a + i, sizeof(double) * (n - i));
    if (b) std::memcpy(tb, b + i, sizeof(double) * (n - i));
    _mm256_store_pd(to, f(_mm256_load_pd(ta), _mm256_load_pd(tb)));
    std::memcpy(out + i, to, sizeof(double) * (n - i));
  }
}

#define PYCONV_F64_KINDS(KIND, CALL)                         \
  switch (KIND) {                                            \
    case ActKind::sigmoid: CALL(ActKind::sigmoid); return true; \
    case ActKind::silu: CALL(ActKind::silu); return true;       \
    case ActKind::tanh: CALL(ActKind::tanh); return true;       \
    case ActKind::elu: CALL(ActKind::elu); return true;         \
    case ActKind::gelu_tanh: CALL(ActKind::gelu_tanh); return true; \
    case ActKind::hardswish: CALL(ActKind::hardswish); return true; \
    default: return false;                                   \
  }

}  // namespace

bool activation_f64_takes(ActKind kind) {
#define PYCONV_CALL(K)
  PYCONV_F64_KINDS(kind, PYCONV_CALL)
#undef PYCONV_CALL
}

bool activation_forward_f64(Activation act, const double* x, double* y, int64_t n) {
  const double param = act.param;
#define PYCONV_CALL(K) drive([&](R v, R) { return forward<K>(v, param); }, x, nullptr, y, n)
  PYCONV_F64_KINDS(act.kind, PYCONV_CALL)
#undef PYCONV_CALL
}

bool activation_backward_f64(Activation act, const double* dy, const double* x, double* dx,
                             int64_t n) {
  const double param = act.param;
#define PYCONV_CALL(K) drive([&](R v, R g) { return backward<K>(g, v, param); }, x, dy, dx, n)
  PYCONV_F64_KINDS(act.kind, PYCONV_CALL)
#undef PYCONV_CALL
}

void activation_backward_from_output_f64(ActKind kind, const double* dy, const double* y,
                                         double* dx, int64_t n) {
  const R one = set(1.0);
  if (kind == ActKind::sigmoid)  // g (1 - y) y
    drive([&](R v, R g) { return _mm256_mul_pd(_mm256_mul_pd(g, _mm256_sub_pd(one, v)), v); },
          y, dy, dx, n);
  else  // tanh: g (1 - y^2)
    drive([&](R v, R g) { return _mm256_mul_pd(g, _mm256_sub_pd(one, _mm256_mul_pd(v, v))); },
          y, dy, dx, n);
}

#undef PYCONV_F64_KINDS

}  // namespace pyconv::avx2
