// Winograd F(2x2, 3x3) transforms of one tile row, vectorised along the row by the
// compiler (the weight gradient's grad_output transform along the channels instead).
// Included by conv_winograd.cpp (baseline), conv_winograd_avx2.cpp (-mavx2 -mfma) and
// conv_winograd_avx512.cpp (AVX-512 flags: the AVX2 code and the 16-lane input
// transform), each inside its own namespace; like depthwise_plane.h, kept free of std::
// and shared inline functions so no ISA-specific code can be merged into the baseline
// build by the linker.

// The SIMD builds' includers include <immintrin.h> (not here: this file is included
// inside a namespace).

#include "common/store_lanes.h"

#define PYCONV_WINO_MAXROW 256  // tiles per row + 1 (stack buffers)
// Row pitch of the stack buffers: rows 4 KiB apart would alias (a load stalls behind an
// earlier store to the same address modulo 4 KiB).
#define PYCONV_WINO_PITCH (PYCONV_WINO_MAXROW + 8)

struct WinoIn {
  int64_t H, W, pt, pl, s2, s3;  // source plane: rows, columns, offsets, strides
  int64_t NR, ps;                // panel width (a power of two), stride between planes xi
};

// Where column t of the panels of width NR (a power of two: no division) starts.
static inline int64_t wino_panel_pos(int64_t t, int64_t NR, int64_t kc) {
  const int sh = __builtin_ctzll(static_cast<unsigned long long>(NR));
  return (t >> sh) * NR * kc + (t & (NR - 1));
}

// B^T d B of one 4x4 tile, d[a][j] = row a, column j; v[4i + j].
template <typename T>
static inline void wino_in_tile(const T (&d)[4][4], T* v) {
  T c[4][4];  // B^T d: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
  for (int j = 0; j < 4; ++j) {
    c[0][j] = d[0][j] - d[2][j];
    c[1][j] = d[1][j] + d[2][j];
    c[2][j] = d[2][j] - d[1][j];
    c[3][j] = d[1][j] - d[3][j];
  }
  for (int i = 0; i < 4; ++i) {  // (B^T d) B: the same combinations along the row
    v[4 * i + 0] = c[i][0] - c[i][2];
    v[4 * i + 1] = c[i][1] + c[i][2];
    v[4 * i + 2] = c[i][2] - c[i][1];
    v[4 * i + 3] = c[i][1] - c[i][3];
  }
}

#if defined(__AVX2__)
// Even and odd elements of a (x0..x7) then b (x8..x15).
static inline void wino_deinterleave(__m256 a, __m256 b, __m256& ev, __m256& od) {
  ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
  od = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}

// Lanes [lo, hi) set.
static inline __m256i wino_lanes(int64_t lo, int64_t hi) {
  lo = lo < -1 ? -1 : (lo > 9 ? 9 : lo);
  hi = hi < -1 ? -1 : (hi > 9 ? 9 : hi);
  const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lo)), i),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(hi)), i));
}

// The vertical half of B^T d B for tiles q .. q+7 of source rows p[a] (tile-space column
// 2q + j of tile q; source column 2q + j - pl): c[i][j], lane l for tile q + l, column j
// of its 4. Bounded: loads masked to source columns [0, W) (masked-off lanes read
// nothing); otherwise all 18 columns must be inside the row. Lanes 4..7 come from columns
// 8..15 of the same rows (pb == p, ob == 8) or, for rows of 4 tiles, from columns 0..7 of
// the next tile row's source rows pb (ob == 0).
template <bool Bounded>
__attribute__((always_inline)) static inline void wino_in_cols(
    const float* const* p, const float* const* pb, int64_t ob, int64_t q, int64_t pl, int64_t W,
    __m256 (&c)[4][4]) {
  for (int h = 0; h < 2; ++h) {  // columns 2q + 2h + (0..15): offsets 2h (even), 2h+1 (odd)
    const int64_t o = 2 * q + 2 * h;
    __m256 a[4], b[4];
    if constexpr (Bounded) {  // (masked loads only where some lane is outside the row)
      auto load4 = [&](const float* const* rows, int64_t off, __m256* v) {
        if (pl - off <= 0 && W + pl - off >= 8) {
          for (int r = 0; r < 4; ++r) v[r] = _mm256_loadu_ps(rows[r] + off);
        } else {
          const __m256i mk = wino_lanes(pl - off, W + pl - off);
          for (int r = 0; r < 4; ++r) v[r] = _mm256_maskload_ps(rows[r] + off, mk);
        }
      };
      load4(p, o, a);
      load4(pb, o + ob, b);
    } else {
      for (int r = 0; r < 4; ++r)
        a[r] = _mm256_loadu_ps(p[r] + o), b[r] = _mm256_loadu_ps(pb[r] + o + ob);
    }
    wino_deinterleave(_mm256_sub_ps(a[0], a[2]), _mm256_sub_ps(b[0], b[2]), c[0][2 * h], c[0][2 * h + 1]);
    wino_deinterleave(_mm256_add_ps(a[1], a[2]), _mm256_add_ps(b[1], b[2]), c[1][2 * h], c[1][2 * h + 1]);
    wino_deinterleave(_mm256_sub_ps(a[2], a[1]), _mm256_sub_ps(b[2], b[1]), c[2][2 * h], c[2][2 * h + 1]);
    wino_deinterleave(_mm256_sub_ps(a[1], a[3]), _mm256_sub_ps(b[1], b[3]), c[3][2 * h], c[3][2 * h + 1]);
  }
}

