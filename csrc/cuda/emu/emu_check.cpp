// Runs the CUDA kernels under the CPU emulation (cuda_emu.h) against plain
// reference loops: conv2d forward (bias + every activation, as the fused
// epilogue), backward-data (also conv_transpose2d's forward), backward-weight
// with and without split partials, backward-bias, strided (non-contiguous)
// operands, tile edges; max_pool2d forward/backward, max_unpool2d
// forward/backward; the activation backward formulas against finite
// differences of common/activation_scalar.h (and, for sigmoid and tanh, the
// same gradient taken through the output). Prints one line per failure and
// exits 1 if any. Build: see tests/test_cuda.py (g++ -std=c++20 -pthread).
#include "cuda/emu/cuda_emu.h"

#include <cstdio>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "common/activation_scalar.h"
#include "cuda/conv_kernels.cuh"
#ifdef PYCONV_EMU_POOL
#include "cuda/pool_kernels.cuh"
#endif

using namespace pyconv;
using namespace pyconv::cuda::kern;

static int failures = 0;

template <typename T>
static void compare(const std::string& what, const std::vector<T>& got, const std::vector<double>& want) {
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-11;
  double scale = 1;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[i], w = want[i];
    const bool both_nan = std::isnan(g) && std::isnan(w);
    if (!both_nan && !(std::abs(g - w) <= tol * scale + tol * std::abs(w))) {
      std::printf("FAIL %s: element %zu got %.10g want %.10g\n", what.c_str(), i, g, w);
      ++failures;
      return;
    }
  }
}

// A 4-d tensor stored in a bigger buffer with permuted, padded strides.
template <typename T>
struct Strided4 {
  std::vector<T> buf;
  View4<const T> v;
  int64_t size[4];
  Strided4(const int64_t s[4], bool odd, std::mt19937& rng) {
    std::normal_distribution<double> nd;
    for (int i = 0; i < 4; ++i) size[i] = s[i];
    // odd layout: channels last, with a gap after every row
    int64_t st[4];
    if (odd) {
      st[1] = 1; st[3] = s[1]; st[2] = s[1] * s[3] + 3; st[0] = st[2] * s[2] + 5;
    } else {
      st[3] = 1; st[2] = s[3]; st[1] = s[2] * s[3]; st[0] = s[1] * st[1];
    }
    buf.assign(static_cast<size_t>(st[0] * s[0] + 8), T(0));
    for (auto& x : buf) x = static_cast<T>(nd(rng));
    v.data = buf.data();
    for (int i = 0; i < 4; ++i) { v.size[i] = s[i]; v.stride[i] = st[i]; }
  }
  double at(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return v.data[a * v.stride[0] + b * v.stride[1] + c * v.stride[2] + d * v.stride[3]];
  }
};

