// ConvParams: the one description of a 2-d convolution shared by every
// kernel (reference, CPU fast paths, CUDA). Filled and validated only by the
// make_* functions below; kernels trust it.
//
// Forward:  y[n,k,p,q] = sum_{c in group(k), r, s} x[n,c,p*sh - pt + r*dh, q*sw - pl + s*dw] * w[k,c',r,s]
// x is (N,C,H,W), w is (K,C/groups,R,S), y is (N,K,P,Q).
// conv_transpose2d is described by the forward convolution whose backward-data
// it is: its output is this conv's x, its input this conv's y.
#pragma once
#include <cstdint>

namespace pyconv {

struct ConvParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input of the forward convolution
  int64_t K = 0, R = 0, S = 0;         // weight (K, C/groups, R, S)
  int64_t P = 0, Q = 0;                // output of the forward convolution
  int64_t groups = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dil_h = 1, dil_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  int64_t Cg() const { return C / groups; }  // input channels per group
  int64_t Kg() const { return K / groups; }  // output channels per group
  bool is_1x1_plain() const {
    return R == 1 && S == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_left == 0 &&
           pad_bottom == 0 && pad_right == 0;
  }
  // 2*N*K*P*Q*(C/groups)*R*S
  double flops() const { return 2.0 * N * K * P * Q * Cg() * R * S; }
};

// conv2d. in = x shape, w = weight shape, bias_len = -1 when there is no bias,
// pad = {top, bottom, left, right}. Throws ValueError naming `op`.
ConvParams make_conv2d_params(const char* op, const int64_t in[4], const int64_t w[4],
                              int64_t bias_len, const int64_t stride[2], const int64_t pad[4],
                              const int64_t dilation[2], int64_t groups);

// conv_transpose2d. in = its input (N, Cin, Hi, Wi), w = (Cin, Cout/groups, R, S).
ConvParams make_conv_transpose2d_params(const char* op, const int64_t in[4], const int64_t w[4],
                                        int64_t bias_len, const int64_t stride[2],
                                        const int64_t pad[2], const int64_t output_padding[2],
                                        const int64_t dilation[2], int64_t groups);

}  // namespace pyconv
