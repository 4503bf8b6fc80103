// Winograd F(2x2, 3x3) for stride-1, undilated, ungrouped convolutions with 2..7-tap
// kernels (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016);
// kernels larger than 3x3 as a sum of 3x3 pieces (see pieces() below).
//
// Each 2x2 output tile is A^T [ U (.) V ] A, with U = G g G^T the 4x4 transform
// of a 3x3 filter and V = B^T d B that of the 4x4 input tile d under it: 16
// multiplies per (input, output) channel pair and tile instead of 36. Summed
// over input channels, the 16 elementwise products are 16 independent GEMMs,
//   M[xi] (K x T) = U[xi] (K x C) * V[xi] (C x T),   xi = 0..15, T = tiles,
// which run on the packed GEMM core (gemm_driver.h). The transforms have entries
// 0, +-1 and +-1/2, so float32 keeps its accuracy (F(4x4, 3x3) would not: PERF.md).
//
// Backward-data of such a convolution is the same computation on grad_output
// with the filter flipped and its channel axes swapped, so both share run().
//
// Each thread runs the whole pipeline (input transform, 16 GEMMs, output
// transform) on one block of tiles at a time, sized so the block's transformed
// input and products stay in its L2 cache; only the transformed filter is shared.
// Every step is elementwise or a GEMM whose reduction blocking depends on C only:
// results are bitwise identical for any thread count.
#include <algorithm>
#include <atomic>
#include <type_traits>
#include <vector>

#include "common/activation_scalar.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "gemm/gemm_driver.h"

#if defined(PYCONV_X86)
namespace pyconv::avx2 {
#define PYCONV_WINO_DECLARE(T)                                                            \
  void wino_in_row_##T(const void*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*); \
  bool wino_in_row_pair_##T(const void*, const T*, int64_t, const T*, int64_t, int64_t,   \
                            int64_t, T*);                                                \
  bool wino_out_row_##T(const void*, const T*, int64_t, int64_t, int64_t, T, bool, T*, T*); \
  void wino_grad_row_##T(const void*, const T*, int64_t, int64_t, int64_t, T*);              \
  bool wino_grad_row_pair_##T(const void*, const T*, const T*, int64_t, T*);
PYCONV_WINO_DECLARE(float)
PYCONV_WINO_DECLARE(double)
#undef PYCONV_WINO_DECLARE
// dst[l*ldd + q] = rows[q][off + l] for q < 8, l < len (pack_avx2.cpp).
void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd);
}  // namespace pyconv::avx2
#endif