template <typename T, typename Tl>
static void conv_case(const char* name, const int64_t in[4], const int64_t wsz[4], const int64_t st[2],
                      const int64_t pad[4], const int64_t dil[2], int64_t groups, bool odd, int act_code) {
  std::mt19937 rng(42);
  const ConvParams p = make_conv2d_params("conv2d", in, wsz, wsz[0], st, pad, dil, groups);
  Strided4<T> x(in, odd, rng), w(wsz, odd, rng);
  const int64_t ysz[4] = {p.N, p.K, p.P, p.Q};
  Strided4<T> dy(ysz, odd, rng);
  std::vector<T> bias(p.K);
  for (int64_t k = 0; k < p.K; ++k) bias[k] = static_cast<T>(0.1 * k - 0.3);
  const Activation act{static_cast<ActKind>(act_code), act_code == int(ActKind::elu) ? 0.7 : 0.05};
  const int64_t Cg = p.Cg(), Kg = p.Kg();
  auto xin = [&](int64_t n, int64_t c, int64_t ih, int64_t iw) {
    return (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) ? 0.0 : x.at(n, c, ih, iw);
  };
  // reference loops
  std::vector<double> y_ref(p.N * p.K * p.P * p.Q), z_ref(y_ref.size()), dx_ref(p.N * p.C * p.H * p.W, 0.0),
      dw_ref(p.K * Cg * p.R * p.S, 0.0), db_ref(p.K, 0.0);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t k = 0; k < p.K; ++k)
      for (int64_t oh = 0; oh < p.P; ++oh)
        for (int64_t ow = 0; ow < p.Q; ++ow) {
          const int64_t g = k / Kg;
          double s = bias[k];
          const double d = dy.at(n, k, oh, ow);
          db_ref[k] += d;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < p.R; ++r)
              for (int64_t q = 0; q < p.S; ++q) {
                const int64_t ih = oh * p.stride_h - p.pad_top + r * p.dil_h;
                const int64_t iw = ow * p.stride_w - p.pad_left + q * p.dil_w;
                const double xv = xin(n, g * Cg + c, ih, iw);
                s += xv * w.at(k, c, r, q);
                dw_ref[((k * Cg + c) * p.R + r) * p.S + q] += d * xv;
                if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)
                  dx_ref[((n * p.C + g * Cg + c) * p.H + ih) * p.W + iw] += d * w.at(k, c, r, q);
              }
          const size_t i = ((n * p.K + k) * p.P + oh) * p.Q + ow;
          z_ref[i] = s;
          y_ref[i] = activate<double>(act.kind, act.param, s);
        }
  std::string tag = std::string(name) + (sizeof(T) == 4 ? " f32" : " f64") + (odd ? " strided" : "");
  constexpr int BM = Tl::BM, BN = Tl::BN, BK = Tl::BK, MINB = Tl::MINB;
  tag += BM == 64 ? " tile64" : " tile128";
  // forward with the fused epilogue
  std::vector<T> y(y_ref.size()), z(y_ref.size());
  auto fa = fwd_args<T>(p, x.v, w.v, bias.data(), 1, act, y.data(), z.data());
  emu_launch(igemm_grid<Tl>(fa, 1), dim3(THREADS), conv_igemm<T, kFwd, BM, BN, BK, MINB>, fa);
  compare(tag + " forward preact", z, z_ref);
  compare(tag + " forward act", y, y_ref);
  // backward data
  std::vector<T> dx(dx_ref.size());
  auto da = bwd_data_args<T>(p, dy.v, w.v, nullptr, 0, Activation{}, dx.data(), nullptr);
  emu_launch(igemm_grid<Tl>(da, 1), dim3(THREADS), conv_igemm<T, kBwdData, BM, BN, BK, MINB>, da);
  compare(tag + " backward data", dx, dx_ref);
  // backward weight: one split and several
  for (int sms : {1, 1000}) {
    const int splits = wgrad_splits<Tl>(p, sms);
    std::vector<T> dw(dw_ref.size(), T(-7)), ws(static_cast<size_t>(splits) * dw_ref.size());
    auto wa = bwd_weight_args<T>(p, dy.v, x.v, dw.data(), splits, ws.data());
    emu_launch(igemm_grid<Tl>(wa, splits), dim3(THREADS), conv_igemm<T, kBwdWeight, BM, BN, BK, MINB>, wa);
    if (splits > 1)
      emu_launch(dim3(3), dim3(64), sum_partials<T>, static_cast<const T*>(ws.data()), splits,
                 static_cast<int64_t>(dw.size()), dw.data());
    compare(tag + " backward weight splits=" + std::to_string(splits), dw, dw_ref);
  }
  for (int chunks : {1, 3}) {
    if (BM != 64 || odd || (chunks > 1 && p.K > 8)) break;  // the bias kernel does not depend on the tile
    const int64_t total = p.N * p.P * p.Q, per = (total + chunks - 1) / chunks;
    std::vector<T> db(p.K), parts(chunks * p.K);
    const FastDiv dpq(p.P * p.Q), dq(p.Q);
    T* out = chunks > 1 ? parts.data() : db.data();
    emu_launch(dim3(static_cast<unsigned>(p.K), chunks), dim3(THREADS), bias_grad<T, true>, dy.v, dpq, dq, per, out);
    if (chunks > 1)
      emu_launch(dim3(1), dim3(64), sum_partials<T>, static_cast<const T*>(parts.data()), chunks, p.K, db.data());
    compare(tag + " backward bias chunks=" + std::to_string(chunks), db, db_ref);
  }
}

