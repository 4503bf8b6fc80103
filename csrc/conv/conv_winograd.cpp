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
// with the filter flipped and its channel axes swapped, so both share run(). The
// weight gradient (run_weight) is G^T [ sum over tiles of (A dY A^T) (.) V ] G, again
// 16 GEMMs, reduced over the tiles.
//
// Each thread runs the whole pipeline (input transform, 16 GEMMs, output
// transform) on one block of tiles at a time (Blocks), sized so the block's transformed
// input and products stay in its L2 cache, only the transformed filter shared; or all
// threads take each block together, splitting each step: run() with fewer blocks than
// two per thread, run_weight with large partial sums (their shared schedules). The GEMMs
// read the transformed input in place (a piece of a larger kernel as a shifted view of
// the same transform). Every step is elementwise or a GEMM whose reduction blocking
// depends on the shape only: results are bitwise identical for any thread count.
#include <algorithm>
#include <atomic>
#include <type_traits>
#include <vector>

#include "act/act.h"
#include "common/parallel.h"
#include "conv/conv_fast.h"
#include "gemm/gemm_driver.h"

#if defined(PYCONV_X86)
namespace pyconv::avx2 {
#define PYCONV_WINO_DECLARE(T)                                                            \
  void wino_in_row_##T(const void*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*); \
  bool wino_in_groups_##T(const void*, const T*, const void*, int64_t, int64_t, T*);       \
  bool wino_out_row_##T(const void*, const T*, int64_t, int64_t, int64_t, T, bool, T*, T*); \
  bool wino_out_row_pair_##T(const void*, const T*, int64_t, int64_t, T, bool, T*, T*, T*, T*, \
                             bool*);                                                       \
  void wino_grad_panel_##T(const T*, const T*, int64_t, int64_t, int64_t, T*, int64_t);      \
  void wino_filter_panel_##T(const void*, int64_t, T*);                                      \
  bool wino_grad_filter_##T(const T*, int64_t, int64_t, int64_t, int64_t, T*, int64_t);
PYCONV_WINO_DECLARE(float)
PYCONV_WINO_DECLARE(double)
// dst[l*ldd + q] = rows[q][off + l] for q < 8, l < len (pack_avx2.cpp).
void transpose8_rows_float(const float* const* rows, int64_t off, int64_t len, float* dst,
                           int64_t ldd);
}  // namespace pyconv::avx2
namespace pyconv::avx512 {
PYCONV_WINO_DECLARE(float)
PYCONV_WINO_DECLARE(double)
}  // namespace pyconv::avx512
#undef PYCONV_WINO_DECLARE
#endif

