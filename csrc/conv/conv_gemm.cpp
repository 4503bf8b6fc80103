// GEMM-based conv2d: packers that read NCHW views through their strides
// (implicit im2col, no im2col buffer) and stores that map tile columns to
// NCHW outputs. Epilogue (bias + activation) runs on the just-computed tile,
// still in L1, when the last reduction block is stored.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "act/act.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "conv/conv_ref.h"
#include "gemm/gemm_driver.h"

#if defined(PYCONV_X86)
namespace pyconv::avx2 {
// d[kk*6 + i] = rows[i][kk] for kk < kc, i < 6 (pack_avx2.cpp).
void pack6_rows_float(const float* const* rows, int64_t kc, float* d);
// d[kk*16 + j] = base[koff[kk] + j] for kk < kc, j < 16 (pack_avx2.cpp).
void copy_panel16_float(const float* base, const int64_t* koff, int64_t kc, float* d);
// d[kk*16 + jp[i] + q] = base[i][koff[kk] + q] for q < len[i], zero past the last run
// (pack_avx2.cpp).
void pack_runs16_float(const float* const* base, const int64_t* jp, const int64_t* len,
                       int nseg, const int64_t* koff, int64_t kc, float* d);
// d[ph*Wq + q] = s[2q + ph - pl], zero outside [0, W): a row of pad_source at column
// stride 2, Wq >= 8 (pack_avx2.cpp).
void pad_row2_float(const float* s, int64_t W, int64_t pl, int64_t Wq, float* d);
// The 8 x 8 tile of ukernel_avx2.cpp, A through row pointers (gemm::UkrIndFn).
void f32_gemm_ind8x8(int64_t kc, const float* const* a, const int64_t* aoff, const float* b,
                     float* c, int64_t ldc, bool acc);
}  // namespace pyconv::avx2
namespace pyconv::avx512 {
// d[kk*NR + jp[i] + q] = base[i][koff[kk] + step*q] for q < len[i] (step 1 or 2), zero past
// the last run (pack_avx512.cpp).
void pack_runs_float(const float* const* base, const int64_t* jp, const int64_t* len, int nseg,
                     const int64_t* koff, int64_t kc, float* d, int NR, int step);
}  // namespace pyconv::avx512
#endif

namespace pyconv::fast {

using gemm::ceil_div;
using gemm::floor_mod;
using gemm::kMC;
using gemm::round_up;
using gemm::UKernel;

// Whether B panels are read in place (GridB::in_place) instead of packed: only with few
// rows of A (M, the output channels of the forward or the input channels of backward-data),
// since packing a panel costs about one copy per MR rows of arithmetic on it (14% of
// CIFAR-10 conv1's forward, M = 32) while every further pass over a panel reads scattered
// rows instead of a contiguous block (DCGAN 128 -> 64 at 16x16, M = 64, ran 0.76-0.89x in
// place, 0.98x on the AVX-512 tile); up to kInPlaceRowsShort rows when the reduction is a
// single block of at least 64 values (paired A/B, 64 output channels: 5x5 from 3, 4 and 8
// channels at 32x32-224x224 1.11-1.29x, 7x7 from 3 at 64x64 1.18x, 3x3 from 8 at 112x112
// 1.12x; 3x3 from 3 channels, 27 values, ran 0.90-0.95x at 224x224, from 12 0.99x); and
// only when a reduction block's source rows stay in L1: at most half of a 32 KiB L1 (the
// 7x7 stride-2 stem's backward-data, 30 KB of rows per block, ran 0.90-0.95x in place on
// Zen 3), 20 KiB of a 48 KiB one (Zen 5: the stem's forward, 19.3 KB of column-phase rows,
// 1.06-1.07x in place at batch 1, 4 and 32; 3x3 16 -> 32 at 112x112, 21.9 KB, 0.97x). Only on
// tiles with an in-place kernel (fn_off): not AVX-512's 8 x 48, whose three unaligned row
// loads a step ran the 7x7 stem 0.95-0.97x of its packed panels (Intel Xeon).
constexpr int64_t kInPlaceRows = 32;
constexpr int64_t kInPlaceRowsShort = 64;
inline int64_t in_place_bytes() { return l1d_bytes() >= (48 << 10) ? 20 << 10 : 16 << 10; }


// The tile of a GEMM whose columns are pixels (forward, backward-data): AVX-512's 8 x 48
// (11 loads a 24 FMAs, the 8 x 32 tile's 10 a 16) when a grid (an image, or a stride phase
// of one) has at least kWidePixels pixels, so that few of its 48-column panels straddle two
// images (such tiles cannot be stored in place), and the reduction at least kWideReduction
// values (shorter ones, 16-32 values, ran 0.94-0.95x on it: 1x1 32 -> 128 and 16 -> 64 at
// 56x56, 3x3 stride 2 from 3 channels at 108x108; 64 values 1.10x); else the instruction
// set's tile.
constexpr int64_t kWidePixels = 128;
constexpr int64_t kWideReduction = 64;
template <typename T>
UKernel<T> pixel_tile(int64_t grid_pixels, int64_t reduction) {
  return grid_pixels >= kWidePixels && reduction >= kWideReduction
             ? gemm::ukernel_wide<T>(active_isa())
             : gemm::ukernel_for<T>(active_isa());
}

template <typename T>
bool in_place_b(const UKernel<T>& uk, int64_t M, const View4<const T>& src,
                const std::vector<int64_t>& offh, int64_t taps, int64_t channels) {
  if (!uk.fn_off) return false;
  const int64_t kd = taps * channels;
  const bool short_red = kd >= 64 && kd <= gemm::kKC;
  if (M > (short_red ? kInPlaceRowsShort : kInPlaceRows) || offh.empty() || taps == 0)
    return false;
  const auto [lo, hi] = std::minmax_element(offh.begin(), offh.end());
  const int64_t rows = *hi - *lo + 1;
  const int64_t chans = std::min(channels, ceil_div(gemm::kKC, taps) + 1);
  return chans * rows * src.stride[2] * static_cast<int64_t>(sizeof(T)) <= in_place_bytes();
}

namespace {


// move(q, n) over pieces of n values that cover [0, len): 8 at a time and an overlapping last
// 8, or two overlapping pieces of 4 or of 2 on short runs. n is a compile-time constant, so
// the moves are inline loads and stores, not library calls (rows of 6 or 7 in a 16-column
// panel; a zero-padding loop per row and side became two memset calls per row, 5% of DCGAN
// 128 -> 64's transposed forward).
template <class Move>
inline void in_pieces(int64_t len, Move&& move) {
  using C2 = std::integral_constant<int64_t, 2>;
  using C4 = std::integral_constant<int64_t, 4>;
  using C8 = std::integral_constant<int64_t, 8>;
  if (len >= 8) {
    int64_t q = 0;
    for (; q + 8 <= len; q += 8) move(q, C8{});
    if (q < len) move(len - 8, C8{});
  } else if (len >= 4) {
    move(int64_t(0), C4{}), move(len - 4, C4{});
  } else if (len >= 2) {
    move(int64_t(0), C2{}), move(len - 2, C2{});
  } else if (len == 1) {
    move(int64_t(0), std::integral_constant<int64_t, 1>{});
  }
}

// d[q] = s[q] for q < len.
template <typename T>
inline void copy_run(T* d, const T* s, int64_t len) {
  in_pieces(len, [&](int64_t q, auto n) { std::memcpy(d + q, s + q, n * sizeof(T)); });
}

// d[q] = 0 for q < len.
template <typename T>
inline void zero_run(T* d, int64_t len) {
  in_pieces(len, [&](int64_t q, auto n) { std::memset(d + q, 0, n * sizeof(T)); });
}

// The end of the run of consecutive offsets ko[a], ko[a] + 1, ... within [a, kc).
inline int64_t run_end(const int64_t* ko, int64_t a, int64_t kc) {
  int64_t b = a + 1;
  while (b < kc && ko[b] == ko[b - 1] + 1) ++b;
  return b;
}

#if defined(PYCONV_X86)
// d[l*NR + j] = rows[j][off + l] for l < len, j < NR (NR a multiple of 8): one run of a
// panel whose columns are rows of a source, by 8x8 transposes.
inline void transpose_run(const float* const* rows, int64_t off, int64_t len, float* d, int NR) {
  for (int q = 0; q < NR; q += 8) avx2::transpose8_rows_float(rows + q, off, len, d + q, NR);
}
#endif

// off[q] = ch*cs + a[th]*as + b[tw]*bs for the n reduction indices k0 + q = (ch, th, tw)
// (na x nb taps a channel), by counters: three or four divisions an index cost the calling
// thread 4% of a 512 -> 48 5x5 forward at 14x14 batch 2 (12800 indices) while the others
// waited.
inline void tap_offsets(int64_t k0, int64_t n, int64_t cs, const int64_t* a, int64_t na,
                        int64_t as, const int64_t* b, int64_t nb, int64_t bs, int64_t* off) {
  if (n <= 0 || na * nb == 0) return;
  int64_t ch = k0 / (na * nb), th = k0 / nb % na, tw = k0 % nb;
  for (int64_t q = 0; q < n; ++q) {
    off[q] = ch * cs + a[th] * as + b[tw] * bs;
    if (++tw == nb) {
      tw = 0;
      if (++th == na) th = 0, ++ch;
    }
  }
}

// B operand of forward / backward-data: row kk = (channel, tap_h, tap_w), column
// j = (n, gi, gj) over an output grid; value src[n, cb+ch, gi*sth + offh[th], gj*stw + offw[tw]].
// Every such index must lie inside src: callers pass the zero-padded source of pad_source().
template <typename T>
struct GridB {
  View4<const T> src;
  int64_t cb;
  int64_t Gh, Gw, sth, stw;
  const int64_t* offh;
  int64_t nth;
  const int64_t* offw;
  int64_t ntw;
  int NR;
  // Panels that are one contiguous run of NR source columns are read in place by the
  // micro-kernel (no packing) when set: see in_place_b.
  bool in_place = false;

  struct Seg {
    int64_t jp, len;
    const T* base;  // source of column jp at tap offset 0, channel 0
  };

  // Panel by panel, each written sequentially (kk-major within the panel).
  gemm::BPanels<T> operator()(int64_t j0, int64_t nb, int64_t k0, int64_t kc, T* dst) const {
    const int64_t GG = Gh * Gw, taps = nth * ntw;
    thread_local std::vector<const T*> place;
    place.assign(static_cast<size_t>(ceil_div(nb, NR)), nullptr);
    if (kc == 0 || taps == 0) return {dst, place.data(), nullptr};
    const int64_t s1 = src.stride[1], s2 = src.stride[2], s3 = src.stride[3];
    const int64_t cs = stw * s3;  // source step between neighbouring columns
    const bool rows_contig = cs == 1 && sth * s2 == Gw;
    thread_local std::vector<int64_t> tab;
    tab.resize(static_cast<size_t>(kc));
    int64_t* koff = tab.data();
    tap_offsets(k0, kc, s1, offh, nth, s2, offw, ntw, s3, koff);
    int64_t n = j0 / GG, rem = j0 % GG, gi = rem / Gw, gj = rem % Gw;
    // The block's columns one run of the source (1x1 stride 1 within an image): packed
    // row by row, each reduction row's nb values read in order, a few rows ahead
    // prefetched. Panel by panel, the nb / NR reads of a row come at different times and
    // the first panels' rows miss with the full memory latency (hardware prefetchers do
    // not follow kc rows at once): 1.02-1.18x on 1x1 layers with inputs beyond L2 (one
    // build, the two ways alternated), the most at 256 -> 64 on 8 x 56x56 (1.17-1.18x).
    if (cs == 1 && rows_contig && !in_place && nb % NR == 0 && (Gh - gi) * Gw - gj >= nb) {
      constexpr int64_t kAhead = 4, kLine = 64 / sizeof(T);
      const T* base = src.data + n * src.stride[0] + cb * s1 + gi * sth * s2 + gj;
      for (int64_t kk = 0; kk < kc; ++kk) {
        if (kk + kAhead < kc)
          for (int64_t q = 0; q < nb; q += kLine) __builtin_prefetch(base + koff[kk + kAhead] + q);
        const T* row = base + koff[kk];
        for (int64_t pj = 0; pj < nb; pj += NR) copy_panel_row(dst + pj * kc + kk * NR, row + pj);
      }
      return {dst, place.data(), koff};
    }
    Seg segs[gemm::kMaxNR];
    for (int64_t pj = 0; pj < nb; pj += NR) {
      const int64_t pv = std::min<int64_t>(NR, nb - pj);
      int nseg = 0;
      for (int64_t l = 0; l < pv;) {
        // A run of columns contiguous in the source: to the end of the output row, or
        // of the image when consecutive rows are contiguous too (1x1 stride 1, full
        // rows): then a panel is one run even on planes narrower than the panel.
        const int64_t run = rows_contig ? (Gh - gi) * Gw - gj : Gw - gj;
        const int64_t len = std::min(run, pv - l);
        segs[nseg++] = {l, len,
                        src.data + n * src.stride[0] + cb * s1 + gi * sth * s2 + gj * cs};
        l += len;
        gj += len;
        while (gj >= Gw) {
          gj -= Gw;
          if (++gi == Gh) gi = 0, ++n;
        }
      }
      T* d = dst + pj * kc;
      if (in_place && cs == 1 && nseg == 1 && pv == NR) {
        place[static_cast<size_t>(pj / NR)] = segs[0].base;
        continue;
      }
      if (cs == 1 && nseg == 1 && pv == NR) {
        const T* base = segs[0].base;
#if defined(PYCONV_X86)
        if constexpr (std::is_same_v<T, float>) {
          if (NR == 16 && active_isa() >= Isa::avx2) {
            avx2::copy_panel16_float(base, koff, kc, d);
            continue;
          }
        }
#endif
        for (int64_t kk = 0; kk < kc; ++kk, d += NR) {
          __builtin_prefetch(base + koff[kk] + 3 * NR);  // for the panels after next
          copy_panel_row(d, base + koff[kk]);
        }
        continue;
      }
      // Output rows of 16, 8 or 4 columns, the panel made of whole rows: fixed-size copies
      // (before the AVX-512 run packer, whose masked 16-lane moves per run took DCGAN's 4x4
      // phase grids 1.09-1.16x slower; its 16x16 grids, two runs a panel, 1.03-1.12x by the
      // machine's phase on Zen 5).
      if (cs == 1 && pv == NR && (segs[0].len == 16 || segs[0].len == 8 || segs[0].len == 4) &&
          nseg * segs[0].len == NR && segs[nseg - 1].len == segs[0].len) {
        const T* bases[gemm::kMaxNR / 4];
        for (int sgi = 0; sgi < nseg; ++sgi) bases[sgi] = segs[sgi].base;
        const auto copy_rows = [&](auto len) {  // (len a constant: inline moves)
          for (int64_t kk = 0; kk < kc; ++kk, d += NR)
            for (int sgi = 0; sgi < nseg; ++sgi)
              std::memcpy(d + len * sgi, bases[sgi] + koff[kk], len * sizeof(T));
        };
        if (segs[0].len == 16)
          copy_rows(std::integral_constant<int64_t, 16>{});
        else if (segs[0].len == 8)
          copy_rows(std::integral_constant<int64_t, 8>{});
        else
          copy_rows(std::integral_constant<int64_t, 4>{});
        continue;
      }
#if defined(PYCONV_X86)
      // One column per image (1x1 outputs: linear layers as convolutions): the panel is a
      // transpose of NR source rows, by 8x8 blocks along runs of consecutive offsets (one
      // value per column and reduction row went through the loop below: 0.6x of the pixel
      // rows' speed on a 64 x 1024 -> 64 linear).
      if constexpr (std::is_same_v<T, float>) {
        if (nseg == NR && pv == NR && NR % 8 == 0 && active_isa() >= Isa::avx2) {
          const T* rows[gemm::kMaxNR];
          for (int sgi = 0; sgi < nseg; ++sgi) rows[sgi] = segs[sgi].base;
          for (int64_t a = 0, b; a < kc; a = b) {
            b = run_end(koff, a, kc);
            transpose_run(rows, koff[a], b - a, d + a * NR, NR);
          }
          continue;
        }
      }
      // Runs of columns one or two apart (two: a stride-2 grid read in place, see
      // pad_source's stride2), 16 columns at a time.
      if constexpr (std::is_same_v<T, float>) {
        if ((cs == 1 || cs == 2) && NR % 16 == 0 && active_isa() >= Isa::avx512) {
          const T* bases[gemm::kMaxNR];
          int64_t jps[gemm::kMaxNR], lens[gemm::kMaxNR];
          for (int sgi = 0; sgi < nseg; ++sgi)
            bases[sgi] = segs[sgi].base, jps[sgi] = segs[sgi].jp, lens[sgi] = segs[sgi].len;
          avx512::pack_runs_float(bases, jps, lens, nseg, koff, kc, d, NR, static_cast<int>(cs));
          continue;
        }
      }
      // The same on the AVX2 tile, unit-stride runs: grids narrower than a panel, panels
      // across the end of a grid row. Against copy_run per run and reduction row (old/new
      // alternated, 2 threads): stride-2 backward-data 32 <- 128 5x5 at 28x28 (phase grids
      // of 14) 1.17x, at 24x24 1.15x, 16 <- 64 7x7 at 56x56 1.14x, 64 <- 256 5x5 1.10x,
      // 256 <- 256 3x3 at 14x14 1.07x; stride-2 forwards 1.02-1.05x.
      if constexpr (std::is_same_v<T, float>) {
        if (cs == 1 && NR == 16 && active_isa() >= Isa::avx2) {
          const T* bases[16];
          int64_t jps[16], lens[16];
          for (int sgi = 0; sgi < nseg; ++sgi)
            bases[sgi] = segs[sgi].base, jps[sgi] = segs[sgi].jp, lens[sgi] = segs[sgi].len;
          avx2::pack_runs16_float(bases, jps, lens, nseg, koff, kc, d);
          continue;
        }
      }
#endif
      for (int64_t kk = 0; kk < kc; ++kk, d += NR) {
        const int64_t ko = koff[kk];
        for (int sgi = 0; sgi < nseg; ++sgi) {
          const Seg& sg = segs[sgi];
          const T* sp = sg.base + ko;
          T* dd = d + sg.jp;
          if (cs == 1) {
            copy_run(dd, sp, sg.len);
          } else {
            // Strided (subsampling in place): one cache line per few elements, across as
            // many source rows as reduction rows, beyond what hardware prefetchers track.
            __builtin_prefetch(sp + 2 * NR * cs);
            for (int64_t q = 0; q < sg.len; ++q) dd[q] = sp[q * cs];
          }
        }
        for (int64_t q = pv; q < NR; ++q) d[q] = T(0);
      }
    }
    return {dst, place.data(), koff};
  }

