// Grouped stride-1 convolutions with few channels per group (ResNeXt's 32 groups of 4-16
// channels), and ungrouped ones with few source channels (kMaxUngroupedChannels): direct
// kernels (conv_grouped_avx2.cpp, conv_grouped_avx512.cpp), one task per (image, group)
// in the forward and backward-data, per group (or 2 or 4 groups: the AVX-512 weight
// gradient's lanes) in the weight gradient. An im2col GEMM would pack 9x the input per
// group for only 2*Kg flops per packed element. Float on AVX2 and up only; other cases
// return false and take the GEMM path.
#include <algorithm>
#include <type_traits>

#include "act/act.h"
#include "common/cpu.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "conv/conv_grouped.h"
#include "gemm/gemm_driver.h"

namespace pyconv::fast {

namespace {

// Channels per group up to which the direct kernel beats the GEMM.
constexpr int64_t kMaxGroupChannels = 32;
// Ungrouped layers (one group) with up to this many source channels take it too, from two
// images (one task per image): the im2col GEMM's reduction is only C*R*S long, its packing
// and tile stores outweigh it. Against the GEMM, same process, 2 threads: forward 1 -> 16
// 3x3 at 48x480 batch 4 2.34x, 1 -> 64 1.77x, 3 -> 32 5x5 at 32x32 batch 64 (CIFAR-10
// conv1) 1.16x, 3 -> 32 3x3 1.21-1.49x, 3 -> 64 7x7 at 224x224 1.09x, 8 -> 32 and 8 -> 64
// 3x3 1.55-1.80x, 4 -> 128 1.19x; 12 and 16 source channels 0.95-1.04x. One image runs
// as two tasks of half the outputs each (halves): batch 1, 1 -> 16 at 48x480 2.13x, 3 -> 64
// 3x3 at 224x224 1.56x, 7x7 1.17x, 3 -> 32 1.21-1.34x, 8 -> 64 1.07x (as one task 0.66x).
// The backward-data (its source: grad_output) up to kMaxGroupChannels outputs: 8 -> 32
// 3x3 1.17x, 3 -> 16 5x5 1.26x (8 -> 64 7x7 0.87-0.99x, 4 -> 128 0.96x); the weight
// gradient lost (1 -> 16 0.62x) and keeps the GEMM.
constexpr int64_t kMaxUngroupedChannels = 8;
// The share of the output rows' 8-column vectors that must be real outputs for the
// ungrouped forward of a 5x5 or larger kernel (its lanes past Q compute nothing). Against
// the GEMM, same process, 2 threads, batch 8: 8 -> 128 7x7 at 10x10 (62%) 1.41x as GEMM, at
// 20x20 (83%) 1.21x, 8 -> 64 5x5 at 10x10 1.25x, 12x12 1.16x, 3 and 4 -> 64 7x7 at 10x10 and
// 20x20 1.02-1.09x; at 14x14 and 28x28 (88%) the direct kernel won 1.12-1.16x (7x7 8 -> 128
// at 14x14 even). 3x3 layers keep it at any width (0.84-0.94x as GEMM at 71-83%).
constexpr double kMinLaneUse = 0.85;
// Narrow planes: a row of Q outputs takes 8- and 16-column vectors (AVX2's 8-column blocks
// run at about half the FMA rate of its 16-column ones; AVX-512's are 16 wide), so the
// kernel computes about round_up(Q, 16) columns' worth, and the GEMM's im2col packing weighs
// less the more source channels (Cin) a group has. The direct kernel needs
// Q / round_up(Q, 16) >= (Cin - kLaneFreeChannels) / kLaneUseScale: 32 a group from 7
// columns, 24 from 4, 16 or fewer at any width. Against the grouped GEMM (or col2im for the
// backward-data), same build, 2 threads, batch 8, forward / backward-data / weight
// gradient: 32 a group at 3x3 planes 1.50x / 1.37x / 1.67x, 2x2 1.90x / 1.63x / 2.04x, 5x5
// at 9x9 (5x5 outputs) 1.51x forward, 7x7 at 5x5 padded by 1 (1x1 outputs) 1.52-2.43x; at
// 7x7 the same speed at g4, and ResNeXt's g32 ran 0.73-0.95x on the GEMM. 24 a group at
// 5x5 1.07-1.12x; 16 a group mixed (2x2: GEMM 1.13-1.38x at g8, direct up to 2x at g4;
// direct 1.27-1.31x at 3x3, 1.2-1.3x at 7x7); 8 a group direct (1.14-1.29x).
constexpr int64_t kLaneFreeChannels = 16;
constexpr int64_t kLaneUseScale = 40;

// A single image's ungrouped forward runs as two tasks of half the output channels each
// (two "groups" reading the same source), from 16 outputs.
bool halves(const ConvParams& p) {
  return p.groups == 1 && p.N == 1 && p.K % 2 == 0 && p.K >= 16;
}

bool applies(const ConvParams& p, int64_t Cin, int64_t Kout, int64_t Q, bool forward = false) {
#if defined(PYCONV_X86)
  if (active_isa() < Isa::avx2 || is_depthwise(p) || p.stride_h != 1 || p.stride_w != 1 ||
      p.dil_h != 1 || p.dil_w != 1 || p.R > 7 || p.S > 7 || Q > 4096)
    return false;
  if (kLaneUseScale * Q < (Cin - kLaneFreeChannels) * ((Q + 15) / 16 * 16)) return false;
  // (Ungrouped forwards of 5x5 and larger need whole 8-column vectors mostly used: their
  // reduction, C*R*S, is long enough for the GEMM where the kernel's row vectors are
  // partly idle; see kMinLaneUse.)
  if (p.groups == 1 && forward && p.R * p.S >= 25 &&
      double(Q) < kMinLaneUse * double((Q + 7) / 8 * 8))
    return false;
  if (p.groups == 1)
    return Cin <= kMaxUngroupedChannels &&
           (forward ? p.N >= 2 || halves(p) : p.N >= 2 && Kout <= kMaxGroupChannels);
  return Cin <= kMaxGroupChannels && Kout <= kMaxGroupChannels;
#else
  (void)p, (void)Cin, (void)Kout, (void)Q, (void)forward;
  return false;
#endif
}

// Every (image, group): y planes (n, g*Kout ..) = the group's convolution (+ bias), then
// the pre-activation copy and the activation over those planes.
void run(const GdGeom& g, int64_t N, int64_t G, const float* src, int64_t sn, int64_t sg,
         const float* w, int64_t wg, const float* bias, Activation act, float* y, float* preact) {
  const int64_t plane = g.P * g.Q, per = g.Kout * plane, Ktot = G * g.Kout;
  const int64_t nwt = grouped_direct_wt(g);
  float* wt = gemm::scratch<float>(2, G * nwt);
#if defined(PYCONV_X86)
  const bool wide = active_isa() >= Isa::avx512;
  // A large output with nothing to apply after it (an activation re-reads its planes right
  // away) goes out with non-temporal stores from the AVX-512 kernel, as the GEMM's
  // (stream_output): the 3-channel 3x3 stem at 224x224 (12.8 MB) waited on the reads for
  // ownership (1.17-1.38x at batch 1-16 on Zen 4, same process, 2 threads).
  const bool nt = wide && !preact && act.kind == ActKind::none &&
                  stream_output(N * Ktot * plane, sizeof(float));
  // 16 or 32 outputs a group: the channels as the lanes (ResNeXt 512@14, 1024@7 and their
  // backward-data, where rows of 14 filled 14 of 16 lanes, rows of 7 seven, and the padded
  // copy took 8% of the call).
  const bool lanes = wide && grouped_lanes_fit(g);
#endif
#pragma omp parallel num_threads(num_threads())
  {
#pragma omp for schedule(static)
    for (int64_t gi = 0; gi < G; ++gi) {
#if defined(PYCONV_X86)
      if (lanes)
        avx512::grouped_lanes_weights_float(g, w + gi * wg, wt + gi * nwt);
      else
        avx2::grouped_direct_weights_float(g, w + gi * wg, wt + gi * nwt);
#endif
    }
    // The padded source's zeros are written once per thread: each task then copies
    // just its source rows (the same positions for every task).
#if defined(PYCONV_X86)
    float* xp = lanes ? nullptr : gemm::scratch<float>(3, grouped_direct_xp(g));
    if (xp) std::fill(xp, xp + grouped_direct_xp(g), 0.0f);
#endif
#pragma omp for schedule(dynamic, 1)
  for (int64_t t = 0; t < N * G; ++t) {
    const int64_t n = t / G, gi = t % G;
    float* yo = y + (n * Ktot + gi * g.Kout) * plane;
#if defined(PYCONV_X86)
    const float* gs = src + n * sn + gi * sg;
    const float* gb = bias ? bias + gi * g.Kout : nullptr;
    if (lanes)
      avx512::grouped_lanes_float(g, gs, wt + gi * nwt, gb, yo);
    else if (wide)
      avx512::grouped_direct_float(g, gs, wt + gi * nwt, gb, yo, xp, nt);
    else
      avx2::grouped_direct_float(g, gs, wt + gi * nwt, gb, yo, xp);
#endif
    if (preact || act.kind != ActKind::none)
      bias_activation_serial(
          act, EpilogueBlock<float>{yo, 0, yo, 0, 1, per, nullptr, 0, 0,
                                    preact ? preact + (n * Ktot + gi * g.Kout) * plane : nullptr});
  }
#if defined(PYCONV_X86)
    if (nt) _mm_sfence();
#endif
  }
}

}  // namespace

template <typename T>
bool grouped_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                     Activation act, T* y, T* preact) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    const int64_t Cg = p.Cg(), Kg = p.Kg();
    if (!applies(p, Cg, Kg, p.Q, /*forward=*/true)) return false;
    const int64_t G = halves(p) ? 2 : p.groups, Kb = p.K / G;  // (halves: the same source)
    const GdGeom g{Cg, p.H, p.W, Kb, p.P, p.Q, p.R, p.S, p.pad_top, p.pad_left,
                   x.stride[1], x.stride[2], x.stride[3],
                   w.stride[0], w.stride[1], w.stride[2], w.stride[3]};
    run(g, p.N, G, x.data, x.stride[0], p.groups > 1 ? Cg * x.stride[1] : 0, w.data,
        Kb * w.stride[0], bias, act, y, preact);
    return true;
  }
}

