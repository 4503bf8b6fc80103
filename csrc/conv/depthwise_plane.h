// Depthwise conv2d kernels over one (n, c) plane, vectorised along W by the
// compiler. Included by conv_depthwise.cpp (baseline) and
// conv_depthwise_avx2.cpp (-mavx2 -mfma), each inside its own namespace; kept
// free of std:: and shared inline functions so no ISA-specific code can be
// merged into the baseline build by the linker.

struct DwGeom {
  int64_t H, W, P, Q, R, S;
  int64_t sh, sw, dh, dw, pt, pl;
};

// ow in [lo, hi) such that 0 <= ow*st + off < lim, ow < Q.
static inline void dw_ow_range(int64_t off, int64_t st, int64_t lim, int64_t Q, int64_t& lo,
                               int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + st - 1) / st;
  hi = lim - off > 0 ? (lim - off + st - 1) / st : 0;
  if (hi > Q) hi = Q;
  if (hi < lo) hi = lo;
}

// y[oh, ow] = sum_{r,s} w[r,s] * x[oh*sh - pt + r*dh, ow*sw - pl + s*dw]   (y contiguous P x Q)
template <typename T>
static void dw_fwd_plane(const DwGeom& g, const T* x, int64_t xs2, int64_t xs3, const T* w,
                         int64_t ws2, int64_t ws3, T* y) {
  for (int64_t oh = 0; oh < g.P; ++oh) {
    T* yr = y + oh * g.Q;
    for (int64_t q = 0; q < g.Q; ++q) yr[q] = T(0);
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = oh * g.sh - g.pt + r * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      const T* xr = x + ih * xs2;
      for (int64_t s = 0; s < g.S; ++s) {
        const T wv = w[r * ws2 + s * ws3];
        const int64_t off = s * g.dw - g.pl;
        int64_t lo, hi;
        dw_ow_range(off, g.sw, g.W, g.Q, lo, hi);
        if (g.sw == 1 && xs3 == 1) {
          const T* xs = xr + off;
          for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xs[q];
        } else {
          for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xr[(q * g.sw + off) * xs3];
        }
      }
    }
  }
}

// dx[ih, iw] = sum over (r, s, oh, ow) with ih = oh*sh - pt + r*dh, iw = ow*sw - pl + s*dw
// of w[r,s] * dy[oh, ow]; each dx row gathers its own taps (dx contiguous H x W).
template <typename T>
static void dw_bwd_data_plane(const DwGeom& g, const T* dy, int64_t ds2, int64_t ds3, const T* w,
                              int64_t ws2, int64_t ws3, T* dx) {
  for (int64_t ih = 0; ih < g.H; ++ih) {
    T* xr = dx + ih * g.W;
    for (int64_t i = 0; i < g.W; ++i) xr[i] = T(0);
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t th = ih + g.pt - r * g.dh;
      if (th < 0 || th % g.sh) continue;
      const int64_t oh = th / g.sh;
      if (oh >= g.P) continue;
      const T* dr = dy + oh * ds2;
      for (int64_t s = 0; s < g.S; ++s) {
        const T wv = w[r * ws2 + s * ws3];
        const int64_t off = s * g.dw - g.pl;
        int64_t lo, hi;
        dw_ow_range(off, g.sw, g.W, g.Q, lo, hi);
        if (g.sw == 1 && ds3 == 1) {
          T* xs = xr + off;
          for (int64_t q = lo; q < hi; ++q) xs[q] += wv * dr[q];
        } else {
          for (int64_t q = lo; q < hi; ++q) xr[q * g.sw + off] += wv * dr[q * ds3];
        }
      }
    }
  }
}

// acc[(r*S + s)*Q + ow] += dy[oh, ow] * x[oh*sh - pt + r*dh, ow*sw - pl + s*dw] over oh.
template <typename T>
static void dw_bwd_weight_plane(const DwGeom& g, const T* dy, int64_t ds2, int64_t ds3,
                                const T* x, int64_t xs2, int64_t xs3, T* acc) {
  for (int64_t oh = 0; oh < g.P; ++oh) {
    const T* dr = dy + oh * ds2;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ih = oh * g.sh - g.pt + r * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      const T* xr = x + ih * xs2;
      for (int64_t s = 0; s < g.S; ++s) {
        T* a = acc + (r * g.S + s) * g.Q;
        const int64_t off = s * g.dw - g.pl;
        int64_t lo, hi;
        dw_ow_range(off, g.sw, g.W, g.Q, lo, hi);
        if (g.sw == 1 && xs3 == 1 && ds3 == 1) {
          const T* xs = xr + off;
          for (int64_t q = lo; q < hi; ++q) a[q] += dr[q] * xs[q];
        } else {
          for (int64_t q = lo; q < hi; ++q) a[q] += dr[q * ds3] * xr[(q * g.sw + off) * xs3];
        }
      }
    }
  }
}
