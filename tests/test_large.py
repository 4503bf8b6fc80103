"""Index arithmetic beyond 2**31 elements and clean failures for impossible sizes.

Broadcast (zero-stride) views give inputs of more than 2**32 elements without
memory; the kernels read them through their strides, so every offset computed
above 2**31 must be 64-bit. Expected values come from numpy on the small pattern.
"""
import numpy as np
import pytest

import pyconv.functional as F

HW = 65536  # 2**32 elements per plane


def _pattern():
    row = (np.arange(HW) % 7 - 3).astype(np.float64)
    return row, np.broadcast_to(row, (1, 1, HW, HW))


def test_conv2d_forward_reads_past_2_31():
    row, x = _pattern()
    assert x.size >= 2**32
    w = np.random.default_rng(0).standard_normal((2, 1, 3, 3))
    st = 4096
    y = F.conv2d(x, w, stride=st)
    P = (HW - 3) // st + 1
    assert y.shape == (1, 2, P, P)
    cols = np.arange(P)[:, None] * st + np.arange(3)[None, :]  # (q, s)
    expect = np.einsum("krs,qs->kq", w[:, 0], row[cols])       # rows of x are identical
    np.testing.assert_allclose(y[0], np.broadcast_to(expect[:, None, :], y.shape[1:]), rtol=1e-12)


def test_conv2d_backward_weight_reads_past_2_31():
    row, x = _pattern()
    w = np.ones((1, 1, 2, 2))
    st = 8192
    P = (HW - 2) // st + 1
    g = np.random.default_rng(1).standard_normal((1, 1, P, P))
    _, gw, gb = F.conv2d_backward(g, x, w, stride=st, output_mask=(False, True, True))
    cols = np.arange(P)[:, None] * st + np.arange(2)[None, :]  # (q, s)
    expect = np.einsum("pq,qs->s", g[0, 0], row[cols])          # independent of r
    np.testing.assert_allclose(gw[0, 0], np.broadcast_to(expect, (2, 2)), rtol=1e-12)
    np.testing.assert_allclose(gb, [g.sum()], rtol=1e-12)


def test_impossible_output_is_memory_error():
    x = np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(MemoryError, match="conv2d: the output would have"):
        F.conv2d(x, w, padding=2**30)
    with pytest.raises(ValueError, match=r"conv2d: padding must be at most 2147483647"):
        F.conv2d(x, w, padding=2**40)
