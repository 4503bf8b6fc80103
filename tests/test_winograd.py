"""Winograd F(2x2, 3x3) (csrc/conv/conv_winograd.cpp) against torch.

The kernels serve stride-1, undilated, ungrouped conv2d forward, backward-data (so
also conv_transpose2d with those parameters) and backward-weight for kernels of 2..7
taps, larger ones as 3x3 pieces; dilated ones as undilated convolutions of their polyphase
sub-images. In auto mode they run only for 3x3 and 5x5 with enough channels and tiles;
these tests force them on (`_C._set_winograd("on")`) so that a hypothesis sweep of small
shapes covers every path: odd and prime sizes, tile rows split across blocks, padding
0..3 and asymmetric, empty batches, non-contiguous arrays, each activation, both
instruction sets, and reduction blocks (C > 256).
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
from test_conv_kernels import (ISAS, TOL, assert_close, assert_threads_bitwise, make,
                               run_pyconv, torch_ref)


@pytest.fixture(autouse=True)
def _winograd_on():
    isa, nt = _C.isa(), pyconv.get_num_threads()
    _C._set_winograd("on")
    _C._set_wgrad_boxes("off")  # (its auto gate would take some 5x5 weight gradients first)
    _C._set_direct("off")  # (and the direct kernels' some 5x5 forwards and backward-data)
    _C._set_direct_bd("off")
    yield
    _C._set_winograd("auto")
    _C._set_wgrad_boxes("auto")
    _C._set_direct("auto")
    _C._set_direct_bd("auto")
    _C.set_isa(isa)
    pyconv.set_num_threads(nt)


def _shape(N, C, H, W, K, pad, R=3, S=3, dil=1):
    return (N, C, H, W, K, R, S, 1, pad, dil, 1)


@given(N=st.integers(0, 3), C=st.integers(1, 40), K=st.integers(1, 40),
       H=st.integers(1, 23), W=st.integers(1, 23),
       R=st.sampled_from([3, 3, 5, 2, 4, 7]), S=st.sampled_from([3, 3, 5, 2, 6]),
       pad=st.tuples(*[st.integers(0, 3)] * 4),
       dtype=st.sampled_from([np.float32, np.float64]),
       isa=st.sampled_from(ISAS), threads=st.sampled_from([1, 2, 3]))
def test_sweep(N, C, K, H, W, R, S, pad, dtype, isa, threads):
    if H + pad[0] + pad[1] < R or W + pad[2] + pad[3] < S:
        return  # no output: rejected by the op (covered by the conv2d tests)
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    args = make(_shape(N, C, H, W, K, pad, R, S), dtype, seed=N + C + K + H + W)
    ref = torch_ref(*args)
    got = run_pyconv(*args)
    for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert g.dtype == dtype
        assert_close(g, r, TOL[dtype], f"{name} {isa} {threads}")


@given(N=st.integers(1, 3), C=st.integers(1, 36), K=st.integers(1, 36),
       H=st.integers(1, 29), W=st.integers(1, 29),
       R=st.sampled_from([3, 3, 2, 5]), S=st.sampled_from([3, 3, 2, 4]),
       pad=st.tuples(*[st.integers(0, 4)] * 4),
       dil=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dtype=st.sampled_from([np.float32, np.float64]),
       isa=st.sampled_from(ISAS), threads=st.sampled_from([1, 2, 3]))
def test_dilated_sweep(N, C, K, H, W, R, S, pad, dil, dtype, isa, threads):
    """Dilated convolutions run as undilated ones on polyphase sub-images (all three passes;
    residues whose sub-problem would be empty fall back to the GEMM)."""
    if H + pad[0] + pad[1] < dil[0] * (R - 1) + 1 or W + pad[2] + pad[3] < dil[1] * (S - 1) + 1:
        return
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    args = make(_shape(N, C, H, W, K, pad, R, S, dil), dtype, seed=N + C + K + H + W)
    for g, r, name in zip(run_pyconv(*args), torch_ref(*args),
                          ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, TOL[dtype], f"{name} {isa} {threads}")


# W = 29: sub-problems of two widths, run one by one; W = 28 (and dilations 2 x 3 on
# 30 x 27): all of one shape, run as one batch of N * dil_h * dil_w images.
@pytest.mark.parametrize("H, W, dil", [(30, 29, 2), (30, 28, 2), (30, 27, (2, 3))])
def test_dilated_threads_bitwise_and_auto(H, W, dil):
    args = make(_shape(2, 64, H, W, 64, (2, 2, 2, 2), dil=dil), np.float32, seed=14)
    assert_threads_bitwise(args, 3)
    ref = torch_ref(*args)
    # >= 2x15x9 tiles per sub-problem and 64 channels (rows shorter than 28): auto picks the
    # polyphase path
    _C._set_winograd("auto")
    for g, r, name in zip(run_pyconv(*args), ref, ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[np.float32], name)


# (N, C, H, W, K, pad): several tile blocks with rows split between them; reduction
# blocks (C, K > 256); a plane as wide as the stack buffers allow and one wider (falls
# back to the GEMM); many channels at a small plane.
SHAPES = [
    (3, 40, 17, 16, 33, (2, 2, 2, 2)),
    (2, 300, 6, 7, 270, (1, 1, 1, 1)),
    (1, 2, 3, 509, 3, (1, 1, 1, 1)),
    (1, 2, 3, 511, 3, (1, 1, 1, 1)),
    (2, 64, 5, 5, 64, (1, 1, 1, 1)),
    (4, 33, 29, 31, 35, (1, 0, 0, 1)),
    (3, 32, 16, 16, 32, (2, 2, 2, 2), 5, 5),   # CIFAR-10 conv2 at batch 3: four 3x3 pieces
    (2, 70, 9, 8, 40, (3, 1, 0, 2), 5, 5),     # pieces over two reduction blocks (4*70 > 256)
    (3, 32, 8, 8, 64, (2, 2, 2, 2), 5, 5),     # CIFAR-10 conv3: rows of 4 tiles, two at a time
    (5, 36, 7, 7, 33, (1, 1, 1, 1)),           # ResNet 512@7-like: 4 tiles, the last one ragged
    (3, 33, 6, 9, 34, (0, 1, 1, 0), 3, 5),     # rows of 4 tiles from asymmetric padding
    # weight gradient blocks: bands of one large image's rows; images in groups with a
    # ragged last group; more blocks than chunks; a piece's channels over two GEMM row blocks
    (1, 33, 40, 37, 34, (1, 1, 1, 1)),
    (20, 32, 8, 8, 35, (2, 2, 2, 2), 5, 5),
    (5, 32, 46, 45, 32, (1, 1, 1, 1)),
    (2, 150, 9, 8, 17, (2, 2, 2, 2), 5, 5),
    # the weight gradient's shared schedule (partial sums 16 * C * K of 4 MiB and more, one
    # block at a time by all threads): 264 tiles in two blocks; 5x5 pieces, one block
    (2, 256, 24, 22, 256, (1, 1, 1, 1)),
    (2, 130, 12, 11, 132, (2, 2, 2, 2), 5, 5),
    # the forward's shared schedule, from too few blocks (batch 1, 49 tiles)
    (1, 64, 14, 14, 48, (1, 1, 1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s[:5]) for s in SHAPES])
def test_shapes(shape, dtype):
    args = make(_shape(*shape), dtype, seed=7)
    assert args[1].shape[2:] == tuple(shape[6:8] or (3, 3))
    for g, r, name in zip(run_pyconv(*args), torch_ref(*args),
                          ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[dtype], name)


@pytest.mark.parametrize("shape", SHAPES[:2] + SHAPES[4:], ids=str)
def test_threads_bitwise(shape):
    assert_threads_bitwise(make(_shape(*shape), np.float32, seed=8), 3)


def test_auto_and_off_agree_with_on():
    """The three modes are three kernels computing the same function."""
    args = make(_shape(2, 48, 13, 12, 40, (1, 1, 1, 1)), np.float64, seed=9)
    ref = torch_ref(*args)
    for mode in ("off", "auto", "on"):
        _C._set_winograd(mode)
        for g, r in zip(run_pyconv(*args)[:3], ref[:3]):
            assert_close(g, r, TOL[np.float64], mode)
    with pytest.raises(ValueError, match="_set_winograd"):
        _C._set_winograd("fast")


# (N, H, W): 98 tiles, where auto takes the shared weight gradient (256 channels on both
# sides), and 64, where it leaves it to the GEMM.
@pytest.mark.parametrize("nhw, winograd", [((2, 14, 14), True), ((4, 7, 7), False)])
def test_weight_gate_with_shared_blocks(nhw, winograd):
    N, H, W = nhw
    args = make(_shape(N, 256, H, W, 256, (1, 1, 1, 1)), np.float32, seed=15)
    got = {}
    for mode in ("off", "auto", "on"):
        _C._set_winograd(mode)
        got[mode] = run_pyconv(*args)[2]
    assert np.array_equal(got["auto"], got["on" if winograd else "off"])
    assert not np.array_equal(got["on"], got["off"])
    assert_close(got["auto"], torch_ref(*args)[2], TOL[np.float32], "grad_weight")


# Forward and backward-data need 60% of a 2x2 tile grid's outputs real: a 3x3 plane (9 of
# 16) goes to the GEMM, and so do a dilated layer's 3x3 sub-problems (6x6 outputs at
# dilation 2); a 7x7 plane (49 of 64) and the weight gradient keep Winograd. 5x5 with at
# most 64 outputs and 384 input channels or more goes to pixel rows (a long reduction), as
# does 5x5 with at most 48 outputs (filling the tile's columns) where over 16% of the
# im2col is padding, or its forward from 96 input channels (but 8x8 and 16x16: whole
# aligned tile rows), and 5x5 on planes of under 80% tile use (7x7) needs 256 tiles;
# there 64+ outputs of 256+ inputs go to pixel rows too (the padding they skip, unless the
# tiles are whole rows of 4). The 5x5 weight gradient needs 384 tiles; weight gradients need
# 32 channels on both sides, or 16 inputs / 24 outputs against 64 on the other side with
# rows of 14 outputs or more. Dilated layers with
# short sub-problem rows need more than 16 outputs, and more than 32 under 85% tile use, and
# sub-problems of one shape or 20 tiles each on average.
@pytest.mark.parametrize("shape, which, winograd", [
    (_shape(16, 64, 3, 3, 64, (1, 1, 1, 1)), 0, False),           # forward at 3x3
    (_shape(16, 64, 3, 3, 64, (1, 1, 1, 1)), 1, False),           # backward-data at 3x3
    (_shape(8, 64, 10, 10, 64, (0, 0, 0, 0), dil=2), 0, False),   # 6x6 outputs, dilation 2
    (_shape(4, 64, 7, 7, 64, (1, 1, 1, 1)), 0, True),             # 7x7
    (_shape(8, 384, 7, 7, 384, (1, 1, 1, 1)), 0, False),          # 384 -> 384 at 7x7: 128 tiles
    (_shape(10, 384, 7, 7, 384, (1, 1, 1, 1)), 1, True),          # ... 160 tiles
    (_shape(1, 384, 14, 14, 384, (1, 1, 1, 1)), 1, False),        # ... at 14x14: 49 tiles
    (_shape(2, 384, 14, 14, 384, (1, 1, 1, 1)), 0, True),         # ... 98 tiles
    (_shape(8, 384, 7, 7, 256, (1, 1, 1, 1)), 0, True),           # 384 -> 256 at 7x7
    (_shape(32, 64, 3, 3, 64, (1, 1, 1, 1)), 2, True),            # weight gradient at 3x3
    (_shape(16, 384, 7, 7, 32, (2, 2, 2, 2), 5, 5), 0, False),    # 5x5 384 -> 32
    (_shape(2, 320, 16, 16, 32, (2, 2, 2, 2), 5, 5), 0, True),    # ... 320 -> 32 at 16x16
    (_shape(2, 96, 21, 21, 32, (2, 2, 2, 2), 5, 5), 0, False),    # ... 96 -> 32 at 21x21
    (_shape(2, 96, 21, 21, 48, (2, 2, 2, 2), 5, 5), 0, False),    # ... 96 -> 48
    (_shape(2, 80, 21, 21, 32, (2, 2, 2, 2), 5, 5), 0, True),     # ... 80 -> 32
    (_shape(2, 32, 21, 21, 96, (2, 2, 2, 2), 5, 5), 1, True),     # ... 32 <- 96
    (_shape(16, 320, 7, 7, 32, (2, 2, 2, 2), 5, 5), 0, False),    # ... at 7x7: 31% padding
    (_shape(16, 320, 7, 7, 48, (2, 2, 2, 2), 5, 5), 0, False),    # ... 48 outputs
    (_shape(16, 320, 7, 7, 40, (2, 2, 2, 2), 5, 5), 0, True),     # ... 40: fill no tile
    (_shape(4, 32, 14, 14, 64, (2, 2, 2, 2), 5, 5), 1, False),    # ... 32 <- 64 at 14x14: 16.4%
    (_shape(4, 32, 15, 15, 64, (2, 2, 2, 2), 5, 5), 1, True),     # ... at 15x15: 15.4%
    (_shape(16, 32, 8, 8, 64, (2, 2, 2, 2), 5, 5), 1, True),      # ... at 8x8: rows of 4 tiles
    (_shape(16, 32, 7, 7, 384, (2, 2, 2, 2), 5, 5), 1, False),    # ... 32 <- 384
    (_shape(8, 192, 7, 7, 65, (2, 2, 2, 2), 5, 5), 0, False),     # ... 192 -> 65: 128 tiles
    (_shape(16, 192, 7, 7, 65, (2, 2, 2, 2), 5, 5), 0, True),     # ... 256 tiles
    (_shape(16, 256, 7, 7, 64, (2, 2, 2, 2), 5, 5), 0, False),    # ... 256 -> 64: padding skipped
    (_shape(8, 64, 8, 8, 64, (2, 2, 2, 2), 5, 5), 0, True),       # 8x8, 128 tiles
    (_shape(8, 64, 7, 7, 64, (2, 2, 2, 2), 5, 5), 1, False),      # 7x7 backward-data
    (_shape(16, 32, 7, 7, 32, (2, 2, 2, 2), 5, 5), 2, False),     # 5x5 weight gradient: 256 tiles
    (_shape(8, 32, 14, 14, 32, (2, 2, 2, 2), 5, 5), 2, True),     # ... 392 tiles
    (_shape(4, 24, 14, 14, 64, (1, 1, 1, 1)), 2, True),           # weight gradient 24 -> 64
    (_shape(4, 24, 13, 13, 64, (1, 1, 1, 1)), 2, False),          # ... rows of 13
    (_shape(4, 64, 14, 14, 24, (1, 1, 1, 1)), 2, True),           # ... 64 -> 24
    (_shape(4, 64, 14, 14, 16, (1, 1, 1, 1)), 2, False),          # ... 64 -> 16
    (_shape(4, 16, 14, 14, 48, (1, 1, 1, 1)), 2, False),          # ... 16 -> 48
    (_shape(8, 64, 22, 22, 16, (0, 0, 0, 0), dil=2), 0, False),   # dilated, rows of 9: 16 outputs
    (_shape(8, 64, 22, 22, 32, (0, 0, 0, 0), dil=2), 0, False),   # ... 32 at 81% tile use
    (_shape(8, 64, 20, 20, 32, (2, 2, 2, 2), dil=2), 0, True),    # ... 32, whole tiles
    (_shape(8, 64, 22, 22, 64, (0, 0, 0, 0), dil=2), 0, True),    # ... 64
    (_shape(2, 64, 15, 15, 64, (2, 2, 2, 2), dil=2), 0, True),    # sub-problems of 2 shapes: 128 tiles
    (_shape(1, 64, 13, 13, 64, (2, 2, 2, 2), dil=2), 1, False),   # ... 64 tiles
])
def test_gate_by_tile_use(shape, which, winograd):
    args = make(shape, np.float32, seed=16)
    got = {}
    for mode in ("off", "auto", "on"):
        _C._set_winograd(mode)
        got[mode] = run_pyconv(*args)[which]
    assert not np.array_equal(got["on"], got["off"])
    assert np.array_equal(got["auto"], got["on" if winograd else "off"])
    assert_close(got["auto"], torch_ref(*args)[which], TOL[np.float32], "against torch")


@pytest.mark.parametrize("isa", ISAS)
def test_weight_gate_by_tile_columns(isa):
    """The 5x5 weight gradient with 48 outputs (784 tiles) stays on the GEMM where AVX-512's
    8 x 48 tile fills them (its 8 x 32 tile would leave a quarter idle), on Winograd with
    the other ISAs' tiles; 32 outputs go to Winograd on every ISA."""
    _C.set_isa(isa)
    for K, winograd in ((48, isa != "avx512"), (32, True)):
        args = make(_shape(16, 64, 14, 14, K, (2, 2, 2, 2), 5, 5), np.float32, seed=17)
        got = {}
        for mode in ("off", "auto", "on"):
            _C._set_winograd(mode)
            got[mode] = run_pyconv(*args)[2]
        assert not np.array_equal(got["on"], got["off"])
        assert np.array_equal(got["auto"], got["on" if winograd else "off"]), (isa, K)
        assert_close(got["auto"], torch_ref(*args)[2], TOL[np.float32], "against torch")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("act", ["relu", "sigmoid", "gelu", "leaky_relu"])