namespace pyconv::fast {

using gemm::ceil_div;
using gemm::kMC;
using gemm::round_up;
using gemm::UKernel;

namespace {

#include "conv/winograd_rows.h"

std::atomic<int> g_mode{static_cast<int>(KernelMode::auto_)};

// Per-thread budget for a block's transformed input (16*C per tile) and products
// (16*K per tile): most of Zen 3's 512 KiB L2.
constexpr int64_t kBlockBytes = int64_t(384) << 10;
// The same for kernels of one piece (3x3), whose GEMMs stream packed panels one plane xi
// at a time: a plane's slice (1/16) within L2 is what counts, and larger blocks re-read
// the transformed filter less often. Measured against 384 KiB: ResNet 64@56 and 128@28
// 1.14-1.17x, dilated 64@56 1.11x, 256@14 and 512@7 1.02-1.04x; 6 MiB was slower again
// (128@28 0.8x). Kernels of several pieces read shifted views of dense rows and keep
// 384 KiB (768 KiB: CIFAR-10 conv2/conv3 0.9-1.05x).
constexpr int64_t kBlockBytesOnePiece = int64_t(3) << 20;
// Tile rows are transformed through stack buffers of this many tiles (+1).
constexpr int64_t kMaxTileRow = PYCONV_WINO_MAXROW;
// The weight gradient's partial sums (16 * C * K values per chunk) from which its threads
// share each block instead of running chunks of blocks (run_weight).
constexpr int64_t kSharedDU = int64_t(4) << 20;
// Below this many channels on either side the weight gradient's transforms outweigh the
// saved multiplies.
constexpr int64_t kMinChannels = 32;
// ... unless the other side has kManyChannels and the output rows kMinRowFewChannels values:
// then from kFewChannels input channels or kFewOutChannels outputs. Against the GEMM, same
// build alternated, 2 threads, Intel Xeon: 24 -> 64 5x5 at 14x14 batch 128 (GoogLeNet 4b/4c)
// 1.18x, at 28x28 1.13x, 16 -> 64 5x5 at 56x56 1.11x, 16 -> 128 at 28x28 1.14x, 16 and 24
// -> 64 3x3 at 14x14-112x112 1.14-1.27x, 64 -> 24 3x3 1.16-1.22x; 16 -> 64 5x5 at 14x14
// 1.00x. Not with 16 outputs (64 -> 16 0.83-0.97x, 128 -> 16 5x5 0.85x), 16 -> 32 (0.99x
// at 14x14), 7x7 planes (16 -> 128 3x3 0.85x) or 24 on both sides (0.88x).
constexpr int64_t kFewChannels = 16, kFewOutChannels = 24, kManyChannels = 64;
constexpr int64_t kMinRowFewChannels = 14;
// The forward and backward-data need this many input channels (of the correlation: the
// forward's C, the backward-data's K) and any number of outputs. Against the GEMM, same
// process, 2 threads, 56x56 at batch 4: 16 -> 16 1.13-1.26x, 16 -> 8 1.19x, 32 -> 8 and
// 64 -> 16 1.6-1.7x, 64 -> 1..4 1.35-1.6x (the GEMM runs a single ragged 6-row panel),
// 5x5 at 16x16 1.04-1.15x; 12 -> 12 and 8 -> 8 break even, 8 -> 32 and 8 -> 64 0.85-0.88x,
// 3 -> 64 0.6x.
constexpr int64_t kMinInChannels = 16;
// Below this many tiles the blocks are too few and narrow (one 512-channel 7x7 image: 16).
constexpr int64_t kMinTiles = 128;
// A weight gradient whose threads share each block (kSharedDU) pays off from fewer. Against
// the GEMM, same process, 2 threads: 512@14 and 256@14 batch 2 (98 tiles) 1.21x and 1.13x,
// 512@7 batch 6 (96) 1.13x; 512@7 batch 4 (64) 1.00x, batch 3 (48) 0.86x.
constexpr int64_t kMinTilesShared = 96;
// The forward and backward-data of a 3x3 kernel pay off from fewer (batch-1 inference at
// 14x14: 49 tiles). Against the GEMM, same process, 2 threads: 256@14 and 128@14 batch 1
// 1.33-1.38x, 512@14 batch 1 1.30x, 512@7 batch 3 (48 tiles) 1.07-1.13x and batch 4 1.45x,
// 256@7 batch 3 1.20x; 256@7 and 512@7 batch 2 (32 tiles) 0.85-0.94x, batch 1 0.81x. The
// weight gradient (512@7 batch 4: 0.64x) and 5x5 keep kMinTiles.
constexpr int64_t kMinTiles3x3 = 48;
// ... but with kWide3x3 channels or more on both sides, from kMinTilesWide3x3 tiles (a
// plane of whole tiles) or kMinTilesWideRagged3x3 (under kFullTileUse5 real outputs: 7x7),
// since pixel rows (faster since) run those few pixels better. Against Winograd, same
// process, 2 threads, Intel Xeon (AMX kind), forward / backward-data: 512@14 batch 1 (49
// tiles) 1.20 / 1.11x; 512@7 batch 4-8 (64-128 tiles) 1.07-1.10 / 1.02-1.11x (ResNet's
// 512@7 at batch 8: 1.00 -> 1.10 of torch), 384@7 batch 8 1.16x, 1024@7 batch 4 1.20x.
// Winograd keeps 512@14 batch 2 (98 tiles, 1.04-1.06x), 512@7 from batch 12 (192 tiles,
// 1.44-1.46x), and 256 or fewer channels on either side (within 5% at 128 tiles).
constexpr int64_t kWide3x3 = 384;
constexpr int64_t kMinTilesWide3x3 = 64;
constexpr int64_t kMinTilesWideRagged3x3 = 150;
// The forward and backward-data need this share of a 2x2 tile grid's outputs to be real
// (P*Q over 4 ceil(P/2) ceil(Q/2)): planes of 3 (or sub-problems of that size: a dilated
// layer's 6 x 6 outputs at dilation 2) waste 44% of the tiles' products. Against the GEMM,
// same process, 2 threads: 128 -> 128 at 3x3 batch 32 forward 1.36x, backward-data 1.14x;
// d2 64 -> 128 at 6x6 outputs 1.58x. At 5 (69%) it is mixed: 256 -> 256 at 5x5 batch 16
// 0.96x forward, 0.86x backward-data, d2 64 -> 64 to 10x10 1.28x and 128 -> 128 0.95x; the
// weight gradient, whose transforms are shared differently, lost at both (0.83-0.88x).
constexpr double kMinTileUse = 0.6;
// 5x5 (four pieces, each a transform of its own) pays off from rows of 4 tiles up.
constexpr int64_t kMinRow5 = 7;
// ... and its weight gradient from kMinTiles5Weight tiles: with fewer, the transforms of
// both operands (four pieces each) and the partial sums outweigh the saved products.
// Against the GEMM, same build alternated, 2 threads, Intel Xeon (AVX-512): 7x7 at batch 16
// (256 tiles), 832, 512, 256 and 128 input channels 1.24-1.32x; 512 -> 48 at 14x14 batch 2
// (98 tiles) 1.17x; from 392 tiles Winograd's (256 -> 256 at 14x14 batch 8 0.96x as the
// GEMM, 7x7 batch 32 (512 tiles) 1.04x, 8x8 and 16x16 batch 64 0.69-0.71x).
constexpr int64_t kMinTiles5Weight = 384;
// ... and not for output channels that AVX-512's 8 x 48 tile fills where its GEMMs' 8 x 32
// tile leaves a quarter of its columns idle (48 outputs): the GEMM's weight gradient wastes
// none of them (48 rows of 8, or the 8 x 48 tile's columns in its taps-as-rows form).
// Against Winograd, same build alternated, 2 threads, Intel Xeon:
// 512 -> 48 at 14x14 batch 16 1.18x, 256 -> 48 1.16x, 128 -> 48 batch 32 1.11x, 48 -> 48
// batch 64 1.03x, 512 -> 48 at 28x28 batch 8 1.19x, 512 and 832 -> 48 at 7x7 1.02-1.07x;
// 32, 64, 128 and 144 outputs stay Winograd's (the GEMM 0.81-0.90x).
static bool wide_tile_outputs(int64_t K, size_t elem) {
  if (elem != sizeof(float)) return false;
  const int64_t nr = gemm::ukernel_for<float>(active_isa()).nr;
  const int64_t wide = gemm::ukernel_for_shape<float>(active_isa(), kMC, K).nr;
  return wide > nr && K % wide == 0 && 4 * round_up(K, nr) > 5 * K;
}
// ... and with at most kFewOut5 outputs where pixel rows take the problem (long_reduction,
// conv_gemm.cpp), from kMinTiles5FewOut tiles: below, the transforms (four per input tile)
// outweigh the GEMMs. 16 outputs at 14x14, as pixel rows against Winograd (same process, 2
// threads, 11 rounds): forward 64 -> 16 batch 4 1.21x, batch 6 1.09x, 128 -> 16 batch 4
// 1.29x, batch 8 (392 tiles) 1.09x, 48 -> 16 1.11x; backward-data 128 -> 16 1.25x, 48 -> 16
// 1.06x (at 28x28, 392 tiles, 0.89x). 32 outputs go to Winograd now (the pixel-rows
// figures 32 were for predate a faster Winograd 5x5), old/new builds alternated: 192 -> 32
// at 28x28 batch 2 (392 tiles) 1.11x, backward-data 64 -> 32 at 14x14 batch 8 1.05x; at 196
// tiles a wash (0.97-1.03x: 64, 96 and 128 -> 32, backward-data 128 -> 32).
constexpr int64_t kFewOut5 = 16;
constexpr int64_t kMinTiles5FewOut = 512;
// ... and with at most kFewOutPad5 outputs only where under 16% of the im2col is padding
// (kMinLandedFewOut5), which pixel rows skip: 5x5 "same" at 7x7 (31%), old/new builds
// alternated, 2 threads, 320 -> 32 batch 16 1.21-1.26x, 32 <- 320 1.23x; at 12x12-14x14
// (19-16%), since pixel rows read a source without its padded copy and keep a filter panel
// in L1, pixel rows against Winograd (same process, Intel Xeon): 128 -> 32 forward batch
// 32-64 1.15-1.27x, 256 -> 32 1.50x, 128 -> 48 batch 16-128 1.06-1.12x, GoogLeNet 4e's
// backward-data 32 <- 128 1.16x, 4d's 32 <- 64 1.01-1.05x, 48 <- 128 1.08x, 32 <- 96 at
// 12x12 1.20x. At 15x15 (15%) 48 <- 128 ran 0.77x, at 16x16 0.97x: Winograd's. On planes
// of whole tile rows of 4 (8x8, below) Winograd keeps them (CIFAR-10 conv3's
// backward-data 32 <- 64 ran 0.72-0.75x as pixel rows, 64 -> 32 0.74x). 48 outputs too
// since AVX-512's 8 x 48 tile (48 fill AVX2's 16-column panels as well): 5x5 at 7x7, same
// build alternated, Intel Xeon, pixel rows against Winograd: 48 <- 128 batch 128
// backward-data 1.20x (AVX2's tile 1.19x), 48 <- 320 batch 16 1.15x (1.44x), 320 -> 48
// 1.14x (1.42x). (40 outputs fill neither tile: Winograd's, 1.30x faster there.)
constexpr int64_t kFewOutPad5 = 48;
constexpr double kMinLandedFewOut5 = 0.84;
// ... and their forwards from kMidIn5 input channels at any padding share, but on planes of
// whole aligned tile rows (below): since pixel rows skip the padded copy and keep their
// filter panel in L1, they run these faster than Winograd. Pixel rows against Winograd (same
// process, 2 threads, Intel Xeon), 5x5 at 28x28: 32 outputs from 96, 192 and 256 channels
// at batch 1 1.22-1.33x, batch 4 1.09-1.18x, batch 16 1.06-1.20x; 48 outputs 1.21-1.24x,
// 1.05-1.09x and 0.99-1.03x; 192 -> 32 and 48 at batch 4, 15x15 1.12 / 1.05x, 21x21
// 1.31 / 1.13x, 56x56 1.09 / 1.04x. Not from fewer channels (32 -> 32 at 28x28 batch 8
// 0.99x, 16 -> 32 0.92x), nor on aligned planes (192 -> 48 at 16x16 0.94x, 128 -> 32 at
// 32x32 0.92x), nor backward-data (32-64 <- 96-256 at 28x28, 0.91-1.16x by batch).
constexpr int64_t kMidIn5 = 96;
// ... and from kManyIn5 input channels (a long reduction: 16 C values a tile for a block's
// transformed input, few tiles a block in L2, narrow GEMMs) at any number of tiles, where
// pixel rows also skip the taps on padding (16% of them at 14x14, 31% at 7x7). Pixel rows
// against Winograd, same process, 2 threads: forward 480 and 512 -> 48 at 14x14 batch 8-16
// 1.15-1.37x, 512 -> 32 1.06-1.34x, 512 -> 64 1.09x, 512 and 832 -> 48 at 7x7 batch 16
// 1.21-1.49x, 512 -> 48 at 28x28 batch 4 1.05x; backward-data 48 <- 512 at 14x14 1.19-1.20x.
// At 256-320 channels within 5% either way; 128-192 stay Winograd (1.06-1.22x).
constexpr int64_t kManyIn5 = 384;
// ... and on planes whose 2x2 tiles are under kFullTileUse5 real outputs (7x7: 49 of 64;
// the tiles past the plane's edge are also the ones most on padding), from
// kMinTiles5Ragged tiles. Against the GEMM at 7x7 batch 8 (128 tiles), same build
// alternated, 2 threads: forward 64 -> 64 0.88-0.91x, 128 -> 128 0.79-0.82x, 256 -> 256
// 0.70-0.76x, 48 -> 128 0.90x, 32 -> 128 0.97-1.00x, backward-data 128 and 256 0.69-0.81x;
// at batch 12 (192 tiles) 0.97x; at batch 16 (256) mixed (32 -> 128 1.07-1.13x, 512 and
// 832 -> 128 0.88-0.96x).
constexpr double kFullTileUse5 = 0.8;
constexpr int64_t kMinTiles5Ragged = 256;
// ... and where pixel rows take the layer for the zero padding they skip (skips_padding,
// conv_gemm.cpp: 5x5 "same" on planes of 7x7 to 11x11, to 14x14 with 256+ input channels),
// only on planes of whole 2x2 tiles in rows of a divisor of kAlignedRow tiles (8x8:
// tall_blocks' aligned layouts). Against pixel rows, shuffled modes, 2 threads, forward /
// backward-data: 8x8 batch 16, 256 -> 256 1.15 / 1.13x, 128 -> 128 1.21 / 1.22x, 192 -> 192
// 1.23 / 1.19x; batch 32 64 -> 128 1.32 / 1.27x (the GEMM's columns as wide as the tiles'
// rows); 10x10 batch 8 (rows of 5 tiles), 256 -> 256 0.80 / 0.78x, 9x9 0.65 / 0.53x, 11x11
// 0.87 / 0.81x, 7x7 (ragged) 0.63-0.82x.
constexpr int64_t kAlignedRow = 16;
bool aligned_row(int64_t Q) { return Q > 0 && kAlignedRow % ceil_div(Q, 2) == 0; }
// Dilated forwards and backward-data whose sub-problems' rows are shorter than
// kMinRowDilated need kMinInChannelsDilated input channels (the polyphase copies in and out
// weigh more against short rows' GEMMs): 3x3 d2 at 28x28 (rows of 14), old/new builds
// alternated, 2 threads: forward 16 -> 64 batch 8 1.55x, 16 -> 16 1.43x, 24 -> 48 1.17x,
// 32 -> 32 1.11x, backward-data 32 -> 32 1.08x, 16 -> 32 1.35x, 24 -> 48 batch 8 0.95x;
// Winograd kept: 64 -> 64 (1.07-1.09x over the GEMM), 56x56 (rows of 28: 16 -> 32 1.05x,
// 32 -> 64 1.36x). They also need sub-problems of one shape or of kMinTilesEachDilated
// tiles each on average (they run one at a time then). Measured first with 196 (3x3 d2 64
// -> 16 at 17x17 batch 8, 128 tiles each, ran 1.67-2.39x on the GEMM: its few outputs are
// kMaxOutDilated's now); again, 3x3 d2 padded by 2, Winograd against the GEMM, shuffled
// rounds, 2 threads, 64-256 channels and 64-256 outputs: 15x15 batch 2-4 (32-64 tiles a
// sub-problem) 1.12-1.62x, 21x21 batch 1-2 (25-72) 0.98-1.44x, 17x17 batch 1 backward-data
// 1.10x, 13x13 batch 2 (18-32) 0.92-1.10x, batch 8 1.04-1.38x; batch 1 at 9x9-13x13 (4-16)
// 0.66-0.70x.
constexpr int64_t kMinRowDilated = 28;
constexpr int64_t kMinInChannelsDilated = 64;
constexpr int64_t kMinTilesEachDilated = 20;
// ... and more than kMaxOutDilated outputs, more than kFewOutDilated on grids whose tiles are
// under kFullTileUseFew real outputs (each tile's input transform, 16 values a channel, is
// shared by few outputs): 3x3 d2, the GEMM against Winograd, same build, 2 threads, batch 8:
// 16 outputs from 64-256 channels at 22x22 unpadded (rows of 9) 1.71-1.90x, batch 2 2.40x,
// at 20x20 padded by 2 (rows of 10) 1.14-1.31x, at 30x30 (rows of 13) 1.25-1.51x; 32 outputs
// at 22x22 (81% of the tiles real) 1.27-1.47x; Winograd kept: 32 at 20x20 padded by 2 (whole
// tiles: 0.97-1.08x), at 30x30 (86%: 0.97-1.14x), 64 (0.84-1.26x), 16 on rows of 29-30
// (0.83-0.94x).
constexpr int64_t kMaxOutDilated = 16;
constexpr int64_t kFewOutDilated = 32;
constexpr double kFullTileUseFew = 0.85;

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

// Row transforms of the active ISA (winograd_rows.h).
template <typename T>
struct Rows {
  void (*in)(const void*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, T*);
  bool (*in_groups)(const void*, const T*, const void*, int64_t, int64_t, T*);
  bool (*out)(const void*, const T*, int64_t, int64_t, int64_t, T, bool, T*, T*);
  bool (*out_pair)(const void*, const T*, int64_t, int64_t, T, bool, T*, T*, T*, T*, bool*);
  void (*grad_panel)(const T*, const T*, int64_t, int64_t, int64_t, T*, int64_t);
  void (*filter)(const void*, int64_t, T*);
  bool (*grad_filter)(const T*, int64_t, int64_t, int64_t, int64_t, T*, int64_t);
};

template <typename T>
void in_base(const void* g, const T* plane, int64_t ty, int64_t qa, int64_t qb, int64_t t0,
             int64_t kc, T* vc) {
  wino_in_row<T>(*static_cast<const WinoIn*>(g), plane, ty, qa, qb, t0, kc, vc);
}
template <typename T>
bool in_groups_base(const void* g, const T* base, const void* parts, int64_t n, int64_t kc,
                    T* vc) {
  return wino_in_groups<T>(*static_cast<const WinoIn*>(g), base,
                           static_cast<const WinoPart*>(parts), n, kc, vc);
}
template <typename T>
bool out_base(const void* g, const T* m, int64_t ty, int64_t qa, int64_t qb, T b, bool relu,
              T* y, T* z) {
  return wino_out_row<T>(*static_cast<const WinoOut*>(g), m, ty, qa, qb, b, relu, y, z);
}
template <typename T>
bool out_pair_base(const void* g, const T* m, int64_t tya, int64_t tyb, T b, bool relu, T* ya,
                   T* za, T* yb, T* zb, bool* finite) {
  return wino_out_row_pair<T>(*static_cast<const WinoOut*>(g), m, tya, tyb, b, relu, ya, za, yb,
                              zb, finite);
}

template <typename T>
void grad_panel_base(const T* r0, const T* r1, int64_t n, int64_t ld, int64_t nr, T* d,
                     int64_t ps) {
  wino_grad_panel<T>(r0, r1, n, ld, nr, d, ps);
}

template <typename T>
void filter_base(const void* g, int64_t pan, T* u) {
  wino_filter_panel<T>(*static_cast<const WinoFilter*>(g), pan, u);
}

template <typename T>
bool grad_filter_base(const T* u, int64_t ldx, int64_t ldc, int64_t cn, int64_t kn, T* g,
                      int64_t ldl) {
  return wino_grad_filter<T>(u, ldx, ldc, cn, kn, g, ldl);
}

template <typename T>
Rows<T> rows_for_isa() {
#if defined(PYCONV_X86)
#define PYCONV_WINO_ROWS(NS, T)                                                            \
  Rows<T> { NS::wino_in_row_##T, NS::wino_in_groups_##T, NS::wino_out_row_##T,             \
            NS::wino_out_row_pair_##T, NS::wino_grad_panel_##T, NS::wino_filter_panel_##T,   \
            NS::wino_grad_filter_##T }
  if constexpr (std::is_same_v<T, float>) {
    if (active_isa() >= Isa::avx512) return PYCONV_WINO_ROWS(avx512, float);
    if (active_isa() >= Isa::avx2) return PYCONV_WINO_ROWS(avx2, float);
  } else {
    if (active_isa() >= Isa::avx512) return PYCONV_WINO_ROWS(avx512, double);
    if (active_isa() >= Isa::avx2) return PYCONV_WINO_ROWS(avx2, double);
  }
#undef PYCONV_WINO_ROWS
#endif
  return {in_base<T>,   in_groups_base<T>, out_base<T>,
          out_pair_base<T>, grad_panel_base<T>, filter_base<T>, grad_filter_base<T>};
}

// U[xi] = (G g G^T)[xi] for every (k, piece, c), packed as the GEMM's A operand over
// the reduction kk = piece*C + c: MR-row panels per reduction block, block (m0, k0, kc)
// of xi at u + xi*ps + Mpad*k0 + (m0/MR)*MR*kc (the layout of conv_gemm.cpp's
// prepack_a). Rows past K are zero. By panels of MR filters (wino_filter_panel).
// Planes xi ps apart: filter_plane_stride.
template <typename T>
void transform_filter(const Problem<T>& pr, const Rows<T>& rw, int MR, T* u, int64_t ps) {
  const int64_t Mpad = round_up(pr.K, MR), Kd = pieces(pr.R) * pieces(pr.S) * pr.C;
  const WinoFilter f{pr.w, pr.wk, pr.wc, pr.wr, pr.ws, pr.K, pr.C, pr.R, pr.S, pieces(pr.S), Kd,
                     gemm::KBlocks(Kd).nb, Mpad, ps, MR};
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (int64_t pan = 0; pan < Mpad / MR; ++pan) rw.filter(&f, pan, u);
}

// Store of the products: a dense K x ncol matrix per xi.
template <typename T>
struct DenseC : gemm::PlainStore<T> {
  T* c;
  int64_t ld, ncol;
  int NR;
  T* direct(int64_t m0, int64_t j0, int64_t& ldc) const {
    if (j0 + NR > ncol) return nullptr;
    ldc = ld;
    return c + m0 * ld + j0;
  }
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

// A block's tiles as segments of tile rows: tiles [qa, qb) of tile row ty of image n at
// positions col .. col + qb - qa of the block (real: outputs of the block; otherwise an
// extra row only read through a piece's shift).
struct Seg {
  int64_t n, ty, qa, qb, col;
  bool real;
};

// Whether segment i is a whole row of 4 tiles followed, at the next 4 positions, by
// another: such pairs fill one 8-tile vector in the row transforms.
inline bool pairs_with_next(const std::vector<Seg>& segs, size_t i) {
  if (i + 1 >= segs.size()) return false;
  const Seg &g = segs[i], &h = segs[i + 1];
  return g.qa == 0 && g.qb == 4 && h.qa == 0 && h.qb == 4 && h.col == g.col + 4;
}

// How the tiles are cut into blocks of about `target` tiles, in one of two layouts:
//  - kernels of 3 taps or fewer per column (one piece row): any range of tiles in
//    (image, tile row, column) order, NR-aligned, so no GEMM column is wasted;
//  - taller kernels: NB whole images, or bands of `band` tile rows of one image, laid out
//    row-interleaved: tile (image n0 + i, tile row ty, column q) at position
//    ((ty - ty0)*nb + i)*TQ + q. A kernel piece at offset (2a, 2b) reads the source 2a
//    rows lower, i.e. the same transform a tile rows further on: position + a*nb*TQ
//    (shift(a)). So only the npw column offsets are transformed, over the band's rows plus
//    nph - 1 extra rows (a 5x5 filter: 2.25 transforms per tile and channel instead of 4).
struct Blocks {
  int64_t N, TP, TQ, nph, NB = 1, band = 1, nbands = 1, tb = 0, nblk;
  Blocks(int64_t N_, int64_t TP_, int64_t TQ_, int64_t nph_, int64_t target, int NR)
      : N(N_), TP(TP_), TQ(TQ_), nph(nph_) {
    if (nph == 1) {
      tb = std::max<int64_t>(NR, round_up(target, NR));
      nblk = ceil_div(N * TP * TQ, tb);
      return;
    }
    NB = std::max<int64_t>(1, std::min(N, target / std::max<int64_t>(1, TP * TQ)));
    band = NB > 1 ? TP : std::min(TP, std::max<int64_t>(1, ceil_div(target, TQ)));
    nbands = ceil_div(TP, band);
    nblk = ceil_div(N, NB) * nbands;
  }
  // The row-interleaved layout (nph > 1) with nb_ images per block and bands of band_ rows.
  Blocks(int64_t N_, int64_t TP_, int64_t TQ_, int64_t nph_, int64_t nb_, int64_t band_)
      : N(N_), TP(TP_), TQ(TQ_), nph(nph_), NB(nb_), band(band_), nbands(ceil_div(TP_, band_)),
        nblk(ceil_div(N_, nb_) * ceil_div(TP_, band_)) {}
  // Block b of the row-interleaved layout: images [n0, n0 + nb), tile rows [ty0, ty0 + rows).
  void extent(int64_t b, int64_t& n0, int64_t& nb, int64_t& ty0, int64_t& rows) const {
    n0 = b / nbands * NB, nb = std::min(NB, N - n0);
    ty0 = b % nbands * band, rows = std::min(band, TP - ty0);
  }
  // Positions of the largest block, extra rows included.
  int64_t max_positions() const { return nph == 1 ? tb : (band + nph - 1) * NB * TQ; }
  // Block b's segments (the real ones first, in position order) and its number of real
  // positions; shift: positions per piece row.
  int64_t get(int64_t b, std::vector<Seg>& segs, int64_t& shift) const {
    segs.clear();
    if (nph == 1) {
      const int64_t T0 = b * tb, T1 = std::min(N * TP * TQ, T0 + tb);
      for (int64_t t = T0; t < T1;) {
        const int64_t r = t / TQ, qa = t % TQ, qb = std::min(TQ, qa + (T1 - t));
        segs.push_back({r / TP, r % TP, qa, qb, t - T0, true});
        t += qb - qa;
      }
      shift = 0;
      return T1 - T0;
    }
    int64_t n0, nb, ty0, rows;
    extent(b, n0, nb, ty0, rows);
    for (int64_t r = 0; r < rows + nph - 1; ++r)
      for (int64_t i = 0; i < nb; ++i)
        segs.push_back({n0 + i, ty0 + r, 0, TQ, (r * nb + i) * TQ, r < rows});
    shift = nb * TQ;
    return rows * nb * TQ;
  }
};

// The forward's blocks of a kernel of several piece rows: the budget's layout (above) or,
// where a cost estimate puts it 5% or more ahead, another layout of nb images or bands of
// band tile rows. The budget alone often left GEMM columns idle: a block's columns are
// computed in whole NR-column tiles, and 3 rows of 12 tiles (36 columns of 48) ran
// OverFeat's 96 -> 256 5x5 at 28x28 1.28x slower than 4 rows (48). Estimated time, in
// cycles of one thread: per block its GEMM columns, rounded up to whole tiles (2 * 16 flops
// per row and reduction index, ~29 flops a cycle), its input transforms (band + nph - 1 rows
// of tiles per band, 15 cycles per tile, channel and column offset: 9 measured in L2, 24
// from L3), and a re-read of the transformed filter U (64 bytes per row and reduction
// index; a quarter of that where U fits L2); the blocks taken in order by the threads (as
// the dynamic schedule does), plus a quarter of a block for a tail the estimate misses.
// A layout whose tile rows span whole NR-column tiles (nb * TQ a multiple of NR: a piece's
// shifted view starts on a tile, and a cache line, of the unshifted one) is taken when the
// estimate puts it ahead at all: the estimate misses what that alignment saves. 8x8 outputs
// (4 tiles a row) in blocks of 4 images (the estimate's best, 3-4% ahead of the budget's 2
// or 3), old and new builds alternated, 2 threads: CIFAR-10 conv3 forward 1.03-1.04x,
// backward-data 1.06-1.08x, 64 -> 128 at batch 32 1.04-1.07x; forced layouts of 1, 2, 3
// or 6 images (unaligned) ran within 0.91-1.01x of each other, 4 images 1.03-1.14x of them.
// Layouts whose GEMM operand for one xi and reduction block (kKC rows of the block's
// positions) would not stay in L2 while A's panels stream over it, or whose transformed
// input and products pass kMaxTallBlock, are not taken.
constexpr int64_t kMaxTallBlock = int64_t(6) << 20;
constexpr int64_t kL2Share = int64_t(256) << 10;  // half of Zen 3's L2
inline Blocks tall_blocks(const Blocks& budget, int64_t N, int64_t TP, int64_t TQ,
                          int64_t nph, int64_t npw, int64_t C, int64_t Mpad, int NR,
                          int64_t tsize) {
  const int64_t Kd = nph * npw * C, nt = num_threads();
  const double u = (16 * Mpad * Kd * tsize > kL2Share ? 4.0 : 1.0) * Mpad * Kd;
  auto block = [&](int64_t nb, int64_t rows) {
    return 1.1 * round_up(rows * nb * TQ, NR) * Mpad * Kd +
           15.0 * (rows + nph - 1) * nb * TQ * npw * C + u;
  };
  auto fits = [&](int64_t nb, int64_t band) {
    const int64_t len = band * nb * TQ, tpos = (band + nph - 1) * nb * TQ;
    return std::min(Kd, gemm::kKC) * (len + NR) * tsize <= kL2Share &&
           16 * (npw * C * (tpos + NR) + Mpad * round_up(len, NR)) * tsize <= kMaxTallBlock;
  };
  std::vector<double> load(static_cast<size_t>(nt));
  auto time = [&](const Blocks& b) {
    const double big = block(b.NB, b.band);  // (NB <= N, band <= TP)
    double t;
    if (b.nblk * nt <= 1024) {  // the dynamic schedule's order
      std::fill(load.begin(), load.end(), 0.0);
      for (int64_t k = 0; k < b.nblk; ++k) {
        int64_t n0, nb, ty0, rows;
        b.extent(k, n0, nb, ty0, rows);
        *std::min_element(load.begin(), load.end()) += block(nb, rows);
      }
      t = *std::max_element(load.begin(), load.end());
    } else {  // full groups and bands, then the last (smaller) ones
      const int64_t gi = N / b.NB, ri = N % b.NB, gb = TP / b.band, rb = TP % b.band;
      double total = gi * gb * big;
      if (ri) total += gb * block(ri, b.band);
      if (rb) total += gi * block(b.NB, rb);
      if (ri && rb) total += block(ri, rb);
      t = total / nt + 0.5 * big;
    }
    return t + 0.25 * big;
  };
  Blocks best = budget;
  const double t_budget = time(budget);
  double t_best = t_budget;
  for (int64_t nb = 1; nb <= N; ++nb) {
    if (nb > 1 && !fits(nb, TP)) break;  // (wider with nb)
    for (int64_t band = nb > 1 ? TP : 1; band <= TP && fits(nb, band); ++band) {
      const Blocks b(N, TP, TQ, nph, nb, band);
      const double t = time(b);
      if (t < t_best) best = b, t_best = t;
    }
  }
  const bool aligned = best.NB * TQ % NR == 0;
  return t_best <= (aligned ? 1.0 : 0.95) * t_budget ? best : budget;
}

// The weight gradient's blocks, from the shape alone (their reduction order fixes the
// result): as few as the GEMM's reduction blocks allow (each block re-reads and rewrites
// its chunk's partial sums dU, 16 * Kd * K values: 4 MiB at 256 channels), at least two,
// a multiple of 8 (above 8) or 2 so that the chunks (at most 8) get equal shares, and of
// 64 tiles at least. (About 16 blocks of 49 tiles ran ResNet 256@14's weight gradient
// 1.2x slower; uneven blocks, 3 x 256 + 16 tiles for 128@28, left a thread idle.)
inline Blocks weight_blocks(int64_t N, int64_t TP, int64_t TQ, int64_t nph, int NR) {
  const int64_t tiles = N * TP * TQ;
  int64_t nblk = std::max<int64_t>(2, ceil_div(tiles, gemm::kKC));
  nblk = round_up(nblk, nblk > 8 ? 8 : 2);
  return Blocks(N, TP, TQ, nph, std::clamp<int64_t>(ceil_div(tiles, nblk), 64, gemm::kKC), NR);
}

// V_b of a block for each column offset b < npw (source shifted by 2b columns: gi[b]),
// segment by segment, planes xi gi[b].ps apart; channels [c0, c1) (default: all). Dense
// rows (ldv > 0): channel c along row b*C + c, ldv apart. Otherwise (one piece) the GEMM's
// packed B panels of width gi[0].NR over the reduction blocks kb of the channels, tb
// columns per block (what the GEMM streams best when no piece needs a shifted view).
template <typename T>
void transform_block(const Rows<T>& rw, const std::vector<WinoIn>& gi, View4<const T> src,
                     int64_t C, const std::vector<Seg>& segs, int64_t ldv,
                     const gemm::KBlocks& kb, int64_t tb, T* v, int64_t c0 = 0,
                     int64_t c1 = -1) {
  if (c1 < 0) c1 = C;
  // The positions in groups of 8 (wino_in_groups), each group's parts from the segments
  // it overlaps (they cover positions 0, 1, ... in order); the same for every channel.
  thread_local std::vector<WinoPart> parts_tl;
  std::vector<WinoPart>& parts = parts_tl;
  parts.clear();
  const int64_t end = segs.empty() ? 0 : segs.back().col + segs.back().qb - segs.back().qa;
  for (int64_t t = 0, i = 0; t < end; t += 8) {
    while (segs[i].col + segs[i].qb - segs[i].qa <= t) ++i;
    for (size_t j = i; j < segs.size() && segs[j].col < t + 8; ++j) {
      const Seg& g = segs[j];
      const int64_t a = std::max(g.col, t), e = std::min(g.col + g.qb - g.qa, t + 8);
      WinoPart w{{}, g.qa + a - g.col, static_cast<int>(a - t), static_cast<int>(e - t), false};
      for (int r = 0; r < 4; ++r) {
        const int64_t iy = 2 * g.ty + r - gi[0].pt;
        w.off[r] = iy >= 0 && iy < gi[0].H ? g.n * src.stride[0] + iy * gi[0].s2 : kNoRow;
      }
      parts.push_back(w);
    }
    parts.back().last = true;
  }
  for (size_t b = 0; b < gi.size(); ++b) {
    int64_t blk = ldv == 0 && c0 < c1 ? kb.index(c0) : 0;
    for (int64_t c = c0; c < c1; ++c) {
      T* vr = v + (static_cast<int64_t>(b) * C + c) * ldv;
      int64_t kc = 1;
      if (ldv == 0) {
        if (c >= kb.begin(blk) + kb.size(blk)) ++blk;
        kc = kb.size(blk);
        vr = v + tb * kb.begin(blk) + (c - kb.begin(blk)) * gi[b].NR;
      }
      if (rw.in_groups(&gi[b], src.data + c * src.stride[1], parts.data(),
                       static_cast<int64_t>(parts.size()), kc, vr))
        continue;
      auto plane = [&](const Seg& g) { return src.data + g.n * src.stride[0] + c * src.stride[1]; };
      for (const Seg& g : segs) rw.in(&gi[b], plane(g), g.ty, g.qa, g.qb, g.col, kc, vr);
    }
  }
}

// Planes xi 64 bytes apart modulo 4 KiB: the transforms stream 16 of them at once, which at
// a multiple of 4 KiB would all map to the same L1 set.
template <typename T>
int64_t plane_stride(int64_t n) {
  return round_up(n, 4096 / int64_t(sizeof(T))) + 64 / int64_t(sizeof(T));
}

// The planes of the transformed filter U of pr for MR-row panels: their stride, and U itself
// in scratch slot 2 (transform_filter), which run() takes: the sub-problems of a dilated
// convolution that run one at a time share one (a 128 -> 128 3x3 at 27x27, dilation 2,
// batch 1 spent 18% of its time transforming the same filter four times).
template <typename T>
int64_t filter_plane_stride(const Problem<T>& pr, int MR) {
  return plane_stride<T>(round_up(pr.K, MR) * pieces(pr.R) * pieces(pr.S) * pr.C);
}
template <typename T>
const T* transformed_filter(const Problem<T>& pr) {
  const int MR = gemm::ukernel_for<T>(active_isa()).mr;
  const int64_t psu = filter_plane_stride(pr, MR);
  T* u = gemm::scratch<T>(2, 16 * psu);
  transform_filter(pr, rows_for_isa<T>(), MR, u, psu);
  return u;
}

// p rounded up to a multiple of 64 bytes (scratch buffers have 64 values to spare): B rows
// read in place then start on cache lines.
template <typename T>
T* align64(T* p) {
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// Pitch of rows of n values read several at a time: 64-byte multiples, never a multiple
// of 4 KiB (rows that far apart share L1 sets).
template <typename T>
int64_t row_pitch(int64_t n) {
  const int64_t line = 64 / int64_t(sizeof(T)), p = round_up(n, line);
  return p % (4096 / int64_t(sizeof(T))) == 0 ? p + line : p;
}

// Returns false when some output is not finite: an inf or NaN in the input or filter
// (or an overflow in a transform) spreads over whole tiles in Winograd's arithmetic,
// where the direct sum confines it to the outputs that read it; the caller then
// recomputes with the GEMM, so non-finite values land where torch puts them.
//
// Per block (Blocks): the input transform (transform_block), then per xi the GEMM
// M[xi] (K x positions) = U[xi] (K x Kd) * V[xi] (Kd x positions) over kk = (piece, c),
// with V read in place: row kk at an offset (the piece's column offset b picks V_b, its
// row offset a the position shift), then the output transform with bias and activation.
// Each thread runs whole blocks (only the transformed filter U is shared), or all threads
// share each block (see below). Every output's reduction order depends on C alone: results
// are bitwise the same for any thread count and blocking.
// u: pr's transformed_filter (null: run transforms it).
template <typename T>
bool run(const Problem<T>& pr, View4<const T> src, const T* bias, Activation act, T* y,
         T* preact, const T* u = nullptr) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  const Rows<T> rw = rows_for_isa<T>();
  const int MR = uk.mr, NR = uk.nr;
  const int64_t C = pr.C, K = pr.K, Mpad = round_up(K, MR), P = pr.P, Q = pr.Q;
  const int64_t TP = ceil_div(P, 2), TQ = ceil_div(Q, 2);
  const int64_t nph = pieces(pr.R), npw = pieces(pr.S), npc = nph * npw, Kd = npc * C;
  const int64_t psu = filter_plane_stride(pr, MR);
  if (!u) u = transformed_filter(pr);
  // Blocks whose transformed input and products fit the budget, at least two per thread
  // when there are enough tiles, each thread running whole blocks. Shared (one piece, and
  // fewer blocks than that): the threads take one block of up to a reduction block's
  // tiles at a time together, splitting its input transform by channel, its GEMMs by (xi,
  // rows of U) and its output transform by filter. Against whole blocks (same process, 2
  // threads): batch 1 at 14x14 (49 tiles: one block of 48 and one of 1) 128, 256 and 512
  // channels 1.42-1.51x, 512@7 batch 3 1.52x. With enough blocks it lost (256 channels at
  // 14x14 batch 32 and 28x28 batch 8: 0.85-0.88x).
  const int64_t per_pos = 16 * (npw * C + K) * static_cast<int64_t>(sizeof(T));
  const int64_t budget = npc == 1 ? kBlockBytesOnePiece : kBlockBytes;
  int64_t target = std::clamp<int64_t>(budget / per_pos, 2 * NR, gemm::kKC);
  Blocks bl(pr.N, TP, TQ, nph, target, NR);
  while (bl.nblk < 2 * num_threads() && target > 2 * NR)
    bl = Blocks(pr.N, TP, TQ, nph, target /= 2, NR);
  const bool shared = npc == 1 && bl.nblk < 2 * num_threads();
  if (shared) bl = Blocks(pr.N, TP, TQ, nph, gemm::kKC, NR);
  if (nph > 1) bl = tall_blocks(bl, pr.N, TP, TQ, nph, npw, C, Mpad, NR, sizeof(T));
  // V: one piece reads the GEMM's packed panels (tb columns), several dense rows (ldv),
  // which hold a block's positions plus what its last NR-column tile reads past them.
  const bool panels = npc == 1;
  const int64_t tb = round_up(bl.max_positions(), NR);
  const int64_t ldv = panels ? 0 : row_pitch<T>(bl.max_positions() + NR), ldm = row_pitch<T>(tb);
  const int64_t psv = plane_stride<T>(panels ? C * tb : npw * C * ldv);
  const int64_t psm = plane_stride<T>(K * ldm);
  std::vector<WinoIn> gi;  // per column offset b: the source shifted by 2b columns
  for (int64_t b = 0; b < npw; ++b)
    gi.push_back({pr.H, pr.W, pr.pt, pr.pl - 2 * b, src.stride[2], src.stride[3],
                  panels ? NR : int64_t(1) << 40, psv});
  const WinoOut go{P, Q, psm};
  const gemm::KBlocks kb(Kd);
  const bool relu = act.kind == ActKind::relu, other = !relu && act.kind != ActKind::none;
  // Row kk of B: in a packed panel, at (kk - k0)*NR; in dense rows, row (b, c) of V_b,
  // a*shift positions on for the piece (a, b).
  auto b_offsets = [&](int64_t shift, std::vector<int64_t>& boff) {
    boff.resize(static_cast<size_t>(Kd));
    for (int64_t kk = 0, q = 0; kk < Kd; ++kk) {
      if (kk >= kb.begin(q) + kb.size(q)) ++q;
      const int64_t pc = kk / C;
      boff[kk] = panels ? (kk - kb.begin(q)) * NR
                        : ((pc % npw) * C + kk % C) * ldv + (pc / npw) * shift;
    }
  };
  // M[xi] rows [m0, m1) (multiples of MR but the last) of a block of len positions.
  auto gemm_rows = [&](int xi, int64_t m0, int64_t m1, int64_t len, const int64_t* bo,
                       const T* v, T* mprod) {
    const T* vx = v + xi * psv;
    const T* ux = u + xi * psu;
    T* mx = mprod + xi * psm;
    for (int64_t q = 0; q < kb.nb; ++q) {
      const int64_t k0 = kb.begin(q), kc = kb.size(q);
      // A's MR-row panel stays in L1 across the block's columns (B rows come from L2).
      for (int64_t m = m0; m < m1; m += MR)
        for (int64_t j = 0; j < len; j += NR)
          uk.fn_off(static_cast<int>(std::min<int64_t>(MR, m1 - m)), kc, ux + Mpad * k0 + m * kc,
                    panels ? vx + tb * k0 + j * kc : vx + j, bo + k0, mx + m * ldm + j, ldm,
                    q > 0, nullptr, false, false);
    }
  };
  // Output transform, bias and activation of filters [k0, k1) (the real segments come
  // first); false when some output is not finite.
  auto output_rows = [&](const std::vector<Seg>& segs, int64_t k0, int64_t k1,
                         const T* mprod) {
    bool finite = true;
    for (int64_t k = k0; k < k1; ++k) {
      const T bk = bias ? bias[k] : T(0);
      auto plane = [&](const Seg& g) { return (g.n * K + k) * P * Q; };
      for (size_t i = 0; i < segs.size() && segs[i].real; ++i) {
        const Seg& g = segs[i];
        const int64_t o = plane(g);
        // Rows of 4 tiles go two at a time (one 8-tile vector).
        if (pairs_with_next(segs, i) && segs[i + 1].real) {
          const Seg& h = segs[i + 1];
          const int64_t oh = plane(h);
          bool ok = true;
          if (rw.out_pair(&go, mprod + k * ldm + g.col, g.ty, h.ty, bk, relu, y + o,
                          preact ? preact + o : nullptr, y + oh, preact ? preact + oh : nullptr,
                          &ok)) {
            finite &= ok;
            ++i;
            continue;
          }
        }
        finite &= rw.out(&go, mprod + k * ldm + g.col, g.ty, g.qa, g.qb, bk, relu, y + o,
                         preact ? preact + o : nullptr);
      }
      if (!other) continue;
      // Activations other than relu, in place, once the filter's segments are out: a run of
      // whole tile rows of one image is one contiguous call (per tile row, the calls' fixed
      // cost was about 6% of a 3x3 layer's time with gelu).
      for (size_t i = 0; i < segs.size() && segs[i].real;) {
        const Seg& g = segs[i];
        const int64_t x0 = 2 * g.qa, x1 = std::min(Q, 2 * g.qb), y0 = 2 * g.ty;
        size_t j = i + 1;
        if (x0 == 0 && x1 == Q)
          while (j < segs.size() && segs[j].real && segs[j].n == g.n &&
                 segs[j].ty == segs[j - 1].ty + 1 && segs[j].qa == 0 && 2 * segs[j].qb >= Q)
            ++j;
        const int64_t y1 = std::min(P, 2 * segs[j - 1].ty + 2);
        T* yr = y + plane(g) + y0 * Q + x0;
        bias_activation_serial(act, j > i + 1 ? EpilogueBlock<T>{yr, 0, yr, 0, 1, (y1 - y0) * Q}
                                              : EpilogueBlock<T>{yr, Q, yr, Q, y1 - y0, x1 - x0});
        i = j;
      }
    }
    return finite;
  };
  bool finite = true;
  if (shared) {
    T* v = align64(gemm::scratch<T>(3, 16 * psv + 64));
    T* mprod = align64(gemm::scratch<T>(5, 16 * psm + 64));
    const int64_t mblk = ceil_div(K, kMC), ntask = 16 * mblk;
    std::vector<Seg> segs;
    std::vector<int64_t> boff;
    int64_t len = 0;
#pragma omp parallel num_threads(num_threads()) reduction(&& : finite)
    for (int64_t blk = 0; blk < bl.nblk; ++blk) {
#pragma omp single
      {
        int64_t shift;
        len = bl.get(blk, segs, shift);
        b_offsets(shift, boff);
      }
      // (The implicit barriers order the steps: all of V before the GEMMs, all of M
      // before the output transform, that before the next block.)
#pragma omp for schedule(static)
      for (int64_t c = 0; c < C; ++c)
        transform_block(rw, gi, src, C, segs, ldv, kb, tb, v, c, c + 1);
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < ntask; ++t) {
        const int64_t m0 = t % mblk * kMC;
        gemm_rows(static_cast<int>(t / mblk), m0, std::min(K, m0 + kMC), len, boff.data(), v,
                  mprod);
      }
#pragma omp for schedule(static)
      for (int64_t k = 0; k < K; ++k) finite &= output_rows(segs, k, k + 1, mprod);
    }
    return finite;
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads()) reduction(&& : finite)
  for (int64_t blk = 0; blk < bl.nblk; ++blk) {
    T* v = align64(gemm::scratch<T>(3, 16 * psv + 64));
    T* mprod = align64(gemm::scratch<T>(5, 16 * psm + 64));
    // (Bound once: a thread_local used inside the tile loops costs a __tls_get_addr call
    // per micro-kernel call.)
    thread_local std::vector<int64_t> boff_tl;
    thread_local std::vector<Seg> segs_tl;
    std::vector<int64_t>& boff = boff_tl;
    std::vector<Seg>& segs = segs_tl;
    int64_t shift;
    const int64_t len = bl.get(blk, segs, shift);
    transform_block(rw, gi, src, C, segs, ldv, kb, tb, v);
    b_offsets(shift, boff);
    for (int xi = 0; xi < 16; ++xi) gemm_rows(xi, 0, K, len, boff.data(), v, mprod);
    finite &= output_rows(segs, 0, K, mprod);
  }
  return finite;
}

// Whether the weight gradient's threads share each block (run_weight): partial sums dU of
// kSharedDU and more (16 planes of Kd x Kpad).
template <typename T>
bool weight_shared(const ConvParams& p) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  const int64_t Kd = pieces(p.R) * pieces(p.S) * p.C;
  return 16 * Kd * round_up(p.K, uk.nr) * static_cast<int64_t>(sizeof(T)) >= kSharedDU;
}

// The weight gradient, dg = G^T [ sum_t (A dY_t A^T) (.) V_t ] G per (filter, channel,
// piece), over every tile t: per xi and piece the GEMM
//   dU[xi] (C x K) = V[xi] (C x T) * dM[xi]^T (T x K),   dM = A dY A^T,
// with V read in place as rows (the input transform's lanes are tiles; a piece a tile rows
// down is the same rows shifted, see Blocks) and dM formed in the B panels' layout (from
// grad_output transposed, wino_grad_panel); the reduction runs over the real tiles alone.
//
// Blocks depend on the shape only, and fall into a fixed, shape-only number of chunks
// whose partial sums are added in chunk order, or (large C x K) run one after the other
// into one sum: results are bitwise the same for any thread count. dw is (K, C, R, S),
// contiguous. Returns false when some gradient is not finite (see run()).
template <typename T>
bool run_weight(const ConvParams& p, View4<const T> x, View4<const T> dy, T* dw) {
  const UKernel<T> uk = gemm::ukernel_for<T>(active_isa());
  const Rows<T> rw = rows_for_isa<T>();
  const int NR = uk.nr;
  const int64_t C = p.C, K = p.K, Kpad = round_up(K, NR), P = p.P, Q = p.Q;
  const int64_t TP = ceil_div(P, 2), TQ = ceil_div(Q, 2), N = p.N;
  const int64_t nph = pieces(p.R), npw = pieces(p.S), npc = nph * npw, Kd = npc * C;
  const int64_t psu = Kd * Kpad;  // a chunk's partial sums: dU[xi] dense, row kk, column k
  // Shared: with partial sums of kSharedDU and more (256 channels on both sides), the
  // threads take one block at a time together, splitting its transforms by channel and its
  // GEMMs by rows of dU, into one dU; blocks as long as a GEMM reduction block. Otherwise
  // each chunk of blocks runs on one thread into its own dU, summed afterwards: for large
  // dU that wrote and read it once per chunk (2 x 16.8 MB at 512 channels).
  const bool shared = weight_shared<T>(p);
  const Blocks bl = shared ? Blocks(N, TP, TQ, nph, std::min(N * TP * TQ, gemm::kKC), NR)
                           : weight_blocks(N, TP, TQ, nph, NR);
  const int64_t nblk = bl.nblk, pos = bl.max_positions();
  const int64_t ldv = row_pitch<T>(pos);
  const int64_t psv = plane_stride<T>(npw * C * ldv), psp = plane_stride<T>(Kpad * pos);
  int64_t nch = shared ? 1 : std::min<int64_t>(nblk, 8);
  while (nch > 1 && nch * 16 * psu * static_cast<int64_t>(sizeof(T)) > (int64_t(64) << 20)) --nch;
  T* part = gemm::scratch<T>(2, nch * 16 * psu);
  std::vector<WinoIn> gi;  // per column offset b: the source shifted by 2b columns
  for (int64_t b = 0; b < npw; ++b)
    gi.push_back({p.H, p.W, p.pad_top, p.pad_left - 2 * b, x.stride[2], x.stride[3],
                  int64_t(1) << 40, psv});  // one panel: dense rows
  // The steps of one block (segments segs, shift), each over a range of its work.
  // V of channels [c0, c1).
  auto transform_v = [&](const std::vector<Seg>& segs, int64_t c0, int64_t c1, T* v) {
    transform_block(rw, gi, x, C, segs, ldv, gemm::KBlocks(C), 0, v, c0, c1);
  };
  // grad_output row `row` of image n, columns [col0, col0 + cols) (zero past the plane),
  // transposed: rt[j*Kpad + k], zero for k >= K. 8 channels at a time by 8x8 transposes.
  auto transpose_row = [&](int64_t n, int64_t row, int64_t col0, int64_t cols, T* rt) {
    const int64_t valid = row < P ? std::clamp<int64_t>(Q - col0, 0, cols) : 0;
    const T* base = dy.data + n * dy.stride[0] + row * dy.stride[2];
    int64_t k = 0;
#if defined(PYCONV_X86)
    if constexpr (std::is_same_v<T, float>) {
      if (dy.stride[3] == 1 && valid > 0 && active_isa() >= Isa::avx2)
        for (; k + 8 <= K; k += 8) {
          const float* rows[8];
          for (int q = 0; q < 8; ++q) rows[q] = base + (k + q) * dy.stride[1];
          avx2::transpose8_rows_float(rows, col0, valid, rt + k, Kpad);
          for (int64_t j = valid; j < cols; ++j)
            for (int q = 0; q < 8; ++q) rt[j * Kpad + k + q] = T(0);
        }
    }
#endif
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t kk = k; kk < Kpad; ++kk)
        rt[j * Kpad + kk] = kk < K && j < valid
                                ? base[kk * dy.stride[1] + (col0 + j) * dy.stride[3]] : T(0);
  };
  // dM[xi] of the real segments [s0, s1) as the GEMM's B operand: NR-column panels (column
  // k) per reduction block of positions, planes xi psp apart. Per segment its two
  // grad_output rows transposed, then the transform with the channels as the vector
  // (wino_grad_panel), tiles split where a reduction block ends.
  auto grad_panels = [&](const std::vector<Seg>& segs, size_t s0, size_t s1, int64_t len,
                         T* rt, T* dmp) {
    const gemm::KBlocks kb(len);
    for (size_t i = s0; i < s1; ++i) {
      const Seg& g = segs[i];
      const int64_t nt = g.qb - g.qa, cols = 2 * nt;
      T* r0 = rt;
      T* r1 = rt + cols * Kpad;
      transpose_row(g.n, 2 * g.ty, 2 * g.qa, cols, r0);
      transpose_row(g.n, 2 * g.ty + 1, 2 * g.qa, cols, r1);
      for (int64_t a = 0; a < nt;) {
        const int64_t pos = g.col + a, bi = kb.index(pos), t0 = kb.begin(bi), tc = kb.size(bi);
        const int64_t m = std::min(nt - a, t0 + tc - pos);
        for (int64_t k0 = 0; k0 < Kpad; k0 += NR)
          rw.grad_panel(r0 + 2 * a * Kpad + k0, r1 + 2 * a * Kpad + k0, m, Kpad, NR,
                        dmp + Kpad * t0 + k0 * tc + (pos - t0) * NR, psp);
        a += m;
      }
    }
  };
  // The real segments come first (the rest only feed V through a piece's shift).
  auto real_segs = [](const std::vector<Seg>& segs) {
    size_t n = 0;
    while (n < segs.size() && segs[n].real) ++n;
    return n;
  };
  const int64_t nrt = 4 * TQ * Kpad;  // two transposed rows of a tile row
  // dU[xi] rows [pc*C + m0, pc*C + m1) of piece pc (a, b): rows c of V_b, a tile rows on
  // (a ragged last panel of rows read in place too: C padded to whole panels with zero rows
  // ran CIFAR-10's 32-channel weight gradients 1.07-1.08x slower).
  auto gemm_rows = [&](int xi, int64_t pc, int64_t m0, int64_t m1, int64_t len, int64_t shift,
                       bool first, const T* v, const T* dmp, T* dU) {
    const T* px = dmp + xi * psp;
    auto pb = [&](int64_t bj0, int64_t, int64_t t0, int64_t kc, T*) -> const T* {
      return px + Kpad * t0 + (bj0 / NR) * NR * kc;
    };
    const DenseC<T> st{{}, dU + xi * psu, Kpad, K, NR};
    const T* va = v + xi * psv + (pc % npw) * C * ldv + (pc / npw) * shift;
    auto pa = [&](int64_t am0, int64_t, int64_t t0, int64_t, T*) {
      return gemm::ABlock<T>{va + (am0 - pc * C) * ldv + t0, ldv};
    };
    gemm::gemm_task<T>(uk, pc * C + m0, pc * C + m1, 0, K, 0, len, pa, pb, st, first, true);
  };
  if (shared) {
    T* v = gemm::scratch<T>(3, 16 * psv);
    T* dmp = gemm::scratch<T>(6, 16 * psp);
    const int64_t mcb = ceil_div(C, kMC), ntask = 16 * npc * mcb;
    std::vector<Seg> segs;
    int64_t len = 0, shift = 0;
    size_t nreal = 0;
#pragma omp parallel num_threads(num_threads())
    {
    T* rt = gemm::scratch<T>(5, nrt);
    for (int64_t blk = 0; blk < nblk; ++blk) {
#pragma omp single
      {
        len = bl.get(blk, segs, shift);
        nreal = real_segs(segs);
      }
      // (The implicit barriers order the steps: every V and dM panel before the GEMMs,
      // the GEMMs before the next block's transforms.)
#pragma omp for schedule(static) nowait
      for (int64_t c = 0; c < C; ++c) transform_v(segs, c, c + 1, v);
#pragma omp for schedule(static)
      for (size_t i = 0; i < nreal; ++i) grad_panels(segs, i, i + 1, len, rt, dmp);
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < ntask; ++t) {
        const int64_t m0 = t % mcb * kMC;
        gemm_rows(static_cast<int>(t / (npc * mcb)), t / mcb % npc, m0, std::min(C, m0 + kMC),
                  len, shift, blk == 0, v, dmp, part);
      }
    }
    }
  } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
    for (int64_t ch = 0; ch < nch; ++ch) {
      T* v = gemm::scratch<T>(3, 16 * psv);
      T* rt = gemm::scratch<T>(5, nrt);
      T* dmp = gemm::scratch<T>(6, 16 * psp);
      T* dU = part + ch * 16 * psu;
      int64_t b0, b1;
      split_range(nblk, nch, ch, b0, b1);
      thread_local std::vector<Seg> segs_tl;
      std::vector<Seg>& segs = segs_tl;  // (bound once: see run())
      for (int64_t blk = b0; blk < b1; ++blk) {
        int64_t shift;
        const int64_t len = bl.get(blk, segs, shift);
        transform_v(segs, 0, C, v);
        grad_panels(segs, 0, real_segs(segs), len, rt, dmp);
        for (int xi = 0; xi < 16; ++xi)
          for (int64_t pc = 0; pc < npc; ++pc)
            for (int64_t m0 = 0; m0 < C; m0 += kMC)
              gemm_rows(xi, pc, m0, std::min(C, m0 + kMC), len, shift, blk == b0, v, dmp, dU);
      }
    }
  }
  // dU summed over chunks (in order), then dg = G^T dU G for every (piece, channel, filter),
  // in tasks of CB rows kk of one piece: each plane's rows copied as one contiguous run,
  // the transform vectorised along the filters (wino_grad_filter), and dw (K, C, R, S)
  // written as runs of a filter's CB channels. Row by row, scalar stores C*R*S values
  // apart, 512@7's weight gradient spent 4.7 of its 11 ms here, now 1.6 (1.31x in all).
  constexpr int64_t CB = 8, KB = 16;
  const int64_t ncb = ceil_div(C, CB), ntask = npc * ncb, RS = p.R * p.S;
  bool finite = true;
