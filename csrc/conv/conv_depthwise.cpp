// Depthwise conv2d (groups == C == K): direct kernels over one (n, c) plane at
// a time (depthwise_plane.h), vectorised along W, AVX2+FMA builds where the CPU
// allows; float kernels up to 7x7 by sixteen channels at a time on AVX-512, then eight on
// AVX2 (depthwise_lanes.h, lanes = channels). Each output element is reduced in a fixed
// order by one thread.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "act/act.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "common/cpu.h"

#if defined(PYCONV_X86)
namespace pyconv::avx2 {
#define PYCONV_DW_DECLARE(T)                                                                    \
  bool dw_fwd_plane_##T(const void*, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*, \
                        const void*);                                                           \
  void dw_bwd_data_plane_##T(const void*, const T*, int64_t, int64_t, const T*, int64_t,        \
                             int64_t, T*);                                                      \
  void dw_bwd_weight_plane_##T(const void*, const T*, int64_t, int64_t, const T*, int64_t,      \
                               int64_t, T*);                                                    \
  void bias_plane_##T(const T*, int64_t, int64_t, int64_t, double*);
PYCONV_DW_DECLARE(float)
PYCONV_DW_DECLARE(double)
#undef PYCONV_DW_DECLARE
}  // namespace pyconv::avx2
#include "conv/depthwise_lanes.h"
#endif

