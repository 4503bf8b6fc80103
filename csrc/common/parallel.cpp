#include "common/parallel.h"

#include <omp.h>

#include <atomic>

namespace pyconv {

static std::atomic<int> g_num_threads{0};

// The processors available when first asked: libgomp's omp_get_num_procs() asks the
// kernel for the affinity mask on every call (a system call, several per op: a sixth of a
// batch-1 8x8 convolution's time).
int num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  static const int procs = omp_get_num_procs();
  return procs;
}

void set_num_threads(int n) { g_num_threads.store(n, std::memory_order_relaxed); }

}  // namespace pyconv
