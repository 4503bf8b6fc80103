// Kernel selection for conv2d on the CPU: depthwise (groups == C == K) runs the
// direct kernels, backward-data with few input channels or largely zero-padded im2col
// col2im (conv_col2im.cpp), 3x3 and 5x5 stride-1 convolutions with enough channels Winograd
// F(2x2, 3x3) (conv_winograd.cpp), grouped stride-1 ones with few channels per group (and
// ungrouped ones with up to 8 source channels) a direct kernel (conv_grouped.cpp) and with
// 32 or more one ungrouped convolution per group
// (split_groups below), everything else the packed GEMM (conv_gemm.cpp) with the
// micro-kernel of the active ISA. The reference loops (conv_ref.cpp) stay as the
// oracle for tests (pyconv._C.conv2d_*_ref are not bound; tests compare with torch).
#include "conv/conv.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "act/act.h"
#include "common/buffer_cache.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "conv/conv_ref.h"
#include "gemm/gemm_driver.h"

namespace pyconv {

namespace {

// Grouped layers with 32 channels a group or more on both sides run as one ungrouped
// convolution per group, each taking the kernels an ungrouped layer of its shape takes
// (Winograd, pixel rows, col2im...), where the grouped GEMM packs every group's panels and
// the direct kernels (conv_grouped.cpp) are for few channels. The inputs are views of the
// group's channels; outputs whose groups are not contiguous (y, dx) go through a dense
// block, copied into place. Against the grouped kernels (same process, 2 threads, old and
// new builds alternated): 3x3 128 -> 128 g2 at 28x28 1.41x forward, 1.29x backward-data,
// 1.63x weight gradient; 256 -> 128 g4 at 25x25 batch 1 1.12-1.36x; 64 -> 64 g2 at 32x32
// (32 a group, the direct kernels') 1.07-1.49x; 256 -> 256 g4 at 14x14 1.12x, 1.55x and
// 0.98x; 5x5 128 -> 64 g2 at 21x21 1.20-1.29x;
// 7x7 128 -> 128 g4 at 17x17 backward 1.69x and 3.0x (its forward 1.02x). Strided layers
// stay grouped (3x3 stride 2, 128 -> 128 g2 at 56x56: 0.96x forward, 0.87x backward-data
// split: the same GEMM, plus a padded copy per group). Each group's values are computed by
// one ungrouped kernel, so results do not depend on the thread count.
// The backward-data splits from 16 input channels a group when the outputs are 64 or more
// (its reduction; then pixel rows or col2im take the groups), old and new builds
// alternated: 16 <- 64 5x5 g4 at 14x14 1.54x, 16 <- 128 5x5 g2 batch 8 1.62x, 3x3 g8 at
// 14x14 1.35x, g4 at 7x7 1.26x; 16 <- 128 5x5 g4 at 6x6 0.89x (a ResNeXt layer, on the
// same path in both builds, read 0.91x in that run). Their forward and weight gradient
// lost split (0.46-1.10x, Python-level split against the grouped call).
// Small problems stay grouped: each group's call has a fixed cost (~10 us: its parallel
// regions, packing, the copy out) that the grouped kernels pay once. The split needs 192
// output pixels a call (the backward-data's: its input's) or 6M multiply-adds a group;
// below, split against grouped (same build, 2 threads): 128 -> 128 3x3 g4 at 7x7 batch 1
// 0.61x / 0.53x / 1.05x (forward / backward-data / weight gradient), 64 -> 64 g2 at 8x8
// batch 2 0.62x / 0.54x / 0.80x, 16 <- 128 5x5 g4 at 8x8 batch 1 backward-data 0.65x; at
// or above, 196-784 pixels 1.07-1.27x, 256 -> 256 3x3 g2 at 7x7 batch 1 (7.2M a group)
// 1.12x / 1.11x / 0.91x, 128 -> 512 5x5 g4 at 8x8 (6.5M) 0.97x / 1.21x / 0.93x.
// The forward splits too from 64 input channels a group with 8 or more outputs (its
// reduction, and Winograd from 16 input channels) and kernels of several taps: split
// against grouped, same build, 2 threads, 3x3 128 -> 16 a group at 38x38 batch 1 1.61x,
// at 28x28 batch 4 1.59x, 64 -> 16 1.44x, 64 -> 8 1.25x, 128 -> 8 at 14x14 batch 8 1.45x,
// 5x5 128 -> 16 at 20x20 1.22x; 1x1 0.92x, 32 -> 8 5x5 0.77x. Their weight gradient read
// 0.94-1.31x and backward-data 0.78x: those keep the grouped kernels. These need the
// pixels (not the multiply-adds instead): 7x7 128 -> 16 a group g4 at 8x8 outputs batch 2
// (128 pixels, 12.8M a group) ran 0.60x split, at 10x10 (200) 1.15x, 12x12 1.38x.
std::atomic<int> g_split{static_cast<int>(fast::KernelMode::auto_)};
constexpr int64_t kSplitMinPixels = 192;
constexpr int64_t kSplitMinMacs = int64_t(6) << 20;
constexpr int64_t kSplitMinPlane32 = 400;

enum class Pass { forward, backward_data, backward_weight };

bool split_groups(const ConvParams& p, Pass pass) {
  const auto mode = static_cast<fast::KernelMode>(g_split.load(std::memory_order_relaxed));
  if (mode == fast::KernelMode::off || p.groups <= 1 || p.stride_h != 1 || p.stride_w != 1)
    return false;
  if (mode == fast::KernelMode::on) return true;
  const int64_t plane = pass == Pass::backward_data ? p.H * p.W : p.P * p.Q;
  const int64_t pixels = p.N * plane;
  if (pixels < kSplitMinPixels && p.N * p.P * p.Q * p.Cg() * p.Kg() * p.R * p.S < kSplitMinMacs)
    return false;
  // Forwards and backward-data at exactly 32 channels a group, the direct grouped kernel's
  // largest, split when undilated on planes of kSplitMinPlane32 (the backward-data: dx's).
  // Split against grouped (same build, 2 threads): 3x3 g4 at 56x56 batch 2 1.37x, g2 at 28x28
  // batch 4 1.06x, 5x5 g2 1.14-1.16x; at 14x14 0.70-0.71x (g4 batch 4), 0.86-0.87x (g8 batch
  // 8), 0.66x batch 1, at 9x9 0.82-0.99x. Dilated ones keep the grouped GEMM at any plane:
  // each group's call runs dilation^2 polyphase sub-problems, one at a time when their shapes
  // differ (old/new builds alternated: 3x3 d2 at 25x25 batch 1 1.51x forward, 1.39x
  // backward-data, at 28x28 batch 4 1.13-1.16x, g4 at 14x14 1.10x / 0.96x; split, 48 a group
  // won 1.11-1.14x, 64 1.04-1.48x). The weight gradient splits at 32 (1.38x at 9x9).
  const bool direct32 = p.Cg() == 32 && p.Kg() == 32 && pass != Pass::backward_weight &&
                        (p.dil_h > 1 || p.dil_w > 1 || plane < kSplitMinPlane32);
  return (p.Cg() >= 32 && p.Kg() >= 32 && !direct32) ||
         (pass == Pass::backward_data && p.Cg() >= 16 && p.Kg() >= 64) ||
         (pass == Pass::forward && p.Cg() >= 64 && p.Kg() >= 8 && p.R * p.S > 1 &&
          pixels >= kSplitMinPixels);
}

ConvParams one_group(const ConvParams& p) {
  ConvParams q = p;
  q.C = p.Cg(), q.K = p.Kg(), q.groups = 1;
  return q;
}

// Channels [c0, c0 + n) of v (dimension 1), or rows of a filter (dimension 0).
template <typename T>
View4<const T> slice(View4<const T> v, int dim, int64_t c0, int64_t n) {
  v.data += c0 * v.stride[dim];
  v.size[dim] = n;
  return v;
}

// A dense (N, per) block from the buffer cache (a group's output channels), and its copy
// into an array whose images are image_stride apart.
template <typename T>
struct GroupBlock {
  T* p = nullptr;
  int64_t N, per;
  GroupBlock(int64_t N_, int64_t per_) : N(N_), per(per_) {
    if (N * per > 0) p = static_cast<T*>(cache::acquire(sizeof(T) * N * per));
  }
  ~GroupBlock() { cache::release(p); }
  GroupBlock(const GroupBlock&) = delete;
  GroupBlock& operator=(const GroupBlock&) = delete;
  void copy_to(T* out, int64_t image_stride) const {
#pragma omp parallel for schedule(static) num_threads(threads_for(N * per))
    for (int64_t n = 0; n < N; ++n)
      std::copy(p + n * per, p + (n + 1) * per, out + n * image_stride);
  }
};

// Output pixels whose window reads only zero padding (padding wider than the kernel's reach:
// DeepBench's 1x1 layers with padding 3 and stride 2 read the input at 9 of 49 output
// pixels) are act(bias) forward and add nothing to either gradient. When they are an eighth of
// the output or more, the convolution runs on the window of outputs that read the input and
// the window of input they read (views; its padding recomputed), and the rest is filled in.
// Per dimension: outputs [o0, o1), input [i0, i1); o0 == o1 when no output reads the input.
struct CropDim {
  int64_t o0 = 0, o1 = 0, i0 = 0, i1 = 0, pad0 = 0, pad1 = 0;
};

CropDim crop_dim(int64_t H, int64_t P, int64_t s, int64_t d, int64_t R, int64_t pad) {
  const auto reads = [&](int64_t o) {
    for (int64_t r = 0; r < R; ++r)
      if (const int64_t i = o * s - pad + r * d; i >= 0 && i < H) return true;
    return false;
  };
  CropDim c;
  while (c.o0 < P && !reads(c.o0)) ++c.o0;
  if (c.o0 == P) return CropDim{};
  c.o1 = P;
  while (!reads(c.o1 - 1)) --c.o1;
  const int64_t first = c.o0 * s - pad, reach = (R - 1) * d + 1;
  c.i0 = std::max<int64_t>(0, first);
  c.i1 = std::min(H, (c.o1 - 1) * s - pad + reach);
  c.pad0 = c.i0 - first;
  c.pad1 = (c.o1 - c.o0 - 1) * s + reach - (c.i1 - c.i0) - c.pad0;
  return c;
}

struct Crop {
  CropDim h, w;
  ConvParams q;  // the cropped convolution
  bool empty() const { return h.o0 == h.o1 || w.o0 == w.o1; }
};

// Whether p has an eighth or more of its outputs reading only padding (then c holds the crop).
bool crop_padding(const ConvParams& p, Crop& c) {
  if (p.N == 0 || p.C == 0 || p.K == 0 || p.P == 0 || p.Q == 0) return false;
  c.h = crop_dim(p.H, p.P, p.stride_h, p.dil_h, p.R, p.pad_top);
  c.w = crop_dim(p.W, p.Q, p.stride_w, p.dil_w, p.S, p.pad_left);
  const int64_t kept = c.empty() ? 0 : (c.h.o1 - c.h.o0) * (c.w.o1 - c.w.o0);
  if (8 * (p.P * p.Q - kept) < p.P * p.Q) return false;
  c.q = p;
  c.q.H = c.h.i1 - c.h.i0, c.q.W = c.w.i1 - c.w.i0;
  c.q.P = c.h.o1 - c.h.o0, c.q.Q = c.w.o1 - c.w.o0;
  c.q.pad_top = c.h.pad0, c.q.pad_bottom = c.h.pad1;
  c.q.pad_left = c.w.pad0, c.q.pad_right = c.w.pad1;
  return true;
}

// v's rows [a.o0, a.o1) and columns [b.o0, b.o1) (out: true) or [i0, i1) (false).
template <typename T>
View4<const T> window(View4<const T> v, const CropDim& a, const CropDim& b, bool out) {
  const int64_t r0 = out ? a.o0 : a.i0, c0 = out ? b.o0 : b.i0;
  v.data += r0 * v.stride[2] + c0 * v.stride[3];
  v.size[2] = out ? a.o1 - a.o0 : a.i1 - a.i0;
  v.size[3] = out ? b.o1 - b.o0 : b.i1 - b.i0;
  return v;
}

// Planes (N*C of H x W) from a block of planes of the window [r0, r0 + h) x [c0, c0 + w)
// (null: none), every value outside it fill[plane % C].
template <typename T>
void place_window(T* out, int64_t NC, int64_t C, int64_t H, int64_t W, const T* block,
                  int64_t r0, int64_t h, int64_t c0, int64_t w, const T* fill) {
#pragma omp parallel for schedule(static) num_threads(threads_for(NC * H * W))
  for (int64_t i = 0; i < NC; ++i) {
    T* o = out + i * H * W;
    const T f = fill ? fill[i % C] : T(0);
    const T* b = block ? block + i * h * w : nullptr;
    for (int64_t r = 0; r < H; ++r, o += W) {
      if (!b || r < r0 || r >= r0 + h) {
        std::fill(o, o + W, f);
        continue;
      }
      std::fill(o, o + c0, f);
      std::copy(b + (r - r0) * w, b + (r - r0 + 1) * w, o + c0);
      std::fill(o + c0 + w, o + W, f);
    }
  }
}

// The output channels whose padding-only outputs are NaN, as torch computes them: a padding
// zero times an inf or NaN weight. Such a weight makes the kept outputs' sums non-finite too
// (every kernel multiplies the cropped convolution's padding as torch does, or finds the
// products it skipped), in every image: only the channels with a non-finite sum in image 0
// (zsum) have their filters searched (all of them when no output reads the input).
template <typename T>
std::vector<char> padding_nan(const Crop& c, View4<const T> w, const T* zsum) {
  const int64_t K = w.size[0], plane = c.empty() ? 0 : c.q.P * c.q.Q;
  const auto finite = [](T v) { return v - v == T(0); };
  std::vector<char> bad(K, 0);
  for (int64_t k = 0; k < K; ++k) {
    bool sums = plane == 0;
    for (int64_t j = 0; j < plane; ++j) sums |= !finite(zsum[k * plane + j]);
    for (int64_t ci = 0; ci < w.size[1] && sums && !bad[k]; ++ci)
      for (int64_t r = 0; r < w.size[2]; ++r)
        for (int64_t s = 0; s < w.size[3]; ++s) bad[k] |= !finite(w.at(k, ci, r, s));
  }
  return bad;
}

// torch's backward-data adds a product only where a tap reads grad_output; the fast kernels
// here also multiply the zeros around it (the padding, the stride phases' gaps), exact for
// finite weights but NaN for an inf or NaN one (0 * inf) where torch has a finite value or
// an inf. Every other value is torch's: only NaN ones can be wrong. So when dx holds a NaN
// and w is not finite, each NaN of dx is computed again from the taps that read grad_output
// (ref::conv2d_backward_data_at; a NaN of torch's comes back NaN). The smaller of w and dx
// is looked at first (w finite, or dx all finite: nothing to do), so the check costs a
// vectorised pass over the smaller (the weights, 25K values, on CIFAR-10 conv2's, against
// its 0.5M of dx).
template <typename T>
void repair_padding_products(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  const int64_t plane = p.H * p.W, n_dx = p.N * p.C * plane;
  if (n_dx == 0 || (p.R == 1 && p.S == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                    p.pad_bottom == 0 && p.pad_right == 0))
    return;  // (a 1x1 layer without padding reads no zeros around dy)
  View4<const T> dxv;
  dxv.data = dx;
  dxv.size[0] = p.N, dxv.size[1] = p.C, dxv.size[2] = p.H, dxv.size[3] = p.W;
  dxv.stride[3] = 1, dxv.stride[2] = p.W, dxv.stride[1] = plane, dxv.stride[0] = p.C * plane;
  if (w.numel() <= n_dx ? fast::all_finite(w) || fast::all_finite(dxv)
                        : fast::all_finite(dxv) || fast::all_finite(w))
    return;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(n_dx))
  for (int64_t i = 0; i < p.N * p.C; ++i)
    for (int64_t j = 0; j < plane; ++j)
      if (T& v = dx[i * plane + j]; v != v)
        v = ref::conv2d_backward_data_at(p, dy, w, i / p.C, i % p.C, j / p.W, j % p.W);
}

}  // namespace

