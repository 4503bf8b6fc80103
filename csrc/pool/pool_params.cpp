#include "pool/pool_params.h"

#include "common/errors.h"

#include <limits>

namespace pyconv {

namespace {

int64_t div_floor(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string shape_str(const int64_t s[4]) {
  return str_cat("(", s[0], ", ", s[1], ", ", s[2], ", ", s[3], ")");
}

void check_common(const char* op, const int64_t in[4], const int64_t kernel[2],
                  const int64_t stride[2], const int64_t pad[2]) {
  for (int i = 0; i < 4; ++i)
    if (in[i] < 0) throw ValueError(str_cat(op, ": negative size in input shape ", shape_str(in)));
  if (kernel[0] <= 0 || kernel[1] <= 0)
    throw ValueError(str_cat(op, ": kernel_size must be positive, got (", kernel[0], ", ",
                             kernel[1], ")"));
  if (stride[0] <= 0 || stride[1] <= 0)
    throw ValueError(str_cat(op, ": stride must be positive, got (", stride[0], ", ", stride[1],
                             ")"));
  if (pad[0] < 0 || pad[1] < 0)
    throw ValueError(str_cat(op, ": padding must be non-negative, got (", pad[0], ", ", pad[1],
                             ")"));
  if (in[1] == 0 || in[2] == 0 || in[3] == 0)
    throw ValueError(str_cat(op, ": expected an input with non-zero channels, height and width "
                             "(only the batch may be empty), got shape ", shape_str(in)));
}

}  // namespace

int64_t pooling_output_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil,
                            bool ceil_mode) {
  int64_t out = div_floor(in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0),
                          stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

PoolParams make_max_pool2d_params(const char* op, const int64_t in[4], const int64_t kernel[2],
                                  const int64_t stride[2], const int64_t pad[2],
                                  const int64_t dil[2], bool ceil_mode) {
  check_common(op, in, kernel, stride, pad);
  if (dil[0] <= 0 || dil[1] <= 0)
    throw ValueError(str_cat(op, ": dilation must be positive, got (", dil[0], ", ", dil[1], ")"));
  if (pad[0] > kernel[0] / 2 || pad[1] > kernel[1] / 2)
    throw ValueError(str_cat(op, ": padding must be at most half of kernel_size, got padding=(",
                             pad[0], ", ", pad[1], ") and kernel_size=(", kernel[0], ", ",
                             kernel[1], ")"));
  PoolParams p;
  p.N = in[0]; p.C = in[1]; p.H = in[2]; p.W = in[3];
  p.kh = kernel[0]; p.kw = kernel[1];
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.pad_h = pad[0]; p.pad_w = pad[1];
  p.dil_h = dil[0]; p.dil_w = dil[1];
  p.ceil_mode = ceil_mode;
  p.OH = pooling_output_size(p.H, p.kh, p.pad_h, p.stride_h, p.dil_h, ceil_mode);
  p.OW = pooling_output_size(p.W, p.kw, p.pad_w, p.stride_w, p.dil_w, ceil_mode);
  if (p.OH < 1 || p.OW < 1)
    throw ValueError(str_cat(op, ": output size (", p.OH, ", ", p.OW,
                             ") is too small for input of shape ", shape_str(in),
                             " with kernel_size=(", p.kh, ", ", p.kw, "), stride=(", p.stride_h,
                             ", ", p.stride_w, "), padding=(", p.pad_h, ", ", p.pad_w,
                             "), dilation=(", p.dil_h, ", ", p.dil_w, ")"));
  return p;
}

PoolParams make_max_unpool2d_params(const char* op, const int64_t in[4], const int64_t kernel[2],
                                    const int64_t stride[2], const int64_t pad[2],
                                    const int64_t output_size[2]) {
  check_common(op, in, kernel, stride, pad);
  PoolParams p;
  p.N = in[0]; p.C = in[1]; p.H = in[2]; p.W = in[3];
  p.kh = kernel[0]; p.kw = kernel[1];
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.pad_h = pad[0]; p.pad_w = pad[1];
  // torch computes these with Python ints: 128-bit here, so that huge parameters give
  // an honest (rejected) size instead of a wrapped-around one
  using i128 = __int128;
  const i128 def[2] = {i128(p.H - 1) * p.stride_h - i128(2) * p.pad_h + p.kh,
                       i128(p.W - 1) * p.stride_w - i128(2) * p.pad_w + p.kw};
  const i128 kMax = std::numeric_limits<int64_t>::max();
  for (int d = 0; d < 2; ++d)
    if (def[d] > kMax || def[d] < -kMax)
      throw ValueError(str_cat(op, ": output size out of range for input of shape ",
                               shape_str(in), " with kernel_size=(", p.kh, ", ", p.kw,
                               "), stride=(", p.stride_h, ", ", p.stride_w, "), padding=(",
                               p.pad_h, ", ", p.pad_w, ")"));
  int64_t out[2] = {int64_t(def[0]), int64_t(def[1])};
  if (output_size[0] >= 0 || output_size[1] >= 0) {
    for (int d = 0; d < 2; ++d) {
      const i128 lo = def[d] - stride[d], hi = def[d] + stride[d];
      if (!(lo < output_size[d] && output_size[d] < hi))
        throw ValueError(str_cat(op, ": invalid output_size (", output_size[0], ", ",
                                 output_size[1], "): dim ", d, " must be strictly between ",
                                 int64_t(lo), " and ", int64_t(hi)));
      out[d] = output_size[d];
    }
  }
  if (out[0] <= 0 || out[1] <= 0)
    throw ValueError(str_cat(op, ": output size (", out[0], ", ", out[1],
                             ") is not positive for input of shape ", shape_str(in),
                             " with kernel_size=(", p.kh, ", ", p.kw, "), stride=(", p.stride_h,
                             ", ", p.stride_w, "), padding=(", p.pad_h, ", ", p.pad_w, ")"));
  p.OH = out[0]; p.OW = out[1];
  return p;
}

}  // namespace pyconv
