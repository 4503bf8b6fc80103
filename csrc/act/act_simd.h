// fp32 SIMD activations, written once over a vector-operations struct S and
// included by act_avx2.cpp (8 lanes) and act_avx512.cpp (16 lanes), each inside
// its own anonymous namespace and compiled with its own ISA flags (as
// gemm/ukernel_tmpl.h). The lanes compute the same operations in the same order,
// so both ISAs give bitwise the same results. ActFwd<S, K>{param}(x) and
// ActBwd<S, K>{param}(g, x) are the vector forms of activate()
// (common/activation_scalar.h) and activate_backward() (act/activation_grad.h),
// within a few ulp for the transcendental ones.
//
// S provides: type R (the vector), M (a lane mask), I (int32 lanes), lanes;
// set1, zero, load, store, stream (non-temporal), load_n / store_n (the first k < lanes
// lanes, the rest untouched and not read); add, sub, mul, div, fma(a, b, c) = a*b + c,
// fnma(a, b, c) = c - a*b, min, max (the second operand when either is NaN), and_, or_,
// xor_, andnot(a, b) = ~a & b; bits (R's bits as I), exponent(I b) = b << 23 as R,
// ldexp(v, n) = v * 2^n for integral n in [-252, 254], rounded once, lookup8(table, i) = the
// table's entry i % 8 per lane (8 floats, 32-byte aligned); lt, le, gt, ge (ordered, quiet)
// -> M; blend(m, f, t) = m ? t : f; zero_where(m, x) = m ? 0 : x.
//
// Polynomial exp (Cephes coefficients, 2^n applied so the result under/overflows
// gracefully), expm1 for elu, tanh (expm1(2x) / (expm1(2x) + 2)) and erf (8 polynomial
// pieces). NaN propagates through every path; signs of zero follow torch (restored
// explicitly where the arithmetic would lose them).

// Always inlined: as ordinary inline functions gcc kept exp out of line in the activation
// loops, called with its operands on the stack (sigmoid's backward ran at half speed).
#define PYCONV_VMATH __attribute__((always_inline)) static inline

// erf's pieces (VMath::erf): kErfPieces[j][k] multiplies t^j on piece k
// (csrc/act/fit_erf_pieces.py prints them).
alignas(32) constexpr float kErfPieces[7][8] = {
    {0.0f, 0.54929924f, 0.868571997f, 0.9763484f,
     0.997447014f, 0.999837577f, 0.99999398f, 0.999999881f},
    {1.12837923f, 0.849029064f, 0.361680388f, 0.0872287899f,
     0.0119104953f, 0.000920769526f, 4.03057675e-05f, 9.9905651e-07f},
    {-1.11432917e-06f, -0.45281595f, -0.385792434f, -0.139566526f,
     -0.0254090894f, -0.00245531602f, -0.000128960615f, -3.73125908e-06f},
    {-0.376076639f, -0.122042269f, 0.153726906f, 0.119820453f,
     0.032175377f, 0.00405513356f, 0.000260744273f, 8.87812985e-06f},
    {-0.000810571364f, 0.183463499f, 0.0466155447f, -0.0493075252f,
     -0.0258506183f, -0.00459229993f, -0.000375089585f, -1.52557013e-05f},
    {0.118819922f, -0.0015764602f, -0.0644840747f, -0.00511207012f,
     0.012177173f, 0.00376472832f, 0.000428183499f, 2.24777013e-05f},
    {-0.0205028802f, -0.0475873761f, 0.0102604805f, 0.0153521346f,
     -0.00173582137f, -0.00204888382f, -0.000342317304f, -2.441576e-05f},
};

template <class S>
struct VMath {
  using R = typename S::R;
  using I = typename S::I;
  PYCONV_VMATH R c(float v) { return S::set1(v); }
  PYCONV_VMATH R sign_of(R x) { return S::and_(x, c(-0.0f)); }
  PYCONV_VMATH R abs_of(R x) { return S::andnot(c(-0.0f), x); }