#pragma omp parallel for schedule(static) num_threads(num_threads()) reduction(&& : finite)
  for (int64_t t = 0; t < ntask; ++t) {
    const int64_t pc = t / ncb, c0 = t % ncb * CB, cn = std::min(CB, C - c0);
    const int64_t ph = pc / npw, pw = pc % npw, run = cn * Kpad;
    thread_local std::vector<T> acc, gb;
    // acc[(xi*CB + c)*Kpad + k] (+KB: the last block's reads past Kpad, never stored)
    acc.resize(static_cast<size_t>(16 * CB * Kpad + KB));
    gb.resize(static_cast<size_t>(KB * CB * 9));
    for (int xi = 0; xi < 16; ++xi) {
      T* a = acc.data() + xi * CB * Kpad;
      const T* src = part + xi * psu + (pc * C + c0) * Kpad;
      std::copy(src, src + run, a);
      for (int64_t ch = 1; ch < nch; ++ch)
        for (int64_t q = 0; q < run; ++q) a[q] += src[ch * 16 * psu + q];
    }
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      const int64_t kn = std::min(KB, K - k0);
      const T* u = acc.data() + k0;
      if (RS == 9) {  // one piece: its taps are the filter's, runs of cn*9 values in dw
        finite &= rw.grad_filter(u, CB * Kpad, Kpad, cn, kn, dw + (k0 * C + c0) * 9, C * 9);
        continue;
      }
      finite &= rw.grad_filter(u, CB * Kpad, Kpad, cn, kn, gb.data(), CB * 9);
      // the piece's taps (rows 2ph + r, columns 2pw + s; r = 0 belongs to the previous
      // piece when ph > 0, likewise s; none past the kernel)
      for (int64_t l = 0; l < kn; ++l) {
        T* d = dw + ((k0 + l) * C + c0) * RS;
        const T* gv = gb.data() + l * CB * 9;
        for (int64_t c = 0; c < cn; ++c, d += RS, gv += 9)
          for (int r = (ph > 0); r < 3 && 2 * ph + r < p.R; ++r)
            for (int s_ = (pw > 0); s_ < 3 && 2 * pw + s_ < p.S; ++s_)
              d[(2 * ph + r) * p.S + 2 * pw + s_] = gv[r * 3 + s_];
      }
    }
  }
  return finite;
}