template <typename T>
bool fast::all_finite(View4<const T> v) {
  // (The sum of the values times zero: zero, else NaN; vectorised along the values in
  // memory order where v is dense, along its rows otherwise. Row by row, a filter's rows of
  // 3-7 values cost a loop each: 2-3% of a small backward-data.)
  const int64_t n = v.numel();
  T z = 0;
  if (v.stride[3] == 1 && v.stride[2] == v.size[3] && v.stride[1] == v.size[2] * v.size[3] &&
      (v.size[0] == 1 || v.stride[0] == v.size[1] * v.stride[1])) {
#pragma omp parallel for simd reduction(+ : z) num_threads(threads_for(n))
    for (int64_t i = 0; i < n; ++i) z += v.data[i] * T(0);
    return z == T(0);
  }
#pragma omp parallel for collapse(2) reduction(+ : z) num_threads(threads_for(n))
  for (int64_t a = 0; a < v.size[0]; ++a)
    for (int64_t b = 0; b < v.size[1]; ++b)
      for (int64_t c = 0; c < v.size[2]; ++c) {
        const T* r = &v.at(a, b, c, 0);
        T zr = 0;
#pragma omp simd reduction(+ : zr)
        for (int64_t d = 0; d < v.size[3]; ++d) zr += r[d * v.stride[3]] * T(0);
        z += zr;
      }
  return z == T(0);
}
template bool fast::all_finite<float>(View4<const float>);
template bool fast::all_finite<double>(View4<const double>);

