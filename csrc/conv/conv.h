// CPU conv2d entry points. Every function WRITES its output (never
// accumulates); outputs are contiguous NCHW, inputs are strided views.
// Each picks the fastest kernel for the params and the active ISA and falls
// back to the reference loops (conv_ref.h).
#pragma once
#include "common/activation.h"
#include "common/tensor.h"
#include "conv/conv_params.h"

namespace pyconv {

// x is (N,C,H,W), w is (K,C/g,R,S), bias is (K) contiguous or null, y is (N,K,P,Q).
// y = act(conv(x, w) + bias); when preact is not null it receives conv(x, w) + bias.
template <typename T>
void conv2d_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact);

// dy is (N,K,P,Q), dx is (N,C,H,W).
template <typename T>
void conv2d_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);

// dw is (K,C/g,R,S).
template <typename T>
void conv2d_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw);

// db[k] = sum of dy over n, p, q.
template <typename T>
void conv2d_backward_bias(View4<const T> dy, T* db);

// In place on y (N, C, HW) contiguous: z = y + bias (bias may be null),
// preact (may be null) receives z, y receives act(z).
template <typename T>
void bias_activation(int64_t N, int64_t C, int64_t HW, const T* bias, Activation act, T* y,
                     T* preact);

}  // namespace pyconv
