"""conv2d forward and backward against torch: a hypothesis sweep over shapes and
parameters, fixed edge cases, the classic tutorial example and every error case."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

import pyconv
import pyconv.functional as F
from conftest import tolerance


def torch_conv2d(x, w, b, need_input_grad=True, **kw):
    """torch forward and a closure giving (gi, gw, gb) for a grad_output."""
    tx = torch.tensor(x, requires_grad=need_input_grad)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = TF.conv2d(tx, tw, tb, **kw)

    def grads(g):
        ty.backward(torch.tensor(g))
        gi = tx.grad.numpy() if need_input_grad else None
        return gi, tw.grad.numpy(), None if tb is None else tb.grad.numpy()

    return ty.detach().numpy(), grads


def assert_close(actual, expected, dtype):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.dtype(dtype)
    rtol, atol = tolerance(dtype, expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def make_noncontiguous(a, rng):
    """A view with the same values as `a` but non-unit strides (and sometimes reversed axes)."""
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1] + 1,), a.dtype)
    big[..., 1::2] = a
    v = big[..., 1::2]
    if a.ndim >= 2 and rng.random() < 0.5:  # a transposed copy viewed back
        t = np.ascontiguousarray(np.swapaxes(a, -1, -2))
        v = np.swapaxes(t, -1, -2)
    assert np.array_equal(v, a)
    return v


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cg = draw(st.integers(1, 4))
    kg = draw(st.integers(1, 4))
    if draw(st.integers(0, 5)) == 0:  # depthwise (channel multiplier kg)
        groups, cg = draw(st.integers(1, 5)), 1
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if mode == "same":
        stride = (1, 1)
        padding = "same"
        pads = (dil[0] * (R - 1), dil[1] * (S - 1))
    else:
        stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        if mode == "valid":
            padding, pads = "valid", (0, 0)
        elif mode == "int":
            p = draw(st.integers(0, 3))
            padding, pads = p, (2 * p, 2 * p)
        else:
            padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
            pads = (2 * padding[0], 2 * padding[1])
    eff = (dil[0] * (R - 1) + 1, dil[1] * (S - 1) + 1)
    H = draw(st.integers(max(1, eff[0] - pads[0]), eff[0] + 9))
    W = draw(st.integers(max(1, eff[1] - pads[1]), eff[1] + 9))
    return dict(
        N=draw(st.sampled_from([0, 1, 2, 3])), C=groups * cg, K=groups * kg, H=H, W=W, R=R, S=S,
        kw=dict(stride=stride if draw(st.booleans()) or stride[0] != stride[1] else stride[0],
                padding=padding, dilation=dil, groups=groups),
        bias=draw(st.booleans()), unbatched=draw(st.integers(0, 4)) == 0,
        noncontig=draw(st.integers(0, 3)) == 0,
        dtype=draw(st.sampled_from([np.float64, np.float32])),
        seed=draw(st.integers(0, 2**31 - 1)))


def check_problem(pr):
    rng = np.random.default_rng(pr["seed"])
    dt = pr["dtype"]
    xshape = (pr["C"], pr["H"], pr["W"]) if pr["unbatched"] else (pr["N"], pr["C"], pr["H"], pr["W"])
    x = rng.standard_normal(xshape).astype(dt)
    w = rng.standard_normal((pr["K"], pr["C"] // pr["kw"]["groups"], pr["R"], pr["S"])).astype(dt)
    b = rng.standard_normal(pr["K"]).astype(dt) if pr["bias"] else None
    ref, grads = torch_conv2d(x, w, b, **pr["kw"])
    if pr["noncontig"]:
        x, w = make_noncontiguous(x, rng), make_noncontiguous(w, rng)
    x0, w0 = x.copy(), w.copy()
    y = F.conv2d(x, w, b, **pr["kw"])
    assert_close(y, ref, dt)
    g = rng.standard_normal(ref.shape).astype(dt)
    gi_ref, gw_ref, gb_ref = grads(g)
    gi, gw, gb = F.conv2d_backward(g, x, w, output_mask=(True, True, b is not None), **pr["kw"])
    assert_close(gi, gi_ref, dt)
    assert_close(gw, gw_ref, dt)
    if b is not None:
        assert_close(gb, gb_ref, dt)
    else:
        assert gb is None
    np.testing.assert_array_equal(x, x0)  # inputs never written
    np.testing.assert_array_equal(w, w0)


@given(conv_problems())
def test_conv2d_matches_torch(pr):
    check_problem(pr)


@pytest.mark.parametrize("case", [
    # (N, C, K, H, W, R, S, kwargs)
    (2, 3, 5, 13, 11, 3, 3, dict(stride=4)),                       # stride > kernel
    (2, 4, 6, 17, 19, 2, 4, dict(padding="same", dilation=(2, 3))),  # even kernel, asymmetric same
    (1, 8, 8, 9, 9, 3, 3, dict(groups=8, padding=1)),              # depthwise
    (1, 8, 16, 9, 9, 3, 3, dict(groups=8, padding=1, stride=2)),   # depthwise, multiplier 2
    (3, 6, 4, 7, 5, 1, 1, dict()),                                 # 1x1
    (2, 3, 7, 23, 29, 7, 7, dict(stride=2, padding=3)),            # stem-like, primes
    (2, 4, 4, 11, 13, 3, 3, dict(dilation=3, padding=3, groups=2)),
    (2, 5, 3, 5, 5, 5, 5, dict()),                                 # kernel == input
    (2, 5, 3, 1, 1, 3, 3, dict(padding=1)),                        # 1x1 input, padded
    # outputs whose window reads only padding (the crop in conv.cpp): DeepBench's 1x1 with
    # padding 3, a dilated window around a short input, and no output reading the input
    (2, 5, 4, 7, 7, 1, 1, dict(stride=2, padding=3)),
    (1, 2, 3, 3, 8, 3, 3, dict(dilation=(4, 1), padding=(5, 4))),
    (2, 3, 4, 1, 1, 1, 1, dict(stride=3, padding=2)),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_edge_cases(case, dtype):
    N, C, K, H, W, R, S, kw = case
    check_problem(dict(N=N, C=C, K=K, H=H, W=W, R=R, S=S, kw=dict(dict(stride=1, padding=0,
                       dilation=1, groups=1), **kw), bias=True, unbatched=False, noncontig=False,
                       dtype=dtype, seed=N * 1000 + C * 100 + R))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, kw, wpos", [
    (5, dict(stride=2, padding=3), (1, 2, 0, 0)),  # 1x1: a tap every kept output reads
    (1, dict(stride=2, padding=(4, 1), groups=2), (3, 0, 1, 1)),  # one no kept output reads
    (1, dict(stride=3, padding=(2, 0)), (2, 1, 0, 0)),  # no output reads the input
])
def test_padding_only_outputs_keep_non_finite_weights(H, kw, wpos, dtype):
    """Outputs whose window is all padding are computed apart (the crop in conv.cpp): an
    inf weight makes them NaN in its channel, as torch's padding zeros do, and an inf input
    (which they never read) does not; fused relu and the preactivation alike."""
    rng = np.random.default_rng(5)
    R = 1 if "groups" not in kw else 3
    x = rng.standard_normal((2, 4, H, 7)).astype(dtype)
    w = rng.standard_normal((4, 4 // kw.get("groups", 1), R, R)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    w[wpos] = np.inf
    x[1, 0, H // 2, 3] = -np.inf
    ref = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw)
    y, z = F.conv2d(x, w, b, activation="relu", return_preactivation=True, **kw)
    for got, want in ((z, ref.numpy()), (y, TF.relu(ref).numpy())):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        ok = np.isfinite(want)
        assert_close(got[ok], want[ok], dtype)
    assert np.isnan(ref.numpy()[:, wpos[0], 0, 0]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, kw", [
    (5, dict(stride=2, padding=3)),
    (1, dict(stride=2, padding=(4, 1), groups=2)),
    (1, dict(stride=3, padding=(2, 0))),
])
def test_padding_only_outputs_keep_non_finite_grad_output(H, kw, dtype):
    """A non-finite grad_output value at an output whose window is all padding (cropped
    away by conv.cpp) makes its channel's whole weight gradient NaN, as torch's inf times
    the padding's zeros does; an inf at a kept output stays where the products put it."""
    rng = np.random.default_rng(6)
    R = 1 if "groups" not in kw else 3
    x = rng.standard_normal((2, 4, H, 7)).astype(dtype)
    w = rng.standard_normal((4, 4 // kw.get("groups", 1), R, R)).astype(dtype)
    tw = torch.tensor(w, requires_grad=True)
    y = TF.conv2d(torch.tensor(x), tw, **kw)
    dy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    dy[1, 2, 0, 0] = np.inf  # (output (0, 0) reads only padding)
    y.backward(torch.tensor(dy))
    want = tw.grad.numpy()
    got = F.conv2d_backward(dy, x, w, output_mask=(False, True, False), **kw)[1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    assert_close(got[ok], want[ok], dtype)
    assert np.isnan(want[2]).all()


# Shapes that take each backward-data kernel: the stride-phase GEMM, pixel rows, col2im,
# Winograd, depthwise, the grouped kernels, the groups split, the direct stride-2 pairs,
# 'valid' 7x7 (taps past grad_output's edges without padding), dilation, and outputs that
# read padding only (cropped away).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [
    (2, 64, 9, 64, 3, 2, 1, 1, 1), (2, 16, 14, 48, 5, 1, 2, 1, 1), (2, 3, 16, 64, 3, 1, 1, 1, 1),
    (2, 64, 12, 64, 3, 1, 1, 1, 1), (2, 16, 10, 16, 3, 1, 1, 1, 16), (2, 32, 10, 32, 3, 1, 1, 1, 4),
    (2, 64, 16, 64, 3, 1, 1, 1, 2), (2, 32, 32, 64, 4, 2, 1, 1, 1), (2, 8, 12, 16, 7, 1, 0, 1, 1),
    (2, 8, 11, 16, 3, 1, 2, 2, 1), (1, 4, 1, 8, 3, 2, 4, 1, 1)])
def test_backward_data_non_finite_weights_as_torch(shape, dtype):
    """torch's input gradient adds a product only where a tap reads grad_output; the kernels
    also multiply the zeros around it, NaN with an inf weight (conv.cpp's
    repair_padding_products computes those values again): NaN, inf and finite values where
    torch has them, and conv_transpose2d's forward (the same computation) alike. (torch in
    float64: its float32 oneDNN kernel multiplies zeros past dx's last window for the 4x4
    stride-2 layer, a NaN there that its own float64 and non-oneDNN paths do not have.)"""
    N, C, H, K, R, stride, pad, dil, groups = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((N, C, H, H + 1)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, R)).astype(dtype)
    w[1, 0, 0, 0] = np.inf
    w[2, -1, R - 1, R - 1] = -np.inf
    w[3, 0, R // 2, 0] = np.nan
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y, grads = torch_conv2d(x.astype(np.float64), w.astype(np.float64), None, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    want = grads(dy.astype(np.float64))[0]
    got = F.conv2d_backward(dy, x, w, output_mask=(True, False, False), **kw)[0]
    assert np.isnan(got).any() or np.isinf(got).any()
    opad = [(h + 2 * pad - dil * (R - 1) - 1) % stride for h in (H, H + 1)]
    tkw = dict(stride=stride, padding=pad, output_padding=opad, dilation=dil, groups=groups)
    for a, b in ((got, want),
                 (F.conv_transpose2d(dy, w, **tkw),
                  TF.conv_transpose2d(torch.tensor(dy, dtype=torch.float64),
                                      torch.tensor(w, dtype=torch.float64), **tkw).numpy())):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
        ok = np.isfinite(b)
        assert_close(a[ok], b[ok].astype(dtype), dtype)


def test_empty_batch_and_unbatched():
    x = np.zeros((0, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    y = F.conv2d(x, w, np.ones(4, np.float32), padding=1)
    assert y.shape == (0, 4, 8, 8) and y.dtype == np.float32
    gi, gw, gb = F.conv2d_backward(np.zeros((0, 4, 8, 8), np.float32), x, w, padding=1)
    assert gi.shape == (0, 3, 8, 8)
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    np.testing.assert_array_equal(gb, np.zeros(4, np.float32))
    xu = np.random.default_rng(1).standard_normal((3, 8, 8))
    wu = np.random.default_rng(2).standard_normal((4, 3, 3, 3))
    yu = F.conv2d(xu, wu)
    assert yu.shape == (4, 6, 6)
    np.testing.assert_allclose(yu, TF.conv2d(torch.tensor(xu), torch.tensor(wu)).numpy(), rtol=1e-12)


TUTORIAL_X = [[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0], [5, 2, 3, 1, 1], [2, 1, 0, 1, 1]]
TUTORIAL_K = [[1, 2, 1], [0, 1, 0], [2, 1, 0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tutorial_example(dtype):
    x = np.array(TUTORIAL_X, dtype)[None, None]
    k = np.array(TUTORIAL_K, dtype)[None, None]
    np.testing.assert_array_equal(F.conv2d(x, k)[0, 0], [[10, 12, 12], [18, 16, 16], [13, 9, 3]])
    np.testing.assert_array_equal(F.conv2d(x, k, stride=2)[0, 0], [[10, 12], [13, 3]])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_count_does_not_change_results(threads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 15, 14)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((3, 8, 8, 7)).astype(np.float32)
    kw = dict(stride=2, padding=1, groups=2)
    pyconv.set_num_threads(1)
    base = (F.conv2d(x, w, **kw),) + F.conv2d_backward(g, x, w, **kw)
    pyconv.set_num_threads(threads)
    got = (F.conv2d(x, w, **kw),) + F.conv2d_backward(g, x, w, **kw)
    for a, b in zip(base, got):
        np.testing.assert_array_equal(a, b)  # bitwise: no thread-dependent reduction order


def test_output_mask_skips_work():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 4, 4))
    gi, gw, gb = F.conv2d_backward(g, x, w, output_mask=(False, True, False))
    assert gi is None and gb is None and gw.shape == w.shape


def test_thread_api():
    pyconv.set_num_threads(1)
    assert pyconv.get_num_threads() == 1
    with pytest.raises(ValueError, match="positive"):
        pyconv.set_num_threads(0)


f32 = np.float32


def _x(*s, dtype=f32):
    return np.ones(s, dtype)


@pytest.mark.parametrize("args, kwargs, exc, msg", [
    ((_x(1, 1, 2, 3, 3), _x(1, 1, 3, 3)), {}, ValueError, r"conv2d: input must have 3 or 4 dimensions"),
    ((_x(1, 3, 5, 5), _x(1, 3, 3)), {}, ValueError, r"conv2d: weight must be 4-dimensional"),
    ((_x(1, 6, 5, 5), _x(8, 4, 3, 3)), dict(groups=2), ValueError,
     r"conv2d: weight expects 3 input channels per group \(input has 6 channels, groups=2\), got weight of shape \(8, 4, 3, 3\)"),
    ((_x(1, 5, 5, 5), _x(4, 1, 3, 3)), dict(groups=2), ValueError, r"input channels \(5\) must be divisible by groups \(2\)"),
    ((_x(1, 4, 5, 5), _x(3, 2, 3, 3)), dict(groups=2), ValueError, r"output channels \(3\) must be divisible by groups \(2\)"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3), _x(5)), {}, ValueError, r"conv2d: bias must have 4 elements"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3), _x(4, 1)), {}, ValueError, r"conv2d: bias must be 1-dimensional"),
    ((_x(1, 3, 2, 2), _x(4, 3, 3, 3)), {}, ValueError, r"conv2d: kernel size \(3, 3\) after dilation is larger than the padded input \(2, 2\)"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(dilation=3), ValueError, r"larger than the padded input"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(stride=0), ValueError, r"conv2d: stride must be positive, got \(0, 0\)"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(stride=(1, -2)), ValueError, r"conv2d: stride must be positive"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(dilation=0), ValueError, r"conv2d: dilation must be positive"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(padding=-1), ValueError, r"conv2d: padding must be non-negative"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(groups=0), ValueError, r"conv2d: groups must be positive"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(padding="same", stride=2), ValueError,
     r"conv2d: padding='same' is not supported for strided convolutions"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(padding="full"), ValueError,
     r"conv2d: padding must be an int, a pair of ints, 'valid' or 'same', got 'full'"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(padding=(1, 2, 3)), ValueError, r"conv2d: padding must be an int or a pair"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(stride=1.5), TypeError, r"conv2d: stride must be an int"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3, dtype=np.float64)), {}, TypeError,
     r"conv2d: weight has dtype float64 but input has dtype float32"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3), _x(4, dtype=np.float64)), {}, TypeError, r"conv2d: bias has dtype float64"),
    ((_x(1, 3, 5, 5, dtype=np.int64), _x(4, 3, 3, 3, dtype=np.int64)), {}, TypeError,
     r"conv2d: input must have dtype float32 or float64, got int64"),
    ((_x(1, 3, 5, 5, dtype=np.complex64), _x(4, 3, 3, 3)), {}, TypeError, r"got complex64"),
    ((_x(1, 3, 5, 5, dtype=np.float16), _x(4, 3, 3, 3)), {}, TypeError, r"got float16"),
    ((_x(1, 3, 5, 5, dtype=bool), _x(4, 3, 3, 3)), {}, TypeError, r"got bool"),
    (([[[[1.0]]]], _x(1, 1, 1, 1)), {}, TypeError, r"conv2d: input must be an array"),
    ((_x(1, 3, 5, 5), _x(4, 3, 3, 3)), dict(activation="swish"), ValueError, r"conv2d: unknown activation 'swish'"),
])
def test_bad_input_raises(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        F.conv2d(*args, **kwargs)


def test_backward_bad_grad_shape():
    with pytest.raises(ValueError, match=r"conv2d_backward: grad_output must have shape \(1, 4, 3, 3\), got \(1, 4, 4, 4\)"):
        F.conv2d_backward(_x(1, 4, 4, 4), _x(1, 3, 5, 5), _x(4, 3, 3, 3))
    with pytest.raises(TypeError, match=r"conv2d_backward: input has dtype float64 but grad_output has dtype float32"):
        F.conv2d_backward(_x(1, 4, 3, 3), _x(1, 3, 5, 5, dtype=np.float64), _x(4, 3, 3, 3))
