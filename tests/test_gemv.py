"""Matrix-vector products (csrc/conv/conv_gemm.cpp, forward_gemv and backward_data_gemv;
gemv_rows and gemv_t_rows in csrc/gemm/ukernel_tmpl.h) against torch.

A forward with one output value per filter and image and at most four images (a linear
layer at batch 1 to 4, or a filter as large as its unpadded input) runs as dot products of
the filter rows with the images, and its backward-data as the filter rows combined by
grad_output: rows in blocks of 4 (one image) or 2 (two), the last rows one at a time,
images in pairs and one, reductions of any length (whole vector steps and a tail), with
bias, activation and pre-activation, every instruction set and both dtypes; five images and
more, and non-dense filters, take the GEMM. The linear sweep also runs larger batches and
the backward (planes of one value: the input gradient as pixel rows, one weight-gradient
reduction over the batch, the bias gradient's direct sums).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import pyconv
import pyconv.functional as PF
from pyconv import _C
from test_conv_kernels import ISAS, TOL, _restore, assert_close  # noqa: F401 (_restore:
# the autouse fixture that gives back the ISA and thread count after each test)


ACTS = {None: lambda t: t, "relu": torch.relu, "gelu": F.gelu, "sigmoid": torch.sigmoid}


@given(N=st.sampled_from([0, 1, 2, 3, 4, 5, 7, 64, 150]), I=st.integers(1, 70),
       O=st.sampled_from([1, 5, 16, 33, 140, 300]),
       bias=st.booleans(), act=st.sampled_from(list(ACTS)),
       dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS),
       threads=st.sampled_from([1, 2, 3]))
def test_linear_sweep(N, I, O, bias, act, dtype, isa, threads):
    """Forward (dot products at batch 1-4, pixel rows or the GEMM beyond) and backward (the
    input gradient as pixel rows up to 144 rows, the weight and bias gradients reduced over
    the batch) against torch."""
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    rng = np.random.default_rng(N * 1000 + I * 10 + O)
    x = rng.standard_normal((N, I)).astype(dtype)
    w = rng.standard_normal((O, I)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    y, z = PF.linear(x, w, b if bias else None, activation=act, return_preactivation=True)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = F.linear(tx, tw, tb if bias else None)
    assert_close(z, ref.detach().numpy(), TOL[dtype], "pre-activation")
    # (The activation's error scales with its input: gelu's far negative tail, 1 + erf
    # cancelling, keeps erf's own rounding, ~1e-7 of the input in float32.)
    assert_close(y, ACTS[act](ref).detach().numpy(), TOL[dtype], str(act),
                 floor=float(np.abs(z).max()) * 1e-2 if z.size else 0.0)
    g = rng.standard_normal((N, O)).astype(dtype)
    (ref * torch.from_numpy(g)).sum().backward()
    gi, gw, gb = PF.linear_backward(g, x, w)
    for got, r, name in zip((gi, gw, gb), (tx.grad, tw.grad, torch.from_numpy(g).sum(0)),
                            ("grad_input", "grad_weight", "grad_bias")):
        assert_close(got, r.numpy(), TOL[dtype], name)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("N, C, H, W, K", [(1, 3, 5, 7, 10), (2, 16, 4, 4, 33), (1, 1, 1, 1, 1),
                                           (2, 64, 3, 3, 5), (3, 8, 2, 2, 7), (1, 9, 8, 9, 70),
                                           (4, 5, 3, 3, 40), (5, 8, 2, 2, 7)])
def test_filter_as_large_as_the_input(isa, N, C, H, W, K):
    """A conv2d whose filter covers its unpadded input (one output value per image): forward
    and backward-data (the filter's rows combined by grad_output, in row chunks of 32)."""
    _C.set_isa(isa)
    rng = np.random.default_rng(C + H + W + K)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, H, W)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ref = F.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b))
    assert_close(PF.conv2d(x, w, b), ref.detach().numpy(), TOL[np.float32], "forward")
    g = rng.standard_normal(ref.shape).astype(np.float32)
    ref.backward(torch.from_numpy(g))
    gi = PF.conv2d_backward(g, x, w, output_mask=(True, False, False))[0]
    assert_close(gi, tx.grad.numpy(), TOL[np.float32], "grad_input")


@pytest.mark.parametrize("order", ["C", "F"])
def test_views(order):
    """Zero strides of a[:, :, None, None] are fine; a transposed filter takes the GEMM."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 37)).astype(np.float32)
    w = np.asarray(rng.standard_normal((19, 37)).astype(np.float32), order=order)
    ref = x.astype(np.float64) @ w.T.astype(np.float64)
    assert_close(PF.linear(x, w), ref, TOL[np.float32], order)
    assert_close(PF.conv2d(x[:, :, None, None], w[:, :, None, None])[:, :, 0, 0], ref,
                 TOL[np.float32], order)


def test_threads_bitwise():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1000)).astype(np.float32)
    w = rng.standard_normal((300, 1000)).astype(np.float32)
    outs = []
    for nt in (1, 2, 3):
        pyconv.set_num_threads(nt)
        outs.append(PF.linear(x, w))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
