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

// xp points at the plane; sh, sw are its row and column strides (elements).
template <typename T>
inline void max_pool_window(const PoolParams& p, const T* xp, int64_t sh, int64_t sw, int64_t oh,
                            int64_t ow, T& out, int64_t& out_idx) {
  int64_t ih0 = oh * p.stride_h - p.pad_h;
  int64_t iw0 = ow * p.stride_w - p.pad_w;
  const int64_t ih1 = std::min(ih0 + (p.kh - 1) * p.dil_h + 1, p.H);
  const int64_t iw1 = std::min(iw0 + (p.kw - 1) * p.dil_w + 1, p.W);
  while (ih0 < 0) ih0 += p.dil_h;
  while (iw0 < 0) iw0 += p.dil_w;
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
