// AVX-512 depthwise kernels over sixteen interleaved channels (depthwise_lanes.h): the
// eight-lane kernels' code at twice the width (the same FMA chains, the same bits), for CPUs
// whose 512-bit FMAs are twice the 256-bit ones' throughput.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/depthwise_lanes.h"

namespace pyconv::avx512 {
namespace {
#include "common/store_lanes.h"

struct V {
  using R = __m512;
  static constexpr int L = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_load_ps(p); }
  static R loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_store_ps(p, v); }
  static void storeu(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static void transpose(R (&r)[16]) { transpose16x16_f32(r); }
  static R load_first(const float* p, int64_t n) {
    return _mm512_maskz_loadu_ps(first_lanes(n), p);
  }
  static void store_first(float* p, R v, int64_t n) {
    _mm512_mask_storeu_ps(p, first_lanes(n), v);
  }
  // By four 8x8 transposes of 256-bit rows (channels h*8.., columns c*8..), each to the
  // half h of eight pixels: with one 16x16 transpose of 512-bit rows instead, 14x14 planes'
  // weight gradient (interleaving two arrays) ran 0.90x the eight-lane kernels', this way
  // 1.18-1.19x. Whole blocks by constant counts (FULL), as the eight-lane interleave.
  template <bool FULL>
  static void interleave8(const float* x, int64_t xs1, int c, int64_t m, float* d) {
    for (int h = 0; h < 2; ++h) {
      __m256 r[8], t[8];
      for (int q = 0; q < 8; ++q) {
        const float* s = x + (h * 8 + q) * xs1 + c * 8;
        r[q] = FULL ? _mm256_loadu_ps(s) : _mm256_maskload_ps(s, first_lanes8(m));
      }
      transpose8x8_f32(r, t);
      for (int64_t q = 0; q < (FULL ? 8 : m); ++q)
        _mm256_store_ps(d + (c * 8 + q) * 16 + h * 8, t[q]);
    }
  }
  static void interleave(const float* x, int64_t xs1, int64_t n, float* d) {
    if (n == 16) {
      interleave8<true>(x, xs1, 0, 8, d);
      interleave8<true>(x, xs1, 1, 8, d);
      return;
    }
    for (int c = 0; c * 8 < n; ++c)
      interleave8<false>(x, xs1, c, std::min<int64_t>(8, n - c * 8), d);
  }
};
}  // namespace

#include "conv/depthwise_lanes_impl.h"

static_assert(kDwlLanes == V::L);

}  // namespace pyconv::avx512
