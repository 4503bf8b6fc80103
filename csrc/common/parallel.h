// Thread count shared by every CPU kernel. Kernels open their parallel regions
// with `num_threads(pyconv::num_threads())` instead of relying on OpenMP's
// per-thread ICV, so the setting holds for calls from any Python thread.
#pragma once
#include <cstdint>

namespace pyconv {

int num_threads();
void set_num_threads(int n);  // n >= 1

// Splits [0, n) into `parts` nearly equal chunks; returns chunk `i` as [begin, end).
inline void split_range(int64_t n, int64_t parts, int64_t i, int64_t& begin, int64_t& end) {
  const int64_t q = n / parts, r = n % parts;
  begin = i * q + (i < r ? i : r);
  end = begin + q + (i < r ? 1 : 0);
}

}  // namespace pyconv