#ifdef PYCONV_EMU_POOL
template <typename T, bool SMALL>
static void pool_case(const int64_t in[4], const int64_t k[2], const int64_t st[2], const int64_t pad[2],
                      const int64_t dil[2], bool ceil_mode, bool odd) {
  std::mt19937 rng(7);
  const PoolParams p = make_max_pool2d_params("max_pool2d", in, k, st, pad, dil, ceil_mode);
  const PoolDivs dv(p);
  Strided4<T> x(in, odd, rng);
  // ties and NaN: quantise, and plant a NaN
  for (auto& v : x.buf) v = static_cast<T>(std::round(v * 2) / 2);
  x.buf[x.v.stride[2] + x.v.stride[3]] = std::nan("");
  const int64_t OHW = p.OH * p.OW, n_out = p.N * p.C * OHW;
  std::vector<double> y_ref(n_out), dx_ref(p.N * p.C * p.H * p.W, 0.0);
  std::vector<int64_t> i_ref(n_out);
  std::vector<T> dyv(n_out);
  for (int64_t i = 0; i < n_out; ++i) dyv[i] = static_cast<T>(0.25 * (i % 13) - 1);
  for (int64_t pl = 0; pl < p.N * p.C; ++pl)
    for (int64_t oh = 0; oh < p.OH; ++oh)
      for (int64_t ow = 0; ow < p.OW; ++ow) {
        int64_t ih0 = oh * p.stride_h - p.pad_h, iw0 = ow * p.stride_w - p.pad_w;
        const int64_t ih1 = std::min(ih0 + (p.kh - 1) * p.dil_h + 1, p.H);
        const int64_t iw1 = std::min(iw0 + (p.kw - 1) * p.dil_w + 1, p.W);
        while (ih0 < 0) ih0 += p.dil_h;
        while (iw0 < 0) iw0 += p.dil_w;
        int64_t mi = ih0 * p.W + iw0;
        double mv = -INFINITY;
        for (int64_t ih = ih0; ih < ih1; ih += p.dil_h)
          for (int64_t iw = iw0; iw < iw1; iw += p.dil_w) {
            const double v = x.at(pl / p.C, pl % p.C, ih, iw);
            if (v > mv || std::isnan(v)) { mv = v; mi = ih * p.W + iw; }
          }
        const int64_t o = pl * OHW + oh * p.OW + ow;
        y_ref[o] = mv;
        i_ref[o] = mi;
        dx_ref[pl * p.H * p.W + mi] += dyv[o];
      }
  const std::string tag = std::string("max_pool2d") + (sizeof(T) == 4 ? " f32" : " f64") + (odd ? " strided" : "");
  std::vector<T> y(n_out);
  std::vector<int64_t> idx(n_out);
  emu_launch(dim3(2), dim3(64), max_pool_fwd<T, SMALL>, p, dv, x.v, y.data(), idx.data());
  compare(tag + " forward", y, y_ref);
  for (int64_t i = 0; i < n_out; ++i)
    if (idx[i] != i_ref[i]) { std::printf("FAIL %s indices at %ld\n", tag.c_str(), long(i)); ++failures; break; }
  View4<const T> dy4{dyv.data(), {p.N, p.C, p.OH, p.OW}, {p.C * OHW, OHW, p.OW, 1}};
  View4<const int64_t> i4{idx.data(), {p.N, p.C, p.OH, p.OW}, {p.C * OHW, OHW, p.OW, 1}};
  int64_t flag = -1;
  emu_launch(dim3(2), dim3(64), max_pool_check<SMALL>, p, dv, i4, &flag);
  if (flag != -1) { std::printf("FAIL %s check flagged %ld\n", tag.c_str(), long(flag)); ++failures; }
  std::vector<T> dx(dx_ref.size());
  emu_launch(dim3(3), dim3(32), max_pool_bwd<T, SMALL>, p, dv, dy4, i4, dx.data());
  compare(tag + " backward", dx, dx_ref);
  // an index outside its window is flagged
  std::vector<int64_t> bad = idx;
  bad[n_out - 1] = 0;
  View4<const int64_t> b4{bad.data(), {p.N, p.C, p.OH, p.OW}, {p.C * OHW, OHW, p.OW, 1}};
  flag = -1;
  emu_launch(dim3(2), dim3(64), max_pool_check<SMALL>, p, dv, b4, &flag);
  if (p.OH * p.OW > 1 && flag != n_out - 1) {
    std::printf("FAIL %s bad index not flagged (%ld)\n", tag.c_str(), long(flag)); ++failures;
  }

  // unpool of (y, idx) back to the input size, with a duplicate index: last wins
  const int64_t ksz[2] = {p.kh, p.kw}, out_size[2] = {p.H, p.W};
  for (int d = 0; d < 2; ++d) {  // only where max_unpool2d accepts the input size
    const int64_t def = ((d ? p.OW : p.OH) - 1) * st[d] - 2 * pad[d] + ksz[d];
    if (!(def - st[d] < out_size[d] && out_size[d] < def + st[d])) return;
  }
  const int64_t uin[4] = {p.N, p.C, p.OH, p.OW};
  const PoolParams u = make_max_unpool2d_params("max_unpool2d", uin, ksz, st, pad, out_size);
  std::vector<int64_t> uidx = idx;
  if (OHW > 1) uidx[1] = uidx[0];
  std::vector<double> u_ref(p.N * p.C * p.H * p.W, 0.0), ub_ref(n_out);
  std::vector<T> dyu(u_ref.size());
  for (size_t i = 0; i < dyu.size(); ++i) dyu[i] = static_cast<T>(0.5 * (i % 7) - 1);
  for (int64_t pl = 0; pl < p.N * p.C; ++pl)
    for (int64_t i = 0; i < OHW; ++i) {
      u_ref[pl * p.H * p.W + uidx[pl * OHW + i]] = y[pl * OHW + i];
      ub_ref[pl * OHW + i] = dyu[pl * p.H * p.W + uidx[pl * OHW + i]];
    }
  View4<const T> y4{y.data(), {u.N, u.C, u.H, u.W}, {u.C * OHW, OHW, u.W, 1}};
  View4<const int64_t> ui4{uidx.data(), {u.N, u.C, u.H, u.W}, {u.C * OHW, OHW, u.W, 1}};
  std::vector<int32_t> winner(u_ref.size(), -1);
  std::vector<T> uy(u_ref.size(), T(0));
  flag = -1;
  const PoolDivs udv(u);
  emu_launch(dim3(2), dim3(32), unpool_winner<SMALL>, u, udv, ui4, winner.data(), &flag);
  emu_launch(dim3(2), dim3(32), unpool_write<T, SMALL>, u, udv, y4, ui4, static_cast<const int32_t*>(winner.data()), uy.data());
  compare(tag + " unpool forward", uy, u_ref);
  const int64_t UHW = u.OH * u.OW;
  View4<const T> du4{dyu.data(), {u.N, u.C, u.OH, u.OW}, {u.C * UHW, UHW, u.OW, 1}};
  std::vector<T> udx(n_out);
  emu_launch(dim3(2), dim3(32), unpool_bwd<T, SMALL>, u, udv, du4, ui4, udx.data(), &flag);
  compare(tag + " unpool backward", udx, ub_ref);
  if (flag != -1) { std::printf("FAIL %s unpool flagged %ld\n", tag.c_str(), long(flag)); ++failures; }
}
#endif