namespace pyconv::fast {

using gemm::ceil_div;
using gemm::kMC;
using gemm::round_up;
using gemm::UKernel;

namespace {

#include "conv/winograd_rows.h"

std::atomic<int> g_mode{static_cast<int>(WinogradMode::auto_)};

// Per-thread budget for a block's transformed input (16*C per tile) and products
// (16*K per tile): most of Zen 3's 512 KiB L2.
constexpr int64_t kBlockBytes = int64_t(384) << 10;
// Tile rows are transformed through stack buffers of this many tiles (+1).
constexpr int64_t kMaxTileRow = PYCONV_WINO_MAXROW;
// Below this many channels on either side the transforms outweigh the saved multiplies.
constexpr int64_t kMinChannels = 32;
// Below this many tiles the blocks are too few and narrow (one 512-channel 7x7 image: 16).
constexpr int64_t kMinTiles = 128;
// 5x5 (four pieces, each a transform of its own) pays off from rows of 4 tiles up.
constexpr int64_t kMinRow5 = 7;

// An R x S stride-1 correlation: result (N, K, P, Q) from source (N, C, H, W); result
// (p, q) reads source rows p - pt + r and columns q - pl + s (zero outside).
// Filter element (k, c, r, s) is at w + k*wk + c*wc + r*wr + s*ws.
template <typename T>
struct Problem {
  int64_t N, C, H, W, K, P, Q, pt, pl, R, S;
  const T* w;
  int64_t wk, wc, wr, ws;
};

// A kernel larger than 3 taps is cut into 3-tap pieces at even offsets 0, 2, 4, ...
// (tap 2i is in piece i only; taps past the kernel are zero): a 5x5 filter is four
// 3x3 pieces, 16 multiplies per output instead of 25. A piece at offset (2a, 2b) is
// the 3x3 problem on the source shifted by (2a, 2b): its tiles line up with the
// output's, so the pieces just add reduction rows (piece-major, then channel).
inline int64_t pieces(int64_t R) { return R <= 3 ? 1 : R / 2; }

// U[xi] = (G g G^T)[xi] for every (k, piece, c), packed as the GEMM's A operand over
// the reduction kk = piece*C + c: MR-row panels per reduction block, block (m0, k0, kc)
// of xi at u + xi*ps + Mpad*k0 + (m0/MR)*MR*kc (the layout of conv_gemm.cpp's
// prepack_a). Rows past K are zero.
template <typename T>
void transform_filter(const Problem<T>& pr, int MR, T* u, int64_t ps) {
  const int64_t K = pr.K, C = pr.C, Mpad = round_up(K, MR), npan = Mpad / MR;
  const int64_t nph = pieces(pr.R), npw = pieces(pr.S), Kd = nph * npw * C;
  const gemm::KBlocks kb(Kd);
  // By panels of MR filters: for each kk, MR consecutive values per plane xi.
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t pan = 0; pan < npan; ++pan) {
    int64_t blk = 0;
    for (int64_t kk = 0; kk < Kd; ++kk) {
      if (kk >= kb.begin(blk) + kb.size(blk)) ++blk;
      const int64_t k0 = kb.begin(blk), kc = kb.size(blk);
      const int64_t c = kk % C, ph = kk / C / npw, pw = kk / C % npw;
      // The piece's taps: rows 2ph + r (r = 0 belongs to the previous piece when ph > 0).
      bool rok[3], sok[3];
      for (int i = 0; i < 3; ++i) {
        rok[i] = (i > 0 || ph == 0) && 2 * ph + i < pr.R;
        sok[i] = (i > 0 || pw == 0) && 2 * pw + i < pr.S;
      }
      T* d = u + Mpad * k0 + pan * MR * kc + (kk - k0) * MR;
      for (int i = 0; i < MR; ++i, ++d) {  // (stores, not a copy loop gcc makes a memcpy call of)
        const int64_t k = pan * MR + i;
        if (k >= K) {
          for (int xi = 0; xi < 16; ++xi) d[xi * ps] = T(0);
          continue;
        }
        const T* g = pr.w + k * pr.wk + c * pr.wc + 2 * ph * pr.wr + 2 * pw * pr.ws;
        auto tap = [&](int r, int s_) {
          return rok[r] && sok[s_] ? g[r * pr.wr + s_ * pr.ws] : T(0);
        };
        T gg[4][3];  // G g
        for (int s_ = 0; s_ < 3; ++s_) {
          const T g0 = tap(0, s_), g1 = tap(1, s_), g2 = tap(2, s_);
          gg[0][s_] = g0;
          gg[1][s_] = T(0.5) * (g0 + g1 + g2);
          gg[2][s_] = T(0.5) * (g0 - g1 + g2);
          gg[3][s_] = g2;
        }
        for (int a = 0; a < 4; ++a) {  // (G g) G^T
          d[(a * 4 + 0) * ps] = gg[a][0];
          d[(a * 4 + 1) * ps] = T(0.5) * (gg[a][0] + gg[a][1] + gg[a][2]);
          d[(a * 4 + 2) * ps] = T(0.5) * (gg[a][0] - gg[a][1] + gg[a][2]);
          d[(a * 4 + 3) * ps] = gg[a][2];
        }
      }
    }
  }
}

// Row transforms of the active ISA (winograd_rows.h).
template <typename T>
struct Rows {
  void (*in)(const void*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*);
  bool (*in_pair)(const void*, const T*, int64_t, const T*, int64_t, int64_t, int64_t, T*);
  bool (*out)(const void*, const T*, int64_t, int64_t, int64_t, T, bool, T*, T*);
  void (*grad)(const void*, const T*, int64_t, int64_t, int64_t, T*);
  bool (*grad_pair)(const void*, const T*, const T*, int64_t, T*);
};

template <typename T>
void in_base(const void* g, const T* plane, int64_t ty, int64_t qa, int64_t qb, int64_t t0,
             int64_t kc, T* vc) {
  wino_in_row<T>(*static_cast<const WinoIn*>(g), plane, ty, qa, qb, t0, kc, vc);
}
template <typename T>
bool in_pair_base(const void* g, const T* pa, int64_t tya, const T* pb, int64_t tyb, int64_t t0,
                  int64_t kc, T* vc) {
  return wino_in_row_pair<T>(*static_cast<const WinoIn*>(g), pa, tya, pb, tyb, t0, kc, vc);
}
template <typename T>
bool out_base(const void* g, const T* m, int64_t ty, int64_t qa, int64_t qb, T b, bool relu,
              T* y, T* z) {
  return wino_out_row<T>(*static_cast<const WinoOut*>(g), m, ty, qa, qb, b, relu, y, z);
}

template <typename T>
void grad_base(const void* g, const T* plane, int64_t ty, int64_t qa, int64_t qb, T* m) {
  wino_grad_row<T>(*static_cast<const WinoGrad*>(g), plane, ty, qa, qb, m);
}
template <typename T>
bool grad_pair_base(const void* g, const T* pa, const T* pb, int64_t ty, T* m) {
  return wino_grad_row_pair<T>(*static_cast<const WinoGrad*>(g), pa, pb, ty, m);
}

template <typename T>
Rows<T> rows_for_isa() {
#if defined(PYCONV_X86)
  if (active_isa() >= Isa::avx2) {
    if constexpr (std::is_same_v<T, float>)
      return {avx2::wino_in_row_float, avx2::wino_in_row_pair_float, avx2::wino_out_row_float,
              avx2::wino_grad_row_float, avx2::wino_grad_row_pair_float};
    else
      return {avx2::wino_in_row_double, avx2::wino_in_row_pair_double,
              avx2::wino_out_row_double, avx2::wino_grad_row_double,
              avx2::wino_grad_row_pair_double};
  }
#endif
  return {in_base<T>, in_pair_base<T>, out_base<T>, grad_base<T>, grad_pair_base<T>};
}

// Store of the products: a dense K x ncol matrix per xi.
template <typename T>
struct DenseC {
  T* c;
  int64_t ld, ncol;
  int NR;
  T* direct(int64_t m0, int64_t j0, int64_t& ldc) const {
    if (j0 + NR > ncol) return nullptr;
    ldc = ld;
    return c + m0 * ld + j0;
  }
  bool register_epilogue(int64_t, const T*&, bool&) const { return false; }
  void finish(int64_t, int64_t, int64_t, int64_t) const {}
  void operator()(int64_t m0, int64_t mv, int64_t j0, int64_t nv, const T* tile, int64_t ldt,
                  bool first, bool) const {
    for (int64_t i = 0; i < mv; ++i) {
      T* d = c + (m0 + i) * ld + j0;
      const T* s = tile + i * ldt;
      if (first)
        for (int64_t q = 0; q < nv; ++q) d[q] = s[q];
      else
        for (int64_t q = 0; q < nv; ++q) d[q] += s[q];
    }
  }
};

// Columns [t0, t0 + tc) of src (K rows, row k at src + k*ld) transposed into the B panels
// of one reduction block: (column t, row k) to dst[(k/NR)*NR*tc + (t - t0)*NR + k%NR];
// rows past K are zero.
template <typename T>
void pack_columns(const T* src, int64_t ld, int64_t K, int64_t t0, int64_t tc, int NR, T* dst) {
  for (int64_t k = 0; k < round_up(K, NR); k += 8) {
    T* d = dst + (k / NR) * NR * tc + k % NR;
    const int64_t kv = std::min<int64_t>(8, std::max<int64_t>(K - k, 0));
#if defined(PYCONV_X86)
    if constexpr (std::is_same_v<T, float>) {
      if (kv == 8 && NR % 8 == 0 && active_isa() >= Isa::avx2) {
        const float* rows[8];
        for (int q = 0; q < 8; ++q) rows[q] = src + (k + q) * ld;
        avx2::transpose8_rows_float(rows, t0, tc, d, NR);
        continue;
      }
    }
#endif
    const int64_t w = std::min<int64_t>(8, NR - k % NR);
    for (int64_t t = 0; t < tc; ++t)
      for (int64_t q = 0; q < w; ++q) d[t * NR + q] = q < kv ? src[(k + q) * ld + t0 + t] : T(0);
  }
}

// The tiles [T0, T1) of a block as pieces of tile rows: row r = n*TP + ty, tiles
// [qa, qb) of it, at block column col.
struct Piece {
  int64_t r, qa, qb, col;
};

void segments(int64_t T0, int64_t T1, int64_t TQ, std::vector<Piece>& pcs) {
  pcs.clear();
  for (int64_t t = T0; t < T1;) {
    const int64_t r = t / TQ, qa = t % TQ, qb = std::min(TQ, qa + (T1 - t));
    pcs.push_back({r, qa, qb, t - T0});
    t += qb - qa;
  }
}

// The input transform of channel c of every tile of a block (pieces pcs) under g, tile at
// block column t to column t of the panels at vc (of width g.NR, reduction block length kc).
template <typename T>
void transform_input_row(const Rows<T>& rw, const WinoIn& g, View4<const T> src, int64_t c,
                         int64_t TP, int64_t TQ, const std::vector<Piece>& pcs, int64_t kc,
                         T* vc) {
  auto plane = [&](const Piece& pc) {
    return src.data + pc.r / TP * src.stride[0] + c * src.stride[1];
  };
  for (size_t i = 0; i < pcs.size(); ++i) {
    const Piece& pc = pcs[i];
    // Rows of 4 tiles go two at a time (one 8-tile vector).
    if (TQ == 4 && i + 1 < pcs.size() && pc.qb - pc.qa == 4 &&
        pcs[i + 1].qb - pcs[i + 1].qa == 4 &&
        rw.in_pair(&g, plane(pc), pc.r % TP, plane(pcs[i + 1]), pcs[i + 1].r % TP, pc.col, kc,
                   vc)) {
      ++i;
      continue;
    }
    rw.in(&g, plane(pc), pc.r % TP, pc.qa, pc.qb, pc.col, kc, vc);
  }
}

// Returns false when some output is not finite: an inf or NaN in the input or filter
// (or an overflow in a transform) spreads over whole tiles in Winograd's arithmetic,
// where the direct sum confines it to the outputs that read it; the caller then
// recomputes with the GEMM, so non-finite values land where torch puts them.
template <typename T>
bool run(const Problem<T>& pr, View4<const T> src, const T* bias, Activation act, T* y,
         T* preact) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  const Rows<T> rw = rows_for_isa<T>();
  const int MR = uk.mr, NR = uk.nr;
  const int64_t C = pr.C, K = pr.K, Mpad = round_up(K, MR), P = pr.P, Q = pr.Q;
  const int64_t TP = ceil_div(P, 2), TQ = ceil_div(Q, 2), ntile = pr.N * TP * TQ;
  const int64_t npw = pieces(pr.S), npc = pieces(pr.R) * npw, Kd = npc * C;
  // Planes xi 64 bytes apart modulo 4 KiB: the transforms stream 16 of them at once,
  // which at a multiple of 4 KiB would all map to the same L1 set.
  auto plane = [](int64_t n) {
    return round_up(n, 4096 / int64_t(sizeof(T))) + 64 / int64_t(sizeof(T));
  };
  const int64_t psu = plane(Mpad * Kd);
  T* u = gemm::scratch<T>(2, 16 * psu);
  transform_filter(pr, MR, u, psu);
  // Tiles per block: what fits the budget, at least two panels, and at least two
  // blocks per thread when there are enough tiles.
  const int64_t per_tile = 16 * (Kd + K) * static_cast<int64_t>(sizeof(T));
  int64_t tb = std::max<int64_t>(kBlockBytes / per_tile, 2 * NR);
  tb = std::min(tb, std::max<int64_t>(ceil_div(ntile, 2 * num_threads()), 2 * NR));
  tb = round_up(tb, NR);
  const int64_t nblk = ceil_div(ntile, tb);
  const int64_t psv = plane(Kd * tb), psm = plane(K * tb);
  const gemm::KBlocks kb(Kd);
  std::vector<WinoIn> gi;  // per piece: the source shifted by the piece's offset
  for (int64_t pc = 0; pc < npc; ++pc)
    gi.push_back({pr.H, pr.W, pr.pt - 2 * (pc / npw), pr.pl - 2 * (pc % npw), src.stride[2],
                  src.stride[3], NR, psv});
  const WinoOut go{P, Q, psm};
  const bool relu = act.kind == ActKind::relu, other = !relu && act.kind != ActKind::none;
  const T prm = static_cast<T>(act.param);
  bool finite = true;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads()) reduction(&& : finite)
  for (int64_t blk = 0; blk < nblk; ++blk) {
    T* v = gemm::scratch<T>(3, 16 * psv);
    T* mprod = gemm::scratch<T>(5, 16 * psm);
    const int64_t T0 = blk * tb, T1 = std::min(ntile, T0 + tb), tc = T1 - T0;
    thread_local std::vector<Piece> pcs;
    segments(T0, T1, TQ, pcs);
    // Input transform, row kk = (piece, channel) after row (consecutive rows of the
    // same panels).
    int64_t cb = 0;
    for (int64_t kk = 0; kk < Kd; ++kk) {
      if (kk >= kb.begin(cb) + kb.size(cb)) ++cb;
      const int64_t k0 = kb.begin(cb), kc = kb.size(cb);
      T* vc = v + tb * k0 + (kk - k0) * NR;
      transform_input_row(rw, gi[kk / C], src, kk % C, TP, TQ, pcs, kc, vc);
      if (tc < tb) {  // columns past the last tile: zero
        T* d = vc + (tc / NR) * NR * kc + tc % NR;
        const int64_t nz = round_up(tc, NR) - tc;
        for (int xi = 0; xi < 16; ++xi)
          for (int64_t q = 0; q < nz; ++q) d[xi * psv + q] = T(0);
      }
    }
    // M[xi] (K x tc) = U[xi] V[xi].
    for (int xi = 0; xi < 16; ++xi) {
      const T* vx = v + xi * psv;
      const T* ux = u + xi * psu;
      auto pa = [&](int64_t am0, int64_t, int64_t k0, int64_t kc, T*) {
        return gemm::ABlock<T>{ux + Mpad * k0 + (am0 / MR) * MR * kc, 0};
      };
      auto pb = [&](int64_t bj0, int64_t, int64_t k0, int64_t kc, T*) -> const T* {
        return vx + tb * k0 + (bj0 / NR) * NR * kc;
      };
      DenseC<T> st{mprod + xi * psm, tb, tc, NR};
      for (int64_t m0 = 0; m0 < K; m0 += kMC)
        gemm::gemm_task<T>(uk, m0, std::min(K, m0 + kMC), 0, tc, 0, Kd, pa, pb, st);
    }
    // Output transform, bias and activation.
    for (int64_t k = 0; k < K; ++k)
      for (const Piece& pc : pcs) {
        const int64_t n = pc.r / TP, ty = pc.r % TP, o = (n * K + k) * P * Q;
        finite &= rw.out(&go, mprod + k * tb + pc.col, ty, pc.qa, pc.qb,
                         bias ? bias[k] : T(0), relu, y + o, preact ? preact + o : nullptr);
        if (other) {
          const int64_t x0 = 2 * pc.qa, x1 = std::min(Q, 2 * pc.qb);
          for (int64_t oy = 2 * ty; oy < std::min(P, 2 * ty + 2); ++oy) {
            T* yr = y + o + oy * Q;
            for (int64_t x = x0; x < x1; ++x) yr[x] = activate(act.kind, prm, yr[x]);
          }
        }
      }
  }
  return finite;
}