namespace pyconv::fast {

namespace {
#include "conv/depthwise_plane.h"

// Plane kernels of the active ISA (the baseline build of depthwise_plane.h or the AVX2 one).
template <typename T>
struct DwPlanes {
  bool (*fwd)(const void*, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*,
              const void*);  // (the DwEpi to apply: whether it did)
  void (*bwd_data)(const void*, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*);
  void (*bwd_weight)(const void*, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*);
};

template <typename T>
bool fwd_base(const void* g, const T* x, int64_t a, int64_t b, const T* w, int64_t c, int64_t d,
              T* y, const void* e) {
  return dw_fwd_plane<T>(*static_cast<const DwGeom*>(g), x, a, b, w, c, d, y,
                         static_cast<const DwEpi*>(e));
}
template <typename T>
void bwd_data_base(const void* g, const T* dy, int64_t a, int64_t b, const T* w, int64_t c,
                   int64_t d, T* dx) {
  dw_bwd_data_plane<T>(*static_cast<const DwGeom*>(g), dy, a, b, w, c, d, dx);
}
template <typename T>
void bwd_weight_base(const void* g, const T* dy, int64_t a, int64_t b, const T* x, int64_t c,
                     int64_t d, T* acc) {
  dw_bwd_weight_plane<T>(*static_cast<const DwGeom*>(g), dy, a, b, x, c, d, acc);
}

template <typename T>
DwPlanes<T> dw_planes() {
#if defined(PYCONV_X86)
  if (active_isa() >= Isa::avx2) {
    if constexpr (std::is_same_v<T, float>)
      return {avx2::dw_fwd_plane_float, avx2::dw_bwd_data_plane_float,
              avx2::dw_bwd_weight_plane_float};
    else
      return {avx2::dw_fwd_plane_double, avx2::dw_bwd_data_plane_double,
              avx2::dw_bwd_weight_plane_double};
  }
#endif
  return {fwd_base<T>, bwd_data_base<T>, bwd_weight_base<T>};
}

// Dynamic scheduling in chunks of planes: each plane (or channel, for the weight
// gradient) is still reduced by one thread in a fixed order, so results do not
// depend on the schedule, but a thread delayed by the OS no longer holds up the
// whole region with its static share. Two chunks a thread, not eight: runs of
// neighbouring planes (contiguous in memory) stay on one thread (old/new alternated, 2
// threads, Intel Xeon: 512 channels at 14x14 forward 1.07-1.15x, backward-data
// 1.07x, 256 at 28x28 stride 2 1.03-1.09x, 1024 at 7x7 1.04x; 32-128 channels at
// 56x56-112x112 and the weight gradients 0.99-1.01x).
int64_t dw_chunk(int64_t items) {
  const int64_t nt = num_threads();
  const int64_t c = items / (nt * 2);
  return c < 1 ? 1 : c;
}

DwGeom geom(const ConvParams& p) {
  return {p.H, p.W, p.P, p.Q, p.R, p.S, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_top,
          p.pad_left};
}

#if defined(PYCONV_X86)
// The lane kernels (depthwise_lanes.h): float, up to 7x7, unit column strides, groups of 16
// channels on AVX-512, then of 8 on AVX2 (the rest by the per-plane kernels), rows of up to
// about 1300 columns.
// Eight lanes against the per-plane kernels (forward and backward-data: the same FMAs in the
// same order, the same bits), same process, 2 threads, batch 4, alternated call by call (Zen
// 4): 14x14 1.4-2.1x, 7x7 1.4-2.1x, 28x28 stride 2 1.5-2.2x, 112x112 stride 2 1.1-1.5x
// (weight gradient 2.3-2.6x), 5x5 3.8-9.4x (the per-plane kernels' scalar loop); stride-1
// planes of 56x56 0.92-1.47x and 112x112 0.91-1.80x with the data in L3, by the machine's
// phase (one thread: 0.97-1.02x and 0.84-0.92x), 1.65x in the bench (torch's calls between:
// the data from DRAM).
struct DwLanes {
  int L;
  int64_t (*buffer)(const DwlGeom&);
  int64_t (*dy_buffer)(const DwlGeom&);
  int64_t (*s2_buffer)(const DwlGeom&);
  void (*forward)(const DwlGeom&, const float*, int64_t, int64_t, const float*, const float*,
                  bool, float*, int64_t, float*, int64_t, int64_t);
  void (*backward_data_s2)(const DwlGeom&, const float*, int64_t, int64_t, const float*, float*,
                           int64_t, float*, int64_t, int64_t);
  void (*backward_weight)(const DwlGeom&, const float*, int64_t, int64_t, const float*, int64_t,
                          int64_t, float*, float*, float*);
};
constexpr DwLanes kLanes16{16, avx512::dwl_buffer, avx512::dwl_dy_buffer,
                           avx512::dwl_s2_buffer, avx512::dwl_forward,
                           avx512::dwl_backward_data_s2, avx512::dwl_backward_weight};
constexpr DwLanes kLanes8{8, avx2::dwl_buffer, avx2::dwl_dy_buffer, avx2::dwl_s2_buffer,
                          avx2::dwl_forward, avx2::dwl_backward_data_s2,
                          avx2::dwl_backward_weight};

// The forward's geometry (the kernels' correlation of x into y).
DwlGeom geom_lanes(const ConvParams& p) {
  return {p.H, p.W, p.P, p.Q, p.R, p.S, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_top,
          p.pad_left};
}

// fn(k, c0, ng, nb) for the channels the lane kernels take, in order: ng groups of k.L
// channels from c0, 16 at a time on AVX-512, then 8 (AVX2 and up), while whole groups remain
// and k's buffer need(k) (floats; 0: the geometry does not fit it) allows; s3a, s3b the column
// strides of the arrays they read (unit only). Returns the first channel left to the
// per-plane kernels (0 for double).
template <typename T, class Need, class Fn>
int64_t by_lanes(int64_t C, int64_t s3a, int64_t s3b, Need&& need, Fn&& fn) {
  int64_t c = 0;
  if (!std::is_same_v<T, float> || s3a != 1 || s3b != 1) return c;
  for (const DwLanes* k : {&kLanes16, &kLanes8}) {
    if (active_isa() < (k->L == 16 ? Isa::avx512 : Isa::avx2)) continue;
    const int64_t ng = (C - c) / k->L, nb = ng > 0 ? need(*k) : 0;
    if (nb <= 0) continue;
    fn(*k, c, ng, nb);
    c += ng * k->L;
  }
  return c;
}

// n floats, 64-byte aligned, per thread (reused across calls).
float* dwl_scratch(int slot, int64_t n) {
  thread_local std::vector<float> v[2];
  v[slot].resize(static_cast<size_t>(n + 16));
  const auto a = reinterpret_cast<uintptr_t>(v[slot].data());
  return reinterpret_cast<float*>((a + 63) & ~uintptr_t(63));
}

// wv[gi*RS*L + t*L + l] = w[c0 + gi*L + l][r][s] (t = r*S + s; flipped: w[..][R-1 - r][S-1 -
// s]) for ng groups of L channels.
template <typename T>
std::vector<float> lane_weights(View4<const T> w, int64_t c0, int64_t ng, int L, bool flip) {
  const int64_t R = w.size[2], S = w.size[3], RS = R * S;
  std::vector<float> wv(static_cast<size_t>(ng * L * RS + L));
  for (int64_t c = 0; c < ng * L; ++c)
    for (int64_t t = 0; t < RS; ++t) {
      const int64_t r = flip ? R - 1 - t / S : t / S, s = flip ? S - 1 - t % S : t % S;
      wv[static_cast<size_t>(c / L * RS * L + t * L + c % L)] = static_cast<float>(
          w.data[(c0 + c) * w.stride[0] + r * w.stride[2] + s * w.stride[3]]);
    }
  return wv;
}

// fn(n, gi, r0, r1, buf) for images n < N, groups of channels gi < G and, when that gives
// under two tasks a thread, parts [r0, r1) of the rows (0 .. rows) split evenly (batch 1 at
// 32 channels is four groups of eight: a many-core machine would wait on them; with 2
// threads a split measured 0.94-1.08x, so it is kept for too few tasks); dynamic chunks of
// tasks. buf: nb floats of the calling thread, zeroed once (the interleaved band's border,
// which no source pixel lands on, stays zero across the thread's tasks). A row's values do
// not depend on the split.
template <class Fn>
void dwl_tasks(int64_t N, int64_t G, int64_t rows, int64_t nb, Fn&& fn) {
  const int64_t want = 2 * num_threads(), have = std::max<int64_t>(1, N * G);
  const int64_t parts = std::min(std::max<int64_t>(1, rows / 4), (want + have - 1) / have);
#pragma omp parallel num_threads(num_threads())
  {
    float* buf = dwl_scratch(0, nb);
    std::fill(buf, buf + nb, 0.0f);
#pragma omp for collapse(3) schedule(dynamic, dw_chunk(N * G * parts))
    for (int64_t n = 0; n < N; ++n)
      for (int64_t gi = 0; gi < G; ++gi)
        for (int64_t q = 0; q < parts; ++q)
          fn(n, gi, rows * q / parts, rows * (q + 1) / parts, buf);
  }
}

// y planes (n, c) of the channels of ng groups of k.L from c0 (each P x Q) by k.forward of x
// (planes of the geometry's source) with the weights wv (lane_weights), nb floats of buffer;
// the epilogue per plane where the kernel does not apply it (in_kernel: bias and relu only).
template <typename T>
void lanes_forward(const DwLanes& k, const DwlGeom& g, int64_t c0, int64_t ng, int64_t nb,
                   int64_t N, int64_t C, View4<const T> x, const std::vector<float>& wv,
                   const T* bias, bool in_kernel, Activation act, T* y, T* preact) {
  if constexpr (std::is_same_v<T, float>) {
    const int64_t PQ = g.P * g.Q, L = k.L;
    const bool epi = !in_kernel && (bias || preact || act.kind != ActKind::none);
    dwl_tasks(N, ng, g.P, nb, [&](int64_t n, int64_t gi, int64_t r0, int64_t r1, float* buf) {
      const int64_t cg = c0 + gi * L;
      k.forward(g, x.data + n * x.stride[0] + cg * x.stride[1], x.stride[1], x.stride[2],
                wv.data() + gi * L * g.R * g.S, in_kernel && bias ? bias + cg : nullptr,
                in_kernel && act.kind == ActKind::relu, y + (n * C + cg) * PQ, PQ, buf, r0,
                r1);
      if (epi)
        for (int64_t c = cg; c < cg + L; ++c) {
          const int64_t o = (n * C + c) * PQ + r0 * g.Q, len = (r1 - r0) * g.Q;
          bias_activation_serial(act, EpilogueBlock<T>{y + o, 0, y + o, 0, 1, len,
                                                       bias ? bias + c : nullptr, 0, 0,
                                                       preact ? preact + o : nullptr});
        }
    });
  }
}
#endif

}  // namespace

template <typename T>
void depthwise_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                       Activation act, T* y, T* preact) {
  const int64_t C = p.C, PQ = p.P * p.Q;
  const DwPlanes<T> k = dw_planes<T>();
  const DwGeom g = geom(p);
  const int64_t chunk = dw_chunk(p.N * C);
  // Bias and relu (float, no pre-activation asked for) go to the kernels' stores.
  const bool relu = act.kind == ActKind::relu;
  const bool in_kernel = std::is_same_v<T, float> && !preact &&
                         (relu || (act.kind == ActKind::none && bias));
  int64_t c_lo = 0;  // channels below c_lo: done by the lane kernels
#if defined(PYCONV_X86)
  const DwlGeom gl = geom_lanes(p);
  c_lo = by_lanes<T>(C, x.stride[3], 1, [&](const DwLanes& kl) { return kl.buffer(gl); },
                     [&](const DwLanes& kl, int64_t c0, int64_t ng, int64_t nb) {
    lanes_forward(kl, gl, c0, ng, nb, p.N, C, x, lane_weights(w, c0, ng, kl.L, false), bias,
                  in_kernel, act, y, preact);
  });
  if (c_lo == C) return;
#endif
#pragma omp parallel for collapse(2) schedule(dynamic, chunk) num_threads(num_threads())
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = c_lo; c < C; ++c) {
      T* yp = y + (n * C + c) * PQ;
      const DwEpi e{bias ? static_cast<float>(bias[c]) : 0.0f, bias != nullptr, relu};
      const bool done = k.fwd(&g, x.data + n * x.stride[0] + c * x.stride[1], x.stride[2],
                              x.stride[3], w.data + c * w.stride[0], w.stride[2], w.stride[3],
                              yp, in_kernel ? &e : nullptr) && in_kernel;
      // Else the epilogue on the plane just written (still in L1).
      if (!done && (bias || preact || act.kind != ActKind::none))
        bias_activation_serial(act, EpilogueBlock<T>{yp, 0, yp, 0, 1, PQ,
                                                     bias ? bias + c : nullptr, 0, 0,
                                                     preact ? preact + (n * C + c) * PQ : nullptr});
    }
}