static void act_backward_case() {
  const double xs[] = {-4.0, -3.2, -2.5, -1.0, -0.3, 0.2, 0.7, 1.5, 2.9, 3.5, 5.0};
  // (no kinks: at hardswish's -3 and 3 torch takes one side's derivative)
  for (int k = 1; k <= int(ActKind::hardswish); ++k) {
    const ActKind kind = static_cast<ActKind>(k);
    const double param = kind == ActKind::elu ? 0.7 : 0.05;
    for (double x : xs) {
      const double h = 1e-6;
      const double fd = (activate<double>(kind, param, x + h) - activate<double>(kind, param, x - h)) / (2 * h);
      const double got = cuda::act_backward<double>(kind, param, 1.0, x);
      const double fwd = cuda::act_forward<double>(kind, param, x);
      if (std::abs(got - fd) > 1e-6 * std::max(1.0, std::abs(fd)) ||
          std::abs(fwd - activate<double>(kind, param, x)) > 1e-15) {
        std::printf("FAIL activation %d at x=%g: backward %.12g, finite difference %.12g\n", k, x, got, fd);
        ++failures;
      }
      if ((kind == ActKind::sigmoid || kind == ActKind::tanh) &&
          cuda::act_backward_from_output<double>(kind, 1.0, fwd) != got) {
        std::printf("FAIL activation %d at x=%g: backward from the output differs\n", k, x);
        ++failures;
      }
    }
  }
}

