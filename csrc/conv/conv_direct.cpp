// Direct forward convolution, output channels as the vector lanes (conv_direct.h): per image,
// a zero-padded copy of the source (none where no padding is read) stays in the caches while
// blocks of 16-64 output channels sweep its output rows, each tile up to 16 pixels of a row
// x 16-64 channels, the filter rearranged once per call as (reduction index, channel) rows.
// No im2col panels; each output's products added in (channel, filter row, filter column)
// order (in parts whose filter rows stay in L1, the sums kept in between: the same bits);
// the 16 x 16 transposes to the NCHW planes in registers. Float32 on AVX-512, ungrouped,
// column stride 1 or 2. A stride-1 backward-data runs as the forward of the flipped filter
// (a view: taps reversed, channel dimensions swapped) on grad_output.
// Outputs go out through the caches even where the GEMM would stream them
// (stream_output): staging each output row and writing it with non-temporal stores ran the
// 7x7 stem 0.89-0.95x at batch 4-16 (12.8-51 MB outputs; same process, 2 threads).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "act/act.h"
#include "common/cpu.h"
#include "conv/conv_direct.h"
#include "conv/conv_fast.h"
#include "gemm/gemm_driver.h"

namespace pyconv::fast {

namespace {
std::atomic<int> g_direct{static_cast<int>(KernelMode::auto_)};
std::atomic<uint64_t> g_calls{0};  // calls so far: tags each call's padded images (tests)

// (auto) Where the GEMM's im2col costs most against the arithmetic: column stride 2 with
// 9+ taps and up to 1600 reduction values, and stride 1 with 25+ taps and up to 600.
// Measured against the kernels that took them (each layer's two ways alternated in one
// process, 2 threads, Intel Xeon with AVX-512), forwards: the 7x7 stride-2 stem 1.11-1.20x,
// 3x3 stride 2 from 3 channels 1.20x, from 32-128 1.03-1.20x, DCGAN's 4x4 stride 2 from 64
// channels 1.12x and from 3 1.07x, DeepSpeech's 5x20 and 5x10 stride-2 layers 1.04-1.37x,
// 5x5 stride 2 from 64 channels 1.05-1.13x; GoogLeNet's 5x5 from 16 and 24 channels at
// 14x14-28x28 1.10-1.27x, 7x7 from 8 and 12 1.12-1.15x, CIFAR-10 conv1 1.08x. Refused: 5x5
// stride 2 from 128 channels (1.02-1.05x), 4x4 from 128 (0.84x), 3x3 stride 1 (0.92-1.09x
// from 3-16 channels, 0.65-0.84x from 64+ against Winograd).
// Also 1x1 layers onto 7x7 to 14x14 planes with at most 64 outputs (GoogLeNet's 5x5 and
// 3x3 reductions, 480-832 -> 16-48: 1.13-1.29x; 256-1024 -> 32 at batch 1-32 1.18-1.29x,
// 512 -> 64 at 7x7 1.13x), whose 48-column GEMM panels straddle images; not with 128+
// outputs (1.02-1.07x) nor onto 28x28 and larger (0.53-1.01x).
// And stride-1 kernels of 25+ taps onto at most 64 outputs (which fill the GEMM's and pixel
// rows' tiles poorly) with up to 1000 reduction values, 1600 on planes from 10x10, 6400 from
// 28x28 with 3136 output pixels or more (at batch 1-2, 128 and 256 -> 16-32 at 28x28 ran
// 0.82-0.94x: too few rows for the parts of a long reduction to keep two threads busy;
// backward-data up to 3200 at any batch: 32 <- 96 and 128 at 28x28 batch 1 1.24x), but not on
// the planes where Winograd's 5x5 runs its best blocks (winograd_aligned: 16x16 and 32x32 ran
// 0.89-0.96x direct, CIFAR-10 conv2's forward and backward-data among them). The stride-1
// backward-data takes the same gate as the forward it runs (the flipped filter's, onto dx's
// channels). Against the kernels that took them (Winograd, pixel rows; same process, 2
// threads, Intel Xeon), 5x5 forwards: 32 -> 16-48 at 7x7-28x28 1.12-1.48x, 64 -> 16-48 at
// 14x14-28x28 1.10-1.31x, 32 -> 64 at 7x7 1.23x and 14x14 1.13x, 32 -> 32 at 10x10 1.54x,
// 40 -> 24 at 9x9 1.46x, 64 -> 32-64 at 28x28-56x56 1.01-1.22x, 128 -> 16-48 at 28x28
// 1.04-1.13x, 160-256 -> 16-64 at 28x28-56x56 1.01-1.18x (192 -> 16 and 256 -> 64: 0.80 and
// 0.87 -> 0.91 and 1.01 of torch); 7x7 from 32 at 28x28 1.07-1.23x. Backward-data (dx's
// channels <- grad_output's): 16-64 <- 32-48 at 7x7-28x28 1.01-1.64x (GoogLeNet 4a's and 3a's
// 16 <- 48 and 16 <- 32 1.20x and 1.29x), 16-64 <- 64 at 14x14 0.94-1.20x, 16-64 <- 128 at
// 28x28 1.07-1.41x, 32 <- 96 at 28x28 1.26x, 32-64 <- 160-256 at 28x28-56x56 1.11-1.30x
// (0.85 -> 1.10 of torch), 96-256 <- 16-24 1.05-1.26x, 7x7 16-32 <- 32-64 at 28x28 1.21-1.36x.
// Not: 64 -> 16-48 forward at 7x7 (0.88-0.92x), 128 -> 16-48 at 14x14 (0.97-1.04x), 128
// outputs (0.98x); backward-data 16-48 <- 64-128 at 7x7 (0.75-0.86x).
bool pays(const ConvParams& p, bool backward_data = false) {
  const int64_t taps = p.R * p.S, kd = p.C * taps, pq = p.P * p.Q;
  if (taps == 1)
    return p.stride_h == 1 && p.stride_w == 1 && p.K <= 64 && pq >= 49 && pq <= 196;
  if (p.stride_w == 2) return taps >= 9 && kd <= 1600;
  if (taps < 25) return false;
  return kd <= 600 ||
         (p.stride_h == 1 && p.dil_h == 1 && p.dil_w == 1 && p.K <= 64 && !winograd_aligned(p) &&
          (kd <= 1000 || (kd <= 1600 && pq >= 100) ||
           (kd <= 6400 && pq >= 784 &&
            (p.N * pq >= 3136 || (backward_data && kd <= 3200)))));
}

// Estimated cycles of one reduction step, per output row, for blocks of nv vectors of
// channels (C of them): the row's units (pixels, or pairs of them: px pixels a unit) in
// near-equal tiles of at most max_units(v), each tile the larger of its FMAs (px * units * v,
// two a cycle) and its loads (a broadcast a unit, px * v filter vectors and an offset, two
// a cycle), plus its transposes (about 80 cycles a vector, spread over the kd steps).
double row_cost(int64_t C, int64_t units, int64_t kd, int nv, int px, int (*max_units)(int)) {
  double cost = 0;
  for (int64_t c0 = 0; c0 < C; c0 += 16 * nv) {
    const int v = static_cast<int>(std::min<int64_t>(nv, (C - c0 + 15) / 16));
    const int64_t mu = max_units(v), nt = (units + mu - 1) / mu;
    for (int64_t i = 0; i < nt; ++i) {
      const int64_t n = units / nt + (i < units % nt ? 1 : 0);
      cost += 0.5 * static_cast<double>(std::max(px * n * v, n + px * v + 1)) + 80.0 * v / kd;
    }
  }
  return cost;
}

// The block width (1 to max_nv vectors) with the fewest estimated cycles (the narrowest of
// equals).
template <class Cost>
int cheapest(int max_nv, Cost&& cost) {
  int best = 1;
  for (int nv = 2; nv <= max_nv; ++nv)
    if (cost(nv) < cost(best)) best = nv;
  return best;
}

// Channels [c0, c0 + nk) of a block of nv vectors (nk <= 16 * nv).
struct Block {
  int64_t c0;
  int nv, nk;
};

// n channels in blocks of 16 * nv, the last of fewer vectors where fewer remain.
std::vector<Block> channel_blocks(int64_t n, int nv) {
  std::vector<Block> blocks;
  for (int64_t c0 = 0; c0 < n;) {
    const int nk = static_cast<int>(std::min<int64_t>(16 * nv, n - c0));
    blocks.push_back({c0, (nk + 15) / 16, nk});
    c0 += nk;
  }
  return blocks;
}

// Image n of src (planes of H x W) as this thread's zero-padded copy: planes of Hp x Wp with
// the image at row top, column left. A thread's next task on the same image of the same call
// (call: g_calls) reuses it (scratch slot 11); its next image, or call, in the same layout and
// the same scratch block writes only the interior: the border is still zero (only this
// function writes the slot, and a block back from the cache has a new number). Rewriting
// the border with every image, row by row, took 7-10% of GoogLeNet's 5x5 direct forwards
// from 16-48 channels at 14x14.
const float* padded_image(uint64_t call, const View4<const float>& src, int64_t n, int64_t top,
                          int64_t left, int64_t Hp, int64_t Wp) {
  thread_local uint64_t t_call = 0;
  thread_local int64_t t_n = -1;
  thread_local std::array<int64_t, 8> t_zeroed{};  // block, C, H, W, top, left, Hp, Wp
  const int64_t C = src.size[1], H = src.size[2], W = src.size[3];
  float* xp = gemm::scratch<float>(11, C * Hp * Wp);
  if (t_call == call && t_n == n) return xp;
  const std::array<int64_t, 8> layout{static_cast<int64_t>(gemm::scratch_block(11)), C, H, W,
                                      top, left, Hp, Wp};
  if (t_zeroed != layout) {
    std::fill(xp, xp + C * Hp * Wp, 0.f);
    t_zeroed = layout;
  }
  for (int64_t c = 0; c < C; ++c) {
    float* d = xp + c * Hp * Wp + top * Wp + left;
    const float* s = src.data + n * src.stride[0] + c * src.stride[1];
#if defined(PYCONV_X86)
    if (src.stride[3] == 1) {
      avx512::copy_rows_float(s, src.stride[2], H, W, d, Wp);
      continue;
    }
#endif
    for (int64_t h = 0; h < H; ++h, d += Wp)
      for (int64_t q = 0; q < W; ++q) d[q] = s[h * src.stride[2] + q * src.stride[3]];
  }
  t_call = call, t_n = n;
  return xp;
}

}  // namespace

void set_direct_mode(KernelMode m) { g_direct.store(static_cast<int>(m)); }
int64_t direct_calls() { return static_cast<int64_t>(g_calls.load()); }

#if defined(PYCONV_X86)
namespace {
// The direct forward of an ungrouped float32 convolution with column stride 1 or 2, on
// AVX-512 (direct_forward and the stride-1 direct_backward_data).
void forward_rows(const ConvParams& p, View4<const float> x, View4<const float> w,
                  const float* bias, Activation act, float* y, float* preact) {
  const int64_t N = p.N, C = p.C, H = p.H, W = p.W, K = p.K, R = p.R, S = p.S;
  const int64_t P = p.P, Q = p.Q, PQ = P * Q, Kd = C * R * S;
  if (N * K * PQ == 0) return;
  // The source: the image itself where no padding is read (unit column stride), else a
  // zero-padded copy per image (Hp x Wp planes).
  const bool copy = p.pad_top || p.pad_bottom || p.pad_left || p.pad_right || x.stride[3] != 1;
  const int64_t Hp = H + p.pad_top + p.pad_bottom, Wp = W + p.pad_left + p.pad_right;
  const int64_t cs = copy ? Hp * Wp : x.stride[1], ldx = copy ? Wp : x.stride[2];
  std::vector<int64_t> koff(static_cast<size_t>(Kd));
  for (int64_t c = 0, k = 0; c < C; ++c)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) koff[k++] = c * cs + r * p.dil_h * ldx + s * p.dil_w;
  // Blocks of 16 * nv output channels (the last of fewer vectors where fewer remain), nv
  // the one with the fewest estimated cycles; the filter as (k, channel) rows of each
  // block, zero past K, and the bias likewise.
  const int nv = cheapest(
      4, [&](int v) { return row_cost(K, Q, Kd, v, 1, avx512::direct_max_pixels); });
  const std::vector<Block> blocks = channel_blocks(K, nv);
  const int64_t nb = static_cast<int64_t>(blocks.size()), lanes = 16 * nv;
  float* wp = gemm::scratch<float>(2, nb * lanes * (Kd + 1));
  float* bp = wp + nb * lanes * Kd;
  for (int64_t b = 0; b < nb; ++b) {
    const Block& bl = blocks[static_cast<size_t>(b)];
    const int64_t L = 16 * bl.nv;
    float* d = wp + b * lanes * Kd;
    for (int64_t c = 0, k = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s, ++k)
          for (int64_t j = 0; j < L; ++j)
            d[k * L + j] = j < bl.nk ? w.at(bl.c0 + j, c, r, s) : 0.f;
    for (int64_t j = 0; j < L; ++j)
      bp[b * lanes + j] = bias && j < bl.nk ? bias[bl.c0 + j] : 0.f;
  }
  // relu in registers unless the pre-activation is wanted; other activations after.
  const bool reg_relu = act.kind == ActKind::relu && !preact;
  const bool after = !reg_relu && (act.kind != ActKind::none || preact);
  const int nth = threads_for(N * K * PQ * Kd / 8);
  const int64_t nrb =
      N * nb >= 4 * nth ? 1 : std::min(P, gemm::ceil_div(4 * nth, N * nb));  // row blocks
  // The reduction in parts whose filter rows fill at most half of L1 (they are read again
  // by every tile of the part; the source rows a tile reads are few).
  const int64_t nch = gemm::ceil_div(Kd * lanes * 4, std::max<int64_t>(l1d_bytes() / 2, 4096));
  const int64_t kc = gemm::ceil_div(Kd, nch);
  const uint64_t call = ++g_calls;
  parallel_tasks(N * nb * nrb, nth, [&](int64_t t) {
    const int64_t n = t / (nb * nrb), b = t / nrb % nb, rb = t % nrb;
    const float* src = copy ? padded_image(call, x, n, p.pad_top, p.pad_left, Hp, Wp)
                            : x.data + n * x.stride[0];
    const Block& bl = blocks[static_cast<size_t>(b)];
    int64_t oh0, oh1;
    split_range(P, nrb, rb, oh0, oh1);
    float* yb = y + (n * K + bl.c0) * PQ;
    // The parts over blocks of rows whose partial sums fill at most a quarter of L2.
    const int64_t row_sums = Q * 16 * bl.nv;
    const int64_t rows = nch > 1 ? std::max<int64_t>(1, l2_bytes() / 16 / row_sums) : P;
    float* part = nch > 1 ? gemm::scratch<float>(4, std::min(rows, oh1 - oh0) * row_sums)
                          : nullptr;
    for (int64_t r0 = oh0; r0 < oh1; r0 += rows)
      for (int64_t ch = 0; ch < nch; ++ch)
        avx512::direct_rows_float({src, ldx, p.stride_h, p.stride_w, koff.data(), ch * kc,
                                   std::min(Kd, (ch + 1) * kc), wp + b * lanes * Kd, bl.nv,
                                   bl.nk, bias ? bp + b * lanes : nullptr, reg_relu, yb, PQ, Q,
                                   r0, std::min(oh1, r0 + rows), part, ch == 0,
                                   ch == nch - 1});
    if (after)
      bias_activation_serial(act, EpilogueBlock<float>{yb + oh0 * Q, PQ, yb + oh0 * Q, PQ,
                                                       bl.nk, (oh1 - oh0) * Q, nullptr, 0, 0,
                                                       preact ? preact + (n * K + bl.c0) * PQ +
                                                                    oh0 * Q
                                                              : nullptr,
                                                       PQ});
  });
}
}  // namespace
#endif

