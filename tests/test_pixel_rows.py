"""The GEMM with output pixels as the register tile's rows (csrc/conv/conv_gemm.cpp,
gemm_pixel_rows) against torch and against the other orientation.

In auto mode it serves ungrouped forwards and backward-data of one stride phase with few
output pixels (kernels with taps at up to 432, 1x1 at up to 144 with a large enough filter:
inference at small batches on 7x7 and 14x14 planes), and any number of pixels with at most
64 output channels and 1024+ reduction values of several taps (5x5 layers' backward-data to
few channels); these tests force it on (`_C._set_pixel_rows("on")`) so that a hypothesis
sweep of small shapes covers its paths: the im2col read in place through row pointers
(several taps: ukr_ind, the last pixel repeated to a whole panel) or packed (1x1), pixel
panels of 6 (8 with AVX-512's fp32 tile) with ragged ends, channel panels of 16 (or 32 with AVX-512;
AVX2's 16-column tile on AVX-512 where the wide one would leave many columns idle) with
partial last panels, filter rows packed by 8x8 transposes (contiguous
runs: whole forward rows, a backward-data's taps of one output channel), by row copies (1x1
backward-data) and value by value (strided filters, float64, the scalar build), reduction
blocks (more than 256 values), strides, dilation, asymmetric padding, several images, and
the bias / activation epilogue with the pre-activation. Panels skip the taps that read only
zero padding (ukr_box, pixels grouped by their taps' ranges: plan_pixels); the sweep checks
that skipping them (`_C._set_tap_skip`) changes no result bit.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pyconv
from pyconv import _C
from test_conv_kernels import (ISAS, TOL, assert_close, check_fused, make, run_pyconv,
                               torch_ref)


@pytest.fixture(autouse=True)
def _restore():
    isa, nt = _C.isa(), pyconv.get_num_threads()
    _C._set_direct("off")  # (its auto gate takes some of these forwards first)
    _C._set_direct_bd("off")  # (and some of these backward-data)
    yield
    _C._set_direct("auto")
    _C._set_direct_bd("auto")
    _C._set_pixel_rows("auto")
    _C._set_tap_skip("auto")
    _C._set_winograd("auto")
    _C.set_isa(isa)
    pyconv.set_num_threads(nt)


def _six_rows():
    """A 6-row tile (AVX2's, or the portable one): the tests whose expected counts and
    orientation differences are worked out for panels of 6 pixels run on it."""
    _C.set_isa("avx2" if "avx2" in ISAS else "scalar")
    assert _C._gemm_tile("float32")[0] == 6


def _run(mode, args):
    _C._set_pixel_rows(mode)
    return run_pyconv(*args)


@given(N=st.integers(0, 3), C=st.integers(1, 40), K=st.integers(1, 40),
       H=st.integers(1, 11), W=st.integers(1, 11),
       R=st.integers(1, 5), S=st.integers(1, 5),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       pad=st.tuples(*[st.integers(0, 3)] * 4),
       dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       strided_w=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]),
       isa=st.sampled_from(ISAS), threads=st.sampled_from([1, 2, 3]))
def test_sweep(N, C, K, H, W, R, S, stride, pad, dil, strided_w, dtype, isa, threads):
    if H + pad[0] + pad[1] < dil[0] * (R - 1) + 1 or W + pad[2] + pad[3] < dil[1] * (S - 1) + 1:
        return  # no output: rejected by the op (covered by the conv2d tests)
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    x, w, b, dy, *rest = make((N, C, H, W, K, R, S, stride, pad, dil, 1), dtype,
                              seed=N + C + K + H + W)
    if strided_w:  # a filter whose rows are not contiguous: packed value by value
        w = np.asfortranarray(w)
    args = (x, w, b, dy, *rest)
    ref = torch_ref(*args)
    _C._set_tap_skip("on")  # (auto: not for a single panel of channels)
    got = _run("on", args)
    for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[dtype], f"{name} {isa} {threads}")
    # Every tap computed: the skipped products were exact zeros, the rest in the same order.
    _C._set_tap_skip("off")
    for g, a, name in zip(_run("on", args), got[:2], ("forward", "grad_input")):
        np.testing.assert_array_equal(g, a, err_msg=f"{name} {isa} {threads} without skipping")


# Pixel counts around the row panels (6, or 8 for AVX-512 fp32) and channel counts around
# the 16- or 32-column panels, one and several reduction blocks (C * R * S = 36, 576, 1296):
# where no panel of either orientation has 1 or 2 ragged rows (whose reduction pairs its
# steps), both add the same products in the same order, so they agree bitwise.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("N, H, W, C, K", [
    (1, 3, 4, 4, 16), (1, 4, 6, 64, 15), (2, 3, 5, 64, 35), (1, 5, 7, 144, 64), (3, 2, 5, 4, 48),
    (1, 6, 6, 144, 21)])
def test_orientations_agree_bitwise(isa, N, H, W, C, K):
    _C.set_isa(isa)
    args = make((N, C, H, W, K, 3, 3, 1, (1, 1, 1, 1), 1, 1), np.float32, seed=3)
    pixels, mr = N * H * W, _C._gemm_tile("float32")[0]
    assert pixels % mr not in (1, 2) and K % mr not in (1, 2) and C % mr not in (1, 2)
    on, off = _run("on", args)[:2], _run("off", args)[:2]
    for a, b, name in zip(on, off, ("forward", "grad_input")):
        assert np.array_equal(a, b), name
    for g, r in zip(on, torch_ref(*args)):
        assert_close(g, r, TOL[np.float32], "against torch")


@pytest.mark.parametrize("shape", [(1, 64, 7, 7, 48, 3, 3, 1, (1, 1, 1, 1), 1, 1),
                                   (2, 20, 5, 5, 100, 1, 1, 1, (0, 0, 0, 0), 1, 1),
                                   (1, 300, 4, 4, 40, 3, 3, 2, (1, 1, 1, 1), 1, 1),
                                   (21, 16, 11, 13, 40, 3, 3, 1, (1, 1, 1, 1), 1, 1),
                                   (9, 24, 12, 14, 40, 5, 5, 1, (2, 2, 2, 2), 1, 1),
                                   (2, 96, 14, 14, 48, 5, 5, 1, (2, 2, 2, 2), 1, 1),
                                   (2, 64, 13, 13, 48, 1, 1, 1, (0, 0, 0, 0), 1, 1)])
def test_threads_bitwise(shape):
    """Tasks split the output channels by the thread count, and the pixels into blocks of
    144 to 1152 (3003 and 1512 pixels: 1 thread takes the largest blocks, a ragged last one,
    3 threads smaller ones), few blocks into as many as spread best over the threads (392
    pixels: 2, 2 and 3 blocks for 1, 2 and 3 threads; 338 of a 1x1, its last panel of 2
    rows); each value is reduced by one task in one order."""
    args = make(shape, np.float32, seed=1)
    outs = []
    for nt in (1, 2, 3):
        pyconv.set_num_threads(nt)
        outs.append(_run("on", args)[:2])
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert np.array_equal(a, b)
    for g, r in zip(outs[0], torch_ref(*args)):
        assert_close(g, r, TOL[np.float32], "against torch")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("act", ["relu", "gelu", "sigmoid"])
@pytest.mark.parametrize("shape", [(1, 40, 7, 7, 33, 3, 3, 1, (1, 1, 1, 1), 1, 1),
                                   (2, 300, 3, 3, 16, 1, 1, 1, (0, 0, 0, 0), 1, 1)])
def test_fused_epilogue(isa, act, shape):
    """Bias, pre-activation and activation on the stored tiles (one and two reduction
    blocks)."""
    _C.set_isa(isa)
    _C._set_pixel_rows("on")
    check_fused(shape, act)


def test_wide_fma_gain_is_measured():
    """The flops of a 512-bit FMA over a 256-bit one, timed once: about 1 where 512-bit
    operations run as two halves (Zen 4), about 2 with 512-bit FMA pipes; 1 without AVX-512."""
    gain = _C._wide_fma_gain()
    if _C.best_isa() == "avx512":
        assert 0.7 < gain < 2.6
    else:
        assert gain == 1.0


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("channels", [16, 48, 144])
def test_tile_by_the_columns_it_fills(which, channels):
    """On AVX-512 a pixel-rows GEMM runs on the tile of least padded work: 48 and 144
    channels fill the 8 x 48 tile's panels where the 8 x 32 tile's last one is a third or
    half empty; 16 channels the 8 x 16 tile (pixel rows only: the other drivers of
    ukernel_for_shape take AVX2's 6x16 tile where its work, times the measured gain of
    512-bit FMAs, at least 1.25, is less than the 8 x 32 tile's); 64 and 96 keep the 8 x 32
    tile. Each is bitwise the other orientation's result (no ragged 1- or 2-row panel on
    either side), the same bits as the AVX2 build's, and matches torch on every ISA."""
    shape = (1, channels, 14, 14, channels, 5, 5, 1, (2, 2, 2, 2), 1, 1)  # 196 pixels
    gain = max(1.25, _C._wide_fma_gain())
    if _C.best_isa() == "avx512":
        _C.set_isa("avx512")
        want = (8, 16) if channels == 16 else (8, 48)
        assert _C._gemm_tile("float32", 196, channels, True)[:2] == want
        narrow = gain * 198 * 16 < 200 * 32
        want = ((6, 16) if narrow else (8, 32)) if channels == 16 else (8, 48)
        assert _C._gemm_tile("float32", 196, channels)[:2] == want
        for cols in (64, 96):
            for pixel_rows in (False, True):
                assert _C._gemm_tile("float32", 196, cols, pixel_rows)[:2] == (8, 32)
        assert _C._gemm_tile("float64", 196, 48)[1] == 16  # (fp64 keeps its own tile)
    args = make(shape, np.float32, seed=7)
    got = {}
    for isa in ISAS:
        _C.set_isa(isa)
        got[isa] = _run("on", args)[which]
        assert_close(got[isa], torch_ref(*args)[which], TOL[np.float32], f"{isa} against torch")
        _C._set_winograd("off")
        assert np.array_equal(got[isa], _run("off", args)[which]), f"{isa} orientations"
        _C._set_winograd("auto")
    if "avx512" in got:
        assert np.array_equal(got["avx512"], got["avx2"])


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("N, H, W, C, K, R", [
    (2, 7, 7, 40, 48, 5),     # 98 pixels: 12 panels and a 2-row one; 1000 reduction values
    (1, 5, 9, 300, 144, 3),   # 45 pixels (a 5-row panel), three 48-column panels, 2700 values
    (3, 4, 5, 16, 47, 1),     # a 1x1 layer (packed pixels), 47 channels in one panel
    (1, 11, 13, 64, 140, 3),  # 143 pixels, 140 channels: three panels, the last ragged
    (2, 12, 12, 32, 48, 3),   # 144 pixels an image: the weight gradient's taps as rows
    (2, 7, 7, 40, 16, 5),     # the 8 x 16 tile: 98 pixels, 1000 values
    (1, 5, 9, 300, 13, 3),    # ... 13 channels in its one panel, 2700 values
    (9, 7, 7, 48, 16, 5)])    # ... 9 images: panels of one tap range (plan_pixels' blocks)
def test_wide_tile_edges(threads, N, H, W, C, K, R):
    """AVX-512's 8 x 48 and 8 x 16 tiles at their edges: ragged pixel panels (1-7 rows),
    ragged channel panels, several reduction blocks, padding skipped or not, forward,
    backward-data and the taps-as-rows weight gradient: against torch, and the same bits
    for any thread count."""
    if _C.best_isa() != "avx512":
        pytest.skip("needs AVX-512")  # (the tile exists only there)
    _C.set_isa("avx512")
    pad = (R // 2,) * 4
    args = make((N, C, H, W, K, R, R, 1, pad, 1, 1), np.float32, seed=K)
    ref = torch_ref(*args)
    pyconv.set_num_threads(1)
    one = _run("on", args)
    pyconv.set_num_threads(threads)
    for skip in ("on", "off"):
        _C._set_tap_skip(skip)
        got = _run("on", args)
        for g, o, r, name in zip(got, one, ref, ("forward", "grad_input", "grad_weight")):
            assert_close(g, r, TOL[np.float32], f"{name} skip {skip}")
            if skip == "on":
                assert np.array_equal(g, o), f"{name} {threads} threads"


def test_auto_takes_it_for_a_batch_one_7x7_layer():
    """The auto gate (a 512 -> 512 3x3 layer at 7x7, batch 1: 49 pixels, a 9 MB filter)
    gives what the forced kernel gives, to the bit."""
    args = make((1, 512, 7, 7, 512, 3, 3, 1, (1, 1, 1, 1), 1, 1), np.float32, seed=2)
    auto, on = _run("auto", args)[:2], _run("on", args)[:2]
    for a, b in zip(auto, on):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape, mode", [
    ((1, 256, 7, 7, 128, 1, 1, 1, (0, 0, 0, 0), 1, 1), "auto"),  # 49 pixels: auto takes it
    ((1, 200, 5, 7, 300, 1, 1, 1, (0, 0, 0, 0), 1, 1), "on")])   # ragged panel, 2 blocks
