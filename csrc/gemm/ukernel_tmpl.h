// The register-tile micro-kernel, written once over a tiny vector type V and
// included by ukernel_scalar.cpp, ukernel_avx2.cpp and ukernel_avx512.cpp
// (each inside its own namespace, compiled with its own ISA flags), so the
// AVX-512 tile is structurally identical to the tested AVX2 one.
//
// V provides: type T, lanes, reg, zero(), load(p), store(p, r), bcast(p), fma(a, b, c) = a*b + c,
// add(a, b), relu(r) = r < 0 ? 0 : r (NaN and -0.0 kept).
// The tile is MR x (NV * lanes): NV*MR accumulators, NV B vectors, 1 A broadcast (NV = 2
// but for the AVX-512 8 x 48 tile and AVX2's 8 x 8 one).
// ROWS = false: A is a packed panel, a[k*MR + i]; ROWS = true: A is read in
// place as MR rows, a[i*lda + k] (backward-weight reads grad_output planes so).
// The tile goes to c[i*ldc + j]: overwritten, or added to what is there when acc
// (C += tile, the same rounding as adding a stored tile afterwards).
// Deliberately free of std:: templates: inline functions shared with other
// translation units would be merged by the linker across ISA flags.

// B's reduction row at p, NV vectors.
template <class V, int NV>
__attribute__((always_inline)) inline void load_row(const typename V::T* p,
                                                    typename V::reg* bv) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) bv[v] = V::load(p + v * V::lanes);
}

// A tile of sums to c: overwritten, or added to it when acc.
template <class V, int MR, int NV>
__attribute__((always_inline)) inline void store_tile(typename V::reg (*s)[MR], typename V::T* c,
                                                      int64_t ldc, bool acc) {
  constexpr int W = V::lanes;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (acc) s[v][i] = V::add(V::load(c + i * ldc + v * W), s[v][i]);
      V::store(c + i * ldc + v * W, s[v][i]);
    }
}

// EPI: the epilogue while the tile is in registers: + bias[i] (when bias), then relu (when
// relu): the same operations, in the same order, as the store's scalar epilogue.
// OFF: B is read in place, reduction row k at b + boff[k] (NR contiguous values), instead of
// a packed panel (b[k*NR + j]): XNNPACK's indirection, as offsets.
// stream (EPI only): a tile that overwrites C goes out with non-temporal stores (V::stream)
// when its rows are aligned to V::kStreamAlign bytes: large outputs skip the read for
// ownership of every line. The caller fences (gemm_task).
template <class V, int MR, bool ROWS, bool EPI = false, bool OFF = false, int NV = 2>
static void ukr_tile(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b,
                     typename V::T* c, int64_t ldc, bool acc, const typename V::T* bias = nullptr,
                     bool relu = false, const int64_t* boff = nullptr, bool stream = false) {
  constexpr int W = V::lanes, NR = NV * V::lanes;
  typename V::reg s[NV][MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) s[v][i] = V::zero();
  // Four reduction steps a loop trip: the loop's own scalar work (three pointer and counter
  // updates a step) took issue slots from the FMAs (Intel Xeon, AVX-512: the 8x32 tile 80%
  // -> 85% of the FMA peak with its panels in L1, 69% -> 82% streaming B from L2, in a
  // microbenchmark; over 87 bench layers 1.02x, weight gradients up to 1.10x). Same
  // operations in the same order.
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    typename V::reg bv[NV];
    load_row<V, NV>(OFF ? b + boff[k] : b, bv);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const typename V::reg ai = V::bcast(ROWS ? a + i * lda : a + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) s[v][i] = V::fma(ai, bv[v], s[v][i]);
    }
    a += ROWS ? 1 : MR;
    if (!OFF) b += NR;
  }
  if (acc) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) s[v][i] = V::add(V::load(c + i * ldc + v * W), s[v][i]);
  }
  if (EPI) {
    if (bias)
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const typename V::reg bi = V::bcast(bias + i);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) s[v][i] = V::add(s[v][i], bi);
      }
    if (relu)
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) s[v][i] = V::relu(s[v][i]);
  }
  if (EPI && stream && !acc &&
      ((reinterpret_cast<uintptr_t>(c) | static_cast<uintptr_t>(ldc * sizeof(*c))) %
       V::kStreamAlign) == 0) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) V::stream(c + i * ldc + v * W, s[v][i]);
    return;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) V::store(c + i * ldc + v * W, s[v][i]);
}

