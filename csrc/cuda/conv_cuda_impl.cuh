// conv2d as implicit GEMM on CUDA cores: the launchers, as templates. The
// kernels and their argument setup are in conv_kernels.cuh; conv_cuda_f32.cu
// and conv_cuda_f64.cu instantiate them, two translation units that compile in
// parallel (this file's kernels dominate the build time).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

#include "cuda/conv_cuda.h"
#include "cuda/conv_kernels.cuh"

namespace pyconv::cuda {

using namespace kern;

namespace {

void check_launch(const char* op) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA kernel launch failed: " + cudaGetErrorString(e));
}

template <typename T, int MODE, typename Tl>
void launch_tile(const char* op, const IgemmArgs<T>& a, int splits, cudaStream_t stream) {
  const dim3 grid = igemm_grid<Tl>(a, splits);
  if (grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error(std::string(op) + ": too many groups or channels for the CUDA kernels");
  conv_igemm<T, MODE, Tl::BM, Tl::BN, Tl::BK, Tl::MINB><<<grid, THREADS, 0, stream>>>(a);
  check_launch(op);
}

template <typename T, int MODE>
void launch(const char* op, const IgemmArgs<T>& a, bool big, int splits, cudaStream_t stream) {
  if (a.M <= 0 || a.N <= 0) return;
  if constexpr (sizeof(T) == 4) {  // fp64 never takes the big tile (its registers would spill)
    if (big) return launch_tile<T, MODE, Tile128>(op, a, splits, stream);
  }
  launch_tile<T, MODE, Tile64>(op, a, splits, stream);
}

int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // 0 = not yet asked
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 80;
  }
  if (dev < kMaxDevices && (n = cache[dev].load(std::memory_order_relaxed)) > 0) return n;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) {
    cudaGetLastError();
    return 80;
  }
  if (dev < kMaxDevices) cache[dev].store(n, std::memory_order_relaxed);
  return n;
}

}  // namespace

template <typename T>
void conv2d_forward(const char* op, const ConvParams& p, View4<const T> x, View4<const T> w,
                    const T* bias, int64_t bias_stride, Activation act, T* y, T* preact,
                    cudaStream_t stream) {
  const IgemmArgs<T> a = fwd_args<T>(p, x, w, bias, bias_stride, act, y, preact);
  launch<T, kFwd>(op, a, use_tile128<T>(a.M, a.N, a.groups, sm_count(), false), 1, stream);
}

template <typename T>
void conv2d_backward_data(const char* op, const ConvParams& p, View4<const T> dy,
                          View4<const T> w, const T* bias, int64_t bias_stride, Activation act,
                          T* dx, T* preact, cudaStream_t stream) {
  const IgemmArgs<T> a = bwd_data_args<T>(p, dy, w, bias, bias_stride, act, dx, preact);
  launch<T, kBwdData>(op, a, use_tile128<T>(a.M, a.N, a.groups, sm_count(), false), 1, stream);
}

namespace {
template <typename T>
bool wgrad_tile128(const ConvParams& p) {
  return use_tile128<T>(static_cast<int>(p.Kg()), static_cast<int>(p.Cg() * p.R * p.S),
                        static_cast<int>(p.groups), sm_count(), true);
}
}  // namespace

template <typename T>
int conv2d_backward_weight_splits(const ConvParams& p) {
  return wgrad_tile128<T>(p) ? wgrad_splits<Tile128>(p, sm_count()) : wgrad_splits<Tile64>(p, sm_count());
}

template <typename T>
void conv2d_backward_weight(const char* op, const ConvParams& p, View4<const T> dy,
                            View4<const T> x, T* dw, int splits, T* workspace,
                            cudaStream_t stream) {
  splits = std::max(1, splits);
  IgemmArgs<T> a = bwd_weight_args<T>(p, dy, x, dw, splits, workspace);
  launch<T, kBwdWeight>(op, a, wgrad_tile128<T>(p), splits, stream);
  if (splits > 1) {
    const int64_t n = p.K * a.N;
    if (n == 0) return;
    const int blocks = static_cast<int>(std::min<int64_t>((n + THREADS - 1) / THREADS, 4096));
    sum_partials<T><<<blocks, THREADS, 0, stream>>>(workspace, splits, n, dw);
    check_launch(op);
  }
}
inline int conv2d_backward_bias_chunks_impl(const int64_t dy_shape[4]) {
  return bias_grad_chunks(dy_shape[0] * dy_shape[2] * dy_shape[3]);
}

template <typename T>
void conv2d_backward_bias(const char* op, View4<const T> dy, T* db, int chunks, T* workspace,
                          cudaStream_t stream) {
  const int64_t K = dy.size[1], total = dy.size[0] * dy.size[2] * dy.size[3];
  if (K == 0) return;
  chunks = std::max(1, chunks);
  const int64_t per = (total + chunks - 1) / chunks;
  const dim3 grid(static_cast<unsigned>(K), static_cast<unsigned>(chunks));
  T* out = chunks > 1 ? workspace : db;
  const FastDiv dpq(std::max<int64_t>(1, dy.size[2] * dy.size[3])), dq(std::max<int64_t>(1, dy.size[3]));
  if (total < (int64_t(1) << 31)) bias_grad<T, true><<<grid, THREADS, 0, stream>>>(dy, dpq, dq, per, out);
  else bias_grad<T, false><<<grid, THREADS, 0, stream>>>(dy, dpq, dq, per, out);
  check_launch(op);
  if (chunks > 1) {
    sum_partials<T><<<static_cast<unsigned>(std::min<int64_t>((K + THREADS - 1) / THREADS, 4096)), THREADS, 0,
                      stream>>>(workspace, chunks, K, db);
    check_launch(op);
  }
}

}  // namespace pyconv::cuda
