"""The direct forward with output channels as the vector lanes (csrc/conv/conv_direct.cpp,
float32 on AVX-512) and the stride-2 backward-data with dx's channels as the lanes, against
torch.

In auto mode it takes ungrouped forwards with column stride 2, 9+ taps and up to 1600
reduction values (strided stems, downsampling 3x3 and 4x4 layers), stride-1 forwards with
25+ taps and up to 600 (5x5 and 7x7 from few channels), and 1x1 layers to at most 64
outputs on 7x7-14x14 planes; these tests force it on
(`_C._set_direct("on")`) so that a hypothesis sweep of small shapes covers it: tiles of
1-16 pixels (near-equal splits of each output row) by 1-4 vectors of 16 output channels
(partial last blocks), strides (column stride 3 falls back), dilation, asymmetric padding
(a zero-padded copy of each image) and none (the image read in place), reductions in
several parts (filter rows past half of L1), empty batches, non-contiguous arrays, row
blocks split by the thread count (bitwise the same sums), and where it does not apply
(float64, other instruction sets) the kernels that then run.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import pyconv
from pyconv import _C
from test_conv_kernels import ISAS, TOL, assert_close, assert_threads_bitwise, make, out_size

AVX512 = _C.best_isa() == "avx512"


@pytest.fixture(autouse=True)
def _direct_on():
    isa, nt = _C.isa(), pyconv.get_num_threads()
    _C._set_direct("on")
    _C._set_direct_bd("on")
    if AVX512:
        _C.set_isa("avx512")  # (whatever PYCONV_ISA chose)
    yield
    _C._set_direct("auto")
    _C._set_direct_bd("auto")
    _C.set_isa(isa)
    pyconv.set_num_threads(nt)


def ref_forward(x, w, b, stride, pad, dil, groups=1):
    t, bo, l, r = pad
    xt = F.pad(torch.tensor(np.ascontiguousarray(x), dtype=torch.float64), (l, r, t, bo))
    return F.conv2d(xt, torch.tensor(w, dtype=torch.float64), torch.tensor(b, dtype=torch.float64),
                    stride=stride, dilation=dil, groups=groups).numpy()


def forward(args):
    x, w, b, dy, stride, pad, dil, groups = args
    return _C.conv2d_forward(x, w, b, stride, pad, dil, groups)


def check(shape, dtype=np.float32, seed=0, taken=None):
    """Forward against torch; taken: whether the direct kernel must have run."""
    args = make(shape, dtype, seed=seed)
    before = _C._direct_calls()
    got = forward(args)
    if taken is not None:
        assert (_C._direct_calls() > before) == taken, f"{shape} taken"
    x, w, b, dy, stride, pad, dil, groups = args
    assert_close(got, ref_forward(x, w, b, stride, pad, dil, groups), TOL[dtype], f"{shape}")
    return got


def check_threads(shape, seed, which, what):
    """Forward (which 0) or input gradient (1) bitwise the same for 1-3 threads, and torch's."""
    args = make(shape, np.float32, seed=seed)
    got = assert_threads_bitwise(args, k=which + 1)[which]
    x, w, b, dy, stride, pad, dil, groups = args
    ref = ref_forward(x, w, b, stride, pad, dil) if which == 0 else \
        ref_grad_input(x, w, dy, stride, pad, dil)
    assert_close(got, ref, TOL[np.float32], what)


@given(N=st.integers(0, 3), C=st.integers(1, 12), K=st.integers(1, 70),
       H=st.integers(1, 14), W=st.integers(1, 40), R=st.integers(1, 7), S=st.integers(1, 7),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       pad=st.tuples(*[st.integers(0, 3)] * 4),
       dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS))
def test_sweep_against_torch(N, C, K, H, W, R, S, sh, sw, dh, dw, pad, dtype, isa):
    assume(out_size(H, pad[0], pad[1], R, sh, dh) >= 1
           and out_size(W, pad[2], pad[3], S, sw, dw) >= 1)
    _C.set_isa(isa)
    check((N, C, H, W, K, R, S, (sh, sw), pad, (dh, dw), 1), dtype, seed=N + C + K)


# Every tile width (output rows of 1-40 pixels in near-equal tiles of at most 16, 14, 9 or 7
# pixels) for channel counts that pick each block width (1-4 vectors) with partial last
# blocks, at both column strides.
@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("K", [1, 16, 17, 32, 33, 48, 64, 65, 100])
@pytest.mark.parametrize("sw", [1, 2])
def test_tiles(K, sw):
    for Q in list(range(1, 19)) + [27, 28, 29, 40]:
        W = (Q - 1) * sw + 3 - 2
        check((2, 3, 5, W, K, 3, 3, (1, sw), (1, 1, 1, 1), 1, 1), seed=Q + K, taken=True)


