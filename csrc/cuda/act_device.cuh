// Device-side activation formulas: the same formulas, written the same way, as
// common/activation_scalar.h (which defines the semantics; torch's). Used by the
// fused conv epilogues and the activation kernels.
#pragma once
#ifndef PYCONV_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include "common/activation.h"

namespace pyconv::cuda {

template <typename T>
__device__ __forceinline__ T act_forward(ActKind kind, T param, T x) {
  switch (kind) {
    case ActKind::none: return x;
    case ActKind::relu: return x > T(0) ? x : (x == x ? T(0) : x);
    case ActKind::leaky_relu: return x > T(0) ? x : x * param;
    case ActKind::elu: return x < T(0) ? param * expm1(x) : x;  // +-0 -> x, as torch
    case ActKind::gelu: return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
    case ActKind::gelu_tanh: {
      const T k = T(0.79788456080286535588);  // sqrt(2/pi)
      return T(0.5) * x * (T(1) + tanh(k * (x + T(0.044715) * x * x * x)));
    }
    case ActKind::silu: return x / (T(1) + exp(-x));
    case ActKind::sigmoid: return T(1) / (T(1) + exp(-x));
    case ActKind::tanh: return tanh(x);
    case ActKind::hardswish: {
      T r = x + T(3);
      r = r < T(0) ? T(0) : (r > T(6) ? T(6) : r);
      return x * r / T(6);
    }
  }
  return x;
}

// The same through the output y = act(x), for sigmoid and tanh only (as torch's
// sigmoid_backward / tanh_backward take it).
template <typename T>
__device__ __forceinline__ T act_backward_from_output(ActKind kind, T dy, T y) {
  return kind == ActKind::sigmoid ? dy * (T(1) - y) * y : dy * (T(1) - y * y);
}

// dy * d act(x) / dx, as torch's backward formulas (in terms of the input x).
template <typename T>
__device__ __forceinline__ T act_backward(ActKind kind, T param, T dy, T x) {
  switch (kind) {
    case ActKind::none: return dy;
    case ActKind::relu: return x <= T(0) ? T(0) : dy;  // threshold_backward on the result
    case ActKind::leaky_relu: return x > T(0) ? dy : dy * param;
    case ActKind::elu: return x <= T(0) ? dy * param * exp(x) : dy;
    case ActKind::gelu: {
      const T kAlpha = T(0.39894228040143267794);  // 1 / sqrt(2 pi)
      const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
      const T pdf = kAlpha * exp(T(-0.5) * x * x);
      return dy * (cdf + x * pdf);
    }
    case ActKind::gelu_tanh: {
      const T kBeta = T(0.79788456080286535588), kKappa = T(0.044715);
      const T x_sq = x * x, x_cube = x_sq * x;
      const T inner = kBeta * (x + kKappa * x_cube);
      const T tanh_inner = tanh(inner);
      const T left = T(0.5) * x, right = T(1) + tanh_inner;
      const T left_derivative = T(0.5) * right;
      const T right_derivative = T(1) - tanh_inner * tanh_inner;
      const T inner_derivative = kBeta * (T(1) + T(3) * kKappa * x_sq);
      return dy * (left_derivative + left * right_derivative * inner_derivative);
    }
    case ActKind::silu: {
      const T s = T(1) / (T(1) + exp(-x));
      return dy * s * (T(1) + x * (T(1) - s));
    }
    case ActKind::sigmoid: return act_backward_from_output<T>(kind, dy, T(1) / (T(1) + exp(-x)));
    case ActKind::tanh: return act_backward_from_output<T>(kind, dy, tanh(x));
    case ActKind::hardswish:
      if (x < T(-3)) return T(0);
      if (x <= T(3)) return dy * (x / T(3) + T(0.5));
      return dy;
  }
  return dy;
}

}  // namespace pyconv::cuda
