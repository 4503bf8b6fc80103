// Portable register tiles (baseline x86-64 or any CPU): fp32 6x16, fp64 6x8,
// the same template over a plain array "vector" the compiler may vectorise.
#include <cstdint>

#include "gemm/gemm.h"

namespace pyconv::scalar {
namespace {

template <typename T_, int L>
struct VArr {
  using T = T_;
  static constexpr int lanes = L;
  struct reg {
    T v[L];
  };
  static reg zero() {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = T(0);
    return r;
  }
  static reg load(const T* p) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = p[l];
    return r;
  }
  static void store(T* p, const reg& r) {
    for (int l = 0; l < L; ++l) p[l] = r.v[l];
  }
  static constexpr uintptr_t kStreamAlign = 1;  // no streaming stores: plain ones
  static void stream(T* p, const reg& r) { store(p, r); }
  static reg bcast(const T* p) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = *p;
    return r;
  }
  static reg add(const reg& a, const reg& b) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = a.v[l] + b.v[l];
    return r;
  }
  static reg relu(const reg& a) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = a.v[l] < T(0) ? T(0) : a.v[l];
    return r;
  }
  static reg fma(const reg& a, const reg& b, const reg& c) {
    reg r;
    for (int l = 0; l < L; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
    return r;
  }
};

using SF = VArr<float, 8>;
using SD = VArr<double, 4>;

#include "gemm/ukernel_tmpl.h"

}  // namespace

PYCONV_UKERNEL_EXPORTS(SF, SD, f32_gemm_6x16, f64_gemm_6x8, 6, 6)

}  // namespace pyconv::scalar
