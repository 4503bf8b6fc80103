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
  bool wino_out_row_##T(const void*, const T*, int64_t, int64_t, int64_t, T, bool, T*, T*);
PYCONV_WINO_DECLARE(float)
PYCONV_WINO_DECLARE(double)
#undef PYCONV_WINO_DECLARE
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
Rows<T> rows_for_isa() {
#if defined(PYCONV_X86)
  if (active_isa() >= Isa::avx2) {
    if constexpr (std::is_same_v<T, float>)
      return {avx2::wino_in_row_float, avx2::wino_in_row_pair_float, avx2::wino_out_row_float};
    else
      return {avx2::wino_in_row_double, avx2::wino_in_row_pair_double,
              avx2::wino_out_row_double};
  }
#endif
  return {in_base<T>, in_pair_base<T>, out_base<T>};
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

// The tiles [T0, T1) of a block as pieces of tile rows: row r = n*TP + ty, tiles
// [qa, qb) of it, at block column col.
struct Piece {
  int64_t r, qa, qb, col;
};

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
    pcs.clear();
    for (int64_t t = T0; t < T1;) {
      const int64_t r = t / TQ, qa = t % TQ, qb = std::min(TQ, qa + (T1 - t));
      pcs.push_back({r, qa, qb, t - T0});
      t += qb - qa;
    }
    // Input transform, row kk = (piece, channel) after row (consecutive rows of the
    // same panels).
    int64_t cb = 0;
    for (int64_t kk = 0; kk < Kd; ++kk) {
      if (kk >= kb.begin(cb) + kb.size(cb)) ++cb;
      const int64_t k0 = kb.begin(cb), kc = kb.size(cb), c = kk % C;
      T* vc = v + tb * k0 + (kk - k0) * NR;
      const WinoIn* g = &gi[kk / C];
      auto plane = [&](const Piece& pc) {
        return src.data + pc.r / TP * src.stride[0] + c * src.stride[1];
      };
      for (size_t i = 0; i < pcs.size(); ++i) {
        const Piece& pc = pcs[i];
        // Rows of 4 tiles go two at a time (one 8-tile vector).
        if (TQ == 4 && i + 1 < pcs.size() && pc.qb - pc.qa == 4 &&
            pcs[i + 1].qb - pcs[i + 1].qa == 4 &&
            rw.in_pair(g, plane(pc), pc.r % TP, plane(pcs[i + 1]), pcs[i + 1].r % TP, pc.col,
                       kc, vc)) {
          ++i;
          continue;
        }
        rw.in(g, plane(pc), pc.r % TP, pc.qa, pc.qb, pc.col, kc, vc);
      }
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

#define PYCONV_INSTANTIATE(T)                                                                \
  template bool winograd_forward<T>(const ConvParams&, View4<const T>, View4<const T>,       \
                                    const T*, Activation, T*, T*);                           \
  template bool winograd_backward_data<T>(const ConvParams&, View4<const T>, View4<const T>, \
                                          T*);
PYCONV_INSTANTIATE(float)
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::fast