# Reductions in parts: 40 x 5 x 5 values a filter row, 1000 x 16-64 lanes of filter rows
# past half of L1 in every block width; and one long reduction not padded (the image in
# place, its channel stride past the plane's: a channel slice).
@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("K", [16, 32, 48, 64])
def test_reduction_parts(K):
    check((2, 40, 9, 12, K, 5, 5, 1, (2, 2, 2, 2), 1, 1), seed=K, taken=True)
    x, w, b, dy, stride, pad, dil, groups = make((2, 80, 9, 12, K, 5, 5, 1, (0, 0, 0, 0), 1, 1),
                                                 np.float32, seed=K)
    xs = x[:, ::2]  # (40 channels, channel stride 2 planes)
    ws = np.ascontiguousarray(w[:, ::2])
    before = _C._direct_calls()
    got = _C.conv2d_forward(xs, ws, b, stride, pad, dil, groups)
    assert _C._direct_calls() > before
    assert_close(got, ref_forward(xs, ws, b, stride, pad, dil), TOL[np.float32], "slice")


# Reductions in parts over blocks of rows (the partial sums of a block fill at most a
# quarter of L2): 25 rows of 200 outputs x 32-64 channels make blocks of 5-20 rows.
@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
def test_row_blocks():
    check_threads((8, 8, 25, 200, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1), 11, 0, "row blocks")


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
def test_views():
    """Reversed columns (copied), reversed rows and a transposed plane (in place or copied)."""
    x, w, b, dy, stride, pad, dil, groups = make((2, 5, 11, 13, 20, 5, 5, 1, (2, 2, 2, 2), 1, 1),
                                                 np.float32, seed=4)
    for pad_ in ((2, 2, 2, 2), (0, 0, 0, 0)):
        for v in (x[..., ::-1], x[:, :, ::-1], np.swapaxes(x, 2, 3)):
            ref = ref_forward(v, w, b, stride, pad_, dil)
            before = _C._direct_calls()
            got = _C.conv2d_forward(v, w, b, stride, pad_, dil, groups)
            assert _C._direct_calls() > before
            assert_close(got, ref, TOL[np.float32], f"view {v.strides} {pad_}")


# Each thread's zero-padded image keeps its zero border from image to image and call to
# call: layouts with the same padded planes but the image placed elsewhere (which must
# zero it again), and its scratch block back from the buffer cache between calls (filled
# with 0x7f7f7f7f = 3.4e38 when handed out again: a stale border would show).
@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("nt", [1, 2])
def test_padded_border_reused(nt):
    pyconv.set_num_threads(nt)
    wide = (3, 16, 32, 32, 20, 5, 5, 1, (1, 1, 1, 1), 1, 1)   # 34 x 34 padded planes
    inner = (3, 16, 30, 30, 20, 5, 5, 1, (2, 2, 2, 2), 1, 1)  # the same, 2 from the edge
    corner = (3, 16, 31, 31, 20, 5, 5, 1, (3, 0, 3, 0), 1, 1)
    high, low = ((3, 16, 30, 30, 20, 5, 5, 1, pad, 1, 1) for pad in ((1, 3, 1, 3), (3, 1, 3, 1)))
    try:
        for fill in (-1, 0x7F):
            _C._set_cache_fill(fill)
            for i, shape in enumerate([wide, inner, inner, wide, corner, inner, high, low]):
                check(shape, seed=i, taken=True)
    finally:
        _C._set_cache_fill(-1)


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("N", [1, 2, 7])
def test_threads_bitwise(N):
    """Images and row blocks (by the thread count where images are few) across threads:
    each output's sum is the same whichever thread computes it."""
    check_threads((N, 3, 23, 30, 40, 7, 7, (2, 2), (3, 3, 3, 3), 1, 1), N, 0, "threads")