  // (Each width a constant: inline moves.)
  void copy_panel_row(T* d, const T* s) const {
    switch (NR) {
      case 8: std::memcpy(d, s, 8 * sizeof(T)); break;
      case 16: std::memcpy(d, s, 16 * sizeof(T)); break;
      case 32: std::memcpy(d, s, 32 * sizeof(T)); break;
      case 48: std::memcpy(d, s, 48 * sizeof(T)); break;
      default: std::memcpy(d, s, static_cast<size_t>(NR) * sizeof(T));
    }
  }
};

// Stores nv tile values t[q] at d[idx(q)]: the first block overwrites, later ones add; the
// last applies the epilogue: + b[q*bstep] (when b: one value for a row of channel's outputs,
// bstep 0, or one per channel), the pre-activation to z[idx(q)] (when z), then the activation.
template <typename T, class Idx>
void emit_values(T* d, T* z, const T* t, int64_t nv, Idx idx, const T* b, int64_t bstep,
                 Activation act, bool first, bool last) {
  if (!last || (!b && !z && act.kind == ActKind::none)) {
    if (first)
      for (int64_t q = 0; q < nv; ++q) d[idx(q)] = t[q];
    else
      for (int64_t q = 0; q < nv; ++q) d[idx(q)] += t[q];
    return;
  }
  // Through act.h's kernels (SIMD for float: scalar erf / tanh made a fused gelu 4x the
  // conv's time), straight from t on the first block: t was written by full-width stores,
  // which their loads forward from; a sum copied by narrower stores stalls each load.
  T sum[gemm::kMaxNR], pre[gemm::kMaxNR], out[gemm::kMaxNR];
  if (!first)
    for (int64_t q = 0; q < nv; ++q) sum[q] = d[idx(q)] + t[q];
  bias_activation_serial(act, EpilogueBlock<T>{first ? t : sum, 0, out, 0, 1, nv, b, 0, bstep,
                                               z ? pre : nullptr, 0});
  if (z)
    for (int64_t q = 0; q < nv; ++q) z[idx(q)] = pre[q];
  for (int64_t q = 0; q < nv; ++q) d[idx(q)] = out[q];
}

// Tiles whose columns fall in at most this many runs of consecutive outputs are stored run by
// run (GridC).
constexpr int kMaxStoreRuns = 4;

// C of forward / backward-data / backward-weight: row m at base + m*row_stride,
// column j = (n, gi, gj) at off0 + n*img_stride + gi*row_step + gj*col_step.
template <typename T>
struct GridC {
  T* base;
  T* pre;  // receives the pre-activation (same layout), may be null
  int64_t row_stride, img_stride, row_step, col_step, off0, Gh, Gw;
  const T* bias;  // per row, may be null
  Activation act;
  int NR;
  bool nt = false;  // register-epilogue tiles with non-temporal stores (stream_output)

  template <class Idx>
  void emit(T* d, T* z, const T* t, int64_t nv, Idx idx, T b, bool first, bool last) const {
    emit_values(d, z, t, nv, idx, bias ? &b : nullptr, 0, act, first, last);
  }

  // A full tile written in place: dense grid, the tile's columns within one image.
  T* direct(int64_t m0, int64_t j0, int64_t& ldc) const {
    if (col_step != 1 || !(row_step == Gw || Gh == 1)) return nullptr;
    const int64_t GG = Gh * Gw, n = j0 / GG, rem = j0 % GG;
    if (rem + NR > GG) return nullptr;
    ldc = row_stride;
    return base + m0 * row_stride + off0 + n * img_stride + rem;
  }

  bool stream() const { return nt; }

  bool register_epilogue(int64_t m0, const T*& b, bool& relu) const {
    if (pre || (act.kind != ActKind::none && act.kind != ActKind::relu)) return false;
    b = bias ? bias + m0 : nullptr;
    relu = act.kind == ActKind::relu;
    return true;
  }

  // The epilogue on a direct tile's final values, in place, as one block.
  void finish(int64_t m0, int64_t mv, int64_t j0, int64_t nv) const {
    if (!bias && !pre && act.kind == ActKind::none) return;
    int64_t ldc;
    T* d0 = direct(m0, j0, ldc);
    bias_activation_serial(act, EpilogueBlock<T>{d0, ldc, d0, ldc, mv, nv,
                                                 bias ? bias + m0 : nullptr, 1, 0,
                                                 pre ? pre + (d0 - base) : nullptr, ldc});
  }

  void operator()(int64_t m0, int64_t mv, int64_t j0, int64_t nv, const T* tile, int64_t ldt,
                  bool first, bool last) const {
    const int64_t GG = Gh * Gw;
    int64_t n = j0 / GG, rem = j0 % GG;
    if (col_step == 1 && (row_step == Gw || Gh == 1) && rem + nv <= GG) {
      // Dense grid, one image: the tile's columns are contiguous.
      const int64_t o = off0 + n * img_stride + rem;
      if (first && last && (bias || pre || act.kind != ActKind::none)) {  // one block
        bias_activation_serial(act, EpilogueBlock<T>{tile, ldt, base + m0 * row_stride + o,
                                                     row_stride, mv, nv,
                                                     bias ? bias + m0 : nullptr, 1, 0,
                                                     pre ? pre + m0 * row_stride + o : nullptr,
                                                     row_stride});
        return;
      }
      for (int64_t i = 0; i < mv; ++i) {
        T* d = base + (m0 + i) * row_stride + o;
        T* z = pre ? pre + (m0 + i) * row_stride + o : nullptr;
        emit(d, z, tile + i * ldt, nv, [](int64_t q) { return q; }, bias ? bias[m0 + i] : T(0),
             first, last);
      }
      return;
    }
    int64_t off[gemm::kMaxNR];
    int64_t gi = rem / Gw, gj = rem % Gw;
    for (int64_t q = 0; q < nv; ++q) {
      off[q] = off0 + n * img_stride + gi * row_step + gj * col_step;
      if (++gj == Gw) {
        gj = 0;
        if (++gi == Gh) gi = 0, ++n;
      }
    }
    // Runs of consecutive offsets (a tile across two or three images of a dense grid), each
    // stored as a block; value by value where the runs are short (strided grids). Value by
    // value, the tiles across images of 7x7 planes took 55% of a 1x1 832 <- 32 backward-data
    // at batch 128.
    int64_t run[gemm::kMaxNR + 1];
    int nrun = 0;
    for (int64_t q = 0; q < nv; ++q)
      if (q == 0 || off[q] != off[q - 1] + 1) run[nrun++] = q;
    run[nrun] = nv;
    const bool runs = nrun <= kMaxStoreRuns;
    for (int64_t i = 0; i < mv; ++i) {
      T* d = base + (m0 + i) * row_stride;
      T* z = pre ? pre + (m0 + i) * row_stride : nullptr;
      const T b = bias ? bias[m0 + i] : T(0);
      if (runs)
        for (int r = 0; r < nrun; ++r) {
          const int64_t q0 = run[r];
          emit(d + off[q0], z ? z + off[q0] : nullptr, tile + i * ldt + q0, run[r + 1] - q0,
               [](int64_t q) { return q; }, b, first, last);
        }
      else
        emit(d, z, tile + i * ldt, nv, [&off](int64_t q) { return off[q]; }, b, first, last);
    }
  }
};

// Packs A[g][m, kk] = src[g*gs + moff[m] + koff[kk]] for every group into MR-row panels per
// reduction block, laid out so that block (m0, k0, kc) of group g is at
// result + g*Mpad*Kd + Mpad*k0 + (m0/MR)*MR*kc. Held in the calling thread's scratch.
// (Offsets from tables: no index arithmetic per element; weights are repacked every call.)
template <typename T>
const T* prepack_a(const UKernel<T>& uk, int64_t G, int64_t M, int64_t Kd, const T* src,
                   int64_t gs, const int64_t* moff, const std::vector<int64_t>& koff) {
  const int MR = uk.mr;
  const int64_t Mpad = round_up(M, MR), npan = Mpad / MR;
  T* a = gemm::scratch<T>(2, G * Mpad * Kd);
  const gemm::KBlocks kb(Kd);
  // Filters whose reduction indices are consecutive values (koff[k] = koff[0] + k: a
  // contiguous filter) pack by 8x8 transposes (pack6_rows_float; 8-row panels are the
  // transposes themselves) instead of value by value.
  bool unit = !koff.empty();  // (none: an empty reduction packs nothing)
  for (size_t k = 1; k < koff.size() && unit; ++k) unit = koff[k] == koff[0] + int64_t(k);
  // Block by block, all panels of a block together: the block's source (a few planes of an
  // im2col, a KC-wide band of the filter rows) stays in L1/L2 while its panels are written.
#pragma omp parallel for schedule(static) num_threads(threads_for(G * Mpad * Kd))
  for (int64_t t = 0; t < G * kb.nb * npan; ++t) {
    const int64_t g = t / (kb.nb * npan), pb = t / npan % kb.nb, pan = t % npan;
    const int64_t mv = std::min<int64_t>(MR, M - pan * MR);
    const T* s[gemm::kMaxMR];
    for (int64_t i = 0; i < mv; ++i) s[i] = src + g * gs + moff[pan * MR + i];
    const int64_t k0 = kb.begin(pb), kc = kb.size(pb);
    T* d = a + g * Mpad * Kd + Mpad * k0 + pan * MR * kc;
    const int64_t* ko = koff.data() + k0;
#if defined(PYCONV_X86)
    if constexpr (std::is_same_v<T, float>) {
      if (MR == 6 && mv == 6 && unit && active_isa() >= Isa::avx2) {
        for (int i = 0; i < 6; ++i) s[i] += ko[0];
        avx2::pack6_rows_float(s, kc, d);
        continue;
      }
      if (MR == 8 && mv == 8 && unit && active_isa() >= Isa::avx2) {
        avx2::transpose8_rows_float(s, ko[0], kc, d, 8);
        continue;
      }
    }
#endif
    // A whole panel: a constant count of streams, moves in registers.
    const auto whole = [&](auto rows) {
      for (int64_t kk = 0; kk < kc; ++kk, d += rows())
        for (int i = 0; i < rows(); ++i) d[i] = s[i][ko[kk]];
    };
    if (mv == MR && MR == 6) {
      whole(std::integral_constant<int, 6>{});
      continue;
    }
    if (mv == MR && MR == 8) {
      whole(std::integral_constant<int, 8>{});
      continue;
    }
    for (int64_t kk = 0; kk < kc; ++kk, d += MR) {
      for (int64_t i = 0; i < mv; ++i) d[i] = s[i][ko[kk]];
      for (int64_t i = mv; i < MR; ++i) d[i] = T(0);
    }
  }
  return a;
}

// When a grid read through tap offsets would leave the source (padding), the
// source is not unit-stride along W, or the grid steps by stw > 1 along W, copy it
// once into a zero-padded contiguous buffer (scratch slot 3 of the calling thread)
// and rewrite the offsets, so the packers copy without bounds checks. With stw > 1
// each row is stored split by column phase (w % stw, then w / stw), which turns the
// strided gather into a unit-stride copy: stw becomes 1. Returns the view to read.
// When the copy would be much larger than what the convolution reads (strides far
// beyond the kernel), it is skipped: without padding the source is read in place
// (ok = true, offsets and stw unchanged); with padding ok = false and the caller
// falls back to the reference loops. A single tap that subsamples without padding (a
// strided 1x1 convolution) gets the subsampled planes instead, a dense grid: offsets
// 0 and sth = stw = 1. any_stride: the reader takes any strides (pixel rows, which read the
// source through a pointer per pixel): only padding makes a copy.
// stride2: the reader takes a grid of stride 2 along unit-stride rows (GridB, float on
// AVX-512): without padding and with several taps, no copy for it either.
template <typename T>
View4<const T> pad_source(View4<const T> src, int64_t Gh, int64_t Gw, int64_t& sth,
                          int64_t& stw, std::vector<int64_t>& offh, std::vector<int64_t>& offw,
                          bool& ok, bool any_stride = false, bool stride2 = false) {
  ok = true;
  if (offh.empty() || offw.empty() || Gh == 0 || Gw == 0) return src;
  const auto [mnh, mxh] = std::minmax_element(offh.begin(), offh.end());
  const auto [mnw, mxw] = std::minmax_element(offw.begin(), offw.end());
  const int64_t H = src.size[2], W = src.size[3];
  const int64_t pt = std::max<int64_t>(0, -*mnh), pb = std::max<int64_t>(0, (Gh - 1) * sth + *mxh - (H - 1));
  const int64_t pl = std::max<int64_t>(0, -*mnw), pr = std::max<int64_t>(0, (Gw - 1) * stw + *mxw - (W - 1));
  // (A single tap keeps its subsampled copy below: read in place, every row block of the
  // GEMM would gather its B again from the full rows.)
  const bool one_tap = offh.size() == 1 && offw.size() == 1;
  if (pt + pb + pl + pr == 0 &&
      (any_stride || (src.stride[3] == 1 && (stw == 1 || (stride2 && stw == 2 && !one_tap)))))
    return src;
  const int64_t N = src.size[0], C = src.size[1], Hp = H + pt + pb, Wp = W + pl + pr;
  const int64_t sp_ = stw, Wq = ceil_div(Wp, sp_), Wr = sp_ * Wq;  // row length
  const int64_t th = static_cast<int64_t>(offh.size()), tw = static_cast<int64_t>(offw.size());
  const double touched = double(N) * C * std::min<double>(Hp, double(Gh) * th) *
                         std::min<double>(Wr, double(Gw) * tw);
  const bool no_pad = pt + pb + pl + pr == 0;
  if (no_pad && th == 1 && tw == 1) {
    T* buf = gemm::scratch<T>(3, N * C * Gh * Gw);
    const int64_t s0 = offh[0] * src.stride[2] + offw[0] * src.stride[3];
    const int64_t rs = sth * src.stride[2], cs = stw * src.stride[3];
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads_for(N * C * Gh * Gw))
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        T* d = buf + (n * C + c) * Gh * Gw;
        const T* sp = src.data + n * src.stride[0] + c * src.stride[1] + s0;
        for (int64_t gi = 0; gi < Gh; ++gi, d += Gw)
          for (int64_t gj = 0; gj < Gw; ++gj) d[gj] = sp[gi * rs + gj * cs];
      }
    offh[0] = offw[0] = 0;
    sth = stw = 1;
    View4<const T> v;
    v.data = buf;
    v.size[0] = N, v.size[1] = C, v.size[2] = Gh, v.size[3] = Gw;
    v.stride[3] = 1, v.stride[2] = Gw, v.stride[1] = Gh * Gw, v.stride[0] = C * Gh * Gw;
    return v;
  }
  if ((no_pad && double(N) * C * Hp * Wr > touched) ||  // subsampling (1x1 stride 2): in place
      double(N) * C * Hp * Wr > 4.0 * touched + double(1 << 20)) {
    ok = no_pad;
    return src;
  }
  T* buf = gemm::scratch<T>(3, N * C * Hp * Wr);
  bool row2 = false;  // stride-2 rows by pad_row2_float (columns as 32-bit lanes there)
#if defined(PYCONV_X86)
  row2 = std::is_same_v<T, float> && active_isa() >= Isa::avx2 && src.stride[3] == 1 &&
         sp_ == 2 && Wq >= 8 && Wr + 16 < (int64_t(1) << 31);
#endif
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads_for(N * C * Hp * Wr))
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      T* d = buf + (n * C + c) * Hp * Wr;
      const T* sp = src.data + n * src.stride[0] + c * src.stride[1];
      for (int64_t h = 0; h < Hp; ++h) {
        T* dr = d + h * Wr;
        const int64_t ih = h - pt;
        if (ih < 0 || ih >= H) {
          zero_run(dr, Wr);
          continue;
        }
        const T* sr = sp + ih * src.stride[2];
#if defined(PYCONV_X86)
        if constexpr (std::is_same_v<T, float>) {
          if (row2) {
            avx2::pad_row2_float(sr, W, pl, Wq, dr);
            continue;
          }
        }
#endif
        if (sp_ == 1) {
          zero_run(dr, pl);
          if (src.stride[3] == 1)
            copy_run(dr + pl, sr, W);
          else
            for (int64_t w = 0; w < W; ++w) dr[pl + w] = sr[w * src.stride[3]];
          zero_run(dr + pl + W, Wr - pl - W);
        } else {
          int64_t qa = 0, qb = 0;  // [qa, qb): both phases' columns inside the row, 4 at a time
#if defined(__SSE__)
          if constexpr (std::is_same_v<T, float>) {
            // Stride 2, unit source stride: even and odd columns of 8 source values by two
            // shuffles (the scalar gather below was 40% of a stride-2 weight gradient with
            // 3 output channels). Same values.
            if (sp_ == 2 && src.stride[3] == 1) {
              // A block of outputs q..q+3 reads source columns 2q - pl .. 2q - pl + 7.
              qa = (pl + 1) / 2;
              qb = W + pl < 8 ? qa : std::max(qa, std::min(Wq, (W + pl - 8) / 2 + 4));
              int64_t q = qa;
              for (; q + 4 <= qb; q += 4) {
                const __m128 a = _mm_loadu_ps(sr + 2 * q - pl);
                const __m128 b = _mm_loadu_ps(sr + 2 * q - pl + 4);
                _mm_storeu_ps(dr + q, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
                _mm_storeu_ps(dr + Wq + q, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
              }
              qb = q;
            }
          }
#endif
          // The rest one value at a time: columns [0, qa) and [qb, Wq) of every phase, in one
          // loop that skips the middle (a loop per range, through a lambda, ran 0.90-0.93x on
          // stride-2 forwards with few output channels). Other strides: per phase, the
          // columns inside the row [lo, hi) by a strided copy and zeros around them (a bounds
          // test per value took 15% of an 11x11 stride-4 stem's forward).
          if (qa < qb || sp_ == 2) {
            for (int64_t ph = 0; ph < sp_; ++ph)
              for (int64_t q = 0; q < Wq; ++q) {
                if (q == qa) q = qb;
                if (q >= Wq) break;
                const int64_t iw = q * sp_ + ph - pl;
                dr[ph * Wq + q] = iw >= 0 && iw < W ? sr[iw * src.stride[3]] : T(0);
              }
          } else {
            for (int64_t ph = 0; ph < sp_; ++ph) {
              T* dp = dr + ph * Wq;
              const int64_t off = ph - pl;  // source column of q = 0
              const int64_t lo = std::min(Wq, off >= 0 ? int64_t(0) : ceil_div(-off, sp_));
              const int64_t hi = std::clamp<int64_t>(W > off ? ceil_div(W - off, sp_) : 0, lo, Wq);
              for (int64_t q = 0; q < lo; ++q) dp[q] = T(0);
              for (int64_t q = lo; q < hi; ++q) dp[q] = sr[(q * sp_ + off) * src.stride[3]];
              for (int64_t q = hi; q < Wq; ++q) dp[q] = T(0);
            }
          }
        }
      }
    }
  for (auto& o : offh) o += pt;
  for (auto& o : offw) o = (o + pl) % sp_ * Wq + (o + pl) / sp_;
  stw = 1;
  View4<const T> v;
  v.data = buf;
  v.size[0] = N, v.size[1] = C, v.size[2] = Hp, v.size[3] = Wr;
  v.stride[3] = 1, v.stride[2] = Wr, v.stride[1] = Hp * Wr, v.stride[0] = C * Hp * Wr;
  return v;
}

}  // namespace