// One reduction step of the indirect tiles below: s[v][i] += A(i, k) * B(k, v*W ..) with
// A(i, k) at r[i] + o and B's row in bv.
template <class V, int MR, int NV>
__attribute__((always_inline)) inline void ind_step(const typename V::T* const* r, int64_t o,
                                                    const typename V::reg* bv,
                                                    typename V::reg (*s)[MR]) {
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const typename V::reg ai = V::bcast(r[i] + o);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) s[v][i] = V::fma(ai, bv[v], s[v][i]);
  }
}

// A read in place through row pointers (an indirect im2col: XNNPACK's indirection, as
// offsets): a[i] + aoff[k] is A's value (i, k), for all MR rows (a caller with fewer rows
// points the rest at a valid row and keeps only its rows of c). B a packed panel of NV
// vectors of columns (one: a weight gradient's 8 output channels on AVX2's 8 x 8 tile, where
// the two-vector tile left half of its products unused; MR >= 8 accumulators cover the FMA
// latency).
template <class V, int MR, int NV = 2>
static void ukr_ind(int64_t kc, const typename V::T* const* a, const int64_t* aoff,
                    const typename V::T* b, typename V::T* c, int64_t ldc, bool acc) {
  constexpr int NR = NV * V::lanes;
  typename V::reg s[NV][MR], bv[NV];
  const typename V::T* r[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) s[v][i] = V::zero();
    r[i] = a[i];
  }
  for (int64_t k = 0; k < kc; ++k, b += NR) {
    load_row<V, NV>(b, bv);
    ind_step<V, MR, NV>(r, aoff[k], bv, s);
  }
  store_tile<V, MR, NV>(s, c, ldc, acc);
}

// ukr_ind over a selection of reduction indices (gemm::KSel): the same products in the
// same order, less the ones skipped. Channel by channel: the rows and B moved to the
// channel, then the box's taps.
template <class V, int MR, int NV = 2>
static void ukr_box(const gemm::KSel& sel, const typename V::T* const* a, const typename V::T* b,
                    typename V::T* c, int64_t ldc, bool acc) {
  typename V::reg s[NV][MR], bv[NV];
  const typename V::T* r[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) s[v][i] = V::zero();
    r[i] = a[i] + sel.ao;
  }
  const typename V::T* bc = b + sel.bo;
  for (int64_t left = sel.n, t = sel.t; left > 0; t = 0) {
    const int64_t m = sel.nt - t < left ? sel.nt - t : left;
    const int64_t *ta = sel.aoff + t, *tb = sel.boff + t;
    for (int64_t k = 0; k < m; ++k) {
      load_row<V, NV>(bc + tb[k], bv);
      ind_step<V, MR, NV>(r, ta[k], bv, s);
    }
    left -= m;
    bc += sel.bstep;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) r[i] += sel.astep;
  }
  store_tile<V, MR, NV>(s, c, ldc, acc);
}

