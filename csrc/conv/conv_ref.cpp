#include "conv/conv_ref.h"

#include "common/activation_scalar.h"
#include "common/parallel.h"

namespace pyconv::ref {

template <typename T>
void conv2d_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                    Activation act, T* y, T* preact) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  const T param = static_cast<T>(act.param);
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t k = 0; k < p.K; ++k) {
      const int64_t c0 = (k / Kg) * Cg;
      T* yk = y + (n * p.K + k) * p.P * p.Q;
      T* zk = preact ? preact + (n * p.K + k) * p.P * p.Q : nullptr;
      for (int64_t oh = 0; oh < p.P; ++oh)
        for (int64_t ow = 0; ow < p.Q; ++ow) {
          double acc = bias ? static_cast<double>(bias[k]) : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < p.R; ++r) {
              const int64_t ih = oh * p.stride_h - p.pad_top + r * p.dil_h;
              if (ih < 0 || ih >= p.H) continue;
              for (int64_t s = 0; s < p.S; ++s) {
                const int64_t iw = ow * p.stride_w - p.pad_left + s * p.dil_w;
                if (iw < 0 || iw >= p.W) continue;
                acc += static_cast<double>(x.at(n, c0 + c, ih, iw)) *
                       static_cast<double>(w.at(k, c, r, s));
              }
            }
          const T z = static_cast<T>(acc);
          if (zk) zk[oh * p.Q + ow] = z;
          yk[oh * p.Q + ow] = activate(act.kind, param, z);
        }
    }
}

template <typename T>
T conv2d_backward_data_at(const ConvParams& p, View4<const T> dy, View4<const T> w, int64_t n,
                          int64_t c, int64_t ih, int64_t iw) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), g = c / Cg, cg = c % Cg;
  double acc = 0.0;
  for (int64_t r = 0; r < p.R; ++r) {
    const int64_t th = ih + p.pad_top - r * p.dil_h;
    if (th < 0 || th % p.stride_h) continue;
    const int64_t oh = th / p.stride_h;
    if (oh >= p.P) continue;
    for (int64_t s = 0; s < p.S; ++s) {
      const int64_t tw = iw + p.pad_left - s * p.dil_w;
      if (tw < 0 || tw % p.stride_w) continue;
      const int64_t ow = tw / p.stride_w;
      if (ow >= p.Q) continue;
      for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k)
        acc += static_cast<double>(dy.at(n, k, oh, ow)) * static_cast<double>(w.at(k, cg, r, s));
    }
  }
  return static_cast<T>(acc);
}

template <typename T>
void conv2d_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < p.C; ++c) {
      T* dxc = dx + (n * p.C + c) * p.H * p.W;
      for (int64_t ih = 0; ih < p.H; ++ih)
        for (int64_t iw = 0; iw < p.W; ++iw)
          dxc[ih * p.W + iw] = conv2d_backward_data_at(p, dy, w, n, c, ih, iw);
    }
}

template <typename T>
void conv2d_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  const int64_t Cg = p.Cg(), Kg = p.Kg();
#pragma omp parallel for collapse(2) schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < p.K; ++k)
    for (int64_t c = 0; c < Cg; ++c) {
      const int64_t c_in = (k / Kg) * Cg + c;
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s) {
          double acc = 0.0;
          for (int64_t n = 0; n < p.N; ++n)
            for (int64_t oh = 0; oh < p.P; ++oh) {
              const int64_t ih = oh * p.stride_h - p.pad_top + r * p.dil_h;
              if (ih < 0 || ih >= p.H) continue;
              for (int64_t ow = 0; ow < p.Q; ++ow) {
                const int64_t iw = ow * p.stride_w - p.pad_left + s * p.dil_w;
                if (iw < 0 || iw >= p.W) continue;
                acc += static_cast<double>(dy.at(n, k, oh, ow)) *
                       static_cast<double>(x.at(n, c_in, ih, iw));
              }
            }
          dw[((k * Cg + c) * p.R + r) * p.S + s] = static_cast<T>(acc);
        }
    }
}

template <typename T>
void conv2d_backward_bias(View4<const T> dy, T* db) {
  const int64_t N = dy.size[0], K = dy.size[1], P = dy.size[2], Q = dy.size[3];
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t k = 0; k < K; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < P; ++oh)
        for (int64_t ow = 0; ow < Q; ++ow) acc += static_cast<double>(dy.at(n, k, oh, ow));
    db[k] = static_cast<T>(acc);
  }
}

#define PYCONV_INSTANTIATE(T)                                                                  \
  template void conv2d_forward<T>(const ConvParams&, View4<const T>, View4<const T>, const T*, \
                                  Activation, T*, T*);                                         \
  template void conv2d_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>, T*); \
  template T conv2d_backward_data_at<T>(const ConvParams&, View4<const T>, View4<const T>,      \
                                        int64_t, int64_t, int64_t, int64_t);                     \
  template void conv2d_backward_weight<T>(const ConvParams&, View4<const T>, View4<const T>,   \
                                          T*);                                                 \
  template void conv2d_backward_bias<T>(View4<const T>, T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::ref
