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

// The activations whose derivative is a function of the forward's output y:
// sigmoid' = y (1 - y), tanh' = 1 - y^2. Their backward may take y instead of
// x (torch's sigmoid_backward / tanh_backward do), which skips the exp/tanh.
inline bool grad_from_output_ok(ActKind kind) {
  return kind == ActKind::sigmoid || kind == ActKind::tanh;
}

struct Activation {
  ActKind kind = ActKind::none;
  double param = 0.0;
};

}  // namespace pyconv