// Whether the auto mode picks Winograd: enough channels for the GEMMs to dominate the
// transforms (kMinInChannels, kMinChannels), and enough tiles to share among threads in
// blocks (the choice must not depend on the thread count: results are bitwise the same for
// any). A dilated weight gradient's sub-problems run as one batch, from 3/2 kMinTiles
// tiles in it: a block's partial sums are 16*C*K values however few tiles it has. Against
// the GEMM (same process, 2 threads): 256@28 d2 batch 2 (392 tiles) 1.20x, 64@28 and
// 128@28 batch 2 1.08-1.14x, 256@28 and 128@28 batch 1 (196) 1.04-1.09x; 512@14 and
// 128@14 batch 2 (128) 0.90-0.96x.
bool one_batch(const ConvParams& p);

bool worth_it(const ConvParams& p, int64_t C, int64_t K, int64_t Q, int64_t ntile,
              double tile_use, bool weight, bool shared, bool backward_data, size_t elem) {
  const bool dilated = p.dil_h > 1 || p.dil_w > 1;
  const bool wide3 = p.R == 3 && C >= kWide3x3 && K >= kWide3x3;
  const int64_t min_tiles =
      !weight ? (p.R != 3 ? kMinTiles
                 : !wide3 ? kMinTiles3x3
                 : tile_use < kFullTileUse5 ? kMinTilesWideRagged3x3
                                            : kMinTilesWide3x3)
      : dilated ? 3 * kMinTiles / 2
                : (shared ? kMinTilesShared : kMinTiles);
  // 5x5: rows of kMinRow5 outputs; the forward and backward-data also enough tiles on
  // ragged grids, and long reductions or padding left to pixel rows (kFewOut5, kManyIn5,
  // kFewOutPad5, kAlignedRow). (Evaluated for 5x5 only: the padding shares cost a pass
  // over the taps.)
  const auto ok5 = [&] {
    if (Q < kMinRow5) return false;
    if (weight) return ntile >= kMinTiles5Weight && !wide_tile_outputs(K, elem);
    const int64_t Kd = C * p.R * p.S;
    const bool aligned = tile_use >= 1.0 && aligned_row(Q);
    const bool rows_ok = !long_reduction(p, K, Kd, elem) ||
                         (C < kManyIn5 && (K > kFewOut5 || ntile >= kMinTiles5FewOut) &&
                          (K > kFewOutPad5 || aligned ||
                           (landed(p, backward_data) >= kMinLandedFewOut5 &&
                            (backward_data || C < kMidIn5))));
    return (tile_use >= kFullTileUse5 || ntile >= kMinTiles5Ragged) && rows_ok &&
           (aligned || !skips_padding(p, K, Kd, elem, backward_data));
  };
  if (!weight && dilated && Q < kMinRowDilated &&
      (C < kMinInChannelsDilated || K <= kMaxOutDilated ||
       (K <= kFewOutDilated && tile_use < kFullTileUseFew) ||
       (ntile < kMinTilesEachDilated * p.dil_h * p.dil_w && !one_batch(p))))
    return false;
  const bool channels =
      !weight ? C >= kMinInChannels
              : (C >= kMinChannels && K >= kMinChannels) ||
                    (Q >= kMinRowFewChannels &&
                     ((C >= kFewChannels && K >= kManyChannels) ||
                      (K >= kFewOutChannels && C >= kManyChannels)));
  return p.R == p.S && (p.R == 3 || (p.R == 5 && ok5())) && channels && ntile >= min_tiles;
}

