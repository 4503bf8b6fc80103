// CPU max pooling / unpooling entry points. Outputs are contiguous NCHW and
// freshly WRITTEN (every element, whatever the output held before);
// inputs are strided views. Parallel over planes (n, c) or rows within them, so
// no two threads write one element.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/tensor.h"
#include "pool/pool_params.h"

namespace pyconv {

// x is (N,C,H,W); y and idx are (N,C,OH,OW); idx may be null (values only).
// idx holds ih * W + iw within each plane, as torch.
template <typename T>
void max_pool2d_forward(const PoolParams& p, View4<const T> x, T* y, int64_t* idx);

// dy, idx are (N,C,OH,OW) contiguous; dx (N,C,H,W) = zeros, plus dx[plane][idx] += dy.
// Returns false (and sets *bad to the offending index) when an index lies
// outside [0, H*W); dx is then garbage and must not be returned.
template <typename T>
bool max_pool2d_backward(const PoolParams& p, const T* dy, const int64_t* idx, T* dx,
                         int64_t* bad);

// max_unpool2d: x, idx are (N,C,H,W) contiguous; y (N,C,OH,OW) is zeroed, then
// y[plane][idx] = x (serially within a plane, so the last duplicate wins, as torch).
template <typename T>
bool max_unpool2d_forward(const PoolParams& p, const T* x, const int64_t* idx, T* y, int64_t* bad);

// dx[plane][i] = dy[plane][idx[plane][i]]; dy is (N,C,OH,OW), dx and idx (N,C,H,W).
template <typename T>
bool max_unpool2d_backward(const PoolParams& p, const T* dy, const int64_t* idx, T* dx,
                           int64_t* bad);

namespace ref {
// Plain loops, torch's scan order; the definition the fast kernels are tested against.
template <typename T>
void max_pool2d_forward(const PoolParams& p, View4<const T> x, T* y, int64_t* idx);
}  // namespace ref

namespace avx2 {
// Only when active_isa() >= avx2, x.stride[3] == 1 and H*W < 2^31.
void max_pool2d_forward_f32(const PoolParams& p, View4<const float> x, float* y, int64_t* idx);
// One plane of max_pool2d_backward for 2x2 windows of column stride 2 without column
// padding, W / 2 output columns and windows whose rows do not overlap ((kh - 1) * dil_h <
// stride_h): dx computed in order, each value written once (see pool.cpp), in place when
// buf is null, else `rows` rows at a time in buf (rows * W values, zeros when first used)
// and streamed out. Returns how many indices named a position of their own window
// (OH * OW when all did: dx is then the plane's gradient).
int64_t max_pool2x2_backward_plane_f32(const PoolParams& p, const float* dy, const int64_t* idx,
                                       float* dx, float* buf, int64_t rows);
// memcpy with non-temporal stores (dst and src 4-byte aligned, bytes a multiple of 4).
void stream_copy(void* dst, const void* src, size_t bytes);
}  // namespace avx2

}  // namespace pyconv