namespace {

// Runs fn(q, g, m0, m1, j0, j1) for every task of nq x G independent M x Ncol GEMMs
// (phases q of groups g; reductions of Kd values in all nq together): rows in blocks of
// kMC (or larger: below), multiples of the tile's MR rows, columns in blocks of pick_nb,
// in any order on any thread. A column block's phases come next to each other (they read
// the same source rows), or, phase_major, a phase's column blocks (they read the same A).
// Threads take neighbouring tasks (parallel_tasks): a thread's next column block reads on
// from where its last one stopped. Against OpenMP's dynamic schedule, which dealt them out
// alternately (old/new alternated, 2 threads, Intel Xeon): the 7x7 stem's forward 1.04-1.08x
// and backward-data 1.22-1.26x, CIFAR-10 conv1's backward-data 1.34-1.36x, 1x1 layers at
// 14x14-56x56 1.02-1.12x, DCGAN 128 -> 64's transposed forward and backward-data
// 1.05-1.08x, 64 -> 3 1.15-1.26x; DeepBench's 651 cases 1.03x in geometric mean (152 of
// them by 5% or more, 3 lost 6-8%: 1x1 backward-data and weight gradients at 7x7-14x14).
template <class Fn>
void for_each_task(int64_t nq, int64_t G, int64_t M, int64_t Ncol, int64_t Kd, int MR,
                   int NR, Fn&& fn, bool phase_major = false) {
  // Row blocks of up to 4 * kMC rows, nearly equal, when the columns leave two threads 16
  // panels each or there are two blocks or more: every column block's B is packed once per
  // block, not once per kMC rows. Only the B block must stay in L2 (gemm_task keeps one A
  // micro-panel in L1 across it and streams the next), so the 576 x 256 A block needs no room
  // there. Against row blocks of kMC (same process, 2 threads): with the AVX-512 tile (32
  // columns) on a Xeon with 2 MiB of L2 per core, U-Net 512 -> 256's backward-data 1.12x,
  // 1x1 stride-2 256 -> 512 at 56x56 1.12x, 1x1 at 56x56 and 28x28 1.04-1.09x; 1024 rows at
  // 14x14 (784 columns, two blocks) 1.05-1.12x; one block of 784 columns lost 1-3% (too few
  // tasks to balance). With the AVX2 tile (16 columns) on Zen 3's 512 KiB L2: ResNet's 1x1
  // layers with 256-1024 rows 1.00-1.07x, 8x512x7x7 3x3 backward-data 1.02-1.03x, DeepBench's
  // 256 -> 512 5x5 stride 2 at 20x84 1.03x (its B packing 6.8% -> 1.8% of the time), 160-192
  // rows at 24x24-28x28 1.01-1.04x. Also from 10 panels a thread where rows of more than
  // 2 kMC (three blocks of kMC or more) packed each column block three times or more
  // (Intel Xeon, 2 threads, old/new alternated: 512 -> 512 1x1 at 7x7 batch 16 1.05-1.09x,
  // 2048 -> 512 1.05x, 512 -> 512 3x3 stride 2 at 14x14 1.12x, 1024 -> 512 1x1 stride 2
  // 1.10-1.11x; 256 rows, two blocks, lost up to 6% so: 1x1 stride-2 256 <- 128 at 56x56).
  // Otherwise blocks of at most kMC rows, nearly equal too (256 rows as 128 + 128, not 144
  // + 112: equal tasks balance; old/new alternated, 2 threads: 1x1 832 -> 256 at 7x7 batch
  // 16 1.06x, DeepBench inference_server_031 and 101 1.09-1.18x, its 651 cases 1.007x).
  const auto even_blocks = [&](int64_t most) {  // (MR multiples; MR for M == 0)
    return round_up(std::max<int64_t>(1, ceil_div(M, std::max<int64_t>(1, ceil_div(M, most)))),
                    MR);
  };
  const bool wide = Ncol >= 32 * NR || (Ncol >= 20 * NR && M > 2 * kMC);
  const int64_t mb = even_blocks(wide || M > 4 * kMC ? 4 * kMC : kMC);
  const int64_t mch = ceil_div(M, mb);
  const int64_t nb = gemm::pick_nb(Ncol, nq * G * mch, NR), ncb = ceil_div(Ncol, nb);
  const int64_t total = G * mch * ncb * nq;
  const auto task = [&](int64_t t) {
    if (phase_major) t = t % (G * mch * ncb) * nq + t / (G * mch * ncb);
    const int64_t g = t / (mch * ncb * nq), m0 = t / (ncb * nq) % mch * mb;
    const int64_t j0 = t / nq % ncb * nb, q = t % nq;
    fn(q, g, m0, std::min(M, m0 + mb), j0, std::min(Ncol, j0 + nb));
  };
  parallel_tasks(total, threads_for(G * M * Ncol * Kd / 8), task);
}

// ---- Pixel rows: the GEMM transposed, for few output pixels -----------------------------
//
// (Forward and stride-1 backward-data.) With few output pixels (N*P*Q: small planes at small
// batches, batch-1 inference at 7x7 or 14x14, linear layers' rows), C[K x pixels] =
// W * im2col(x) is a poor GEMM: 49 pixels fill four 16-column panels
// (64 columns of work), its large A (the filter, K*C*R*S values) goes through memory once
// more as a prepacked copy, and the small B (im2col) is packed again by every row block.
// Transposed, C^T[pixels x K] = im2col(x)^T * W^T: pixels are the tile's 6 rows (49 = 9 x 6,
// 54 rows of work), the output channels its 16 columns, the im2col is read in place (the
// micro-kernel broadcasts from the source through row pointers and reduction offsets), and
// each task packs its block of filter rows into L2 as it goes, every filter value read
// once, from w itself. With few output channels and long reductions the same holds at any
// pixel count: the GEMM's packing of the im2col, per task, feeds few rows of arithmetic.
// Per output value the same products are added in the same
// order (reduction blocks of the same lengths; fma is symmetric in its factors), so the two
// orientations agree bitwise except where the other's ragged 1- or 2-row panel (ukr_rem)
// pairs its reduction steps; neither depends on the thread count.

std::atomic<int> g_pixel_rows{static_cast<int>(KernelMode::auto_)};
constexpr int64_t kMinKdPixelRows = 128;  // reduction values at few pixels (use_pixel_rows)
// Strided forwards onto rows of at most this many outputs (use_pixel_rows).
constexpr int64_t kMaxStridedRow = 12;
constexpr int64_t kMinKdBigFilter = 256;
constexpr int64_t kHugeFilter = int64_t(4) << 20;

// When (auto), ungrouped:
//  - kernels of several taps (the im2col read in place) at up to 3 * kMC pixels, with a
//    reduction of a KC block or more and tiles of at most 1.3x the work of the other
//    orientation's (6-row panels of pixels and 16-column panels of channels, against 6-row
//    panels of channels and 16-column panels of pixels). Against the other orientation
//    (same process, 2 threads): batch 4 at 7x7 (196 pixels), forward 128 -> 128 7x7 1.43x,
//    256 -> 256 5x5 1.37x, 48 -> 128 5x5 1.21x, 64 -> 16 5x5 1.35x, 64 -> 8 5x5 1.06x,
//    backward-data 128 <- 128 5x5 1.47x; batch 1 at 14x14, 256 -> 256 5x5 1.40x (both
//    directions), 64 -> 64 7x7 1.45x; 392-400 pixels 1.08-1.19x (5x5, 64-256 channels);
//    stride 2, 256 -> 512 3x3 to 7x7 at batch 4 1.27x; batch 1 at 10x10, 96 -> 96 3x3 1.37x.
//    Short reductions lost (3 -> 32 3x3, 27 values: 0.58x; 144 and 216 values 0.96-0.99x):
//    the transposed tile stores outweigh them. At 576 pixels 1.05x, at 784 0.94x.
//  - 1x1 (the im2col packed once): at most kMC pixels (one row block: each filter value
//    packed once), a filter of 32K values or more (1x1 64 -> 256 at 7x7, 16K, ran 0.9x),
//    and tiles of less work by 15%, or by anything with a filter of 1 MiB or more, which
//    pixel rows read once from memory instead of writing and reading again a packed copy.
//    2048 -> 512 at 7x7 batch 1 1.58x; 256 -> 256 at batch 2 (0.90 of the work, 256 KiB)
//    ran 0.93x (0.98-1.08x measured again), at 14x14 batch 1-2 0.76-0.86x. Both need
//    reductions of kMinKdPixelRows values, the 1 MiB filter's of kMinKdBigFilter: shorter
//    ones leave the transposed tile stores to outweigh them (col2im's W^T dy, 32 or 64 ->
//    1024-6272 at 4-144 pixels, ran 0.32-0.89x as pixel rows; with the 1 MiB filter at
//    98-144 pixels, 128 -> 1024-6272 0.66-0.92x, 256 0.83-1.08x and backward-data 1024 <-
//    256 at 10x10 1.17x, 512 0.94-1.17x).
//  - backward-data (stride 1) of kernels past 5x5 whose im2col of grad_output is largely
//    padding (H*W >= 1.3 P*Q): pixel rows skip the taps that fall in it (tap_ranges).
//    Against the GEMM, batch 4: 128 <- 128 9x9 at 32x32 1.34x; against col2im, 7x7 at
//    16x16 1.20x; 64 <- 128 9x9 at 64x64 (1.31) 1.01x.
//  - 1x1 with a filter of kHugeFilter bytes or more at up to 3 * kMC pixels (ResNet-50's
//    last 1x1 layers at batch 6-8): the GEMM orientation packs the filter per row block and
//    the im2col per task again, pixel rows the filter once per task and the pixels once.
//    Against the GEMM (same process, 2 threads, Intel Xeon): 2048 -> 512 at 7x7 batch 8
//    1.10x, batch 6 1.19x, its backward-data 512 <- 2048 1.14x, 512 -> 2048 1.08x and
//    backward-data 1.15x; with 1 MiB filters 0.98-1.02x, 256 KiB 0.84-0.95x.
//  - strided forwards onto rows of at most kMaxStridedRow outputs (kernels of several taps,
//    256+ reduction values), any number of pixels: the im2col's B panels gather short
//    strided runs, pixel rows read them in place. Against the GEMM (same process, 2
//    threads, Intel Xeon): 3x3 stride 2 onto 7x7 at batch 16, 64 -> 64 1.60x, 128 -> 256
//    1.30x, 512 -> 512 1.28x; onto 6x6 1.32x, 10x10 1.12x, 12x12 1.05x; 4x4 stride 2 onto
//    8x8 (DCGAN 256 -> 128's transposed backward-data) 1.09-1.13x, at batch 64 1.09x;
//    onto 14x14 1.00x, 28x28 0.89x. (Strided backward-data runs stride phases.)
//  - more pixels: when long_reduction says so.
bool use_pixel_rows(const ConvParams& p, int64_t M, int64_t Ncol, int64_t Kd, size_t elem,
                    int64_t plane, bool backward_data) {
  const auto mode = static_cast<KernelMode>(g_pixel_rows.load(std::memory_order_relaxed));
  if (mode == KernelMode::off || p.groups != 1) return false;
  if (mode == KernelMode::on) return true;
  // Planes of one value (linear layers): the other orientation stores each tile value to
  // its own image. Against it (interleaved, 2 threads): backward-data of 64 x 1024 -> 64
  // 1.53x, 32 x 512 -> 256 1.69x, 100 x 784 -> 300 1.89x, 64 x 64 -> 10 1.41x; forwards with
  // 256 or more outputs 1.38-1.88x, with 64 0.82-0.97x.
  if (plane == 1 && Ncol <= kMC) return backward_data || M >= 256;
  if (backward_data && p.R * p.S > kSkipPaddingMinTaps &&
      double(p.H * p.W) >= 1.3 * double(p.P * p.Q))
    return true;
  if (skips_padding(p, M, Kd, elem, backward_data)) return true;
  // (Tile work counted for the measured 6x16 fp32 AVX2 tile, whatever the ISA and dtype:
  // the gate's thresholds come from it.)
  const double work = double(round_up(Ncol, 6) * round_up(M, 16)) /
                      double(round_up(Ncol, 16) * round_up(M, 6));
  if (p.R * p.S > 1 && Ncol <= 3 * kMC && Kd >= gemm::kKC && work <= 1.3) return true;
  const int64_t filter_bytes = M * Kd * static_cast<int64_t>(elem);
  const bool big = filter_bytes >= (int64_t(1) << 20);
  if (p.R * p.S == 1 && Ncol <= 3 * kMC && work <= 1.0 && filter_bytes >= kHugeFilter)
    return true;
  if (!backward_data && (p.stride_h > 1 || p.stride_w > 1) && p.R * p.S > 1 &&
      p.Q <= kMaxStridedRow && Kd >= gemm::kKC && work <= 1.3)
    return true;
  if (Ncol <= kMC)
    return M * Kd >= (int64_t(1) << 15) && Kd >= kMinKdPixelRows &&
           (work <= 0.85 || (big && work <= 1.0 && Kd >= kMinKdBigFilter));
  return long_reduction(p, M, Kd, elem);
}

}  // namespace