  // x = n ln2 + r with n = round(x log2e), read off t = x log2e + kShift in one FMA: the sum
  // rounds to an integer (t's ulp is 1) and holds n + 127 in its low mantissa bits while
  // |n| < 2^22, so t - kShift is n and exponent(bits(t)) is 2^n (for n in [-126, 127]), with
  // no rounding or conversion instructions (tanh 1.13x against rint and cvt). Returns
  // exp(r) - 1, t and n.
  static constexpr float kRound = 12582912.0f;         // 1.5 * 2^23
  static constexpr float kShift = kRound + 127.0f;
  PYCONV_VMATH R exp_reduce(R x, R& t, R& n) {
    t = S::fma(x, c(1.44269504088896341f), c(kShift));
    n = S::sub(t, c(kShift));
    R r = S::fnma(n, c(0.693359375f), x);
    r = S::fnma(n, c(-2.12194440e-4f), r);
    return expm1_poly<1>(r);
  }

  // expm1(SC r) / SC = r + r^2 P(r) for |SC r| <= ln2 / 2 (Cephes' coefficients, each
  // multiplied by SC^(k+1): exact for a power of two, so SC = 2 rounds as SC = 1 on 2r would).
  template <int SC>
  PYCONV_VMATH R expm1_poly(R r) {
    constexpr float s = SC;
    R y = c(1.9875691500e-4f * s * s * s * s * s * s);
    y = S::fma(y, r, c(1.3981999507e-3f * s * s * s * s * s));
    y = S::fma(y, r, c(8.3334519073e-3f * s * s * s * s));
    y = S::fma(y, r, c(4.1665795894e-2f * s * s * s));
    y = S::fma(y, r, c(1.6666665459e-1f * s * s));
    y = S::fma(y, r, c(5.0000001201e-1f * s));
    return S::fma(y, S::mul(r, r), r);
  }

  PYCONV_VMATH R exp(R x) {
    // min/max return their second operand when it is NaN, so NaN passes through.
    x = S::max(c(-104.0f), S::min(c(89.0f), x));
    R t, n;  // n in [-150, 128]: subnormal results round once
    const R em1 = exp_reduce(x, t, n);
    return S::ldexp(S::add(em1, c(1.0f)), n);
  }

  // expm1 for x <= 0 (larger x is clamped to 0); keeps -0.0.
  PYCONV_VMATH R expm1_nonpos(R x) {
    const R xc = S::max(c(-87.0f), S::min(S::zero(), x));
    R t, n;
    const R em1 = exp_reduce(xc, t, n);
    const R s = S::exponent(S::bits(t));
    return S::or_(S::fma(em1, s, S::sub(s, c(1.0f))), sign_of(x));
  }

  // tanh |x| = E / (E + 2) with E = expm1(2|x|) (no cancellation: E ~ 2|x| for small x),
  // |x| clamped to 10 (tanh rounds to 1 from 9.01, so +-1 there, as gelu_tanh's tail needs;
  // e^20 keeps E + 2 finite); x's sign put back. exp_reduce's steps on |x| = n ln2/2 + r:
  // expm1_poly<2> gives expm1(2r) / 2 and kShift's bias 128 gives 2^(n+1) (no |x| + |x|),
  // with one reduction step: n <= 29, so ln2/2's float32 rounding moves 2r by at most 6e-8
  // (tanh's worst error 2.36 ulp and mean 0.31 ulp either way; 1.11-1.14x).
  PYCONV_VMATH R tanh(R x) {
    const R a = S::min(c(10.0f), abs_of(x));  // (NaN passes through min's second operand)
    const R t = S::fma(a, c(2.0f * 1.44269504088896341f), c(kShift + 1.0f));
    const R n = S::sub(t, c(kShift + 1.0f));
    const R h = expm1_poly<2>(S::fnma(n, c(0.693147182f * 0.5f), a));  // expm1(2r) / 2
    const R s2 = S::exponent(S::bits(t));    // 2^(n+1)
    const R e = S::fma(h, s2, S::fma(s2, c(0.5f), c(-1.0f)));
    return S::or_(S::div(e, S::add(e, c(2.0f))), sign_of(x));
  }