bool shape_ok(const ConvParams& p) {
  return p.groups == 1 && p.R >= 2 && p.S >= 2 && p.R <= 7 && p.S <= 7 && p.stride_h == 1 &&
         p.stride_w == 1 && p.dil_h >= 1 && p.dil_w >= 1;
}

bool use(const ConvParams& p, int64_t N, int64_t C, int64_t K, int64_t P, int64_t Q,
         size_t elem, bool weight = false, bool shared = false, bool backward_data = false) {
  const auto mode = static_cast<KernelMode>(g_mode.load(std::memory_order_relaxed));
  if (mode == KernelMode::off || !shape_ok(p) || ceil_div(Q, 2) > kMaxTileRow - 1)
    return false;
  // (A dilated problem by the size of its undilated sub-problems, which run as one batch of
  // N * dil_h * dil_w images: see Polyphase.)
  const int64_t Ps = ceil_div(P, p.dil_h), Qs = ceil_div(Q, p.dil_w);
  const int64_t tiles = ceil_div(Ps, 2) * ceil_div(Qs, 2);
  const double tile_use = double(Ps * Qs) / double(4 * tiles);
  const int64_t ntile = N * p.dil_h * p.dil_w * tiles;
  return mode == KernelMode::on ||
         ((weight || tile_use >= kMinTileUse) &&
          worth_it(p, C, K, Qs, ntile, tile_use, weight, shared, backward_data, elem));
}