static void fastdiv_case() {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> any(0, INT32_MAX - 1);
  for (int i = 0; i < 200000; ++i) {
    const int d = i < 1000 ? i + 1 : 1 + any(rng) % (i % 2 ? 1000 : INT32_MAX - 1);
    const int n = i % 3 ? any(rng) : any(rng) % (4 * d);
    const FastDiv f(d);
    const int q = f.div(n);
    if (q != n / d || f.mod(n, q) != n % d) {
      std::printf("FAIL FastDiv %d / %d gave %d\n", n, d, q);
      ++failures;
      return;
    }
  }
}

int main() {
  fastdiv_case();
  struct C { const char* name; int64_t in[4], w[4], st[2], pad[4], dil[2], g; bool big; };
  const C cases[] = {
      {"basic", {2, 3, 9, 11}, {4, 3, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, true},
      {"groups stride2", {1, 8, 10, 10}, {6, 4, 3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 2, false},
      {"asym dilated", {2, 4, 10, 7}, {6, 4, 2, 3}, {2, 1}, {0, 1, 1, 2}, {2, 1}, 1, true},
      {"depthwise", {1, 6, 8, 8}, {6, 1, 3, 3}, {1, 1}, {2, 2, 2, 2}, {2, 2}, 6, false},
      {"tile edges", {1, 70, 5, 5}, {66, 70, 1, 2}, {1, 1}, {0, 0, 0, 1}, {1, 1}, 1, false},
      {"long reduction", {6, 2, 15, 15}, {3, 2, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, false},
      {"tile128 edges", {1, 9, 12, 12}, {130, 9, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, true},
  };
  int act = 0;
  for (const C& c : cases) {
    for (bool odd : {false, true}) {
      if (odd && !c.big) continue;  // strided operands: on the cases that also run tile128
      conv_case<float, Tile64>(c.name, c.in, c.w, c.st, c.pad, c.dil, c.g, odd, act);
      conv_case<double, Tile64>(c.name, c.in, c.w, c.st, c.pad, c.dil, c.g, odd, act);
      if (c.big) conv_case<float, Tile128>(c.name, c.in, c.w, c.st, c.pad, c.dil, c.g, odd, act);
      act = (act + 1) % (int(ActKind::hardswish) + 1);
    }
  }
  act_backward_case();
#ifdef PYCONV_EMU_POOL
  struct P { int64_t in[4], k[2], st[2], pad[2], dil[2]; bool ceil; };
  const P pools[] = {
      {{2, 3, 9, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false},
      {{1, 2, 10, 7}, {2, 3}, {2, 1}, {1, 0}, {2, 2}, true},
      {{1, 1, 5, 5}, {2, 2}, {2, 2}, {0, 0}, {1, 1}, true},
      {{1, 2, 6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, false},
  };
  for (const P& c : pools)
    for (bool odd : {false, true}) {
      pool_case<float, true>(c.in, c.k, c.st, c.pad, c.dil, c.ceil, odd);
      pool_case<double, false>(c.in, c.k, c.st, c.pad, c.dil, c.ceil, odd);
    }
#endif
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
