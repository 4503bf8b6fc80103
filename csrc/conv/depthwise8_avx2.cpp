// AVX2 + FMA depthwise kernels over eight interleaved channels (depthwise_lanes.h).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/depthwise_lanes.h"

namespace pyconv::avx2 {
namespace {
#include "common/store_lanes.h"

struct V {
  using R = __m256;
  static constexpr int L = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const float* p) { return _mm256_load_ps(p); }
  static R loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_store_ps(p, v); }
  static void storeu(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static void transpose(R (&r)[8]) {
    R c[8];
    transpose8x8_f32(r, c);
    for (int q = 0; q < 8; ++q) r[q] = c[q];
  }
  static R load_first(const float* p, int64_t n) { return _mm256_maskload_ps(p, first_lanes8(n)); }
  static void store_first(float* p, R v, int64_t n) { store_lanes_f32(p, v, n); }
  // (A whole block by its own constant-count loops: with the count and the load kind chosen
  // per row inside one loop, the interleave ran 0.72-0.81x.)
  static void interleave(const float* x, int64_t xs1, int64_t n, float* d) {
    R r[8];
    if (n == 8) {
      for (int q = 0; q < 8; ++q) r[q] = loadu(x + q * xs1);
      transpose(r);
      for (int q = 0; q < 8; ++q) store(d + q * 8, r[q]);
      return;
    }
    for (int q = 0; q < 8; ++q) r[q] = load_first(x + q * xs1, n);
    transpose(r);
    for (int64_t q = 0; q < n; ++q) store(d + q * 8, r[q]);
  }
};
}  // namespace

#include "conv/depthwise_lanes_impl.h"

static_assert(kDwlLanes == V::L);

}  // namespace pyconv::avx2
