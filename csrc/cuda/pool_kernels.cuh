// The max-pool / unpool CUDA kernels, apart from their launchers
// (pool_cuda.cu) so that they also compile under csrc/cuda/emu/cuda_emu.h.
#pragma once
#ifndef PYCONV_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstdint>

#include "common/tensor.h"
#include "cuda/fastdiv.cuh"
#include "pool/pool_params.h"

namespace pyconv::cuda::kern {

// Divisors of the flat index decompositions; every divisor is < 2^31.
struct PoolDivs {
  FastDiv OW, OH, W, H, C, HW, OHW;
  explicit PoolDivs(const PoolParams& p)
      : OW(p.OW), OH(p.OH), W(p.W), H(p.H), C(p.C), HW(p.H * p.W), OHW(p.OH * p.OW) {}
  PoolDivs() = default;
};

#define GRID_STRIDE(i, n)                                                          \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);        \
       i += int64_t(gridDim.x) * blockDim.x)

// As pool_window.h (ATen's scan): rows then columns, start at -inf with the
// index of the first valid tap, replace when v > max || isnan(v).
template <typename T, bool SMALL>
__global__ void max_pool_fwd(const PoolParams p, const PoolDivs dv, View4<const T> x,
                             T* __restrict__ y, int64_t* __restrict__ idx) {
  const int64_t total = p.N * p.C * p.OH * p.OW;
  GRID_STRIDE(i, total) {
    const int64_t t1 = div_by<SMALL>(dv.OW, i), ow = i - t1 * p.OW;
    const int64_t plane = div_by<SMALL>(dv.OH, t1), oh = t1 - plane * p.OH;
    const int64_t n = div_by<SMALL>(dv.C, plane), c = plane - n * p.C;
    const T* xp = x.data + n * x.stride[0] + c * x.stride[1];
    int64_t ih0 = oh * p.stride_h - p.pad_h, iw0 = ow * p.stride_w - p.pad_w;
    const int64_t ih1 = min(ih0 + (p.kh - 1) * p.dil_h + 1, p.H);
    const int64_t iw1 = min(iw0 + (p.kw - 1) * p.dil_w + 1, p.W);
    while (ih0 < 0) ih0 += p.dil_h;
    while (iw0 < 0) iw0 += p.dil_w;
    int64_t maxidx = ih0 * p.W + iw0;
    T maxval = -INFINITY;
    for (int64_t ih = ih0; ih < ih1; ih += p.dil_h)
      for (int64_t iw = iw0; iw < iw1; iw += p.dil_w) {
        const T v = xp[ih * x.stride[2] + iw * x.stride[3]];
        if (v > maxval || isnan(v)) {
          maxval = v;
          maxidx = ih * p.W + iw;
        }
      }
    y[i] = maxval;
    if (idx) idx[i] = maxidx;
  }
}

__device__ __forceinline__ void report_bad(int64_t* flag, int64_t pos) {
  atomicMin(reinterpret_cast<unsigned long long*>(flag), static_cast<unsigned long long>(pos));
}

// Every index must lie in [0, H*W) and inside its own window.
template <bool SMALL>
__global__ void max_pool_check(const PoolParams p, const PoolDivs dv, View4<const int64_t> idx,
                               int64_t* flag) {
  const int64_t total = p.N * p.C * p.OH * p.OW;
  GRID_STRIDE(i, total) {
    const int64_t t1 = div_by<SMALL>(dv.OW, i), ow = i - t1 * p.OW;
    const int64_t plane = div_by<SMALL>(dv.OH, t1), oh = t1 - plane * p.OH;
    const int64_t n = div_by<SMALL>(dv.C, plane), c = plane - n * p.C;
    const int64_t j = idx.data[n * idx.stride[0] + c * idx.stride[1] + oh * idx.stride[2] + ow * idx.stride[3]];
    bool ok = j >= 0 && j < p.H * p.W;
    if (ok) {
      const int64_t jh = div_by<SMALL>(dv.W, j);
      const int64_t dh = jh - (oh * p.stride_h - p.pad_h), dw = (j - jh * p.W) - (ow * p.stride_w - p.pad_w);
      ok = dh >= 0 && dw >= 0 && dh % p.dil_h == 0 && dw % p.dil_w == 0 && dh / p.dil_h < p.kh &&
           dw / p.dil_w < p.kw;
    }
    if (!ok) report_bad(flag, i);
  }
}

