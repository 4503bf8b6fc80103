// CUDA conv2d entry points (host side; launchers in conv_cuda_impl.cuh, kernels in conv_kernels.cuh).
// Every function WRITES its output (never accumulates); outputs are
// contiguous NCHW device buffers, inputs are strided device views (strides in
// elements). All work is enqueued on `stream`; nothing synchronises.
// Failures to launch throw std::runtime_error naming the op.
//
// The convolutions are implicit GEMMs (no im2col buffer) on one kernel
// template, conv_igemm (64x64x16 tiles with 4x4 outputs per thread, or for big
// fp32 GEMMs 128x128x8 tiles with 8x8 per thread; conv_kernels.cuh):
//   forward        C[k][(n,p,q)] = sum_(c,r,s) w[k,c,r,s] * x[n,c,p*sh-pt+r*dh,q*sw-pl+s*dw]
//   backward-data  C[c][(n,h,w)] = sum_(k,r,s) w[k,c,r,s] * dy[n,k,(h+pt-r*dh)/sh,(w+pl-s*dw)/sw]
//                  (gather form: each dx element is written by one thread, no atomics)
//   backward-weight C[k][(c,r,s)] = sum_(n,p,q) dy[n,k,p,q] * x[n,c,...]
//                  (split over (n,p,q) into fixed-order partials, then summed in order:
//                  deterministic, no float atomics)
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/activation.h"
#include "common/tensor.h"
#include "conv/conv_params.h"

namespace pyconv::cuda {

// y (N,K,P,Q) = act(conv(x, w) + bias); preact (may be null) receives conv + bias.
// bias is null or K elements `bias_stride` apart.
template <typename T>
void conv2d_forward(const char* op, const ConvParams& p, View4<const T> x, View4<const T> w,
                    const T* bias, int64_t bias_stride, Activation act, T* y, T* preact,
                    cudaStream_t stream);

// dx (N,C,H,W) = act(conv2d backward-data(dy, w) + bias): bias/act are for
// conv_transpose2d's forward (bias of C elements); pass null/none for a gradient.
template <typename T>
void conv2d_backward_data(const char* op, const ConvParams& p, View4<const T> dy,
                          View4<const T> w, const T* bias, int64_t bias_stride, Activation act,
                          T* dx, T* preact, cudaStream_t stream);

// Number of fixed-order partial sums conv2d_backward_weight<T> uses for p on the
// current device; when > 1 it needs a workspace of splits * K * C/g * R * S elements.
template <typename T>
int conv2d_backward_weight_splits(const ConvParams& p);

// dw (K,C/g,R,S).
template <typename T>
void conv2d_backward_weight(const char* op, const ConvParams& p, View4<const T> dy,
                            View4<const T> x, T* dw, int splits, T* workspace,
                            cudaStream_t stream);

// Chunks the bias gradient of dy (N, Kb, P, Q) is split into; when > 1,
// conv2d_backward_bias needs a workspace of chunks * Kb elements.
int conv2d_backward_bias_chunks(const int64_t dy_shape[4]);

// db[k] = sum of dy[:, k, :, :], in a fixed order (chunked partials summed in order).
template <typename T>
void conv2d_backward_bias(const char* op, View4<const T> dy, T* db, int chunks, T* workspace,
                          cudaStream_t stream);

}  // namespace pyconv::cuda
