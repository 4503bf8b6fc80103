#include "conv/conv_params.h"

#include "common/errors.h"

namespace pyconv {

namespace {

void check_not_huge(const char* op, const char* what, const int64_t* v, int n) {
  for (int i = 0; i < n; ++i)
    if (v[i] > kMaxParam)
      throw ValueError(str_cat(op, ": ", what, " must be at most ", kMaxParam, ", got ", v[i]));
}

std::string shape_str(const int64_t s[4]) {
  return str_cat("(", s[0], ", ", s[1], ", ", s[2], ", ", s[3], ")");
}

void check_positive(const char* op, const char* what, const int64_t v[2]) {
  if (v[0] <= 0 || v[1] <= 0)
    throw ValueError(str_cat(op, ": ", what, " must be positive, got (", v[0], ", ", v[1], ")"));
  check_not_huge(op, what, v, 2);
}

void check_groups(const char* op, int64_t groups) {
  if (groups <= 0) throw ValueError(str_cat(op, ": groups must be positive, got ", groups));
}

}  // namespace

ConvParams make_conv2d_params(const char* op, const int64_t in[4], const int64_t w[4],
                              int64_t bias_len, const int64_t stride[2], const int64_t pad[4],
                              const int64_t dilation[2], int64_t groups) {
  check_positive(op, "stride", stride);
  check_positive(op, "dilation", dilation);
  check_groups(op, groups);
  for (int i = 0; i < 4; ++i)
    if (pad[i] < 0)
      throw ValueError(str_cat(op, ": padding must be non-negative, got (", pad[0], ", ", pad[1],
                               ", ", pad[2], ", ", pad[3], ") (top, bottom, left, right)"));
  check_not_huge(op, "padding", pad, 4);
  for (int i = 0; i < 4; ++i)
    if (in[i] < 0 || w[i] < 0) throw ValueError(str_cat(op, ": negative size"));
  ConvParams p;
  p.N = in[0]; p.C = in[1]; p.H = in[2]; p.W = in[3];
  p.K = w[0]; p.R = w[2]; p.S = w[3];
  p.groups = groups;
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.dil_h = dilation[0]; p.dil_w = dilation[1];
  p.pad_top = pad[0]; p.pad_bottom = pad[1]; p.pad_left = pad[2]; p.pad_right = pad[3];
  if (p.C % groups != 0)
    throw ValueError(str_cat(op, ": input channels (", p.C, ") must be divisible by groups (",
                             groups, ")"));
  if (p.K % groups != 0)
    throw ValueError(str_cat(op, ": weight's output channels (", p.K,
                             ") must be divisible by groups (", groups, "), got weight of shape ",
                             shape_str(w)));
  if (w[1] != p.C / groups)
    throw ValueError(str_cat(op, ": weight expects ", p.C / groups,
                             " input channels per group (input has ", p.C,
                             " channels, groups=", groups, "), got weight of shape ",
                             shape_str(w)));
  if (p.R == 0 || p.S == 0)
    throw ValueError(str_cat(op, ": kernel size must be positive, got weight of shape ",
                             shape_str(w)));
  if (bias_len >= 0 && bias_len != p.K)
    throw ValueError(str_cat(op, ": bias must have ", p.K, " elements (one per output channel), got ",
                             bias_len));
  const int64_t eff_r = p.dil_h * (p.R - 1) + 1, eff_s = p.dil_w * (p.S - 1) + 1;
  const int64_t ph = p.H + p.pad_top + p.pad_bottom, pw = p.W + p.pad_left + p.pad_right;
  if (eff_r > ph || eff_s > pw)
    throw ValueError(str_cat(op, ": kernel size (", eff_r, ", ", eff_s,
                             ") after dilation is larger than the padded input (", ph, ", ", pw,
                             ")"));
  p.P = (ph - eff_r) / p.stride_h + 1;
  p.Q = (pw - eff_s) / p.stride_w + 1;
  check_numel(op, "the output", {p.N, p.K, p.P, p.Q});
  return p;
}

ConvParams make_conv_transpose2d_params(const char* op, const int64_t in[4], const int64_t w[4],
                                        int64_t bias_len, const int64_t stride[2],
                                        const int64_t pad[2], const int64_t output_padding[2],
                                        const int64_t dilation[2], int64_t groups) {
  check_positive(op, "stride", stride);
  check_positive(op, "dilation", dilation);
  check_groups(op, groups);
  for (int i = 0; i < 2; ++i) {
    if (pad[i] < 0)
      throw ValueError(str_cat(op, ": padding must be non-negative, got (", pad[0], ", ", pad[1], ")"));
    if (output_padding[i] < 0 ||
        (output_padding[i] >= stride[i] && output_padding[i] >= dilation[i]))
      throw ValueError(str_cat(op, ": output_padding must be smaller than either stride or dilation, got output_padding=(",
                               output_padding[0], ", ", output_padding[1], "), stride=(", stride[0],
                               ", ", stride[1], "), dilation=(", dilation[0], ", ", dilation[1], ")"));
  }
  check_not_huge(op, "padding", pad, 2);
  check_not_huge(op, "output_padding", output_padding, 2);
  for (int i = 0; i < 4; ++i)
    if (in[i] < 0 || w[i] < 0) throw ValueError(str_cat(op, ": negative size"));
  if (in[1] != w[0])
    throw ValueError(str_cat(op, ": weight expects ", w[0], " input channels (weight of shape ",
                             shape_str(w), "), got input of shape ", shape_str(in)));
  if (in[1] % groups != 0)
    throw ValueError(str_cat(op, ": input channels (", in[1], ") must be divisible by groups (",
                             groups, ")"));
  if (w[2] == 0 || w[3] == 0)
    throw ValueError(str_cat(op, ": kernel size must be positive, got weight of shape ",
                             shape_str(w)));
  ConvParams p;
  p.N = in[0];
  p.K = in[1]; p.P = in[2]; p.Q = in[3];
  p.C = w[1] * groups; p.R = w[2]; p.S = w[3];
  p.groups = groups;
  p.stride_h = stride[0]; p.stride_w = stride[1];
  p.dil_h = dilation[0]; p.dil_w = dilation[1];
  p.pad_top = p.pad_bottom = pad[0];
  p.pad_left = p.pad_right = pad[1];
  if (bias_len >= 0 && bias_len != p.C)
    throw ValueError(str_cat(op, ": bias must have ", p.C, " elements (one per output channel), got ",
                             bias_len));
  p.H = (p.P - 1) * p.stride_h - 2 * pad[0] + p.dil_h * (p.R - 1) + output_padding[0] + 1;
  p.W = (p.Q - 1) * p.stride_w - 2 * pad[1] + p.dil_w * (p.S - 1) + output_padding[1] + 1;
  if (p.H <= 0 || p.W <= 0)
    throw ValueError(str_cat(op, ": output size (", p.H, ", ", p.W,
                             ") is not positive for input of shape ", shape_str(in),
                             " and weight of shape ", shape_str(w)));
  check_numel(op, "the output", {p.N, p.C, p.H, p.W});
  return p;
}

}  // namespace pyconv