template <typename T>
Problem<T> forward_problem(const ConvParams& p, View4<const T> w) {
  return {p.N, p.C, p.H, p.W, p.K, p.P, p.Q, p.pad_top, p.pad_left, p.R, p.S,
          w.data, w.stride[0], w.stride[1], w.stride[2], w.stride[3]};
}

// dx[c, h, w] = sum_{k, r, s} dy[k, h - (R-1 - pt) + r, w - (S-1 - pl) + s]
//                               * w[k, c, R-1 - r, S-1 - s]
template <typename T>
Problem<T> backward_data_problem(const ConvParams& p, View4<const T> w) {
  return {p.N, p.K, p.P, p.Q, p.C, p.H, p.W, p.R - 1 - p.pad_top, p.S - 1 - p.pad_left, p.R, p.S,
          w.data + (p.R - 1) * w.stride[2] + (p.S - 1) * w.stride[3], w.stride[1], w.stride[0],
          -w.stride[2], -w.stride[3]};
}

// A dilated convolution (stride 1, dilation dh x dw) as dh*dw undilated ones: output rows
// a, a + dh, a + 2dh, ... read only source rows of one residue ra = (a - pt) mod dh, so
// the output's polyphase sub-image (a, b) is the undilated convolution of the source's
// sub-image (ra, rb), rows and columns offset by -qa, -qb (a - pt = dh*qa + ra). As a runs
// over [0, dh), ra does too: every source row belongs to exactly one sub-problem (which
// backward-data relies on). The sub-images are copied out (split_phases) and the results
// merged back (merge_phases), one pass over each array; when the sub-problems all have one
// shape (H and W multiples of the dilation, the usual "same" padding) they run as one batch
// of N * dil_h * dil_w images: one call, one filter transform, dil_h * dil_w times the tiles
// to share among the threads.
struct Polyphase {
  int64_t a, b, ra, rb;  // output and source residues
  ConvParams q;          // the undilated sub-problem (pad_top/left = -qa/-qb)
};