def test_empty_and_refused():
    """An empty batch; groups, column stride 3, float64 and no filters go to the other
    kernels."""
    check((0, 3, 9, 9, 20, 5, 5, 1, (2, 2, 2, 2), 1, 1), taken=False)
    check((2, 4, 9, 9, 20, 5, 5, 1, (2, 2, 2, 2), 1, 2), taken=False)
    check((2, 3, 9, 9, 20, 5, 5, (1, 3), (2, 2, 2, 2), 1, 1), taken=False)
    check((2, 3, 9, 9, 20, 5, 5, 1, (2, 2, 2, 2), 1, 1), np.float64, taken=False)
    # No filters (torch refuses the forward): dx is zeros, from the other kernels.
    x, w = np.ones((2, 3, 9, 9), np.float32), np.ones((0, 3, 5, 5), np.float32)
    for stride in (1, 2):
        P = (9 + 4 - 5) // stride + 1
        before = _C._direct_calls()
        gi = _C.conv2d_backward(np.ones((2, 0, P, P), np.float32), x, w, (stride, stride),
                                (2, 2, 2, 2), (1, 1), 1, [True, False, False])[0]
        assert _C._direct_calls() == before and np.array_equal(gi, np.zeros_like(x))


# The auto gate: taken (the 7x7 stride-2 stem, 3x3 stride 2 from 64 channels, DCGAN's 4x4
# stride 2 from 64, 5x5 from 16 and 7x7 from 12 channels, 1x1 to 64 outputs on 49-196
# pixels) and refused (5x5 from 32 channels as CIFAR-10's conv2, 4x4 stride 2 from 128,
# 3x3 stride 1, 1x1 with stride 2, 65 outputs, 210 or 48 pixels), each bitwise the result
# of forcing it on or off.
GATE = [
    ((1, 3, 30, 30, 64, 7, 7, 2, (3, 3, 3, 3), 1, 1), True),
    ((1, 64, 12, 12, 16, 3, 3, 2, (1, 1, 1, 1), 1, 1), True),
    ((1, 64, 8, 8, 16, 4, 4, 2, (1, 1, 1, 1), 1, 1), True),
    ((2, 16, 14, 14, 48, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),
    ((1, 12, 10, 10, 24, 7, 7, 1, (3, 3, 3, 3), 1, 1), True),
    ((2, 32, 8, 8, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),
    ((1, 128, 6, 6, 16, 4, 4, 2, (1, 1, 1, 1), 1, 1), False),
    ((2, 3, 12, 12, 16, 3, 3, 1, (1, 1, 1, 1), 1, 1), False),
    ((2, 16, 8, 8, 16, 1, 1, 2, (0, 0, 0, 0), 1, 1), False),
    ((2, 96, 14, 14, 32, 1, 1, 1, (0, 0, 0, 0), 1, 1), True),
    ((2, 96, 7, 7, 64, 1, 1, 1, (0, 0, 0, 0), 1, 1), True),
    ((2, 96, 14, 14, 65, 1, 1, 1, (0, 0, 0, 0), 1, 1), False),
    ((2, 96, 15, 14, 32, 1, 1, 1, (0, 0, 0, 0), 1, 1), False),
    ((2, 96, 6, 8, 32, 1, 1, 1, (0, 0, 0, 0), 1, 1), False),
    # stride 1, 25+ taps onto at most 64 outputs: 800 reduction values at 14x14, not on
    # Winograd's aligned 16x16, 1600 from 10x10 (not at 7x7), 6400 from 28x28 and 3136
    # pixels, not dilated
    ((2, 32, 14, 14, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),
    ((2, 32, 16, 16, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),
    ((2, 64, 14, 14, 48, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),
    ((2, 64, 7, 7, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),
    ((4, 128, 28, 28, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),
    ((1, 128, 28, 28, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),  # 3200 at batch 1
    ((2, 128, 14, 14, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),
    ((4, 256, 28, 28, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),   # 6400 at 28x28, batch 4
    ((4, 257, 28, 28, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),  # 6425
    ((3, 256, 28, 28, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),  # batch 3 (2352 pixels)
    ((2, 32, 14, 14, 65, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),
    ((2, 32, 14, 14, 32, 5, 5, 1, (4, 4, 4, 4), 2, 1), False),
]


def check_gate(shape, taken, set_mode, run):
    _C.set_isa("avx512")
    args = make(shape, np.float32, seed=9)
    outs = {}
    for mode in ("on", "off", "auto"):
        set_mode(mode)
        before = _C._direct_calls()
        outs[mode] = run(args)
        if mode == "auto":
            assert (_C._direct_calls() > before) == taken
    assert np.array_equal(outs["auto"], outs["on" if taken else "off"])


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("shape, taken", GATE)
def test_auto_gate(shape, taken):
    check_gate(shape, taken, _C._set_direct, forward)


# ---- the stride-2 backward-data (direct_backward_data) ------------------------------------
#
# Auto: even kernels of 4+ taps a side at stride 2 onto dx rows of 32+ columns with 32-64
# channels (DCGAN's transposed forwards); forced on here, it covers: pairs of dx columns
# from column -(left padding % 2), tiles of 1-8 pairs by 1-3 vectors of channels with partial
# last blocks, odd kernels (a parity's missing taps as zero weights), asymmetric padding,
# reductions in parts over blocks of rows, empty batches, non-contiguous grad_output, and
# non-finite values (left to the other kernels).

def grad_input(args):
    x, w, b, dy, stride, pad, dil, groups = args
    return _C.conv2d_backward(dy, x, w, stride, pad, dil, groups, [True, False, False])[0]


def ref_grad_input(x, w, dy, stride, pad, dil):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    t, bo, l, r = pad
    y = F.conv2d(F.pad(xt, (l, r, t, bo)), torch.tensor(w, dtype=torch.float64), stride=stride,
                 dilation=dil)
    y.backward(torch.tensor(np.ascontiguousarray(dy), dtype=torch.float64))
    return xt.grad.numpy()


def check_bd(shape, dtype=np.float32, seed=0, taken=None):
    args = make(shape, dtype, seed=seed)
    x, w, b, dy, stride, pad, dil, groups = args
    before = _C._direct_calls()
    got = grad_input(args)
    if taken is not None:
        assert (_C._direct_calls() > before) == taken, f"{shape} taken"
    assert_close(got, ref_grad_input(x, w, dy, stride, pad, dil), TOL[dtype], f"{shape}")
    return got


@given(N=st.integers(0, 2), C=st.integers(1, 70), K=st.integers(1, 12),
       H=st.integers(1, 14), W=st.integers(1, 40), R=st.integers(1, 6), S=st.integers(1, 6),
       sh=st.integers(1, 3), pad=st.tuples(*[st.integers(0, 3)] * 4),
       dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS))
def test_bd_sweep_against_torch(N, C, K, H, W, R, S, sh, pad, dtype, isa):
    assume(out_size(H, pad[0], pad[1], R, sh, 1) >= 1 and out_size(W, pad[2], pad[3], S, 2, 1) >= 1)
    _C.set_isa(isa)
    check_bd((N, C, H, W, K, R, S, (sh, 2), pad, 1, 1), dtype, seed=N + C + K)


# Stride 1: the flipped filter's forward onto dx's C channels (padded by the kernel's reach
# less the padding; refused where the padding is past the reach), dilation, every kind of
# tile (dx rows of 1-40 columns, 1-70 channels), reductions of 1-12 x 49 values.
@given(N=st.integers(0, 2), C=st.integers(1, 70), K=st.integers(1, 12),
       H=st.integers(1, 14), W=st.integers(1, 40), R=st.integers(1, 7), S=st.integers(1, 7),
       dh=st.integers(1, 2), dw=st.integers(1, 2), pad=st.tuples(*[st.integers(0, 3)] * 4),
       dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS))
def test_bd_stride1_sweep_against_torch(N, C, K, H, W, R, S, dh, dw, pad, dtype, isa):
    assume(out_size(H, pad[0], pad[1], R, 1, dh) >= 1 and out_size(W, pad[2], pad[3], S, 1, dw) >= 1)
    _C.set_isa(isa)
    reach = max(pad[0], pad[1]) <= (R - 1) * dh and max(pad[2], pad[3]) <= (S - 1) * dw
    # (Past the reach, outputs reading padding only may be cropped away: the rest is a
    # problem within it.)
    taken = (isa == "avx512" and dtype == np.float32) if N * C * H * W > 0 else None
    check_bd((N, C, H, W, K, R, S, 1, pad, (dh, dw), 1), dtype, seed=N + C + K,
             taken=taken if reach or not taken else None)


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("N", [1, 3])
def test_bd_stride1_threads_bitwise(N):
    """Images, channel blocks and row blocks across threads, reductions in parts (80 x 25
    values): the same sums whichever thread computes them."""
    check_threads((N, 40, 21, 26, 80, 5, 5, 1, (2, 2, 2, 2), 1, 1), N, 1, "threads")


# Every tile of pairs (rows of 1-40 columns from column 0 or -1) for channel counts that
# pick each block width, with partial last blocks.
@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("C", [1, 16, 17, 33, 48, 64, 100])
@pytest.mark.parametrize("pl", [0, 1])
def test_bd_tiles(C, pl):
    for W in list(range(3 - pl, 19)) + [27, 28, 29, 40]:
        check_bd((2, C, 6, W, 3, 4, 4, 2, (1, 1, pl, 1), 1, 1), seed=W + C, taken=True)


# Parts of the reduction (32 x 2 x 2 values, filter rows past half of L1) over blocks of
# rows (200 pairs a row), several images: bitwise across thread counts.
@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
def test_bd_parts_and_row_blocks():
    check_threads((8, 32, 25, 400, 32, 4, 4, 2, (1, 1, 1, 1), 1, 1), 12, 1, "parts")


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
def test_bd_views_and_empty():
    x, w, b, dy, stride, pad, dil, groups = make((2, 20, 9, 13, 6, 4, 4, 2, (1, 2, 1, 0), 1, 1),
                                                 np.float32, seed=13)
    ref = ref_grad_input(x, w, dy, stride, pad, dil)
    for v in (np.ascontiguousarray(dy[..., ::-1])[..., ::-1], np.swapaxes(
            np.ascontiguousarray(np.swapaxes(dy, 2, 3)), 2, 3)):
        before = _C._direct_calls()
        got = _C.conv2d_backward(v, x, w, stride, pad, dil, groups, [True, False, False])[0]
        assert _C._direct_calls() > before
        assert_close(got, ref, TOL[np.float32], f"view {v.strides}")
    check_bd((0, 20, 9, 13, 6, 4, 4, 2, (1, 1, 1, 1), 1, 1), taken=False)


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("where, R, taken", [("dy", 3, False), ("w", 3, True), ("dy", 4, True),
                                             ("w", 4, True)])
def test_bd_non_finite(where, R, taken):
    """An inf in grad_output times a missing tap's zero weight (an odd kernel's parity) would
    be NaN where torch adds no such product: the other kernels take it. An inf weight times
    grad_output's padding is NaN in every kernel, repaired after (conv.cpp)."""
    x, w, b, dy, stride, pad, dil, groups = make((1, 32, 8, 32, 4, R, R, 2, (1, 1, 1, 1), 1, 1),
                                                 np.float32, seed=14)
    (dy if where == "dy" else w)[0, 0, 0, 0] = np.inf
    before = _C._direct_calls()
    got = _C.conv2d_backward(dy, x, w, stride, pad, dil, groups, [True, False, False])[0]
    assert (_C._direct_calls() > before) == taken
    ref = ref_grad_input(x, w, dy, stride, pad, dil)
    assert np.isinf(ref).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    ok = np.isfinite(ref)
    assert_close(got[ok], ref[ok], TOL[np.float32], "finite values")


BD_GATE = [
    ((2, 64, 32, 32, 128, 4, 4, 2, (1, 1, 1, 1), 1, 1), True),   # DCGAN 128 -> 64
    ((2, 32, 32, 32, 64, 4, 4, 2, (1, 1, 1, 1), 1, 1), True),
    ((2, 128, 32, 32, 64, 4, 4, 2, (1, 1, 1, 1), 1, 1), False),  # 128 channels
    ((2, 64, 16, 16, 128, 4, 4, 2, (1, 1, 1, 1), 1, 1), False),  # 16 columns
    ((2, 64, 32, 32, 64, 3, 3, 2, (1, 1, 1, 1), 1, 1), False),   # odd kernel
    ((2, 64, 32, 32, 64, 2, 2, 2, (0, 0, 0, 0), 1, 1), False),   # 2x2
    # stride 1: the forward's gate on the flipped problem (dx's channels <- grad_output's)
    ((2, 16, 14, 14, 48, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),    # GoogLeNet 4a's 16 <- 48
    ((1, 32, 28, 28, 96, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),    # 3b's 32 <- 96 (2400 values)
    ((2, 128, 14, 14, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), True),   # 400 values, 128 channels
    ((2, 32, 16, 16, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),   # Winograd's aligned 16x16
    ((2, 48, 7, 7, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),    # 3200 values at 7x7
    ((2, 16, 14, 14, 48, 3, 3, 1, (1, 1, 1, 1), 1, 1), False),   # 3x3
    ((2, 32, 14, 14, 256, 1, 1, 1, (0, 0, 0, 0), 1, 1), False),  # 1x1 (the forward's would)
]


@pytest.mark.skipif(not AVX512, reason="the direct kernel is AVX-512's")
@pytest.mark.parametrize("shape, taken", BD_GATE)
def test_bd_auto_gate(shape, taken):
    check_gate(shape, taken, _C._set_direct_bd, grad_input)