// Kernels of 5x5 and more, stride 1, whose im2col reads zero padding at over a fifth of its
// (pixel, tap) pairs (5x5 "same" on planes of 7x7 to 11x11, 7x7 up to 14x14; below, to 14x14
// and 20x20 with many input channels), with kMinOutSkip output channels or more (the tile's
// columns here, which they must fill no worse than its rows: fills_columns) and a reduction
// of a KC block: pixel rows skip those taps (plan_pixels) where the GEMM and Winograd
// compute them.
// Against the auto choice of the build before (Winograd or the GEMM), shuffled modes, same
// process, 2 threads, forward / backward-data: 5x5 at 7x7 batch 16, 832 -> 128 1.44 / 1.20x,
// 512 -> 128 1.59 / 1.35x, 256 -> 256 1.22 / 1.29x, 128 -> 128 1.07 / 1.13x, 832 -> 256
// 1.19 / 1.03x, batch 32 512 -> 128 1.19 / 1.16x; 5x5 at 10x10 batch 8 (against the GEMM)
// 256 -> 256 1.10 / 1.10x, 512 -> 256 1.07 / 1.05x; 7x7 at 14x14 batch 4 128 -> 128 1.05 /
// 1.11x. With 64 outputs or fewer 0.67-1.01x (64 -> 64, 32 -> 32 at 7x7); at 8x8 the GEMM's
// equal and Winograd (whole tiles there) 1.15-1.30x faster; 5x5 at 14x14 (84% landed) mixed.
// With kMinInSkipMore input channels (the reduction's) or more, up to kMaxLandedSkipMore
// landed and from kMinOutSkipMore outputs: 5x5 at 12x12-14x14, 256 -> 256 at batch 7-9,
// pixel rows against Winograd 1.11 / 1.13x (12x12), 1.31 / 1.36x (13x13), 1.22 / 1.13x
// (14x14), 512 -> 128 at 14x14 1.13 / 0.91x; with 64-192 channels within 6% either way.
// 15x15 (85% landed) stays Winograd's (256 -> 256 0.94 / 1.04x as pixel rows). 256 -> 64
// and its backward-data 64 <- 256 at 7x7-14x14 (Winograd's before: 256 inputs are under
// its kManyIn5), old/new alternated, 1.12-1.63x / 1.09-1.67x. 65 outputs at 7x7 (80 columns
// for 66 rows) stay Winograd's (pixel rows 0.95x).
constexpr double kMaxLandedSkip = 0.8;
constexpr double kMaxLandedSkipMore = 0.84;
constexpr int64_t kMinOutSkip = 128;
constexpr int64_t kMinInSkipMore = 256;
constexpr int64_t kMinOutSkipMore = 64;

// Whether M channels fill the active ISA's tile no worse as its columns (pixel rows) than
// as its rows (the other orientation): its own tile, or another of its width that
// ukernel_for_shape picks for pixel rows (AVX-512's 8 x 48 for 48 channels: 512 -> 48 5x5 at
// 7x7-14x14 batch 8-16 1.07x forward; its 8 x 16 for 16); not AVX2's narrow tile (mr 6),
// with which 16 channels ran 0.81-0.82x: 64 -> 16 5x5 at 14x14 and its backward-data.
static bool fills_columns(int64_t M, size_t elem) {
  const auto fills = [M](const auto& uk) { return round_up(M, uk.nr) <= round_up(M, uk.mr); };
  if (elem != sizeof(float)) return fills(gemm::ukernel_for<double>(active_isa()));
  const auto uk = gemm::ukernel_for<float>(active_isa());
  const auto shaped = gemm::ukernel_for_shape<float>(active_isa(), kMC, M, true);
  return fills(uk) || (shaped.mr == uk.mr && fills(shaped));
}

bool skips_padding(const ConvParams& p, int64_t M, int64_t Kd, size_t elem, bool backward_data) {
  const auto mode = static_cast<KernelMode>(g_pixel_rows.load(std::memory_order_relaxed));
  if (mode == KernelMode::off || p.groups != 1 || p.stride_h != 1 || p.stride_w != 1 ||
      p.dil_h != 1 || p.dil_w != 1 || p.R * p.S < kSkipPaddingMinTaps || M < kMinOutSkipMore ||
      Kd < gemm::kKC || !fills_columns(M, elem))
    return false;
  const double in = landed(p, backward_data);
  return (in < kMaxLandedSkip && M >= kMinOutSkip) ||
         (in < kMaxLandedSkipMore && Kd >= kMinInSkipMore * p.R * p.S);
}

// Any number of pixels, few channels (M <= 64) and long reductions of several taps: the
// GEMM packs its B (the im2col) in every task for few rows of arithmetic, pixel rows read
// the im2col in place. Against the GEMM (interleaved, 2 threads, batch 4): backward-data of
// 5x5 layers 128 -> 32 at 14x14 1.31x, at 7x7 1.55x, 48 -> 16 at 14x14 1.46x, 64 -> 32
// 1.27x, 128 -> 48 at 7x7 1.33x, 96 -> 32 at 28x28 1.13x, 192 -> 64 at 27x27 1.13x; forward
// 64 -> 16 5x5 at 14x14 1.48x, 128 -> 32 3x3 at 28x28 1.10x. Below 1024 reduction values
// they lost (0.84-0.95: 64 -> 64 3x3, 32 -> 32 5x5), and with more channels (128 -> 128 7x7
// backward-data 0.92x); 24 channels fill two 16-column panels (1.00x). The channels, the
// tile's columns here, must fill whole tiles no worse than as its rows in the GEMM's
// orientation, for the active ISA's tile: on AVX-512's 8 x 32, 16 channels left half of
// every tile idle (GoogLeNet 4a's 5x5 backward-data, 48 -> 16 at 14x14, ran 1.52x faster
// without pixel rows there).
bool long_reduction(const ConvParams& p, int64_t M, int64_t Kd, size_t elem) {
  const auto mode = static_cast<KernelMode>(g_pixel_rows.load(std::memory_order_relaxed));
  return mode != KernelMode::off && p.groups == 1 && p.R * p.S > 1 && M <= 64 && Kd >= 1024 &&
         fills_columns(M, elem);
}

namespace {

// B^T panels of the filter: panel jp's reduction row kk holds filter rows j0 + jp*NR + j
// (j < NR; zeros past nb) at koff[k0 + kk], rows fs apart. With AVX2, runs of consecutive
// offsets (the forward's whole rows, the backward-data's R*S taps of one output channel) by
// 8x8 transposes, and rows one value apart (1x1 backward-data) by row copies.
template <typename T>
struct FilterB {
  const T* filt;
  int64_t fs;
  const int64_t* koff;
  int NR;

  void operator()(int64_t j0, int64_t nb, int64_t k0, int64_t kc, T* dst) const {
    const int64_t* ko = koff + k0;
    int64_t full = 0;  // panels [0, full) done by the vector path
#if defined(PYCONV_X86)
    if constexpr (std::is_same_v<T, float>) {
      if (NR % 8 == 0 && active_isa() >= Isa::avx2) {
        full = nb / NR * NR;
        if (fs == 1) {
          // Rows one value apart (1x1 backward-data): reduction row kk is nb consecutive
          // values of one filter row, copied to every panel in one walk along it (per run
          // and panel, 16 row pointers set up for 16 values took 39% of a 512 <- 2048 1x1
          // backward-data at 7x7 batch 1, its runs one row long). 8-value moves of a
          // constant size: a memcpy of NR values is a library call.
          for (int64_t kk = 0; kk < kc; ++kk) {
            const T* s = filt + j0 + ko[kk];
            const T* ahead = filt + j0 + ko[std::min(kk + 4, kc - 1)];
            T* d = dst + kk * NR;
            for (int64_t pj = 0; pj < full; pj += NR, d += NR * kc) {
              __builtin_prefetch(ahead + pj);
              for (int q = 0; q < NR; q += 8) std::memcpy(d + q, s + pj + q, 8 * sizeof(T));
            }
          }
        } else {
          // Run by run (a backward-data's run is one output channel's R*S taps, the
          // forward's a whole filter row), every full panel of the run by 8x8 transposes.
          for (int64_t a = 0, b; a < kc && full > 0; a = b) {
            b = run_end(ko, a, kc);
            for (int64_t pj = 0; pj < full; pj += NR) {
              const T* rows[gemm::kMaxNR];
              for (int j = 0; j < NR; ++j) rows[j] = filt + (j0 + pj + j) * fs + ko[a];
              transpose_run(rows, 0, b - a, dst + pj * kc + a * NR, NR);
            }
          }
        }
      }
    }
#endif
    for (int64_t pj = full; pj < nb; pj += NR) {
      const int64_t nv = std::min<int64_t>(NR, nb - pj);
      T* d = dst + pj * kc;
      const T* rows[gemm::kMaxNR];
      for (int64_t j = 0; j < nv; ++j) rows[j] = filt + (j0 + pj + j) * fs;
      for (int64_t kk = 0; kk < kc; ++kk, d += NR) {
        for (int64_t j = 0; j < nv; ++j) d[j] = rows[j][ko[kk]];
        for (int64_t j = nv; j < NR; ++j) d[j] = T(0);
      }
    }
  }
};

// C^T tiles: row = output pixel (poff: its offset in y, n*K*P*Q + oh*Q + ow), column =
// output channel (PQ apart); no direct tiles, the epilogue by emit_values.
template <typename T>
struct PixelC : gemm::PlainStore<T> {
  T* y;
  T* pre;
  const T* bias;
  Activation act;
  const int64_t* poff;
  int64_t PQ;
  // When set: raised if a finished sum (before bias and activation) is an inf or NaN.
  std::atomic<bool>* nonfinite = nullptr;

