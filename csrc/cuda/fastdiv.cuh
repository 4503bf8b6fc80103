// Division by a runtime constant, for the kernels' index decompositions.
#pragma once
#ifndef PYCONV_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include <cstdint>

namespace pyconv::cuda::kern {

// n / d for 0 <= n < 2^31 by multiply-high and shift (as CUTLASS's FastDivmod):
// the kernels' index decompositions divide by runtime sizes in the inner loop.
struct FastDiv {
  uint32_t d = 1, mul = 0, shr = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t denom) : d(static_cast<uint32_t>(denom)) {
    if (d > 1) {
      int l = 0;
      while ((uint64_t(1) << l) < d) ++l;  // ceil(log2 d)
      const uint64_t p = 31 + l;
      mul = static_cast<uint32_t>(((uint64_t(1) << p) + d - 1) / d);
      shr = static_cast<uint32_t>(p - 32);
    }
  }
  __device__ __forceinline__ int div(int n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(static_cast<uint32_t>(n), mul);
#else
    const uint32_t hi = static_cast<uint32_t>((uint64_t(static_cast<uint32_t>(n)) * mul) >> 32);
#endif
    return d == 1 ? n : static_cast<int>(hi >> shr);
  }
  __device__ __forceinline__ int mod(int n, int q) const { return n - q * static_cast<int>(d); }
};

// n / d with FastDiv's divisor: 32-bit multiply-shift when SMALL (n < 2^31),
// else 64-bit division.
template <bool SMALL>
__device__ __forceinline__ int64_t div_by(const FastDiv& f, int64_t n) {
  if (SMALL) return f.div(static_cast<int>(n));
  return n / static_cast<int64_t>(f.d);
}

}  // namespace pyconv::cuda::kern
