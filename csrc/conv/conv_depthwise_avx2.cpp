// AVX2 + FMA builds of the depthwise plane kernels (depthwise_plane.h).
#include <immintrin.h>

#include <cstdint>

namespace pyconv::avx2 {
namespace {
#include "conv/depthwise_plane.h"
}  // namespace

#define PYCONV_DW_EXPORT(T)                                                                      \
  bool dw_fwd_plane_##T(const void* g, const T* x, int64_t xs2, int64_t xs3, const T* w,        \
                        int64_t ws2, int64_t ws3, T* y, const void* e) {                         \
    return dw_fwd_plane<T>(*static_cast<const DwGeom*>(g), x, xs2, xs3, w, ws2, ws3, y,          \
                           static_cast<const DwEpi*>(e));                                        \
  }                                                                                              \
  void dw_bwd_data_plane_##T(const void* g, const T* dy, int64_t ds2, int64_t ds3, const T* w,  \
                             int64_t ws2, int64_t ws3, T* dx) {                                  \
    dw_bwd_data_plane<T>(*static_cast<const DwGeom*>(g), dy, ds2, ds3, w, ws2, ws3, dx);         \
  }                                                                                              \
  void dw_bwd_weight_plane_##T(const void* g, const T* dy, int64_t ds2, int64_t ds3, const T* x, \
                               int64_t xs2, int64_t xs3, T* acc) {                               \
    dw_bwd_weight_plane<T>(*static_cast<const DwGeom*>(g), dy, ds2, ds3, x, xs2, xs3, acc);      \
  }                                                                                              \
  void bias_plane_##T(const T* r, int64_t s2, int64_t P, int64_t Q, double* lane) {              \
    bias_plane<T>(r, s2, P, Q, lane);                                                            \
  }
PYCONV_DW_EXPORT(float)
PYCONV_DW_EXPORT(double)
#undef PYCONV_DW_EXPORT

}  // namespace pyconv::avx2
