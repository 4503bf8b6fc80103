// AVX-512 register tiles: fp32 8x32, fp64 6x16. Same template as the AVX2
// tiles (ukernel_tmpl.h) with 512-bit vectors. fp32 takes 8 rows (16 accumulators of the
// 32 registers): channel counts are mostly multiples of 8, so no ragged last panel (32
// rows were 5 panels and a 2-row one at 6), and the tile ran 3-6% faster alone.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "gemm/gemm.h"

namespace pyconv::avx512 {
namespace {

struct VF {
  using T = float;
  using reg = __m512;
  static constexpr int lanes = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, reg r) { _mm512_storeu_ps(p, r); }
  static constexpr uintptr_t kStreamAlign = 64;
  static void stream(T* p, reg r) { _mm512_stream_ps(p, r); }
  static reg bcast(const T* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg relu(reg r) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_LT_OQ), r,
                                _mm512_setzero_ps());
  }
};
struct VD {
  using T = double;
  using reg = __m512d;
  static constexpr int lanes = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, reg r) { _mm512_storeu_pd(p, r); }
  static constexpr uintptr_t kStreamAlign = 64;
  static void stream(T* p, reg r) { _mm512_stream_pd(p, r); }
  static reg bcast(const T* p) { return _mm512_set1_pd(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg relu(reg r) {
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(r, _mm512_setzero_pd(), _CMP_LT_OQ), r,
                                _mm512_setzero_pd());
  }
};

#include "gemm/ukernel_tmpl.h"

}  // namespace

PYCONV_UKERNEL_EXPORTS(VF, VD, f32_gemm_8x32, f64_gemm_6x16, 8, 6)

// The fp32 8 x (16 NV) tiles beside the 8 x 32 one: their packed, ragged-row, indirect and
// box kernels (NAME, NAME_rem, NAME_ind, NAME_box).
#define PYCONV_EXTRA_TILE(NAME, NV)                                                      \
  void NAME(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc) {     \
    ukr_tile<VF, 8, false, false, false, NV>(kc, a, 0, b, c, ldc, acc);                        \
  }                                                                                            \
  void NAME##_rem(int mv, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,   \
                  bool acc) {                                                                  \
    ukr_rem_rows<VF, 8, false, false, NV>(mv, kc, a, b, c, ldc, acc);                          \
  }                                                                                            \
  void NAME##_ind(int64_t kc, const float* const* a, const int64_t* aoff, const float* b,      \
                  float* c, int64_t ldc, bool acc) {                                           \
    ukr_ind<VF, 8, NV>(kc, a, aoff, b, c, ldc, acc);                                           \
  }                                                                                            \
  void NAME##_box(const gemm::KSel& s, const float* const* a, const float* b, float* c,        \
                  int64_t ldc, bool acc) {                                                     \
    ukr_box<VF, 8, NV>(s, a, b, c, ldc, acc);                                                  \
  }

// The 8 x 48 tile: three vectors of columns, 24 accumulators, 11 loads for 24 FMAs. Where a
// GEMM's columns are 48, 144 or 240 output channels (pixel rows, taps-as-rows weight
// gradients), the 8 x 32 tile's last panel is a third or half empty (ukernel_for_shape);
// where they are the pixels of large grids (conv_gemm.cpp's pixel_tile), its fewer loads a
// FMA run the GEMM 1.02-1.08x faster. Its drivers pack B and read A packed or through row
// pointers: it also has a register-epilogue kernel (no rows-A or in-place-B ones).
PYCONV_EXTRA_TILE(f32_gemm_8x48, 3)
void f32_gemm_8x48_epi(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                       bool acc, const float* bias, bool relu, bool stream) {
  ukr_tile<VF, 8, false, true, false, 3>(kc, a, 0, b, c, ldc, acc, bias, relu, nullptr, stream);
}
// The 8 x 16 tile: one vector of columns, 8 accumulators (16 output channels of pixel rows,
// where the 8 x 32 tile leaves half of its columns idle).
PYCONV_EXTRA_TILE(f32_gemm_8x16, 1)
#undef PYCONV_EXTRA_TILE

// Seconds for n rounds of 12 independent FMA chains on 512-bit (wide) or 256-bit registers:
// register-only, so the time is the core's FMA throughput at that width (fma_width_gain).
// Zeros in every operand (no denormals, no garbage); vzeroupper after (the compiler does not
// see the asm's wide registers; it clears the upper halves of all 16 low ones: clobbered).
// P: the register prefix, "z" or "y".
#define PYCONV_OP3(OP, P, A, B, C) OP " %%" P "mm" #A ", %%" P "mm" #B ", %%" P "mm" #C "\n"
#define PYCONV_ZERO(P, R) PYCONV_OP3("vxorps", P, R, R, R)
#define PYCONV_FMA(P, R) PYCONV_OP3("vfmadd231ps", P, 15, 14, R)
#define PYCONV_EACH12(M, P)                                                                 \
  M(P, 0) M(P, 1) M(P, 2) M(P, 3) M(P, 4) M(P, 5) M(P, 6) M(P, 7) M(P, 8) M(P, 9) M(P, 10)  \
      M(P, 11)
#define PYCONV_FMA_CHAINS(P, n)                                                             \
  __asm__ volatile(PYCONV_EACH12(PYCONV_ZERO, P) PYCONV_ZERO(P, 14) PYCONV_ZERO(P, 15)      \
                   "1:\n" PYCONV_EACH12(PYCONV_FMA, P) "dec %0\n jnz 1b\n vzeroupper\n"       \
                   : "+r"(n)                                                                \
                   :                                                                        \
                   : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",  \
                     "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc")
static double fma_chains_seconds(bool wide, long n) {
  const auto t0 = std::chrono::steady_clock::now();
  if (wide)
    PYCONV_FMA_CHAINS("z", n);
  else
    PYCONV_FMA_CHAINS("y", n);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
#undef PYCONV_FMA_CHAINS
#undef PYCONV_EACH12
#undef PYCONV_FMA
#undef PYCONV_ZERO
#undef PYCONV_OP3

double fma_width_gain() {
  // Twice as many flops per 512-bit FMA; the best of five interleaved trials of each width
  // (about 0.1 ms each) keeps a busy moment from deciding.
  constexpr long kRounds = 20000;
  double wide = 1e30, narrow = 1e30;
  for (int t = 0; t < 5; ++t) {
    wide = std::min(wide, fma_chains_seconds(true, kRounds));
    narrow = std::min(narrow, fma_chains_seconds(false, kRounds));
  }
  return 2.0 * narrow / wide;
}

}  // namespace pyconv::avx512
