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

// CALL(K) with K the kind as a constant, one instantiation each, so that a kernel's
// per-value switch folds away (inside a loop over values it kept float64 relu at ~20 cycles
// a value; the SIMD kernels' polynomials likewise).
#define PYCONV_ACT_SWITCH(KIND, CALL)                           \
  switch (KIND) {                                               \
    case ActKind::relu: CALL(ActKind::relu); break;             \
    case ActKind::leaky_relu: CALL(ActKind::leaky_relu); break; \
    case ActKind::elu: CALL(ActKind::elu); break;               \
    case ActKind::gelu: CALL(ActKind::gelu); break;             \
    case ActKind::gelu_tanh: CALL(ActKind::gelu_tanh); break;   \
    case ActKind::silu: CALL(ActKind::silu); break;             \
    case ActKind::sigmoid: CALL(ActKind::sigmoid); break;       \
    case ActKind::tanh: CALL(ActKind::tanh); break;             \
    case ActKind::hardswish: CALL(ActKind::hardswish); break;   \
    case ActKind::none: CALL(ActKind::none); break;             \
  }

}  // namespace pyconv