// The horizontal half: B^T d B of the 8 tiles, plane xi to d + xi*ps.
// (Always inlined, as wino_in_cols: as calls, their 16 vectors went through the stack.)
__attribute__((always_inline)) static inline void wino_in_store(const __m256 (&c)[4][4],
                                                                int64_t ps, float* d) {
  __m256 v[16];
  for (int i = 0; i < 4; ++i) {
    v[4 * i + 0] = _mm256_sub_ps(c[i][0], c[i][2]);
    v[4 * i + 1] = _mm256_add_ps(c[i][1], c[i][2]);
    v[4 * i + 2] = _mm256_sub_ps(c[i][2], c[i][1]);
    v[4 * i + 3] = _mm256_sub_ps(c[i][1], c[i][3]);
  }
  for (int xi = 0; xi < 16; ++xi) _mm256_storeu_ps(d + xi * ps, v[xi]);
}

// The 8 tiles of wino_in_cols, all lanes stored, out of line: inlined into wino_in_groups'
// loop, next to its blending case, the registers spilled (CIFAR-10 conv3's backward-data
// transform 1.3x slower).
__attribute__((noinline)) static void wino_in_8tiles_call(const float* const* p,
                                                          const float* const* pb, int64_t ob,
                                                          int64_t q, bool inside,
                                                          const WinoIn& g, float* d) {
  __m256 c[4][4];
  if (inside)
    wino_in_cols<false>(p, pb, ob, q, g.pl, g.W, c);
  else
    wino_in_cols<true>(p, pb, ob, q, g.pl, g.W, c);
  wino_in_store(c, g.ps, d);
}
#endif

#if defined(__AVX512F__)
// Two whole groups in one pass (AVX-512 builds): tiles qa .. qa+7 of rows pa in lanes 0..7,
// qb .. qb+7 of rows pb in lanes 8..15; the same operations per tile as
// wino_in_8tiles_call, each vector twice as wide (a group's columns 2q + 2h + (0..15) as
// one load, masked to the row's columns [0, W) as the AVX2 code's, evens and odds picked
// across the two groups' loads), planes xi 16 wide.
__attribute__((noinline)) static void wino_in_16tiles_call(const float* const* pa, int64_t qa,
                                                           const float* const* pb, int64_t qb,
                                                           const WinoIn& g, float* d) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  // Lanes l of a load at column o - pl + l inside [0, W).
  auto lanes = [&](int64_t o) {
    int64_t lo = g.pl - o, hi = g.W + g.pl - o;
    lo = lo < 0 ? 0 : (lo > 16 ? 16 : lo);
    hi = hi < 0 ? 0 : (hi > 16 ? 16 : hi);
    return static_cast<__mmask16>(hi > lo ? ((1u << hi) - 1u) & ~((1u << lo) - 1u) : 0u);
  };
  auto load4 = [&](const float* const* rows, int64_t o, __m512* v) {
    const __mmask16 m = lanes(o);
    if (m == 0xFFFF)
      for (int r = 0; r < 4; ++r) v[r] = _mm512_loadu_ps(rows[r] + o);
    else
      for (int r = 0; r < 4; ++r) v[r] = _mm512_maskz_loadu_ps(m, rows[r] + o);
  };
  __m512 c[4][4];
  for (int h = 0; h < 2; ++h) {
    __m512 a[4], b[4];
    load4(pa, 2 * qa + 2 * h, a);
    load4(pb, 2 * qb + 2 * h, b);
    const __m512 x[4][2] = {{_mm512_sub_ps(a[0], a[2]), _mm512_sub_ps(b[0], b[2])},
                            {_mm512_add_ps(a[1], a[2]), _mm512_add_ps(b[1], b[2])},
                            {_mm512_sub_ps(a[2], a[1]), _mm512_sub_ps(b[2], b[1])},
                            {_mm512_sub_ps(a[1], a[3]), _mm512_sub_ps(b[1], b[3])}};
    for (int i = 0; i < 4; ++i) {
      c[i][2 * h] = _mm512_permutex2var_ps(x[i][0], ev, x[i][1]);
      c[i][2 * h + 1] = _mm512_permutex2var_ps(x[i][0], od, x[i][1]);
    }
  }
  for (int i = 0; i < 4; ++i) {
    _mm512_storeu_ps(d + (4 * i + 0) * g.ps, _mm512_sub_ps(c[i][0], c[i][2]));
    _mm512_storeu_ps(d + (4 * i + 1) * g.ps, _mm512_add_ps(c[i][1], c[i][2]));
    _mm512_storeu_ps(d + (4 * i + 2) * g.ps, _mm512_sub_ps(c[i][2], c[i][1]));
    _mm512_storeu_ps(d + (4 * i + 3) * g.ps, _mm512_sub_ps(c[i][1], c[i][3]));
  }
}
#endif