void fast::set_group_split_mode(KernelMode m) { g_split.store(static_cast<int>(m)); }

template <typename T>
void conv2d_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact) {
  if (Crop c; crop_padding(p, c)) {
    const int64_t per = c.empty() ? 0 : p.K * c.q.P * c.q.Q;
    GroupBlock<T> yb(p.N, per), zb(p.N, per);  // (z: the sums, before act hides an inf)
    if (per) conv2d_forward(c.q, window(x, c.h, c.w, false), w, bias, act, yb.p, zb.p);
    const std::vector<char> bad = padding_nan(c, w, zb.p);
    std::vector<T> z(p.K);  // the outputs that read padding only: z, then a = act(z)
    for (int64_t k = 0; k < p.K; ++k)
      z[k] = (bias ? bias[k] : T(0)) + (bad[k] ? std::numeric_limits<T>::quiet_NaN() : T(0));
    std::vector<T> a = z;
    bias_activation<T>(1, p.K, 1, nullptr, act, a.data(), nullptr);
    place_window(y, p.N * p.K, p.K, p.P, p.Q, yb.p, c.h.o0, c.q.P, c.w.o0, c.q.Q, a.data());
    if (preact)
      place_window(preact, p.N * p.K, p.K, p.P, p.Q, zb.p, c.h.o0, c.q.P, c.w.o0, c.q.Q,
                   z.data());
    return;
  }
  if (split_groups(p, Pass::forward)) {
    const ConvParams q = one_group(p);
    const int64_t per = q.K * p.P * p.Q;
    GroupBlock<T> yb(p.N, per), zb(preact ? p.N : 0, per);
    for (int64_t g = 0; g < p.groups; ++g) {
      conv2d_forward(q, slice(x, 1, g * q.C, q.C), slice(w, 0, g * q.K, q.K),
                     bias ? bias + g * q.K : nullptr, act, yb.p, zb.p);
      yb.copy_to(y + g * per, p.K * p.P * p.Q);
      if (preact) zb.copy_to(preact + g * per, p.K * p.P * p.Q);
    }
    return;
  }
  const gemm::ScratchScope scope;  // (whole-array scratch back to the cache on return)
  if (fast::is_depthwise(p))
    fast::depthwise_forward(p, x, w, bias, act, y, preact);
  else if (!fast::direct_forward(p, x, w, bias, act, y, preact) &&
           !fast::winograd_forward(p, x, w, bias, act, y, preact) &&
           !fast::grouped_forward(p, x, w, bias, act, y, preact))
    fast::conv2d_forward_gemm(p, x, w, bias, act, y, preact);
}