bool grouped_takes_backward_data(const ConvParams& p) {
  return p.groups > 1 && applies(p, p.Kg(), p.Cg(), p.W);
}

template <typename T>
bool grouped_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    const int64_t Cg = p.Cg(), Kg = p.Kg();
    if (!applies(p, Kg, Cg, p.W)) return false;
    // dx[c, h, w] = sum_{k, r, s} dy[k, h - (R-1 - pt) + r, w - (S-1 - pl) + s]
    //                               * w[k, c, R-1 - r, S-1 - s]
    const GdGeom g{Kg, p.P, p.Q, Cg, p.H, p.W, p.R, p.S, p.R - 1 - p.pad_top,
                   p.S - 1 - p.pad_left, dy.stride[1], dy.stride[2], dy.stride[3],
                   w.stride[1], w.stride[0], -w.stride[2], -w.stride[3]};
    run(g, p.N, p.groups, dy.data, dy.stride[0], Kg * dy.stride[1],
        w.data + (p.R - 1) * w.stride[2] + (p.S - 1) * w.stride[3], Kg * w.stride[0], nullptr,
        Activation{}, dx, nullptr);
    return true;
  }
}

template <typename T>
bool grouped_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    const int64_t Cg = p.Cg(), Kg = p.Kg(), G = p.groups;
    // Kernels of up to 9 taps: larger ones keep the grouped GEMM's weight gradient, which
    // ran them 1.08-1.99x as fast (same process, 2 threads, alternated: 5x5 16 -> 32 a group
    // at 14x14 1.99x, 16 -> 16 1.37-1.97x, at 28x28 1.08-1.37x; 7x7 16 -> 32 1.60-1.61x).
    if (G == 1 || !applies(p, Cg, Kg, p.Q) || p.R * p.S > 9) return false;
    const GdGeom g{Cg, p.H, p.W, Kg, p.P, p.Q, p.R, p.S, p.pad_top, p.pad_left,
                   x.stride[1], x.stride[2], x.stride[3], 0, 0, 0, 0};
    const int64_t Qv = (p.Q + 7) / 8 * 8, per = Kg * Cg * p.R * p.S;
    // gv > 0: the AVX-512 kernel, gv groups per task.
    int gv = 0;