// V = B^T d B for tiles [qa, qb) of tile row ty of one source plane, tile q going to
// column t0 + q - qa of the packed panels at vc (column t at (t/NR)*NR*kc + t%NR; vc
// already points at this channel's row of its reduction block; planes xi g.ps apart),
// tile by tile: where wino_in_groups does not apply (double, no AVX2, a strided row).
template <typename T>
static void wino_in_row(const WinoIn& g, const T* plane, int64_t ty, int64_t qa, int64_t qb,
                        int64_t t0, int64_t kc, T* vc) {
  const int64_t pl = g.pl, W = g.W, s3 = g.s3, NR = g.NR, ps = g.ps;
  const T* rows[4];
  for (int a = 0; a < 4; ++a) {
    const int64_t iy = 2 * ty + a - g.pt;
    rows[a] = iy >= 0 && iy < g.H ? plane + iy * g.s2 : nullptr;
  }
  for (int64_t q = qa; q < qb; ++q) {
    T d[4][4];
    for (int a = 0; a < 4; ++a)
      for (int j = 0; j < 4; ++j) {
        const int64_t ix = 2 * q + j - pl;
        d[a][j] = rows[a] && ix >= 0 && ix < W ? rows[a][ix * s3] : T(0);
      }
    T v[16];
    wino_in_tile(d, v);
    T* dst = vc + wino_panel_pos(t0 + q - qa, NR, kc);
    for (int xi = 0; xi < 16; ++xi) dst[xi * ps] = v[xi];
  }
}

// The tiles of one group of 8 consecutive positions (columns t0 .. t0+7, t0 a multiple of
// 8) that come from one tile row: tiles q, q + 1, ... in lanes [lo, hi), source rows at
// base + off[r] (kNoRow: outside the plane; strides may be negative); last: the group's
// final part (groups follow each other, t0 = 0, 8, 16, ...).
constexpr int64_t kNoRow = INT64_MIN;
struct WinoPart {
  int64_t off[4], q;
  int lo, hi;
  bool last;
};

// V = B^T d B of a block's positions group by group, for one channel (base: its plane
// of image 0; part offsets add the image's) to the panels or dense rows at vc (column t at
// wino_panel_pos(t, NR, kc)). Each part's vertical half is computed for all 8 lanes with
// its tiles shifted into place (columns outside the row read nothing) and the parts
// blended by lane (two parts that split the group into halves share one vertical pass, as
// rows of 4 tiles do), then one horizontal half and 16 whole stores (lanes no part fills
// get zeros): a row of 7 or 14 tiles that starts off the 8-column grid costs no extra
// passes and masked stores. Source rows are read in place (copying them into padded
// buffers cost more: the vector loads straddled the copy's stores, which defeats
// store-to-load forwarding). The same arithmetic per tile as wino_in_row. Returns false
// (nothing done) where it does not apply (no AVX2, double, a strided row); the caller then
// runs wino_in_row per segment.
template <typename T>
static bool wino_in_groups(const WinoIn& g, const T* base, const WinoPart* parts, int64_t nparts,
                           int64_t kc, T* vc) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    if (g.s3 != 1) return false;
    static const float zeros[2 * PYCONV_WINO_PITCH + 64] = {};
    auto rows_of = [&](const WinoPart& w, const float** p) {
      for (int a = 0; a < 4; ++a) {
        p[a] = w.off[a] != kNoRow ? base + w.off[a] - g.pl : zeros + 32;
        // (scalar: gcc vectorised these four selects through a stack copy, a
        // store-forwarding stall on every call)
        asm("" : "+r"(p[a]));
      }
    };
    // Whether columns 2q .. 2q + span of the row are all inside it (no masked loads).
    auto inside = [&](int64_t q, int64_t span) {
      return 2 * q - g.pl >= 0 && 2 * q + span - g.pl < g.W;
    };
    for (int64_t k = 0, t = 0; k < nparts; t += 8) {
      float* d = vc + wino_panel_pos(t, g.NR, kc);
      asm("" : "+r"(d));  // opaque: see wino_out_row
      const WinoPart& w0 = parts[k];
      const float* p[4];
      rows_of(w0, p);
      // (Each case keeps its vectors to itself: shared ones spilled to the stack.)
#if defined(__AVX512F__)
      // Two whole groups, the first at a multiple of 16 (the 16 positions contiguous in a
      // panel of 16 or more): one 16-tile pass.
      if (w0.last && w0.lo == 0 && w0.hi == 8 && (t & 15) == 0 && g.NR >= 16 &&
          k + 1 < nparts && parts[k + 1].last && parts[k + 1].lo == 0 &&
          parts[k + 1].hi == 8) {
        const float* pb[4];
        rows_of(parts[k + 1], pb);
        wino_in_16tiles_call(p, w0.q, pb, parts[k + 1].q, g, d);
        k += 2;
        t += 8;
        continue;
      }
#endif
      if (w0.last && w0.lo == 0 && w0.hi == 8) {  // one part: the whole group
        wino_in_8tiles_call(p, p, 8, w0.q, inside(w0.q, 17), g, d);
        k += 1;
      } else if (!w0.last && parts[k + 1].last && w0.lo == 0 && w0.hi == 4 &&
                 parts[k + 1].lo == 4 && parts[k + 1].hi == 8) {
        // Two halves: lanes 4..7 from the second part's rows, lane 4's column 2 * w0.q + ob.
        const WinoPart& w1 = parts[k + 1];
        const float* pb[4];
        rows_of(w1, pb);
        wino_in_8tiles_call(p, pb, 2 * (w1.q - w0.q), w0.q, inside(w0.q, 9) && inside(w1.q, 9),
                            g, d);
        k += 2;
      } else {
        __m256 c[4][4];
        for (bool first = true;; first = false) {
          const WinoPart& w = parts[k++];
          if (!first) rows_of(w, p);
          const int64_t q0 = w.q - w.lo;  // the tile lane 0 would hold
          __m256 ck[4][4];
          if (inside(q0, 17))
            wino_in_cols<false>(p, p, 8, q0, g.pl, g.W, ck);
          else
            wino_in_cols<true>(p, p, 8, q0, g.pl, g.W, ck);
          const __m256 take = _mm256_castsi256_ps(wino_lanes(w.lo, w.hi));
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j)
              c[i][j] = first ? _mm256_and_ps(ck[i][j], take)
                              : _mm256_blendv_ps(c[i][j], ck[i][j], take);
          if (w.last) break;
        }
        wino_in_store(c, g.ps, d);
      }
    }
    return true;
  }
