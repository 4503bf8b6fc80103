// Thread count shared by every CPU kernel. Kernels open their parallel regions
// with `num_threads(pyconv::num_threads())` instead of relying on OpenMP's
// per-thread ICV, so the setting holds for calls from any Python thread.
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
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

// Runs fn(t) for every t in [0, total) on up to nt threads, each task once. Thread i starts
// on the i-th of nt contiguous ranges of tasks and takes them in order; a thread whose range
// is done takes the other ranges' last tasks, one at a time from their ends. Neighbouring
// tasks (column blocks of one GEMM, reading overlapping source rows) stay on one thread,
// where a shared queue (OpenMP's dynamic schedule) dealt them out alternately, and uneven
// tasks or a thread slowed by other work still balance. Which thread runs a task never
// changes what it computes.
// (Past kMaxRanges threads, or 2^31 tasks, OpenMP's dynamic schedule instead.)
template <class Fn>
void parallel_tasks(int64_t total, int nt, Fn&& fn) {
  constexpr int kMaxRanges = 64;
  nt = static_cast<int>(std::min<int64_t>(nt, total));
  if (nt <= 1 || nt > kMaxRanges || total >= (int64_t(1) << 31)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(nt, 1)) if (nt > 1)
    for (int64_t t = 0; t < total; ++t) fn(t);
    return;
  }
  // A range's next task from the front (low 32 bits) and its end (high 32 bits).
  struct alignas(64) Range {
    std::atomic<uint64_t> fb;
  };
  Range r[kMaxRanges];
  for (int i = 0; i < nt; ++i) {
    int64_t b, e;
    split_range(total, nt, i, b, e);
    r[i].fb.store(uint64_t(e) << 32 | uint64_t(b), std::memory_order_relaxed);
  }
  const auto take = [](Range& q, bool front) -> int64_t {
    uint64_t v = q.fb.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t f = v & 0xffffffffu, e = v >> 32;
      if (f >= e) return -1;
      const uint64_t w = front ? (e << 32 | (f + 1)) : ((e - 1) << 32 | f);
      if (q.fb.compare_exchange_weak(v, w, std::memory_order_relaxed))
        return static_cast<int64_t>(front ? f : e - 1);
    }
  };
#pragma omp parallel num_threads(nt)
  {
    const int me = omp_get_thread_num();
    for (int64_t t; (t = take(r[me], true)) >= 0;) fn(t);
    for (int k = 1; k < nt; ++k)  // (ranges of threads the runtime did not start included)
      for (int64_t t; (t = take(r[(me + k) % nt], false)) >= 0;) fn(t);
  }
}

}  // namespace pyconv