template <typename T>
void depthwise_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  const int64_t C = p.C, HW = p.H * p.W;
  const DwPlanes<T> k = dw_planes<T>();
  const DwGeom g = geom(p);
  const int64_t chunk = dw_chunk(p.N * C);
  int64_t c_lo = 0;
#if defined(PYCONV_X86)
  if (p.stride_h == 1 && p.stride_w == 1) {
    // Stride 1: dx is the correlation of dy with the flipped filter, padded by
    // (R - 1)*dh - pt (a negative padding crops: the lane kernels copy only the rows they
    // read).
    const DwlGeom gl{p.P, p.Q, p.H, p.W, p.R, p.S, 1, 1, p.dil_h, p.dil_w,
                     (p.R - 1) * p.dil_h - p.pad_top, (p.S - 1) * p.dil_w - p.pad_left};
    c_lo = by_lanes<T>(C, dy.stride[3], 1, [&](const DwLanes& kl) { return kl.buffer(gl); },
                       [&](const DwLanes& kl, int64_t c0, int64_t ng, int64_t nb) {
      lanes_forward(kl, gl, c0, ng, nb, p.N, C, dy, lane_weights(w, c0, ng, kl.L, true),
                    static_cast<const T*>(nullptr), false, Activation{}, dx,
                    static_cast<T*>(nullptr));
    });
  } else {
    const DwlGeom gl = geom_lanes(p);
    c_lo = by_lanes<T>(C, dy.stride[3], 1, [&](const DwLanes& kl) { return kl.s2_buffer(gl); },
                       [&](const DwLanes& kl, int64_t c0, int64_t ng, int64_t nb) {
      if constexpr (std::is_same_v<T, float>) {
        const std::vector<float> wv = lane_weights(w, c0, ng, kl.L, false);
        const int64_t L = kl.L;
        dwl_tasks(p.N, ng, p.H, nb, [&](int64_t n, int64_t gi, int64_t r0, int64_t r1,
                                        float* buf) {
          const int64_t cg = c0 + gi * L;
          kl.backward_data_s2(gl, dy.data + n * dy.stride[0] + cg * dy.stride[1], dy.stride[1],
                              dy.stride[2], wv.data() + gi * L * p.R * p.S,
                              dx + (n * C + cg) * HW, HW, buf, r0, r1);
        });
      }
    });
  }
  if (c_lo == C) return;
