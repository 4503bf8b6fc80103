// The weight gradient tap by tap over the output pixels whose tap lands in the input
// ("landed boxes"): for tap (r, s) the pixels that read x rather than its zero padding form
// a box [p0, p1) x [q0, q1) of every image, and
//   dw[k, c, r, s] = sum over n and the box of dy[n, k, p, q] * x[n, c, ih(p, r), iw(q, s)].
// The taps-as-columns GEMM (conv_gemm.cpp) and Winograd multiply the padding's zeros too:
// 31% of a 5x5 "same" layer's products at 7x7, 23% of a 7x7's at 14x14.
// One GEMM per tap, neither operand materialised as an im2col: one side's channels as the
// tile's rows, read in place through row pointers at the box's pixel offsets, the other
// side's as its columns, transposed once into NR-wide panels (each pixel's NR channels
// contiguous), both walked by gemm::KSel (the micro-kernels' box form: offsets within an
// image, then the next image).
// The reduction (image, box pixel) goes in chunks of images, each in KBlocks of its own
// length, one task per (chunk, block of panels, tap); the chunks' partial sums are added in
// chunk order. Each weight's sum is so fixed by the shape alone, whatever the threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "common/cpu.h"
#include "conv/conv_fast.h"
#include "gemm/gemm_driver.h"