// Blocks of the weight gradient (run_weight): about one reduction block of tiles each,
// NB whole images, or bands of `band` tile rows of one image.
struct WeightBlocks {
  int64_t NB, band, nbands, nblk;
  WeightBlocks(int64_t N, int64_t TP, int64_t TQ) {
    NB = std::max<int64_t>(1, std::min(N, gemm::kKC / std::max<int64_t>(1, TP * TQ)));
    band = NB > 1 ? TP : std::min(TP, ceil_div(gemm::kKC, TQ));
    nbands = ceil_div(TP, band);
    nblk = ceil_div(N, NB) * nbands;
  }
};

// The weight gradient, dg = G^T [ sum_t (A dY_t A^T) (.) V_t ] G per (filter, channel,
// piece), over every tile t: per xi and piece the GEMM
//   dU[xi] (C x K) = V[xi] (C x T) * dM[xi]^T (T x K),   dM = A dY A^T,
// with V read in place as rows (the input transform's lanes are tiles) and dM packed as
// the B panels.
//
// A block is NB whole images (or, for large images, one image's band of tile rows) laid
// out row-interleaved: tile (image i, tile row ty, column q) at position ((ty - ty0)*NB + i)
// * TQ + q. The piece at offset (2a, 2b) reads the source 2a rows lower, i.e. the same
// transform a tile rows further on: position + a*NB*TQ. So only the npw column offsets are
// transformed, over the band's rows plus nph - 1 more (a 5x5 filter: 2.25 transforms per
// tile and channel instead of 4), and the reduction runs over the real tiles alone.
//
// Blocks depend on the shape only, and fall into a fixed, shape-only number of chunks
// whose partial sums are added in chunk order: results are bitwise the same for any
// thread count. dw is (K, C, R, S), contiguous. Returns false when some gradient is not
// finite (see run()).
template <typename T>
bool run_weight(const ConvParams& p, View4<const T> x, View4<const T> dy, T* dw) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  const Rows<T> rw = rows_for_isa<T>();
  const int NR = uk.nr;
  const int64_t C = p.C, K = p.K, Kpad = round_up(K, NR), P = p.P, Q = p.Q;
  const int64_t TP = ceil_div(P, 2), TQ = ceil_div(Q, 2), N = p.N;
  // Channels padded to whole MR-row panels with zero rows of V: a piece's ragged last rows
  // would otherwise be copied out of place for every block and piece.
  const int64_t Cp = round_up(C, uk.mr);
  const int64_t nph = pieces(p.R), npw = pieces(p.S), npc = nph * npw, Kd = npc * Cp;
  auto plane = [](int64_t n) {  // as in run(): planes 64 bytes apart modulo 4 KiB
    return round_up(n, 4096 / int64_t(sizeof(T))) + 64 / int64_t(sizeof(T));
  };
  const WeightBlocks wb(N, TP, TQ);
  const int64_t NB = wb.NB, band = wb.band, nbands = wb.nbands, nblk = wb.nblk;
  const int64_t pos = (band + nph - 1) * NB * TQ;  // positions of a block, extra rows included
  const int64_t ldv = round_up(pos, 8) + 64 / int64_t(sizeof(T));  // not 4 KiB apart
  const int64_t psv = plane(npw * Cp * ldv), psm = plane(K * ldv), psp = plane(Kpad * pos);
  const int64_t psu = Kd * Kpad;  // a chunk's partial sums: dU[xi] dense, row kk, column k
  int64_t nch = std::min<int64_t>(nblk, 8);
  while (nch > 1 && nch * 16 * psu * static_cast<int64_t>(sizeof(T)) > (int64_t(64) << 20)) --nch;
  T* part = gemm::scratch<T>(2, nch * 16 * psu);
  std::vector<WinoIn> gi;  // per column offset b: the source shifted by 2b columns
  for (int64_t b = 0; b < npw; ++b)
    gi.push_back({p.H, p.W, p.pad_top, p.pad_left - 2 * b, x.stride[2], x.stride[3],
                  int64_t(1) << 40, psv});  // one panel: dense rows
  const WinoGrad gg{P, Q, dy.stride[2], dy.stride[3], psm};
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
  for (int64_t ch = 0; ch < nch; ++ch) {
    T* v = gemm::scratch<T>(3, 16 * psv);
    T* dm = gemm::scratch<T>(5, 16 * psm);
    T* dmp = gemm::scratch<T>(6, 16 * psp);
    T* dU = part + ch * 16 * psu;
    for (int xi = 0; xi < 16; ++xi)
      for (int64_t b = 0; b < npw; ++b)
        std::fill_n(v + xi * psv + (b * Cp + C) * ldv, (Cp - C) * ldv, T(0));
    int64_t b0, b1;
    split_range(nblk, nch, ch, b0, b1);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk / nbands * NB, nb = std::min(NB, N - n0);
      const int64_t ty0 = blk % nbands * band, ty1 = std::min(TP, ty0 + band);
      const int64_t rows = ty1 - ty0 + nph - 1, len = (ty1 - ty0) * nb * TQ;
      auto col = [&](int64_t ty, int64_t i) { return ((ty - ty0) * nb + i) * TQ; };
      // V_b[xi]: row b*C + c, positions along the row.
      for (int64_t b = 0; b < npw; ++b)
        for (int64_t c = 0; c < C; ++c) {
          T* vr = v + (b * Cp + c) * ldv;
          auto src = [&](int64_t i) { return x.data + (n0 + i) * x.stride[0] + c * x.stride[1]; };
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < nb; ++i) {
              const int64_t ty = ty0 + r, t0 = col(ty, i);
              // Rows of 4 tiles go two at a time (one 8-tile vector).
              if (TQ == 4 && i + 1 < nb &&
                  rw.in_pair(&gi[b], src(i), ty, src(i + 1), ty, t0, 1, vr)) {
                ++i;
                continue;
              }
              rw.in(&gi[b], src(i), ty, 0, TQ, t0, 1, vr);
            }
        }
      // dM[xi]: row k, real positions only; then packed as NR-column panels per reduction
      // block (column k, reduction index = position).
      for (int64_t k = 0; k < K; ++k) {
        auto dyp = [&](int64_t i) { return dy.data + (n0 + i) * dy.stride[0] + k * dy.stride[1]; };
        for (int64_t ty = ty0; ty < ty1; ++ty)
          for (int64_t i = 0; i < nb; ++i) {
            T* d = dm + k * ldv + col(ty, i);
            if (TQ == 4 && i + 1 < nb && rw.grad_pair(&gg, dyp(i), dyp(i + 1), ty, d)) {
              ++i;  // rows of 4 tiles, two at a time
              continue;
            }
            rw.grad(&gg, dyp(i), ty, 0, TQ, d);
          }
      }
      const gemm::KBlocks kb(len);
      for (int xi = 0; xi < 16; ++xi)
        for (int64_t q = 0; q < kb.nb; ++q)
          pack_columns(dm + xi * psm, ldv, K, kb.begin(q), kb.size(q), NR,
                       dmp + xi * psp + Kpad * kb.begin(q));
      for (int xi = 0; xi < 16; ++xi) {
        const T* px = dmp + xi * psp;
        auto pb = [&](int64_t bj0, int64_t, int64_t t0, int64_t kc, T*) -> const T* {
          return px + Kpad * t0 + (bj0 / NR) * NR * kc;
        };
        DenseC<T> st{dU + xi * psu, Kpad, K, NR};
        for (int64_t pc = 0; pc < npc; ++pc) {
          // Piece (a, b): rows c of V_b, a tile rows on (GEMM row pc*Cp + c).
          const T* va = v + xi * psv + (pc % npw) * Cp * ldv + (pc / npw) * nb * TQ;
          auto pa = [&](int64_t am0, int64_t, int64_t t0, int64_t, T*) {
            return gemm::ABlock<T>{va + (am0 - pc * Cp) * ldv + t0, ldv};
          };
          for (int64_t m0 = 0; m0 < Cp; m0 += kMC)
            gemm::gemm_task<T>(uk, pc * Cp + m0, pc * Cp + std::min(Cp, m0 + kMC), 0, K, 0, len,
                               pa, pb, st, blk == b0, true);
        }
      }
    }
  }
  // dU summed over chunks (in order), then dg = G^T dU G for every (piece, channel, filter).
  bool finite = true;