using gemm::floor_div;

// The sub-problems, or none when one of them would be empty (then the GEMM runs).
std::vector<Polyphase> polyphases(const ConvParams& p) {
  std::vector<Polyphase> fs;
  for (int64_t a = 0; a < p.dil_h; ++a)
    for (int64_t b = 0; b < p.dil_w; ++b) {
      const int64_t qa = floor_div(a - p.pad_top, p.dil_h), qb = floor_div(b - p.pad_left, p.dil_w);
      Polyphase f{a, b, a - p.pad_top - p.dil_h * qa, b - p.pad_left - p.dil_w * qb, p};
      f.q.H = phase_len(p.H, f.ra, p.dil_h), f.q.W = phase_len(p.W, f.rb, p.dil_w);
      f.q.P = phase_len(p.P, a, p.dil_h), f.q.Q = phase_len(p.Q, b, p.dil_w);
      f.q.dil_h = f.q.dil_w = 1;
      f.q.pad_top = -qa, f.q.pad_left = -qb;
      if (f.q.H * f.q.W * f.q.P * f.q.Q == 0) return {};
      fs.push_back(f);
    }
  return fs;
}

// Runs the sub-problems in batches: all of them at once when they share one shape (sub-
// problem i0 + i is images [i*N, (i+1)*N) of the batch), else one at a time.
// fn(qb, i0): qb the batch's problem (N * n images) of sub-problems [i0, i0 + n).
template <class Fn>
bool for_each_batch(const std::vector<Polyphase>& fs, Fn&& fn) {
  size_t n = fs.size();
  for (const Polyphase& f : fs) {
    const ConvParams &q = f.q, &q0 = fs[0].q;
    if (q.H != q0.H || q.W != q0.W || q.P != q0.P || q.Q != q0.Q ||
        q.pad_top != q0.pad_top || q.pad_left != q0.pad_left)
      n = 1;
  }
  for (size_t i0 = 0; i0 < fs.size(); i0 += n) {
    ConvParams qb = fs[i0].q;
    qb.N *= static_cast<int64_t>(n);
    if (!fn(qb, i0)) return false;
  }
  return true;
}