#endif
  (void)g, (void)base, (void)parts, (void)nparts, (void)kc, (void)vc;
  return false;
}

// The filter transform U = G g G^T (conv_winograd.cpp's transform_filter) of one panel of
// MR filters k = pan*MR + i: for every reduction index kk = (piece ph, pw; channel c), the
// piece's 3x3 taps g (rows 2ph + r, columns 2pw + s of filter k's channel c; taps past the
// kernel, and those of the previous piece (r = 0 when ph > 0, s = 0 when pw > 0), zero) go
// to u + xi*ps + Mpad*k0 + pan*MR*kc + (kk - k0)*MR + i, (k0, kc) the reduction block of kk
// (the blocks of a length-Kd reduction cut into kbn nearly equal ones: gemm::KBlocks' rule,
// spelled out here since this file shares no inline code across the ISA builds);
// zeros for k >= K. Filter element (k, c, r, s) at w + k*wk + c*wc + r*wr + s*ws.
struct WinoFilter {
  const void* w;
  int64_t wk, wc, wr, ws;
  int64_t K, C, R, S, npw, Kd, kbn, Mpad, ps;
  int MR;
};

// G g G^T of one 3x3 g: rows G g = (g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2), then the
// same along the columns. Generic over the element: a scalar, or a vector of filters.
template <typename V, class Half>
static inline void wino_filter_tile(const V (&g)[3][3], Half half, V (&u)[16]) {
  V gg[4][3];
  for (int s = 0; s < 3; ++s) {
    gg[0][s] = g[0][s];
    gg[1][s] = half(g[0][s] + g[1][s] + g[2][s]);
    gg[2][s] = half(g[0][s] - g[1][s] + g[2][s]);
    gg[3][s] = g[2][s];
  }
  for (int a = 0; a < 4; ++a) {
    u[a * 4 + 0] = gg[a][0];
    u[a * 4 + 1] = half(gg[a][0] + gg[a][1] + gg[a][2]);
    u[a * 4 + 2] = half(gg[a][0] - gg[a][1] + gg[a][2]);
    u[a * 4 + 3] = gg[a][2];
  }
}