  // erf |x| by 8 polynomial pieces of degree 6 in t = |x| - k h, k = round(|x| / h), h = 8/15:
  // one Horner chain whose coefficients are looked up per lane (lookup8), instead of two
  // polynomials (13 and 6 steps) both evaluated and blended (gelu 1.27-1.40x). Piece 0,
  // [0, h/2), has no constant term, so small |x| keep their relative accuracy; |x| is clamped
  // to 3.99, where piece 7 gives 1 (erf rounds to 1 from 3.92). Fitted by
  // csrc/act/fit_erf_pieces.py: within 2.3 ulp of erf in float32 evaluation, 1 ulp from
  // |x| = 0.8 (gelu within 3.1 ulp, 3.6 before).
  PYCONV_VMATH R erf(R x) {
    const R a = S::min(c(3.99f), abs_of(x));  // (NaN passes through min's second operand)
    const R s = S::fma(a, c(1.875f), c(kRound));  // k in the low bits (as exp_reduce)
    const I k = S::bits(s);
    const R t = S::fnma(S::sub(s, c(kRound)), c(0.533333361f), a);  // (h rounded)
    R y = S::lookup8(kErfPieces[6], k);
    for (int j = 5; j >= 0; --j) y = S::fma(y, t, S::lookup8(kErfPieces[j], k));
    return S::or_(S::min(c(1.0f), y), sign_of(x));
  }

  PYCONV_VMATH R sigmoid(R x) {
    return S::div(c(1.0f), S::add(c(1.0f), exp(S::xor_(x, c(-0.0f)))));
  }
};

constexpr float kSqrt1_2 = 0.70710678118654752440f;
constexpr float kGeluBeta = 0.39894228040143267794f;      // 1/sqrt(2 pi)
constexpr float kGeluTanhBeta = 0.79788456080286535588f;  // sqrt(2/pi)
constexpr float kKappa = 0.044715f;

template <class S, ActKind kind>
struct ActFwd {
  using R = typename S::R;
  using Mt = VMath<S>;
  float param;
  __attribute__((always_inline)) inline R operator()(R x) const {
    const R zero = S::zero();
    switch (kind) {  // a constant: each instantiation keeps one case
      case ActKind::relu:  // x < 0 ? 0 : x (keeps -0.0 and NaN)
        return S::zero_where(S::lt(x, zero), x);
      case ActKind::leaky_relu:
        return S::blend(S::gt(x, zero), S::mul(x, S::set1(param)), x);
      case ActKind::elu:
        // negative branch only below 0: at +-0 (and NaN) the input, as torch, also for alpha = +-Inf/NaN
        return S::blend(S::lt(x, zero), x, S::mul(S::set1(param), Mt::expm1_nonpos(x)));
      case ActKind::gelu: {  // as activate(): one FMA, then x's sign
        const R hx = S::mul(x, S::set1(0.5f)), sign = S::set1(-0.0f);
        const R y = S::fma(hx, Mt::erf(S::mul(x, S::set1(kSqrt1_2))), hx);
        return S::or_(S::andnot(sign, y), S::and_(sign, x));
      }
      case ActKind::gelu_tanh: {
        const R x3 = S::mul(S::mul(x, x), x);
        const R inner = S::mul(S::set1(kGeluTanhBeta), S::fma(S::set1(kKappa), x3, x));
        return S::mul(S::mul(S::set1(0.5f), x), S::add(S::set1(1.0f), Mt::tanh(inner)));
      }
      case ActKind::silu:
        return S::div(x, S::add(S::set1(1.0f), Mt::exp(S::xor_(x, S::set1(-0.0f)))));
      case ActKind::sigmoid: return Mt::sigmoid(x);
      case ActKind::tanh: return Mt::tanh(x);
      case ActKind::hardswish: {
        // x * min(max(x + 3, 0), 6) / 6, NaN-propagating like torch's
        R r = S::add(x, S::set1(3.0f));
        r = S::max(zero, r);
        r = S::min(S::set1(6.0f), r);
        return S::div(S::mul(x, r), S::set1(6.0f));
      }
      case ActKind::none: break;
    }
    return x;
  }
};

// dx = g * act'(x) through y = act(x), for sigmoid and tanh (grad_from_output_ok).
template <class S, ActKind kind>
struct ActBwdFromOutput {
  static_assert(kind == ActKind::sigmoid || kind == ActKind::tanh);
  using R = typename S::R;
  __attribute__((always_inline)) inline R operator()(R g, R y) const {
    const R one = S::set1(1.0f);
    if constexpr (kind == ActKind::sigmoid)
      return S::mul(S::mul(g, S::sub(one, y)), y);
    else
      return S::mul(g, S::fnma(y, y, one));
  }
};

template <class S, ActKind kind>
struct ActBwd {
  using R = typename S::R;
  using Mt = VMath<S>;
  float param;
  __attribute__((always_inline)) inline R operator()(R g, R x) const {
    const R zero = S::zero(), one = S::set1(1.0f);
    switch (kind) {  // a constant: each instantiation keeps one case
      case ActKind::relu:  // x <= 0 ? 0 : g (NaN passes g, as torch's threshold_backward)
        return S::zero_where(S::le(x, zero), g);
      case ActKind::leaky_relu:
        return S::blend(S::gt(x, zero), S::mul(g, S::set1(param)), g);
      case ActKind::elu: {
        const R neg = S::mul(S::mul(g, S::set1(param)), Mt::exp(x));
        return S::blend(S::gt(x, zero), neg, g);
      }
      case ActKind::gelu: {
        const R cdf = S::mul(S::set1(0.5f), S::add(one, Mt::erf(S::mul(x, S::set1(kSqrt1_2)))));
        const R pdf = S::mul(S::set1(kGeluBeta), Mt::exp(S::mul(S::mul(x, x), S::set1(-0.5f))));
        return S::mul(g, S::fma(x, pdf, cdf));
      }
      case ActKind::gelu_tanh: {  // (as activation_grad.h: 1 + tanh and 1 - tanh^2 from E)
        const R x2 = S::mul(x, x), x3 = S::mul(x2, x);
        const R inner = S::mul(S::set1(kGeluTanhBeta), S::fma(S::set1(kKappa), x3, x));
        const R e = Mt::exp(S::mul(S::set1(-2.0f), Mt::abs_of(inner))), d = S::add(one, e);
        const R left_d = S::div(S::blend(S::ge(inner, zero), e, one), d);
        const R right_d = S::div(S::mul(S::add(x, x), e), S::mul(d, d));
        const R inner_d = S::mul(S::set1(kGeluTanhBeta), S::fma(S::set1(3.0f * kKappa), x2, one));
        return S::mul(g, S::fma(right_d, inner_d, left_d));
      }
      case ActKind::silu: {
        const R s = Mt::sigmoid(x);
        const R t = S::fma(x, S::sub(one, s), one);
        return S::mul(S::mul(g, s), t);
      }
      case ActKind::sigmoid: return ActBwdFromOutput<S, ActKind::sigmoid>{}(g, Mt::sigmoid(x));
      case ActKind::tanh: return ActBwdFromOutput<S, ActKind::tanh>{}(g, Mt::tanh(x));
      case ActKind::hardswish: {
        const R mid = S::mul(g, S::add(S::div(x, S::set1(3.0f)), S::set1(0.5f)));
        const R r = S::blend(S::ge(x, S::set1(3.0f)), mid, g);
        return S::zero_where(S::le(x, S::set1(-3.0f)), r);
      }
      case ActKind::none: break;
    }
    return g;
  }
};

#undef PYCONV_VMATH

// out[i] = f(in0[i] [, in1[i]]) over n elements: full vectors, two at a time (independent
// polynomials overlap), then the last n % lanes through the same code on partial vectors,
// so a result does not depend on its position. stream: the output goes out by
// non-temporal stores, from blocks computed into L1 first (computing straight into the
// stores ran the long polynomials 1.2-2x slower), after a partial head up to its vector
// alignment.
template <class S, int NIN, typename F>
void act_drive(const F& f, const float* in0, const float* in1, float* out, int64_t n,
               bool stream) {
  using R = typename S::R;
  constexpr int W = S::lanes;
  auto apply = [&](R a, R b) {
    if constexpr (NIN == 1) return f(a);
    else return f(a, b);
  };
  auto partial = [&](int64_t i, int k) {
    const R a = S::load_n(in0 + i, k);
    const R b = NIN == 2 ? S::load_n(in1 + i, k) : a;
    S::store_n(out + i, k, apply(a, b));
  };
  // Full vectors [i0, i1) to dst + (i - i0).
  auto run = [&](int64_t i0, int64_t i1, float* dst) {
    int64_t i = i0;
    for (; i + 2 * W <= i1; i += 2 * W) {
      const R a0 = S::load(in0 + i), a1 = S::load(in0 + i + W);
      const R b0 = NIN == 2 ? S::load(in1 + i) : a0;
      const R b1 = NIN == 2 ? S::load(in1 + i + W) : a1;
      S::store(dst + (i - i0), apply(a0, b0));
      S::store(dst + (i - i0) + W, apply(a1, b1));
    }
    for (; i + W <= i1; i += W) {
      const R a = S::load(in0 + i);
      const R b = NIN == 2 ? S::load(in1 + i) : a;
      S::store(dst + (i - i0), apply(a, b));
    }
    return i;
  };
  int64_t i = 0;
  stream = stream && (reinterpret_cast<uintptr_t>(out) % 4 == 0);
  if (stream) {
    constexpr uintptr_t kAlign = W * sizeof(float);
    const int64_t head = ((kAlign - reinterpret_cast<uintptr_t>(out) % kAlign) % kAlign) / 4;
    if (head > 0 && head <= n) {
      partial(0, static_cast<int>(head));
      i = head;
    }
    constexpr int64_t kBlock = 512;
    alignas(64) float buf[kBlock];
    for (; i + W <= n;) {
      const int64_t e = run(i, i + std::min<int64_t>(kBlock, (n - i) / W * W), buf);
      for (int64_t j = 0; j < e - i; j += W) S::stream(out + i + j, S::load(buf + j));
      i = e;
    }
    _mm_sfence();
  } else {
    i = run(0, n, out);
  }
  if (i < n) partial(i, static_cast<int>(n - i));
}

template <class S>
void act_forward(Activation act, const float* x, float* y, int64_t n, bool stream) {
  const float param = static_cast<float>(act.param);
#define PYCONV_CALL(K) act_drive<S, 1>(ActFwd<S, K>{param}, x, nullptr, y, n, stream)
  PYCONV_ACT_SWITCH(act.kind, PYCONV_CALL)
#undef PYCONV_CALL
}