// The last, ragged row panel of a packed A (MR < the panel's PS rows): only MR rows are
// computed and written. With 1 or 2 rows, few accumulators would wait on the FMA latency,
// so even and odd reduction steps go to separate accumulators, added at the end (a fixed
// order that depends only on kc: results do not depend on the thread count).
// ROWS: A read in place as MR rows (a[i*lda + k]) instead of a packed panel, with the
// same arithmetic.
template <class V, int MR, int PS, bool OFF = false, bool ROWS = false, int NV = 2>
static void ukr_rem(int64_t kc, const typename V::T* a, const typename V::T* b,
                    typename V::T* c, int64_t ldc, bool acc, const int64_t* boff = nullptr,
                    int64_t lda = 0) {
  constexpr int64_t kstep = ROWS ? 1 : PS;  // A's step between reduction indices
  constexpr int NR = NV * V::lanes;
  constexpr bool kSplit = MR <= 2;
  typename V::reg s[NV][MR], d[NV][MR], bv[NV], ev[NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) s[v][i] = d[v][i] = V::zero();
  int64_t k = 0;
  for (; kSplit && k + 2 <= kc; k += 2) {
    load_row<V, NV>(OFF ? b + boff[k] : b, bv);
    load_row<V, NV>(OFF ? b + boff[k + 1] : b + NR, ev);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const typename V::reg ai = V::bcast(ROWS ? a + i * lda : a + i);
      const typename V::reg aj = V::bcast(ROWS ? a + i * lda + 1 : a + PS + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) s[v][i] = V::fma(ai, bv[v], s[v][i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) d[v][i] = V::fma(aj, ev[v], d[v][i]);
    }
    a += 2 * kstep;
    if (!OFF) b += 2 * NR;
  }
  for (; k < kc; ++k) {
    load_row<V, NV>(OFF ? b + boff[k] : b, bv);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const typename V::reg ai = V::bcast(ROWS ? a + i * lda : a + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) s[v][i] = V::fma(ai, bv[v], s[v][i]);
    }
    a += kstep;
    if (!OFF) b += NR;
  }
  if (kSplit)
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) s[v][i] = V::add(s[v][i], d[v][i]);
  store_tile<V, MR, NV>(s, c, ldc, acc);
}

// The ragged last panel of a PS-row tile: mv < PS rows.
template <class V, int PS, bool OFF = false, bool ROWS = false, int NV = 2>
static void ukr_rem_rows(int mv, int64_t kc, const typename V::T* a, const typename V::T* b,
                         typename V::T* c, int64_t ldc, bool acc, const int64_t* boff = nullptr,
                         int64_t lda = 0) {
  static_assert(PS == 6 || PS == 8);
  switch (mv) {
    case 1: return ukr_rem<V, 1, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
    case 2: return ukr_rem<V, 2, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
    case 3: return ukr_rem<V, 3, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
    case 4: return ukr_rem<V, 4, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
    case 5: return ukr_rem<V, 5, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
    default:
      if constexpr (PS == 8) {
        if (mv == 6) return ukr_rem<V, 6, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
        return ukr_rem<V, 7, PS, OFF, ROWS, NV>(kc, a, b, c, ldc, acc, boff, lda);
      }
  }
}

// Matrix-vector products (a batch-1 or batch-2 linear layer): y[n*ldy + o] = sum over
// k < K of a[o*lda + k] * x[n*ldx + k] for rows o of a block of RB rows and NX vectors x,
// each row of a read once. Per output, two vectors of lane sums over k in steps of two
// vectors, then the two added, their lanes summed in lane order, and the values past the
// last full step added one by one: an order set by K alone.
template <class V, int NX, int RB>
static void gemv_block(int64_t K, const typename V::T* a, int64_t lda, const typename V::T* x,
                       int64_t ldx, typename V::T* y, int64_t ldy) {
  using T = typename V::T;
  constexpr int W = V::lanes;
  const int64_t K2 = K / (2 * W) * (2 * W);
  typename V::reg c[RB][NX][2];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r)
    for (int n = 0; n < NX; ++n) c[r][n][0] = c[r][n][1] = V::zero();
  for (int64_t k = 0; k < K2; k += 2 * W) {
    typename V::reg xv[NX][2];
    for (int n = 0; n < NX; ++n) xv[n][0] = V::load(x + n * ldx + k), xv[n][1] = V::load(x + n * ldx + k + W);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      const typename V::reg a0 = V::load(a + r * lda + k), a1 = V::load(a + r * lda + k + W);
      for (int n = 0; n < NX; ++n) {
        c[r][n][0] = V::fma(a0, xv[n][0], c[r][n][0]);
        c[r][n][1] = V::fma(a1, xv[n][1], c[r][n][1]);
      }
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int n = 0; n < NX; ++n) {
      T lane[W];
      V::store(lane, V::add(c[r][n][0], c[r][n][1]));
      T s = lane[0];
      for (int l = 1; l < W; ++l) s += lane[l];
      for (int64_t k = K2; k < K; ++k) s += a[r * lda + k] * x[n * ldx + k];
      y[n * ldy + r] = s;
    }
}

