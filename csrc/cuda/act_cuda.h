// CUDA elementwise activations (host side; kernels in act_cuda.cu). Outputs
// are contiguous and WRITTEN; inputs are strided device views. Enqueued on `stream`.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/activation.h"

namespace pyconv::cuda {

// Elementwise over x of any shape, given as up to 8 dims (sizes, strides in elements).
struct Strided {
  int ndim = 0;
  int64_t size[8] = {};
  int64_t stride[8] = {};
};

// y = act(x), y contiguous.
template <typename T>
void activation_forward(const char* op, Activation act, const T* x, Strided xs, T* y,
                        cudaStream_t stream);

// dx = dy * act'(x), dx contiguous; dy and v have the same shape. v is x, or
// the output y = act(x) when from_output (sigmoid and tanh only).
template <typename T>
void activation_backward(const char* op, Activation act, bool from_output, const T* dy,
                         Strided dys, const T* v, Strided vs, T* dx, cudaStream_t stream);

}  // namespace pyconv::cuda