  T* direct(int64_t, int64_t, int64_t&) const { return nullptr; }
  void operator()(int64_t m0, int64_t mv, int64_t j0, int64_t nv, const T* tile, int64_t ldt,
                  bool first, bool last) const {
    const int64_t* po = poff + m0;
    if (nonfinite && last) {
      // x - x is +0 (all bits clear) for every finite x, NaN for an inf or NaN: the bits
      // OR-ed together vectorize, where a comparison per value and a bool did not (a third
      // of gemm_task's time on GoogLeNet's 5x5 at 7x7).
      using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
      U bits = 0;
      for (int64_t i = 0; i < mv; ++i)
        for (int64_t j = 0; j < nv; ++j) {
          const T d = tile[i * ldt + j] - tile[i * ldt + j];
          U u;
          std::memcpy(&u, &d, sizeof(U));
          bits |= u;
        }
      if (bits) nonfinite->store(true, std::memory_order_relaxed);
    }
    // Row by row: pixel i's nv channels lie PQ apart from y + po[i] + j0*PQ (one store per
    // value; column by column, a copy of each column and an offset load per value made the
    // stores 11% of GoogLeNet's 5x5 at 7x7 forward).
    const int64_t pq = PQ;
    for (int64_t i = 0; i < mv; ++i) {
      const int64_t c = po[i] + j0 * PQ;
      emit_values(y + c, pre ? pre + c : nullptr, tile + i * ldt, nv,
                  [pq](int64_t q) { return q * pq; }, bias ? bias + j0 : nullptr, 1, act, first,
                  last);
    }
  }
};

// Which taps of a grid read the source rather than its zero padding: grid row gi's taps
// th in [h0[gi], h1[gi]) (taps read source row gi*st + off[th], off monotone in th, so they
// are a range), grid column gj's in [w0[gj], w1[gj]).
struct TapRanges {
  std::vector<int64_t> h0, h1, w0, w1;
};

// (Each by tap_ranges, conv_fast.h.)

// Pixel rows skip the taps on zero padding. A 6-pixel panel computes the taps of the box
// [min h0, max h1) x [min w0, max w1) of its pixels' ranges and skips the other reduction
// indices (ukr_box through a gemm::KSel); taps in the box that are padding for some of its
// pixels read zeros, as before. Panels are formed from the pixels in one of three orders,
// whichever leaves the fewest taps to compute: row-major (n, gi, gj), or grouped by
// (rows' range, columns' range), or by the reverse. A 5x5 "same" kernel on 7x7 planes at
// batch 4 computes 626 of its 825 (panel, tap) pairs grouped, 750 row-major (whose panels
// mix a row's edge and middle pixels); at 14x14 85% grouped. The grouped orders group
// within blocks of MR images: a panel of one range's pixels (one corner pixel an image)
// reads MR images, where grouping over the whole batch made every panel read pixels of
// images far apart, and its stores land in as many (GoogLeNet 5a's 5x5, 32 -> 128 at 7x7
// batch 128, 1.35x forward; 48 -> 128 1.21x; batch 4-32 layers 0.99-1.05x; Intel Xeon).
// Against computing every tap (same process, 2 threads): 7x7 batch 4, 128 -> 128 1.16x, 48 ->
// 128 1.11x, backward-data 256 <- 256 1.13x; 14x14 batch 1, 256 -> 256 1.10x; 3x3 at 7x7 batch
// 1-2, 512 and 256 channels 1.09x; 0.92-1.05x only with few outputs (64 -> 16 and 64 -> 32 at
// 14x14 batch 4: a single panel of channels is left alone below a batch of MR images,
// gemm_pixel_rows).
// No order changes a result: each pixel's kept products are added in the same order as
// all of them would be (the skipped ones are exact zeros), so results still equal the
// other orientation's.
std::atomic<int> g_tap_skip{static_cast<int>(KernelMode::auto_)};
std::atomic<int64_t> g_taps_skipped{0};  // (panel, tap) pairs skipped so far, for tests

struct PixelPlan {
  std::vector<int64_t> order;                // panel row -> pixel (round_up(Ncol, MR) rows)
  std::vector<int64_t> box;                  // per panel: its box in boxes, -1: every tap
  std::vector<std::array<int64_t, 4>> boxes;  // taps th in [b0, b1) x tw in [b2, b3)
  int64_t skipped = 0;                        // (panel, tap) pairs left out
  // Whether every panel's box is each of its pixels' own taps (no panel reads padding): the
  // source may then be read without its zero-padded copy (run_pixel_rows).
  bool pure = false;
};

inline PixelPlan make_plan(const TapRanges* tr, int64_t N, int64_t Gh, int64_t Gw, int64_t nth,
                           int64_t ntw, int MR) {
  const int64_t GG = Gh * Gw, Ncol = N * GG, Mpad = round_up(Ncol, MR), npan = Mpad / MR;
  PixelPlan plan;
  plan.order.resize(static_cast<size_t>(Mpad));
  for (int64_t j = 0; j < Mpad; ++j) plan.order[j] = std::min(j, Ncol - 1);
  plan.box.assign(static_cast<size_t>(npan), -1);
  if (!tr || Ncol == 0) return plan;
  // Grid rows (columns) of equal tap ranges, in the ranges' order.
  auto classes = [](const std::vector<int64_t>& lo, const std::vector<int64_t>& hi) {
    std::vector<std::pair<std::pair<int64_t, int64_t>, std::vector<int64_t>>> cls;
    for (size_t g = 0; g < lo.size(); ++g) {
      const std::pair<int64_t, int64_t> k{lo[g], hi[g]};
      auto it = std::find_if(cls.begin(), cls.end(), [&](const auto& c) { return c.first == k; });
      if (it == cls.end()) cls.push_back({k, {}}), it = cls.end() - 1;
      it->second.push_back(static_cast<int64_t>(g));
    }
    std::sort(cls.begin(), cls.end());
    return cls;
  };
  const auto rcls = classes(tr->h0, tr->h1), ccls = classes(tr->w0, tr->w1);
  // The taps the panels of an order compute, and their boxes.
  auto boxes_of = [&](const std::vector<int64_t>& ord, std::vector<std::array<int64_t, 4>>& bx) {
    int64_t taps = 0;
    bx.resize(static_cast<size_t>(npan));
    for (int64_t q = 0; q < npan; ++q) {
      std::array<int64_t, 4> b{nth, 0, ntw, 0};
      for (int64_t i = 0; i < MR; ++i) {
        const int64_t j = ord[q * MR + i], gi = j % GG / Gw, gj = j % Gw;
        b[0] = std::min(b[0], tr->h0[gi]), b[1] = std::max(b[1], tr->h1[gi]);
        b[2] = std::min(b[2], tr->w0[gj]), b[3] = std::max(b[3], tr->w1[gj]);
      }
      bx[q] = b;
      taps += std::max<int64_t>(0, b[1] - b[0]) * std::max<int64_t>(0, b[3] - b[2]);
    }
    return taps;
  };
  std::vector<std::array<int64_t, 4>> best_bx, bx;
  int64_t best = boxes_of(plan.order, best_bx);
  for (const bool rows_first : {true, false}) {
    std::vector<int64_t> ord;
    ord.reserve(static_cast<size_t>(Mpad));
    for (int64_t n0 = 0; n0 < N; n0 += MR)
      for (size_t u = 0; u < (rows_first ? rcls : ccls).size(); ++u)
        for (size_t v = 0; v < (rows_first ? ccls : rcls).size(); ++v) {
          const auto& rc = rcls[rows_first ? u : v].second;
          const auto& cc = ccls[rows_first ? v : u].second;
          for (int64_t n = n0; n < std::min(N, n0 + MR); ++n)
            for (int64_t gi : rc)
              for (int64_t gj : cc) ord.push_back(n * GG + gi * Gw + gj);
        }
    ord.resize(static_cast<size_t>(Mpad), ord.back());
    const int64_t taps = boxes_of(ord, bx);
    if (taps < best) best = taps, best_bx = bx, plan.order = std::move(ord);
  }
  plan.skipped = npan * nth * ntw - best;
  plan.pure = true;
  for (int64_t j = 0; j < Mpad; ++j) {
    const auto& b = best_bx[j / MR];
    const int64_t gi = plan.order[j] % GG / Gw, gj = plan.order[j] % Gw;
    plan.pure &= tr->h0[gi] == b[0] && tr->h1[gi] == b[1] && tr->w0[gj] == b[2] &&
                 tr->w1[gj] == b[3];
  }
  for (int64_t q = 0; q < npan; ++q) {
    const auto& b = best_bx[q];
    if (b[0] == 0 && b[1] == nth && b[2] == 0 && b[3] == ntw) continue;
    auto it = std::find(plan.boxes.begin(), plan.boxes.end(), b);
    plan.box[q] = it - plan.boxes.begin();
    if (it == plan.boxes.end()) plan.boxes.push_back(b);
  }
  return plan;
}

// make_plan's result, remembered for the last arguments the calling thread asked about: a
// loop over one layer (training, inference, the bench) plans it once (planning took 3% of
// GoogLeNet 5a's 5x5 forward at batch 128, on the calling thread while the others waited).
inline PixelPlan plan_pixels(const TapRanges* tr, int64_t N, int64_t Gh, int64_t Gw,
                             int64_t nth, int64_t ntw, int MR) {
  struct Memo {
    bool valid = false, ranges = false;
    std::array<int64_t, 6> dims{};
    TapRanges tr;
    PixelPlan plan;
  };
  thread_local Memo m;
  const std::array<int64_t, 6> dims{N, Gh, Gw, nth, ntw, MR};
  if (!m.valid || m.dims != dims || m.ranges != (tr != nullptr) ||
      (tr && (m.tr.h0 != tr->h0 || m.tr.h1 != tr->h1 || m.tr.w0 != tr->w0 ||
              m.tr.w1 != tr->w1))) {
    m.valid = false;  // (until the new plan is in place: make_plan may throw)
    m.plan = make_plan(tr, N, Gh, Gw, nth, ntw, MR);
    m.dims = dims, m.ranges = tr != nullptr, m.tr = tr ? *tr : TapRanges{}, m.valid = true;
  }
  return m.plan;
}

// The tile, whether pixel rows skip the taps on padding, and the panels' plan for
// gemm_pixel_rows (tr may be null: every tap).
template <typename T>
struct PixelSetup {
  UKernel<T> uk;
  bool skip;
  PixelPlan plan;
};

template <typename T>
PixelSetup<T> pixel_setup(int64_t N, int64_t Gh, int64_t Gw, int64_t M, const T* filt,
                          int64_t fs, const std::vector<int64_t>& koff, int64_t nth, int64_t ntw,
                          const TapRanges* tr) {
  const int64_t Ncol = N * Gh * Gw, Kd = static_cast<int64_t>(koff.size());
  const UKernel<T> uk = gemm::ukernel_for_shape<T>(active_isa(), Ncol, M, true);
  // (Not with a single panel of output channels at batches under MR: 64 -> 16 5x5 at 14x14
  // batch 4 ran 0.92-0.98x skipping, its panels' broadcasts feeding 2 FMAs each, 64 -> 32
  // 0.98-1.05x, 512 -> 48 batch 1 0.89x. From MR images whole blocks of them (plan_pixels)
  // make panels of one tap range each, which skip every tap on padding: 5x5 at 7x7, 32 <-
  // 128 batch 128 1.10x, 320 -> 32 and 832 -> 48 batch 16 1.02-1.10x, 512 -> 48 at 14x14
  // 1.04x; Intel Xeon.)
  const auto skip_mode = static_cast<KernelMode>(g_tap_skip.load(std::memory_order_relaxed));
  bool skip = tr && nth * ntw > 1 && skip_mode != KernelMode::off &&
              (skip_mode == KernelMode::on || M > uk.nr || N >= uk.mr);
  if (skip) {
    // Taps that read the source for no pixel at all leave no trace of a non-finite weight in
    // the sums (see nonfinite in gemm_pixel_rows): their weights are checked here instead.
    std::vector<char> hv(static_cast<size_t>(nth)), wv(static_cast<size_t>(ntw));
    for (int64_t g = 0; g < Gh; ++g)
      for (int64_t t = tr->h0[g]; t < tr->h1[g]; ++t) hv[t] = 1;
    for (int64_t g = 0; g < Gw; ++g)
      for (int64_t t = tr->w0[g]; t < tr->w1[g]; ++t) wv[t] = 1;
    for (int64_t kk = 0, th = 0, tw = 0; kk < Kd && skip; ++kk) {  // (kk = (ch, th, tw))
      if (!hv[th] || !wv[tw])
        for (int64_t c = 0; c < M; ++c) {
          const T v = filt[c * fs + koff[kk]];
          if (!(v - v == T(0))) skip = false;
        }
      if (++tw == ntw) {
        tw = 0;
        if (++th == nth) th = 0;
      }
    }
  }
  return {uk, skip, plan_pixels(skip ? tr : nullptr, N, Gh, Gw, nth, ntw, uk.mr)};
}

// y[n, c, gi, gj] = epilogue(sum over kk = (ch, th, tw) of
//   src[n, ch, gi*sth + offh[th], gj*stw + offw[tw]] * filt[c*fs + koff[kk]])
// for c < M over the Gh x Gw grid, as pixel rows, with ps's tile and plan: every index read
// must be inside src (the padded source of pad_source, or any source under a pure plan). The
// forward (filt: w's rows) and a stride-1 backward-data (filt: the flipped filter's columns)
// are such GEMMs. The register tile fits the GEMM's shape (ukernel_for_shape: on AVX-512,
// the 8 x 48 tile for 48 or 144 channels, the 8 x 16 one for 8 or 16). Returns false when
// skipping taps left a non-finite sum (y incomplete: run_pixel_rows computes every tap).
template <typename T>
bool gemm_pixel_rows(View4<const T> src, int64_t Gh, int64_t Gw, int64_t sth, int64_t stw,
                     const std::vector<int64_t>& offh, const std::vector<int64_t>& offw,
                     int64_t M, const T* filt, int64_t fs, const std::vector<int64_t>& koff,
                     const T* bias, Activation act, T* y, T* preact, const PixelSetup<T>& ps) {
  const int64_t GG = Gh * Gw, Ncol = src.size[0] * GG, Kd = static_cast<int64_t>(koff.size());
  const UKernel<T>& uk = ps.uk;
  const PixelPlan& plan = ps.plan;
  const int64_t nth = static_cast<int64_t>(offh.size()), ntw = static_cast<int64_t>(offw.size());
  // A (the im2col) is read in place: pixel j's row starts at rowp[j] (the last pixel
  // repeated to whole 6-row panels), reduction index kk at xoff[kk] from there. With one
  // tap (1x1: every reduction index in another plane, a cache line each) it is packed once
  // instead: in place, 2048 -> 512 at 7x7 batch 1 ran 0.78x and a 16 x 4096 -> 4096 linear
  // 0.92x, where 3x3 and 5x5 layers gained (832 -> 128 5x5 at 7x7 1.10x, 256 -> 32 3x3
  // 1.45x, and no packed copy of a large im2col).
  const int64_t MR = uk.mr, Mpad = round_up(Ncol, MR), npan = Mpad / MR;
  const bool packed = nth * ntw == 1;
  g_taps_skipped.fetch_add(plan.skipped, std::memory_order_relaxed);
  std::vector<int64_t> moff(Mpad), poff(Ncol);
  for (int64_t j = 0; j < Mpad; ++j) {
    const int64_t jj = plan.order[j], n = jj / GG, gi = jj % GG / Gw, gj = jj % Gw;
    moff[j] = n * src.stride[0] + gi * sth * src.stride[2] + gj * stw * src.stride[3];
    if (j < Ncol) poff[j] = n * M * GG + jj % GG;
  }
  std::vector<int64_t> xoff(Kd);
  tap_offsets(0, Kd, src.stride[1], offh.data(), nth, src.stride[2], offw.data(), ntw,
              src.stride[3], xoff.data());
  // Per reduction block and panel, the selection of its box's taps (null: every tap).
  const gemm::KBlocks kb(Kd);
  const int64_t nbox = static_cast<int64_t>(plan.boxes.size()), taps = nth * ntw;
  std::vector<int64_t> tap_a, tap_b;  // the boxes' taps, box after box (A, B offsets)
  std::vector<gemm::KSel> ksel(static_cast<size_t>(nbox * kb.nb));
  std::vector<const gemm::KSel*> sel(nbox > 0 ? static_cast<size_t>(kb.nb * npan) : 0);
  std::vector<size_t> box_at(static_cast<size_t>(nbox) + 1);
  for (int64_t bi = 0; bi < nbox; ++bi) {
    const auto& b = plan.boxes[bi];
    box_at[bi] = tap_a.size();
    for (int64_t th = b[0]; th < b[1]; ++th)
      for (int64_t tw = b[2]; tw < b[3]; ++tw) {
        tap_a.push_back(offh[th] * src.stride[2] + offw[tw] * src.stride[3]);
        tap_b.push_back((th * ntw + tw) * uk.nr);  // (ascending: the taps' order)
      }
  }
  box_at[nbox] = tap_a.size();
  for (int64_t bi = 0; bi < nbox; ++bi) {
    const int64_t* tb = tap_b.data() + box_at[bi];
    const int64_t nt = static_cast<int64_t>(box_at[bi + 1] - box_at[bi]);
    // The box's first tap at or after reduction index kk's within its channel, and the
    // box's reduction indices below kk.
    auto first = [&](int64_t kk) { return std::lower_bound(tb, tb + nt, kk % taps * uk.nr) - tb; };
    auto before = [&](int64_t kk) { return kk / taps * nt + first(kk); };
    for (int64_t p = 0; p < kb.nb; ++p) {
      const int64_t k0 = kb.begin(p), k1 = k0 + kb.size(p);
      int64_t c = k0 / taps, t = first(k0);
      if (t == nt) t = 0, ++c;
      ksel[bi * kb.nb + p] = {before(k1) - before(k0), tap_a.data() + box_at[bi], tb, nt, t,
                              c * src.stride[1], (c * taps - k0) * uk.nr, src.stride[1],
                              taps * uk.nr};
    }
  }
  for (int64_t p = 0; p < kb.nb && nbox > 0; ++p)
    for (int64_t q = 0; q < npan; ++q)
      if (plan.box[q] >= 0) sel[p * npan + q] = &ksel[plan.box[q] * kb.nb + p];
  const T* apack =
      packed ? prepack_a<T>(uk, 1, Ncol, Kd, src.data, 0, moff.data(), xoff) : nullptr;
  std::vector<const T*> rowp(packed ? 0 : Mpad);
  for (size_t j = 0; j < rowp.size(); ++j) rowp[j] = src.data + moff[j];
  // Skipping is exact for a finite filter only: a padding zero times an inf or NaN weight is
  // NaN, as torch computes it. Such a weight also multiplies the source where its tap is
  // valid, so some sum comes out non-finite (checked as the tiles are stored, before bias
  // and activation): then the product is computed again with every tap. (Taps valid for
  // no pixel at all: their weights were checked above.)
  std::atomic<bool> nonfinite{false};
  const FilterB<T> pb{filt, fs, koff.data(), uk.nr};
  const PixelC<T> st{{}, y, preact, bias, act, poff.data(), GG,
                     sel.empty() ? nullptr : &nonfinite};
  auto pa = [&](int64_t am0, int64_t, int64_t k0, int64_t kc, T*) {
    if (apack) return gemm::ABlock<T>{apack + Mpad * k0 + (am0 / MR) * MR * kc, 0};
    const gemm::KSel* const* ks =
        sel.empty() ? nullptr : sel.data() + kb.index(k0) * npan + am0 / MR;
    return gemm::ABlock<T>{nullptr, 0, rowp.data() + am0, xoff.data() + k0, ks};
  };
  // Tasks by blocks of PB pixels and of output channels, two per thread: every task of a
  // pixel block reads all of its im2col (49 x 20800 values for 832 -> 128 5x5 at 7x7: 4 MB),
  // four per thread read it twice as often (832 -> 128: 0.93x against two). Each task packs
  // its channels' filter rows whole, so pixel blocks are as large as 8 kMC while there
  // remain two tasks per thread (channel blocks counted): at kMC pixels, the packing took
  // 11% of a 7x7 backward-data (128 <- 128 at 16x16, batch 32). Against blocks of kMC, old
  // and new alternated, 2 threads, Zen 4: that layer 1.27x, 832 -> 128 5x5 at 7x7 batch 16
  // forward 1.17x and backward-data 1.22x, 256 -> 256 5x5 at 11x11 batch 8 1.22x, 256 ->
  // 512 3x3 stride 2 at batch 4 1.17x, batch-1 layers unchanged (one block either way);
  // blocks of 16-32 kMC lost 0.70-0.90x on 32 <- 128 5x5 at 7x7 batch 128.
  int64_t PB = kMC;
  for (const int64_t want = 2 * num_threads(), panels = ceil_div(M, int64_t(uk.nr));
       PB < 8 * kMC && ceil_div(Ncol, 2 * PB) * panels >= want;)
    PB *= 2;
  // Blocks of nearly equal whole panels: 196 pixels (one 14x14 image) as 144 and 52 left one
  // of two threads idle two thirds of the time (512 -> 48 5x5, batch 1: 1.30x as 104 and 92).
  // With few tasks, the block count whose tasks spread best over the threads (the fewest
  // rounds of the largest task; fewer tasks on ties, each packs the filter rows again):
  // 392 pixels (two 14x14 images) as 3 blocks kept one thread busy for two of them, as 2
  // for one of 1.5 the size (old/new alternated, 2 threads: 512 -> 48 5x5 at 14x14 batch 2
  // 1.31-1.34x, 192 -> 32 5x5 at 28x28 batch 1-2 1.07-1.13x; DeepBench's 651 cases
  // otherwise within noise). PB stays a multiple of MR: the blocks split no panel.
  int64_t mch = ceil_div(Ncol, PB);
  const auto col_blocks = [&](int64_t m) { return ceil_div(M, gemm::pick_nb(M, m, uk.nr, 2)); };
  if (const int64_t nt = num_threads(); nt > 1 && mch * col_blocks(mch) < 4 * nt) {
    int64_t best = mch, best_span = INT64_MAX, best_tasks = 0;
    for (int64_t m = std::max<int64_t>(1, ceil_div(Ncol, 8 * kMC)); m <= mch; ++m) {
      const int64_t nbm = gemm::pick_nb(M, m, uk.nr, 2), tasks = m * ceil_div(M, nbm);
      const int64_t span = ceil_div(tasks, nt) * round_up(ceil_div(Ncol, m), MR) * nbm;
      if (span < best_span || (span == best_span && tasks < best_tasks))
        best = m, best_span = span, best_tasks = tasks;
    }
    mch = best;
  }
  PB = round_up(ceil_div(Ncol, mch), MR);
  const int64_t nb = gemm::pick_nb(M, mch, uk.nr, 2);
  const int64_t ncb = ceil_div(M, nb);
  parallel_tasks(mch * ncb, threads_for(Ncol * M * Kd / 8), [&](int64_t t) {
    const int64_t m0 = t / ncb * PB, j0 = t % ncb * nb;
    gemm::gemm_task<T>(uk, m0, std::min(Ncol, m0 + PB), j0, std::min(M, j0 + nb), 0, Kd, pa,
                       pb, st);
  });
  return !nonfinite.load();
}

// gemm_pixel_rows on src through the grid's tap offsets (negative ones read its padding),
// skipping the taps on padding where tr says (tr may be null): on src itself when every
// panel reads only its pixels' own taps (PixelPlan::pure: the zero-padded copy was 10% of
// GoogLeNet 5a's 5x5 backward-data at 7x7 batch 128), else on its padded copy; every tap on
// the padded copy where skipping left a non-finite sum. Returns false where that copy would
// be much larger than what the convolution reads (pad_source): the caller then runs the
// reference loops.
template <typename T>
bool run_pixel_rows(View4<const T> src, int64_t Gh, int64_t Gw, int64_t sth, int64_t stw,
                    std::vector<int64_t> offh, std::vector<int64_t> offw, int64_t M,
                    const T* filt, int64_t fs, const std::vector<int64_t>& koff, const T* bias,
                    Activation act, T* y, T* preact, const TapRanges* tr) {
  const int64_t N = src.size[0], nth = static_cast<int64_t>(offh.size()),
                ntw = static_cast<int64_t>(offw.size());
  const PixelSetup<T> ps = pixel_setup(N, Gh, Gw, M, filt, fs, koff, nth, ntw, tr);
  if (ps.plan.pure &&
      gemm_pixel_rows(src, Gh, Gw, sth, stw, offh, offw, M, filt, fs, koff, bias, act, y,
                      preact, ps))
    return true;
  bool ok;
  const View4<const T> xs = pad_source(src, Gh, Gw, sth, stw, offh, offw, ok, true);
  if (!ok) return false;
  if (!ps.plan.pure && gemm_pixel_rows(xs, Gh, Gw, sth, stw, offh, offw, M, filt, fs, koff,
                                       bias, act, y, preact, ps))
    return true;
  gemm_pixel_rows(xs, Gh, Gw, sth, stw, offh, offw, M, filt, fs, koff, bias, act, y, preact,
                  pixel_setup(N, Gh, Gw, M, filt, fs, koff, nth, ntw, nullptr));
  return true;
}

// ---- Matrix-vector products: a linear layer at batch 1 to 4 ------------------------------
//
// One output value per filter and image (a linear layer as a 1x1 convolution of 1x1 images,
// or a filter as large as its unpadded input) and at most kGemvImages images (conv_fast.h):
// filter rows in blocks across the threads, bias and activation after; the backward-data
// by combine_rows.

// Whether (c, h, w) of a C x H x W block of v lies at c*H*W + h*W + w (strides of size-1
// dimensions do not matter: numpy gives a[:, :, None, None] zero strides there).
template <typename T>
bool dense_rows(const View4<const T>& v, int64_t C, int64_t H, int64_t W) {
  return (W <= 1 || v.stride[3] == 1) && (H <= 1 || v.stride[2] == W) &&
         (C <= 1 || v.stride[1] == H * W);
}

// At most kGemvImages images, each with one output value per filter, and filter rows
// dense (the forward's images too, the backward-data's grad_output rows unit-stride).
template <typename T>
bool gemv_fits(const ConvParams& p, const View4<const T>& w) {
  return p.groups == 1 && p.N <= kGemvImages && p.P == 1 && p.Q == 1 && p.R == p.H &&
         p.S == p.W && p.dil_h == 1 && p.dil_w == 1 &&
         p.pad_top + p.pad_bottom + p.pad_left + p.pad_right == 0 &&
         dense_rows(w, p.C, p.R, p.S);
}

template <typename T>
void forward_gemv(const ConvParams& p, const UKernel<T>& uk, View4<const T> x, View4<const T> w,
                  const T* bias, Activation act, T* y, T* preact) {
  const int64_t M = p.K, Kd = p.C * p.R * p.S, N = p.N;
  constexpr int64_t kRows = 64;  // filter rows per task
  const int64_t ntask = ceil_div(M, kRows);
#pragma omp parallel for schedule(static) num_threads(threads_for(N * M * Kd / 8))
  for (int64_t t = 0; t < ntask; ++t) {
    const int64_t o0 = t * kRows, mo = std::min(kRows, M - o0);
    uk.fn_gemv(static_cast<int>(N), mo, Kd, w.data + o0 * w.stride[0], w.stride[0], x.data,
               x.stride[0], y + o0, M);
    if (bias || preact || act.kind != ActKind::none)
      bias_activation_serial(act, EpilogueBlock<T>{y + o0, M, y + o0, M, N, mo,
                                                   bias ? bias + o0 : nullptr, 0, 1,
                                                   preact ? preact + o0 : nullptr, M});
  }
}

}  // namespace