template <typename T>
bool direct_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
#if !defined(PYCONV_X86)
    return false;
#else
    const auto mode = static_cast<KernelMode>(g_direct.load());
    if (mode == KernelMode::off || active_isa() < Isa::avx512 || p.groups != 1 || p.C == 0 ||
        (p.stride_w != 1 && p.stride_w != 2) || (mode == KernelMode::auto_ && !pays(p)))
      return false;
    forward_rows(p, x, w, bias, act, y, preact);
    return true;
#endif
  }
}

namespace {
std::atomic<int> g_direct_bd{static_cast<int>(KernelMode::auto_)};

// (auto) 4x4 (and larger even) kernels at stride 2 onto dx rows of 32+ columns with 32-64
// channels: DCGAN's 128 -> 64 and 64 -> 32 transposed forwards 1.07-1.23x, 64 -> 64 and
// 128 -> 64 at 32x32 1.05-1.09x (against the stride-phase GEMM; same process, 2 threads,
// Intel Xeon). Not with 128 channels (0.94-0.97x), 3 (0.24x: one vector of 16 lanes for
// them), odd kernels (3x3: a parity's missing taps multiplied as zeros, 0.55-0.81x), 2x2
// (each phase a 1x1 GEMM: 0.50x), nor onto narrow rows (8x8 and 4x4 ones: 0.49-0.82x, the
// filter's rows serve few pixels).
bool pays_bd(const ConvParams& p) {
  return p.R % 2 == 0 && p.S % 2 == 0 && p.R >= 4 && p.S >= 4 && p.W >= 32 && p.C >= 32 &&
         p.C <= 64;
}

}  // namespace

