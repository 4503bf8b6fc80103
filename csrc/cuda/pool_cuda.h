// CUDA max pooling / unpooling (host side; kernels in pool_cuda.cu). Outputs are contiguous and WRITTEN; inputs
// are strided device views. All work is enqueued on `stream`.
//
// Determinism without float atomics:
//   max_pool2d backward is a gather: each dx element sums, in ascending output
//   order (the CPU's scatter order), the dy of the windows that contain it and
//   whose index points at it. Indices must therefore come from max_pool2d with
//   the same parameters: an index outside its window is reported as an error.
//   max_unpool2d forward: where indices repeat within a plane the last one
//   wins (as the CPU's serial loop), found with an integer atomicMax per
//   output element, then one write per element.
// The functions that read user indices return the position of the first bad
// index (or -1) in `*bad_pos`, which costs one stream synchronisation.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/tensor.h"
#include "pool/pool_params.h"

namespace pyconv::cuda {

// y, idx (N,C,OH,OW); idx may be null. Flat index ih * W + iw within the plane.
template <typename T>
void max_pool2d_forward(const char* op, const PoolParams& p, View4<const T> x, T* y, int64_t* idx,
                        cudaStream_t stream);

// dy, idx (N,C,OH,OW) strided; dx (N,C,H,W). flag: device int64 scratch (1 element).
// Sets *bad_pos to the first flat position of idx holding an invalid index, else -1.
template <typename T>
void max_pool2d_backward(const char* op, const PoolParams& p, View4<const T> dy,
                         View4<const int64_t> idx, T* dx, int64_t* flag, int64_t* bad_pos,
                         cudaStream_t stream);

// x, idx (N,C,H,W) strided; y (N,C,OH,OW). winner: device int32 scratch of N*C*OH*OW.
template <typename T>
void max_unpool2d_forward(const char* op, const PoolParams& p, View4<const T> x,
                          View4<const int64_t> idx, T* y, int32_t* winner, int64_t* flag,
                          int64_t* bad_pos, cudaStream_t stream);

// dy (N,C,OH,OW) strided, idx (N,C,H,W) strided; dx (N,C,H,W).
template <typename T>
void max_unpool2d_backward(const char* op, const PoolParams& p, View4<const T> dy,
                           View4<const int64_t> idx, T* dx, int64_t* flag, int64_t* bad_pos,
                           cudaStream_t stream);

}  // namespace pyconv::cuda