#pragma omp parallel for schedule(static) num_threads(num_threads()) reduction(&& : finite)
  for (int64_t kk = 0; kk < Kd; ++kk) {
    const int64_t c = kk % Cp, ph = kk / Cp / npw, pw = kk / Cp % npw;
    if (c >= C) continue;  // a padding row
    thread_local std::vector<T> acc;
    acc.assign(static_cast<size_t>(16 * K), T(0));
    for (int64_t ch = 0; ch < nch; ++ch)
      for (int xi = 0; xi < 16; ++xi) {
        const T* src = part + ch * 16 * psu + xi * psu + kk * Kpad;
        T* a = acc.data() + xi * K;
        for (int64_t k = 0; k < K; ++k) a[k] += src[k];
      }
    for (int64_t k = 0; k < K; ++k) {
      T u[4][4], h[3][4];
      for (int xi = 0; xi < 16; ++xi) u[xi / 4][xi % 4] = acc[xi * K + k];
      for (int j = 0; j < 4; ++j) {  // G^T u: rows u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3
        h[0][j] = u[0][j] + T(0.5) * (u[1][j] + u[2][j]);
        h[1][j] = T(0.5) * (u[1][j] - u[2][j]);
        h[2][j] = T(0.5) * (u[1][j] + u[2][j]) + u[3][j];
      }
      for (int r = 0; r < 3; ++r) {
        const int64_t rr = 2 * ph + r;
        if ((r == 0 && ph > 0) || rr >= p.R) continue;  // tap of the previous piece / none
        const T g3[3] = {h[r][0] + T(0.5) * (h[r][1] + h[r][2]), T(0.5) * (h[r][1] - h[r][2]),
                         T(0.5) * (h[r][1] + h[r][2]) + h[r][3]};
        for (int s_ = 0; s_ < 3; ++s_) {
          const int64_t ss = 2 * pw + s_;
          if ((s_ == 0 && pw > 0) || ss >= p.S) continue;
          const T val = g3[s_];
          dw[((k * C + c) * p.R + rr) * p.S + ss] = val;
          finite &= val - val == T(0);
        }
      }
    }
  }
  return finite;
}

