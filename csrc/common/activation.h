// The activations pyconv knows, as a value that kernels (the standalone
// activation ops and the fused GEMM epilogues) switch on.
#pragma once

namespace pyconv {

enum class ActKind {
  none = 0,
  relu,
  leaky_relu,  // param = negative_slope
  elu,         // param = alpha
  gelu,        // exact (erf)
  gelu_tanh,   // approximate="tanh"
  silu,
  sigmoid,
  tanh,
  hardswish,
};

struct Activation {
  ActKind kind = ActKind::none;
  double param = 0.0;
};

}  // namespace pyconv