template <typename T>
void combine_rows(int64_t N, int64_t G, int64_t K, int64_t L, const T* w, int64_t ldw,
                  const T* x, int64_t ldx, T* y, int64_t ldy) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  constexpr int64_t kCols = 512;  // outputs a row per task
  const int64_t nc = ceil_div(L, kCols);
#pragma omp parallel for schedule(static) num_threads(threads_for(N * G * K * L / 8))
  for (int64_t t = 0; t < G * nc; ++t) {
    const int64_t g = t / nc, l0 = t % nc * kCols;
    uk.fn_gemv_t(static_cast<int>(N), K, std::min(kCols, L - l0), w + g * K * ldw + l0, ldw,
                 x + g * K, ldx, y + g * L + l0, ldy);
  }
}

template void combine_rows<float>(int64_t, int64_t, int64_t, int64_t, const float*, int64_t,
                                  const float*, int64_t, float*, int64_t);
template void combine_rows<double>(int64_t, int64_t, int64_t, int64_t, const double*, int64_t,
                                   const double*, int64_t, double*, int64_t);

template <typename T>
void conv2d_forward_gemm(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                         Activation act, T* y, T* preact, bool cache_output,
                         int64_t w_group_stride) {
  const UKernel<T> uk = pixel_tile<T>(p.P * p.Q, p.Cg() * p.R * p.S);
  const int64_t G = p.groups, M = p.Kg(), Cg = p.Cg(), R = p.R, S = p.S, RS = R * S;
  const int64_t Kd = Cg * RS, PQ = p.P * p.Q, Ncol = p.N * PQ;
  if (Ncol == 0 || M == 0) return;
  if (gemv_fits(p, w) && dense_rows(x, p.C, p.H, p.W))
    return forward_gemv(p, uk, x, w, bias, act, y, preact);
  const int64_t Mpad = round_up(M, uk.mr);
  std::vector<int64_t> taps_r(R), taps_s(S);
  std::iota(taps_r.begin(), taps_r.end(), 0), std::iota(taps_s.begin(), taps_s.end(), 0);
  std::vector<int64_t> koff(Kd);
  tap_offsets(0, Kd, w.stride[1], taps_r.data(), R, w.stride[2], taps_s.data(), S, w.stride[3],
              koff.data());
  std::vector<int64_t> offh(R), offw(S);
  for (int64_t r = 0; r < R; ++r) offh[r] = r * p.dil_h - p.pad_top;
  for (int64_t s = 0; s < S; ++s) offw[s] = s * p.dil_w - p.pad_left;
  int64_t sth = p.stride_h, stw = p.stride_w;
  if (use_pixel_rows(p, M, Ncol, Kd, sizeof(T), PQ, false)) {
    // (Pixel rows read a strided source in place: DeepSpeech's 5x10 stride-2 stem spent 5% of
    // its time on a column-phase copy of its 14 MB input.)
    TapRanges tr;
    tap_ranges(p.P, sth, offh, p.H, tr.h0, tr.h1);
    tap_ranges(p.Q, stw, offw, p.W, tr.w0, tr.w1);
    if (!run_pixel_rows(x, p.P, p.Q, sth, stw, offh, offw, M, w.data, w.stride[0], koff, bias,
                        act, y, preact, &tr))
      ref::conv2d_forward(p, x, w, bias, act, y, preact);
    return;
  }
  bool stride2 = false;
#if defined(PYCONV_X86)
  stride2 = std::is_same_v<T, float> && active_isa() >= Isa::avx512;
#endif
  bool ok;
  const View4<const T> xs = pad_source(x, p.P, p.Q, sth, stw, offh, offw, ok, false, stride2);
  if (!ok) return ref::conv2d_forward(p, x, w, bias, act, y, preact);
  const bool in_place = in_place_b(uk, M, xs, offh, RS, Cg);
  std::vector<int64_t> moff(M);
  for (int64_t m = 0; m < M; ++m) moff[m] = m * w.stride[0];
  const T* apack = prepack_a<T>(uk, G, M, Kd, w.data,
                                w_group_stride ? w_group_stride : M * w.stride[0], moff.data(),
                                koff);
  const bool nt = !cache_output && stream_output(p.N * p.K * PQ, sizeof(T));
  for_each_task(1, G, M, Ncol, Kd, uk.mr, uk.nr,
                [&](int64_t, int64_t g, int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
    GridB<T> pb{xs, g * Cg, p.P, p.Q, sth, stw, offh.data(), R, offw.data(), S, uk.nr,
                in_place};
    GridC<T> st{y + g * M * PQ, preact ? preact + g * M * PQ : nullptr, PQ, p.K * PQ, p.Q, 1, 0,
                p.P, p.Q, bias ? bias + g * M : nullptr, act, uk.nr, nt};
    const int MR = uk.mr;
    auto pa = [&](int64_t am0, int64_t, int64_t k0, int64_t kc, T*) {
      return gemm::ABlock<T>{apack + g * Mpad * Kd + Mpad * k0 + (am0 / MR) * MR * kc, 0};
    };
    gemm::gemm_task<T>(uk, m0, m1, j0, j1, 0, Kd, pa, pb, st);
  });
}

template <typename T>
void conv2d_backward_data_gemm(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  // (A phase's grid and reduction, at least.)
  const UKernel<T> uk = pixel_tile<T>((p.H / p.stride_h) * (p.W / p.stride_w),
                                      p.Kg() * (p.R / p.stride_h) * (p.S / p.stride_w));
  const int64_t G = p.groups, M = p.Cg(), Kg = p.Kg(), HW = p.H * p.W;
  if (p.N == 0 || M == 0) return;
  // (Such a layer's input gradient: dx[n] = sum over k of dy[n, k] * w[k].)
  if (gemv_fits(p, w) && (p.K <= 1 || dy.stride[1] == 1))
    return combine_rows(p.N, int64_t(1), p.K, p.C * HW, w.data, w.stride[0], dy.data,
                        dy.stride[0], dx, p.C * HW);
  const int64_t sh = p.stride_h, sw = p.stride_w, MR = uk.mr, Mpad = round_up(M, MR);
  // Per phase (ih % sh, iw % sw): the taps that hit it. Taps with ih + pt - r*dh ==
  // oh*sh, so oh = gi + (ph + pt - r*dh)/sh.
  struct Phase {
    int64_t ph, pw, Hph, Wph, nr, ns, Kd, aoff, boff;  // boff: its planes in the phase buffer
    std::vector<int64_t> rl, sl, offh, offw;
  };
  std::vector<Phase> phs;
  int64_t atotal = 0, btotal = 0;
  for (int64_t ph = 0; ph < std::min(sh, p.H); ++ph)
    for (int64_t pw = 0; pw < std::min(sw, p.W); ++pw) {
      Phase f;
      f.ph = ph, f.pw = pw, f.Hph = ceil_div(p.H - ph, sh), f.Wph = ceil_div(p.W - pw, sw);
      for (int64_t r = 0; r < p.R; ++r)
        if (floor_mod(ph + p.pad_top - r * p.dil_h, sh) == 0)
          f.rl.push_back(r), f.offh.push_back((ph + p.pad_top - r * p.dil_h) / sh);
      for (int64_t s = 0; s < p.S; ++s)
        if (floor_mod(pw + p.pad_left - s * p.dil_w, sw) == 0)
          f.sl.push_back(s), f.offw.push_back((pw + p.pad_left - s * p.dil_w) / sw);
      f.nr = static_cast<int64_t>(f.rl.size()), f.ns = static_cast<int64_t>(f.sl.size());
      f.Kd = Kg * f.nr * f.ns, f.aoff = atotal, f.boff = btotal;
      atotal += G * Mpad * f.Kd;
      btotal += p.N * p.C * f.Hph * f.Wph;
      phs.push_back(std::move(f));
    }
  if (phs.size() == 1 && G == 1 && phs[0].nr * phs[0].ns > 0 &&
      use_pixel_rows(p, M, p.N * HW, phs[0].Kd, sizeof(T), HW, true)) {
    // Stride 1: dx = the grid of dy's taps (offh, offw) times the flipped filter's columns.
    const Phase& f = phs[0];
    std::vector<int64_t> koff(f.Kd);
    tap_offsets(0, f.Kd, w.stride[0], f.rl.data(), f.nr, w.stride[2], f.sl.data(), f.ns,
                w.stride[3], koff.data());
    // Tap th reads dy row ih + (pad_top - rl[th]*dil_h) / sh of dy's P rows (before its
    // padding; one phase: a stride larger than dx, or 1).
    TapRanges tr;
    std::vector<int64_t> o0h(f.rl.size()), o0w(f.sl.size());
    for (size_t t = 0; t < f.rl.size(); ++t) o0h[t] = (p.pad_top - f.rl[t] * p.dil_h) / sh;
    for (size_t t = 0; t < f.sl.size(); ++t) o0w[t] = (p.pad_left - f.sl[t] * p.dil_w) / sw;
    tap_ranges(p.H, 1, o0h, p.P, tr.h0, tr.h1);
    tap_ranges(p.W, 1, o0w, p.Q, tr.w0, tr.w1);
    if (!run_pixel_rows(dy, p.H, p.W, 1, 1, f.offh, f.offw, M, w.data, w.stride[1], koff,
                        static_cast<const T*>(nullptr), Activation{}, dx,
                        static_cast<T*>(nullptr), &tr))
      ref::conv2d_backward_data(p, dy, w, dx);
    return;
  }
  // One zero-padded copy of dy serves every phase (the union of their paddings; their
  // offsets shifted into it): a copy per phase wrote all of dy sh*sw times (6% of DCGAN
  // 128 -> 64's time at stride 2).
  View4<const T> dys;
  {
    std::vector<int64_t> uh, uw;
    int64_t Gh = 0, Gw = 0, one = 1, one_h = 1;
    for (const Phase& f : phs) {
      if (f.nr == 0 || f.ns == 0) continue;
      uh.insert(uh.end(), f.offh.begin(), f.offh.end());
      uw.insert(uw.end(), f.offw.begin(), f.offw.end());
      Gh = std::max(Gh, f.Hph), Gw = std::max(Gw, f.Wph);
    }
    bool ok;
    dys = pad_source(dy, Gh, Gw, one_h, one, uh, uw, ok);
    if (!ok) return ref::conv2d_backward_data(p, dy, w, dx);
    size_t ih = 0, iw = 0;
    for (Phase& f : phs) {
      if (f.nr == 0 || f.ns == 0) continue;
      for (int64_t& o : f.offh) o = uh[ih++];
      for (int64_t& o : f.offw) o = uw[iw++];
    }
  }
  // Every phase's filter, packed as prepack_a() does (MR-row panels per reduction block,
  // kk = (k, tap)), in one pass over w: a phase uses a few taps of every filter row, and
  // packing phase by phase streamed the whole filter once per phase.
  T* abuf = gemm::scratch<T>(2, atotal);
  const int64_t npan = Mpad / MR, nph = static_cast<int64_t>(phs.size());
  std::vector<gemm::KBlocks> kbs;
  for (const Phase& f : phs) kbs.emplace_back(f.Kd);
  // By groups of KG filter rows k (each read once, sequentially: by panels, the reads strode
  // through the whole filter and waited on memory): every (row, phase, tap) gets its place
  // in the packed A once (block lookups outside the panel loop), then each panel's MR
  // values of a tap are read straight from the filter into it (rows past M get zeros). A
  // group's rows land next to each other in a panel (whole cache lines): one row at a time
  // wrote MR values per panel, MR*KC values apart, all in one set of L1 (1x1 1024 -> 256's
  // backward-data spent 11% of its time here).
  struct Dst {
    int64_t base, pan_stride, src;  // abuf + base + pan*pan_stride <- w + src (+ panel rows)
  };
  constexpr int64_t KG = 8;
  const int64_t ws1 = w.stride[1], nkg = ceil_div(Kg, KG);
#pragma omp parallel for schedule(static) num_threads(threads_for(atotal))
  for (int64_t t = 0; t < G * nkg; ++t) {
    const int64_t g = t / nkg, ka = t % nkg * KG, kz = std::min(Kg, ka + KG);
    thread_local std::vector<Dst> dst;
    dst.clear();
    for (int64_t k = ka; k < kz; ++k)
      for (int64_t q = 0; q < nph; ++q) {
        const Phase& f = phs[q];
        const gemm::KBlocks& kb = kbs[q];
        const int64_t taps = f.nr * f.ns;
        for (int64_t tt = 0; tt < taps; ++tt) {
          const int64_t kk = k * taps + tt, bi = kb.index(kk), k0 = kb.begin(bi);
          dst.push_back({f.aoff + g * Mpad * f.Kd + Mpad * k0 + (kk - k0) * MR,
                         MR * kb.size(bi),
                         (g * Kg + k) * w.stride[0] + f.rl[tt / f.ns] * w.stride[2] +
                             f.sl[tt % f.ns] * w.stride[3]});
        }
      }
    for (int64_t pan = 0; pan < npan; ++pan) {
      const int64_t mv = std::min<int64_t>(MR, M - pan * MR);
      const T* wp = w.data + pan * MR * ws1;
      for (const Dst& e : dst) {
        T* d = abuf + e.base + pan * e.pan_stride;
        const T* sv = wp + e.src;
        if (ws1 == 1 && mv == MR && (MR == 6 || MR == 8)) {
          // 1x1 filters: a panel's MR values of a row lie side by side (one move, not MR
          // scalar ones: the packing was 38% of a 2048 <- 512 layer's backward-data at 9
          // pixels).
          if (MR == 8)
            std::memcpy(d, sv, 8 * sizeof(T));
          else
            std::memcpy(d, sv, 6 * sizeof(T));
        } else if (MR == 6 && mv == 6)  // (a constant count: moves, not a loop)
          for (int i = 0; i < 6; ++i) d[i] = sv[i * ws1];
        else if (MR == 8 && mv == 8)
          for (int i = 0; i < 8; ++i) d[i] = sv[i * ws1];
        else
          for (int64_t i = 0; i < MR; ++i) d[i] = i < mv ? sv[i * ws1] : T(0);
      }
    }
  }
  // Strided: each phase's (N, C, Hph, Wph) goes to a phase-major buffer through the
  // direct (in-place) tile stores, then one pass interleaves the phases into dx. Scattering
  // every tile into every sw-th column took 18% of dcgan 128->64 in scalar stores.
  const bool split = nph > 1;
  T* pbuf = split ? gemm::scratch<T>(10, btotal) : nullptr;
  std::vector<char> in_place(phs.size());
  for (size_t q = 0; q < phs.size(); ++q)
    in_place[q] = in_place_b(uk, M, dys, phs[q].offh, phs[q].nr * phs[q].ns, Kg);
  // Task (g, m0, m1, j0, j1) of phase q's GEMM.
  auto task = [&](size_t q, int64_t g, int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
    const Phase& f = phs[q];
    const int64_t Kd = f.Kd, PHW = f.Hph * f.Wph;
    const T* apack = abuf + f.aoff;
    GridB<T> pb{dys, g * Kg, f.Hph, f.Wph, 1, 1, f.offh.data(), f.nr, f.offw.data(), f.ns,
                uk.nr, in_place[q] != 0};
    const GridC<T> st =
        split ? GridC<T>{pbuf + f.boff + g * M * PHW, nullptr, PHW, p.C * PHW, f.Wph, 1, 0,
                         f.Hph, f.Wph, nullptr, Activation{}, uk.nr}
              : GridC<T>{dx + g * M * HW, nullptr, HW, p.C * HW, sh * p.W, sw,
                         f.ph * p.W + f.pw, f.Hph, f.Wph, nullptr, Activation{}, uk.nr,
                         stream_output(p.N * p.C * HW, sizeof(T))};
    auto pa = [&](int64_t am0, int64_t, int64_t k0, int64_t kc, T*) {
      return gemm::ABlock<T>{apack + g * Mpad * Kd + Mpad * k0 + (am0 / MR) * MR * kc, 0};
    };
    gemm::gemm_task<T>(uk, m0, m1, j0, j1, 0, Kd, pa, pb, st);
  };
  // Phases of one grid (H and W multiples of the stride; also the single phase of stride
  // 1) share one task list, the phases of a column block next to each other: the block's
  // rows of grad_output stay in L2 across its phases, where phase after phase streamed all
  // of it from L3 again (packing was 22% of DCGAN 128 -> 64's transposed forward); unless the
  // phases' filter rows (A) outgrow half an L2: then a phase's column blocks come together
  // and its A stays (U-Net 512 -> 256 and DCGAN 256 -> 128 transposed forwards, 2 MB of A,
  // 1.06-1.07x; 128 -> 64, 512 KB, 0.96x so).
  bool one_grid = !phs.empty();  // (none: an empty dx)
  for (const Phase& f : phs) one_grid &= f.Hph == phs[0].Hph && f.Wph == phs[0].Wph;
  if (one_grid) {
    int64_t Kd = 0;
    for (const Phase& f : phs) Kd += f.Kd;
    for_each_task(nph, G, M, p.N * phs[0].Hph * phs[0].Wph, Kd, uk.mr, uk.nr,
                  [&](int64_t q, int64_t g, int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
                    task(static_cast<size_t>(q), g, m0, m1, j0, j1);
                  },
                  M * Kd * int64_t(sizeof(T)) > l2_bytes() / 2);
  } else {
    for (size_t q = 0; q < phs.size(); ++q)
      for_each_task(1, G, M, p.N * phs[q].Hph * phs[q].Wph, phs[q].Kd, uk.mr, uk.nr,
                    [&](int64_t, int64_t g, int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
                      task(q, g, m0, m1, j0, j1);
                    });
  }
  if (!split) return;
  // dx[n, c, ph + sh*i, pw + sw*j] = phase (ph, pw)[n, c, i, j].
  std::vector<const T*> sub;
  for (const Phase& f : phs) sub.push_back(pbuf + f.boff);
  merge_phases(sub.data(), p.N * p.C, p.H, p.W, sh, sw, dx);
}