// Whether the auto mode picks Winograd: enough channels on both sides for the GEMMs
// to dominate the transforms, and enough tiles to share among threads in blocks (the
// choice must not depend on the thread count: results are bitwise the same for any).
bool worth_it(const ConvParams& p, int64_t C, int64_t K, int64_t Q, int64_t ntile) {
  return p.R == p.S && (p.R == 3 || (p.R == 5 && Q >= kMinRow5)) && C >= kMinChannels &&
         K >= kMinChannels && ntile >= kMinTiles;
}

bool shape_ok(const ConvParams& p) {
  return p.groups == 1 && p.R >= 2 && p.S >= 2 && p.R <= 7 && p.S <= 7 && p.stride_h == 1 &&
         p.stride_w == 1 && p.dil_h == 1 && p.dil_w == 1;
}

bool use(const ConvParams& p, int64_t N, int64_t C, int64_t K, int64_t P, int64_t Q) {
  const auto mode = static_cast<WinogradMode>(g_mode.load(std::memory_order_relaxed));
  if (mode == WinogradMode::off || !shape_ok(p) || ceil_div(Q, 2) > kMaxTileRow - 1)
    return false;
  return mode == WinogradMode::on || worth_it(p, C, K, Q, N * ceil_div(P, 2) * ceil_div(Q, 2));
}

}  // namespace

