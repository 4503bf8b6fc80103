// The GEMM driver: one task computes C[m0:m1, j0:j1] over the reduction
// [k_begin, k_end), block by block (KBlocks of the reduction length only).
//
//   pack_a(m0, mb, k0, kc, scratch) -> ABlock  : A rows [m0, m0+mb), reduction [k0, k0+kc):
//        either MR-row panels (lda == 0; panel i at p + i*MR*kc, may be prepacked data),
//        the rows in place (lda > 0; row m0+i at p + i*lda, unit stride along k), or
//        through row pointers and reduction offsets (ind, ioff: an indirect im2col).
//   pack_b(j0, nb, k0, kc, dst)                  : NR-column panels of B into dst,
//        panel jp at dst + jp*NR*kc, columns past nb zero; or, returning a pointer, where
//        such panels already are (prepacked B); or, returning BPanels, some panels read in
//        place: panel jp's reduction row k at in_place[jp] + koff[k] (NR contiguous values)
//        where in_place[jp] is not null (the micro-kernel's offset entry), packed otherwise.
//   store(m0, mv, j0, nv, tile, ldt, first, last): tile[i*ldt + j] for rows m0+i < m0+mv and
//        columns j0+j < j0+nv. first: overwrite C; otherwise add; last: apply the epilogue.
//   store.direct(m0, j0, ldc) -> T*              : where a full MR x NR tile at (m0, j0) may
//        be written straight from registers (C row i at p + i*ldc), or null when its columns
//        are not contiguous; the micro-kernel then overwrites (first) or adds to C there,
//        with the same rounding as store().
//   store.finish(m0, mv, j0, nv)                 : the epilogue, in place, on direct tiles
//        after their last block (while they are in L1): rows m0.. of columns [j0, j0 + nv),
//        a run of full tiles side by side in C (row 0 of the run's tile j at the first
//        tile's + j: store.direct's addresses).
//   store.register_epilogue(m0, bias, relu) -> bool: whether the epilogue of rows m0.. is
//        bias (+ bias[i], may be null) then optionally relu, which the micro-kernel applies
//        in registers (a full packed-A tile's last block; finish() is then skipped).
//   store.stream() -> bool                       : whether such register-epilogue tiles that
//        overwrite C go out with non-temporal stores (large outputs: no read for ownership);
//        the task then ends with a store fence.
// Tiles with no direct destination (strided or ragged columns), over more than one
// reduction block, accumulate in a task-local C (scratch slot 4) and are stored once after
// the last block: one scatter per call instead of one per block.
//   first_call / last_call: whether this call's first block overwrites C and its last block
//        applies the epilogue (a caller may split one reduction into several calls).
//
// Tasks are independent (no two write one element), so callers run them in any
// order on any thread. Scratch slots (scratch() below):
// slot 0 packed B, 1 packed A, 4 local C (tasks); 2 prepacked A / partial sums (the calling
// thread's, shared with the others), 3 padded source / Winograd input transform, 5 Winograd
// products / transposed grad_output rows, 6 the weight gradient's grad_output transform
// (Winograd; 3 and 5-6 the calling thread's in the shared schedules), 7-9 the
// polyphase sub-images of a dilated Winograd convolution, 10 col2im's columns / the stride
// phases of a backward-data (the calling thread); the landed-boxes weight gradient
// (conv_wgrad_boxes.cpp) takes the calling thread's 2 (its panels) and 5 (partial sums);
// the direct forward (conv_direct.cpp) the calling thread's 2 (the filter's rows) and each
// thread's 11 (its padded image).
#pragma once
#if defined(PYCONV_X86)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/buffer_cache.h"
#include "common/parallel.h"
#include "gemm/gemm.h"

