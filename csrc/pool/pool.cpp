// Max pooling / unpooling on the CPU: kernel selection, the reference forward,
// and the (memory-bound, scalar) scatter/gather kernels; the backward of 2x2 pools with
// stride 2 on rows of 24 columns and more by comparisons instead (max_pool_avx2.cpp).
#include "pool/pool.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/cpu.h"
#include "common/parallel.h"
#include "pool/pool_window.h"

namespace pyconv {

namespace ref {

template <typename T>
void max_pool2d_forward(const PoolParams& p, View4<const T> x, T* y, int64_t* idx) {
  const int64_t C = p.C, OH = p.OH, OW = p.OW;
#pragma omp parallel for collapse(2) schedule(static) \
    num_threads(threads_for(p.planes() * OH * OW * p.kh * p.kw))
  for (int64_t plane = 0; plane < p.planes(); ++plane)
    for (int64_t oh = 0; oh < OH; ++oh) {
      const T* xp = x.data + (plane / C) * x.stride[0] + (plane % C) * x.stride[1];
      T* yr = y + (plane * OH + oh) * OW;
      int64_t* ir = idx ? idx + (plane * OH + oh) * OW : nullptr;
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t k;
        max_pool_window(p, xp, x.stride[2], x.stride[3], oh, ow, yr[ow], k);
        if (ir) ir[ow] = k;
      }
    }
}

}  // namespace ref

template <typename T>
void max_pool2d_forward(const PoolParams& p, View4<const T> x, T* y, int64_t* idx) {
#if defined(PYCONV_X86)
  if constexpr (std::is_same_v<T, float>) {
    if (active_isa() >= Isa::avx2 && x.stride[3] == 1 && p.H * p.W < (int64_t(1) << 31)) {
      avx2::max_pool2d_forward_f32(p, x, y, idx);
      return;
    }
  }
#endif
  ref::max_pool2d_forward(p, x, y, idx);
}

template <typename T>
bool max_pool2d_backward(const PoolParams& p, const T* dy, const int64_t* idx, T* dx,
                         int64_t* bad) {
  const int64_t HW = p.H * p.W, OHW = p.OH * p.OW;
  // Large gradients are streamed out, so dx is written once without being read for
  // ownership: the scatter builds each plane that fits L2 in a scratch buffer first.
  bool stream = false, pairs = false;
#if defined(PYCONV_X86)
  stream = active_isa() >= Isa::avx2 && p.planes() * HW * int64_t(sizeof(T)) >= (int64_t(16) << 20);
  // 2x2 windows of stride 2 (columns) whose rows do not overlap: no two windows share a
  // position, so each position's gradient is its window's dy where the window's index
  // names it, else 0. Computed in order (AVX2 comparisons), each value written once,
  // where the scatter zeroes the plane and then adds into it: in place on gradients under
  // 16 MiB with rows of 24 columns and more (1.13-1.42x at 57 to 224 columns, 1.13-1.19x at
  // 32x32; rows of 16 and 8 columns ran 0.61-0.85x and 0.34-0.43x: the comparisons' work
  // per row); on larger gradients through a row buffer streamed out, for planes beyond L1
  // (1.16-1.33x at 112x112 and 224x224; 28x28 planes ran 0.89-0.90x that way, where the
  // scatter streams whole planes, 56x56 1.00-1.02x).
  if constexpr (std::is_same_v<T, float>)
    pairs = active_isa() >= Isa::avx2 && p.kw == 2 && p.stride_w == 2 && p.dil_w == 1 &&
            p.pad_w == 0 && p.OW == p.W / 2 && (p.kh - 1) * p.dil_h < p.stride_h &&
            (stream ? HW * int64_t(sizeof(T)) > (int64_t(32) << 10) : p.W >= 24);
#endif
  const bool scatter_stream = stream && HW * int64_t(sizeof(T)) <= (int64_t(256) << 10);
  const int64_t rows = std::max<int64_t>(1, (int64_t(16) << 10) / (int64_t(sizeof(T)) * p.W));
  // Streamed, small planes go out in runs of consecutive planes of up to 16 KiB (scattered
  // within L1; runs of 64 KiB lost 0.88x on 28x28 planes): one plane at a time, a 7x7
  // plane's 196 bytes left partial lines in the write-combining buffers and a fence behind
  // each (GoogLeNet's 3x3 pools of 832 x 7x7 planes at batch 128 5.6-5.8x slower, AlexNet's
  // 13x13 4.8-4.9x). (Pairs stream only planes over 32 KiB: runs of one.)
  const int64_t run = scatter_stream
                          ? std::max<int64_t>(1, (int64_t(16) << 10) / (HW * int64_t(sizeof(T))))
                          : 1;
  const int64_t nrun = (p.planes() + run - 1) / run;
  int64_t first_bad = 0;
  bool ok = true;
#pragma omp parallel num_threads(threads_for(p.planes() * (HW + OHW)))
  {
    std::vector<T> scratch(scatter_stream ? run * HW : 0), buf(pairs && stream ? rows * p.W : 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < nrun; ++r) {
      const int64_t p0 = r * run, p1 = std::min(p.planes(), p0 + run);
      bool scattered = false;  // (a plane the pairs kernel took is its run of one)
      for (int64_t plane = p0; plane < p1; ++plane) {
        T* out = dx + plane * HW;
        const T* d = dy + plane * OHW;
        const int64_t* k = idx + plane * OHW;
#if defined(PYCONV_X86)
        // A plane whose indices do not all name positions of their own windows (not from
        // this pooling) is scattered below, like any other.
        if constexpr (std::is_same_v<T, float>)
          if (pairs && avx2::max_pool2x2_backward_plane_f32(
                           p, d, k, out, stream ? buf.data() : nullptr, rows) == OHW)
            continue;
#endif
        T* g = scatter_stream ? scratch.data() + (plane - p0) * HW : out;
        scattered = true;
        std::memset(g, 0, sizeof(T) * HW);
        for (int64_t i = 0; i < OHW; ++i) {
          const int64_t j = k[i];
          if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(HW)) {
#pragma omp critical(pyconv_pool_bad)
            if (ok) { ok = false; first_bad = j; }
            break;
          }
          g[j] += d[i];
        }
      }
#if defined(PYCONV_X86)
      if (scatter_stream && scattered)
        avx2::stream_copy(dx + p0 * HW, scratch.data(), (p1 - p0) * HW * sizeof(T));
#endif
    }
  }
  if (!ok) *bad = first_bad;
  return ok;
}

