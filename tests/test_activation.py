"""Activations and their backward against torch: special values (-0.0, +-inf,
NaN, the kinks), hypothesis sweeps over shapes, layouts and values in float32
and float64, accuracy against float64, and every error case. Both the SIMD and
the scalar kernels run."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

from pyconv import _C, ops

ISAS = sorted({"scalar", _C.best_isa()})


@pytest.fixture(params=ISAS, scope="module")
def isa(request):
    before = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(before)


# name -> (pyconv forward, pyconv backward, extra args, torch forward)
ACTS = {
    "relu": (ops.relu, ops.relu_backward, (), TF.relu),
    "leaky_relu": (ops.leaky_relu, ops.leaky_relu_backward, (), TF.leaky_relu),
    "leaky_relu_0.2": (ops.leaky_relu, ops.leaky_relu_backward, (0.2,),
                       lambda t: TF.leaky_relu(t, 0.2)),
    "elu": (ops.elu, ops.elu_backward, (), TF.elu),
    "elu_0.5": (ops.elu, ops.elu_backward, (0.5,), lambda t: TF.elu(t, 0.5)),
    "gelu": (ops.gelu, ops.gelu_backward, (), TF.gelu),
    "gelu_tanh": (ops.gelu, ops.gelu_backward, ("tanh",), lambda t: TF.gelu(t, approximate="tanh")),
    "silu": (ops.silu, ops.silu_backward, (), TF.silu),
    "sigmoid": (ops.sigmoid, ops.sigmoid_backward, (), torch.sigmoid),
    "tanh": (ops.tanh, ops.tanh_backward, (), torch.tanh),
    "hardswish": (ops.hardswish, ops.hardswish_backward, (), TF.hardswish),
}

SPECIAL = [-0.0, 0.0, np.inf, -np.inf, np.nan, -3.0, 3.0, -100.0, 100.0, 1e-30, -1e-30, 1e-40,
           -1e-40, -10.0, 10.0, 0.5, -0.5, 88.0, 89.0, -88.0, -104.0, 20.0, -20.0, 5.0, -5.0,
           2.9999998, -2.9999998, 3.0000002, -3.0000002, 0.625, -0.625, 1.0, -1.0, 3.92, -3.92,
           -5.1195245, -5.09]  # (gelu_tanh's backward: float32's tanh of u rounds to -1 there)


def torch_both(name, x, g):
    f = ACTS[name][3]
    tx = torch.tensor(x, requires_grad=True)
    ty = f(tx)
    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(g))
    return ty.detach().numpy(), tg.numpy()


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def assert_like_torch(got, ref, ref64, dtype):
    """got within tolerance of torch's result in its dtype, or (float32) of torch's float64
    result on the same inputs: where torch's float32 arithmetic is the less accurate one
    (gelu_tanh's backward at x = -5.09: torch's tanh rounds to -1 and gives -0.0, the exact
    value is 1.34e-6 * |g|), matching mathematics is what counts."""
    t = tol(dtype)
    ok = np.isclose(got, ref, equal_nan=True, **t)
    if ref64 is not None:
        ok |= np.isclose(got, ref64, equal_nan=True, **t)
    if not ok.all():
        np.testing.assert_allclose(got, ref, equal_nan=True, **t)


def check(name, x, g):
    f, b, args, _ = ACTS[name]
    ty, tg = torch_both(name, np.ascontiguousarray(x), np.ascontiguousarray(g))
    ty64, tg64 = (torch_both(name, x.astype(np.float64), g.astype(np.float64))
                  if x.dtype == np.float32 else (None, None))
    xb, gb = x.copy(), g.copy()
    y, gi = f(x, *args), b(g, x, *args)
    assert y.shape == x.shape and gi.shape == x.shape
    assert y.dtype == x.dtype and gi.dtype == x.dtype
    assert_like_torch(y, ty, ty64, x.dtype)
    assert_like_torch(gi, tg, tg64, x.dtype)
    np.testing.assert_array_equal(x, xb)  # inputs untouched
    np.testing.assert_array_equal(g, gb)
    return y, gi, (ty, ty64), (tg, tg64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ACTS))
def test_special_values(isa, name, dtype):
    # Torch's scalar tail loop differs from its vectorised body on NaN for some backward
    # formulas; the specials sit at every lane offset of the vectorised body (the length
    # before the random tail is a multiple of 64) and only random values reach the tail.
    rng = np.random.default_rng(0)
    head = np.concatenate([SPECIAL, rng.standard_normal(64), SPECIAL[::-1]])
    head = np.concatenate([head, rng.standard_normal(-len(head) % 64)])
    x = np.concatenate([head, rng.standard_normal(5)]).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y, gi, ty, tg = check(name, x, g)
    n = len(SPECIAL)
    for a, (b, b64) in [(y, ty), (gi, tg)]:
        # NaN where torch has NaN, and the sign of every zero as torch's. Torch's float32
        # result depends on its CPU capability (gelu(+inf) is NaN with AVX-512, inf in
        # float64 and with AVX2; gelu(-0.0) is +0.0 with AVX2, -0.0 in float64, with
        # AVX-512 and in mathematics): where its float32 and float64 results differ, either
        # is accepted.
        nan = np.isnan(a) == np.isnan(b)
        zero = (a == 0) & (b == 0)
        zero[n:len(head) - n] = False
        sign = ~zero | (np.signbit(a) == np.signbit(b))
        if b64 is not None:
            nan |= np.isnan(a) == np.isnan(b64)
            sign |= (a == 0) & (b64 == 0) & (np.signbit(a) == np.signbit(b64))
        np.testing.assert_array_equal(nan, True)
        np.testing.assert_array_equal(sign, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kinks(isa, dtype):
    x = np.array([-3.0, 0.0, -0.0, 3.0], dtype)
    g = np.full_like(x, 2.0)
    np.testing.assert_array_equal(ops.relu_backward(g, x), [0, 0, 0, 2])
    np.testing.assert_array_equal(ops.leaky_relu_backward(g, x, 0.5), [1, 1, 1, 2])
    np.testing.assert_array_equal(ops.hardswish_backward(g, x), [0, 1, 1, 2])
    np.testing.assert_array_equal(ops.elu_backward(g, x, 0.5), [2 * 0.5 * np.exp(dtype(-3)), 1, 1, 2])
    y = ops.relu(np.array([-0.0, np.nan, -np.inf], dtype))
    assert np.signbit(y[0]) and np.isnan(y[1]) and y[2] == 0
    assert ops.relu_backward(np.ones(1, dtype), np.array([np.nan], dtype))[0] == 1
    y = ops.elu(np.array([-1e4, -np.inf], dtype), 2.0)
    np.testing.assert_array_equal(y, [-2.0, -2.0])


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0 if ndim else 1, 7), min_size=ndim, max_size=ndim)))
    scale = draw(st.sampled_from([1e-3, 1.0, 4.0, 30.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * scale, dtype)
    g = np.asarray(rng.standard_normal(shape), dtype)
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
    if layout == "strided" and ndim:
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    elif layout == "transposed" and ndim >= 2:
        x = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -1)), 0, -1)
    return x, g


@given(arrays(), st.sampled_from(list(ACTS)))
def test_matches_torch(isa, xg, name):
    check(name, *xg)


TORCH_FROM_OUTPUT = {"sigmoid": torch.ops.aten.sigmoid_backward, "tanh": torch.ops.aten.tanh_backward}


@given(arrays(), st.sampled_from(sorted(TORCH_FROM_OUTPUT)), st.booleans())
def test_backward_from_output_matches_torch(isa, xg, name, special):
    # sigmoid/tanh_backward(grad_output, output=y) is torch's aten.<name>_backward(g, y),
    # for any y (special values included), and through y = act(x) it is exactly the
    # gradient taken from x.
    x, g = xg
    f, b, _, _ = ACTS[name]
    y = f(x)
    if special and y.size:
        y = np.array(y, order="C")  # (np.ascontiguousarray would make a 0-d y 1-d)
        sp = np.resize(np.asarray(SPECIAL + [0.999, -0.999, 1.0, -1.0], y.dtype), y.size)
        y.flat[::2] = sp[::2]
    yb = y.copy()
    got = b(g, output=y)
    ref = TORCH_FROM_OUTPUT[name](torch.tensor(np.ascontiguousarray(g)),
                                  torch.tensor(np.ascontiguousarray(y))).numpy()
    assert got.shape == y.shape and got.dtype == y.dtype
    np.testing.assert_allclose(got, ref, equal_nan=True, **tol(y.dtype))
    np.testing.assert_array_equal(y, yb)
    if not special:
        np.testing.assert_array_equal(b(g, output=y), b(g, x))


def test_large_arrays_threads_and_stream():
    import pyconv
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(4_200_003) * 3).astype(np.float32)  # > 16 MiB: streaming stores
    g = rng.standard_normal(x.shape).astype(np.float32)
    for name in ("relu", "gelu", "tanh"):
        pyconv.set_num_threads(1)
        y1, g1 = ACTS[name][0](x, *ACTS[name][2]), ACTS[name][1](g, x, *ACTS[name][2])
        pyconv.set_num_threads(2)
        y2, g2 = ACTS[name][0](x, *ACTS[name][2]), ACTS[name][1](g, x, *ACTS[name][2])
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(g1, g2)
        ty, tg = torch_both(name, x, g)
        ty64, tg64 = torch_both(name, x.astype(np.float64), g.astype(np.float64))
        assert_like_torch(y2, ty, ty64, np.float32)
        assert_like_torch(g2, tg, tg64, np.float32)
    for name in TORCH_FROM_OUTPUT:
        y = ACTS[name][0](x)
        pyconv.set_num_threads(1)
        g1 = ACTS[name][1](g, output=y)
        pyconv.set_num_threads(2)
        np.testing.assert_array_equal(g1, ACTS[name][1](g, output=y))
        np.testing.assert_array_equal(g1, ACTS[name][1](g, x))
    xs = x[1:1_000_001]  # misaligned start
    np.testing.assert_array_equal(ops.relu(xs), np.maximum(xs, 0))


def ulps(a, ref):
    a, ref = a.astype(np.float64), ref.astype(np.float64)
    return np.abs(a - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "silu", "elu", "gelu", "gelu_tanh"])
def test_float32_accuracy(isa, name):
    # Within a few ulp of the float64 result (gelu where 1 + erf does not cancel).
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-12, 12, 20000), rng.uniform(-1, 1, 20000),
                        rng.standard_normal(5000) * 1e-3]).astype(np.float32)
    if name.startswith("gelu"):
        x = x[x > -1]
    f, _, args, tf = ACTS[name]
    ref = tf(torch.tensor(x.astype(np.float64))).numpy()
    assert ulps(f(x, *args), ref).max() <= 4


def test_gelu_tail_accuracy(isa):
    """gelu's negative tail, where 1 + erf cancels: within 4 units of |0.5x| * 2^-24 (erf's
    own rounding) of the exact value 0.5x * erfc(-x / sqrt 2), through the activation
    kernels and the GEMM's scalar epilogue (a linear layer of one input and weight 1). Both
    compute 0.5x*erf + 0.5x as one fused multiply-add (the scalar code once rounded the
    product first: 5% off at x = -5.08). Mathematics, not torch, is the reference: torch's
    float32 result here depends on its CPU capability (AVX-512: up to 10 units off)."""
    x = np.linspace(-9.0, -1.0, 8001, dtype=np.float32)
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in x.astype(np.float64)])
    unit = 0.5 * np.abs(x.astype(np.float64)) * 2.0 ** -24
    fused = ops.linear(x.reshape(-1, 1), np.ones((1, 1), np.float32), activation="gelu")
    for got in (ops.gelu(x), fused.reshape(-1)):
        assert (np.abs(got - exact) / unit).max() <= 4


def test_misaligned_input():
    buf = np.zeros(4 * 101, np.uint8)
    a = np.frombuffer(buf.data, dtype=np.float32, count=100, offset=1)
    assert not a.flags.aligned
    np.testing.assert_array_equal(ops.relu(a), np.zeros(100, np.float32))
    np.testing.assert_array_equal(ops.sigmoid_backward(a, a), np.zeros(100, np.float32))


def test_inplace_and_empty():
    x = np.array([-1.0, 2.0], np.float32)
    y = ops.relu(x, inplace=True)
    assert y is x and np.array_equal(x, [0, 2])
    e = np.zeros((0, 3), np.float64)
    assert ops.gelu(e).shape == (0, 3) and ops.gelu_backward(e, e).shape == (0, 3)
    s = ops.tanh(np.float64(0.5) * np.ones(()))
    assert s.shape == () and np.isclose(s, np.tanh(0.5))


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: ops.relu(np.zeros(3, np.int32)), TypeError, r"relu: input must have dtype float32 or float64, got int32"),
    (lambda: ops.sigmoid([1.0, 2.0]), TypeError, r"sigmoid: input must be an array"),
    (lambda: ops.tanh(np.zeros(2, np.complex64)), TypeError, r"tanh: input must have dtype float32 or float64"),
    (lambda: ops.gelu(np.zeros(3), approximate="fast"), ValueError, r"gelu: approximate must be 'none' or 'tanh', got 'fast'"),
    (lambda: ops.leaky_relu(np.zeros(3), "0.1"), TypeError, r"leaky_relu: negative_slope must be a real number"),
    (lambda: ops.elu(np.zeros(3), None), TypeError, r"elu: alpha must be a real number"),
    (lambda: ops.relu_backward(np.zeros(3), np.zeros(4)), ValueError, r"relu_backward: grad_output must have the input's shape \(4,\), got \(3,\)"),
    (lambda: ops.silu_backward(np.zeros(3, np.float32), np.zeros(3)), TypeError, r"silu_backward: input has dtype float64 but grad_output has dtype float32"),
    (lambda: ops.hardswish_backward(np.zeros(3, np.int64), np.zeros(3)), TypeError, r"hardswish_backward: grad_output must have dtype float32 or float64"),
    (lambda: ops.gelu_backward(np.zeros(3), np.zeros(3), "x"), ValueError, r"gelu_backward: approximate must be"),
    (lambda: ops.elu_backward(np.zeros(3), np.zeros(3), "a"), TypeError, r"elu_backward: alpha must be a real number"),
    (lambda: ops.tanh_backward(np.zeros(3), np.zeros(3, np.bool_)), TypeError, r"tanh_backward: input must have dtype"),
    (lambda: ops.tanh_backward(np.zeros(3), np.zeros(3), output=np.zeros(3)), TypeError, r"tanh_backward: give exactly one of input and output"),
    (lambda: ops.sigmoid_backward(np.zeros(3)), TypeError, r"sigmoid_backward: give exactly one of input and output"),
    (lambda: ops.sigmoid_backward(np.zeros(3), output=np.zeros(4)), ValueError, r"sigmoid_backward: grad_output must have the output's shape \(4,\), got \(3,\)"),
    (lambda: ops.tanh_backward(np.zeros(3, np.float32), output=np.zeros(3)), TypeError, r"tanh_backward: output has dtype float64 but grad_output has dtype float32"),
    (lambda: ops.tanh_backward(np.zeros(3), output=[0.5, 0.5, 0.5]), TypeError, r"tanh_backward: output must be an array"),
    (lambda: _C.activation_backward(np.zeros(3), np.zeros(3), _C.ACTIVATIONS["relu"], 0.0, "x", True), ValueError, r"x: the gradient cannot be taken from the output"),
])
def test_bad_input_raises(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [float("inf"), float("-inf"), float("nan"), -0.5])
def test_elu_at_zero_is_the_input_for_any_alpha(isa, dtype, alpha):
    # fuzz regression: alpha * expm1(0) is NaN for an infinite alpha; torch returns x at +-0
    x = np.array([0.0, -0.0, -1.0, 1.0, np.nan, -np.inf] * 5, dtype=dtype)  # vector + tail
    want = TF.elu(torch.from_numpy(x), alpha).numpy()
    got = ops.elu(x, alpha)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got[:2]), np.signbit(want[:2]))


@pytest.mark.skipif(_C.best_isa() != "avx512", reason="needs AVX-512 to compare with AVX2")
@pytest.mark.parametrize("name", [n for n in ACTS if n != "relu"])
def test_avx2_and_avx512_agree_bitwise(name):
    """act_simd.h computes the same operations per lane in both ISAs (AVX-512's scalef
    and AVX2's two-step 2^n each round v * 2^n once), so results are bitwise equal, across
    exp's subnormal tail, tanh's clamp and erf's pieces."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-110, 100, 30000), rng.uniform(-5, 5, 30000),
                        rng.standard_normal(3000) * 1e-20, SPECIAL]).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    f, b, args, _ = ACTS[name]
    before = _C.isa()
    try:
        got = {}
        for isa in ("avx2", "avx512"):
            _C.set_isa(isa)
            got[isa] = f(x, *args), b(g, x, *args)
    finally:
        _C.set_isa(before)
    for a2, a5 in zip(got["avx2"], got["avx512"]):
        np.testing.assert_array_equal(a2, a5)
        np.testing.assert_array_equal(np.signbit(a2), np.signbit(a5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["gelu", "tanh", "silu", "elu", "hardswish", "sigmoid",
                                  "gelu_tanh"])
def test_result_does_not_depend_on_position(isa, name, dtype):
    """Full vectors, the pair that ends a row (second vector partial) and a lone partial
    vector compute the same value: every prefix length up to 4 vectors and a misaligned
    start agree bitwise with the long array's values (float64: the padded last vector)."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(200) * 3).astype(dtype)
    g = rng.standard_normal(200).astype(dtype)
    f, b, args, _ = ACTS[name]
    y, d = f(x, *args), b(g, x, *args)
    for start in (0, 3):
        for n in range(0, 66):
            np.testing.assert_array_equal(f(x[start:start + n], *args), y[start:start + n])
            np.testing.assert_array_equal(b(g[start:start + n], x[start:start + n], *args),
                                          d[start:start + n])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_backward_where_tanh_nears_one(isa, dtype):
    """gelu_tanh's derivative for x in [-9, -3] and [3, 9], where tanh(u) is within a few
    units of +-1: 0.5 (1 + tanh) and 1 - tanh^2 come from exp(-2|u|), not from the rounded
    tanh, so the derivative keeps its relative accuracy (a rounded t = -1 gave 0 where it is
    1.8e-6 at x = -5.12). Against the derivative in long double (torch's formula cancels
    even in float64: 0 at x = -9, where it is -2.5e-27)."""
    x = np.concatenate([np.linspace(-9, -3, 3001), np.linspace(3, 9, 3001)]).astype(dtype)
    g = np.ones_like(x)
    xl = x.astype(np.longdouble)
    beta = np.sqrt(np.longdouble(2)) / np.sqrt(np.pi, dtype=np.longdouble)
    u = beta * (xl + np.longdouble("0.044715") * xl ** 3)
    e = np.exp(-2 * np.abs(u))  # tanh(u) = sign(u) (1 - e) / (1 + e)
    half_1p_tanh = np.where(u >= 0, 1, e) / (1 + e)
    sech2 = 4 * e / (1 + e) ** 2
    ref = half_1p_tanh + 0.5 * xl * sech2 * beta * (1 + 3 * np.longdouble("0.044715") * xl ** 2)
    got = ops.gelu_backward(g, x, "tanh")
    # (The tail is e^(-2|u|): float32's rounding of u, 1 ulp of |u| up to 24, moves it by
    # up to 1e-5 relative.)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=1e-300)


@pytest.mark.parametrize("name", ["sigmoid", "silu", "tanh", "elu_0.5", "gelu_tanh", "hardswish"])
def test_float64_exp_range(isa, name):
    """float64's vectorised exp kinds (act_f64_avx2.cpp) across exp's whole range: results
    that underflow to subnormals and zero (x near -745), overflow (x near 710), tanh's
    clamp at 20 and expm1 near 0, within 1e-13 of torch's float64 (infinities and NaN where
    torch has them, zeros of its sign), at every position of the 4-value vectors; the
    scalar loops (libm) to the same bound."""
    rng = np.random.default_rng(8)
    edges = [-1000.0, -746.0, -745.2, -745.1, -744.0, -740.0, -709.8, -708.4, -100.0, -40.0,
             -19.06, -1e-5, -1e-300, -5e-324, 5e-324, 1e-300, 1e-8, 0.3465, 0.3467, 19.06,
             36.7, 40.0, 88.0, 709.7, 709.8, 710.0, 1000.0]
    x = np.concatenate([edges, SPECIAL, rng.uniform(-760, 720, 301), rng.standard_normal(301)])
    x = np.concatenate([np.roll(x, k) for k in range(4)])  # every value at every lane
    g = rng.standard_normal(x.size)
    f, b, args, _ = ACTS[name]
    y, d = f(x, *args), b(g, x, *args)
    ty, tg = torch_both(name, x, g)
    # (tanh's backward, 1 - t^2, cancels where t rounds near 1: one unit of t there is 2^-52
    # absolute, so its results are compared to that. gelu_tanh's computes 1 - t^2 from
    # exp(-2|u|) without the cancellation, torch's formula with it: torch's own error there
    # is up to about 2^-52 * |x| * 3.6 / 2, 2e-15 at x = -5.)
    atol_d = {"tanh": 1e-15, "gelu_tanh": 4e-15}.get(name, 0.0)
    for a, r, atol in ((y, ty, 0.0), (d, tg, atol_d)):
        np.testing.assert_allclose(a, r, rtol=1e-13, atol=atol)
        zero = (a == 0) & (r == 0)
        np.testing.assert_array_equal(np.signbit(a[zero]), np.signbit(r[zero]))
