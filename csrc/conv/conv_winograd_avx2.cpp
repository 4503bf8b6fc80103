// AVX2 + FMA builds of the Winograd row transforms (winograd_rows.h).
#include <immintrin.h>

#include <cstdint>

namespace pyconv::avx2 {
namespace {
#include "conv/winograd_rows.h"
}  // namespace

#define PYCONV_WINO_EXPORT(T)                                                                \
  void wino_in_row_##T(const void* g, const T* plane, int64_t ty, int64_t qa, int64_t qb,   \
                       int64_t t0, int64_t kc, T* vc) {                                      \
    wino_in_row<T>(*static_cast<const WinoIn*>(g), plane, ty, qa, qb, t0, kc, vc);          \
  }                                                                                          \
  bool wino_in_groups_##T(const void* g, const T* base, const void* parts, int64_t n,        \
                          int64_t kc, T* vc) {                                               \
    return wino_in_groups<T>(*static_cast<const WinoIn*>(g), base,                          \
                             static_cast<const WinoPart*>(parts), n, kc, vc);                \
  }                                                                                          \
  bool wino_out_row_##T(const void* g, const T* m, int64_t ty, int64_t qa, int64_t qb, T b, \
                        bool relu, T* y, T* z) {                                             \
    return wino_out_row<T>(*static_cast<const WinoOut*>(g), m, ty, qa, qb, b, relu, y, z);  \
  }                                                                                          \
  bool wino_out_row_pair_##T(const void* g, const T* m, int64_t tya, int64_t tyb, T b,       \
                             bool relu, T* ya, T* za, T* yb, T* zb, bool* finite) {          \
    return wino_out_row_pair<T>(*static_cast<const WinoOut*>(g), m, tya, tyb, b, relu, ya, za, \
                                yb, zb, finite);                                             \
  }                                                                                          \
  void wino_grad_row_##T(const void* g, const T* plane, int64_t ty, int64_t qa, int64_t qb,  \
                         T* m) {                                                             \
    wino_grad_row<T>(*static_cast<const WinoGrad*>(g), plane, ty, qa, qb, m);               \
  }                                                                                          \
  bool wino_grad_row_pair_##T(const void* g, const T* pa, const T* pb, int64_t ty, T* m) {   \
    return wino_grad_row_pair<T>(*static_cast<const WinoGrad*>(g), pa, pb, ty, m);          \
  }                                                                                          \
  void wino_filter_panel_##T(const void* g, int64_t pan, T* u) {                             \
    wino_filter_panel<T>(*static_cast<const WinoFilter*>(g), pan, u);                       \
  }
PYCONV_WINO_EXPORT(float)
PYCONV_WINO_EXPORT(double)
#undef PYCONV_WINO_EXPORT

}  // namespace pyconv::avx2