#endif
#pragma omp parallel for collapse(2) schedule(dynamic, chunk) num_threads(num_threads())
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = c_lo; c < C; ++c)
      k.bwd_data(&g, dy.data + n * dy.stride[0] + c * dy.stride[1], dy.stride[2], dy.stride[3],
                 w.data + c * w.stride[0], w.stride[2], w.stride[3], dx + (n * C + c) * HW);
}

template <typename T>
void depthwise_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  const int64_t C = p.C, RS = p.R * p.S, Q = p.Q;
  const DwPlanes<T> k = dw_planes<T>();
  const DwGeom g = geom(p);
  int64_t c_lo = 0;
#if defined(PYCONV_X86)
  const DwlGeom gl = geom_lanes(p);
  c_lo = by_lanes<T>(C, x.stride[3], dy.stride[3],
                     [&](const DwLanes& kl) { return kl.buffer(gl); },
                     [&](const DwLanes& kl, int64_t c0, int64_t ng, int64_t nb) {
    if constexpr (std::is_same_v<T, float>) {
      // Per group of L channels, one task: acc[t*L + lane] over the images in order.
      const int64_t L = kl.L, ndy = kl.dy_buffer(gl);
      dwl_tasks(1, ng, 1, nb, [&](int64_t, int64_t gi, int64_t, int64_t, float* buf) {
        float* dyb = dwl_scratch(1, ndy);
        const int64_t cg = c0 + gi * L;
        alignas(64) float acc[kDwlMaxTaps * avx512::kDwlLanes] = {};  // (the widest)
        for (int64_t n = 0; n < p.N; ++n)
          kl.backward_weight(gl, dy.data + n * dy.stride[0] + cg * dy.stride[1], dy.stride[1],
                             dy.stride[2], x.data + n * x.stride[0] + cg * x.stride[1],
                             x.stride[1], x.stride[2], acc, buf, dyb);
        for (int64_t l = 0; l < L; ++l)
          for (int64_t t = 0; t < RS; ++t) dw[(cg + l) * RS + t] = acc[t * L + l];
      });
    }
  });
  if (c_lo == C) return;
