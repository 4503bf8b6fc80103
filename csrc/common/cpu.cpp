#include "common/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "common/errors.h"

namespace pyconv {

Isa best_isa() {
#if defined(PYCONV_X86)
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("fma"))
      return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::scalar;
  }();
  return best;
#else
  return Isa::scalar;
#endif
}

int64_t l1d_bytes() {
  static const int64_t bytes = [] {
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    const long b = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    if (b >= (4 << 10) && b <= (4 << 20)) return static_cast<int64_t>(b);
#endif
    return int64_t(32) << 10;
  }();
  return bytes;
}

int64_t l2_bytes() {
  static const int64_t bytes = [] {
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long b = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (b >= (64 << 10) && b <= (int64_t(64) << 20)) return static_cast<int64_t>(b);
#endif
    return int64_t(1) << 20;
  }();
  return bytes;
}

static Isa initial_isa() {
  Isa isa = best_isa();
  if (const char* env = std::getenv("PYCONV_ISA")) {
    Isa want = isa;
    if (!std::strcmp(env, "scalar")) want = Isa::scalar;
    else if (!std::strcmp(env, "avx2")) want = Isa::avx2;
    else if (!std::strcmp(env, "avx512")) want = Isa::avx512;
    if (static_cast<int>(want) < static_cast<int>(isa)) isa = want;
  }
  return isa;
}

static std::atomic<int> g_isa{static_cast<int>(initial_isa())};

Isa active_isa() { return static_cast<Isa>(g_isa.load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(best_isa()))
    throw ValueError(str_cat("set_isa: this CPU does not support ", isa_name(isa),
                             " (best is ", isa_name(best_isa()), ")"));
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace pyconv
