// Packed GEMM core shared by the conv kernels: C[M x N] = A[M x Kd] * B[Kd x N].
//
// BLIS-style: A is packed into MR-row panels (a[k*MR + i]), B into NR-column
// panels (b[k*NR + j]), both zero-padded to whole panels; a register-tile
// micro-kernel computes one MR x NR tile over one reduction block of at most
// kKC. The operands are never materialised as matrices: callers supply
// packers that read straight from NCHW views (implicit im2col) and a store
// that maps tile columns to output addresses (columns may span images) and
// applies the bias/activation epilogue. See gemm_driver.h.
//
// Reduction blocking depends only on the reduction length (kblocks below), never
// on the thread count, and every output element is reduced by one thread in one
// order, so results are bitwise identical for any number of threads.
#pragma once
#include <cstdint>

#include "common/cpu.h"

namespace pyconv::gemm {

// Zen 3 blocking: a KC x NB packed B block (256 x 192 fp32 = 192 KiB) stays in
// the 512 KiB L2 while MR x KC A micro-panels (6 KiB) stream through L1; tasks
// cover kMC rows (the conv GEMM's up to 4 * kMC where the columns allow: the A block
// needs no L2 room, conv_gemm.cpp's for_each_task).
// There is no NC (BLIS's L3-resident B panel): each task packs its own KC x NB
// block, which costs one packed element per 2*M flops, and tasks stay
// independent (no barriers, any thread count).
constexpr int64_t kMC = 144;
constexpr int64_t kKC = 256;
constexpr int64_t kNB = 192;
constexpr int kMaxMR = 8;
constexpr int kMaxNR = 48;

// c[i*ldc + j] (+)= sum_{k < kc} a[k*MR + i] * b[k*NR + j]: overwrites c, or adds to it
// when acc.
template <typename T>
using UkrFn = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool acc);

// The same with A read in place as mv <= MR rows: a[i*lda + k] (a ragged tile writes only
// its mv rows of c, with the arithmetic of UkrRemFn).
template <typename T>
using UkrRowsFn = void (*)(int mv, int64_t kc, const T* a, int64_t lda, const T* b, T* c,
                           int64_t ldc, bool acc);

// The first mv < MR rows of a tile of a packed A panel (panel stride MR): only those rows
// of c are written.
template <typename T>
using UkrRemFn = void (*)(int mv, int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                          bool acc);

// A full packed-A tile with the epilogue applied in registers: + bias[i] (bias may be null),
// then relu when relu; a tile that overwrites C (!acc) with non-temporal stores when stream
// (and C's rows are aligned for them): the caller fences afterwards.
template <typename T>
using UkrEpiFn = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool acc,
                          const T* bias, bool relu, bool stream);

// mv <= MR rows of a packed A panel (panel stride MR) times B read in place through
// offsets: reduction row k at b + boff[k], NR contiguous values. A full tile (mv == MR)
// gets the epilogue in registers as UkrEpiFn (bias may be null); a ragged one ignores it.
template <typename T>
using UkrOffFn = void (*)(int mv, int64_t kc, const T* a, const T* b, const int64_t* boff, T* c,
                          int64_t ldc, bool acc, const T* bias, bool relu, bool stream);

// c[i*ldc + j] (+)= sum_{k < kc} a[i][aoff[k]] * b[k*NR + j] for all MR rows: A read in
// place through row pointers (ukr_ind in ukernel_tmpl.h).
template <typename T>
using UkrIndFn = void (*)(int64_t kc, const T* const* a, const int64_t* aoff, const T* b, T* c,
                          int64_t ldc, bool acc);

// A selection of the reduction indices of one block, for a tile whose A rows read the
// source's zero padding at the other ones (pixel rows, conv_gemm.cpp): the reduction index
// (channel, tap) is kept when the tap is one of a box's nt taps. Taps t of the box: A at
// ao + aoff[t] from each row pointer, B's row at bo + boff[t] from the packed panel, for
// one channel; the next channel's at ao + astep, bo + bstep. The block keeps n of them,
// from the box's tap t onwards.
struct KSel {
  int64_t n;
  const int64_t* aoff;
  const int64_t* boff;
  int64_t nt, t, ao, bo, astep, bstep;
};

// ukr_ind over the reduction indices of s: c[i*ldc + j] (+)= sum over them of
// a[i][A offset] * b[B offset + j] (ukr_box in ukernel_tmpl.h).
template <typename T>
using UkrBoxFn = void (*)(const KSel& s, const T* const* a, const T* b, T* c, int64_t ldc,
                          bool acc);