template <typename T>
void conv2d_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  if (Crop c; crop_padding(p, c)) {
    const int64_t per = c.empty() ? 0 : p.C * c.q.H * c.q.W;
    GroupBlock<T> xb(p.N, per);
    if (per) conv2d_backward_data(c.q, window(dy, c.h, c.w, true), w, xb.p);
    place_window(dx, p.N * p.C, p.C, p.H, p.W, xb.p, c.h.i0, c.q.H, c.w.i0, c.q.W,
                 static_cast<const T*>(nullptr));
    return;
  }
  const gemm::ScratchScope scope;
  if (fast::is_depthwise(p)) {
    fast::depthwise_backward_data(p, dy, w, dx);
  } else if (fast::direct_backward_data(p, dy, w, dx)) {
  } else if (fast::backward_data_col2im(p, dy, w, dx)) {
    // (grouped col2im before the split: a group alone may go to pixel rows instead, 2.25x
    // slower on 16 <- 128 a group 7x7 unpadded at 15x15)
  } else if (split_groups(p, Pass::backward_data)) {
    const ConvParams q = one_group(p);
    const int64_t per = q.C * p.H * p.W;
    GroupBlock<T> xb(p.N, per);
    for (int64_t g = 0; g < p.groups; ++g) {
      conv2d_backward_data(q, slice(dy, 1, g * q.K, q.K), slice(w, 0, g * q.K, q.K), xb.p);
      xb.copy_to(dx + g * per, p.C * p.H * p.W);
    }
    return;  // (each group's call repaired its values)
  } else if (fast::winograd_backward_data(p, dy, w, dx)) {
    return;  // (all finite: it leaves a non-finite result to the GEMM)
  } else if (!fast::grouped_backward_data(p, dy, w, dx)) {
    fast::conv2d_backward_data_gemm(p, dy, w, dx);
  }
  repair_padding_products(p, dy, w, dx);
}

// The cropped-away pixels' share of a weight gradient: their taps all read padding, so
// zero, but NaN in every weight of an output channel with a non-finite grad_output value
// there (torch's inf or NaN times the padding's zeros).
template <typename T>
void cropped_nonfinite(const ConvParams& p, View4<const T> dy, const Crop& c, T* dw) {
  const int64_t row = p.Cg() * p.R * p.S;
  const auto kept = [&](int64_t oh, int64_t ow) {
    return !c.empty() && oh >= c.h.o0 && oh < c.h.o1 && ow >= c.w.o0 && ow < c.w.o1;
  };
#pragma omp parallel for schedule(static) num_threads(threads_for(dy.numel()))
  for (int64_t k = 0; k < p.K; ++k) {
    bool bad = false;
    for (int64_t n = 0; n < p.N && !bad; ++n)
      for (int64_t oh = 0; oh < p.P && !bad; ++oh)
        for (int64_t ow = 0; ow < p.Q && !bad; ++ow)
          bad = !kept(oh, ow) && !std::isfinite(dy.at(n, k, oh, ow));
    if (bad) std::fill(dw + k * row, dw + (k + 1) * row, std::numeric_limits<T>::quiet_NaN());
  }
}

template <typename T>
void conv2d_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  if (Crop c; crop_padding(p, c)) {
    if (c.empty())
      std::fill(dw, dw + p.K * p.Cg() * p.R * p.S, T(0));
    else
      conv2d_backward_weight(c.q, window(dy, c.h, c.w, true), window(x, c.h, c.w, false), dw);
    cropped_nonfinite(p, dy, c, dw);
    return;
  }
  if (split_groups(p, Pass::backward_weight)) {  // (a group's filter rows are contiguous in dw)
    const ConvParams q = one_group(p);
    for (int64_t g = 0; g < p.groups; ++g)
      conv2d_backward_weight(q, slice(dy, 1, g * q.K, q.K), slice(x, 1, g * q.C, q.C),
                             dw + g * q.K * q.C * p.R * p.S);
    return;
  }
  const gemm::ScratchScope scope;
  if (fast::is_depthwise(p))
    fast::depthwise_backward_weight(p, dy, x, dw);
  else if (!fast::backward_weight_boxes(p, dy, x, dw) &&
           !fast::winograd_backward_weight(p, dy, x, dw) &&
           !fast::grouped_backward_weight(p, dy, x, dw))
    fast::conv2d_backward_weight_gemm(p, dy, x, dw);
}

