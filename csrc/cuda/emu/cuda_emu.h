// A CPU emulation of the CUDA execution model, just enough to compile the
// kernels of conv_kernels.cuh / pool_kernels.cuh / act_device.cuh as plain C++
// and run them: every block runs its threads as std::threads meeting at a
// std::barrier for __syncthreads(); blocks run one after another, so a
// function-static array stands for __shared__ memory. Slow and only for
// checking index arithmetic, tiling and synchronisation on small problems on
// machines without a GPU (tests/test_cuda.py builds and runs emu_check.cpp).
#pragma once
#define PYCONV_CUDA_EMU 1

#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

namespace emu {
inline thread_local dim3 tid, bid;
inline dim3 grid_dim, block_dim;
inline std::barrier<>* bar = nullptr;
inline std::mutex atomic_mutex;
}  // namespace emu

#define threadIdx (emu::tid)
#define blockIdx (emu::bid)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void emu_check_aligned(const void* p, int bytes) {
  if (reinterpret_cast<uintptr_t>(p) % bytes) {
    std::fprintf(stderr, "emu: misaligned %d-byte vector access at %p\n", bytes, p);
    std::abort();
  }
}

inline void __syncthreads() { emu::bar->arrive_and_wait(); }

inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  std::lock_guard<std::mutex> g(emu::atomic_mutex);
  unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}
inline int32_t atomicMax(int32_t* p, int32_t v) {
  std::lock_guard<std::mutex> g(emu::atomic_mutex);
  int32_t old = *p;
  if (v > old) *p = v;
  return old;
}

template <typename T>
inline T min(T a, T b) { return b < a ? b : a; }
template <typename T>
inline T max(T a, T b) { return a < b ? b : a; }
using std::erf;
using std::exp;
using std::expm1;
using std::fma;
using std::isnan;
using std::tanh;

// kernel<<<grid, block>>>(args...): one std::thread per CUDA thread of a
// block, reused for every block of the launch.
template <typename K, typename... Args>
void emu_launch(dim3 grid, dim3 block, K kernel, Args... args) {
  emu::grid_dim = grid;
  emu::block_dim = block;
  const unsigned nt = block.x * block.y * block.z;
  std::barrier<> start(nt + 1), done(nt + 1), sync(nt);
  emu::bar = &sync;
  dim3 cur;
  bool finished = false;
  std::vector<std::thread> ts;
  ts.reserve(nt);
  for (unsigned t = 0; t < nt; ++t)
    ts.emplace_back([&, t] {
      emu::tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      for (;;) {
        start.arrive_and_wait();
        if (finished) return;
        emu::bid = cur;
        kernel(args...);
        done.arrive_and_wait();
      }
    });
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        cur = dim3(x, y, z);
        start.arrive_and_wait();
        done.arrive_and_wait();
      }
  finished = true;
  start.arrive_and_wait();
  for (auto& th : ts) th.join();
}
