// Elementwise activations on CUDA, forward and backward: grid-stride loops,
// a contiguous fast path, memory-bound. Formulas in act_device.cuh.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/act_device.cuh"
#include "cuda/act_cuda.h"

namespace pyconv::cuda {

namespace {

constexpr int THREADS = 256;

bool contiguous(const Strided& s) {
  int64_t want = 1;
  for (int d = s.ndim - 1; d >= 0; --d) {
    if (s.size[d] != 1 && s.stride[d] != want) return false;
    want *= s.size[d];
  }
  return true;
}

__device__ __forceinline__ int64_t offset(const Strided& s, int64_t i) {
  int64_t off = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    off += (i % s.size[d]) * s.stride[d];
    i /= s.size[d];
  }
  return off;
}

template <typename T, bool CONTIG>
__global__ void act_fwd(ActKind kind, T param, const T* __restrict__ x, const Strided xs, int64_t n,
                        T* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = act_forward<T>(kind, param, x[CONTIG ? i : offset(xs, i)]);
}

// v is the forward's input x, or its output y when from_output (sigmoid, tanh).
template <typename T, bool CONTIG>
__global__ void act_bwd(ActKind kind, T param, bool from_output, const T* __restrict__ dy,
                        const Strided dys, const T* __restrict__ v, const Strided vs, int64_t n,
                        T* __restrict__ dx) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T g = dy[CONTIG ? i : offset(dys, i)], a = v[CONTIG ? i : offset(vs, i)];
    dx[i] = from_output ? act_backward_from_output<T>(kind, g, a) : act_backward<T>(kind, param, g, a);
  }
}

int64_t numel(const Strided& s) {
  int64_t n = 1;
  for (int d = 0; d < s.ndim; ++d) n *= s.size[d];
  return n;
}

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + THREADS - 1) / THREADS;
  return static_cast<unsigned>(b < 65536 * 8 ? b : 65536 * 8);
}

void check(const char* op) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA kernel launch failed: " + cudaGetErrorString(e));
}

}  // namespace

template <typename T>
void activation_forward(const char* op, Activation act, const T* x, Strided xs, T* y,
                        cudaStream_t stream) {
  const int64_t n = numel(xs);
  if (n == 0) return;
  const T param = static_cast<T>(act.param);
  if (contiguous(xs))
    act_fwd<T, true><<<blocks_for(n), THREADS, 0, stream>>>(act.kind, param, x, xs, n, y);
  else
    act_fwd<T, false><<<blocks_for(n), THREADS, 0, stream>>>(act.kind, param, x, xs, n, y);
  check(op);
}

template <typename T>
void activation_backward(const char* op, Activation act, bool from_output, const T* dy, Strided dys,
                         const T* v, Strided vs, T* dx, cudaStream_t stream) {
  const int64_t n = numel(vs);
  if (n == 0) return;
  const T param = static_cast<T>(act.param);
  if (contiguous(vs) && contiguous(dys))
    act_bwd<T, true><<<blocks_for(n), THREADS, 0, stream>>>(act.kind, param, from_output, dy, dys, v, vs, n, dx);
  else
    act_bwd<T, false><<<blocks_for(n), THREADS, 0, stream>>>(act.kind, param, from_output, dy, dys, v, vs, n, dx);
  check(op);
}

template void activation_forward<float>(const char*, Activation, const float*, Strided, float*, cudaStream_t);
template void activation_forward<double>(const char*, Activation, const double*, Strided, double*, cudaStream_t);
template void activation_backward<float>(const char*, Activation, bool, const float*, Strided,
                                         const float*, Strided, float*, cudaStream_t);
template void activation_backward<double>(const char*, Activation, bool, const double*, Strided,
                                          const double*, Strided, double*, cudaStream_t);

}  // namespace pyconv::cuda
