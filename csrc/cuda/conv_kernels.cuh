// The conv2d CUDA kernels and their argument setup, kept apart from the
// launchers (conv_cuda_impl.cuh) so that the same source also compiles as plain C++
// under csrc/cuda/emu/cuda_emu.h, where a CPU emulation of the CUDA execution
// model checks the index arithmetic and the tiling without a GPU.
#pragma once
#ifndef PYCONV_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <cstdint>

#include "common/tensor.h"
#include "conv/conv_params.h"
#include "cuda/act_device.cuh"
#include "cuda/fastdiv.cuh"

namespace pyconv::cuda::kern {

enum Mode { kFwd = 0, kBwdData = 1, kBwdWeight = 2 };

constexpr int THREADS = 256, PADS = 4;

// Block tiles. Each thread computes (BM/16) x (BN/16) outputs: rows
// {ci*64 + ty*4 + 0..3}, columns {cj*64 + tx*4 + 0..3} (ty, tx = thread / 16, % 16),
// so that its operands are 4-wide vector loads from shared memory.
struct Tile64 { static constexpr int BM = 64, BN = 64, BK = 16, MINB = 1; };
struct Tile128 { static constexpr int BM = 128, BN = 128, BK = 8, MINB = 2; };  // fp32, big GEMMs
constexpr int kChunkAlign = 16;  // split-K chunks are whole tiles of either BK

template <typename T>
struct IgemmArgs {
  const T* a;  // A operand source: w (kFwd, kBwdData) or dy (kBwdWeight)
  int64_t as[4];
  const T* b;  // B operand source: x (kFwd, kBwdWeight) or dy (kBwdData)
  int64_t bs[4];
  T* out;      // contiguous output (or split partials for kBwdWeight)
  T* preact;
  const T* bias;
  int64_t bias_stride;
  ActKind act;
  T act_param;
  int M, N, Kd;  // GEMM sizes per group
  int Mtot;      // rows of all groups (output channels)
  int L;         // columns per image (P*Q or H*W); N for kBwdWeight
  int kchunk;    // reduction range per split
  int groups;
  int Cg, Kg, H, W, P, Q, R, S;
  int sh, sw, dh, dw, pt, pl;
  FastDiv div_RS, div_S, div_PQ, div_Q, div_sh, div_sw, div_L;
};

// Four consecutive elements from 16-byte-aligned shared memory.
template <typename T>
__device__ __forceinline__ void load4(const T* p, T* out) {
#ifdef PYCONV_CUDA_EMU
  emu_check_aligned(p, 16);
  for (int i = 0; i < 4; ++i) out[i] = p[i];
#else
  if constexpr (sizeof(T) == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
  } else {
    const double2 v0 = reinterpret_cast<const double2*>(p)[0], v1 = reinterpret_cast<const double2*>(p)[1];
    out[0] = v0.x; out[1] = v0.y; out[2] = v1.x; out[3] = v1.y;
  }
#endif
}

template <typename T, int MODE, int BM, int BN, int BK, int MINB>
__global__ void __launch_bounds__(THREADS, MINB) conv_igemm(const IgemmArgs<T> a) {
  constexpr int TM = BM / 16, TN = BN / 16;
  constexpr int A_STEP = THREADS / BK, A_LOADS = BM / A_STEP;
  constexpr int B_STEP = THREADS / BN, B_LOADS = BK / B_STEP;
  static_assert(TM % 4 == 0 && TN % 4 == 0 && THREADS % BK == 0 && THREADS % BN == 0 &&
                BM % A_STEP == 0 && BK % B_STEP == 0, "tile shape");
  __shared__ __align__(16) T As[2][BK][BM + PADS];
  __shared__ __align__(16) T Bs[2][BK][BN + PADS];

  const int t = threadIdx.x;
  const int g = blockIdx.z % a.groups;
  const int split = blockIdx.z / a.groups;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int kbeg = split * a.kchunk;
  const int kend = min(a.Kd, kbeg + a.kchunk);

  // A loads: tile column a_k, rows a_m + A_STEP*i. B loads: tile column b_n, rows b_k + B_STEP*i.
  const int a_k = t % BK, a_m = t / BK;
  const int b_n = t % BN, b_k = t / BN;

  // Per-thread constants of its B column.
  const int nB = n0 + b_n;
  const bool nB_ok = nB < a.N;
  int64_t b_base = 0;
  int c0 = 0, c1 = 0;  // kFwd: ih0, iw0; kBwdData: th0, tw0; kBwdWeight: r*dh-pt, s*dw-pl
  if (nB_ok) {
    if (MODE == kFwd) {
      const int nb = nB / (a.P * a.Q), pq = nB % (a.P * a.Q);
      b_base = nb * a.bs[0] + int64_t(g) * a.Cg * a.bs[1];
      c0 = (pq / a.Q) * a.sh - a.pt;
      c1 = (pq % a.Q) * a.sw - a.pl;
    } else if (MODE == kBwdData) {
      const int HW = a.H * a.W;
      const int nb = nB / HW, hw = nB % HW;
      b_base = nb * a.bs[0] + int64_t(g) * a.Kg * a.bs[1];
      c0 = hw / a.W + a.pt;
      c1 = hw % a.W + a.pl;
    } else {
      const int RS = a.R * a.S;
      const int c = nB / RS, rs = nB % RS;
      b_base = (int64_t(g) * a.Cg + c) * a.bs[1];
      c0 = (rs / a.S) * a.dh - a.pt;
      c1 = (rs % a.S) * a.dw - a.pl;
    }
  }

  T ra[A_LOADS], rb[B_LOADS];
  auto load = [&](int k0) {
    {  // A: one reduction index per thread, decomposed once for all its rows
      const int kk = k0 + a_k;
      const bool k_ok = kk < kend;
      int64_t koff = 0;
      if (k_ok) {
        if (MODE == kFwd || MODE == kBwdData) {
          const int q1 = a.div_RS.div(kk), rs = a.div_RS.mod(kk, q1);
          const int r = a.div_S.div(rs), s = a.div_S.mod(rs, r);
          koff = r * a.as[2] + s * a.as[3] +
                 (MODE == kFwd ? q1 * a.as[1] : (int64_t(g) * a.Kg + q1) * a.as[0]);
        } else {
          const int nb = a.div_PQ.div(kk), pq = a.div_PQ.mod(kk, nb);
          const int p = a.div_Q.div(pq), q = a.div_Q.mod(pq, p);
          koff = nb * a.as[0] + p * a.as[2] + q * a.as[3];
        }
      }
#pragma unroll
      for (int i = 0; i < A_LOADS; ++i) {
        const int m = m0 + a_m + A_STEP * i;
        T v = T(0);
        if (k_ok && m < a.M) {
          int64_t moff;
          if (MODE == kFwd) moff = (int64_t(g) * a.Kg + m) * a.as[0];
          else if (MODE == kBwdData) moff = m * a.as[1];
          else moff = (int64_t(g) * a.Kg + m) * a.as[1];
          v = a.a[moff + koff];
        }
        ra[i] = v;
      }
    }
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {  // B
      const int kk = k0 + b_k + B_STEP * i;
      T v = T(0);
      if (nB_ok && kk < kend) {
        if (MODE == kFwd) {
          const int c = a.div_RS.div(kk), rs = a.div_RS.mod(kk, c);
          const int r = a.div_S.div(rs), s = a.div_S.mod(rs, r);
          const int ih = c0 + r * a.dh, iw = c1 + s * a.dw;
          if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W)
            v = a.b[b_base + c * a.bs[1] + ih * a.bs[2] + iw * a.bs[3]];
        } else if (MODE == kBwdData) {
          const int k = a.div_RS.div(kk), rs = a.div_RS.mod(kk, k);
          const int r = a.div_S.div(rs), s = a.div_S.mod(rs, r);
          const int th = c0 - r * a.dh, tw = c1 - s * a.dw;
          if (th >= 0 && tw >= 0) {
            const int p = a.div_sh.div(th), q = a.div_sw.div(tw);
            if (a.div_sh.mod(th, p) == 0 && a.div_sw.mod(tw, q) == 0 && p < a.P && q < a.Q)
              v = a.b[b_base + k * a.bs[1] + p * a.bs[2] + q * a.bs[3]];
          }
        } else {
          const int nb = a.div_PQ.div(kk), pq = a.div_PQ.mod(kk, nb);
          const int p = a.div_Q.div(pq), q = a.div_Q.mod(pq, p);
          const int ih = p * a.sh + c0, iw = q * a.sw + c1;
          if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W)
            v = a.b[b_base + nb * a.bs[0] + ih * a.bs[2] + iw * a.bs[3]];
        }
      }
      rb[i] = v;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) As[buf][a_k][a_m + A_STEP * i] = ra[i];
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) Bs[buf][b_k + B_STEP * i][b_n] = rb[i];
  };

  const int tx = t % 16, ty = t / 16;
  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  if (kbeg < kend) {
    load(kbeg);
    store(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
      const bool more = k0 + BK < kend;
      if (more) load(k0 + BK);  // global loads in flight while this tile computes
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        T av[TM], bv[TN];
#pragma unroll
        for (int ci = 0; ci < TM / 4; ++ci) load4(&As[buf][kk][ci * 64 + ty * 4], av + ci * 4);
#pragma unroll
        for (int cj = 0; cj < TN / 4; ++cj) load4(&Bs[buf][kk][cj * 64 + tx * 4], bv + cj * 4);
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
      }
      if (more) {
        store(buf ^ 1);
        __syncthreads();
        buf ^= 1;
      }
    }
  }

  // Epilogue: each output element is written by exactly one thread.
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int n = n0 + (j / 4) * 64 + tx * 4 + j % 4;
    if (n >= a.N) continue;
    int64_t col;
    if (MODE == kBwdWeight) {
      col = n + int64_t(split) * a.Mtot * a.N;
    } else {
      const int img = a.div_L.div(n);
      col = int64_t(img) * a.Mtot * a.L + a.div_L.mod(n, img);
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int m = m0 + (i / 4) * 64 + ty * 4 + i % 4;
      if (m >= a.M) continue;
      const int64_t ch = int64_t(g) * a.M + m;
      const int64_t idx = col + ch * a.L;
      T v = acc[i][j];
      if (MODE != kBwdWeight) {
        if (a.bias) v += a.bias[ch * a.bias_stride];
        if (a.preact) a.preact[idx] = v;
        v = act_forward<T>(a.act, a.act_param, v);
      }
      a.out[idx] = v;
    }
  }
}

