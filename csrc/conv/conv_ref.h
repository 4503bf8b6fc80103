// Plain-loop reference convolution: the algorithmic definition every fast
// kernel is tested against, and the fallback for shapes no fast path takes.
// Accumulates in double. Parallel over outputs only, so no two threads write
// one element and results do not depend on the thread count.
#pragma once
#include "common/activation.h"
#include "common/tensor.h"
#include "conv/conv_params.h"

namespace pyconv::ref {

template <typename T>
void conv2d_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact);
template <typename T>
void conv2d_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
// dx[n, c, ih, iw] of conv2d_backward_data: the products of the taps that read dy only.
template <typename T>
T conv2d_backward_data_at(const ConvParams& p, View4<const T> dy, View4<const T> w, int64_t n,
                          int64_t c, int64_t ih, int64_t iw);
template <typename T>
void conv2d_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw);
template <typename T>
void conv2d_backward_bias(View4<const T> dy, T* db);

}  // namespace pyconv::ref