namespace {

// The weight gradient's taps-as-rows tiles (conv2d_backward_weight_gemm) from this many
// output pixels an image (each image is its own sequence of reduction blocks).
constexpr int64_t kTapsRowsMinPixels = 100;
// The weight gradient GEMM's largest row block (below).
constexpr int64_t kWgradRows = 1024;
// The taps-as-rows weight gradient's chunks of pixels (below).
constexpr int64_t kMinTasks = 2, kMinChunkPixels = 1024;

// Store of a weight gradient computed transposed, C[i = column of dw, j = output channel]:
// dw[j*ncols + i], overwritten (first) or added to.
template <typename T>
struct TransposedC : gemm::PlainStore<T> {
  T* dw;
  int64_t ncols;
  T* direct(int64_t, int64_t, int64_t&) const { return nullptr; }
  void operator()(int64_t m0, int64_t mv, int64_t j0, int64_t nv, const T* tile, int64_t ldt,
                  bool first, bool) const {
#if defined(PYCONV_X86)
    // Eight rows by 8x8 transposes: the value-by-value loop below (compiled for SSE2:
    // four strided loads a vector) was 17% of a 512 -> 48 5x5 weight gradient, whose
    // reduction goes one image (196 pixels) a call, so every tile is stored per image
    // (1.09-1.11x at batch 2 and 16, old/new alternated; the same values).
    if constexpr (std::is_same_v<T, float>) {
      if (mv == 8 && active_isa() >= Isa::avx2) {
        const T* rows[8];
        for (int q = 0; q < 8; ++q) rows[q] = tile + q * ldt;
        T* d = dw + j0 * ncols + m0;
        if (first)
          avx2::transpose8_rows_float(rows, 0, nv, d, ncols);
        else
          avx2::transpose8_rows_add_float(rows, nv, d, ncols);
        return;
      }
    }
#endif
    for (int64_t j = 0; j < nv; ++j) {
      T* d = dw + (j0 + j) * ncols + m0;
      if (first)
        for (int64_t i = 0; i < mv; ++i) d[i] = tile[i * ldt + j];
      else
        for (int64_t i = 0; i < mv; ++i) d[i] += tile[i * ldt + j];
    }
  }
};

// The weight gradient's reduction (n, oh, ow) in chunks, their partial sums added in chunk
// order: nch of whole images, or, where those leave fewer than kMinTasks tasks (tasks per
// chunk), ranges of at least kMinChunkPixels reduction indices. Shape-only counts.
inline int64_t reduction_chunks(int64_t nch, int64_t tasks, int64_t NPQ) {
  return std::max(nch, std::min(ceil_div(kMinTasks, tasks), NPQ / kMinChunkPixels));
}
// Chunk chk of tch (reduction_chunks) as reduction indices [u0, u1).
inline void chunk_range(int64_t chk, int64_t tch, int64_t nch, int64_t N, int64_t PQ,
                        int64_t& u0, int64_t& u1) {
  if (tch == nch) {
    split_range(N, nch, chk, u0, u1);
    u0 *= PQ, u1 *= PQ;
  } else {
    split_range(N * PQ, tch, chk, u0, u1);
  }
}

// Runs of consecutive reduction indices t = (n, oh, ow) over [t0, t0+tc) within one output row.
struct Run {
  int64_t tt, len, n, oh, ow;
};
// f(first, len) for each maximal group of runs that continue each other where they are read
// (off(run): the offset of the run's first value) and so in the panel too: one packing call
// a group (a whole image's plane when its rows are contiguous).
template <class Off, class F>
inline void merged_runs(const std::vector<Run>& runs, Off&& off, F&& f) {
  for (size_t r = 0, e; r < runs.size(); r = e) {
    int64_t len = runs[r].len;
    for (e = r + 1; e < runs.size() && off(runs[e]) == off(runs[r]) + len; ++e)
      len += runs[e].len;
    f(runs[r], len);
  }
}
inline void build_runs(std::vector<Run>& runs, int64_t t0, int64_t tc, int64_t P, int64_t Q) {
  runs.clear();
  const int64_t PQ = P * Q;
  int64_t n = t0 / PQ, rem = t0 % PQ, oh = rem / Q, ow = rem % Q;
  for (int64_t t = t0; t < t0 + tc;) {
    const int64_t len = std::min(Q - ow, t0 + tc - t);
    runs.push_back({t - t0, len, n, oh, ow});
    t += len;
    ow = 0;
    if (++oh == P) oh = 0, ++n;
  }
}

}  // namespace

// dw[i] = the chunks' partial sums out[c*KN + i] added in chunk order.
template <typename T>
void add_chunks(const T* out, int64_t nch, int64_t KN, T* dw) {
#pragma omp parallel for schedule(static) num_threads(threads_for(KN * nch))
  for (int64_t i = 0; i < KN; ++i) {
    T s = out[i];
    for (int64_t c = 1; c < nch; ++c) s += out[c * KN + i];
    dw[i] = s;
  }
}

template <typename T>
void conv2d_backward_weight_gemm(const ConvParams& p, View4<const T> dy, View4<const T> x,
                                 T* dw) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  const int64_t G = p.groups, M = p.Kg(), Cg = p.Cg(), R = p.R, S = p.S, RS = R * S;
  const int64_t Ncols = Cg * RS, KN = p.K * Ncols;
  if (KN == 0) return;
  if (p.N == 0 || p.P * p.Q == 0) {
    for (int64_t i = 0; i < KN; ++i) dw[i] = T(0);
    return;
  }
  // The reduction over (n, oh, ow) is split by images into a fixed, shape-only number
  // of chunks (never the thread count); chunk partial sums are added in chunk order. An
  // output of 2^17+ weights has the tasks by itself: one chunk (writing and adding the
  // partial sums made DCGAN's weight gradients 1.44-1.56x slower).
  const int64_t PQ = p.P * p.Q;
  // Chunks of fewer than kKC reduction values (a linear layer's batch of 64 images of one
  // value) would run the micro-kernel on short blocks and add partial sums as large as the
  // gradient for little arithmetic: 64 x 1024 -> 64 ran 2.6x slower in 8 chunks than in one.
  int64_t nch = KN >= (int64_t(1) << 17) ? 1 : std::min<int64_t>(p.N, 8);
  while (nch > 1 && (nch * KN > (int64_t(1) << 22) || p.N / nch * PQ < gemm::kKC)) --nch;
  // grad_output planes read in place by the micro-kernel when they are unit-stride and
  // long enough; each image is then its own sequence of reduction blocks.
  const bool rows = dy.stride[3] == 1 && dy.stride[2] == p.Q && PQ >= 128;
  T* out = nch == 1 ? dw : gemm::scratch<T>(2, nch * KN);
  std::vector<int64_t> offh(R), offw(S);
  for (int64_t r = 0; r < R; ++r) offh[r] = r * p.dil_h - p.pad_top;
  for (int64_t s = 0; s < S; ++s) offw[s] = s * p.dil_w - p.pad_left;
  int64_t sw = p.stride_w;
  bool ok;
  int64_t sh = p.stride_h;
  const View4<const T> xs = pad_source(x, p.P, p.Q, sh, sw, offh, offw, ok);
  if (!ok) return ref::conv2d_backward_weight(p, dy, x, dw);
  const int64_t xs3 = xs.stride[3], cs = sw * xs3;  // source step between neighbouring ow
  if constexpr (std::is_same_v<T, float>) {
#if defined(PYCONV_X86)
    // Few input channels against few output channels (stems: 3 x 5 x 5 = 75 or 3 x 7 x 7 =
    // 147 columns, 32 or 64 output channels): the filter taps as the tile's rows, read in
    // place through row pointers (the source at pixel offsets), and grad_output transposed
    // into the B panels: M values per pixel packed instead of Cg*R*S, and the output
    // channels fill whole NR-column panels where the taps left 21 of 96 idle (CIFAR-10
    // conv1). Per image, as the rows path: each weight summed over the images in order.
    // Taken with twice as many taps as output channels, or wherever its tiles do less work
    // (DCGAN 64 -> 3's transposed weight gradient: 48 taps x 64 channels, 1.20x; 4 -> 32
    // 3x3 1.52x, paired against the taps as columns). Grouped layers too (per group) where a
    // group's outputs fill one tile width: old/new alternated, 2 threads, 16 outputs a group,
    // 3x3 64 a group at 28x28 1.29-1.32x, 5x5 1.41x, 3x3 stride 2 1.21-1.42x, 5x5 and 7x7
    // stride 2 (128 a group) 0.80-1.24x over repeated runs; with 32 a group 0.90x: those
    // keep the taps as columns.
    // Eight outputs (a group) on the AVX2 tile: an 8 x 8 tile instead, its one vector of
    // columns all used (old/new alternated, 2 threads: 8 <- 64 5x5 at 38x38 1.48x, 7x7 at
    // 25x25 1.24-1.36x, 3x3 at 32x32 1.37-1.63x, 16 <- 128 g2 at 28x28 1.26-1.32x, 32 <- 512
    // g4 at 31x31 1.25x). Per image from kTapsRowsMinPixels output pixels (256 before:
    // 8 <- 64 3x3 s2 at 14x14 outputs 1.29x, 16 <- 64 at 12x12 1.18x, 16 <- 32 5x5 at 14x14
    // 1.26x, g2 32 <- 128 1.27x, 8 <- 64 at 10x10 1.09x; 8x8 outputs lost 0.86-0.88x).
    // On AVX-512 AVX2's tile where it does enough less work (ukernel_for_shape): 16 outputs
    // of one channel's 3x3 taps (9 rows) fill 12 x 16 of its tile and 16 x 32 of AVX-512's,
    // 1.6x faster on Zen 4 (an image of 48 x 480, 2 threads). Taken when its tiles do less
    // work than the taps as columns on the native tile (weighted the same way).
    gemm::UKernel<float> tk = gemm::ukernel_for_shape<float>(active_isa(), Ncols, M);
    const double weight = tk.nr < uk.nr ? gemm::narrow_tile_weight() : 1.0;
    if (M == 8 && tk.nr == 16) tk.mr = 8, tk.nr = 8, tk.fn_ind = avx2::f32_gemm_ind8x8;
    const bool fewer = weight * double(round_up(Ncols, tk.mr) * round_up(M, tk.nr)) <
                       double(round_up(M, uk.mr) * round_up(Ncols, uk.nr));
    if (M % 8 == 0 && M <= 2 * tk.nr && (G == 1 || M == tk.nr) && (Ncols >= 2 * M || fewer) &&
        PQ >= kTapsRowsMinPixels &&
        dy.stride[3] == 1 && dy.stride[2] == p.Q && active_isa() >= Isa::avx2) {
      const int MRt = tk.mr, NRt = tk.nr;
      const int64_t Mt = round_up(Ncols, MRt);
      std::vector<int64_t> pix(PQ);  // pixel (oh, ow) of an image at its taps' rows + pix
      for (int64_t oh = 0, k = 0; oh < p.P; ++oh)
        for (int64_t ow = 0; ow < p.Q; ++ow) pix[k++] = oh * sh * xs.stride[2] + ow * cs;
      // Tap i's row in image 0 (rows past Ncols: tap 0's).
      std::vector<int64_t> tapoff(Mt);
      tap_offsets(0, Ncols, xs.stride[1], offh.data(), R, xs.stride[2], offw.data(), S, xs3,
                  tapoff.data());
      std::fill(tapoff.begin() + Ncols, tapoff.end(), tapoff[0]);
      // Row blocks of whole panels, nearly equal, at most 4 kMC rows (each block transposes
      // its reduction range of grad_output again; the rows are read in place, not packed):
      // per group, its taps' rows Cg channels on and its M rows of grad_output. Chunks of
      // the reduction by images, or, when those leave fewer than kMinTasks tasks, by ranges
      // of pixels of at least kMinChunkPixels (shape-only counts: the partial sums are added
      // in chunk order): one image of 24 x 240 pixels, 16 -> 32 3x3, was one task for two
      // threads. Rows in blocks of kMC where the larger ones leave a thread without a task
      // (the results do not depend on the row blocks). Against blocks of kMC (old/new
      // alternated, 2 threads): the 7x7 stem from 3 channels (147 rows) 1.05-1.11x at batch
      // 1-32, 11x11 from 3 at 512x512 1.17x, 5x5 from 16 and 8 1.05-1.32x, 3x3 from 32 and
      // 64 0.99-1.01x; 3x3 32 -> 16 at 32x32 batch 1 ran 0.58x on one task.
      const int64_t npan = Mt / MRt, NPQ = p.N * PQ;
      int64_t nrb = ceil_div(Mt, 4 * kMC);
      const int64_t tch = reduction_chunks(nch, G * nrb, NPQ);
      if (G * tch * nrb < num_threads()) nrb = ceil_div(Mt, kMC);
      if (tch > nch) out = gemm::scratch<float>(2, tch * KN);
      const int64_t total = G * tch * nrb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(G * M * Ncols * p.N * PQ / 8))
      for (int64_t t = 0; t < total; ++t) {
        const int64_t rb = t % nrb, chk = t / nrb % tch, g = t / (nrb * tch);
        int64_t pa0, pa1, u0, u1;  // (reduction indices n * PQ + pixel)
        split_range(npan, nrb, rb, pa0, pa1);
        chunk_range(chk, tch, nch, p.N, PQ, u0, u1);
        const int64_t m0 = pa0 * MRt, m1 = std::min(Ncols, pa1 * MRt);
        thread_local std::vector<const float*> rowp;
        rowp.resize(Mt);
        const float* dyn = nullptr;
        auto pa = [&](int64_t am0, int64_t, int64_t k0, int64_t, float*) {
          return gemm::ABlock<float>{nullptr, 0, rowp.data() + am0, pix.data() + k0};
        };
        auto pb = [&](int64_t, int64_t, int64_t t0, int64_t tc, float* dst) {
          for (int64_t jp = 0; jp < M; jp += 8) {
            const float* rows[8];
            for (int q = 0; q < 8; ++q) rows[q] = dyn + (g * M + jp + q) * dy.stride[1];
            avx2::transpose8_rows_float(rows, t0, tc, dst + (jp / NRt) * NRt * tc + jp % NRt, NRt);
          }
          if (const int64_t w = round_up(M, NRt) - M; w > 0) {  // (defined values)
            float* d = dst + (M / NRt) * NRt * tc + M % NRt;
            for (int64_t q = 0; q < tc; ++q, d += NRt) std::fill(d, d + w, 0.0f);
          }
        };
        const TransposedC<float> st{{}, out + chk * KN + g * M * Ncols, Ncols};
        for (int64_t n = u0 / PQ; n * PQ < u1; ++n) {
          const float* xg = xs.data + n * xs.stride[0] + g * Cg * xs.stride[1];
          for (int64_t i = m0; i < pa1 * MRt; ++i) rowp[i] = xg + tapoff[i];  // (its rows)
          dyn = dy.data + n * dy.stride[0];
          gemm::gemm_task<float>(tk, m0, m1, 0, M, std::max(u0 - n * PQ, int64_t(0)),
                                 std::min(u1 - n * PQ, PQ), pa, pb, st, n * PQ <= u0,
                                 (n + 1) * PQ >= u1);
        }
      }
      if (tch > 1) add_chunks(out, tch, KN, dw);
      return;
    }