// out[i] = sum_s parts[s * n + i], s in order.
template <typename T>
__global__ void sum_partials(const T* __restrict__ parts, int splits, int64_t n, T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    T s = parts[i];
    for (int k = 1; k < splits; ++k) s += parts[k * n + i];
    out[i] = s;
  }
}

// Partial bias gradients: block (k, chunk) sums dy[:, k] over flat (n, p, q)
// positions [chunk * per, (chunk + 1) * per) in a fixed per-thread order and a
// fixed tree, so the result is deterministic. With one chunk it writes db[k];
// otherwise parts[chunk * K + k], summed in order by sum_partials.
template <typename T, bool SMALL>
__global__ void __launch_bounds__(THREADS) bias_grad(View4<const T> dy, FastDiv div_PQ, FastDiv div_Q,
                                                     int64_t per, T* __restrict__ out) {
  __shared__ T red[THREADS];
  const int64_t k = blockIdx.x, chunk = blockIdx.y, K = gridDim.x;
  const int64_t Q = dy.size[3], PQ = dy.size[2] * Q, total = dy.size[0] * PQ;
  const int64_t beg = chunk * per, end = min(total, beg + per);
  const bool flat = dy.stride[3] == 1 && dy.stride[2] == Q;  // each (n, k) plane contiguous
  const T* base = dy.data + k * dy.stride[1];
  T s = T(0);
  for (int64_t i = beg + threadIdx.x; i < end; i += THREADS) {
    const int64_t n = div_by<SMALL>(div_PQ, i), pq = i - n * PQ;
    if (flat) {
      s += base[n * dy.stride[0] + pq];
    } else {
      const int64_t p = div_by<SMALL>(div_Q, pq);
      s += base[n * dy.stride[0] + p * dy.stride[2] + (pq - p * Q) * dy.stride[3]];
    }
  }
  red[threadIdx.x] = s;
  __syncthreads();
  for (int w = THREADS / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[chunk * K + k] = red[0];
}

// Chunks of the bias gradient: a function of the shape alone, so every GPU sums
// in the same order.
inline int bias_grad_chunks(int64_t total) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(64, total / 16384)));
}