// Rows [0, M) in blocks of 4 (one vector) or 2 (two), the last rows one at a time; vectors
// in pairs.
template <class V>
static void gemv_rows(int nx, int64_t M, int64_t K, const typename V::T* a, int64_t lda,
                      const typename V::T* x, int64_t ldx, typename V::T* y, int64_t ldy) {
  for (int n = 0; n < nx; n += 2) {
    const typename V::T* xn = x + n * ldx;
    typename V::T* yn = y + n * ldy;
    int64_t o = 0;
    if (nx - n >= 2) {
      for (; o + 2 <= M; o += 2) gemv_block<V, 2, 2>(K, a + o * lda, lda, xn, ldx, yn + o, ldy);
      for (; o < M; ++o) gemv_block<V, 2, 1>(K, a + o * lda, lda, xn, ldx, yn + o, ldy);
    } else {
      for (; o + 4 <= M; o += 4) gemv_block<V, 1, 4>(K, a + o * lda, lda, xn, ldx, yn + o, ldy);
      for (; o < M; ++o) gemv_block<V, 1, 1>(K, a + o * lda, lda, xn, ldx, yn + o, ldy);
    }
  }
}

// Transposed matrix-vector products (the input gradient of such a layer): y[n*ldy + l] =
// sum over m < M of x[n*ldx + m] * a[m*lda + l] for columns l of a block of U vectors and NX
// vectors x, the sums over m in order (one chain per output); acc: the chains go on from
// what y holds (the sum over earlier rows), so splitting M changes no operation.
template <class V, int NX, int U>
static void gemv_t_block(int64_t M, const typename V::T* a, int64_t lda,
                         const typename V::T* x, int64_t ldx, typename V::T* y, int64_t ldy,
                         bool acc) {
  constexpr int W = V::lanes;
  typename V::reg c[NX][U];
#pragma GCC unroll 8
  for (int n = 0; n < NX; ++n)
    for (int u = 0; u < U; ++u) c[n][u] = acc ? V::load(y + n * ldy + u * W) : V::zero();
  for (int64_t m = 0; m < M; ++m) {
    typename V::reg av[U];
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) av[u] = V::load(a + m * lda + u * W);
    for (int n = 0; n < NX; ++n) {
      const typename V::reg xv = V::bcast(x + n * ldx + m);
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) c[n][u] = V::fma(xv, av[u], c[n][u]);
    }
  }
  for (int n = 0; n < NX; ++n)
    for (int u = 0; u < U; ++u) V::store(y + n * ldy + u * W, c[n][u]);
}