@pytest.mark.parametrize("hw", [(11, 13), (8, 7)], ids=["rows-of-7-tiles", "rows-of-4-in-pairs"])
def test_fused_epilogue(act, isa, hw):
    """Bias and activation applied in the output transform; the pre-activation kept."""
    _C.set_isa(isa)
    x, w, b, dy, stride, pad, dil, groups = make(_shape(2, 36, *hw, 34, (1, 1, 1, 1)),
                                                 np.float32, seed=10)
    y, z = _C.conv2d_forward(x, w, b, stride, pad, dil, groups, _C.ACTIVATIONS[act], 0.2, True)
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)[0]
    assert_close(z, ref, 1e-4, "preact")
    fn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu,
          "leaky_relu": lambda t: F.leaky_relu(t, 0.2)}[act]
    assert_close(y, fn(torch.tensor(ref)).numpy(), 1e-4, act)


# Dilated: the polyphase sub-images are split out of the views through their strides.
@pytest.mark.parametrize("dil", [1, 2, (3, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_strided_views(dtype, dil):
    x, w, b, dy, stride, pad, dil, groups = make(_shape(2, 34, 9, 10, 33, (1, 1, 1, 1), dil=dil),
                                                 dtype, seed=11)
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)
    views = {
        "reversed": np.ascontiguousarray(x[..., ::-1])[..., ::-1],
        "channels-last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        "every other": np.repeat(x, 2, axis=3)[..., ::2],
    }
    wv = np.ascontiguousarray(w.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    dyv = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for name, xv in views.items():
        got = run_pyconv(xv, wv, b, dyv, stride, pad, dil, groups)
        for g, r, what in zip(got, ref, ("forward", "grad_input", "grad_weight")):
            assert_close(g, r, TOL[dtype], f"{what} {name}")


def test_unbatched_same_padding_and_transpose():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((35, 12, 9)).astype(np.float32)
    w = rng.standard_normal((33, 35, 3, 3)).astype(np.float32)
    ref = F.conv2d(torch.tensor(x), torch.tensor(w), padding="same").numpy()
    assert_close(PF.conv2d(x, w, padding="same"), ref, 1e-4, "same")
    # conv_transpose2d, 3x3 stride 1, runs as the backward-data of a convolution
    xt = rng.standard_normal((2, 40, 7, 11)).astype(np.float32)
    wt = rng.standard_normal((40, 37, 3, 3)).astype(np.float32)
    for p in (0, 1, 2):
        ref = F.conv_transpose2d(torch.tensor(xt), torch.tensor(wt), padding=p).numpy()
        assert_close(PF.conv_transpose2d(xt, wt, padding=p), ref, 1e-4, f"transpose p{p}")


@pytest.mark.parametrize("mode", ["on", "auto"])
@pytest.mark.parametrize("where", ["input", "weight", "grad_output", "overflow"])
@pytest.mark.parametrize("hw", [(16, 17), (8, 8)], ids=["rows-of-9-tiles", "rows-of-4-in-pairs"])
def test_nonfinite_lands_where_torch_puts_it(where, mode, hw):
    """Winograd's transforms spread an inf or NaN over whole tiles (inf - inf); such calls
    are redone by the GEMM, so non-finite outputs sit exactly where torch's do."""
    _C._set_winograd(mode)
    x, w, b, dy, stride, pad, dil, groups = make(_shape(32, 32, *hw, 32, (1, 1, 1, 1)),
                                                 np.float32, seed=13)
    if where == "input":
        x[1, 3, 5, 6] = np.inf
        x[0, 7, 7, 2] = np.nan
    elif where == "weight":
        w[4, 2, 1, 1] = -np.inf
    elif where == "grad_output":
        dy[1, 5, 7, 6] = np.inf
    else:
        x[0, :, 4, 4] = 3e38  # the transform's sums overflow, the direct sum may not
        w[:] = np.abs(w) * 1e-3
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)
    got = run_pyconv(x, w, b, dy, stride, pad, dil, groups)
    # (Whether the weight gradient's sums of products near the float32 limit overflow
    # depends on the summation order, which no two libraries share: not compared there.)
    names = ("forward", "grad_input") + (("grad_weight",) if where != "overflow" else ())
    for g, r, name in zip(got, ref, names):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=name)
        np.testing.assert_array_equal(np.isinf(g), np.isinf(r), err_msg=name)
        fin = np.isfinite(r)
        assert_close(g[fin], r[fin], TOL[np.float32], name)