#if defined(__AVX2__)
// o[j] = (r[0][j], ..., r[7][j]) for j < 8: an 8x8 transpose of rows r.
static inline void wino_transpose8(const float* const* r, __m256 (&o)[8]) {
  __m256 a[8], b[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_loadu_ps(r[i]);
  for (int i = 0; i < 8; i += 2) {
    b[i] = _mm256_unpacklo_ps(a[i], a[i + 1]);
    b[i + 1] = _mm256_unpackhi_ps(a[i], a[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    a[h + 0] = _mm256_shuffle_ps(b[h], b[h + 2], 0x44);
    a[h + 1] = _mm256_shuffle_ps(b[h], b[h + 2], 0xEE);
    a[h + 2] = _mm256_shuffle_ps(b[h + 1], b[h + 3], 0x44);
    a[h + 3] = _mm256_shuffle_ps(b[h + 1], b[h + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    o[j] = _mm256_permute2f128_ps(a[j], a[j + 4], 0x20);
    o[j + 4] = _mm256_permute2f128_ps(a[j], a[j + 4], 0x31);
  }
}

// A panel row's 16 values v[xi] (MR = 6 or 8 filters in the lanes) to d + xi*ps.
static inline void wino_filter_store(const __m256 (&v)[16], int MR, float* d, int64_t ps) {
  for (int xi = 0; xi < 16; ++xi) {
    if (MR == 8) {
      _mm256_storeu_ps(d + xi * ps, v[xi]);
      continue;
    }
    _mm_storeu_ps(d + xi * ps, _mm256_castps256_ps128(v[xi]));
    _mm_storel_pi(reinterpret_cast<__m64*>(d + xi * ps + 4), _mm256_extractf128_ps(v[xi], 1));
  }
}
#endif

template <typename T>
static void wino_filter_panel(const WinoFilter& f, int64_t pan, T* u) {
  const T* w = static_cast<const T*>(f.w);
  const int MR = f.MR;
  const int64_t ps = f.ps, kq = f.Kd / f.kbn, kr = f.Kd % f.kbn;
  const int n = static_cast<int>(f.K - pan * MR < MR ? f.K - pan * MR : MR);  // filters here
#if defined(__AVX2__)
  // A panel's 6 (AVX2 tile) or 8 (AVX-512 fp32 tile) filters in the lanes of a vector (read
  // value by value: gathers ran slower than the scalar code), a lane past n repeating filter
  // n - 1 and then cleared.
  const __m256 live = _mm256_castsi256_ps(
      _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  int64_t lk[8];
  for (int i = 0; i < 8; ++i) lk[i] = (i < n ? i : n - 1) * f.wk;
  // Backward-data's 3x3 filters (flipped taps, the panel's filters one after the other): a
  // reduction row's 8 filters are 72 contiguous values, two 8x8 transposes (taps 0..7 and
  // 1..8) instead of 72 loads one by one: 512@7's transform 2.8 -> 1.2 ms, the whole
  // backward-data 1.15x. (The forward's panel rows lie C*9 values apart: the same
  // transposes gained 1-2%, its transform bound by the 26 MB it reads and writes.)
  const bool flip3 = f.R == 3 && f.S == 3 && f.ws == -1 && f.wr == -3 && f.wk == 9;
#endif
  int64_t blk = 0, k0 = 0, kc = kq + (kr > 0 ? 1 : 0);
  for (int64_t kk = 0; kk < f.Kd; ++kk) {
    if (kk >= k0 + kc) ++blk, k0 += kc, kc = kq + (blk < kr ? 1 : 0);
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
      if (flip3 && (MR == 6 || MR == 8)) {
        // filter i's tap (r, s) at w + (pan*MR + i)*9 + kk*wc - 3r - s: rows from tap (2, 2)
        const float* rows[8];
        __m256 a[8], b[8];
        for (int i = 0; i < 8; ++i) rows[i] = w + pan * MR * 9 + lk[i] + kk * f.wc - 8;
        wino_transpose8(rows, a);  // a[j]: value j of rows, tap 8 - j
        for (int i = 0; i < 8; ++i) ++rows[i];
        wino_transpose8(rows, b);  // b[7]: tap 0
        __m256 g[3][3];
        for (int t = 0; t < 9; ++t) g[t / 3][t % 3] = _mm256_and_ps(live, t ? a[8 - t] : b[7]);
        __m256 v[16];
        wino_filter_tile(g, [](__m256 x) { return _mm256_mul_ps(_mm256_set1_ps(0.5f), x); }, v);
        wino_filter_store(v, MR, u + f.Mpad * k0 + pan * MR * kc + (kk - k0) * MR, ps);
        continue;
      }
    }
#endif
    const int64_t c = kk % f.C, ph = kk / f.C / f.npw, pw = kk / f.C % f.npw;
    bool rok[3], sok[3];
    for (int i = 0; i < 3; ++i) {
      rok[i] = (i > 0 || ph == 0) && 2 * ph + i < f.R;
      sok[i] = (i > 0 || pw == 0) && 2 * pw + i < f.S;
    }
    const T* g0 = w + pan * MR * f.wk + c * f.wc + 2 * ph * f.wr + 2 * pw * f.ws;
    T* d = u + f.Mpad * k0 + pan * MR * kc + (kk - k0) * MR;
#if defined(__AVX2__)
    if constexpr (sizeof(T) == 4) {
      if (MR == 6 || MR == 8) {  // (with 6, lanes 6 and 7 are past n: cleared)
        __m256 g[3][3], v[16];
        for (int r = 0; r < 3; ++r)
          for (int q = 0; q < 3; ++q) {
            const T* t = g0 + r * f.wr + q * f.ws;
            g[r][q] = rok[r] && sok[q]
                          ? _mm256_and_ps(live, _mm256_setr_ps(t[lk[0]], t[lk[1]], t[lk[2]],
                                                               t[lk[3]], t[lk[4]], t[lk[5]],
                                                               t[lk[6]], t[lk[7]]))
                          : _mm256_setzero_ps();
          }
        wino_filter_tile(g, [](__m256 x) { return _mm256_mul_ps(_mm256_set1_ps(0.5f), x); }, v);
        wino_filter_store(v, MR, d, ps);
        continue;
      }
    }
#endif
    for (int i = 0; i < MR; ++i, ++d) {  // (stores, not a copy loop gcc makes a memcpy call of)
      T v[16];
      if (i < n) {
        const T* gi = g0 + i * f.wk;
        T g[3][3];
        for (int r = 0; r < 3; ++r)
          for (int q = 0; q < 3; ++q) g[r][q] = rok[r] && sok[q] ? gi[r * f.wr + q * f.ws] : T(0);
        wino_filter_tile(g, [](T x) { return T(0.5) * x; }, v);
      } else {
        for (int xi = 0; xi < 16; ++xi) v[xi] = T(0);
      }
      for (int xi = 0; xi < 16; ++xi) d[xi * ps] = v[xi];
    }
  }
}

struct WinoOut {
  int64_t P, Q, ps;  // output plane, stride between product planes xi
};

#if defined(__AVX2__)
// A^T M A of the 8 tiles whose products start at m (planes xi ps apart), lanes [0, n)
// loaded (the rest read nothing and stay zero): output row a, columns 0..7 (tiles 0..3) in
// o[a][0] and 8..15 (tiles 4..7) in o[a][1]. The operations and their order are those of
// wino_out_row's scalar loops (bitwise the same results). Returns whether every value is
// finite.
static inline bool wino_out_8tiles(const float* m, int64_t ps, int n, __m256 (&o)[2][2]) {
  __m256 v[16];
  if (n == 8) {
    for (int xi = 0; xi < 16; ++xi) v[xi] = _mm256_loadu_ps(m + xi * ps);
  } else {
    const __m256i mk = wino_lanes(0, n);
    for (int xi = 0; xi < 16; ++xi) v[xi] = _mm256_maskload_ps(m + xi * ps, mk);
  }
  __m256 s[2][4];  // A^T M: row a, column j
  for (int j = 0; j < 4; ++j) {
    s[0][j] = _mm256_add_ps(_mm256_add_ps(v[j], v[4 + j]), v[8 + j]);
    s[1][j] = _mm256_sub_ps(_mm256_sub_ps(v[4 + j], v[8 + j]), v[12 + j]);
  }
  const __m256 zero = _mm256_setzero_ps();
  __m256 bad = zero;
  for (int a = 0; a < 2; ++a) {
    const __m256 e = _mm256_add_ps(_mm256_add_ps(s[a][0], s[a][1]), s[a][2]);
    const __m256 f = _mm256_sub_ps(_mm256_sub_ps(s[a][1], s[a][2]), s[a][3]);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(e, e), zero, _CMP_NEQ_UQ));
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(f, f), zero, _CMP_NEQ_UQ));
    const __m256 lo = _mm256_unpacklo_ps(e, f), hi = _mm256_unpackhi_ps(e, f);
    o[a][0] = _mm256_permute2f128_ps(lo, hi, 0x20);
    o[a][1] = _mm256_permute2f128_ps(lo, hi, 0x31);
  }
  return _mm256_movemask_ps(bad) == 0;
}

// v + b to columns [0, n) of y and, when z, of z; relu'd in y when relu (v < 0 ? 0 : v,
// as the scalar loop: -0.0 and NaN kept).
static inline void wino_out_store(__m256 v, float b, bool relu, float* y, float* z, int64_t n) {
  if (n <= 0) return;
  v = _mm256_add_ps(v, _mm256_set1_ps(b));
  if (z) n >= 8 ? _mm256_storeu_ps(z, v) : store_lanes_f32(z, v, n);
  if (relu)
    v = _mm256_blendv_ps(v, _mm256_setzero_ps(),
                         _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
  n >= 8 ? _mm256_storeu_ps(y, v) : store_lanes_f32(y, v, n);
}
#endif

// Output rows 2ty and 2ty+1 (those < P), columns 2qa .. 2qb-1 (those < Q), of one
// plane: A^T M A + b over tiles [qa, qb) whose 16 products start at m (plane xi at
// m + xi*ps), then relu when relu; z (may be null) receives the values before relu.
// y and z point at the plane's row 0. Returns whether every value is finite (see
// conv_winograd.cpp: otherwise the convolution is redone without Winograd).
template <typename T>
static bool wino_out_row(const WinoOut& g, const T* m, int64_t ty, int64_t qa, int64_t qb, T b,
                         bool relu, T* y, T* z) {
  const int64_t n = qb - qa, ps = g.ps, Q = g.Q;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {  // 8 tiles (16 columns) at a time
    const int64_t end = 2 * qb < Q ? 2 * qb : Q;  // columns past it belong to other tiles
    bool finite = true;
    for (int64_t q = qa; q < qb; q += 8) {
      // An opaque pointer per group: otherwise gcc keeps one induction variable per plane
      // (16), most of them on the stack, each bumped in memory every group.
      const float* mq = m + (q - qa);
      asm("" : "+r"(mq));
      __m256 o[2][2];
      finite &= wino_out_8tiles(mq, ps, qb - q < 8 ? static_cast<int>(qb - q) : 8, o);
      const int64_t x = 2 * q;
      for (int a = 0; a < 2 && 2 * ty + a < g.P; ++a) {
        const int64_t r = (2 * ty + a) * Q + x;
        wino_out_store(o[a][0], b, relu, y + r, z ? z + r : nullptr, end - x);
        wino_out_store(o[a][1], b, relu, y + r + 8, z ? z + r + 8 : nullptr, end - x - 8);
      }
    }
    return finite;
  }
#endif
  T buf[10][2 * PYCONV_WINO_PITCH];  // A^T M (row a, column j at 4a + j), then 2 output rows
  T(*out)[2 * PYCONV_WINO_PITCH] = buf + 8;
  bool nonfinite = false;
  for (int j = 0; j < 4; ++j) {
    const T* __restrict m0 = m + j * ps;
    const T* __restrict m1 = m0 + 4 * ps;
    const T* __restrict m2 = m1 + 4 * ps;
    const T* __restrict m3 = m2 + 4 * ps;
    T* __restrict s0 = buf[j];
    T* __restrict s1 = buf[4 + j];
    for (int64_t i = 0; i < n; ++i) {
      s0[i] = m0[i] + m1[i] + m2[i];
      s1[i] = m1[i] - m2[i] - m3[i];
    }
  }
  for (int a = 0; a < 2; ++a) {
    const T* __restrict a0 = buf[4 * a];
    const T* __restrict a1 = buf[4 * a + 1];
    const T* __restrict a2 = buf[4 * a + 2];
    const T* __restrict a3 = buf[4 * a + 3];
    T* __restrict o = out[a];
    for (int64_t i = 0; i < n; ++i) {
      const T e = a0[i] + a1[i] + a2[i], f = a1[i] - a2[i] - a3[i];  // bias: at the store
      o[2 * i] = e;
      o[2 * i + 1] = f;
      nonfinite |= !(e - e == T(0)) | !(f - f == T(0));  // inf - inf, NaN - NaN: NaN
    }
  }
  const int64_t x0 = 2 * qa, nx = (2 * qb < Q ? 2 * qb : Q) - x0;
  for (int a = 0; a < 2; ++a) {
    const int64_t oy = 2 * ty + a;
    if (oy >= g.P) break;
    const T* __restrict src = out[a];
    T* __restrict yr = y + oy * Q + x0;
    // conv, then + bias (one loop per case; the bias add also keeps gcc from turning a
    // copy of a few values into a memcpy call)
    if (z) {
      T* __restrict zr = z + oy * Q + x0;
      if (relu)
        for (int64_t x = 0; x < nx; ++x) {
          const T v = src[x] + b;
          zr[x] = v;
          yr[x] = v < T(0) ? T(0) : v;  // relu keeps -0.0 and NaN
        }
      else
        for (int64_t x = 0; x < nx; ++x) zr[x] = yr[x] = src[x] + b;
    } else if (relu) {
      for (int64_t x = 0; x < nx; ++x) {
        const T v = src[x] + b;
        yr[x] = v < T(0) ? T(0) : v;
      }
    } else {
      for (int64_t x = 0; x < nx; ++x) yr[x] = src[x] + b;
    }
  }
  return !nonfinite;
}

// Rows of 4 tiles (7- and 8-wide outputs), two at a time: the 8 tiles at m are tile row
// tya of plane a (ya, za) and tile row tyb of plane b (yb, zb); otherwise as wino_out_row.
// Returns false (nothing done, *finite untouched) where that does not apply; the caller
// then runs wino_out_row twice.
template <typename T>
static bool wino_out_row_pair(const WinoOut& g, const T* m, int64_t tya, int64_t tyb, T b,
                              bool relu, T* ya, T* za, T* yb, T* zb, bool* finite) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    __m256 o[2][2];
    *finite = wino_out_8tiles(m, g.ps, 8, o);
    for (int a = 0; a < 2; ++a) {
      if (2 * tya + a < g.P) {
        const int64_t r = (2 * tya + a) * g.Q;
        wino_out_store(o[a][0], b, relu, ya + r, za ? za + r : nullptr, g.Q);
      }
      if (2 * tyb + a < g.P) {
        const int64_t r = (2 * tyb + a) * g.Q;
        wino_out_store(o[a][1], b, relu, yb + r, zb ? zb + r : nullptr, g.Q);
      }
    }
    return true;
  }
#endif
  (void)g, (void)m, (void)tya, (void)tyb, (void)b, (void)relu, (void)ya, (void)za, (void)yb;
  (void)zb, (void)finite;
  return false;
}

