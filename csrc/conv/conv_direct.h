// Direct convolution with output channels as the vector lanes (conv_direct.cpp dispatches,
// conv_direct_avx512.cpp computes): for layers whose reduction is short and whose planes are
// small, the GEMM's im2col packing and its 48-column panels (which straddle images on 14x14
// planes) cost more than the arithmetic leaves room for.
#pragma once
#include <cstdint>

namespace pyconv::avx512 {

// Output rows [oh0, oh1) of one image and one block of 16 * nv output channels:
//   y[j*ldy + oh*Q + ow] = sum over k of wp[k*16*nv + j] * x[oh*sth*ldx + ow*stw + koff[k]]
// for j < nk (<= 16 * nv; wp's lanes past nk are zero), ow < Q, from a source whose reduction
// index k (channel, filter row, filter column) sits koff[k] values from the output's origin
// (a zero-padded copy of the image, or the image itself where no padding is read). Each row
// is cut into near-equal tiles of at most direct_max_pixels(nv) pixels; each pixel's
// products are added in k order, the bias (may be null, nv*16 values) last; relu after it when
// set. stw is 1 or 2.
// A call may take a part of the reduction, k in [k0, k1): the tiles' sums then start from
// (unless first) and go to (unless last) part, (oh - oh0) * Q * 16 * nv values, pixel by
// pixel, unrotated; the bias, relu and the transposed store to y come with the last part.
struct DirectRows {
  const float* x;
  int64_t ldx, sth, stw;
  const int64_t* koff;
  int64_t k0, k1;
  const float* wp;
  int nv, nk;
  const float* bias;
  bool relu;
  float* y;
  int64_t ldy, Q, oh0, oh1;
  float* part;
  bool first, last;
};
void direct_rows_float(const DirectRows& d);

// The most pixels a tile of nv vectors (1 to 4) takes: nv * pixels accumulators of the 32
// registers, the filter's nv vectors and a broadcast beside them.
constexpr int direct_max_pixels(int nv) { return nv == 1 ? 16 : nv == 2 ? 14 : nv == 3 ? 9 : 7; }

// The stride-2 backward-data (a transposed convolution's forward) with the input channels
// of dx as the lanes: output rows [oh0, oh1) of one image and one block of 16 * nv channels,
//   y[j*ldy + h*W + w] = sum over k of wp[((h + pt) % 2 * kd + k) * 2 + (w + pl) % 2][j]
//                        * x[((h + pt) / 2) * ldx + (w + pl) / 2 + koff[k]]
// (wp rows of 16 * nv values, kd rows a row parity, two a column parity each; x the
// zero-padded grad_output at the origin of (i, j) = (0, 0)): the two output columns of a
// pair (w + pl even, then odd) read one grad_output value per reduction step, each with the
// filter row of its column parity. Each row is cut into near-equal tiles of at most
// direct_max_pairs(nv) pairs, from column -(pl % 2); columns outside [0, W) are not stored.
// Parts of the reduction and their partial sums as DirectRows's.
struct DirectPairs {
  const float* x;
  int64_t ldx, pt, pl;
  const int64_t* koff;
  int64_t kd, k0, k1;
  const float* wp;
  int nv, nk;
  float* y;
  int64_t ldy, W, oh0, oh1;
  float* part;
  bool first, last;
};
void direct_pairs_float(const DirectPairs& d);
constexpr int direct_max_pairs(int nv) { return nv == 1 ? 8 : nv == 2 ? 6 : 4; }

// d[h*ldd + q] = s[h*lds + q] for h < rows, q < W: masked moves, no library call a row (rows of
// 7-56 values: a memcpy call per row took 3-4% of GoogLeNet's 5x5 direct forwards).
void copy_rows_float(const float* s, int64_t lds, int64_t rows, int64_t W, float* d,
                     int64_t ldd);

}  // namespace pyconv::avx512