namespace pyconv::fast {

namespace {

// Bytes of the rows and panels of a chunk of images (below): within an L2 across the taps.
constexpr int64_t kChunkBytes = int64_t(512) << 10;
// Taken (auto) where at most this fraction of the (pixel, tap) pairs land, and a chunk's
// average tap has a KC block of reduction or more. Against the auto choice before (the GEMM
// or Winograd; old/new alternated, 2 threads, Intel Xeon): 5x5 at 7x7 batch 128, 32 -> 128
// 1.56x, 48 -> 128 1.52x (69% landed), 7x7 64 -> 64 at 14x14 batch 16 1.21x (77%); at 84%
// (5x5 at 14x14, 16-32 -> 48-128) 0.99-1.13x, at 92% (28x28) 0.90-0.93x, 3x3 64 -> 64 at
// 7x7 (82%) 0.82x; chunks of 2 images (832 -> 128 5x5 at 7x7, batch 7: 68 reduction values
// a tap) 0.79x, and with the panels in blocks (8-image chunks) at batch 16 1.05x, 256 -> 256
// at batch 32 1.28x; 3 -> 64 at 7x7 (a few thousand products a tap) 0.65x: kMinChannels on
// both sides (16 -> 64 1.36x).
constexpr double kMaxLanded = 0.8;
constexpr int64_t kMinChannels = 16;

std::atomic<int> g_wgrad_boxes{static_cast<int>(KernelMode::auto_)};

// Output rows [b, e) whose tap at offset o = r*dil - pad lands in [0, H) at stride st.
void landed_range(int64_t o, int64_t st, int64_t H, int64_t P, int64_t& b, int64_t& e) {
  b = std::clamp<int64_t>(gemm::ceil_div(std::max<int64_t>(-o, 0), st), 0, P);
  e = H - 1 - o < 0 ? 0 : std::clamp<int64_t>((H - 1 - o) / st + 1, 0, P);
  if (e < b) e = b;
}

}  // namespace

void set_wgrad_boxes_mode(KernelMode m) { g_wgrad_boxes.store(static_cast<int>(m)); }

template <typename T>
bool backward_weight_boxes(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  const auto mode = static_cast<KernelMode>(g_wgrad_boxes.load(std::memory_order_relaxed));
  if (mode == KernelMode::off || p.groups != 1) return false;
  const int64_t K = p.K, C = p.C, R = p.R, S = p.S, RS = R * S, P = p.P, Q = p.Q, PQ = P * Q,
                N = p.N;
  if (N == 0 || PQ == 0 || K * C * RS == 0) return false;
  std::vector<int64_t> pb(R), pe(R), qb(S), qe(S);
  int64_t landed = 0;
  for (int64_t r = 0; r < R; ++r)
    landed_range(r * p.dil_h - p.pad_top, p.stride_h, p.H, P, pb[r], pe[r]);
  for (int64_t s = 0; s < S; ++s)
    landed_range(s * p.dil_w - p.pad_left, p.stride_w, p.W, Q, qb[s], qe[s]);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < S; ++s) landed += (pe[r] - pb[r]) * (qe[s] - qb[s]);
  // Every output pixel must have a landed tap: a non-finite grad_output value at one with
  // none would leave no non-finite gradient to tell (see the end).
  const auto covered = [](const std::vector<int64_t>& b, const std::vector<int64_t>& e,
                          int64_t n) {
    std::vector<char> hit(n, 0);
    for (size_t i = 0; i < b.size(); ++i) std::fill(hit.begin() + b[i], hit.begin() + e[i], 1);
    return std::all_of(hit.begin(), hit.end(), [](char h) { return h != 0; });
  };
  if (!covered(pb, pe, P) || !covered(qb, qe, Q)) return false;
  // Orientation: the tile's rows from grad_output (read in place) and its columns from x
  // (in panels), unless the input channels fill a wider tile as its columns than the output
  // channels would (GoogLeNet 4a's 16 -> 48: 8 x 48 against 8 x 16). (Rows from grad_output,
  // on a tie: 5x5 32 -> 128 at 7x7 1.58x against the GEMM, 1.49x the other way.)
  const auto pick = [&](int64_t rows, int64_t cols, double& work) {
    const gemm::UKernel<T> k = gemm::ukernel_for_shape<T>(active_isa(), rows, cols, true);
    const double narrow =
        k.nr < gemm::ukernel_for<T>(active_isa()).nr ? gemm::narrow_tile_weight() : 1.0;
    work = narrow * double(gemm::round_up(rows, k.mr) * gemm::round_up(cols, k.nr));
    return k;
  };
  double wk, wc;
  const gemm::UKernel<T> uk_k = pick(K, C, wk), uk_c = pick(C, K, wc);
  const bool swap = wk <= wc;
  const gemm::UKernel<T> uk = swap ? uk_k : uk_c;
  // rows: read in place (the tile's rows, Mr channels); cols: transposed into panels.
  const View4<const T> vr = swap ? dy : x, vc = swap ? x : dy;
  const int64_t Mr = swap ? K : C, Mc = swap ? C : K;
  const int MR = uk.mr, NR = uk.nr;
  const int64_t npan = gemm::ceil_div(Mc, NR), Mp = gemm::round_up(Mr, MR), Jp = npan * NR;
  const int64_t Hc = vc.size[2], Wc = vc.size[3], HWc = Hc * Wc;
  // Chunks of images whose rows and panels fit kChunkBytes (shape-only), every tap of a
  // chunk in turn: the chunk stays in L2 across its taps instead of coming from memory
  // once per tap. Partial sums per chunk, added in chunk order. Where all the panels leave
  // a chunk's average tap under a KC block of reduction, the panels go in blocks of bp
  // (halved until it has one, or down to one panel), each with its own chunks' tasks.
  const int64_t KN = K * C * RS;
  const int64_t rows_img = Mr * vr.size[2] * vr.size[3];
  const auto images = [&](int64_t panels) {
    return std::max<int64_t>(
        1, kChunkBytes / ((rows_img + panels * NR * HWc) * static_cast<int64_t>(sizeof(T))));
  };
  int64_t bp = npan, per = images(bp);
  while (bp > 1 && per * landed < gemm::kKC * RS) bp = gemm::ceil_div(bp, 2), per = images(bp);
  int64_t nch = gemm::ceil_div(N, per);
  while (nch > 1 && nch * KN > (int64_t(1) << 22)) per *= 2, nch = gemm::ceil_div(N, per);
  const int64_t ncb = gemm::ceil_div(npan, bp);
  if (mode == KernelMode::auto_ &&
      (double(landed) > kMaxLanded * double(RS * PQ) || std::min(C, K) < kMinChannels ||
       std::min(per, N) * landed < gemm::kKC * RS))
    return false;
  // vc as panels: panel jp, image n, pixel: vc[n, jp*NR + j, pixel] at j < NR (zeros past Mc).
  T* pan = gemm::scratch<T>(2, npan * N * HWc * NR);
  const bool planes = vc.stride[3] == 1 && vc.stride[2] == Wc;
  parallel_tasks(npan * N, threads_for(Mc * N * HWc), [&](int64_t t) {
    const int64_t jp = t / N, n = t % N;
    T* d = pan + (jp * N + n) * HWc * NR;
    const T* src = vc.data + n * vc.stride[0] + jp * NR * vc.stride[1];
    const int64_t nk = std::min<int64_t>(NR, Mc - jp * NR);
    int64_t j = 0;
#if defined(PYCONV_X86)
    if constexpr (std::is_same_v<T, float>) {
      if (planes && active_isa() >= Isa::avx2)
        for (; j + 8 <= nk; j += 8) {
          const float* rows[8];
          for (int q = 0; q < 8; ++q) rows[q] = src + (j + q) * vc.stride[1];
          avx2::transpose8_rows_float(rows, 0, HWc, d + j, NR);
        }
    }
#endif
    for (; j < NR; ++j) {
      const T* sj = src + j * vc.stride[1];
      for (int64_t h = 0, pq = 0; h < Hc; ++h)
        for (int64_t w = 0; w < Wc; ++w, ++pq)
          d[pq * NR + j] = j < nk ? sj[h * vc.stride[2] + w * vc.stride[3]] : T(0);
    }
  });
  // Tap t's box: the rows' values at aoff[i] from a row pointer, the panels' row at
  // boff[i], for the box's pixels i in [tap[t], tap[t + 1]) (row-major).
  std::vector<int64_t> tap(RS + 1), aoff, boff;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < S; ++s) {
      tap[r * S + s] = static_cast<int64_t>(aoff.size());
      for (int64_t oh = pb[r]; oh < pe[r]; ++oh)
        for (int64_t ow = qb[s]; ow < qe[s]; ++ow) {
          const int64_t ih = oh * p.stride_h + r * p.dil_h - p.pad_top,
                        iw = ow * p.stride_w + s * p.dil_w - p.pad_left;
          aoff.push_back(swap ? oh * dy.stride[2] + ow * dy.stride[3]
                              : ih * x.stride[2] + iw * x.stride[3]);
          boff.push_back((swap ? ih * Wc + iw : oh * Wc + ow) * NR);
        }
    }
  tap[RS] = static_cast<int64_t>(aoff.size());
  std::vector<const T*> rowp(Mp);
  for (int64_t c = 0; c < Mp; ++c) rowp[c] = vr.data + std::min(c, Mr - 1) * vr.stride[1];
  // Partial sums as the tiles leave them: chunk, row (Mp), tap, column (Jp); dw from them
  // in one pass at the end.
  const int64_t ldc = RS * Jp, ct = Mp * ldc;
  T* out = gemm::scratch<T>(5, nch * ct);
  parallel_tasks(nch * ncb * RS, threads_for(K * C * landed * N), [&](int64_t task) {
    const int64_t chk = task / (ncb * RS), t = task % RS;
    const int64_t jp0 = task / RS % ncb * bp, jp1 = std::min(npan, jp0 + bp);
    const int64_t n0 = chk * per, nimg = std::min(N, n0 + per) - n0;
    const int64_t nbox = tap[t + 1] - tap[t];
    T* cl = out + chk * ct + t * Jp;
    if (nbox == 0) {
      for (int64_t c = 0; c < Mp; ++c)
        std::fill(cl + c * ldc + jp0 * NR, cl + c * ldc + jp1 * NR, T(0));
      return;
    }
    const gemm::KBlocks kb(nimg * nbox);
    for (int64_t b = 0; b < kb.nb; ++b) {
      const int64_t u0 = kb.begin(b), n = n0 + u0 / nbox;
      for (int64_t jp = jp0; jp < jp1; ++jp) {
        const gemm::KSel sel{kb.size(b), aoff.data() + tap[t], boff.data() + tap[t], nbox,
                             u0 % nbox, n * vr.stride[0], (jp * N + n) * HWc * NR,
                             vr.stride[0], HWc * NR};
        for (int64_t i = 0; i < Mp; i += MR)
          uk.fn_box(sel, rowp.data() + i, pan, cl + i * ldc + jp * NR, ldc, b > 0);
      }
    }
  });
  // dw[k, c, t] = the chunks' sums added in chunk order, in the partial sums' order (rows,
  // taps, columns). A non-finite grad_output value times the padding's zeros is NaN where
  // the boxes skip the product; it also reaches the taps that land at its pixel (every
  // pixel has one), so a non-finite gradient sends the call to the kernels that multiply
  // every tap.
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite) \
    num_threads(threads_for(nch * KN))
  for (int64_t i = 0; i < Mr; ++i)
    for (int64_t t = 0; t < RS; ++t)
      for (int64_t j = 0; j < Mc; ++j) {
        const T* o = out + i * ldc + t * Jp + j;
        T sum = o[0];
        for (int64_t chk = 1; chk < nch; ++chk) sum += o[chk * ct];
        dw[(swap ? i * C + j : j * C + i) * RS + t] = sum;
        finite = finite && std::isfinite(sum);
      }
  return finite;
}

#define PYCONV_INSTANTIATE(T)                                                                 \
  template bool backward_weight_boxes<T>(const ConvParams&, View4<const T>, View4<const T>, \
                                         T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::fast
