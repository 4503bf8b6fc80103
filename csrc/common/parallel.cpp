#include "common/parallel.h"

#include <omp.h>

#include <atomic>

namespace pyconv {

static std::atomic<int> g_num_threads{0};

int num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_num_procs();
}

void set_num_threads(int n) { g_num_threads.store(n, std::memory_order_relaxed); }

}  // namespace pyconv
