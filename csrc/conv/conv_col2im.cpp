// Backward-data of convolutions with few input channels and many output channels (the
// 3-channel stems; DCGAN's last up-sampling, whose forward this is): first
// dcol = W^T dy as a 1x1 convolution (N, K, P, Q) -> (N, C*R*S, P, Q) on the GEMM path
// (dy read in place as its B panels), then col2im gathers every dx element's taps in a
// fixed order. The stride-phase GEMM instead packs im2col(dy): K*R*S/(sh*sw) values per
// dx element for only 2*C flops each, memory-bound at C = 3 (packing was 57% of the 7x7
// stem's backward-data); here the GEMM does 2*K flops per dcol value. The same holds for
// layers whose im2col of dy is largely zero padding (the backward-data of an unpadded 5x5 or
// 7x7 layer on a small plane): dcol has only the taps that exist.
#include <algorithm>
#include <atomic>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "gemm/gemm_driver.h"

namespace pyconv::fast {

namespace {

constexpr int64_t kMaxC = 8;   // input channels up to which it applies
constexpr int64_t kMinK = 32;  // output channels from which the GEMM pays (16: 0.76x)
// Layers of any width whose im2col-of-dy GEMM would multiply largely zero padding (see
// use_col2im): from this many output channels (the dcol GEMM's reduction: flops per dcol
// value written and read again), ...
constexpr int64_t kMinKPad = 64;
// ... this ratio of the phase GEMM's work to col2im's, H*W / (sh*sw*P*Q) (kernels of up to
// 3x3: kMinWasteSmall, see use_col2im) ...
constexpr double kMinWaste = 1.3;
constexpr double kMinWasteSmall = 2.0;
// ... or, dilated, this: their Winograd runs as polyphase sub-problems (copied out and
// back, one call per shape when the plane is not a multiple of the dilation), the GEMM
// multiplies the padding. Against auto before, 3x3 d2, 2 threads: waste 1.44 (12x12 padded
// by 1) 32 <- 32 batch 8 1.56x, 512 <- 512 batch 2 1.26x, 256 <- 256 1.0x; 1.56 (10x10)
// 128 <- 128 batch 8 2.05x, 32 <- 128 2.75x; 1.65 (9x9) 1.66x; 1.96 (7x7) 1.41x; at 1.31
// (16x16) 128 <- 128 0.74x, 1.40 (13x13) 0.98x.
constexpr double kMinWasteDilated = 1.4;
// ... and dilated 5x5 from kMinK outputs a group at this: against auto before, 2 threads, d2
// at waste 1.65 (27x27 padded by 1) 128 <- 128 g4 batch 2 1.74x, 1.56 (20x20 padded by 2)
// g4 1.39x, 32 <- 64 1.19x, 1.78 64 <- 64 g2 1.22x; at 1.33-1.36 0.76-0.87x. (7x7 d2 at
// 1.65, g2 64 <- 128: 0.72x.)
constexpr double kMinWasteDilated5 = 1.5;
constexpr int64_t kChunkElems = 1 << 21;  // dcol per pass (images at a time)
constexpr int64_t kMaxImageElems = 1 << 23;  // one image's dcol beyond this: the phase GEMM

using gemm::ceil_div;
using gemm::floor_div;

// d[q] += s[q] for q < n (the compiler vectorises this only knowing the two do not overlap).
template <typename T>
inline void add_run(T* __restrict d, const T* __restrict s, int64_t n) {
  for (int64_t q = 0; q < n; ++q) d[q] += s[q];
}

// dx of images [0, nb) from dcol (nb, C*R*S, P, Q) contiguous, by bands of kBand rows of
// one plane (n, c): tap by tap (r, then s, ascending: the order of every value's sum), the
// tap's dcol rows are added into the band's sw phase-major rows (w = j*sw + phase), which
// are then interleaved into dx. Tap-major, each tap's rows stream from one dcol plane; row
// by row (all taps of one dx row, then the next), the loads came from R*S planes at once
// and waited on the L3 cache: 25% of a 128 <- 128 5x5 backward-data at 20x20, 9% now.
template <typename T>
void col2im(const ConvParams& p, int64_t nb, const T* dcol, T* dx) {
  const int64_t C = p.C, H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q;
  const int64_t sh = p.stride_h, sw = p.stride_w, CRS = C * R * S;
  const int64_t Wl = ceil_div(W, sw);  // phase row length (phase 0 is the longest)
  constexpr int64_t kBand = 16;
  const int64_t nband = ceil_div(H, kBand);
  // Where the taps land, worked out once (the divisions per tap and task were 44% of a
  // 1x1-output 7x7 d2 layer's backward-data): tap column s's len dcol values from src within
  // a tap row's planes (its plane, from column q0) go to a band's phase rows from column at
  // (w = q*sw + off = (q + base)*sw + ph); tap row r of band b covers dx rows h = u*sh + e
  // for u in [ua, ub) (every sh-th row from the first at or after the band's start).
  struct Col {
    int64_t src, len, at;
  };
  struct Row {
    int64_t ua, ub, e;
  };
  std::vector<Col> cols;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t off = s * p.dil_w - p.pad_left, base = floor_div(off, sw);
    const int64_t ph = off - base * sw, len = ceil_div(W - ph, sw);
    const int64_t q0 = std::max<int64_t>(0, -base), q1 = std::min<int64_t>(Q, len - base);
    if (q1 > q0) cols.push_back({s * P * Q + q0, q1 - q0, ph * Wl + base + q0});
  }
  std::vector<Row> rws(static_cast<size_t>(nband * R));
  for (int64_t b = 0; b < nband; ++b)
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h0 = b * kBand, h1 = std::min(H, h0 + kBand), e = r * p.dil_h - p.pad_top;
      rws[b * R + r] = {std::max<int64_t>(0, floor_div(h0 - e + sh - 1, sh)),
                        std::min<int64_t>(P, floor_div(h1 - e + sh - 1, sh)), e - h0};
    }
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<T> acc(static_cast<size_t>(kBand * sw * Wl));
    std::vector<const T*> rows(static_cast<size_t>(sw));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nb * C * nband; ++t) {
      const int64_t n = t / (C * nband), c = t / nband % C, b = t % nband;
      const int64_t h0 = b * kBand, h1 = std::min(H, h0 + kBand);
      std::fill(acc.begin(), acc.begin() + (h1 - h0) * sw * Wl, T(0));
      for (int64_t r = 0; r < R; ++r) {
        const Row& rw = rws[b * R + r];
        if (rw.ua >= rw.ub) continue;
        const T* tr = dcol + (n * CRS + (c * R + r) * S) * P * Q;
        for (const Col& cl : cols)
          for (int64_t u = rw.ua; u < rw.ub; ++u)
            add_run(acc.data() + (u * sh + rw.e) * sw * Wl + cl.at, tr + cl.src + u * Q, cl.len);
      }
      for (int64_t h = h0; h < h1; ++h) {
        for (int64_t pw = 0; pw < sw; ++pw)
          rows[static_cast<size_t>(pw)] = acc.data() + ((h - h0) * sw + pw) * Wl;
        interleave_phase_row(dx + ((n * C + c) * H + h) * W, W, sw, rows.data());
      }
    }
  }
}

