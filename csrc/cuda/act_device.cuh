// Device-side activation formulas: the same formulas, written the same way, as
// common/activation_scalar.h (which defines the semantics; torch's). Used by the
// fused conv epilogues and the activation kernels.
#pragma once
#include <cuda_runtime.h>

#include "common/activation.h"

namespace pyconv::cuda {

template <typename T>
__device__ __forceinline__ T act_forward(ActKind kind, T param, T x) {
  switch (kind) {
    case ActKind::none: return x;
    case ActKind::relu: return x > T(0) ? x : (x == x ? T(0) : x);
    case ActKind::leaky_relu: return x > T(0) ? x : x * param;
    case ActKind::elu: return x > T(0) ? x : param * expm1(x);
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

}  // namespace pyconv::cuda