template <typename T, bool SMALL>
__global__ void max_pool_bwd(const PoolParams p, const PoolDivs dv, View4<const T> dy,
                             View4<const int64_t> idx, T* __restrict__ dx) {
  const int64_t total = p.N * p.C * p.H * p.W;
  GRID_STRIDE(i, total) {
    const int64_t t1 = div_by<SMALL>(dv.W, i), w = i - t1 * p.W;
    const int64_t plane = div_by<SMALL>(dv.H, t1), h = t1 - plane * p.H;
    const int64_t n = div_by<SMALL>(dv.C, plane), c = plane - n * p.C;
    const int64_t me = h * p.W + w;
    const T* d = dy.data + n * dy.stride[0] + c * dy.stride[1];
    const int64_t* k = idx.data + n * idx.stride[0] + c * idx.stride[1];
    T s = T(0);
    // Windows containing (h, w), in ascending (oh, ow): kernel taps descending.
    for (int64_t r = p.kh - 1; r >= 0; --r) {
      const int64_t th = h + p.pad_h - r * p.dil_h;
      if (th < 0 || th % p.stride_h) continue;
      const int64_t oh = th / p.stride_h;
      if (oh >= p.OH) continue;
      for (int64_t q = p.kw - 1; q >= 0; --q) {
        const int64_t tw = w + p.pad_w - q * p.dil_w;
        if (tw < 0 || tw % p.stride_w) continue;
        const int64_t ow = tw / p.stride_w;
        if (ow >= p.OW) continue;
        if (k[oh * idx.stride[2] + ow * idx.stride[3]] == me) s += d[oh * dy.stride[2] + ow * dy.stride[3]];
      }
    }
    dx[i] = s;
  }
}

// Pass 1 of unpool: the last input position (in plane order) that targets each output.
template <bool SMALL>
__global__ void unpool_winner(const PoolParams p, const PoolDivs dv, View4<const int64_t> idx,
                              int32_t* winner, int64_t* flag) {
  const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, total = p.N * p.C * HW;
  GRID_STRIDE(i, total) {
    const int64_t plane = div_by<SMALL>(dv.HW, i), hw = i - plane * HW;
    const int64_t n = div_by<SMALL>(dv.C, plane), c = plane - n * p.C;
    const int64_t h = div_by<SMALL>(dv.W, hw), w = hw - h * p.W;
    const int64_t j = idx.data[n * idx.stride[0] + c * idx.stride[1] + h * idx.stride[2] + w * idx.stride[3]];
    if (j < 0 || j >= OHW) report_bad(flag, i);
    else atomicMax(winner + plane * OHW + j, static_cast<int32_t>(hw));
  }
}

template <typename T, bool SMALL>
__global__ void unpool_write(const PoolParams p, const PoolDivs dv, View4<const T> x,
                             View4<const int64_t> idx, const int32_t* winner, T* __restrict__ y) {
  const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, total = p.N * p.C * HW;
  GRID_STRIDE(i, total) {
    const int64_t plane = div_by<SMALL>(dv.HW, i), hw = i - plane * HW;
    const int64_t n = div_by<SMALL>(dv.C, plane), c = plane - n * p.C;
    const int64_t h = div_by<SMALL>(dv.W, hw), w = hw - h * p.W;
    const int64_t j = idx.data[n * idx.stride[0] + c * idx.stride[1] + h * idx.stride[2] + w * idx.stride[3]];
    if (j < 0 || j >= OHW || winner[plane * OHW + j] != hw) continue;
    y[plane * OHW + j] = x.data[n * x.stride[0] + c * x.stride[1] + h * x.stride[2] + w * x.stride[3]];
  }
}

template <typename T, bool SMALL>
__global__ void unpool_bwd(const PoolParams p, const PoolDivs dv, View4<const T> dy,
                           View4<const int64_t> idx, T* __restrict__ dx, int64_t* flag) {
  const int64_t HW = p.H * p.W, OHW = p.OH * p.OW, total = p.N * p.C * HW;
  GRID_STRIDE(i, total) {
    const int64_t plane = div_by<SMALL>(dv.HW, i), hw = i - plane * HW;
    const int64_t n = div_by<SMALL>(dv.C, plane), c = plane - n * p.C;
    const int64_t h = div_by<SMALL>(dv.W, hw), w = hw - h * p.W;
    const int64_t j = idx.data[n * idx.stride[0] + c * idx.stride[1] + h * idx.stride[2] + w * idx.stride[3]];
    if (j < 0 || j >= OHW) {
      report_bad(flag, i);
      dx[i] = T(0);
      continue;
    }
    const int64_t jh = div_by<SMALL>(dv.OW, j);
    dx[i] = dy.data[n * dy.stride[0] + c * dy.stride[1] + jh * dy.stride[2] + (j - jh * p.OW) * dy.stride[3]];
  }
}

}  // namespace pyconv::cuda::kern
