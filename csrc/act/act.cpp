// Activation kernel selection and the scalar reference loops.
#include "act/act.h"

#include <omp.h>

#include <algorithm>

#include "act/activation_grad.h"
#include "common/activation_scalar.h"
#include "common/cpu.h"
#include "common/parallel.h"

namespace pyconv {

namespace ref {

template <typename T>
void activation_forward(Activation act, const T* x, T* y, int64_t n) {
  const T param = static_cast<T>(act.param);
  for (int64_t i = 0; i < n; ++i) y[i] = activate(act.kind, param, x[i]);
}

template <typename T>
void activation_backward(Activation act, const T* dy, const T* x, T* dx, int64_t n) {
  const T param = static_cast<T>(act.param);
  for (int64_t i = 0; i < n; ++i) dx[i] = activate_backward(act.kind, param, x[i], dy[i]);
}

}  // namespace ref

namespace {

constexpr int64_t kMinPerThread = 1 << 15;   // below this, one thread
constexpr int64_t kStreamBytes = 16 << 20;   // outputs above this bypass the cache

// The fp32 SIMD kernels of the active instruction set (act/act_simd.h), or null.
struct SimdAct {
  decltype(&avx2::activation_forward_f32) fwd;
  decltype(&avx2::activation_bias_forward_f32) bias_fwd;
  decltype(&avx2::activation_backward_f32) bwd;
  decltype(&avx2::activation_backward_from_output_f32) bwd_out;
};
const SimdAct* simd_act() {
#if defined(PYCONV_X86)
  static constexpr SimdAct k512{avx512::activation_forward_f32,
                                avx512::activation_bias_forward_f32,
                                avx512::activation_backward_f32,
                                avx512::activation_backward_from_output_f32};
  static constexpr SimdAct k256{avx2::activation_forward_f32, avx2::activation_bias_forward_f32,
                                avx2::activation_backward_f32,
                                avx2::activation_backward_from_output_f32};
  if (active_isa() >= Isa::avx512) return &k512;
  if (active_isa() >= Isa::avx2) return &k256;
#endif
  return nullptr;
}

// Calls body(begin, end) on contiguous chunks (multiples of 16 elements) in parallel.
template <typename F>
void parallel_chunks(int64_t n, F body) {
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(num_threads(), n / kMinPerThread));
  if (nt == 1) {
    body(int64_t(0), n);
    return;
  }
  const int64_t blocks = (n + 15) / 16;
#pragma omp parallel num_threads(static_cast<int>(nt))
  {
    // Split by the team actually granted (nested regions may get fewer threads).
    int64_t b0, b1;
    split_range(blocks, omp_get_num_threads(), omp_get_thread_num(), b0, b1);
    const int64_t begin = std::min(n, b0 * 16), end = std::min(n, b1 * 16);
    if (end > begin) body(begin, end);
  }
}

}  // namespace

template <typename T>
void activation_forward(Activation act, const T* x, T* y, int64_t n) {
  const bool stream = n * int64_t(sizeof(T)) >= kStreamBytes && x != y;
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    if constexpr (sizeof(T) == 4) {
      if (const SimdAct* k = simd_act()) {
        k->fwd(act, x + b, y + b, e - b, stream);
        return;
      }
    }
    ref::activation_forward(act, x + b, y + b, e - b);
  });
}

template <typename T>
void bias_activation_serial(Activation act, const EpilogueBlock<T>& e) {
  if constexpr (sizeof(T) == 4) {
    if (const SimdAct* k = simd_act()) {
      k->bias_fwd(act, e);
      return;
    }
  }
  const T param = static_cast<T>(act.param);
  for (int64_t i = 0; i < e.rows; ++i)
    for (int64_t j = 0; j < e.n; ++j) {
      const T x = e.x[i * e.ldx + j];
      const T v = e.bias ? x + e.bias[i * e.bias_row + j * e.bias_col] : x;
      if (e.z) e.z[i * e.ldz + j] = v;
      e.y[i * e.ldy + j] = activate(act.kind, param, v);
    }
}

namespace {

// dx = dy * act'(x), with v = x, or v = y = act(x) when from_output (sigmoid, tanh).
template <typename T>
void backward(Activation act, bool from_output, const T* dy, const T* v, T* dx, int64_t n) {
  const bool stream = n * int64_t(sizeof(T)) >= kStreamBytes && dx != dy && dx != v;
  parallel_chunks(n, [&](int64_t b, int64_t e) {
    if constexpr (sizeof(T) == 4) {
      if (const SimdAct* k = simd_act()) {
        if (from_output)
          k->bwd_out(act.kind, dy + b, v + b, dx + b, e - b, stream);
        else
          k->bwd(act, dy + b, v + b, dx + b, e - b, stream);
        return;
      }
    }
    if (from_output)
      for (int64_t i = b; i < e; ++i) dx[i] = activate_backward_from_output(act.kind, v[i], dy[i]);
    else
      ref::activation_backward(act, dy + b, v + b, dx + b, e - b);
  });
}

}  // namespace

template <typename T>
void activation_backward(Activation act, const T* dy, const T* x, T* dx, int64_t n) {
  backward(act, false, dy, x, dx, n);
}

template <typename T>
void activation_backward_from_output(ActKind kind, const T* dy, const T* y, T* dx, int64_t n) {
  backward(Activation{kind, 0.0}, true, dy, y, dx, n);
}

#define PYCONV_INSTANTIATE(T)                                                                \
  template void activation_forward<T>(Activation, const T*, T*, int64_t);                  \
  template void bias_activation_serial<T>(Activation, const EpilogueBlock<T>&);             \
  template void activation_backward<T>(Activation, const T*, const T*, T*, int64_t);       \
  template void activation_backward_from_output<T>(ActKind, const T*, const T*, T*, int64_t); \
  template void ref::activation_forward<T>(Activation, const T*, T*, int64_t);             \
  template void ref::activation_backward<T>(Activation, const T*, const T*, T*, int64_t);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv
