// Max pooling with indices, fp32 AVX2: f32_maxpool_idx__avx2.
// Vectorised along the output row: 8 adjacent outputs per register, each lane
// scanning its own window in torch's order (rows, then columns), so ties and
// NaNs resolve exactly as the scalar loop does (a vertical-max-first split would
// pick the first maximum in column-major order, not torch's row-major one).
// Only windows whose columns all lie inside the input run here; border columns
// use max_pool_window, except on planes whose output rows are narrower than a vector
// (pool_plane_flat: whole planes, windows over the border masked). Stride 1: plain
// loads; stride 2: two loads and a de-interleave; larger strides: gathers. Indices are kept as int32 lanes
// (H*W < 2^31, checked by the caller) and widened on store. Outputs use plain
// stores: streaming them row by row measured 2x slower (rows are only a few
// cache lines, so the write-combining buffers flush partial lines).
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "common/parallel.h"
#include "pool/pool.h"
#include "pool/pool_window.h"

namespace pyconv::avx2 {

namespace {

template <int SW>
inline __m256 load_taps(const float* src, int64_t sw, __m256i gather_off) {
  if constexpr (SW == 1) {
    return _mm256_loadu_ps(src);
  } else if constexpr (SW == 2) {
    // src[0, 2, ..., 14] from src[0..7] and src[7..14]; never reads past src[14].
    const __m256 a = _mm256_loadu_ps(src);
    const __m256 b = _mm256_loadu_ps(src + 7);
    const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
  } else {
    return _mm256_i32gather_ps(src, gather_off, 4);
  }
}

// The running max (m, its indices mi) takes v (indices vi) where v > m or v is NaN:
// torch's first-maximum-wins, last-NaN-wins scan, lane by lane.
inline void take_max(__m256& m, __m256i& mi, __m256 v, __m256i vi) {
  const __m256 take =
      _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  m = _mm256_blendv_ps(m, v, take);
  mi = _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(mi), _mm256_castsi256_ps(vi), take));
}

// 8 outputs and (when ir) their indices, widened to int64.
inline void store_block(float* y, int64_t* ir, __m256 m, __m256i mi) {
  _mm256_storeu_ps(y, m);
  if (ir) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir),
                        _mm256_cvtepi32_epi64(_mm256_castsi256_si128(mi)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + 4),
                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256(mi, 1)));
  }
}

template <int SW>
void pool_row(const PoolParams& p, const float* xp, int64_t rs, int64_t oh, int64_t ow_lo,
              int64_t ow_hi, float* yr, int64_t* ir) {
  const int64_t sw = p.stride_w;
  int64_t ih0 = oh * p.stride_h - p.pad_h;
  const int64_t ih1 = std::min(ih0 + (p.kh - 1) * p.dil_h + 1, p.H);
  while (ih0 < 0) ih0 += p.dil_h;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lane_off = _mm256_mullo_epi32(lane, _mm256_set1_epi32(static_cast<int>(sw)));
  auto block = [&](int64_t ow) {
    const int64_t c0 = ow * sw - p.pad_w;  // first column of lane 0's window
    __m256 m = _mm256_set1_ps(0.f);
    __m256i mi = _mm256_setzero_si256();
    bool first = true;
    for (int64_t ih = ih0; ih < ih1; ih += p.dil_h) {
      const float* row = xp + ih * rs;
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t c = c0 + j * p.dil_w;
        const __m256 v = load_taps<SW>(row + c, sw, lane_off);
        const __m256i vi =
            _mm256_add_epi32(lane_off, _mm256_set1_epi32(static_cast<int>(ih * p.W + c)));
        if (first) {
          m = v;
          mi = vi;
          first = false;
          continue;
        }
        take_max(m, mi, v, vi);
      }
    }
    store_block(yr + ow, ir ? ir + ow : nullptr, m, mi);
  };
  int64_t ow = ow_lo;
  for (; ow + 8 <= ow_hi; ow += 8) block(ow);
  // The tail overlaps the last full block: same values written twice.
  if (ow < ow_hi) block(ow_hi - 8);
}

// Planes whose output rows are narrower than a vector (a 2x2 pool of 8x8 planes, a 3x3
// stride-2 pool of 14x14 planes): the plane's outputs as one flat run, 8 consecutive
// outputs per register (across rows), each lane gathering its window's taps in the same
// order as pool_row, only those inside the input (padding, ceil_mode's overhang): tap t =
// i*kw + j of output o is read when bit t of valid[o] is set. The running max starts at
// -inf with the index of the window's first valid tap, first[o], as max_pool_window's
// scan. off[o], ind[o]: output o's tap (0, 0) as an offset into the plane and as an index,
// either of which may lie outside it (the same for every plane; 32 bits: checked by the
// caller). MASKED = false: every tap of every window is inside (no masks, the first tap
// starts the max). Masked, GoogLeNet's 832-channel 14x14 pool ran 3.5x faster than one
// value at a time (20 ns an output); unmasked, CIFAR-10's 8x8 pool 1.1x faster than masked.
// CONTIG: off[o] = off[0] + o (stride 1, rows of OW = W values apart: a "same" pool of
// contiguous planes), so a tap of 8 consecutive outputs is 8 consecutive values: one load
// (masked to the taps inside, which reads nothing off the plane) instead of a gather
// (GoogLeNet's 3x3 stride-1 pools of 528-832 x 7x7 planes at batch 128 2.07-2.11x, 3x3 at
// 4x4-6x6 2.1x; the same bits).

template <bool MASKED, bool CONTIG>
void pool_plane_flat(const PoolParams& p, const float* xp, int64_t rs, const int32_t* off,
                     const int32_t* ind, const int32_t* first, const int32_t* valid, float* y,
                     int64_t* ir) {
  const int64_t n = p.OH * p.OW;
  auto block = [&](int64_t o0) {
    const __m256i o = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off + o0));
    const __m256i oi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ind + o0));
    // (Unmasked, tap (0, 0) sets both the max and its index.)
    [[maybe_unused]] __m256i vm;
    __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    __m256i mi = oi;
    if constexpr (MASKED) {
      vm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(valid + o0));
      mi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + o0));
    }
    for (int64_t i = 0, t = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j, ++t) {
        const int32_t d = static_cast<int32_t>(i * p.dil_h * rs + j * p.dil_w);
        const int32_t di = static_cast<int32_t>(i * p.dil_h * p.W + j * p.dil_w);
        const __m256i at = _mm256_add_epi32(o, _mm256_set1_epi32(d));
        const __m256i vi = _mm256_add_epi32(oi, _mm256_set1_epi32(di));
        if constexpr (MASKED) {
          const __m256i bit = _mm256_set1_epi32(int32_t(1) << t);
          const __m256 in =
              _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(vm, bit), bit));
          const __m256 v =
              CONTIG ? _mm256_maskload_ps(xp + off[0] + o0 + d, _mm256_castps_si256(in))
                     : _mm256_mask_i32gather_ps(m, xp, at, in, 4);
          const __m256 take = _mm256_and_ps(
              in, _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
          m = _mm256_blendv_ps(m, v, take);
          mi = _mm256_castps_si256(
              _mm256_blendv_ps(_mm256_castsi256_ps(mi), _mm256_castsi256_ps(vi), take));
        } else {
          const __m256 v = CONTIG ? _mm256_loadu_ps(xp + off[0] + o0 + d)
                                  : _mm256_i32gather_ps(xp, at, 4);
          if (t == 0) {
            m = v;
            mi = vi;
            continue;
          }
          take_max(m, mi, v, vi);
        }
      }
    store_block(y + o0, ir ? ir + o0 : nullptr, m, mi);
  };
  int64_t o = 0;
  for (; o + 8 <= n; o += 8) block(o);
  if (o < n) block(n - 8);  // overlaps the last full block: same values written twice
}

