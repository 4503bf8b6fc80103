// Standalone activations on the CPU, elementwise over n contiguous elements.
// Forward WRITES y = act(x); backward WRITES dx = dy * act'(x), x being the
// forward's input (as torch's gelu/silu/hardswish backward take it). Split over
// threads in contiguous chunks; y may alias x, dx may alias dy.
#pragma once
#include <cstdint>

#include "common/activation.h"

namespace pyconv {

template <typename T>
void activation_forward(Activation act, const T* x, T* y, int64_t n);
template <typename T>
void activation_backward(Activation act, const T* dy, const T* x, T* dx, int64_t n);
// The same gradient written through the forward's output y = act(x), for the
// kinds where grad_from_output_ok (act/activation_grad.h): sigmoid and tanh.
template <typename T>
void activation_backward_from_output(ActKind kind, const T* dy, const T* y, T* dx, int64_t n);

// A block of the convolutions' epilogue: rows x n values, row i of x at x + i*ldx (likewise
// y and z). Value (i, j) is x + bias[i*bias_row + j*bias_col] (bias_col 0 or 1; without
// bias nothing is added, so -0.0 stays); z, when not null, receives it, y its activation.
// y may alias x.
template <typename T>
struct EpilogueBlock {
  const T* x;
  int64_t ldx;
  T* y;
  int64_t ldy;
  int64_t rows, n;
  const T* bias = nullptr;
  int64_t bias_row = 0, bias_col = 0;
  T* z = nullptr;
  int64_t ldz = 0;
};

// The epilogue on the calling thread (inside the convolutions' parallel regions, on values
// they just wrote): the SIMD kernels for float, activate() otherwise.
template <typename T>
void bias_activation_serial(Activation act, const EpilogueBlock<T>& e);

namespace ref {
// Scalar loops over activation_scalar.h / activation_grad.h (one thread's chunk).
template <typename T>
void activation_forward(Activation act, const T* x, T* y, int64_t n);
template <typename T>
void activation_backward(Activation act, const T* dy, const T* x, T* dx, int64_t n);
}  // namespace ref

// f32 over one thread's chunk (act/act_simd.h), in avx2:: when active_isa() >= avx2 and
// avx512:: when it is avx512. `stream` selects non-temporal stores (outputs much larger than
// the cache).
#define PYCONV_ACT_DECLARE                                                                     \
  void activation_forward_f32(Activation act, const float* x, float* y, int64_t n, bool stream); \
  void activation_bias_forward_f32(Activation act, const EpilogueBlock<float>& e);            \
  void activation_backward_f32(Activation act, const float* dy, const float* x, float* dx,     \
                               int64_t n, bool stream);                                        \
  void activation_backward_from_output_f32(ActKind kind, const float* dy, const float* y,      \
                                           float* dx, int64_t n, bool stream);
namespace avx2 {
PYCONV_ACT_DECLARE
// f64 over one thread's chunk for the kinds built on exp (act_f64_avx2.cpp); false: a kind it
// does not take (the caller's scalar loop does), as activation_f64_takes tells.
bool activation_f64_takes(ActKind kind);
bool activation_forward_f64(Activation act, const double* x, double* y, int64_t n);
bool activation_backward_f64(Activation act, const double* dy, const double* x, double* dx,
                             int64_t n);
void activation_backward_from_output_f64(ActKind kind, const double* dy, const double* y,
                                         double* dx, int64_t n);
}  // namespace avx2
namespace avx512 {
PYCONV_ACT_DECLARE
}  // namespace avx512
#undef PYCONV_ACT_DECLARE

}  // namespace pyconv