// Whether p's polyphase sub-problems run as one batch (one shape).
bool one_batch(const ConvParams& p) {
  const std::vector<Polyphase> fs = polyphases(p);
  int n = 0;
  for_each_batch(fs, [&n](const ConvParams&, size_t) { return ++n > 0; });
  return n == 1;
}

// Where the sub-problems' sub-images lie, each side in one buffer (a batch's sub-problems
// contiguous in it): the x side, the forward's source (residues (ra, rb); N*C*q.H*q.W values
// each), and the y side, its result (residues (a, b); N*K*q.P*q.Q values); and the tables
// by residue (r*dil_w + c) that split_phases and merge_phases take.
struct PhaseLayout {
  std::vector<int64_t> xoff, yoff, xkey, ykey;
  int64_t nx = 0, ny = 0;
  PhaseLayout(const std::vector<Polyphase>& fs, int64_t dw) {
    for (const Polyphase& f : fs) {
      xoff.push_back(nx), yoff.push_back(ny);
      xkey.push_back(f.ra * dw + f.rb), ykey.push_back(f.a * dw + f.b);
      nx += f.q.N * f.q.C * f.q.H * f.q.W, ny += f.q.N * f.q.K * f.q.P * f.q.Q;
    }
  }
  template <typename T>
  static std::vector<T*> table(T* base, const std::vector<int64_t>& off,
                               const std::vector<int64_t>& key) {
    std::vector<T*> t(off.size());
    for (size_t i = 0; i < off.size(); ++i) t[static_cast<size_t>(key[i])] = base + off[i];
    return t;
  }
};

template <typename T>
View4<const T> dense(const T* data, int64_t N, int64_t C, int64_t H, int64_t W) {
  View4<const T> v;
  v.data = data;
  v.size[0] = N, v.size[1] = C, v.size[2] = H, v.size[3] = W;
  v.stride[0] = C * H * W, v.stride[1] = H * W, v.stride[2] = W, v.stride[3] = 1;
  return v;
}

}  // namespace

void set_winograd_mode(KernelMode m) { g_mode.store(static_cast<int>(m)); }

template <typename T>
bool winograd_forward(const ConvParams& p, View4<const T> x, View4<const T> w, const T* bias,
                      Activation act, T* y, T* preact) {
  if (!use(p, p.N, p.C, p.K, p.P, p.Q, sizeof(T))) return false;
  if (p.N * p.K * p.P * p.Q == 0) return true;
  if (p.dil_h == 1 && p.dil_w == 1) return run(forward_problem(p, w), x, bias, act, y, preact);
  const std::vector<Polyphase> fs = polyphases(p);
  if (fs.empty()) return false;
  const T* u = transformed_filter(forward_problem(fs[0].q, w));
  const PhaseLayout L(fs, p.dil_w);
  T* xb = gemm::scratch<T>(7, L.nx);
  T* yb = gemm::scratch<T>(8, L.ny);
  T* zb = preact ? gemm::scratch<T>(9, L.ny) : nullptr;
  split_phases(x, p.dil_h, p.dil_w, L.table(xb, L.xoff, L.xkey).data());
  if (!for_each_batch(fs, [&](const ConvParams& qb, size_t i0) {
        return run(forward_problem(qb, w), dense<T>(xb + L.xoff[i0], qb.N, qb.C, qb.H, qb.W),
                   bias, act, yb + L.yoff[i0], zb ? zb + L.yoff[i0] : nullptr, u);
      }))
    return false;
  merge_phases(L.table(yb, L.yoff, L.ykey).data(), p.N * p.K, p.P, p.Q, p.dil_h, p.dil_w, y);
  if (preact)
    merge_phases(L.table(zb, L.yoff, L.ykey).data(), p.N * p.K, p.P, p.Q, p.dil_h, p.dil_w,
                 preact);
  return true;
}

template <typename T>
bool winograd_backward_data(const ConvParams& p, View4<const T> dy, View4<const T> w, T* dx) {
  if (!use(p, p.N, p.K, p.C, p.H, p.W, sizeof(T), false, false, true)) return false;
  if (p.N * p.C * p.H * p.W == 0) return true;
  const T* none = nullptr;
  if (p.dil_h == 1 && p.dil_w == 1)
    return run(backward_data_problem(p, w), dy, none, Activation{}, dx, static_cast<T*>(nullptr));
  const std::vector<Polyphase> fs = polyphases(p);
  if (fs.empty()) return false;
  const T* u = transformed_filter(backward_data_problem(fs[0].q, w));
  // Source sub-image (ra, rb) of dx from dy's (a, b).
  const PhaseLayout L(fs, p.dil_w);
  T* db = gemm::scratch<T>(7, L.ny);
  T* xb = gemm::scratch<T>(8, L.nx);
  split_phases(dy, p.dil_h, p.dil_w, L.table(db, L.yoff, L.ykey).data());
  if (!for_each_batch(fs, [&](const ConvParams& qb, size_t i0) {
        return run(backward_data_problem(qb, w), dense<T>(db + L.yoff[i0], qb.N, qb.K, qb.P, qb.Q),
                   none, Activation{}, xb + L.xoff[i0], static_cast<T*>(nullptr), u);
      }))
    return false;
  merge_phases(L.table(xb, L.xoff, L.xkey).data(), p.N * p.C, p.H, p.W, p.dil_h, p.dil_w, dx);
  return true;
}

template <typename T>
bool winograd_backward_weight(const ConvParams& p, View4<const T> dy, View4<const T> x, T* dw) {
  const bool shared = weight_shared<T>(p);
  if (!use(p, p.N, p.C, p.K, p.P, p.Q, sizeof(T), true, shared)) return false;
  const bool dilated = p.dil_h > 1 || p.dil_w > 1;
  const bool autom =
      static_cast<KernelMode>(g_mode.load(std::memory_order_relaxed)) != KernelMode::on;
  // Auto: not as a single block of chunks (one thread; a 512-channel 7x7 batch of 8); the
  // shared schedule runs a single block on every thread.
  if (autom && !shared &&
      weight_blocks(p.N, ceil_div(p.P, 2 * p.dil_h), ceil_div(p.Q, 2 * p.dil_w), pieces(p.R),
                    gemm::ukernel_for<T>(active_isa()).nr).nblk < 2)
    return false;
  const int64_t KCRS = p.K * p.C * p.R * p.S;
  if (KCRS == 0) return true;
  if (p.N * p.P * p.Q == 0) {
    for (int64_t i = 0; i < KCRS; ++i) dw[i] = T(0);
    return true;
  }
  if (!dilated) return run_weight(p, x, dy, dw);
  // The sum of the sub-problems' weight gradients: one batch, or in a fixed order.
  const std::vector<Polyphase> fs = polyphases(p);
  if (fs.empty()) return false;
  const PhaseLayout L(fs, p.dil_w);
  T* xb = gemm::scratch<T>(7, L.nx);
  T* db = gemm::scratch<T>(8, L.ny);
  split_phases(x, p.dil_h, p.dil_w, L.table(xb, L.xoff, L.xkey).data());
  split_phases(dy, p.dil_h, p.dil_w, L.table(db, L.yoff, L.ykey).data());
  return for_each_batch(fs, [&](const ConvParams& qb, size_t i0) {
    T* part = i0 == 0 ? dw : gemm::scratch<T>(9, KCRS);
    if (!run_weight(qb, dense<T>(xb + L.xoff[i0], qb.N, qb.C, qb.H, qb.W),
                    dense<T>(db + L.yoff[i0], qb.N, qb.K, qb.P, qb.Q), part))
      return false;
    if (i0 > 0)
      for (int64_t j = 0; j < KCRS; ++j) dw[j] += part[j];
    return true;
  });
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

bool winograd_aligned(const ConvParams& p) {
  return p.P % 2 == 0 && p.Q % 2 == 0 && aligned_row(p.Q);
}

}  // namespace pyconv::fast