def test_one_by_one_backward_data(isa, shape, mode):
    """A 1x1 layer's input gradient at few pixels: filter rows packed by row copies, one
    walk along each row for all of a task's channel panels (ragged last panel, reduction
    blocks); auto is bitwise the forced kernel and matches torch."""
    _C.set_isa(isa)
    args = make(shape, np.float32, seed=5)
    got, on = _run(mode, args)[1], _run("on", args)[1]
    assert np.array_equal(got, on)
    assert_close(got, torch_ref(*args)[1], TOL[np.float32], "against torch")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape, which, channels", [
    ((4, 16, 14, 14, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 1, 16),  # backward-data 128 -> 16
    ((4, 64, 14, 14, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, 16),   # forward 64 -> 16
    ((3, 70, 9, 11, 48, 4, 4, 1, (1, 2, 2, 1), 1, 1), 0, None)])  # 297 pixels, ragged panels
def test_auto_takes_it_for_few_channels_and_long_reductions(isa, shape, which, channels):
    """Many pixels, at most 64 channels, 1024+ reduction values: the auto gate (ahead of
    Winograd for these 5x5 layers at 196 tiles) gives what the forced kernel gives, to the
    bit, and what torch gives; unless the channels, the columns of pixel rows' tile, would
    fill them worse than the rows of the instruction set's tile (not AVX2's 6x16 tile on
    AVX-512: it has 6 rows): then what the kernels without pixel rows give (Winograd, for
    this 5x5 layer). (The 297 pixels pass the few-pixels gate in any case.)"""
    _C.set_isa(isa)
    mr = _C._gemm_tile("float32")[0]
    takes = channels is None
    if channels is not None:
        tmr, nr, _ = _C._gemm_tile("float32", 144, channels, True)
        takes = tmr == mr and -(-channels // nr) * nr <= -(-channels // mr) * mr
    args = make(shape, np.float32, seed=4)
    auto = _run("auto", args)[which]
    if takes:
        _C._set_winograd("off")  # (tried first: "on" alone does not pass it)
    forced = _run("on" if takes else "off", args)[which]
    assert np.array_equal(auto, forced)
    assert_close(auto, torch_ref(*args)[which], TOL[np.float32], "against torch")


@pytest.mark.parametrize("shape, which, takes", [
    ((4, 48, 7, 7, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, True),   # 5x5 at 7x7, batch 4: 196 pixels
    ((1, 32, 10, 10, 96, 3, 3, 1, (1, 1, 1, 1), 1, 1), 1, True),  # backward-data, 864 values
    ((2, 64, 14, 14, 128, 3, 3, 2, (1, 1, 1, 1), 1, 1), 0, True),  # stride 2 to 7x7
    ((1, 16, 12, 12, 32, 3, 3, 1, (1, 1, 1, 1), 1, 1), 0, False),  # 144 reduction values
    ((1, 256, 14, 14, 128, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, False),  # 1x1 at 196 pixels
    ((1, 64, 7, 7, 1024, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, False),  # 1x1, 64 values
    ((4, 128, 5, 5, 2054, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, False),  # 0.91 of the work, 1 MiB
    ((4, 256, 5, 5, 1034, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, True),  # the same, 256 values
    ((8, 2048, 7, 7, 512, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, True),  # 1x1, 392 pixels, 4 MiB
    ((8, 512, 7, 7, 2048, 1, 1, 1, (0, 0, 0, 0), 1, 1), 1, True),  # ... its backward-data
    ((9, 2048, 7, 7, 512, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, False),  # ... 441 pixels
    ((8, 1024, 7, 7, 256, 1, 1, 1, (0, 0, 0, 0), 1, 1), 0, False),  # ... 1 MiB
    ((16, 64, 14, 14, 62, 3, 3, 2, (1, 1, 1, 1), 1, 1), 0, True),  # stride 2, rows of 7: 784 pixels
    ((12, 32, 24, 24, 38, 3, 3, 2, (1, 1, 1, 1), 1, 1), 0, True),  # ... rows of 12
    ((12, 32, 26, 26, 38, 3, 3, 2, (1, 1, 1, 1), 1, 1), 0, False),  # ... rows of 13
    ((16, 24, 14, 14, 62, 3, 3, 2, (1, 1, 1, 1), 1, 1), 0, False),  # ... 216 reduction values
    ((40, 62, 14, 1, 128, 3, 3, (1, 3), (1, 1, 1, 1), 1, 1), 1, False),  # backward-data (one
                                                                       # stride phase): 560 pixels
])
def test_auto_takes_it_for_kernels_with_taps_at_few_pixels(shape, which, takes):
    """Up to 432 pixels, a kernel of several taps (the im2col read in place) and 256+
    reduction values; 1x1 layers at up to 144 pixels with 128+ values (256+ where only a
    1 MiB filter lets them in), at up to 432 with a filter of 4 MiB; strided forwards onto
    rows of up to 12 outputs at any number of pixels: auto is bitwise the kernel the gate
    picks (the two orientations differ here: M % 6 leaves a ragged panel to the other), and
    matches torch."""
    _six_rows()
    args = make(shape, np.float32, seed=6)
    auto, on, off = (_run(m, args)[which] for m in ("auto", "on", "off"))
    assert not np.array_equal(on, off)
    assert np.array_equal(auto, on if takes else off)
    assert_close(auto, torch_ref(*args)[which], TOL[np.float32], "against torch")


@pytest.mark.parametrize("shape, takes", [
    ((4, 96, 24, 24, 40, 7, 7, 1, (0, 0, 0, 0), 1, 1), True),   # 2304 pixels, 1.78x padding
    ((4, 96, 24, 24, 24, 9, 9, 1, (0, 0, 0, 0), 1, 1), True),   # 9x9: 2.25x padding
    ((4, 96, 24, 24, 40, 7, 7, 1, (3, 3, 3, 3), 1, 1), False),  # "same": no padding waste
])
def test_auto_takes_padding_heavy_backward_data(shape, takes):
    """Backward-data of kernels past 5x5 whose im2col of grad_output is largely padding, at
    any number of pixels and channels (here past the other gates' 1728 and 64): auto runs
    pixel rows, which skip the padding's taps (counted), and
    matches torch; a "same" layer keeps the other kernels (none skipped, where pixel rows
    would skip its border's)."""
    args = make(shape, np.float32, seed=9)
    before = _C._taps_skipped()
    auto = _run("auto", args)[1]
    assert (_C._taps_skipped() > before) == takes
    before = _C._taps_skipped()
    _run("on", args)
    assert _C._taps_skipped() > before
    assert_close(auto, torch_ref(*args)[1], TOL[np.float32], "against torch")


@pytest.mark.parametrize("shape, which, takes", [
    ((16, 64, 7, 7, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, True),    # 5x5 "same" at 7x7: 69%
    ((16, 128, 7, 7, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1), 1, True),    # its backward-data, 128 inputs
    ((8, 64, 9, 9, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, True),     # 9x9: 75%, Winograd's rows of 5
    ((4, 32, 14, 14, 128, 7, 7, 1, (3, 3, 3, 3), 1, 1), 1, True),   # 7x7 at 14x14: 77%
    ((16, 64, 8, 8, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, False),   # 8x8: Winograd's rows of 4
    ((16, 64, 7, 7, 127, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, False),   # 127 outputs
    ((8, 64, 12, 12, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, False),  # 12x12: 81% landed
    ((3, 256, 14, 14, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, True),  # 14x14, 84%: 256 inputs
    ((3, 128, 14, 14, 128, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, False),  # ... 128
    ((6, 256, 9, 9, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, True),     # 64 outputs of 256 inputs
    ((6, 64, 9, 9, 256, 5, 5, 1, (2, 2, 2, 2), 1, 1), 1, True),     # ... its backward-data
    ((6, 192, 9, 9, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, False),    # ... of 192
    ((6, 256, 9, 9, 65, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0, False),    # 65: 5 panels of 16 for 66 rows
    ((16, 64, 7, 7, 128, 3, 3, 1, (1, 1, 1, 1), 1, 1), 0, False),   # 3x3
])
def test_auto_takes_it_for_padding_heavy_kernels_past_3x3(shape, which, takes):
    """Stride-1 5x5 and larger kernels whose im2col reads padding at over a fifth of its
    (pixel, tap) pairs with 128+ output channels (the tile's columns here), or over 16% with
    64+ outputs and 256+ input channels, and a KC block of reduction values: auto runs pixel
    rows at any number of pixels (here 486-3136) when the channels fill the tile's columns no
    worse than its rows (on AVX2's 6 x 16, 65 do not: 80 columns against 66 rows), ahead of
    Winograd's 5x5 except on planes of whole tile rows of 4 (8x8), skipping the padding's taps
    (counted); bitwise what pixel rows forced on give, and what torch gives."""
    _six_rows()
    args = make(shape, np.float32, seed=10)
    before = _C._taps_skipped()
    auto = _direction(which, args)
    assert (_C._taps_skipped() > before) == takes
    if takes:
        _C._set_winograd("off")
    _C._set_pixel_rows("on" if takes else "off")
    assert np.array_equal(auto, _direction(which, args))
    assert_close(auto, torch_ref(*args)[which], TOL[np.float32], "against torch")


def _direction(which, args):
    x, w, b, dy, stride, pad, dil, groups = args
    if which == 0:
        return _C.conv2d_forward(x, w, b, stride, pad, dil, groups)
    return _C.conv2d_backward(dy, x, w, stride, pad, dil, groups, [True, False, False])[0]


@pytest.mark.parametrize("which, shape, skipped", [
    # 5x5 "same" at 7x7, batch 4: grouped by their taps' ranges, the 33 panels compute 626 of
    # their 825 (panel, tap) pairs (in row-major order they would compute 750).
    (0, (4, 32, 7, 7, 48, 5, 5, 1, (2, 2, 2, 2), 1, 1), 825 - 626),
    # Its backward-data (the same taps, flipped), and 3x3 at 7x7, batch 1: 81 -> 70.
    (1, (4, 48, 7, 7, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1), 825 - 626),
    (0, (1, 64, 7, 7, 64, 3, 3, 1, (1, 1, 1, 1), 1, 1), 81 - 70),
    # No padding, nothing to skip; and one panel of output channels: auto does not skip,
    # unless the batch fills a block of as many images as a panel has rows (6 here): then
    # the 384 padding taps of an image's pixels, per panel row.
    (0, (2, 32, 9, 9, 32, 3, 3, 1, (0, 0, 0, 0), 1, 1), 0),
    (0, (4, 32, 7, 7, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), 0),
    (0, (6, 32, 7, 7, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), 384)])
def test_skips_the_taps_on_padding(which, shape, skipped):
    _six_rows()  # (the counts below are for panels of 6 pixels)
    args = make(shape, np.float32, seed=8)
    _C._set_pixel_rows("on")
    before = _C._taps_skipped()
    on = _direction(which, args)
    assert _C._taps_skipped() - before == skipped
    _C._set_tap_skip("off")
    before = _C._taps_skipped()
    assert np.array_equal(_direction(which, args), on)
    assert _C._taps_skipped() == before
    assert_close(on, torch_ref(*args)[which], TOL[np.float32], "against torch")


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("N", [12, 13])
def test_skipping_in_blocks_of_images(which, N):
    """Pixels grouped by their taps' ranges within blocks of as many images as a panel has
    rows (a panel of corner pixels reads that many images, not the whole batch): whole
    blocks give whole panels of one range each, a 5x5 "same" kernel at 7x7 skipping the
    384 padding taps of an image's 49 pixels per panel row; a last, partial block of one
    image mixes them."""
    _six_rows()
    shape = (N, 32, 7, 7, 48, 5, 5, 1, (2, 2, 2, 2), 1, 1)
    if which == 1:
        shape = (N, 48, 7, 7, 32, 5, 5, 1, (2, 2, 2, 2), 1, 1)
    args = make(shape, np.float32, seed=N)
    _C._set_pixel_rows("on")
    before = _C._taps_skipped()
    on = _direction(which, args)
    skipped = _C._taps_skipped() - before
    assert skipped == 384 * 2 if N == 12 else 384 * 2 < skipped < 384 * 3
    _C._set_tap_skip("off")
    assert np.array_equal(_direction(which, args), on)
    assert_close(on, torch_ref(*args)[which], TOL[np.float32], "against torch")


def test_backward_data_one_phase_of_a_stride():
    """dx one column wide under a column stride of 3: one stride phase, taken by pixel rows,
    whose taps read dy columns (pad - s) / 3 apart: the ranges of taps to skip are in dy's
    columns too."""
    _C._set_pixel_rows("on")
    _C._set_tap_skip("on")
    for stride, pad in (((1, 3), (3, 3, 3, 3)), ((2, 3), (1, 2, 3, 0)), ((3, 1), (2, 2, 0, 1))):
        shape = (2, 3, 4, 1, 5, 4, 3, stride, pad, 1, 1)
        if stride[0] == 3:
            shape = (2, 3, 1, 5, 5, 3, 4, stride, pad, 1, 1)
        args = make(shape, np.float64, seed=9)
        assert_close(_direction(1, args), torch_ref(*args)[1], TOL[np.float64], f"{stride} {pad}")


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("batch", [3, 24])
def test_non_finite_filter_reaches_the_padding(which, batch):
    """An inf in the filter times a padding zero is NaN: the products skipped on padding are
    computed after all when the filter is not finite, so that results still equal those of
    computing every tap; NaN where torch has it (in the backward-data, whose torch adds no
    product on dy's padding, after conv.cpp's repair_padding_products).
    Batch 24: whole blocks of MR images (6 or 8), whose panels read no padding, run on the
    unpadded source first (run_pixel_rows), then again on the padded one."""
    x, w, b, dy, *rest = make((batch, 8, 7, 7, 16, 5, 5, 1, (2, 2, 2, 2), 1, 1), np.float32,
                              seed=10)
    w[3, 2, 0, 4] = np.inf  # a corner tap: padding for the top and right edges' pixels
    w[5, 1, 2, 2] = np.nan
    args = (x, w, b, dy, *rest)
    _C._set_pixel_rows("on")
    _C._set_tap_skip("on")
    got = _direction(which, args)
    _C._set_tap_skip("off")
    np.testing.assert_array_equal(got, _direction(which, args))
    ref = torch_ref(*args)[which]
    assert np.isnan(ref).any() and not np.isnan(ref).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    ok = np.isfinite(ref)
    assert_close(got[ok], ref[ok], TOL[np.float32], "the finite values")


def test_non_finite_weight_on_a_tap_no_pixel_reads():
    """One 1x1 image, padding 4, stride 2: the 3x3 kernel's middle row and column fall on
    padding for every output pixel. An inf there is NaN over its whole output channel
    (0 * inf), though no sum ever sees the weight when the taps on padding are skipped."""
    args = make((2, 3, 1, 1, 4, 3, 3, 2, (4, 4, 4, 4), 1, 1), np.float32, seed=11)
    args[1][2, 1, 1, 1] = np.inf
    _C._set_pixel_rows("on")
    _C._set_tap_skip("on")
    got, ref = _direction(0, args), torch_ref(*args)[0]
    assert np.isnan(ref[:, 2]).all() and not np.isnan(ref[:, [0, 1, 3]]).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = np.isfinite(ref)
    assert_close(got[ok], ref[ok], TOL[np.float32], "the finite values")


def test_mode_errors():
    with pytest.raises(ValueError, match="_set_tap_skip"):
        _C._set_tap_skip("sometimes")
    with pytest.raises(ValueError, match="_set_pixel_rows"):
        _C._set_pixel_rows("sometimes")