template <typename T>
IgemmArgs<T> base_args(const ConvParams& p) {
  IgemmArgs<T> a{};
  a.groups = static_cast<int>(p.groups);
  a.Cg = static_cast<int>(p.Cg());
  a.Kg = static_cast<int>(p.Kg());
  a.H = static_cast<int>(p.H); a.W = static_cast<int>(p.W);
  a.P = static_cast<int>(p.P); a.Q = static_cast<int>(p.Q);
  a.R = static_cast<int>(p.R); a.S = static_cast<int>(p.S);
  a.sh = static_cast<int>(p.stride_h); a.sw = static_cast<int>(p.stride_w);
  a.dh = static_cast<int>(p.dil_h); a.dw = static_cast<int>(p.dil_w);
  a.pt = static_cast<int>(p.pad_top); a.pl = static_cast<int>(p.pad_left);
  a.act = ActKind::none;
  a.div_RS = FastDiv(p.R * p.S); a.div_S = FastDiv(p.S);
  a.div_PQ = FastDiv(p.P * p.Q); a.div_Q = FastDiv(p.Q);
  a.div_sh = FastDiv(p.stride_h); a.div_sw = FastDiv(p.stride_w);
  return a;
}

template <typename T>
void set_view(const T*& ptr, int64_t (&s)[4], View4<const T> v) {
  ptr = v.data;
  for (int i = 0; i < 4; ++i) s[i] = v.stride[i];
}