std::atomic<int> g_col2im{static_cast<int>(KernelMode::auto_)};

// When (auto): the few-channel layers above, and layers whose stride-phase GEMM would spend
// 30% or more of its multiplies on dy's zero padding (the backward-data of an unpadded 5x5
// or 7x7 layer on a small plane: a full correlation) with kernels larger than 3x3 (3x3
// layers keep Winograd, 2.25x fewer multiplies: 128 -> 128 unpadded at 14x14 ran 0.76x as
// col2im), at least kMinKPad output channels and one image's dcol within a pass (else it
// goes through memory: 64 -> 128 7x7 at 32x32, 4.2M values, ran 0.88x). Against the phase
// GEMM or Winograd, batch 4, same process, 2 threads: 128 -> 128 7x7 at 16x16 1.54x, 96 ->
// 256 5x5 at 28x28 1.14x, 64 -> 64 5x5 at 14x14 1.56x (1.27x padded by 1), 128 -> 128 5x5
// at 20x20 1.33x (1.26x at 14x14 padded by 1). With 32 output channels it lost (16 x 32 ->
// 32 5x5 at 16x16 0.83x), but at half of its multiplies on padding it won from 32 (as the
// small kernels' rule below): against auto before, batch 4, 2 threads, 5x5 d2 at 20x20
// 16 <- 48 2.93x, 32 <- 48 1.48x, g2 32 <- 32 1.74x, 7x7 at 16x16 16 <- 32 1.64x (5x5
// 128 -> 128 g4 at 12x12, waste 2.25, 1.19x). Kernels past 5x5 at stride 1 with more than
// kMaxCPixelRows input channels go to pixel rows instead, which skip the padding's taps
// (conv_gemm.cpp's use_pixel_rows).
// Grouped layers (not depthwise) by the same rules per group (Cg, Kg: the dcol GEMM's rows
// per tap and its reduction), and past 5x5 at stride 1 too (pixel rows take no groups).
// Against the grouped phase GEMM, same process, 2 threads: 12 <- 512 7x7 g4 at 31x31 (3
// input channels a group) 4.7x, 32 <- 512 7x7 g4 at 35x35 2.2x, 16 <- 256 7x7 g2 at 38x38
// 1.9x, 64 <- 256 5x5 g2 at 14x14 1.7x, 6 <- 256 7x7 s2 g2 4.3x. With 32 outputs a group
// it lost as ungrouped layers do (5x5 and 3x3, 0.60-0.73x; 7x7 1.28x): kMinKPad holds
// below half of the multiplies on padding.
// Kernels of up to 3x3 where dy is at most half of dx (dilated or unpadded layers on small
// planes, whose Winograd or GEMM computes every dx tile's taps, most of them on padding):
// against auto before, same process, 2 threads, batch 4-8: 3x3 dilation 2, 64 <- 128 at
// 12x12 1.71x, 128 <- 128 at 8x8 2.21x, g4 16 <- 128 at 9x9 4.06x, 32 <- 128 at 13x13
// 1.64x, dilation 3 at 10x10 4.80x, undilated 256 <- 256 at 5x5 1.35x; at waste 1.78-1.96
// (128 <- 128 at 7x7, 64 <- 64 d2 at 16x16) 0.99-1.02x, 128 <- 128 at 14x14 (1.36) 0.71x.
// These from kMinK outputs (a group): 32 <- 32 d2 at 12x12 1.79x, g2 32 <- 32 at 9x9 2.07x,
// 64 <- 32 d3 at 10x10 4.22x (32 <- 32 d2 at 16x16, waste 1.78, 1.16x; 32 <- 64 at 9x9,
// 1.65, 0.84x).
// Kernels past 5x5 at stride 1 too with at most kMaxPixelsPast5x5 dx pixels (N*H*W), where
// pixel rows have few 6-pixel panels to share: against them, 7x7 16 <- 128 at 6x6 batch 4
// 3.15x, 64 <- 256 at 10x10 batch 2 1.23x, 256 <- 256 at 14x14 batch 1 1.34x, 64 <- 128
// at 8x8 batch 4 1.41x; from 512 pixels 0.79-1.21x (128 <- 128 at 16x16 batch 4 0.93x).
constexpr int64_t kMaxPixelsPast5x5 = 256;
// ... unless dcol's reduction is short (at most kMaxKLanded outputs) and less than kMinLanded
// of its values land inside dx (the rest fall on the forward's padding: dcol computes every
// tap of every dy pixel, pixel rows skip them). Against col2im, 7x7 at batch 1-4, 96-256
// input channels, 2 threads: 32 or 64 outputs at 5x5 padded by 2 (51% landed) 1.03-2.55x,
// at 6x6 padded by 1 (73%) 1.08-2.41x, at 7x7 padded by 2 (69%) 1.00-2.12x (0.40 -> 1.0 of
// torch at 128 <- 32 5x5 batch 4). With 128 outputs col2im kept (0.46-1.44x); at 86% landed
// and more (8x8 and 10x10 padded by 1) too (0.55-1.19x).
constexpr int64_t kMaxKLanded = 64;
constexpr double kMinLanded = 0.8;
// ... and at any number of pixels up to this many input channels (pixel rows' channel panels,
// the tile's 16 columns, skip no taps when there is one, and few panels share little).
// Against pixel rows, batch 4-8, 2 threads: 7x7 d2 at 27x27 16 <- 128 2.45x, 16 <- 256
// 2.67x, 32 <- 128 1.15x, 64 <- 128 1.08x; 7x7 at 16x16 16 <- 128 2.44x, 32 <- 128 1.40x,
// 64 <- 128 1.27x, 64 <- 64 d2 at 20x20 1.50x; with more channels 0.90-1.18x (96 <- 64
// 0.90x, 128 <- 128 0.96-1.02x, 256 <- 256 1.02-1.18x): those keep pixel rows.
constexpr int64_t kMaxCPixelRows = 64;
// Dilated kernels past 5x5 leave pixel rows from this much waste: each dx pixel's taps on
// dy are then few and scattered (one at 1x1 outputs), and a 6-pixel panel's box of taps
// spans most of the kernel, so pixel rows skip little. col2im against pixel rows, 7x7 d2,
// same build, 2 threads: 128 <- 32 at 7x7 (waste 49) 2.7x, 128 <- 128 at 15x15 (25) 2.0x,
// 96 <- 32 at 12x12 (9) 1.39x; at waste 2.8 (128 <- 64 at 15x15) and 7.4 (256 <- 64 at
// 19x19) pixel rows won 1.34x and 1.21x.
constexpr double kMaxWastePixelRowsDilated = 8;
// Dilated layers with few outputs a group (kMinKFew up to kMinK) where nearly all of the
// phase GEMM's work is on padding: waste * Kg from kMinWasteTimesK (the dcol GEMM's
// reduction is Kg long, its stores and col2im's adds per dcol value weigh more the shorter
// it is). Against auto before, same process, 2 threads: 7x7 d2 on 13x13 (1x1 outputs)
// batch 8, g4 32 <- 512 3.36x (0.14 -> 0.48 of torch), 16 <- 512 (4 a group) 1.74x; 7x7
// d2 at 7x7 padded by 3, 32 <- 256 g4 1.55x; 5x5 d2 at 8x8 padded by 2, 64 <- 256 g4 1.50x;
// 3x3 d4 16 <- 64 at 12x12 1.80-2.37x. Below it: waste 4 with 8 a group 0.94x, 1.96 with
// 16 0.59x, 169 with 2 a group 0.96x. Undilated layers lost on planes of 2x2 outputs (5x5
// at 6x6, 7x7 at 8x8, 3x3 at 4x4: 0.52-0.71x) and gained at 4x4 (7x7 at 10x10 1.07-1.19x,
// 5x5 at 8x8 1.18x): they keep the phase GEMM.
constexpr int64_t kMinKFew = 4;
constexpr double kMinWasteTimesK = 64;
// Dilated layers with 9-32 input channels a group and 4x as many outputs (the first rule
// in use_col2im): the phase GEMM or Winograd runs dilation^2 polyphase sub-problems. Against
// auto before, 3x3 d2, same process, 2 threads: 16 <- 64 at 14x14 batch 4 1.31x, at 28x28
// batch 8 1.13x, 16 <- 128 at 13x13 padded by 1 2.4x, g4 16 <- 128 a group 3.7x; 16 <- 64 at
// 56x56 (dcol 451K values an image) 0.89x. With 32 input channels 1.03-1.07x, 64 0.75-0.81x;
// measured again with 32 (mode against auto, shuffled rounds, 2 threads): 32 <- 128 at
// 28x28 padded by 1 1.20x (0.84 -> 1.02 of torch), by 2 1.06x, at 14x14 batch 8 1.35x (0.69
// -> 0.94); at 56x56 (903K values, past kMaxDcolDilated) 0.72x.
constexpr int64_t kMaxDcolDilated = int64_t(1) << 18;
constexpr int64_t kMaxCDilated = 32;
// Kernels past 3x3 with up to kMaxCFewIn input channels a group and 4x as many outputs (64
// or more) from kMinWasteFewIn: the phase GEMM's rows are few (its B packed for 16 rows of
// arithmetic) and it multiplies the padding. Against auto, 16 input channels, batch 4, 2
// threads, shuffled rounds: 5x5 unpadded at 34x34 (waste 1.28) 64 -> 1.22x, 128 1.32x (0.73
// -> 0.97 of torch), 256 1.51x; at 44x44 (1.21) 1.04-1.33x; padded by 1 at 30x30 (1.15)
// 1.21-1.45x; 7x7 at 48x48 (1.31) 0.99-1.02x. "Same" padding (1.0): 0.57-0.83x at 64 and
// 128 outputs. With 32 channels mixed (0.89-1.19x: kept off), 64 and more 0.52-1.08x.
constexpr int64_t kMaxCFewIn = 16;
constexpr double kMinWasteFewIn = 1.1;
// Strided kernels with 4x as many outputs as inputs (a group), 64 or more: the phase GEMM
// packs K*R*S/(sh*sw) values per dx element for 2*C flops each. Against it, 3x3
// stride 2, same process, 2 threads: 16 <- 128 at 24x24 g2 batch 8 1.83x, at 25x25 batch 1
// 2.30x, 32 <- 128 g2 1.18-1.22x, 16 <- 64 at 64x64 1.28x, g4 1.38x, 32 <- 128 at 32x32
// 1.10x; with 2x as many (ResNet's 64 <- 128, 128 <- 256, 256 <- 512) 0.99-1.15x, as many
// 0.90-0.95x. Kernels no larger than the stride (2x2 stride 2: one tap a phase, the phase
// GEMM a plain 1x1 one; 16 <- 64 at 56x56 0.95x) keep it. Larger kernels alike (old/new
// builds alternated, stride 2, batch 2-8): 7x7 32 <- 256 at 10x10 1.41x (0.69 -> 0.98 of
// torch), at 14x14 1.58x, g2 32 <- 128 a group 1.22x, 5x5 16 <- 64 at 14x14 1.18x, 16 <- 64
// unpadded at 33x33 1.34x, 4x4 16 <- 64 at 32x32 1.10x, 32 <- 128 at 16x16 1.14x; 5x5 64 <-
// 256 at 20x20 and 4x4 at 16x16 0.99x, 7x7 g2 64 <- 256 a group at 14x14 0.96x.
// direct: the grouped direct kernel takes the layer (conv_grouped.cpp), which auto leaves
// to it below kMinWasteSmall (the kernel computes every tap on padding): 8 <- 32 a group
// 3x3 at 32x32 ran 0.71-0.78x as col2im, 8 <- 32 g4 at 28x28 0.87x, 8 <- 32 5x5 g2 0.83x;
// from it, against the direct kernel (old/new builds alternated, 2 threads, batch 8):
// 32 <- 32 a group 5x5 at 9x9 unpadded (3.24x) 1.85-1.96x, 7x7 at 5x5 padded by 1 (25x)
// 5.8-6.0x.
bool use_col2im(const ConvParams& p, bool direct) {
  const auto mode = static_cast<KernelMode>(g_col2im.load(std::memory_order_relaxed));
  const int64_t C = p.C, RS = p.R * p.S, PQ = p.P * p.Q, Cg = p.Cg(), Kg = p.Kg();
  if (mode == KernelMode::off || is_depthwise(p) || RS == 1 || p.N == 0 || PQ == 0 ||
      C * RS * PQ > kMaxImageElems)
    return false;
  if (mode == KernelMode::on) return true;
  const double waste = double(p.H * p.W) / double(p.stride_h * p.stride_w * PQ);
  if (direct && waste < kMinWasteSmall) return false;
  const bool strided = p.stride_h * p.stride_w > 1, small = RS <= 9;
  // Few input channels a group, many outputs (the stems); dilated, up to kMaxCDilated
  // channels on planes whose dcol stays in L2 (kMaxDcolDilated).
  const bool dilated = p.dil_h * p.dil_w > 1;
  if (Kg >= std::max<int64_t>(kMinK, 4 * Cg) &&
      (Cg <= kMaxC || (dilated && Cg <= kMaxCDilated && Cg * RS * PQ <= kMaxDcolDilated)))
    return true;
  // 4x as many outputs, kMinKPad or more: strided kernels whose taps overlap between
  // phases, and kernels past 3x3 with few input channels and a little padding.
  if (Kg >= std::max<int64_t>(kMinKPad, 4 * Cg) &&
      ((strided && (p.R > p.stride_h || p.S > p.stride_w)) ||
       (!small && Cg <= kMaxCFewIn && waste >= kMinWasteFewIn && C * RS * PQ <= kChunkElems)))
    return true;
  // An im2col of dy that is largely zero padding (half of it from kMinK outputs a group,
  // 30% from kMinKPad past 3x3), unless pixel rows skip it (past 5x5 at stride 1,
  // ungrouped, more than a few pixels and kMaxCPixelRows input channels).
  const bool pixel_rows =
      RS > kSkipPaddingMinTaps && !strided && p.groups == 1 && C > kMaxCPixelRows &&
      (p.N * p.H * p.W > kMaxPixelsPast5x5 || (Kg <= kMaxKLanded && landed(p) < kMinLanded)) &&
      (!dilated || waste < kMaxWastePixelRowsDilated);
  const double min_waste = !dilated ? kMinWasteSmall
                           : small     ? kMinWasteDilated
                           : RS <= 25  ? kMinWasteDilated5
                                       : kMinWasteSmall;
  const bool padding = (waste >= min_waste && Kg >= kMinK) ||
                       (!small && waste >= kMinWaste && Kg >= kMinKPad) ||
                       (dilated && Kg >= kMinKFew && Kg < kMinK &&
                        waste * double(Kg) >= kMinWasteTimesK);
  return padding && !pixel_rows && C * RS * PQ <= kChunkElems;
}

}  // namespace

void set_col2im_mode(KernelMode m) { g_col2im.store(static_cast<int>(m)); }

template <typename T>
bool backward_data_col2im(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  const int64_t C = p.C, K = p.K, RS = p.R * p.S, CRS = C * RS, PQ = p.P * p.Q;
  const int64_t G = p.groups, Cg = p.Cg(), Kg = p.Kg();
  if (!use_col2im(p, std::is_same_v<T, float> && grouped_takes_backward_data(p))) return false;
  // W^T as the 1x1 convolution's weight (C*R*S, Kg, 1, 1), groups of Cg*R*S rows: a view of
  // w whose row (c, r, s) is dx's plane c's tap (r, s), group g's Kg filters of w on.
  // Its (c, r, s) values must be evenly spaced (a contiguous filter's are); else a copy.
  std::unique_ptr<T[]> wc;
  const T* wd = w.data;
  int64_t s0 = w.stride[0], s3 = w.stride[3];
  if (w.stride[2] != p.S * s3 || w.stride[1] != p.R * w.stride[2]) {
    wc.reset(new T[static_cast<size_t>(K * CRS / G)]);  // (every value written below)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t l = 0; l < CRS / G; ++l)
        wc[k * (CRS / G) + l] = w.at(k, l / RS, l % RS / p.S, l % p.S);
    wd = wc.get(), s0 = CRS / G, s3 = 1;
  }
  // One dy value a filter and image, few images: dcol[n] = sum over k of dy[n, k] * w[k],
  // each filter row streamed once (the GEMM would pack all of W^T for a few columns: a 7x7
  // d2 backward-data 256 <- 128 g2 at 1x1 outputs, batch 2, spent 36% of its time so).
  if (PQ == 1 && p.N <= kGemvImages && s3 == 1 && (K <= 1 || dy.stride[1] == 1)) {
    T* dcol = gemm::scratch<T>(10, p.N * CRS);
    combine_rows(p.N, G, Kg, CRS / G, wd, s0, dy.data, dy.stride[0], dcol, CRS);
    col2im(p, p.N, dcol, dx);
    return true;
  }
  const View4<const T> wv{wd, {CRS, Kg, 1, 1}, {s3, s0, 1, 1}};
  const int64_t nb = std::clamp<int64_t>(kChunkElems / (CRS * PQ), 1, p.N);
  T* dcol = gemm::scratch<T>(10, nb * CRS * PQ);
  for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
    const int64_t m = std::min(nb, p.N - n0);
    ConvParams q;
    q.N = m, q.C = K, q.H = p.P, q.W = p.Q, q.K = CRS, q.R = q.S = 1, q.P = p.P, q.Q = p.Q;
    q.groups = G;
    View4<const T> d = dy;
    d.data += n0 * dy.stride[0];
    d.size[0] = m;
    conv2d_forward_gemm(q, d, wv, static_cast<const T*>(nullptr), Activation{}, dcol,
                        static_cast<T*>(nullptr), /*cache_output=*/true, Kg * s0);
    col2im(p, m, dcol, dx + n0 * C * p.H * p.W);
  }
  return true;
}

template bool backward_data_col2im<float>(const ConvParams&, View4<const float>,
                                          View4<const float>, float*);
template bool backward_data_col2im<double>(const ConvParams&, View4<const double>,
                                           View4<const double>, double*);

}  // namespace pyconv::fast
