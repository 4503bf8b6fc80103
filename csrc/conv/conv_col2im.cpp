// Backward-data of convolutions with few input channels and many output channels (the
// 3-channel stems; DCGAN's last up-sampling, whose forward this is): first
// dcol = W^T dy as a 1x1 convolution (N, K, P, Q) -> (N, C*R*S, P, Q) on the GEMM path
// (dy read in place as its B panels), then col2im gathers every dx element's taps in a
// fixed order. The stride-phase GEMM instead packs im2col(dy): K*R*S/(sh*sw) values per
// dx element for only 2*C flops each, memory-bound at C = 3 (packing was 57% of the 7x7
// stem's backward-data); here the GEMM does 2*K flops per dcol value.
#include <algorithm>
#include <vector>

#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "gemm/gemm_driver.h"

namespace pyconv::fast {

namespace {

constexpr int64_t kMaxC = 8;   // input channels up to which it applies
constexpr int64_t kMinK = 32;  // output channels from which the GEMM pays (16: 0.76x)
constexpr int64_t kChunkElems = 1 << 21;  // dcol per pass (images at a time)
constexpr int64_t kMaxImageElems = 1 << 23;  // one image's dcol beyond this: the phase GEMM

using gemm::ceil_div;
using gemm::floor_div;

// dx rows (n, c, h) of images [0, nb) from dcol (nb, C*R*S, P, Q) contiguous. A row sums
// its taps (r, then s, ascending) into sw phase-major rows (w = j*sw + phase), then
// interleaves them into dx.
template <typename T>
void col2im(const ConvParams& p, int64_t nb, const T* dcol, T* dx) {
  const int64_t C = p.C, H = p.H, W = p.W, R = p.R, S = p.S, P = p.P, Q = p.Q;
  const int64_t sh = p.stride_h, sw = p.stride_w, CRS = C * R * S;
  const int64_t Wl = ceil_div(W, sw);  // phase row length (phase 0 is the longest)
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<T> acc(static_cast<size_t>(sw * Wl));
    std::vector<const T*> rows(static_cast<size_t>(sw));  // the phase rows within acc
    for (int64_t pw = 0; pw < sw; ++pw) rows[static_cast<size_t>(pw)] = acc.data() + pw * Wl;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nb * C * H; ++t) {
      const int64_t n = t / (C * H), c = t / H % C, h = t % H;
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t r = 0; r < R; ++r) {
        const int64_t u = h + p.pad_top - r * p.dil_h;
        if (u < 0 || u % sh != 0 || u / sh >= P) continue;
        const int64_t oh = u / sh;
        for (int64_t s = 0; s < S; ++s) {
          // w = q*sw + off = (q + base)*sw + ph
          const int64_t off = s * p.dil_w - p.pad_left, base = floor_div(off, sw);
          const int64_t ph = off - base * sw, len = ceil_div(W - ph, sw);
          const int64_t q0 = std::max<int64_t>(0, -base);
          const int64_t q1 = std::min<int64_t>(Q, len - base);
          const T* src = dcol + ((n * CRS + (c * R + r) * S + s) * P + oh) * Q;
          T* a = acc.data() + ph * Wl;
          for (int64_t q = q0; q < q1; ++q) a[q + base] += src[q];
        }
      }
      interleave_phase_row(dx + t * W, W, sw, rows.data());
    }
  }
}

}  // namespace

template <typename T>
bool backward_data_col2im(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  const int64_t C = p.C, K = p.K, RS = p.R * p.S, CRS = C * RS, PQ = p.P * p.Q;
  if (p.groups != 1 || C > kMaxC || K < std::max<int64_t>(kMinK, 4 * C) || RS == 1 ||
      p.N == 0 || PQ == 0 || CRS * PQ > kMaxImageElems)
    return false;
  // W^T as the 1x1 convolution's weight (C*R*S, K, 1, 1).
  std::vector<T> wt(static_cast<size_t>(CRS * K));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s)
          wt[((c * p.R + r) * p.S + s) * K + k] = w.at(k, c, r, s);
  const View4<const T> wv{wt.data(), {CRS, K, 1, 1}, {K, 1, 1, 1}};
  const int64_t nb = std::clamp<int64_t>(kChunkElems / (CRS * PQ), 1, p.N);
  T* dcol = gemm::scratch<T>(10, nb * CRS * PQ);
  for (int64_t n0 = 0; n0 < p.N; n0 += nb) {
    const int64_t m = std::min(nb, p.N - n0);
    ConvParams q;
    q.N = m, q.C = K, q.H = p.P, q.W = p.Q, q.K = CRS, q.R = q.S = 1, q.P = p.P, q.Q = p.Q;
    View4<const T> d = dy;
    d.data += n0 * dy.stride[0];
    d.size[0] = m;
    conv2d_forward_gemm(q, d, wv, static_cast<const T*>(nullptr), Activation{}, dcol,
                        static_cast<T*>(nullptr), /*cache_output=*/true);
    col2im(p, m, dcol, dx + n0 * C * p.H * p.W);
  }
  return true;
}

template bool backward_data_col2im<float>(const ConvParams&, View4<const float>,
                                          View4<const float>, float*);
template bool backward_data_col2im<double>(const ConvParams&, View4<const double>,
                                           View4<const double>, double*);

}  // namespace pyconv::fast