template <int SW>
void run(const PoolParams& p, View4<const float> x, float* y, int64_t* idx) {
  const int64_t C = p.C, OH = p.OH, OW = p.OW;
  // Columns [ow_lo, ow_hi) have every tap inside the input.
  int64_t ow_lo = 0;
  while (ow_lo < OW && ow_lo * p.stride_w - p.pad_w < 0) ++ow_lo;
  int64_t ow_hi = OW;
  while (ow_hi > ow_lo && (ow_hi - 1) * p.stride_w - p.pad_w + (p.kw - 1) * p.dil_w >= p.W)
    --ow_hi;
  const bool vec = ow_hi - ow_lo >= 8;
  // (Offsets and indices of every tap in 32 bits, rows rs apart; one bit per tap.)
  const auto fits = [&](int64_t rs) {
    return (p.H + p.pad_h + (p.kh - 1) * p.dil_h) * rs + p.W + p.pad_w + (p.kw - 1) * p.dil_w <
           (int64_t(1) << 30);
  };
  if (!vec && p.OH * p.OW >= 8 && p.kh * p.kw <= 31 && fits(std::abs(x.stride[2])) && fits(p.W)) {
    const int64_t n = OH * OW;
    std::vector<int32_t> off(n), ind(n), first(n), valid(n);
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t o = oh * OW + ow;
        const int64_t ih = oh * p.stride_h - p.pad_h, iw = ow * p.stride_w - p.pad_w;
        off[o] = static_cast<int32_t>(ih * x.stride[2] + iw);
        ind[o] = static_cast<int32_t>(ih * p.W + iw);
        int64_t ih0, iw0;
        window_start(p, oh, ow, ih0, iw0);
        first[o] = static_cast<int32_t>(ih0 * p.W + iw0);
        int32_t bits = 0;
        for (int64_t i = 0; i < p.kh; ++i)
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t r = ih + i * p.dil_h, c = iw + j * p.dil_w;
            if (r >= 0 && r < p.H && c >= 0 && c < p.W) bits |= int32_t(1) << (i * p.kw + j);
          }
        valid[o] = bits;
      }
    const int32_t all = static_cast<int32_t>((int64_t(1) << (p.kh * p.kw)) - 1);
    const bool masked = std::any_of(valid.begin(), valid.end(), [&](int32_t v) { return v != all; });
    bool contig = true;
    for (int64_t o = 0; o < n && contig; ++o) contig = off[o] == off[0] + o;
    const auto plane_fn =
        masked ? (contig ? pool_plane_flat<true, true> : pool_plane_flat<true, false>)
               : (contig ? pool_plane_flat<false, true> : pool_plane_flat<false, false>);
#pragma omp parallel for schedule(static) num_threads(threads_for(p.planes() * n * p.kh * p.kw))
    for (int64_t plane = 0; plane < p.planes(); ++plane)
      plane_fn(p, x.data + (plane / C) * x.stride[0] + (plane % C) * x.stride[1], x.stride[2],
               off.data(), ind.data(), first.data(), valid.data(), y + plane * n,
               idx ? idx + plane * n : nullptr);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) \
    num_threads(threads_for(p.planes() * OH * OW * p.kh * p.kw))
  for (int64_t plane = 0; plane < p.planes(); ++plane)
    for (int64_t oh = 0; oh < OH; ++oh) {
      const float* xp = x.data + (plane / C) * x.stride[0] + (plane % C) * x.stride[1];
      float* yr = y + (plane * OH + oh) * OW;
      int64_t* ir = idx ? idx + (plane * OH + oh) * OW : nullptr;
      const int64_t ih_first = oh * p.stride_h - p.pad_h;
      // A row whose window has no valid input row keeps torch's placeholder: scalar.
      int64_t ih0 = ih_first;
      while (ih0 < 0) ih0 += p.dil_h;
      const bool any_row = ih0 < std::min(ih_first + (p.kh - 1) * p.dil_h + 1, p.H);
      const int64_t lo = (vec && any_row) ? ow_lo : OW, hi = (vec && any_row) ? ow_hi : OW;
      for (int64_t ow = 0; ow < OW; ++ow) {
        if (ow == lo) {
          pool_row<SW>(p, xp, x.stride[2], oh, lo, hi, yr, ir);
          ow = hi - 1;
          continue;
        }
        int64_t k;
        max_pool_window(p, xp, x.stride[2], int64_t(1), oh, ow, yr[ow], k);
        if (ir) ir[ow] = k;
      }
    }
}

}  // namespace

void max_pool2d_forward_f32(const PoolParams& p, View4<const float> x, float* y, int64_t* idx) {
  if (p.stride_w == 1) run<1>(p, x, y, idx);
  else if (p.stride_w == 2) run<2>(p, x, y, idx);
  else run<0>(p, x, y, idx);
}