template <typename T>
bool max_unpool2d_forward(const PoolParams& p, const T* x, const int64_t* idx, T* y,
                          int64_t* bad) {
  const int64_t HW = p.H * p.W, OHW = p.OH * p.OW;
  int64_t first_bad = 0;
  bool ok = true;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.planes() * (HW + OHW)))
  for (int64_t plane = 0; plane < p.planes(); ++plane) {
    T* o = y + plane * OHW;
    const T* v = x + plane * HW;
    const int64_t* k = idx + plane * HW;
    std::memset(o, 0, sizeof(T) * OHW);
    for (int64_t i = 0; i < HW; ++i) {
      const int64_t j = k[i];
      if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(OHW)) {
#pragma omp critical(pyconv_pool_bad)
        if (ok) { ok = false; first_bad = j; }
        break;
      }
      o[j] = v[i];
    }
  }
  if (!ok) *bad = first_bad;
  return ok;
}

template <typename T>
bool max_unpool2d_backward(const PoolParams& p, const T* dy, const int64_t* idx, T* dx,
                           int64_t* bad) {
  const int64_t HW = p.H * p.W, OHW = p.OH * p.OW;
  int64_t first_bad = 0;
  bool ok = true;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.planes() * (HW + OHW)))
  for (int64_t plane = 0; plane < p.planes(); ++plane) {
    const T* g = dy + plane * OHW;
    T* o = dx + plane * HW;
    const int64_t* k = idx + plane * HW;
    for (int64_t i = 0; i < HW; ++i) {
      const int64_t j = k[i];
      if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(OHW)) {
#pragma omp critical(pyconv_pool_bad)
        if (ok) { ok = false; first_bad = j; }
        break;
      }
      o[i] = g[j];
    }
  }
  if (!ok) *bad = first_bad;
  return ok;
}

#define PYCONV_INSTANTIATE(T)                                                                 \
  template void max_pool2d_forward<T>(const PoolParams&, View4<const T>, T*, int64_t*);      \
  template void ref::max_pool2d_forward<T>(const PoolParams&, View4<const T>, T*, int64_t*); \
  template bool max_pool2d_backward<T>(const PoolParams&, const T*, const int64_t*, T*,      \
                                       int64_t*);                                           \
  template bool max_unpool2d_forward<T>(const PoolParams&, const T*, const int64_t*, T*,     \
                                        int64_t*);                                          \
  template bool max_unpool2d_backward<T>(const PoolParams&, const T*, const int64_t*, T*,    \
                                         int64_t*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv
