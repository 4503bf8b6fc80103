// Fast CPU conv2d kernels (dispatched from conv.cpp; same contracts as conv.h:
// every function WRITES its output).
//  - *_gemm: packed GEMM (gemm/gemm_driver.h) with implicit-im2col packers.
//      forward:       per group, C[Kg x N*P*Q] = W[Kg x Cg*R*S] * im2col(x)
//      backward_data: per group and stride phase (ih % sh, iw % sw), a dense GEMM over
//                     only the taps that hit the phase: C[Cg x N*Hph*Wph] = W'^T * im2col'(dy)
//      backward_weight: per group, C[Kg x Cg*R*S] = dy[Kg x N*P*Q] * im2col(x)^T, the
//                     reduction split into a fixed (shape-only) number of chunks whose
//                     partial sums are added in chunk order.
//  - depthwise_* (groups == C == K): direct kernels vectorised along W.
//  - winograd_*: F(2x2, 3x3) transforms around 16 GEMMs, for 3x3 and 5x5 stride 1.
#pragma once
#include <algorithm>
#include <vector>

#include "common/activation.h"
#include "common/parallel.h"
#include "common/tensor.h"
#include "conv/conv_params.h"

#if defined(PYCONV_X86)
namespace pyconv::avx2 {
// dst[l*ldd + q] = rows[q][off + l] for q < 8, l < len (pack_avx2.cpp).
void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd);
// dst[l*ldd + q] += rows[q][l] for q < 8, l < len (pack_avx2.cpp).
void transpose8_rows_add_float(const float* const* rows, int64_t len, float* dst, int64_t ldd);
}  // namespace pyconv::avx2
#endif

namespace pyconv::fast {

// cache_output: true when the output is a scratch that is read again right away (col2im's
// dcol); otherwise outputs of 12 MiB and more may be written around the caches
// (conv_gemm.cpp, stream_output). w_group_stride: group g's filters start at
// w.data + g * w_group_stride (0: Kg filters on, w's own layout; col2im's W^T, a view of a
// grouped filter, has its groups Kg filters of w apart).
template <typename T>
void conv2d_forward_gemm(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                         Activation act, T* y, T* preact, bool cache_output = false,
                         int64_t w_group_stride = 0);
template <typename T>
void conv2d_backward_data_gemm(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
// Backward-data as dcol = W^T dy (a 1x1 convolution on the GEMM path) and col2im
// (conv_col2im.cpp), for ungrouped convolutions with at most 8 input channels and at least
// 32 and 4x as many output channels, or whose stride-phase GEMM would spend 30% of its
// multiplies on zero padding, and at most 2^23 dcol values per image: returns
// false, doing nothing, when it does not apply.
template <typename T>
bool backward_data_col2im(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
// y[n*ldy + g*L + l] = sum over k < K of x[n*ldx + g*K + k] * w[(g*K + k)*ldw + l], for
// n < N, g < G, l < L: each group's K rows of w (L contiguous values each) combined by N
// vectors, every row streamed once per two vectors, columns across the threads
// (conv_gemm.cpp). For at most kGemvImages vectors: beyond, the GEMM's reuse of the rows wins.
template <typename T>
void combine_rows(int64_t N, int64_t G, int64_t K, int64_t L, const T* w, int64_t ldw,
                  const T* x, int64_t ldx, T* y, int64_t ldy);
// Images (vectors) up to which a layer with one output value per filter and image runs as
// matrix-vector products (conv_gemm.cpp's gemv_fits): each output is the dot product of a
// filter row with an image, both contiguous, and the GEMM would copy every filter value
// (packing) to use it a few times (a batch-1 1024 -> 64 linear: 40 us, numpy 5). Images go
// in pairs, each pair reading the filter once: at 8 images a 16 MB filter read four times
// ran 0.91x of the GEMM, at 3 and 4 images 1.4-4x (small and large filters).
constexpr int64_t kGemvImages = 4;
template <typename T>
void conv2d_backward_weight_gemm(const ConvParams& p, View4<const T> dy, View4<const T> x,
                                 T* dw);

// A kernel choice that tests force on (wherever it applies) or off; process-wide.
enum class KernelMode { off = 0, auto_ = 1, on = 2 };
// Whether backward_data_col2im takes a convolution (auto: the few-channel layers above, and
// layers whose stride-phase GEMM would multiply largely zero padding: use_col2im in
// conv_col2im.cpp).
void set_col2im_mode(KernelMode m);
// Whether a grouped stride-1 convolution runs as one ungrouped convolution per group (on:
// every one; auto: split_groups in conv.cpp).
void set_group_split_mode(KernelMode m);

// Outputs of 12 MiB and more (forward, stride-1 backward-data; over a third of the 32 MiB
// L3 of this machine kind), written by two or more threads, go out with non-temporal
// stores from the micro-kernel's registers (conv_gemm.cpp; the direct kernel of few source
// channels too, conv_grouped.cpp): the reads for ownership of every line are what
// write-heavy convolutions wait on, and such outputs would not stay cached for their
// reader anyway. Measured here (same-process A/B, 2 threads) in the machine's two states:
// when other tenants keep its L3 busy, 1x1 64 -> 256 at 56x56 (12.8 MB) 1.56x, the 7x7
// stem (12.8 MB) 1.16x, and also CIFAR-10 conv1 (8 MiB) 1.20x and DCGAN 64 -> 3's
// backward-data (4 MiB) 1.39x; when they do not, 1.04-1.07x and 1.00-1.02x, but conv1
// 0.89-0.91x and DCGAN 0.87-0.88x (their outputs stay in L3 between calls): hence the
// threshold. (glibc's sysconf reports 256 MiB of L3 in this VM, the host's: not used.)
// One thread alone lost with them: it keeps cached stores (same values either way, so the
// choice may depend on the thread count).
constexpr int64_t kStreamOutBytes = int64_t(12) << 20;
inline bool stream_output(int64_t values, size_t elem) {
  return num_threads() > 1 && values * static_cast<int64_t>(elem) >= kStreamOutBytes;
}

// The forward / stride-1 backward-data GEMM with output pixels as the tile's rows
// (conv_gemm.cpp; auto: ungrouped, kernels of several taps at up to 432 output pixels with
// 256+ reduction values, 1x1 at up to 144 with a large filter, few channels and long
// reductions: long_reduction, or kernels past 3x3 on largely padding: skips_padding).
void set_pixel_rows_mode(KernelMode m);
// Whether pixel rows skip the taps that read only zero padding (off: they compute every
// tap; auto and on: plan_pixels in conv_gemm.cpp). Same results either way.
void set_tap_skip_mode(KernelMode m);
// How many (6-pixel panel, tap) pairs pixel rows have skipped so far (tests).
int64_t taps_skipped();
// Whether pixel rows take a convolution of any number of pixels for its M output channels
// and Kd reduction values of elem bytes each (few channels, long reductions;
// conv_gemm.cpp). Winograd's 5x5 gate defers to it for few outputs.
bool long_reduction(const ConvParams& p, int64_t M, int64_t Kd, size_t elem);
// [lo[g], hi[g]): the taps t with 0 <= g*st + off[t] < extent, for g < G (empty: 0, 0; off
// monotone in t, so they are a range): which taps of grid position g read the source rather
// than its zero padding.
inline void tap_ranges(int64_t G, int64_t st, const std::vector<int64_t>& off, int64_t extent,
                       std::vector<int64_t>& lo, std::vector<int64_t>& hi) {
  lo.assign(static_cast<size_t>(G), 0), hi.assign(static_cast<size_t>(G), 0);
  for (int64_t g = 0; g < G; ++g) {
    bool any = false;
    for (size_t t = 0; t < off.size(); ++t) {
      const int64_t at = g * st + off[t];
      if (at < 0 || at >= extent) continue;
      if (!any) lo[g] = static_cast<int64_t>(t), any = true;
      hi[g] = static_cast<int64_t>(t) + 1;
    }
  }
}
// The share of an im2col's (pixel, tap) pairs that read the source rather than its zero
// padding: the forward's (P x Q outputs, taps into the H x W input; also col2im's share of
// dcol landing inside dx), or a stride-1 backward-data's (H x W input-gradient pixels, taps
// into the P x Q grad_output).
inline double landed(const ConvParams& p, bool backward_data = false) {
  auto share = [](int64_t G, int64_t st, int64_t R, int64_t d, int64_t pad, int64_t extent,
                  bool flip) {
    std::vector<int64_t> off(static_cast<size_t>(R)), lo, hi;
    for (int64_t r = 0; r < R; ++r) off[r] = flip ? pad - r * d : r * d - pad;
    tap_ranges(G, st, off, extent, lo, hi);
    int64_t in = 0;
    for (int64_t g = 0; g < G; ++g) in += hi[g] - lo[g];
    return G * R > 0 ? double(in) / double(G * R) : 1.0;
  };
  if (backward_data)
    return share(p.H, 1, p.R, p.dil_h, p.pad_top, p.P, true) *
           share(p.W, 1, p.S, p.dil_w, p.pad_left, p.Q, true);
  return share(p.P, p.stride_h, p.R, p.dil_h, p.pad_top, p.H, false) *
         share(p.Q, p.stride_w, p.S, p.dil_w, p.pad_left, p.W, false);
}
// Whether pixel rows take a stride-1 forward or backward-data (M output channels, Kd
// reduction values of elem bytes each) at any number of pixels for the zero padding they
// skip (conv_gemm.cpp); Winograd's 5x5 gate defers to it except on planes of whole tile rows
// of 4 (8x8).
bool skips_padding(const ConvParams& p, int64_t M, int64_t Kd, size_t elem, bool backward_data);
// Stride-1 backward-data of kernels with more taps than this, on a grad_output whose im2col
// is largely padding, runs pixel rows (which skip the padding's taps), not col2im, unless
// it has few input channels (use_col2im): both gates read it (use_pixel_rows, use_col2im).
constexpr int64_t kSkipPaddingMinTaps = 25;
// The weight gradient tap by tap over the output pixels whose taps land in the input
// (conv_wgrad_boxes.cpp): false, doing nothing, where it does not apply (auto: layers whose
// im2col is largely padding), and when a gradient came out non-finite (to be recomputed).
void set_wgrad_boxes_mode(KernelMode m);
template <typename T>
bool backward_weight_boxes(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw);
// Winograd F(2x2, 3x3) (conv_winograd.cpp) for stride-1 undilated ungrouped
// convolutions (auto: 3x3 and 5x5 with enough channels and tiles). Returns false when
// it does not apply or (auto mode) would not pay off, doing nothing, and when an output
// came out non-finite (its output is then to be recomputed).
void set_winograd_mode(KernelMode m);
// Whether p's output planes are whole 2x2 tiles in rows of a divisor of 16 tiles (8x8, 16x16,
// 32x32 outputs): the layouts on which Winograd's 5x5 runs its best blocks.
bool winograd_aligned(const ConvParams& p);
template <typename T>
bool winograd_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                      Activation act, T* y, T* preact);
template <typename T>
bool winograd_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
template <typename T>
bool winograd_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw);

// Direct forward with output channels as the vector lanes (conv_direct.cpp; float32 on
// AVX-512, ungrouped, column stride 1 or 2): returns false, doing nothing, where it does not
// apply or (auto) would not pay off.
void set_direct_mode(KernelMode m);
// The backward-data the same way (dx's channels as the lanes; float32 on AVX-512,
// ungrouped): at stride 1 the forward of the flipped filter on grad_output, at stride 2
// (undilated) each pair of dx columns reading one grad_output value a reduction step. False,
// doing nothing, where it does not apply, (auto) would not pay off, or an odd kernel's
// stride-2 pairs would meet a non-finite grad_output.
void set_direct_bd_mode(KernelMode m);
template <typename T>
bool direct_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
// How many convolutions the direct kernels have computed so far (tests).
int64_t direct_calls();
template <typename T>
bool direct_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact);

// Direct AVX2 kernel (conv_grouped.cpp) for grouped stride-1 convolutions with at most
// 32 channels per group (float, all three passes): returns false, doing nothing, when it
// does not apply.
template <typename T>
bool grouped_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                     Activation act, T* y, T* preact);
template <typename T>
bool grouped_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
// Whether grouped_backward_data<float> takes p, a grouped layer (col2im defers to it).
bool grouped_takes_backward_data(const ConvParams& p);
template <typename T>
bool grouped_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw);

// One row of width W from its column phases: d[pw + sw*j] = src[pw][j] (phase pw holds
// ceil((W - pw) / sw) values; min(sw, W) phases). Stride 2, the usual one, in one sequential
// pass over two sources.
template <typename T>
inline void interleave_phase_row(T* d, int64_t W, int64_t sw, const T* const* src) {
  if (sw == 2 && W >= 2) {
    const T* a = src[0];
    const T* b = src[1];
    for (int64_t j = 0; j < W / 2; ++j) {
      d[2 * j] = a[j];
      d[2 * j + 1] = b[j];
    }
    if (W % 2) d[W - 1] = a[W / 2];
    return;
  }
  for (int64_t pw = 0; pw < sw && pw < W; ++pw)
    for (int64_t j = 0; pw + sw * j < W; ++j) d[pw + sw * j] = src[pw][j];
}

// The inverse: dst[pw][j] = s[(pw + sw*j) * ss] for every phase pw < min(sw, W).
template <typename T>
inline void deinterleave_phase_row(const T* s, int64_t ss, int64_t W, int64_t sw, T* const* dst) {
  if (sw == 2 && ss == 1 && W >= 2) {
    T* a = dst[0];
    T* b = dst[1];
    for (int64_t j = 0; j < W / 2; ++j) {
      a[j] = s[2 * j];
      b[j] = s[2 * j + 1];
    }
    if (W % 2) a[W / 2] = s[W - 1];
    return;
  }
  for (int64_t pw = 0; pw < sw && pw < W; ++pw)
    for (int64_t j = 0; pw + sw * j < W; ++j) dst[pw][j] = s[(pw + sw * j) * ss];
}

// The polyphase sub-images of planes of H x W under steps (dh, dw): sub-image (r, c), for
// r < min(dh, H) and c < min(dw, W), holds rows r, r + dh, ... and columns c, c + dw, ... of
// every plane, as a contiguous (planes, ceil((H - r) / dh), ceil((W - c) / dw)) array at
// sub[r * min(dw, W) + c]. Stride-phase and dilation-phase kernels compute on these dense
// sub-images; merge_phases and split_phases move between them and the whole planes in one
// pass over the planes, row by row (a row of residue r from or to the min(dw, W) sub-images
// of that row residue), instead of one strided pass per sub-image.
inline int64_t phase_len(int64_t n, int64_t r, int64_t d) {
  return n > r ? (n - r + d - 1) / d : 0;
}

// Where row h of plane pl lies in each sub-image of its row residue: base[c] + at(pl, h)
// for c < min(dw, W) (the lengths looked up, not divided, per row).
struct PhaseRows {
  int64_t H, dh, ndw;
  std::vector<int64_t> rows, cols;  // the sub-images' heights by r, widths by c
  PhaseRows(int64_t H_, int64_t W, int64_t dh_, int64_t dw)
      : H(H_), dh(dh_), ndw(std::min(dw, W)) {
    for (int64_t r = 0; r < std::min(dh, H); ++r) rows.push_back(phase_len(H, r, dh));
    for (int64_t c = 0; c < ndw; ++c) cols.push_back(phase_len(W, c, dw));
  }
  // ptr[c] = sub[r*ndw + c] + (pl * rows[r] + h / dh) * cols[c], r = h % dh; t = pl*H + h.
  template <typename P>
  void at(P* const* sub, int64_t t, P** ptr) const {
    const int64_t h = t % H, r = h % dh, i = t / H * rows[static_cast<size_t>(r)] + h / dh;
    for (int64_t c = 0; c < ndw; ++c) ptr[c] = sub[r * ndw + c] + i * cols[static_cast<size_t>(c)];
  }
};

// dst (planes of H x W, contiguous) from its sub-images.
template <typename T>
void merge_phases(const T* const* sub, int64_t planes, int64_t H, int64_t W, int64_t dh,
                  int64_t dw, T* dst) {
  const PhaseRows pr(H, W, dh, dw);
#pragma omp parallel num_threads(threads_for(planes * H * W))
  {
    std::vector<const T*> rows(static_cast<size_t>(pr.ndw));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < planes * H; ++t) {
      pr.at(sub, t, rows.data());
      interleave_phase_row(dst + t * W, W, dw, rows.data());
    }
  }
}

// The sub-images of src (N, C, H, W), any strides; planes n*C + c.
template <typename T>
void split_phases(View4<const T> src, int64_t dh, int64_t dw, T* const* sub) {
  const int64_t C = src.size[1], H = src.size[2], W = src.size[3], NCH = src.size[0] * C * H;
  const PhaseRows pr(H, W, dh, dw);
#pragma omp parallel num_threads(threads_for(NCH * W))
  {
    std::vector<T*> rows(static_cast<size_t>(pr.ndw));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < NCH; ++t) {
      pr.at(sub, t, rows.data());
      const int64_t pl = t / H;
      deinterleave_phase_row(src.data + pl / C * src.stride[0] + pl % C * src.stride[1] +
                                 t % H * src.stride[2],
                             src.stride[3], W, dw, rows.data());
    }
  }
}

inline bool is_depthwise(const ConvParams& p) {
  return p.groups > 1 && p.groups == p.C && p.K == p.C;
}
template <typename T>
void depthwise_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                       Activation act, T* y, T* preact);
template <typename T>
void depthwise_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx);
template <typename T>
void depthwise_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw);

template <typename T>
void backward_bias(View4<const T> dy, T* db);

// Whether every value of v is finite (conv.cpp).
template <typename T>
bool all_finite(View4<const T> v);

}  // namespace pyconv::fast