void set_direct_bd_mode(KernelMode m) { g_direct_bd.store(static_cast<int>(m)); }

template <typename T>
bool direct_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
#if !defined(PYCONV_X86)
    return false;
#else
    const auto mode = static_cast<KernelMode>(g_direct_bd.load());
    if (mode == KernelMode::off || active_isa() < Isa::avx512 || p.groups != 1 || p.K == 0)
      return false;  // (no grad_output channels: the other kernels write the zeros)
    if (p.stride_h == 1 && p.stride_w == 1) {
      // dx: grad_output correlated with the filter turned around (taps reversed, its two
      // channel dimensions swapped), padded by the kernel's reach less the forward's
      // padding: a stride-1 forward onto C channels.
      ConvParams q = p;
      q.C = p.K, q.H = p.P, q.W = p.Q, q.K = p.C, q.P = p.H, q.Q = p.W;
      q.pad_top = (p.R - 1) * p.dil_h - p.pad_top;
      q.pad_bottom = (p.R - 1) * p.dil_h - p.pad_bottom;
      q.pad_left = (p.S - 1) * p.dil_w - p.pad_left;
      q.pad_right = (p.S - 1) * p.dil_w - p.pad_right;
      // (auto: not 1x1, whose backward-data stays on the GEMM: 48 and 64 <- 512 at 14x14
      // ran 0.69-0.78x direct.)
      if (std::min({q.pad_top, q.pad_bottom, q.pad_left, q.pad_right}) < 0 ||
          (mode == KernelMode::auto_ && (p.R * p.S == 1 || !pays(q, true))))
        return false;
      View4<const float> wf = w;
      wf.data += (p.R - 1) * w.stride[2] + (p.S - 1) * w.stride[3];
      wf.size[0] = p.C, wf.size[1] = p.K;
      wf.stride[0] = w.stride[1], wf.stride[1] = w.stride[0];
      wf.stride[2] = -w.stride[2], wf.stride[3] = -w.stride[3];
      forward_rows(q, dy, wf, nullptr, Activation{}, dx, nullptr);
      return true;
    }
    if (p.stride_h != 2 || p.stride_w != 2 || p.dil_h != 1 || p.dil_w != 1 ||
        (mode == KernelMode::auto_ && !pays_bd(p)))
      return false;
    const int64_t N = p.N, C = p.C, H = p.H, W = p.W, K = p.K, R = p.R, S = p.S;
    const int64_t P = p.P, Q = p.Q, HW = H * W;
    if (N * C * HW == 0) return true;
    // A zero weight past an odd kernel's edge (forced on: the gate takes even kernels)
    // times an inf would give NaN where torch adds no such product: such grad_outputs go to
    // the other kernels. (An inf weight times a padding zero: conv.cpp's repair.)
    if ((R % 2 || S % 2) && !all_finite(dy)) return false;
    const int64_t Rh = (R + 1) / 2, Sh = (S + 1) / 2, Kd = K * Rh * Sh;
    const int64_t pt = p.pad_top, pl = p.pad_left;
    const int64_t w0 = -(pl % 2), pairs = (W - w0 + 1) / 2;
    const int64_t hbmax = (H - 1 + pt) / 2, jmax = (w0 + pl) / 2 + pairs - 1;
    const int64_t ti = Rh - 1, tj = Sh - 1;
    const int64_t Hp = ti + std::max(P, hbmax + 1), Wp = tj + std::max(Q, jmax + 1);
    std::vector<int64_t> koff(static_cast<size_t>(Kd));
    for (int64_t k = 0, i = 0; k < K; ++k)
      for (int64_t rr = 0; rr < Rh; ++rr)
        for (int64_t ss = 0; ss < Sh; ++ss) koff[i++] = k * Hp * Wp - rr * Wp - ss;
    const int nv = cheapest(
        3, [&](int v) { return row_cost(C, pairs, Kd, v, 2, avx512::direct_max_pairs); });
    const std::vector<Block> blocks = channel_blocks(C, nv);
    const int64_t nb = static_cast<int64_t>(blocks.size()), lanes = 16 * nv;
    const int64_t per_block = 2 * Kd * 2 * lanes;  // (row parity, k, column parity, lane)
    float* wp = gemm::scratch<float>(2, nb * per_block);
    // The filter read in its own order (whole filters of a block at a time), each value to
    // its (row parity, k, column parity) row; zeros where a parity has fewer taps or the
    // block fewer channels.
    std::fill(wp, wp + nb * per_block, 0.f);