// The weight gradient's transform of grad_output tiles, A dY A^T for dY = [a b; c d] (rows
// 2ty, 2ty + 1, columns 2q, 2q + 1; zero past the plane), written straight into the GEMM's
// B panel of nr channels: the channels are the vector (the transform is additions and
// subtractions, so it commutes with the transpose, done on grad_output instead of on its 4x
// larger transform). With A = [1 0; 1 1; 1 -1; 0 -1], row r of A dY is e_r = (a, b),
// (a + c, b + d), (a - c, b - d), (-c, -d), and row r of the result (e0, e0 + e1,
// e0 - e1, -e1) of e_r. Tile i's a, b at r0[2i*ld + l], r0[(2i + 1)*ld + l] and c, d at
// r1[...] for channel l < nr; its 16 values to d[xi*ps + i*nr + l].
template <typename T>
static void wino_grad_panel(const T* r0, const T* r1, int64_t n, int64_t ld, int64_t nr, T* d,
                            int64_t ps) {
  for (int64_t i = 0; i < n; ++i) {
    const T* __restrict a = r0 + 2 * i * ld;
    const T* __restrict b = a + ld;
    const T* __restrict c = r1 + 2 * i * ld;
    const T* __restrict e = c + ld;
    T* __restrict o = d + i * nr;
#pragma GCC ivdep  // (the 16 planes never overlap: ps >= nr)
    for (int64_t l = 0; l < nr; ++l) {
      const T v[4][2] = {{a[l], b[l]}, {a[l] + c[l], b[l] + e[l]}, {a[l] - c[l], b[l] - e[l]},
                         {-c[l], -e[l]}};
      for (int r = 0; r < 4; ++r) {
        o[(4 * r + 0) * ps + l] = v[r][0];
        o[(4 * r + 1) * ps + l] = v[r][0] + v[r][1];
        o[(4 * r + 2) * ps + l] = v[r][0] - v[r][1];
        o[(4 * r + 3) * ps + l] = -v[r][1];
      }
    }
  }
}

