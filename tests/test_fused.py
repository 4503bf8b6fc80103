"""Fused epilogues: conv2d / conv_transpose2d / linear with activation= equal the
unfused torch composition, and the preactivation they return is conv + bias."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import pyconv.functional as F
from conftest import tolerance

ACTS = [
    ("relu", lambda t: TF.relu(t)),
    (("leaky_relu", 0.2), lambda t: TF.leaky_relu(t, 0.2)),
    ("leaky_relu", lambda t: TF.leaky_relu(t)),
    (("elu", 0.7), lambda t: TF.elu(t, 0.7)),
    ("gelu", lambda t: TF.gelu(t)),
    (("gelu", "tanh"), lambda t: TF.gelu(t, approximate="tanh")),
    ("silu", TF.silu),
    ("sigmoid", torch.sigmoid),
    ("tanh", torch.tanh),
    ("hardswish", TF.hardswish),
]


def close(a, ref, dtype):
    rtol, atol = tolerance(dtype, ref)
    np.testing.assert_allclose(a, ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("act, tact", ACTS, ids=[str(a) for a, _ in ACTS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_conv2d(act, tact, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 11, 9)).astype(dtype)
    w = rng.standard_normal((8, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    kw = dict(stride=(2, 1), padding=1, groups=2)
    z_ref = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw)
    y, z = F.conv2d(x, w, b, activation=act, return_preactivation=True, **kw)
    close(z, z_ref.numpy(), dtype)
    close(y, tact(z_ref).numpy(), dtype)
    close(F.conv2d(x, w, b, activation=act, **kw), tact(z_ref).numpy(), dtype)


@pytest.mark.parametrize("act, tact", ACTS[:5], ids=[str(a) for a, _ in ACTS[:5]])
def test_fused_conv_transpose2d(act, tact):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 3, 4, 4))
    b = rng.standard_normal(3)
    z_ref = TF.conv_transpose2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1)
    y, z = F.conv_transpose2d(x, w, b, stride=2, padding=1, activation=act, return_preactivation=True)
    close(z, z_ref.numpy(), np.float64)
    close(y, tact(z_ref).numpy(), np.float64)


@pytest.mark.parametrize("act, tact", ACTS, ids=[str(a) for a, _ in ACTS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_linear(act, tact, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 17)).astype(dtype)
    w = rng.standard_normal((13, 17)).astype(dtype)
    b = rng.standard_normal(13).astype(dtype)
    z_ref = TF.linear(torch.tensor(x), torch.tensor(w), torch.tensor(b))
    close(F.linear(x, w, b, activation=act), tact(z_ref).numpy(), dtype)


def test_linear_matches_torch_with_backward():
    rng = np.random.default_rng(3)
    for xs in [(7,), (4, 7), (2, 3, 7), (0, 7)]:
        x, w, b = rng.standard_normal(xs), rng.standard_normal((5, 7)), rng.standard_normal(5)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        ty = TF.linear(tx, tw, tb)
        y = F.linear(x, w, b)
        close(y, ty.detach().numpy(), np.float64)
        g = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(g))
        gi, gw, gb = F.linear_backward(g, x, w)
        close(gi, tx.grad.numpy(), np.float64)
        close(gw, tw.grad.numpy(), np.float64)
        close(gb, tb.grad.numpy(), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_backward_masks(dtype):
    """Each gradient alone (the batch as images of one value each: the input gradient as
    pixel rows, the weight gradient one reduction over the batch) matches torch;
    output_mask must be three flags."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 300)).astype(dtype)
    w = rng.standard_normal((37, 300)).astype(dtype)
    g = rng.standard_normal((64, 37)).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, np.zeros(37, dtype)))
    TF.linear(tx, tw, tb).backward(torch.tensor(g))
    ref = (tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy())
    for mask in [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]:
        got = F.linear_backward(g, x, w, mask)
        for m, gv, r in zip(mask, got, ref):
            if m:
                close(gv, r, dtype)
            else:
                assert gv is None
    for bad in [(), (True, True), (True, True, True, True)]:
        with pytest.raises(TypeError, match=r"linear_backward: output_mask must be 3 booleans"):
            F.linear_backward(g, x, w, bad)