namespace pyconv::gemm {

// Scratch: slot i of each thread holds one block of the buffer cache (common/buffer_cache.h),
// grown when a call needs more (contents not kept, never initialised) and reused by the
// thread's later calls. The slots of the threads that run tasks stay small (blocks of the
// GEMM and Winograd tiles, bounded by the blocking constants); the calling thread's also hold
// copies of whole arrays (padded sources, phase buffers, polyphase sub-images): those go back
// to the cache when the op returns (ScratchScope), so what stays allocated between ops is
// bounded by the cache's limit (PYCONV_CACHE_MB) and freed with it, while a loop over the
// same shapes still gets the same blocks back without page faults.
constexpr int kScratchSlots = 12;
struct ScratchSlots {
  void* p[kScratchSlots] = {};
  size_t bytes[kScratchSlots] = {};
  uint64_t blocks = 0;                    // blocks taken from the cache so far
  uint64_t block[kScratchSlots] = {};     // which of them each slot holds (scratch_block)
  ~ScratchSlots() { give_back(0); }
  // Blocks of at least min_bytes back to the cache.
  void give_back(size_t min_bytes) noexcept {
    for (int i = 0; i < kScratchSlots; ++i)
      if (p[i] && bytes[i] >= min_bytes) cache::release(p[i]), p[i] = nullptr, bytes[i] = 0;
  }
};
inline thread_local ScratchSlots t_scratch;

// The optional parts of a store (above) for one that only writes C's values: no epilogue
// in registers, no non-temporal stores, nothing to finish. Stores of that kind derive
// from it (and are initialised as {{}, members...}).
template <typename T>
struct PlainStore {
  bool register_epilogue(int64_t, const T*&, bool&) const { return false; }
  bool stream() const { return false; }
  void finish(int64_t, int64_t, int64_t, int64_t) const {}
};

template <typename T>
inline T* scratch(int slot, int64_t n) {
  const size_t need = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T);
  ScratchSlots& s = t_scratch;
  if (s.bytes[slot] < need) {
    void* old = s.p[slot];
    s.p[slot] = nullptr, s.bytes[slot] = 0;
    cache::release(old);
    s.p[slot] = cache::acquire(need);
    s.bytes[slot] = need;
    s.block[slot] = ++s.blocks;
  }
  return static_cast<T*>(s.p[slot]);
}

// Which block the calling thread's slot holds: the same number as before means the same
// block, untouched by anyone but the slot's owner since (a block given back to the cache
// and taken again, even at the same address, gets a new number).
inline uint64_t scratch_block(int slot) { return t_scratch.block[slot]; }

// For the duration of a top-level op (conv.cpp's entry points): on return, the calling
// thread's scratch blocks from cache::kMinBytes up go back to the cache.
struct ScratchScope {
  ScratchScope() = default;
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;
  ~ScratchScope() { t_scratch.give_back(cache::kMinBytes); }
};

// Column-block width: enough tasks for the threads (per_thread each, counting the
// other_tasks the columns are split across), at most kNB columns; and among the widths down
// to half of that, the one whose tasks spread most evenly over the threads when they take
// them in order (dynamic schedule): 49 panels (4 x 14x14 pixels) as 7 blocks of 7 kept one
// of two threads busy for 28 panels, as 9 blocks of at most 6 for 25. Column blocks never
// change the arithmetic, only which task computes a column.
inline int64_t pick_nb(int64_t ncol, int64_t other_tasks, int NR, int64_t per_thread = 4) {
  const int64_t nt = num_threads(), want = per_thread * nt;
  const int64_t per = other_tasks >= want ? 1 : ceil_div(want, other_tasks);
  const int64_t panels = ceil_div(ncol, int64_t(NR));
  const int64_t hi = std::max<int64_t>(1, std::min(ceil_div(panels, per), gemm::kNB / NR));
  // (Among 8+ tasks per thread, blocks of the widest kind are within an eighth of even.)
  if (nt == 1 || per == 1 || nt > 64 || other_tasks * ceil_div(panels, hi) >= 8 * nt)
    return hi * NR;
  int64_t best = hi, best_span = INT64_MAX;
  for (int64_t w = hi; w >= 1 && 2 * w >= hi; --w) {
    int64_t load[64] = {};
    const int64_t ncb = ceil_div(panels, w);
    for (int64_t t = 0; t < other_tasks * ncb; ++t) {
      int64_t* idle = std::min_element(load, load + nt);
      *idle += t % ncb == ncb - 1 ? panels - (ncb - 1) * w : w;
    }
    const int64_t span = *std::max_element(load, load + nt);
    if (span < best_span) best = w, best_span = span;
  }
  return best * NR;
}