#endif
  const int64_t chunk = dw_chunk(C - c_lo);
#pragma omp parallel for schedule(dynamic, chunk) num_threads(num_threads())
  for (int64_t c = c_lo; c < C; ++c) {
    // acc[(r*S + s)*Q + ow] sums dy*x over (n, oh); reduced over ow at the end.
    thread_local std::vector<T> accv;
    accv.assign(static_cast<size_t>(RS * Q), T(0));
    T* acc = accv.data();
    for (int64_t n = 0; n < p.N; ++n)
      k.bwd_weight(&g, dy.data + n * dy.stride[0] + c * dy.stride[1], dy.stride[2], dy.stride[3],
                   x.data + n * x.stride[0] + c * x.stride[1], x.stride[2], x.stride[3], acc);
    for (int64_t rs = 0; rs < RS; ++rs) {
      T s = T(0);
      for (int64_t q = 0; q < Q; ++q) s += acc[rs * Q + q];
      dw[c * RS + rs] = s;
    }
  }
}

template <typename T>
void backward_bias(View4<const T> dy, T* db) {
  const int64_t N = dy.size[0], K = dy.size[1], P = dy.size[2], Q = dy.size[3];
  void (*plane)(const T*, int64_t, int64_t, int64_t, double*) = bias_plane<T>;
#if defined(PYCONV_X86)
  if (active_isa() >= Isa::avx2) {
    if constexpr (std::is_same_v<T, float>) plane = avx2::bias_plane_float;
    else plane = avx2::bias_plane_double;
  }
#endif
  // Each thread takes a range of channels and sweeps the images in order, its channels'
  // planes of one image at a time (contiguous memory when dy is). Per channel the sums are
  // in double, in 16 lanes by row parity and position along the row (independent chains
  // the compiler vectorises; one chain waits on the add latency per element), lanes added
  // in a fixed order: the result depends on the shape alone, not on the thread count.
#pragma omp parallel num_threads(threads_for(N * K * P * Q))
  {
    int64_t k0, k1;
    split_range(K, omp_get_num_threads(), omp_get_thread_num(), k0, k1);
    if (P * Q == 1) {  // planes of one value (linear layers): the sums of the loop below
      for (int64_t k = k0; k < k1; ++k) {  // (all in lane 0), without a call per value
        double s = 0.0;
        for (int64_t n = 0; n < N; ++n)
          s += static_cast<double>(dy.data[n * dy.stride[0] + k * dy.stride[1]]);
        db[k] = static_cast<T>(s);
      }
    } else {
      std::vector<double> lanes(static_cast<size_t>(16 * (k1 - k0)), 0.0);
      const int64_t s3 = dy.stride[3];
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = k0; k < k1; ++k) {
          double* lane = lanes.data() + 16 * (k - k0);
          const T* pl = dy.data + n * dy.stride[0] + k * dy.stride[1];
          if (s3 == 1) {
            plane(pl, dy.stride[2], P, Q, lane);
            continue;
          }
          for (int64_t oh = 0; oh < P; ++oh)
            for (int64_t ow = 0; ow < Q; ++ow)
              lane[oh % 2 * 8 + ow % 8] += static_cast<double>(pl[oh * dy.stride[2] + ow * s3]);
        }
      for (int64_t k = k0; k < k1; ++k) {
        double* lane = lanes.data() + 16 * (k - k0);
        for (int j = 0; j < 8; ++j) lane[j] += lane[8 + j];
        db[k] = static_cast<T>(((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                               ((lane[4] + lane[5]) + (lane[6] + lane[7])));
      }
    }
  }
}

#define PYCONV_INSTANTIATE(T)                                                                  \
  template void depthwise_forward<T>(const ConvParams&, View4<const T>, View4<const T>,        \
                                     const T*, Activation, T*, T*);                            \
  template void depthwise_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>,  \
                                           T*);                                                \
  template void depthwise_backward_weight<T>(const ConvParams&, View4<const T>,                \
                                             View4<const T>, T*);                              \
  template void backward_bias<T>(View4<const T>, T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::fast
