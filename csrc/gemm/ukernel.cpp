// Micro-kernel selection by instruction set.
#include <algorithm>
#include <type_traits>

#include "gemm/gemm.h"

namespace pyconv {
// The entry points of each ISA's file (PYCONV_UKERNEL_EXPORTS in ukernel_tmpl.h).
#define PYCONV_UKERNEL_DECLARE(F32, F64)                                                     \
  void F32(int64_t, const float*, const float*, float*, int64_t, bool);                      \
  void F32##_rows(int, int64_t, const float*, int64_t, const float*, float*, int64_t, bool); \
  void F64(int64_t, const double*, const double*, double*, int64_t, bool);                   \
  void F64##_rows(int, int64_t, const double*, int64_t, const double*, double*, int64_t,    \
                 bool);                                                                      \
  void f32_gemm_rem(int, int64_t, const float*, const float*, float*, int64_t, bool);        \
  void f64_gemm_rem(int, int64_t, const double*, const double*, double*, int64_t, bool);     \
  void f32_gemm_epi(int64_t, const float*, const float*, float*, int64_t, bool, const float*, \
                    bool, bool);                                                             \
  void f64_gemm_epi(int64_t, const double*, const double*, double*, int64_t, bool,           \
                    const double*, bool, bool);                                              \
  void f32_gemm_off(int, int64_t, const float*, const float*, const int64_t*, float*, int64_t, \
                    bool, const float*, bool, bool);                                         \
  void f64_gemm_off(int, int64_t, const double*, const double*, const int64_t*, double*,     \
                    int64_t, bool, const double*, bool, bool);                               \
  void f32_gemm_ind(int64_t, const float* const*, const int64_t*, const float*, float*,      \
                    int64_t, bool);                                                          \
  void f64_gemm_ind(int64_t, const double* const*, const int64_t*, const double*, double*,  \
                    int64_t, bool);                                                          \
  void f32_gemm_box(const gemm::KSel&, const float* const*, const float*, float*, int64_t,   \
                    bool);                                                                   \
  void f64_gemm_box(const gemm::KSel&, const double* const*, const double*, double*,         \
                    int64_t, bool);                                                          \
  void f32_gemv(int, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, \
                int64_t);                                                                    \
  void f64_gemv(int, int64_t, int64_t, const double*, int64_t, const double*, int64_t,       \
                double*, int64_t);                                                           \
  void f32_gemv_t(int, int64_t, int64_t, const float*, int64_t, const float*, int64_t,       \
                  float*, int64_t);                                                          \
  void f64_gemv_t(int, int64_t, int64_t, const double*, int64_t, const double*, int64_t,     \
                  double*, int64_t);
namespace scalar {
PYCONV_UKERNEL_DECLARE(f32_gemm_6x16, f64_gemm_6x8)
}  // namespace scalar
#if defined(PYCONV_X86)
namespace avx2 {
PYCONV_UKERNEL_DECLARE(f32_gemm_6x16, f64_gemm_6x8)
}  // namespace avx2
namespace avx512 {
PYCONV_UKERNEL_DECLARE(f32_gemm_8x32, f64_gemm_6x16)
double fma_width_gain();  // (ukernel_avx512.cpp)
// The 8 x 48 and 8 x 16 tiles' kernels (ukernel_avx512.cpp).
#define PYCONV_TILE_DECLARE(NAME)                                                              \
  void NAME(int64_t, const float*, const float*, float*, int64_t, bool);                       \
  void NAME##_rem(int, int64_t, const float*, const float*, float*, int64_t, bool);            \
  void NAME##_ind(int64_t, const float* const*, const int64_t*, const float*, float*, int64_t, \
                  bool);                                                                       \
  void NAME##_box(const gemm::KSel&, const float* const*, const float*, float*, int64_t, bool);
PYCONV_TILE_DECLARE(f32_gemm_8x48)
PYCONV_TILE_DECLARE(f32_gemm_8x16)
#undef PYCONV_TILE_DECLARE
void f32_gemm_8x48_epi(int64_t, const float*, const float*, float*, int64_t, bool, const float*,
                       bool, bool);
}  // namespace avx512
#endif
#undef PYCONV_UKERNEL_DECLARE

namespace gemm {

template <>
UKernel<float> ukernel_for<float>(Isa isa) {
#if defined(PYCONV_X86)
  if (isa == Isa::avx512) return {8, 32, avx512::f32_gemm_8x32, avx512::f32_gemm_8x32_rows, avx512::f32_gemm_rem, avx512::f32_gemm_epi, avx512::f32_gemm_off, avx512::f32_gemv, avx512::f32_gemv_t, avx512::f32_gemm_ind, avx512::f32_gemm_box, "f32_gemm_8x32__avx512"};
  if (isa == Isa::avx2) return {6, 16, avx2::f32_gemm_6x16, avx2::f32_gemm_6x16_rows, avx2::f32_gemm_rem, avx2::f32_gemm_epi, avx2::f32_gemm_off, avx2::f32_gemv, avx2::f32_gemv_t, avx2::f32_gemm_ind, avx2::f32_gemm_box, "f32_gemm_6x16__avx2"};
#endif
  return {6, 16, scalar::f32_gemm_6x16, scalar::f32_gemm_6x16_rows, scalar::f32_gemm_rem, scalar::f32_gemm_epi, scalar::f32_gemm_off, scalar::f32_gemv, scalar::f32_gemv_t, scalar::f32_gemm_ind, scalar::f32_gemm_box, "f32_gemm_6x16__scalar"};
}

template <>
UKernel<double> ukernel_for<double>(Isa isa) {
#if defined(PYCONV_X86)
  if (isa == Isa::avx512) return {6, 16, avx512::f64_gemm_6x16, avx512::f64_gemm_6x16_rows, avx512::f64_gemm_rem, avx512::f64_gemm_epi, avx512::f64_gemm_off, avx512::f64_gemv, avx512::f64_gemv_t, avx512::f64_gemm_ind, avx512::f64_gemm_box, "f64_gemm_6x16__avx512"};
  if (isa == Isa::avx2) return {6, 8, avx2::f64_gemm_6x8, avx2::f64_gemm_6x8_rows, avx2::f64_gemm_rem, avx2::f64_gemm_epi, avx2::f64_gemm_off, avx2::f64_gemv, avx2::f64_gemv_t, avx2::f64_gemm_ind, avx2::f64_gemm_box, "f64_gemm_6x8__avx2"};
#endif
  return {6, 8, scalar::f64_gemm_6x8, scalar::f64_gemm_6x8_rows, scalar::f64_gemm_rem, scalar::f64_gemm_epi, scalar::f64_gemm_off, scalar::f64_gemv, scalar::f64_gemv_t, scalar::f64_gemm_ind, scalar::f64_gemm_box, "f64_gemm_6x8__scalar"};
}

double wide_fma_gain() {
#if defined(PYCONV_X86)
  static const double gain = best_isa() >= Isa::avx512 ? avx512::fma_width_gain() : 1.0;
  return gain;
#else
  return 1.0;
#endif
}

double narrow_tile_weight() { return std::max(1.25, wide_fma_gain()); }

template <typename T>
UKernel<T> ukernel_wide(Isa isa) {
  UKernel<T> uk = ukernel_for<T>(isa);
#if defined(PYCONV_X86)
  // (No rows-A or in-place-B kernels: see gemm.h.)
  if constexpr (std::is_same_v<T, float>)
    if (isa == Isa::avx512)
      uk = {8, 48, avx512::f32_gemm_8x48, nullptr, avx512::f32_gemm_8x48_rem,
            avx512::f32_gemm_8x48_epi, nullptr, uk.fn_gemv, uk.fn_gemv_t,
            avx512::f32_gemm_8x48_ind, avx512::f32_gemm_8x48_box, "f32_gemm_8x48__avx512"};
#endif
  return uk;
}
template UKernel<float> ukernel_wide<float>(Isa);
template UKernel<double> ukernel_wide<double>(Isa);

template <typename T>
UKernel<T> ukernel_for_shape(Isa isa, int64_t rows, int64_t cols, bool pixel_rows) {
  UKernel<T> uk = ukernel_for<T>(isa);
#if defined(PYCONV_X86)
  if constexpr (std::is_same_v<T, float>) {
    if (isa != Isa::avx512) return uk;
    // Padded work of each candidate, the narrow tile's weighted; ties keep the 8 x 32 tile.
    auto work = [&](const UKernel<T>& k) {
      return double(round_up(rows, k.mr) * round_up(cols, k.nr));
    };
    // (The 8 x 16 tile: no rows-A, register-epilogue or in-place-B kernels: see gemm.h.)
    const UKernel<T> k48 = ukernel_wide<T>(isa);
    const UKernel<T> k16{8, 16, avx512::f32_gemm_8x16, nullptr, avx512::f32_gemm_8x16_rem,
                         nullptr, nullptr, uk.fn_gemv, uk.fn_gemv_t,
                         avx512::f32_gemm_8x16_ind, avx512::f32_gemm_8x16_box,
                         "f32_gemm_8x16__avx512"};
    const UKernel<T> k2 = ukernel_for<T>(Isa::avx2);
    double best = work(uk);
    if (work(k48) < best) uk = k48, best = work(k48);
    if (pixel_rows && work(k16) < best) uk = k16, best = work(k16);
    if (work(k2) * narrow_tile_weight() < best) uk = k2;
  }
#else
  (void)rows, (void)cols, (void)pixel_rows;
#endif
  return uk;
}
template UKernel<float> ukernel_for_shape<float>(Isa, int64_t, int64_t, bool);
template UKernel<double> ukernel_for_shape<double>(Isa, int64_t, int64_t, bool);

}  // namespace gemm
}  // namespace pyconv