// Row ih of the plane lies in row i of output row oh's windows (i < stride_h): a window
// row when i is a multiple of dil_h within the kernel's extent, zeros otherwise.
int64_t max_pool2x2_backward_plane_f32(const PoolParams& p, const float* dy, const int64_t* idx,
                                       float* dx, float* buf, int64_t rows) {
  // A window row: four windows per step, their indices against the columns 2j (lanes 2j
  // of the result) and 2j + 1 (lanes 2j + 1); each 64-bit comparison is all ones or all
  // zeros, so the two interleave by one 32-bit blend. The last 1-3 windows: masked loads
  // and stores (masked-off index lanes are -1, which names no column). They write columns
  // [0, 2 OW): the last column of an odd W, in no window, is written apart in place and
  // stays the zero a buffer starts with.
  const int64_t W = p.W, OW = p.OW, full = OW / 4 * 4, extent = (p.kh - 1) * p.dil_h;
  const int r = static_cast<int>(OW - full);
  const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256i one = _mm256_set1_epi64x(1), step = _mm256_set1_epi64x(8);
  const __m256i cols = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * r),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i wins = _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3));
  const __m256i off = _mm256_andnot_si256(wins, _mm256_set1_epi64x(-1));
  const __m128i wins32 = _mm256_castsi256_si128(
      _mm256_permutevar8x32_epi32(wins, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0)));
  int64_t hits = 0;
  auto window_row = [&](int64_t ih, int64_t oh, float* out) {
    const float* d = dy + oh * OW;
    const int64_t* k = idx + oh * OW;
    __m256i even = _mm256_add_epi64(_mm256_set1_epi64x(ih * W), _mm256_setr_epi64x(0, 2, 4, 6));
    auto block = [&](__m256i ki, __m128 di) {
      const __m256i m0 = _mm256_cmpeq_epi64(ki, even);
      const __m256i m1 = _mm256_cmpeq_epi64(ki, _mm256_add_epi64(even, one));
      const __m256 m = _mm256_castsi256_ps(_mm256_blend_epi32(m0, m1, 0xAA));
      hits += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(m)));
      even = _mm256_add_epi64(even, step);
      // + 0, as the scatter's 0 + dy: a -0.0 gradient lands as +0.0 (torch's).
      const __m256 v = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(di), dup);
      return _mm256_add_ps(_mm256_and_ps(m, v), _mm256_setzero_ps());
    };
    for (int64_t j = 0; j < full; j += 4)
      _mm256_storeu_ps(out + 2 * j,
                       block(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + j)),
                             _mm_loadu_ps(d + j)));
    if (r) {
      const __m256i ki = _mm256_or_si256(
          _mm256_maskload_epi64(reinterpret_cast<const long long*>(k + full), wins), off);
      _mm256_maskstore_ps(out + 2 * full, cols, block(ki, _mm_maskload_ps(d + full, wins32)));
    }
    if (!buf && W % 2) out[W - 1] = 0.f;
  };
  int64_t oh = p.pad_h / p.stride_h, i = p.pad_h % p.stride_h;  // input row 0's place
  const int64_t chunk = buf ? rows : p.H;
  for (int64_t r0 = 0; r0 < p.H; r0 += chunk) {
    const int64_t r1 = std::min(p.H, r0 + chunk);
    for (int64_t ih = r0; ih < r1; ++ih) {
      float* out = buf ? buf + (ih - r0) * W : dx + ih * W;
      if (oh < p.OH && i <= extent && (p.dil_h == 1 || i % p.dil_h == 0))
        window_row(ih, oh, out);
      else
        std::memset(out, 0, sizeof(float) * W);
      if (++i == p.stride_h) i = 0, ++oh;
    }
    if (buf) stream_copy(dx + r0 * W, buf, sizeof(float) * (r1 - r0) * W);
  }
  return hits;
}

void stream_copy(void* dst, const void* src, size_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  size_t head = (32 - reinterpret_cast<uintptr_t>(d) % 32) % 32;
  if (head > bytes) head = bytes;
  std::memcpy(d, s, head);
  d += head; s += head; bytes -= head;
  size_t i = 0;
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  std::memcpy(d + i, s + i, bytes - i);
  _mm_sfence();
}

}  // namespace pyconv::avx2
