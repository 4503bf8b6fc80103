// Depthwise conv2d (groups == C == K): direct kernels over one (n, c) plane at
// a time, vectorised along W (the inner loops are unit-stride when the view is).
// Each output element is reduced in a fixed order by one thread.
#include <algorithm>
#include <vector>

#include "common/activation_scalar.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "gemm/gemm.h"

namespace pyconv::fast {

using gemm::ceil_div;

namespace {
// ow in [lo, hi) such that 0 <= ow*st + off < lim, ow < Q.
inline void ow_range(int64_t off, int64_t st, int64_t lim, int64_t Q, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div(-off, st);
  hi = lim - off > 0 ? std::min(Q, ceil_div(lim - off, st)) : 0;
  if (hi < lo) hi = lo;
}
}  // namespace

template <typename T>
void depthwise_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                       Activation act, T* y, T* preact) {
  const int64_t C = p.C, PQ = p.P * p.Q, sw = p.stride_w, xs3 = x.stride[3];
  const T prm = static_cast<T>(act.param);
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const T* xp = x.data + n * x.stride[0] + c * x.stride[1];
      T* yp = y + (n * C + c) * PQ;
      for (int64_t oh = 0; oh < p.P; ++oh) {
        T* yr = yp + oh * p.Q;
        for (int64_t q = 0; q < p.Q; ++q) yr[q] = T(0);
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.stride_h - p.pad_top + r * p.dil_h;
          if (ih < 0 || ih >= p.H) continue;
          const T* xr = xp + ih * x.stride[2];
          for (int64_t s = 0; s < p.S; ++s) {
            const T wv = w.at(c, 0, r, s);
            const int64_t off = s * p.dil_w - p.pad_left;
            int64_t lo, hi;
            ow_range(off, sw, p.W, p.Q, lo, hi);
            if (sw == 1 && xs3 == 1) {
              const T* xs = xr + off;
              for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xs[q];
            } else {
              for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xr[(q * sw + off) * xs3];
            }
          }
        }
        const T b = bias ? bias[c] : T(0);
        T* zr = preact ? preact + (n * C + c) * PQ + oh * p.Q : nullptr;
        if (bias)
          for (int64_t q = 0; q < p.Q; ++q) yr[q] += b;
        if (zr)
          for (int64_t q = 0; q < p.Q; ++q) zr[q] = yr[q];
        if (act.kind != ActKind::none)
          for (int64_t q = 0; q < p.Q; ++q) yr[q] = activate(act.kind, prm, yr[q]);
      }
    }
}

template <typename T>
void depthwise_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  const int64_t C = p.C, HW = p.H * p.W, sw = p.stride_w, ds3 = dy.stride[3];
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const T* dp = dy.data + n * dy.stride[0] + c * dy.stride[1];
      T* xp = dx + (n * C + c) * HW;
      for (int64_t ih = 0; ih < p.H; ++ih) {
        T* xr = xp + ih * p.W;
        for (int64_t i = 0; i < p.W; ++i) xr[i] = T(0);
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t th = ih + p.pad_top - r * p.dil_h;
          if (th < 0 || th % p.stride_h) continue;
          const int64_t oh = th / p.stride_h;
          if (oh >= p.P) continue;
          const T* dr = dp + oh * dy.stride[2];
          for (int64_t s = 0; s < p.S; ++s) {
            const T wv = w.at(c, 0, r, s);
            // dx[ow*sw + off] += w * dy[ow]
            const int64_t off = s * p.dil_w - p.pad_left;
            int64_t lo, hi;
            ow_range(off, sw, p.W, p.Q, lo, hi);
            if (sw == 1 && ds3 == 1) {
              T* xs = xr + off;
              for (int64_t q = lo; q < hi; ++q) xs[q] += wv * dr[q];
            } else {
              for (int64_t q = lo; q < hi; ++q) xr[q * sw + off] += wv * dr[q * ds3];
            }
          }
        }
      }
    }
}

template <typename T>
void depthwise_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  const int64_t C = p.C, RS = p.R * p.S, Q = p.Q, sw = p.stride_w, xs3 = x.stride[3];
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t c = 0; c < C; ++c) {
    // acc[(r*S + s)*Q + ow] sums dy*x over (n, oh); reduced over ow at the end.
    thread_local std::vector<T> accv;
    accv.assign(static_cast<size_t>(RS * Q), T(0));
    T* acc = accv.data();
    for (int64_t n = 0; n < p.N; ++n) {
      const T* dp = dy.data + n * dy.stride[0] + c * dy.stride[1];
      const T* xp = x.data + n * x.stride[0] + c * x.stride[1];
      for (int64_t oh = 0; oh < p.P; ++oh) {
        const T* dr = dp + oh * dy.stride[2];
        const int64_t ds3 = dy.stride[3];
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.stride_h - p.pad_top + r * p.dil_h;
          if (ih < 0 || ih >= p.H) continue;
          const T* xr = xp + ih * x.stride[2];
          for (int64_t s = 0; s < p.S; ++s) {
            T* a = acc + (r * p.S + s) * Q;
            const int64_t off = s * p.dil_w - p.pad_left;
            int64_t lo, hi;
            ow_range(off, sw, p.W, Q, lo, hi);
            if (sw == 1 && xs3 == 1 && ds3 == 1) {
              const T* xs = xr + off;
              for (int64_t q = lo; q < hi; ++q) a[q] += dr[q] * xs[q];
            } else {
              for (int64_t q = lo; q < hi; ++q) a[q] += dr[q * ds3] * xr[(q * sw + off) * xs3];
            }
          }
        }
      }
    }
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
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < K; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < P; ++oh) {
        const T* r = dy.data + n * dy.stride[0] + k * dy.stride[1] + oh * dy.stride[2];
        const int64_t s3 = dy.stride[3];
        double a2 = 0.0;
        for (int64_t ow = 0; ow < Q; ++ow) a2 += static_cast<double>(r[ow * s3]);
        acc += a2;
      }
    db[k] = static_cast<T>(acc);
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
