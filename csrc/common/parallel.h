// Thread count shared by every CPU kernel. Kernels open their parallel regions
// with `num_threads(pyconv::num_threads())` instead of relying on OpenMP's
// per-thread ICV, so the setting holds for calls from any Python thread.
#pragma once
#include <cstdint>

namespace pyconv {

int num_threads();
void set_num_threads(int n);  // n >= 1

// Threads for a parallel region of about `work` simple operations (values copied, or
// multiply-adds / 8): one below 16K (about 5 us on one core), where waking the others
// (1.5-2 us per region here) costs about what they would save. Safe anywhere: every kernel
// gives bitwise the same result for any thread count.
inline int threads_for(int64_t work) { return work < (int64_t(1) << 14) ? 1 : num_threads(); }

// Splits [0, n) into `parts` nearly equal chunks; returns chunk `i` as [begin, end).
inline void split_range(int64_t n, int64_t parts, int64_t i, int64_t& begin, int64_t& end) {
  const int64_t q = n / parts, r = n % parts;
  begin = i * q + (i < r ? i : r);
  end = begin + q + (i < r ? 1 : 0);
}

}  // namespace pyconv
