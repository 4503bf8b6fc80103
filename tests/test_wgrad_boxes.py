"""The weight gradient tap by tap over the pixels whose taps land in the input
(csrc/conv/conv_wgrad_boxes.cpp) against torch.

In auto mode it runs where at most 80% of the (pixel, tap) pairs land and the images make
long reductions (5x5 "same" at 7x7, 7x7 at 14x14); these tests force it on
(`_C._set_wgrad_boxes("on")`) so that a hypothesis sweep of small shapes covers it: odd and
prime sizes, strides past the kernel, dilation, asymmetric padding, empty batches, both
orientations of the tile (output channels as its rows, or input channels where they fill a
wider tile as its columns), ragged row panels and column panels, image chunks, blocks of
panels and reduction blocks, non-contiguous arrays, both dtypes and every instruction set;
plus threads bitwise and non-finite values where torch puts them.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import pyconv
from pyconv import _C
from test_conv_kernels import (ISAS, TOL, assert_close, assert_threads_bitwise, make,
                               out_size, run_pyconv, torch_ref)


@pytest.fixture(autouse=True)
def _boxes_on():
    isa, nt = _C.isa(), pyconv.get_num_threads()
    _C._set_wgrad_boxes("on")
    yield
    _C._set_wgrad_boxes("auto")
    _C.set_isa(isa)
    pyconv.set_num_threads(nt)


def grad_weight(x, w, dy, stride, pad, dil):
    return _C.conv2d_backward(dy, x, w, stride, pad, dil, 1, [False, True, False])[1]


def ref_grad_weight(x, w, dy, stride, pad, dil):
    xt = torch.tensor(x, dtype=torch.float64)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    t, b, l, r = pad
    y = F.conv2d(F.pad(xt, (l, r, t, b)), wt, stride=stride, dilation=dil)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return wt.grad.numpy()


@given(N=st.integers(0, 4), C=st.integers(1, 20), K=st.integers(1, 40),
       H=st.integers(1, 12), W=st.integers(1, 12), R=st.integers(1, 6), S=st.integers(1, 6),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       pad=st.tuples(*[st.integers(0, 4)] * 4),
       dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS))
def test_sweep_against_torch(N, C, K, H, W, R, S, sh, sw, dh, dw, pad, dtype, isa):
    assume(out_size(H, pad[0], pad[1], R, sh, dh) >= 1
           and out_size(W, pad[2], pad[3], S, sw, dw) >= 1)
    _C.set_isa(isa)
    x, w, b, dy, stride, pad, dil, groups = make(
        (N, C, H, W, K, R, S, (sh, sw), pad, (dh, dw), 1), dtype, seed=N + C + K)
    got = grad_weight(x, w, dy, stride, pad, dil)
    assert got.dtype == dtype
    assert_close(got, ref_grad_weight(x, w, dy, stride, pad, dil), TOL[dtype],
                 f"{(N, C, H, W, K, R, S, stride, pad, dil)} {isa}")


# Tile edges in both orientations (rows of 6 or 8, columns of 8-48), image chunks (512 KiB
# of rows and panels each) and several reduction blocks a chunk.
EDGES = [
    (20, 32, 7, 7, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1),   # 2 chunks of 16 images, 3 blocks each
    (20, 48, 7, 7, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1),   # input channels a 48-column tile
    (10, 512, 7, 7, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1),   # panels in 2 blocks, 2 chunks of 8
    (9, 16, 14, 14, 48, 7, 7, 1, (3, 3, 3, 3), 1, 1),   # input channels as the rows (8 x 48)
    (3, 7, 9, 8, 33, 5, 5, 1, (2, 2, 2, 2), 1, 1),     # ragged panels both ways
    (3, 9, 9, 10, 17, 7, 7, 1, (3, 3, 3, 3), 1, 1),
    (2, 49, 6, 7, 8, 5, 3, 1, (2, 1, 0, 2), 1, 1),     # asymmetric padding
    (4, 5, 11, 9, 31, 3, 3, 2, (1, 1, 1, 1), (1, 2), 1),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", EDGES, ids=[str(i) for i in range(len(EDGES))])
def test_tile_edges_and_chunks(shape, dtype, isa):
    _C.set_isa(isa)
    x, w, b, dy, stride, pad, dil, groups = make(shape, dtype, seed=3)
    got = grad_weight(x, w, dy, stride, pad, dil)
    assert_close(got, ref_grad_weight(x, w, dy, stride, pad, dil), TOL[dtype], f"{shape} {isa}")


def test_non_contiguous():
    x, w, b, dy, stride, pad, dil, groups = make(EDGES[4], np.float32, seed=4)
    xs = np.zeros(x.shape[:3] + (2 * x.shape[3],), np.float32)[..., ::2]
    xs[...] = x
    dys = np.asfortranarray(dy)
    got = grad_weight(xs, w, dys, stride, pad, dil)
    assert_close(got, ref_grad_weight(x, w, dy, stride, pad, dil), TOL[np.float32], "strided")


@pytest.mark.parametrize("shape", [EDGES[0], EDGES[2], EDGES[3]])
def test_threads_bitwise(shape):
    _C._set_wgrad_boxes("auto")  # (the gate takes both)
    assert_threads_bitwise(make(shape, np.float32, seed=5))


@pytest.mark.parametrize("shape,taken", [(EDGES[0], True), (EDGES[2], True), (EDGES[3], True),
                                         ((9, 16, 14, 14, 48, 5, 5, 1, (2,) * 4, 1, 1), False),
                                         ((16, 32, 28, 28, 96, 5, 5, 1, (2,) * 4, 1, 1), False),
                                         ((7, 832, 7, 7, 128, 5, 5, 1, (2,) * 4, 1, 1), False)])
def test_auto_gate(shape, taken):
    """auto takes 5x5 at 7x7 and 7x7 at 14x14 with enough images; not 5x5 at 14x14 (84% of
    the (pixel, tap) pairs land) or 28x28 (92%), nor 832 -> 128 at 7x7 (chunks of 2
    images: 68 reduction values a tap): bitwise what on or off gives."""
    args = make(shape, np.float32, seed=6)
    res = {}
    for mode in ("auto", "on", "off"):
        _C._set_wgrad_boxes(mode)
        res[mode] = grad_weight(*args[:1], args[1], args[3], *args[4:7])
    assert np.array_equal(res["auto"], res["on" if taken else "off"])
    assert not np.array_equal(res["on"], res["off"])  # (the two sum in different orders)


@pytest.mark.parametrize("where", ["corner", "centre", "input"])
@pytest.mark.parametrize("mode", ["on", "auto"])
def test_nonfinite_lands_where_torch_puts_it(where, mode):
    """An inf in grad_output times the padding's zeros is NaN in torch's gradient where the
    boxes skip the product: such calls are redone by the kernels that multiply every tap."""
    _C._set_wgrad_boxes(mode)
    x, w, b, dy, stride, pad, dil, groups = make(EDGES[0], np.float32, seed=7)
    if where == "corner":
        dy[3, 5, 0, 0] = np.inf
    elif where == "centre":
        dy[3, 5, 3, 3] = -np.inf
    else:
        x[2, 4, 6, 1] = np.nan
    ref = ref_grad_weight(x, w, dy, stride, pad, dil)
    got = grad_weight(x, w, dy, stride, pad, dil)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    assert_close(got[fin], ref[fin], TOL[np.float32], where)