void set_winograd_mode(WinogradMode m) { g_mode.store(static_cast<int>(m)); }

template <typename T>
bool winograd_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                      Activation act, T* y, T* preact) {
  if (!use(p, p.N, p.C, p.K, p.P, p.Q)) return false;
  if (p.N * p.K * p.P * p.Q == 0) return true;
  const Problem<T> pr{p.N, p.C, p.H, p.W, p.K, p.P, p.Q, p.pad_top, p.pad_left, p.R, p.S,
                      w.data, w.stride[0], w.stride[1], w.stride[2], w.stride[3]};
  return run(pr, x, bias, act, y, preact);
}

template <typename T>
bool winograd_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  if (!use(p, p.N, p.K, p.C, p.H, p.W)) return false;
  if (p.N * p.C * p.H * p.W == 0) return true;
  // dx[c, h, w] = sum_{k, r, s} dy[k, h - (R-1 - pt) + r, w - (S-1 - pl) + s]
  //                               * w[k, c, R-1 - r, S-1 - s]
  const Problem<T> pr{p.N, p.K, p.P, p.Q, p.C, p.H, p.W, p.R - 1 - p.pad_top,
                      p.S - 1 - p.pad_left, p.R, p.S,
                      w.data + (p.R - 1) * w.stride[2] + (p.S - 1) * w.stride[3], w.stride[1],
                      w.stride[0], -w.stride[2], -w.stride[3]};
  return run(pr, dy, static_cast<const T*>(nullptr), Activation{}, dx, static_cast<T*>(nullptr));
}

template <typename T>
bool winograd_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  if (!use(p, p.N, p.C, p.K, p.P, p.Q)) return false;
  // Auto: not as a single block (one thread; a 512-channel 7x7 batch of 8).
  if (static_cast<WinogradMode>(g_mode.load(std::memory_order_relaxed)) != WinogradMode::on &&
      WeightBlocks(p.N, ceil_div(p.P, 2), ceil_div(p.Q, 2)).nblk < 2)
    return false;
  if (p.K * p.C * p.R * p.S == 0) return true;
  if (p.N * p.P * p.Q == 0) {
    for (int64_t i = 0; i < p.K * p.C * p.R * p.S; ++i) dw[i] = T(0);
    return true;
  }
  return run_weight(p, x, dy, dw);
}

#define PYCONV_INSTANTIATE(T)                                                                \
  template bool winograd_backward_weight<T>(const ConvParams&, View4<const T>,               \
                                            View4<const T>, T*);                             \
  template bool winograd_forward<T>(const ConvParams&, View4<const T>, View4<const T>,       \
                                    const T*, Activation, T*, T*);                           \
  template bool winograd_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>, \
                                          T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::fast