// GEMM sizes of the three forms (see conv_cuda.h).
template <typename T>
IgemmArgs<T> fwd_args(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                      int64_t bias_stride, Activation act, T* y, T* preact) {
  IgemmArgs<T> a = base_args<T>(p);
  set_view(a.a, a.as, w);
  set_view(a.b, a.bs, x);
  a.out = y; a.preact = preact; a.bias = bias; a.bias_stride = bias_stride;
  a.act = act.kind; a.act_param = static_cast<T>(act.param);
  a.M = a.Kg;
  a.N = static_cast<int>(p.N * p.P * p.Q);
  a.Kd = static_cast<int>(p.Cg() * p.R * p.S);
  a.Mtot = static_cast<int>(p.K);
  a.L = a.P * a.Q;
  a.div_L = FastDiv(a.L);
  a.kchunk = a.Kd;
  return a;
}

template <typename T>
IgemmArgs<T> bwd_data_args(const ConvParams& p, View4<const T> dy, View4<const T> w,
                           const T* bias, int64_t bias_stride, Activation act, T* dx, T* preact) {
  IgemmArgs<T> a = base_args<T>(p);
  set_view(a.a, a.as, w);
  set_view(a.b, a.bs, dy);
  a.out = dx; a.preact = preact; a.bias = bias; a.bias_stride = bias_stride;
  a.act = act.kind; a.act_param = static_cast<T>(act.param);
  a.M = a.Cg;
  a.N = static_cast<int>(p.N * p.H * p.W);
  a.Kd = static_cast<int>(p.Kg() * p.R * p.S);
  a.Mtot = static_cast<int>(p.C);
  a.L = a.H * a.W;
  a.div_L = FastDiv(a.L);
  a.kchunk = a.Kd;
  return a;
}

// Split count for the weight gradient computed with tile Tl: enough blocks for
// ~2 waves on `sms` multiprocessors, each split at least 64 reduction steps deep.
template <typename Tl>
int wgrad_splits(const ConvParams& p, int sms) {
  const int64_t M = p.Kg(), N = p.Cg() * p.R * p.S, Kd = p.N * p.P * p.Q;
  const int64_t blocks = ((M + Tl::BM - 1) / Tl::BM) * ((N + Tl::BN - 1) / Tl::BN) * p.groups;
  const int64_t target = 2 * int64_t(sms);
  int64_t splits = std::min<int64_t>((target + blocks - 1) / blocks, (Kd + 63) / 64);
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, 64));
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, 65535 / std::max<int64_t>(1, p.groups)));
  // The split count actually used is fixed by the chunk size, rounded to whole tiles.
  const int64_t chunk = ((Kd + splits - 1) / splits + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  return static_cast<int>(chunk > 0 ? (Kd + chunk - 1) / chunk : 1);
}

// dw = out when splits == 1, else the partials go to workspace (splits * K * Cg*R*S).
template <typename T>
IgemmArgs<T> bwd_weight_args(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw,
                             int splits, T* workspace) {
  IgemmArgs<T> a = base_args<T>(p);
  set_view(a.a, a.as, dy);
  set_view(a.b, a.bs, x);
  a.M = a.Kg;
  a.N = static_cast<int>(p.Cg() * p.R * p.S);
  a.Kd = static_cast<int>(p.N * p.P * p.Q);
  a.Mtot = static_cast<int>(p.K);
  a.L = a.N;
  a.div_L = FastDiv(a.L);
  a.kchunk = splits <= 1 ? std::max(a.Kd, 1)
                         : ((a.Kd + splits - 1) / splits + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  a.out = splits <= 1 ? dw : workspace;
  return a;
}

// Grid of conv_igemm with tile Tl: x over GEMM columns, y over rows, z over groups * splits.
template <typename Tl, typename T>
dim3 igemm_grid(const IgemmArgs<T>& a, int splits) {
  return dim3((a.N + Tl::BN - 1) / Tl::BN, static_cast<unsigned>((a.M + Tl::BM - 1) / Tl::BM),
              static_cast<unsigned>(int64_t(a.groups) * splits));
}

// The 128x128 tile pays off for fp32 with at least 128 rows and enough blocks
// to fill the GPU (the weight gradient fills it with splits instead).
template <typename T>
bool use_tile128(int M, int N, int groups, int sms, bool split_k) {
  if constexpr (sizeof(T) != 4) {
    return false;
  } else {
    if (M < 128 || N < 128) return false;
    if (split_k) return true;
    return int64_t((M + 127) / 128) * ((N + 127) / 128) * groups >= sms;
  }
}

}  // namespace pyconv::cuda::kern
