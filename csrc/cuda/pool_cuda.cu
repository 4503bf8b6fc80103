// Max pooling and unpooling on CUDA, the launchers: one thread per output
// element (forward) or per input element (backward, unpool), grid-stride loops.
// Memory-bound; see pool_cuda.h for how each stays deterministic.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/pool_cuda.h"
#include "cuda/pool_kernels.cuh"

namespace pyconv::cuda {

using namespace kern;

namespace {

constexpr int THREADS = 256;

void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string(op) + ": CUDA error: " + cudaGetErrorString(e));
  }
}

// Flat indices below 2^31 take the 32-bit multiply-shift decompositions.
bool small(int64_t n) { return n < (int64_t(1) << 31); }

unsigned blocks_for(int64_t n) {
  int64_t b = (n + THREADS - 1) / THREADS;
  return static_cast<unsigned>(b < 65536 * 8 ? (b > 0 ? b : 1) : 65536 * 8);
}

void flag_reset(int64_t* flag, const char* op, cudaStream_t s) {
  check(cudaMemsetAsync(flag, 0xff, sizeof(int64_t), s), op);  // "no bad position"
}

int64_t flag_read(int64_t* flag, const char* op, cudaStream_t s) {
  int64_t v = -1;
  check(cudaMemcpyAsync(&v, flag, sizeof(v), cudaMemcpyDeviceToHost, s), op);
  check(cudaStreamSynchronize(s), op);
  return v;  // all ones = -1 = none
}

}  // namespace

template <typename T>
void max_pool2d_forward(const char* op, const PoolParams& p, View4<const T> x, T* y, int64_t* idx,
                        cudaStream_t stream) {
  const int64_t n = p.N * p.C * p.OH * p.OW;
  if (n == 0) return;
  const PoolDivs dv(p);
  if (small(n)) max_pool_fwd<T, true><<<blocks_for(n), THREADS, 0, stream>>>(p, dv, x, y, idx);
  else max_pool_fwd<T, false><<<blocks_for(n), THREADS, 0, stream>>>(p, dv, x, y, idx);
  check(cudaGetLastError(), op);
}

template <typename T>
void max_pool2d_backward(const char* op, const PoolParams& p, View4<const T> dy,
                         View4<const int64_t> idx, T* dx, int64_t* flag, int64_t* bad_pos,
                         cudaStream_t stream) {
  *bad_pos = -1;
  const int64_t n_out = p.N * p.C * p.OH * p.OW, n_in = p.N * p.C * p.H * p.W;
  if (n_in == 0) return;
  const PoolDivs dv(p);
  if (n_out > 0) {
    flag_reset(flag, op, stream);
    if (small(n_out)) max_pool_check<true><<<blocks_for(n_out), THREADS, 0, stream>>>(p, dv, idx, flag);
    else max_pool_check<false><<<blocks_for(n_out), THREADS, 0, stream>>>(p, dv, idx, flag);
    check(cudaGetLastError(), op);
  }
  if (small(n_in)) max_pool_bwd<T, true><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, dy, idx, dx);
  else max_pool_bwd<T, false><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, dy, idx, dx);
  check(cudaGetLastError(), op);
  if (n_out > 0) *bad_pos = flag_read(flag, op, stream);
}

template <typename T>
void max_unpool2d_forward(const char* op, const PoolParams& p, View4<const T> x,
                          View4<const int64_t> idx, T* y, int32_t* winner, int64_t* flag,
                          int64_t* bad_pos, cudaStream_t stream) {
  *bad_pos = -1;
  const int64_t n_in = p.N * p.C * p.H * p.W, n_out = p.N * p.C * p.OH * p.OW;
  if (n_out == 0) return;
  check(cudaMemsetAsync(y, 0, sizeof(T) * n_out, stream), op);
  if (n_in == 0) return;
  check(cudaMemsetAsync(winner, 0xff, sizeof(int32_t) * n_out, stream), op);
  flag_reset(flag, op, stream);
  const PoolDivs dv(p);
  if (small(n_in)) unpool_winner<true><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, idx, winner, flag);
  else unpool_winner<false><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, idx, winner, flag);
  check(cudaGetLastError(), op);
  if (small(n_in)) unpool_write<T, true><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, x, idx, winner, y);
  else unpool_write<T, false><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, x, idx, winner, y);
  check(cudaGetLastError(), op);
  *bad_pos = flag_read(flag, op, stream);
}

template <typename T>
void max_unpool2d_backward(const char* op, const PoolParams& p, View4<const T> dy,
                           View4<const int64_t> idx, T* dx, int64_t* flag, int64_t* bad_pos,
                           cudaStream_t stream) {
  *bad_pos = -1;
  const int64_t n_in = p.N * p.C * p.H * p.W;
  if (n_in == 0) return;
  flag_reset(flag, op, stream);
  const PoolDivs dv(p);
  if (small(n_in)) unpool_bwd<T, true><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, dy, idx, dx, flag);
  else unpool_bwd<T, false><<<blocks_for(n_in), THREADS, 0, stream>>>(p, dv, dy, idx, dx, flag);
  check(cudaGetLastError(), op);
  *bad_pos = flag_read(flag, op, stream);
}

#define PYCONV_INSTANTIATE(T)                                                                    \
  template void max_pool2d_forward<T>(const char*, const PoolParams&, View4<const T>, T*,        \
                                      int64_t*, cudaStream_t);                                   \
  template void max_pool2d_backward<T>(const char*, const PoolParams&, View4<const T>,           \
                                       View4<const int64_t>, T*, int64_t*, int64_t*,             \
                                       cudaStream_t);                                            \
  template void max_unpool2d_forward<T>(const char*, const PoolParams&, View4<const T>,          \
                                        View4<const int64_t>, T*, int32_t*, int64_t*, int64_t*,  \
                                        cudaStream_t);                                           \
  template void max_unpool2d_backward<T>(const char*, const PoolParams&, View4<const T>,         \
                                         View4<const int64_t>, T*, int64_t*, int64_t*,           \
                                         cudaStream_t);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::cuda