template <typename T>
void conv2d_backward_bias(View4<const T> dy, T* db) {
  fast::backward_bias(dy, db);
}

template <typename T>
void bias_activation(int64_t N, int64_t C, int64_t HW, const T* bias, Activation act, T* y,
                     T* preact) {
  // Small outputs (a linear layer's) cost less than waking the thread team.
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads()) if (N * C * HW >= (1 << 16))
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      T* yc = y + (n * C + c) * HW;
      T* zc = preact ? preact + (n * C + c) * HW : nullptr;
      bias_activation_serial(
          act, EpilogueBlock<T>{yc, 0, yc, 0, 1, HW, bias ? bias + c : nullptr, 0, 0, zc});
    }
}

#define PYCONV_INSTANTIATE(T)                                                                  \
  template void conv2d_forward<T>(const ConvParams&, View4<const T>, View4<const T>, const T*, \
                                  Activation, T*, T*);                                         \
  template void conv2d_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>, T*); \
  template void conv2d_backward_weight<T>(const ConvParams&, View4<const T>, View4<const T>,   \
                                          T*);                                                 \
  template void conv2d_backward_bias<T>(View4<const T>, T*);                                \
  template void bias_activation<T>(int64_t, int64_t, int64_t, const T*, Activation, T*, T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv
