// Scalar activation formulas, written as torch writes them. The reference
// kernels and every SIMD path's tail use these, so they define the semantics.
#pragma once
#include <cmath>

#include "common/activation.h"

namespace pyconv {

template <typename T>
inline T activate(ActKind kind, T param, T x) {
  switch (kind) {
    case ActKind::none: return x;
    case ActKind::relu: return x < T(0) ? T(0) : x;  // keeps -0.0 and NaN, as torch's clamp_min
    case ActKind::leaky_relu: return x > T(0) ? x : x * param;
    // x < 0, not x <= 0: at +-0 the input itself, as torch (0 * alpha is NaN for an infinite alpha)
    case ActKind::elu: return x < T(0) ? param * std::expm1(x) : x;
    case ActKind::gelu: {
      // float32: 0.5x + 0.5x*erf as one fused multiply-add, so the negative tail, where
      // 1 + erf cancels, keeps its digits (with the product rounded first, gelu(-5.08) came
      // out 5% off; torch's AVX-512 kernel, 0.5x * (1 + erf), is up to 10 units of 0.5x 2^-24
      // off there). The sign is x's, as in mathematics: gelu(-0.0) and a negative tail that
      // underflows give -0.0 (the sum alone gives +0.0). float64: 0.5x * (1 + erf), as
      // torch. The SIMD kernels (act/act_simd.h) do the same.
      const T e = std::erf(x * T(M_SQRT1_2));
      if constexpr (sizeof(T) == 4) return std::copysign(std::fma(T(0.5) * x, e, T(0.5) * x), x);
      return T(0.5) * x * (T(1) + e);
    }
    case ActKind::gelu_tanh: {
      const T k = T(M_SQRT2 * M_2_SQRTPI * 0.5);  // sqrt(2/pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
    case ActKind::silu: return x / (T(1) + std::exp(-x));
    case ActKind::sigmoid: return T(1) / (T(1) + std::exp(-x));
    case ActKind::tanh: return std::tanh(x);
    case ActKind::hardswish: {
      T r = x + T(3);
      r = r < T(0) ? T(0) : (r > T(6) ? T(6) : r);
      return x * r / T(6);
    }
  }
  return x;
}

}  // namespace pyconv