// Rows in chunks of 32 (each chunk's rows read as contiguous pieces of the block's width
// before the next chunk), columns [0, L) in blocks of 8 vectors (one x) or 4 (two), then
// single vectors, the last columns one at a time with the same order of sums; x in pairs.
template <class V>
static void gemv_t_rows(int nx, int64_t M, int64_t L, const typename V::T* a, int64_t lda,
                        const typename V::T* x, int64_t ldx, typename V::T* y, int64_t ldy) {
  using T = typename V::T;
  constexpr int W = V::lanes;
  constexpr int64_t kMB = 32;
  for (int n = 0; n < nx; n += 2) {
    const int nv = nx - n >= 2 ? 2 : 1;
    for (int64_t m0 = 0; m0 < M || m0 == 0; m0 += kMB) {
      const int64_t mb = M - m0 < kMB ? M - m0 : kMB;
      const bool acc = m0 > 0;
      const T* xn = x + n * ldx + m0;
      const T* am = a + m0 * lda;
      T* yn = y + n * ldy;
      int64_t l = 0;
      if (nv == 2) {
        for (; l + 4 * W <= L; l += 4 * W) gemv_t_block<V, 2, 4>(mb, am + l, lda, xn, ldx, yn + l, ldy, acc);
        for (; l + W <= L; l += W) gemv_t_block<V, 2, 1>(mb, am + l, lda, xn, ldx, yn + l, ldy, acc);
      } else {
        for (; l + 8 * W <= L; l += 8 * W) gemv_t_block<V, 1, 8>(mb, am + l, lda, xn, ldx, yn + l, ldy, acc);
        for (; l + W <= L; l += W) gemv_t_block<V, 1, 1>(mb, am + l, lda, xn, ldx, yn + l, ldy, acc);
      }
      for (; l < L; ++l)
        for (int j = 0; j < nv; ++j) {
          T s = acc ? yn[j * ldy + l] : T(0);
          for (int64_t m = 0; m < mb; ++m) s += xn[j * ldx + m] * am[m * lda + l];
          yn[j * ldy + l] = s;
        }
      if (M == 0) break;
    }
  }
}