// The weight gradient's filter transform (conv_winograd.cpp's run_weight), dg = G^T u G,
// of 16 filters (the lanes l) and channels c < cn: u[xi] at u + xi*ldx + c*ldc + l (every
// lane readable), G^T's rows (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1) down the
// 4x4 and then along it; tap (r, s) of channel c and filter l < kn to
// g[l*ldl + c*9 + 3r + s]. Returns whether all those values are finite.
template <typename T>
static bool wino_grad_filter(const T* u, int64_t ldx, int64_t ldc, int64_t cn, int64_t kn,
                             T* g, int64_t ldl) {
  constexpr int KB = 16;
  T z[KB] = {};  // 0 where a lane's values are finite, NaN otherwise
  for (int64_t c = 0; c < cn; ++c) {
    T h[3][4][KB], o[9][KB];
    for (int j = 0; j < 4; ++j) {  // rows u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3
      const T* __restrict u0 = u + j * ldx + c * ldc;
      const T* __restrict u1 = u0 + 4 * ldx;
      const T* __restrict u2 = u0 + 8 * ldx;
      const T* __restrict u3 = u0 + 12 * ldx;
      for (int l = 0; l < KB; ++l) {
        h[0][j][l] = u0[l] + T(0.5) * (u1[l] + u2[l]);
        h[1][j][l] = T(0.5) * (u1[l] - u2[l]);
        h[2][j][l] = T(0.5) * (u1[l] + u2[l]) + u3[l];
      }
    }
    for (int r = 0; r < 3; ++r)  // the same along the columns
      for (int l = 0; l < KB; ++l) {
        o[3 * r + 0][l] = h[r][0][l] + T(0.5) * (h[r][1][l] + h[r][2][l]);
        o[3 * r + 1][l] = T(0.5) * (h[r][1][l] - h[r][2][l]);
        o[3 * r + 2][l] = T(0.5) * (h[r][1][l] + h[r][2][l]) + h[r][3][l];
      }
    for (int q = 0; q < 9; ++q)
      for (int l = 0; l < KB; ++l) z[l] += o[q][l] * T(0);
    T* d = g + c * 9;
    for (int64_t l = 0; l < kn; ++l, d += ldl)
      for (int q = 0; q < 9; ++q) d[q] = o[q][l];
  }
  bool finite = true;
  for (int64_t l = 0; l < kn; ++l) finite &= z[l] == T(0);
  return finite;
}

