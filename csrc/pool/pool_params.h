// PoolParams: the one description of a 2-d max pooling (and of max_unpool2d)
// shared by every kernel. Filled and validated only by the make_* functions
// below, with torch's shape rules (ATen's pooling_output_shape and
// pool2d_shape_check); kernels trust it.
//
// Window of output (oh, ow): rows oh*stride_h - pad_h + i*dil_h (i < kh),
// columns ow*stride_w - pad_w + j*dil_w (j < kw); taps outside the input are
// -inf (never selected).
#pragma once
#include <cstdint>

namespace pyconv {

struct PoolParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input (N, C, H, W)
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t OH = 0, OW = 0;               // output (N, C, OH, OW)
  bool ceil_mode = false;

  int64_t planes() const { return N * C; }
};

// torch's pooling_output_shape: floor or ceil division; with ceil_mode the
// last window must start inside the input or its left padding.
int64_t pooling_output_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil,
                            bool ceil_mode);

// max_pool2d (and its backward). in = input shape (N, C, H, W). Throws ValueError naming `op`.
PoolParams make_max_pool2d_params(const char* op, const int64_t in[4], const int64_t kernel[2],
                                  const int64_t stride[2], const int64_t pad[2],
                                  const int64_t dil[2], bool ceil_mode);

// max_unpool2d (and its backward). in = unpool input shape (N, C, H, W); output
// (N, C, OH, OW) with OH, OW from output_size when output_size[0] >= 0, else the
// default (H - 1) * stride - 2 * pad + kernel. output_size must lie strictly
// between default - stride and default + stride (torch's _unpool_output_size).
PoolParams make_max_unpool2d_params(const char* op, const int64_t in[4], const int64_t kernel[2],
                                    const int64_t stride[2], const int64_t pad[2],
                                    const int64_t output_size[2]);

}  // namespace pyconv