// act.h's EpilogueBlock: z = x + bias, y = act(x + bias), row by row (z first, then y from
// it: y may alias x).
template <class S, class F>
struct AddScalar {
  F f;
  float b;
  __attribute__((always_inline)) inline typename S::R operator()(typename S::R x) const {
    return f(S::add(x, S::set1(b)));
  }
};
template <class S, class F>
struct AddVector {
  F f;
  __attribute__((always_inline)) inline typename S::R operator()(typename S::R x,
                                                                 typename S::R b) const {
    return f(S::add(x, b));
  }
};
// Rows of e from x (row stride ldx) plus bias (e's layout; null: none) to out (row stride
// ldo).
template <class S, class F>
void with_bias(const F& f, const EpilogueBlock<float>& e, const float* x, int64_t ldx,
               const float* bias, float* out, int64_t ldo) {
  for (int64_t i = 0; i < e.rows; ++i) {
    const float* xi = x + i * ldx;
    const float* b = bias ? bias + i * e.bias_row : nullptr;
    if (!b)
      act_drive<S, 1>(f, xi, nullptr, out + i * ldo, e.n, false);
    else if (e.bias_col == 0)
      act_drive<S, 1>(AddScalar<S, F>{f, *b}, xi, nullptr, out + i * ldo, e.n, false);
    else
      act_drive<S, 2>(AddVector<S, F>{f}, xi, b, out + i * ldo, e.n, false);
  }
}

// Fields read one by one, never the block copied: its caller has just stored them, and a
// copy's wide loads cannot take them from the store buffer, so each waited for every store
// before them to reach the cache, the tile's included (a fused gelu on a 1x1 conv's tiles
// spent 7% of the layer's time at that copy).
template <class S>
void act_bias_forward(Activation act, const EpilogueBlock<float>& e) {
  const float* x = e.x;
  int64_t ldx = e.ldx;
  if (e.z) {
    with_bias<S>(ActFwd<S, ActKind::none>{0.0f}, e, x, ldx, e.bias, e.z, e.ldz);
    x = e.z, ldx = e.ldz;
  }
  const float param = static_cast<float>(act.param);
#define PYCONV_CALL(K) with_bias<S>(ActFwd<S, K>{param}, e, x, ldx, e.z ? nullptr : e.bias, \
                                    e.y, e.ldy)
  PYCONV_ACT_SWITCH(act.kind, PYCONV_CALL)
#undef PYCONV_CALL
}

template <class S>
void act_backward(Activation act, const float* dy, const float* x, float* dx, int64_t n,
                  bool stream) {
  const float param = static_cast<float>(act.param);
#define PYCONV_CALL(K) act_drive<S, 2>(ActBwd<S, K>{param}, dy, x, dx, n, stream)
  PYCONV_ACT_SWITCH(act.kind, PYCONV_CALL)
#undef PYCONV_CALL
}


template <class S>
void act_backward_from_output(ActKind kind, const float* dy, const float* y, float* dx,
                              int64_t n, bool stream) {
  if (kind == ActKind::sigmoid)
    act_drive<S, 2>(ActBwdFromOutput<S, ActKind::sigmoid>{}, dy, y, dx, n, stream);
  else
    act_drive<S, 2>(ActBwdFromOutput<S, ActKind::tanh>{}, dy, y, dx, n, stream);
}

// The exported entry points of one ISA's file (after its anonymous namespace), declared in
// act/act.h.
#define PYCONV_ACT_EXPORTS(S)                                                                 \
  void activation_forward_f32(Activation act, const float* x, float* y, int64_t n,           \
                              bool stream) {                                                 \
    act_forward<S>(act, x, y, n, stream);                                                     \
  }                                                                                           \
  void activation_bias_forward_f32(Activation act, const EpilogueBlock<float>& e) {          \
    act_bias_forward<S>(act, e);                                                              \
  }                                                                                           \
  void activation_backward_f32(Activation act, const float* dy, const float* x, float* dx,  \
                               int64_t n, bool stream) {                                     \
    act_backward<S>(act, dy, x, dx, n, stream);                                               \
  }                                                                                           \
  void activation_backward_from_output_f32(ActKind kind, const float* dy, const float* y,    \
                                           float* dx, int64_t n, bool stream) {              \
    act_backward_from_output<S>(kind, dy, y, dx, n, stream);                                  \
  }