template <typename T>
struct BPanels {
  const T* packed;
  const T* const* in_place;  // per NR-column panel; null entries are packed
  const int64_t* koff;
};

template <typename T>
struct ABlock {
  const T* p;
  int64_t lda;  // 0: packed panels
  // When set (p unused): row m0+i of the block at ind[i], reduction index k0+k at
  // ind[i] + ioff[k] (A read in place through row pointers; round_up(mb, MR) entries, the
  // ones past mb pointing at any valid row).
  const T* const* ind = nullptr;
  const int64_t* ioff = nullptr;
  // With ind, when set: row panel i / MR of the block computes only the reduction indices
  // of *sel[i / MR] (null: all of them).
  const KSel* const* sel = nullptr;
};

template <typename T, class PackA, class PackB, class Store>
void gemm_task(const UKernel<T>& uk, int64_t m0, int64_t m1, int64_t j0, int64_t j1,
               int64_t k_begin, int64_t k_end, PackA&& pack_a, PackB&& pack_b, Store&& store,
               bool first_call = true, bool last_call = true) {
  const int MR = uk.mr, NR = uk.nr;
  const int64_t mb = m1 - m0, nb = j1 - j0;
  if (mb <= 0 || nb <= 0) return;
  const KBlocks kb(k_end - k_begin);
  const int64_t kcmax = kb.size(0);
  T* bbuf = scratch<T>(0, round_up(nb, NR) * kcmax);
  T* abuf = scratch<T>(1, round_up(mb, MR) * kcmax);
  alignas(64) T tile[kMaxMR * kMaxNR];
  const int64_t ldl = round_up(nb, NR);
  T* cloc = kb.nb > 1 ? scratch<T>(4, round_up(mb, MR) * ldl) : nullptr;
  for (int64_t p = 0; p < kb.nb; ++p) {
    const int64_t k0 = k_begin + kb.begin(p), kc = kb.size(p);
    const bool first = first_call && p == 0, last = last_call && p == kb.nb - 1;
    const T* bpk = bbuf;
    const T* const* bin = nullptr;  // panels read in place (BPanels)
    const int64_t* bkoff = nullptr;
    using BRet = decltype(pack_b(j0, nb, k0, kc, bbuf));
    if constexpr (std::is_void_v<BRet>) {
      pack_b(j0, nb, k0, kc, bbuf);
    } else if constexpr (std::is_same_v<BRet, BPanels<T>>) {
      const BPanels<T> bp = pack_b(j0, nb, k0, kc, bbuf);
      bpk = bp.packed, bin = bp.in_place, bkoff = bp.koff;
    } else {
      bpk = pack_b(j0, nb, k0, kc, bbuf);
    }
    const ABlock<T> a = pack_a(m0, mb, k0, kc, abuf);
    // Tiles row panel by row panel (one A micro-panel in L1 across the B panels), or, with A
    // read through row pointers (pixel rows: A is the source in place, B the filter's panels),
    // column panel by column panel: the B panel stays in L1 across the row panels instead of
    // coming again from L2 for each (5x5 forward / backward-data of 128-256 outputs at
    // 7x7-14x14, 1.03-1.05x; one column panel: the same order). Only which tile comes when
    // changes, not the arithmetic.
    const bool by_cols = a.ind != nullptr;
    const int64_t ni = ceil_div(mb, int64_t(MR)), nj = ceil_div(nb, int64_t(NR));
    // Direct tiles of a row panel that lie side by side in C get finish() as one run
    // (columns [run_j, run_j + run_nv) of rows run_i.., run_mv of them, from run_c on): one
    // epilogue call per run instead of per tile (fused gelu or sigmoid on a 64 -> 256 1x1
    // at 56x56 1.14-1.20x).
    T* run_c = nullptr;
    int64_t run_i = 0, run_mv = 0, run_j = 0, run_nv = 0;
    auto flush = [&] {
      if (run_nv) store.finish(m0 + run_i, run_mv, j0 + run_j, run_nv);
      run_nv = 0;
    };
    // A read in place as rows, ragged last rows included (the remainder kernel reads them
    // so too); callers that give A as rows pack B (no caller reads both in place).
    const bool rows = a.lda != 0;
    for (int64_t t = 0; t < ni * nj; ++t) {
      const int64_t i = (by_cols ? t % ni : t / nj) * MR, j = (by_cols ? t / ni : t % nj) * NR;
      if (run_nv && i != run_i) flush();
      const int64_t mv = mb - i < MR ? mb - i : MR;
      const T* ap = a.ind ? nullptr : a.p + (i / MR) * MR * kc;  // (p unused with ind)
      const int64_t nv = nb - j < NR ? nb - j : NR;
      const T* bp = bpk + (j / NR) * NR * kc;
      const T* bplace = bin && !rows ? bin[j / NR] : nullptr;
      int64_t ldc = NR;
      const bool full = mv == MR && nv == NR;
      T* c = full ? store.direct(m0 + i, j0 + j, ldc) : nullptr;
      const bool direct = c != nullptr;
      bool acc = direct && !first;
      if (!c && cloc) c = cloc + i * ldl + j, ldc = ldl, acc = p > 0;  // local C
      if (!c) c = tile, ldc = NR, acc = false;
      const T* ebias = nullptr;
      bool erelu = false;
      const bool epi = direct && last && !rows && !a.ind && mv == MR &&
                       store.register_epilogue(m0 + i, ebias, erelu);
      const bool nt = epi && store.stream();
      const KSel* ks = a.sel ? a.sel[i / MR] : nullptr;
      if (ks)  // (all MR rows computed, as below)
        uk.fn_box(*ks, a.ind + i, bp, c, ldc, acc);
      else if (a.ind)  // (all MR rows computed: c has room for them, only mv are stored)
        uk.fn_ind(kc, a.ind + i, a.ioff, bp, c, ldc, acc);
      else if (bplace)
        uk.fn_off(static_cast<int>(mv), kc, ap, bplace, bkoff, c, ldc, acc, ebias, erelu, nt);
      else if (epi)
        uk.fn_epi(kc, ap, bp, c, ldc, acc, ebias, erelu, nt);
      else if (rows)
        uk.fn_rows(static_cast<int>(mv), kc, a.p + i * a.lda, a.lda, bp, c, ldc, acc);
      else if (mv < MR)
        uk.fn_rem(static_cast<int>(mv), kc, ap, bp, c, ldc, acc);
      else
        uk.fn(kc, ap, bp, c, ldc, acc);
      if (direct) {
        if (last && !epi) {
          if (run_nv && c != run_c + run_nv) flush();
          if (!run_nv) run_c = c, run_i = i, run_mv = mv, run_j = j;
          run_nv += nv;
        }
      } else if (c == tile) {
        store(m0 + i, mv, j0 + j, nv, static_cast<const T*>(tile), NR, first, last);
      } else if (p == kb.nb - 1) {
        store(m0 + i, mv, j0 + j, nv, static_cast<const T*>(c), ldl, first_call, last_call);
      }
    }
    flush();
  }
#if defined(PYCONV_X86)
  if (store.stream()) _mm_sfence();  // the non-temporal stores before anyone reads C
#endif
}

}  // namespace pyconv::gemm