// The exported entry points of one ISA's file (after its anonymous namespace): the MF-row
// (fp32) and MD-row (fp64) tiles of vector types VF and VD, named F32 / F64 (plus _rows),
// and the remainder, epilogue and indirect kernels. Declared in ukernel.cpp.
#define PYCONV_UKERNEL_EXPORTS(VF, VD, F32, F64, MF, MD)                                       \
  void F32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool acc) {      \
    ukr_tile<VF, MF, false>(kc, a, 0, b, c, ldc, acc);                                          \
  }                                                                                            \
  void F32##_rows(int mv, int64_t kc, const float* a, int64_t lda, const float* b, float* c,  \
                  int64_t ldc, bool acc) {                                                     \
    if (mv == MF)                                                                              \
      ukr_tile<VF, MF, true>(kc, a, lda, b, c, ldc, acc);                                       \
    else                                                                                       \
      ukr_rem_rows<VF, MF, false, true>(mv, kc, a, b, c, ldc, acc, nullptr, lda);                  \
  }                                                                                            \
  void F64(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, bool acc) {   \
    ukr_tile<VD, MD, false>(kc, a, 0, b, c, ldc, acc);                                          \
  }                                                                                            \
  void F64##_rows(int mv, int64_t kc, const double* a, int64_t lda, const double* b,         \
                  double* c, int64_t ldc, bool acc) {                                          \
    if (mv == MD)                                                                              \
      ukr_tile<VD, MD, true>(kc, a, lda, b, c, ldc, acc);                                       \
    else                                                                                       \
      ukr_rem_rows<VD, MD, false, true>(mv, kc, a, b, c, ldc, acc, nullptr, lda);                  \
  }                                                                                            \
  void f32_gemm_rem(int mv, int64_t kc, const float* a, const float* b, float* c, int64_t ldc, \
                    bool acc) {                                                                \
    ukr_rem_rows<VF, MF>(mv, kc, a, b, c, ldc, acc);                                               \
  }                                                                                            \
  void f64_gemm_rem(int mv, int64_t kc, const double* a, const double* b, double* c,          \
                    int64_t ldc, bool acc) {                                                   \
    ukr_rem_rows<VD, MD>(mv, kc, a, b, c, ldc, acc);                                               \
  }                                                                                            \
  void f32_gemm_epi(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,        \
                    bool acc, const float* bias, bool relu, bool stream) {                     \
    ukr_tile<VF, MF, false, true>(kc, a, 0, b, c, ldc, acc, bias, relu, nullptr, stream);       \
  }                                                                                            \
  void f64_gemm_epi(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,     \
                    bool acc, const double* bias, bool relu, bool stream) {                    \
    ukr_tile<VD, MD, false, true>(kc, a, 0, b, c, ldc, acc, bias, relu, nullptr, stream);       \
  }                                                                                            \
  void f32_gemm_off(int mv, int64_t kc, const float* a, const float* b, const int64_t* boff,  \
                    float* c, int64_t ldc, bool acc, const float* bias, bool relu,             \
                    bool stream) {                                                             \
    if (mv == MF)                                                                              \
      ukr_tile<VF, MF, false, true, true>(kc, a, 0, b, c, ldc, acc, bias, relu, boff, stream);  \
    else                                                                                       \
      ukr_rem_rows<VF, MF, true>(mv, kc, a, b, c, ldc, acc, boff);                                 \
  }                                                                                            \
  void f64_gemm_off(int mv, int64_t kc, const double* a, const double* b, const int64_t* boff, \
                    double* c, int64_t ldc, bool acc, const double* bias, bool relu,           \
                    bool stream) {                                                             \
    if (mv == MD)                                                                              \
      ukr_tile<VD, MD, false, true, true>(kc, a, 0, b, c, ldc, acc, bias, relu, boff, stream);  \
    else                                                                                       \
      ukr_rem_rows<VD, MD, true>(mv, kc, a, b, c, ldc, acc, boff);                                 \
  }                                                                                            \
  void f32_gemm_ind(int64_t kc, const float* const* a, const int64_t* aoff, const float* b,   \
                    float* c, int64_t ldc, bool acc) {                                         \
    ukr_ind<VF, MF>(kc, a, aoff, b, c, ldc, acc);                                               \
  }                                                                                            \
  void f64_gemm_ind(int64_t kc, const double* const* a, const int64_t* aoff, const double* b, \
                    double* c, int64_t ldc, bool acc) {                                        \
    ukr_ind<VD, MD>(kc, a, aoff, b, c, ldc, acc);                                               \
  }                                                                                            \
  void f32_gemm_box(const gemm::KSel& s, const float* const* a, const float* b, float* c,      \
                    int64_t ldc, bool acc) {                                                   \
    ukr_box<VF, MF>(s, a, b, c, ldc, acc);                                                      \
  }                                                                                            \
  void f64_gemm_box(const gemm::KSel& s, const double* const* a, const double* b, double* c,   \
                    int64_t ldc, bool acc) {                                                   \
    ukr_box<VD, MD>(s, a, b, c, ldc, acc);                                                      \
  }                                                                                            \
  void f32_gemv(int nx, int64_t M, int64_t K, const float* a, int64_t lda, const float* x,    \
                int64_t ldx, float* y, int64_t ldy) {                                          \
    gemv_rows<VF>(nx, M, K, a, lda, x, ldx, y, ldy);                                           \
  }                                                                                            \
  void f64_gemv(int nx, int64_t M, int64_t K, const double* a, int64_t lda, const double* x, \
                int64_t ldx, double* y, int64_t ldy) {                                         \
    gemv_rows<VD>(nx, M, K, a, lda, x, ldx, y, ldy);                                           \
  }                                                                                            \
  void f32_gemv_t(int nx, int64_t M, int64_t L, const float* a, int64_t lda, const float* x,  \
                  int64_t ldx, float* y, int64_t ldy) {                                        \
    gemv_t_rows<VF>(nx, M, L, a, lda, x, ldx, y, ldy);                                         \
  }                                                                                            \
  void f64_gemv_t(int nx, int64_t M, int64_t L, const double* a, int64_t lda,                 \
                  const double* x, int64_t ldx, double* y, int64_t ldy) {                      \
    gemv_t_rows<VD>(nx, M, L, a, lda, x, ldx, y, ldy);                                         \
  }
