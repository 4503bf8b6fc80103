// One max-pool window, exactly as ATen's cpu_max_pool scans it: rows then
// columns, the running max starts at -inf with the index of the first valid
// tap, and is replaced when `val > max || isnan(val)` (first maximum wins, the
// last NaN wins). Shared by the reference loops and the SIMD kernels' borders.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "pool/pool_params.h"

namespace pyconv {

// The window's first tap at or after (0, 0): its row and column (the scan's start).
inline void window_start(const PoolParams& p, int64_t oh, int64_t ow, int64_t& ih0,
                         int64_t& iw0) {
  ih0 = oh * p.stride_h - p.pad_h;
  iw0 = ow * p.stride_w - p.pad_w;
  while (ih0 < 0) ih0 += p.dil_h;
  while (iw0 < 0) iw0 += p.dil_w;
}

// xp points at the plane; sh, sw are its row and column strides (elements).
template <typename T>
inline void max_pool_window(const PoolParams& p, const T* xp, int64_t sh, int64_t sw, int64_t oh,
                            int64_t ow, T& out, int64_t& out_idx) {
  const int64_t ih1 = std::min(oh * p.stride_h - p.pad_h + (p.kh - 1) * p.dil_h + 1, p.H);
  const int64_t iw1 = std::min(ow * p.stride_w - p.pad_w + (p.kw - 1) * p.dil_w + 1, p.W);
  int64_t ih0, iw0;
  window_start(p, oh, ow, ih0, iw0);
  int64_t maxidx = ih0 * p.W + iw0;
  T maxval = -std::numeric_limits<T>::infinity();
  for (int64_t ih = ih0; ih < ih1; ih += p.dil_h)
    for (int64_t iw = iw0; iw < iw1; iw += p.dil_w) {
      const T v = xp[ih * sh + iw * sw];
      if (v > maxval || std::isnan(v)) {
        maxval = v;
        maxidx = ih * p.W + iw;
      }
    }
  out = maxval;
  out_idx = maxidx;
}

}  // namespace pyconv
