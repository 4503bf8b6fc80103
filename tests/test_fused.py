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
