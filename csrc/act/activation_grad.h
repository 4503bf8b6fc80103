// Scalar activation derivatives, as torch's backward kernels write them:
// dx = g * act'(x) with x the forward's input. The reference kernels and every
// SIMD path's tail use these, so they define the backward semantics. Notable
// points (all torch's): relu'(0) = 0 and NaN passes g (threshold_backward on
// the output); leaky_relu'(0) = slope; elu'(x <= 0) = alpha * exp(x);
// hardswish' is 0 for x <= -3, 1 for x >= 3, x/3 + 0.5 between. A NaN input
// gives NaN for elu and hardswish, as torch's vectorised kernels do.
#pragma once
#include <cmath>

#include "common/activation.h"

namespace pyconv {

// dx = g * act'(x) written through y = act(x); only for grad_from_output_ok kinds.
template <typename T>
inline T activate_backward_from_output(ActKind kind, T y, T g) {
  return kind == ActKind::sigmoid ? g * (T(1) - y) * y : g * (T(1) - y * y);
}

template <typename T>
inline T activate_backward(ActKind kind, T param, T x, T g) {
  switch (kind) {
    case ActKind::none: return g;
    case ActKind::relu: return x <= T(0) ? T(0) : g;
    case ActKind::leaky_relu: return x > T(0) ? g : g * param;
    case ActKind::elu: return x > T(0) ? g : g * param * std::exp(x);
    case ActKind::gelu: {
      const T beta = T(M_2_SQRTPI * M_SQRT1_2 * 0.5);
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
      const T pdf = beta * std::exp(x * x * T(-0.5));
      return g * (cdf + x * pdf);
    }
    case ActKind::gelu_tanh: {
      // With E = exp(-2|inner|), tanh(inner) = +-(1 - E) / (1 + E): 0.5 (1 + tanh) and
      // 0.5 x (1 - tanh^2) = 2 x E / (1 + E)^2 from E, not from a rounded tanh. Near
      // |tanh| = 1 (x around -5) 1 - t*t cancels: float32's tanh rounding to -1 gave 0 where
      // the derivative is 1.8e-6 (torch's formula has the same cancellation).
      const T beta = T(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = T(0.044715);
      const T x_sq = x * x, x_cube = x_sq * x;
      const T inner = beta * (x + kappa * x_cube);
      const T e = std::exp(T(-2) * std::fabs(inner)), d = T(1) + e;
      const T left_d = (inner >= T(0) ? T(1) : e) / d;
      const T right_d = (x + x) * e / (d * d);
      const T inner_d = beta * (T(1) + T(3) * kappa * x_sq);
      return g * (left_d + right_d * inner_d);
    }
    case ActKind::silu: {
      const T s = T(1) / (T(1) + std::exp(-x));
      return g * s * (T(1) + x * (T(1) - s));
    }
    case ActKind::sigmoid:
      return activate_backward_from_output(kind, T(1) / (T(1) + std::exp(-x)), g);
    case ActKind::tanh: return activate_backward_from_output(kind, std::tanh(x), g);
    case ActKind::hardswish: {
      const T mid = g * (x / T(3) + T(0.5));
      return x <= T(-3) ? T(0) : (x >= T(3) ? g : mid);
    }
  }
  return g;
}

}  // namespace pyconv