// The exported entry points of one ISA's build (after its anonymous namespace), declared in
// conv_winograd.cpp.
#define PYCONV_WINO_EXPORT(T)                                                                \
  void wino_in_row_##T(const void* g, const T* plane, int64_t ty, int64_t qa, int64_t qb,   \
                       int64_t t0, int64_t kc, T* vc) {                                      \
    wino_in_row<T>(*static_cast<const WinoIn*>(g), plane, ty, qa, qb, t0, kc, vc);          \
  }                                                                                          \
  bool wino_in_groups_##T(const void* g, const T* base, const void* parts, int64_t n,        \
                          int64_t kc, T* vc) {                                               \
    return wino_in_groups<T>(*static_cast<const WinoIn*>(g), base,                          \
                             static_cast<const WinoPart*>(parts), n, kc, vc);                \
  }                                                                                          \
  bool wino_out_row_##T(const void* g, const T* m, int64_t ty, int64_t qa, int64_t qb, T b, \
                        bool relu, T* y, T* z) {                                             \
    return wino_out_row<T>(*static_cast<const WinoOut*>(g), m, ty, qa, qb, b, relu, y, z);  \
  }                                                                                          \
  bool wino_out_row_pair_##T(const void* g, const T* m, int64_t tya, int64_t tyb, T b,       \
                             bool relu, T* ya, T* za, T* yb, T* zb, bool* finite) {          \
    return wino_out_row_pair<T>(*static_cast<const WinoOut*>(g), m, tya, tyb, b, relu, ya, za, \
                                yb, zb, finite);                                             \
  }                                                                                          \
  void wino_grad_panel_##T(const T* r0, const T* r1, int64_t n, int64_t ld, int64_t nr, T* d, \
                           int64_t ps) {                                                     \
    wino_grad_panel<T>(r0, r1, n, ld, nr, d, ps);                                           \
  }                                                                                          \
  void wino_filter_panel_##T(const void* g, int64_t pan, T* u) {                             \
    wino_filter_panel<T>(*static_cast<const WinoFilter*>(g), pan, u);                       \
  }                                                                                          \
  bool wino_grad_filter_##T(const T* u, int64_t ldx, int64_t ldc, int64_t cn, int64_t kn,    \
                            T* g, int64_t ldl) {                                             \
    return wino_grad_filter<T>(u, ldx, ldc, cn, kn, g, ldl);                                \
  }
