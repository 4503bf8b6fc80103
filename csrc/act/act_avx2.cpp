// fp32 activations, AVX2 + FMA: f32_vact__avx2. The math lives in
// act_avx2_math.h; this file drives it over arrays. The last n % 8 elements go
// through the same code with masked loads and stores, so a result does not
// depend on its position.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "act/act.h"
#include "act/act_avx2_math.h"

namespace pyconv::avx2 {

namespace {

inline __m256i tail_mask(int64_t k) {  // first k lanes set, 0 <= k < 8
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), lane);
}

// out[i] = f(in0[i] [, in1[i]]) over n elements: masked head up to out's
// 32-byte alignment when streaming, full vectors, masked tail.
template <int NIN, typename F>
inline void drive(const F& f, const float* in0, const float* in1, float* out, int64_t n,
                  bool stream) {
  auto apply = [&](__m256 a, __m256 b) {
    if constexpr (NIN == 1) return f(a);
    else return f(a, b);
  };
  auto masked = [&](int64_t i, int64_t k) {
    const __m256i m = tail_mask(k);
    const __m256 a = _mm256_maskload_ps(in0 + i, m);
    const __m256 b = NIN == 2 ? _mm256_maskload_ps(in1 + i, m) : a;
    _mm256_maskstore_ps(out + i, m, apply(a, b));
  };
  // Full vectors [i0, i1) to dst + (i - i0), two at a time (independent polynomials overlap).
  auto run = [&](int64_t i0, int64_t i1, float* dst) {
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16) {
      const __m256 a0 = _mm256_loadu_ps(in0 + i), a1 = _mm256_loadu_ps(in0 + i + 8);
      const __m256 b0 = NIN == 2 ? _mm256_loadu_ps(in1 + i) : a0;
      const __m256 b1 = NIN == 2 ? _mm256_loadu_ps(in1 + i + 8) : a1;
      _mm256_storeu_ps(dst + (i - i0), apply(a0, b0));
      _mm256_storeu_ps(dst + (i - i0) + 8, apply(a1, b1));
    }
    for (; i + 8 <= i1; i += 8) {
      const __m256 a = _mm256_loadu_ps(in0 + i);
      const __m256 b = NIN == 2 ? _mm256_loadu_ps(in1 + i) : a;
      _mm256_storeu_ps(dst + (i - i0), apply(a, b));
    }
    return i;
  };
  int64_t i = 0;
  stream = stream && (reinterpret_cast<uintptr_t>(out) % 4 == 0);
  if (stream) {
    const int64_t head = ((32 - reinterpret_cast<uintptr_t>(out) % 32) % 32) / 4;
    if (head > 0 && head <= n) {
      masked(0, head);
      i = head;
    }
    // Blocks computed into L1 by the loop above, then streamed out: computing straight
    // into non-temporal stores ran the long polynomials 1.2-2x slower.
    constexpr int64_t kBlock = 512;
    alignas(32) float buf[kBlock];
    for (; i + 8 <= n;) {
      const int64_t e = run(i, i + std::min<int64_t>(kBlock, (n - i) / 8 * 8), buf);
      for (int64_t j = 0; j < e - i; j += 8)
        _mm256_stream_ps(out + i + j, _mm256_load_ps(buf + j));
      i = e;
    }
    _mm_sfence();
  } else {
    i = run(0, n, out);
  }
  if (i < n) masked(i, n - i);
}

// One instantiation per activation, so the switch folds away inside the loop.
template <ActKind K>
void fwd_kind(float param, const float* x, float* y, int64_t n, bool stream) {
  drive<1>(vmath::ActFwd<K>{param}, x, nullptr, y, n, stream);
}
template <ActKind K>
void bwd_kind(float param, const float* dy, const float* x, float* dx, int64_t n, bool stream) {
  drive<2>(vmath::ActBwd<K>{param}, dy, x, dx, n, stream);
}

#define PYCONV_ACT_SWITCH(CALL)                       \
  switch (act.kind) {                                 \
    case ActKind::relu: CALL(ActKind::relu); break;   \
    case ActKind::leaky_relu: CALL(ActKind::leaky_relu); break; \
    case ActKind::elu: CALL(ActKind::elu); break;     \
    case ActKind::gelu: CALL(ActKind::gelu); break;   \
    case ActKind::gelu_tanh: CALL(ActKind::gelu_tanh); break; \
    case ActKind::silu: CALL(ActKind::silu); break;   \
    case ActKind::sigmoid: CALL(ActKind::sigmoid); break; \
    case ActKind::tanh: CALL(ActKind::tanh); break;   \
    case ActKind::hardswish: CALL(ActKind::hardswish); break; \
    case ActKind::none: CALL(ActKind::none); break;   \
  }

}  // namespace

void activation_forward_f32(Activation act, const float* x, float* y, int64_t n, bool stream) {
  const float param = static_cast<float>(act.param);
#define PYCONV_CALL(K) fwd_kind<K>(param, x, y, n, stream)
  PYCONV_ACT_SWITCH(PYCONV_CALL)
#undef PYCONV_CALL
}

void activation_backward_f32(Activation act, const float* dy, const float* x, float* dx, int64_t n,
                             bool stream) {
  const float param = static_cast<float>(act.param);
#define PYCONV_CALL(K) bwd_kind<K>(param, dy, x, dx, n, stream)
  PYCONV_ACT_SWITCH(PYCONV_CALL)
#undef PYCONV_CALL
}

void activation_backward_from_output_f32(ActKind kind, const float* dy, const float* y, float* dx,
                                         int64_t n, bool stream) {
  if (kind == ActKind::sigmoid)
    drive<2>(vmath::ActBwdFromOutput<ActKind::sigmoid>{}, dy, y, dx, n, stream);
  else
    drive<2>(vmath::ActBwdFromOutput<ActKind::tanh>{}, dy, y, dx, n, stream);
}

}  // namespace pyconv::avx2