#pragma omp parallel for schedule(static) num_threads(threads_for(K * C * R * S))
    for (int64_t k = 0; k < K; ++k)
      for (int64_t b = 0; b < nb; ++b) {
        const Block& bl = blocks[static_cast<size_t>(b)];
        const int64_t L = 16 * bl.nv;
        for (int64_t j = 0; j < bl.nk; ++j)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t s = 0; s < S; ++s) {
              const int64_t i = (k * Rh + r / 2) * Sh + s / 2;
              wp[b * per_block + (((r % 2) * Kd + i) * 2 + s % 2) * L + j] =
                  w.at(k, bl.c0 + j, r, s);
            }
      }
    const int nth = threads_for(N * C * HW * Kd / 8);
    const int64_t nrb =
        N * nb >= 4 * nth ? 1 : std::min(H, gemm::ceil_div(4 * nth, N * nb));
    const int64_t nch =
        gemm::ceil_div(Kd * 2 * lanes * 4, std::max<int64_t>(l1d_bytes() / 2, 4096));
    const int64_t kc = gemm::ceil_div(Kd, nch);
    const uint64_t call = ++g_calls;
    parallel_tasks(N * nb * nrb, nth, [&](int64_t t) {
      const int64_t n = t / (nb * nrb), b = t / nrb % nb, rb = t % nrb;
      const float* xp = padded_image(call, dy, n, ti, tj, Hp, Wp);
      const Block& bl = blocks[static_cast<size_t>(b)];
      int64_t oh0, oh1;
      split_range(H, nrb, rb, oh0, oh1);
      const int64_t row_sums = 2 * pairs * 16 * bl.nv;
      const int64_t rows = nch > 1 ? std::max<int64_t>(1, l2_bytes() / 16 / row_sums) : H;
      float* part = nch > 1 ? gemm::scratch<float>(4, std::min(rows, oh1 - oh0) * row_sums)
                            : nullptr;
      for (int64_t r0 = oh0; r0 < oh1; r0 += rows)
        for (int64_t ch = 0; ch < nch; ++ch)
          avx512::direct_pairs_float({xp + ti * Wp + tj, Wp, pt, pl, koff.data(), Kd, ch * kc,
                                      std::min(Kd, (ch + 1) * kc), wp + b * per_block, bl.nv,
                                      bl.nk, dx + (n * C + bl.c0) * HW, HW, W, r0,
                                      std::min(oh1, r0 + rows), part, ch == 0,
                                      ch == nch - 1});
    });
    return true;
#endif
  }
}

template bool direct_backward_data<float>(const ConvParams&, View4<const float>,
                                          View4<const float>, float*);
template bool direct_backward_data<double>(const ConvParams&, View4<const double>,
                                           View4<const double>, double*);

template bool direct_forward<float>(const ConvParams&, View4<const float>, View4<const float>,
                                    const float*, Activation, float*, float*);
template bool direct_forward<double>(const ConvParams&, View4<const double>,
                                     View4<const double>, const double*, Activation, double*,
                                     double*);

}  // namespace pyconv::fast