#if defined(PYCONV_X86)
    if (active_isa() >= Isa::avx512) gv = grouped_weight_lanes(g, G);
#endif
    const int64_t gn = std::max(gv, 1);
    // Images per pass: their padded planes within about 256 KiB (L2).
    const int64_t img = std::max<int64_t>(1, gn * (grouped_direct_xp(g) + Kg * p.P * Qv));
    const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(p.N, (int64_t(64) << 10) / img));
    // One task per gn groups, every image in order: each weight is reduced by one thread.
    // The padded sources' zeros are written once per thread (as in run()).
#pragma omp parallel num_threads(num_threads())
    {
      const int64_t nxp = nb * gn * grouped_direct_xp(g);
      float* xp = gemm::scratch<float>(3, nxp);
      float* dyp = gemm::scratch<float>(5, nb * gn * Kg * p.P * Qv);
      float* acc = gemm::scratch<float>(4, per * 8);
      std::fill(xp, xp + nxp, 0.0f);
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < G / gn; ++t) {
        const int64_t gi = t * gn;
        const float* xs = x.data + gi * Cg * x.stride[1];
        const float* ds = dy.data + gi * Kg * dy.stride[1];
#if defined(PYCONV_X86)
        if (gv > 0)
          avx512::grouped_direct_weight_float(g, gv, p.N, nb, xs, x.stride[0], Cg * x.stride[1],
                                              ds, dy.stride[0], Kg * dy.stride[1], dy.stride[1],
                                              dy.stride[2], dy.stride[3], dw + gi * per, per,
                                              xp, dyp, acc);
        else
          avx2::grouped_direct_weight_float(g, p.N, nb, xs, x.stride[0], ds, dy.stride[0],
                                            dy.stride[1], dy.stride[2], dy.stride[3],
                                            dw + gi * per, xp, dyp, acc);
#endif
      }
    }
    return true;
  }
}

#define PYCONV_INSTANTIATE(T)                                                               \
  template bool grouped_forward<T>(const ConvParams&, View4<const T>, View4<const T>,       \
                                   const T*, Activation, T*, T*);                           \
  template bool grouped_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>, \
                                         T*);                                               \
  template bool grouped_backward_weight<T>(const ConvParams&, View4<const T>, View4<const T>, \
                                           T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::fast