@pytest.mark.parametrize("act, exc, msg", [
    (("relu", 1.0), ValueError, r"activation 'relu' takes no parameter"),
    (("gelu", "fast"), ValueError, r"gelu's approximate must be 'none' or 'tanh'"),
    (("elu", "a"), TypeError, r"elu's alpha must be a number"),
    (3, TypeError, r"activation must be a name"),
])
def test_bad_activation(act, exc, msg):
    with pytest.raises(exc, match=msg):
        F.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1)), activation=act)


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: input's last dimension \(3\) must equal weight's in_features \(4\)"):
        F.linear(np.ones((2, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-dimensional"):
        F.linear(np.ones((2, 3)), np.ones(3))
    with pytest.raises(TypeError, match=r"linear: weight has dtype float32 but input has dtype float64"):
        F.linear(np.ones((2, 3)), np.ones((5, 3), np.float32))


# One shape per epilogue path: Winograd's output rows, the GEMM's direct tiles (in place,
# one block per tile), its ragged / strided tiles (through emit_values), 1x1, pixel rows
# (C^T tiles), depthwise and grouped planes, the direct kernel's transposed tiles (bias and
# relu in registers, other activations after), and linear layers by dot products (gemv)
# and by the GEMM.
EPILOGUE_PATHS = {
    "winograd": ((2, 16, 12, 12), (16, 16, 3, 3), dict(padding=1), "on", "off"),
    "gemm_direct": ((2, 8, 20, 20), (24, 8, 3, 3), dict(padding=1), "off", "off"),
    "gemm_ragged": ((3, 5, 13, 9), (11, 5, 3, 3), dict(stride=2, padding=(1, 0)), "off", "off"),
    "one_by_one": ((2, 32, 7, 7), (40, 32, 1, 1), {}, "off", "off"),
    "padding_only": ((2, 32, 7, 7), (40, 32, 1, 1), dict(stride=2, padding=3), "off", "off"),
    "pixel_rows": ((2, 6, 9, 10), (33, 6, 3, 3), dict(padding=1), "off", "on"),
    "depthwise": ((2, 12, 15, 11), (12, 1, 3, 3), dict(padding=1, groups=12), "off", "off"),
    "grouped": ((2, 16, 10, 10), (16, 4, 3, 3), dict(padding=1, groups=4), "off", "off"),
    "direct": ((2, 5, 13, 17), (37, 5, 5, 5), dict(padding=2), "off", "off"),
    "direct_strided": ((2, 3, 15, 21), (20, 3, 3, 3), dict(stride=2, padding=1), "off", "off"),
}
ONE_PASS = ["relu", "gelu", ("gelu", "tanh"), "tanh", "silu", ("elu", 0.7), None]


def act_of(act, z):
    from pyconv import ops
    if act is None:
        return z
    name, *args = (act,) if isinstance(act, str) else act
    return getattr(ops, name)(z, *args)


@pytest.mark.parametrize("path", list(EPILOGUE_PATHS))
@pytest.mark.parametrize("act", ONE_PASS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epilogue_is_the_activation_of_the_preactivation(path, act, dtype):
    """Each path's fused epilogue gives bitwise the standalone activation of the
    pre-activation it returns (the same kernels), and that pre-activation is torch's
    conv + bias."""
    from pyconv import _C
    xs, ws, kw, wino, pixel = EPILOGUE_PATHS[path]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal(ws) * 0.3).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    _C._set_winograd(wino)
    _C._set_pixel_rows(pixel)
    _C._set_direct("on" if path.startswith("direct") else "off")
    try:
        y, z = F.conv2d(x, w, b, activation=act, return_preactivation=True, **kw)
        if act in ("relu", None) and dtype == np.float32:  # (the epilogue in registers)
            np.testing.assert_array_equal(y, F.conv2d(x, w, b, activation=act, **kw))
    finally:
        _C._set_winograd("auto")
        _C._set_pixel_rows("auto")
        _C._set_direct("auto")
    z_ref = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw).numpy()
    close(z, z_ref, dtype)
    np.testing.assert_array_equal(y, act_of(act, z))


@pytest.mark.parametrize("rows", [5, 300])  # dot products / the GEMM
@pytest.mark.parametrize("act", ONE_PASS, ids=str)
def test_linear_epilogue_is_the_activation_of_the_preactivation(rows, act):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((rows, 33)).astype(np.float32)
    w = rng.standard_normal((70, 33)).astype(np.float32)
    b = rng.standard_normal(70).astype(np.float32)
    z = F.linear(x, w, b)
    close(z, TF.linear(torch.tensor(x), torch.tensor(w), torch.tensor(b)).numpy(), np.float32)
    np.testing.assert_array_equal(F.linear(x, w, b, activation=act), act_of(act, z))


@pytest.mark.parametrize("shape, kw", [
    ((2, 5, 13, 11), dict(padding=1)),                 # small plane, stride 1
    ((2, 4, 56, 57), dict(padding=1)),                 # banded, ragged last vector
    ((1, 3, 9, 10), dict(padding=2, dilation=2)),      # kernel rows two apart
    ((2, 6, 17, 15), dict(padding=1, stride=2)),       # stride 2, split columns
    ((1, 3, 70, 300), dict(padding=1)),                # too wide for the banded kernel
    ((1, 2, 9, 9), dict(padding=(0, 2))),
])
@pytest.mark.parametrize("act", ["relu", None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_bias_and_relu_in_the_kernels_stores(shape, kw, act, dtype):
    """Depthwise 3x3 planes take bias and relu in their kernels' stores (no pre-activation
    asked for): bitwise conv + bias, then relu, of the plain convolution, which is
    torch's."""
    from pyconv import ops
    rng = np.random.default_rng(7)
    C = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    w = rng.standard_normal((C, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    b[0] = 0.0
    plain = F.conv2d(x, w, None, groups=C, **kw)
    want = plain + b[:, None, None]
    if act:
        want = ops.relu(want)
    got = F.conv2d(x, w, b, groups=C, activation=act, **kw)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    ref = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), groups=C, **kw)
    if act:
        ref = TF.relu(ref)
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(ref.numpy()), rtol=1e-5, atol=1e-5)