// y[n*ldy + o] = sum_k a[o*lda + k] * x[n*ldx + k] for o < M, n < nx: rows of a dotted with
// nx vectors, each row read once (gemv_rows in ukernel_tmpl.h).
template <typename T>
using GemvFn = void (*)(int nx, int64_t M, int64_t K, const T* a, int64_t lda, const T* x,
                        int64_t ldx, T* y, int64_t ldy);

// y[n*ldy + l] = sum_m x[n*ldx + m] * a[m*lda + l] for l < L, n < nx: the rows of a
// combined by nx vectors, each row streamed once (gemv_t_rows in ukernel_tmpl.h).
template <typename T>
using GemvTFn = GemvFn<T>;

template <typename T>
struct UKernel {
  int mr = 0, nr = 0;
  UkrFn<T> fn = nullptr;
  UkrRowsFn<T> fn_rows = nullptr;
  UkrRemFn<T> fn_rem = nullptr;
  UkrEpiFn<T> fn_epi = nullptr;
  UkrOffFn<T> fn_off = nullptr;
  GemvFn<T> fn_gemv = nullptr;
  GemvTFn<T> fn_gemv_t = nullptr;
  UkrIndFn<T> fn_ind = nullptr;
  UkrBoxFn<T> fn_box = nullptr;
  const char* name = "";
};

// The micro-kernel for an instruction set (capped at what the CPU supports).
template <typename T>
UKernel<T> ukernel_for(Isa isa);

// How much more a 512-bit FMA does than a 256-bit one on this CPU (flops per second, timed
// once): about 2 where both FMA pipes are 512 bits wide (Intel's server cores), about 1 where
// 512-bit operations go through 256-bit halves (Zen 4). 1 without AVX-512.
double wide_fma_gain();

// The cost of a unit of AVX2-tile work against one of the 8x32 AVX-512 tile's: what 512-bit
// FMAs gain, at least 1.25 (the wide tile's fewer loads and instructions).
double narrow_tile_weight();

// AVX-512's 8 x 48 fp32 tile (three vectors of columns, 24 accumulators) under isa; the
// instruction set's own tile otherwise (ukernel_for).
template <typename T>
UKernel<T> ukernel_wide(Isa isa);

// The tile for a GEMM of about rows x cols outputs under isa: on AVX-512 float, the one of
// least padded work among the 8x32 tile, the 8x48 one (48 or 144 columns fill its panels and
// leave the 8x32 tile's last one a third or half empty) and AVX2's 6x16, its work weighted by
// narrow_tile_weight() (16 columns: one panel, half of a 32-column one); ties keep the 8x32
// tile. Otherwise ukernel_for(isa). For drivers that pack B and read A packed or through row
// pointers (pixel rows, taps-as-rows weight gradients, the GEMMs of conv_gemm.cpp's
// pixel_tile): the 8x48 tile has no fn_rows or fn_off (null). pixel_rows: for pixel rows'
// GEMMs (A the pixels, through row pointers or packed; C stored value by value), AVX-512's
// 8 x 16 tile joins the candidates (16 output channels: one vector of columns, eight
// accumulators; no fn_rows, fn_epi or fn_off).
template <typename T>
UKernel<T> ukernel_for_shape(Isa isa, int64_t rows, int64_t cols, bool pixel_rows = false);

// Reduction blocks of a length-n reduction: nb = ceil(n / kKC) nearly equal
// blocks (one empty block when n == 0).
struct KBlocks {
  int64_t n, nb;
  explicit KBlocks(int64_t n_) : n(n_), nb(n_ > 0 ? (n_ + kKC - 1) / kKC : 1) {}
  int64_t begin(int64_t p) const { return p * (n / nb) + (p < n % nb ? p : n % nb); }
  int64_t size(int64_t p) const { return n / nb + (p < n % nb ? 1 : 0); }
  // The block holding index i (0 <= i < n).
  int64_t index(int64_t i) const {
    const int64_t q = n / nb, r = n % nb;
    return i < r * (q + 1) ? i / (q + 1) : r + (i - r * (q + 1)) / q;
  }
};

inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// Rounded toward minus infinity (b > 0), for offsets that may be negative.
inline int64_t floor_div(int64_t a, int64_t b) { return (a >= 0 ? a : a - b + 1) / b; }
inline int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

}  // namespace pyconv::gemm