#endif
  }
  // Row blocks (output channels) of up to kWgradRows, nearly equal, when there are 4
  // column panels or more and the columns leave the threads two tasks each: every row block
  // packs its B (the transposed input, 8 x 8 transposes) again. Against blocks of kMC
  // (old/new alternated, 2 threads): 1x1 2048 -> 512 at 7x7 batch 16 1.06-1.10x (15% of it
  // was those transposes), 512 -> 1024 1.05-1.18x, 256 -> 1024 at 14x14 1.08x, 128 -> 1024
  // at 32x32 1.07x, 3x3 256 -> 512 at 7x7 batch 1 1.21x; up to 144 outputs one block either
  // way. With 1-2 panels (4-32 columns) they lost (0.84-0.93x: grad_output, the larger
  // operand, is read once per column block), and so did the whole 2048 rows as one block.
  const int64_t cpan = ceil_div(Ncols, int64_t(uk.nr)), nt = num_threads();
  const int64_t mch =
      cpan < 4 ? ceil_div(M, kMC)
               : std::max(ceil_div(M, kWgradRows),
                          std::min(ceil_div(M, kMC), ceil_div(2 * nt, G * nch * cpan)));
  const int64_t mb = round_up(ceil_div(M, mch), int64_t(uk.mr));
  // Column blocks split for two tasks per thread, not four: every column block reads
  // grad_output's rows (in place) again, and the image chunks already make tasks (the 7x7
  // stem's 147 columns in one block instead of two: 1.06-1.09x).
  const int64_t nb = gemm::pick_nb(Ncols, G * mch * nch, uk.nr, 2), ncb = ceil_div(Ncols, nb);
  // A single task (one image, the AVX-512 tile's 32 columns holding a stem's 27 taps and 64
  // outputs in one row block) splits its pixels in two chunks: both threads work.
  const int64_t tch = reduction_chunks(nch, G * mch * ncb, p.N * PQ);
  if (tch > nch) out = gemm::scratch<T>(2, tch * KN);
  const int64_t total = G * tch * mch * ncb;
  const int MR = uk.mr, NR = uk.nr;
  // A: dy rows (output channels) of group g, reduction along (n, oh, ow).
  auto pack_a = [&](int64_t g, int64_t am0, int64_t mb, int64_t t0, int64_t tc,
                    T* dst) -> gemm::ABlock<T> {
    if (rows) {
      const int64_t n = t0 / PQ;
      return {dy.data + n * dy.stride[0] + (g * M + am0) * dy.stride[1] + (t0 - n * PQ),
              dy.stride[1]};
    }
    thread_local std::vector<Run> runs;
    build_runs(runs, t0, tc, p.P, p.Q);
    int64_t i = 0;
#if defined(PYCONV_X86)
    if constexpr (std::is_same_v<T, float>) {
      // A run's start in a grad_output channel's rows (unit-stride rows below).
      const auto dy_off = [&](const Run& rn) {
        return rn.n * dy.stride[0] + rn.oh * dy.stride[2] + rn.ow;
      };
      // Whole 8-row panels (AVX-512's tile) by 8x8 transposes of the runs; value by value,
      // the strided stores took 18% of DCGAN 256 -> 128's weight gradient (8x8 planes).
      // Runs that continue each other in grad_output (whole rows of contiguous planes)
      // go as one: 8x8 planes made 8-value runs, 10% of DCGAN 256 -> 128's transposed
      // weight gradient in as many transpose calls.
      if (MR == 8 && dy.stride[3] == 1 && active_isa() >= Isa::avx2)
        for (; i + 8 <= mb; i += 8) {
          const float* chans[8];
          for (int q = 0; q < 8; ++q) chans[q] = dy.data + (g * M + am0 + i + q) * dy.stride[1];
          merged_runs(runs, dy_off, [&](const Run& rn, int64_t len) {
            avx2::transpose8_rows_float(chans, dy_off(rn), len, dst + i * tc + rn.tt * 8, 8);
          });
        }
      // Whole 6-row panels (AVX2's tile) by pack6_rows_float, over each image's runs at
      // once (contiguous planes: its runs are one): value by value, the stores MR apart
      // took 15% of DCGAN 256 -> 128's transposed weight gradient (8x8 planes).
      if (MR == 6 && dy.stride[3] == 1 && dy.stride[2] == p.Q && active_isa() >= Isa::avx2)
        for (; i + 6 <= mb; i += 6) {
          merged_runs(runs, dy_off, [&](const Run& rn, int64_t len) {
            const float* chans[6];
            for (int q = 0; q < 6; ++q)
              chans[q] = dy.data + (g * M + am0 + i + q) * dy.stride[1] + dy_off(rn);
            avx2::pack6_rows_float(chans, len, dst + i * tc + rn.tt * 6);
          });
        }
    }
#endif
    for (; i < round_up(mb, MR); ++i) {
      T* d = dst + (i / MR) * MR * tc + i % MR;
      if (i >= mb) {
        for (int64_t q = 0; q < tc; ++q) d[q * MR] = T(0);
        continue;
      }
      const T* chp = dy.data + (g * M + am0 + i) * dy.stride[1];
      for (const Run& rn : runs) {
        const T* s = chp + rn.n * dy.stride[0] + rn.oh * dy.stride[2] + rn.ow * dy.stride[3];
        T* dd = d + rn.tt * MR;
        for (int64_t l = 0; l < rn.len; ++l) dd[l * MR] = s[l * dy.stride[3]];
      }
    }
    return {dst, 0};
  };
  // With several column blocks and one chunk, A (grad_output transposed into panels) is
  // packed once for all of them, into the calling thread's scratch, instead of once per
  // column block: four column blocks of 1x1 832 -> 384 at 7x7, batch 128, transposed its
  // 9.6 MB four times (12% of the call). (Planes of 128 pixels and more read A in place.)
  const int64_t Mpad = round_up(M, int64_t(MR)), NPQ = p.N * PQ;
  const bool prepack = !rows && tch == 1 && ncb > 1 &&
                       G * Mpad * NPQ * int64_t(sizeof(T)) <= (int64_t(64) << 20);
  T* apre = prepack ? gemm::scratch<T>(2, G * Mpad * NPQ) : nullptr;  // (out is dw: tch == 1)
  // Group g's reduction block from k0 (all Mpad rows, its MR-row panels kc values long each).
  const auto pre_block = [&](int64_t g, int64_t k0) { return apre + (g * NPQ + k0) * Mpad; };
  if (prepack) {
    const gemm::KBlocks kb(NPQ);
    parallel_tasks(G * kb.nb, threads_for(G * Mpad * NPQ), [&](int64_t t) {
      const int64_t g = t / kb.nb, k0 = kb.begin(t % kb.nb);
      pack_a(g, 0, M, k0, kb.size(t % kb.nb), pre_block(g, k0));
    });
  }
  parallel_tasks(total, threads_for(G * M * Ncols * p.N * PQ / 8), [&](int64_t t) {
    const int64_t ci = t % ncb, mi = t / ncb % mch, chk = t / (ncb * mch) % tch,
                  g = t / (ncb * mch * tch);
    const int64_t m0 = mi * mb, m1 = std::min(M, m0 + mb);
    const int64_t j0 = ci * nb, j1 = std::min(Ncols, j0 + nb);
    int64_t u0, u1;
    chunk_range(chk, tch, nch, p.N, PQ, u0, u1);
    auto pa = [&](int64_t am0, int64_t mb, int64_t t0, int64_t tc, T* dst) -> gemm::ABlock<T> {
      if (apre) return {pre_block(g, t0) + am0 * tc, 0};  // (am0: whole panels)
      return pack_a(g, am0, mb, t0, tc, dst);
    };
    // B: x (zero-padded, unit stride along W) gathered for columns (c, r, s),
    // reduction along (n, oh, ow): a transpose, done 8x8 (AVX2) or 4x4 at a time for fp32.
    auto pb = [&](int64_t bj0, int64_t bnb, int64_t t0, int64_t tc, T* dst) {
      thread_local std::vector<Run> runs;
      build_runs(runs, t0, tc, p.P, p.Q);
      auto tap = [&](int64_t j) {
        const int64_t c = j / RS, rs = j % RS, r = rs / S, s = rs % S;
        return xs.data + (g * Cg + c) * xs.stride[1] + offh[r] * xs.stride[2] + offw[s] * xs3;
      };
      int64_t jp = 0;
#if defined(PYCONV_X86)
      if constexpr (std::is_same_v<T, float>) {
        // Groups of 8 columns; a last group of fewer repeats its last column in the rest:
        // a panel's columns past bnb only feed tile columns that are never stored, so
        // they need not be zero (zeroing them was a strided pass over the panel, and the
        // last 1-7 columns went through the scalar loop).
        if (cs == 1 && active_isa() >= Isa::avx2)
          for (; jp < bnb && (jp % NR) + 8 <= NR; jp += 8) {
            const float* tp[8];
            for (int q = 0; q < 8; ++q) tp[q] = tap(bj0 + std::min(jp + q, bnb - 1));
            float* d = dst + (jp / NR) * NR * tc + jp % NR;
            for (const Run& rn : runs)
              avx2::transpose8_rows_float(
                  tp, rn.n * xs.stride[0] + rn.oh * sh * xs.stride[2] + rn.ow, rn.len,
                  d + rn.tt * NR, NR);
          }
      }
#endif
#if defined(__SSE__)
      if constexpr (std::is_same_v<T, float>) {
        if (cs == 1)
          for (; jp + 4 <= bnb && (jp % NR) + 4 <= NR; jp += 4) {
            const float* tp[4] = {tap(bj0 + jp), tap(bj0 + jp + 1), tap(bj0 + jp + 2),
                                  tap(bj0 + jp + 3)};
            float* d = dst + (jp / NR) * NR * tc + jp % NR;
            for (const Run& rn : runs) {
              const int64_t o = rn.n * xs.stride[0] + rn.oh * sh * xs.stride[2] + rn.ow;
              float* dd = d + rn.tt * NR;
              int64_t l = 0;
              for (; l + 4 <= rn.len; l += 4) {
                __m128 r0 = _mm_loadu_ps(tp[0] + o + l), r1 = _mm_loadu_ps(tp[1] + o + l);
                __m128 r2 = _mm_loadu_ps(tp[2] + o + l), r3 = _mm_loadu_ps(tp[3] + o + l);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _mm_storeu_ps(dd + (l + 0) * NR, r0);
                _mm_storeu_ps(dd + (l + 1) * NR, r1);
                _mm_storeu_ps(dd + (l + 2) * NR, r2);
                _mm_storeu_ps(dd + (l + 3) * NR, r3);
              }
              for (; l < rn.len; ++l)
                for (int q = 0; q < 4; ++q) dd[l * NR + q] = tp[q][o + l];
            }
          }
      }
#endif
      for (; jp < bnb; ++jp) {
        T* d = dst + (jp / NR) * NR * tc + jp % NR;
        const T* tp = tap(bj0 + jp);
        for (const Run& rn : runs) {
          const T* sp = tp + rn.n * xs.stride[0] + rn.oh * sh * xs.stride[2] + rn.ow * cs;
          T* dd = d + rn.tt * NR;
          for (int64_t l = 0; l < rn.len; ++l) dd[l * NR] = sp[l * cs];
        }
      }
      // Defined values in the last panel's unused columns [jp, round_up(bnb, NR)), a
      // contiguous piece of each of its rows (column by column, the strided zero stores
      // took 10% of CIFAR-10 conv1's weight gradient: 75 columns in panels of 32).
      if (const int64_t w = round_up(bnb, NR) - jp; w > 0) {
        T* d = dst + (jp / NR) * NR * tc + jp % NR;
        for (int64_t q = 0; q < tc; ++q, d += NR) std::fill(d, d + w, T(0));
      }
    };
    GridC<T> st{out + chk * KN + g * M * Ncols, nullptr, Ncols, 0, 0, 1, 0, 1, Ncols,
                nullptr, Activation{}, NR};
    if (rows) {  // (image by image: an A block's rows lie in one image's planes)
      for (int64_t n = u0 / PQ; n * PQ < u1; ++n)
        gemm::gemm_task<T>(uk, m0, m1, j0, j1, std::max(u0, n * PQ), std::min(u1, (n + 1) * PQ),
                           pa, pb, st, n * PQ <= u0, (n + 1) * PQ >= u1);
    } else {
      gemm::gemm_task<T>(uk, m0, m1, j0, j1, u0, u1, pa, pb, st);
    }
  });
  if (tch > 1) add_chunks(out, tch, KN, dw);
}

#define PYCONV_INSTANTIATE(T)                                                                  \
  template void conv2d_forward_gemm<T>(const ConvParams&, View4<const T>, View4<const T>,      \
                                       const T*, Activation, T*, T*, bool, int64_t);           \
  template void conv2d_backward_data_gemm<T>(const ConvParams&, View4<const T>, View4<const T>, \
                                             T*);                                              \
  template void conv2d_backward_weight_gemm<T>(const ConvParams&, View4<const T>,              \
                                               View4<const T>, T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

void set_pixel_rows_mode(KernelMode m) { g_pixel_rows.store(static_cast<int>(m)); }
void set_tap_skip_mode(KernelMode m) { g_tap_skip.store(static_cast<int>(m)); }
int64_t taps_skipped() { return g_taps_skipped.load(); }

}  // namespace pyconv::fast
