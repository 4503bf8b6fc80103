// Kernel selection for conv2d on the CPU: depthwise (groups == C == K) runs the
// direct kernels, backward-data with few input channels or largely zero-padded im2col
// col2im (conv_col2im.cpp), 3x3 and 5x5 stride-1 convolutions with enough channels Winograd
// F(2x2, 3x3) (conv_winograd.cpp), grouped stride-1 ones with few channels per group a
// direct kernel (conv_grouped.cpp), everything else the packed GEMM (conv_gemm.cpp) with the
// micro-kernel of the active ISA. The reference loops (conv_ref.cpp) stay as the
// oracle for tests (pyconv._C.conv2d_*_ref are not bound; tests compare with torch).
#include "conv/conv.h"

#include "act/act.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "conv/conv_ref.h"
#include "gemm/gemm_driver.h"

namespace pyconv {

template <typename T>
void conv2d_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact) {
  const gemm::ScratchScope scope;  // (whole-array scratch back to the cache on return)
  if (fast::is_depthwise(p))
    fast::depthwise_forward(p, x, w, bias, act, y, preact);
  else if (!fast::winograd_forward(p, x, w, bias, act, y, preact) &&
           !fast::grouped_forward(p, x, w, bias, act, y, preact))
    fast::conv2d_forward_gemm(p, x, w, bias, act, y, preact);
}

template <typename T>
void conv2d_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  const gemm::ScratchScope scope;
  if (fast::is_depthwise(p))
    fast::depthwise_backward_data(p, dy, w, dx);
  else if (!fast::backward_data_col2im(p, dy, w, dx) &&
           !fast::winograd_backward_data(p, dy, w, dx) &&
           !fast::grouped_backward_data(p, dy, w, dx))
    fast::conv2d_backward_data_gemm(p, dy, w, dx);
}

template <typename T>
void conv2d_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  const gemm::ScratchScope scope;
  if (fast::is_depthwise(p))
    fast::depthwise_backward_weight(p, dy, x, dw);
  else if (!fast::winograd_backward_weight(p, dy, x, dw) &&
           !fast::grouped_backward_weight(p, dy, x, dw))
    fast::conv2d_backward_weight_gemm(p, dy, x, dw);
}

template <typename T>
void conv2d_backward_bias(View4<const T> dy, T* db) {
  fast::backward_bias(dy, db);
}

template <typename T>
void bias_activation(int64_t N, int64_t C, int64_t HW, const T* bias, Activation act, T* y,
                     T* preact) {
  // Small outputs (a linear layer's) cost less than waking the thread team.
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads()) if (N * C * HW >= (1 << 16))
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      T* yc = y + (n * C + c) * HW;
      T* zc = preact ? preact + (n * C + c) * HW : nullptr;
      bias_activation_serial(
          act, EpilogueBlock<T>{yc, 0, yc, 0, 1, HW, bias ? bias + c : nullptr, 0, 0, zc});
    }
}

#define PYCONV_INSTANTIATE(T)                                                                  \
  template void conv2d_forward<T>(const ConvParams&, View4<const T>, View4<const T>, const T*, \
                                  Activation, T*, T*);                                         \
  template void conv2d_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>, T*); \
  template void conv2d_backward_weight<T>(const ConvParams&, View4<const T>, View4<const T>,   \
                                          T*);                                                 \
  template void conv2d_backward_bias<T>(View4<const T>, T*);                                \
  template void bias_activation<T>(int64_t, int64_t, int64_t, const T*, Activation, T*, T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv
