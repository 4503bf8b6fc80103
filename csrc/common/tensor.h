// Strided 4-d views (NCHW) handed from the bindings to the kernels.
// Strides are in elements and may be zero or negative: kernels read inputs
// through them, so non-contiguous arrays need no copy. Outputs are always
// allocated contiguous by the Python layer.
#pragma once
#include <cstdint>

namespace pyconv {

template <typename T>
struct View4 {
  T* data = nullptr;
  int64_t size[4] = {0, 0, 0, 0};
  int64_t stride[4] = {0, 0, 0, 0};

  T& at(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return data[a * stride[0] + b * stride[1] + c * stride[2] + d * stride[3]];
  }
  bool contiguous() const {
    return stride[3] == 1 && stride[2] == size[3] && stride[1] == size[2] * size[3] &&
           stride[0] == size[1] * size[2] * size[3];
  }
  int64_t numel() const { return size[0] * size[1] * size[2] * size[3]; }
};

}  // namespace pyconv
