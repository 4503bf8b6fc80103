"""The direct kernel for grouped stride-1 convolutions with at most 32 channels per group
(csrc/conv/conv_grouped*.cpp: float, AVX2; its forward kernel, which also runs the
backward-data, in 16-column vectors and pairs of output rows with AVX-512; the AVX-512
weight gradient of 3x3 filters with output channels as the lanes) against torch,
forward and backward-data, over a hypothesis sweep of groups, channels per group around the
4- and 6-channel forward blocks and the 3-channel weight-gradient block (remainders of 1 and
2), kernel sizes 1..7 (3x3 has its own unrolled blocks), padding (asymmetric), heights odd
and even, widths around the 8- and 16-column vectors (a last half vector) and the unrolled
1-4-vector rows,
empty batches, strided views, activations, and thread counts (bitwise).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import pyconv
from pyconv import _C
from test_conv_kernels import (ISAS, TOL, _restore, assert_close,  # noqa: F401 (fixture)
                               assert_threads_bitwise, make, run_pyconv, torch_ref)


@given(N=st.integers(0, 3), G=st.integers(2, 5), Cg=st.integers(1, 17), Kg=st.integers(1, 17),
       H=st.integers(1, 12), W=st.integers(1, 34), R=st.integers(1, 7), S=st.integers(1, 7),
       pad=st.tuples(*[st.integers(0, 3)] * 4), isa=st.sampled_from(ISAS),
       threads=st.sampled_from([1, 2, 3]))
def test_sweep(N, G, Cg, Kg, H, W, R, S, pad, isa, threads):
    if H + pad[0] + pad[1] < R or W + pad[2] + pad[3] < S:
        return  # no output: rejected by the op (covered by the conv2d tests)
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    shape = (N, G * Cg, H, W, G * Kg, R, S, 1, pad, 1, G)
    args = make(shape, np.float32, seed=N + G + Cg + Kg + H + W + R + S)
    ref = torch_ref(*args)
    for g, r, name in zip(run_pyconv(*args), ref, ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[np.float32], f"{name} {shape} {isa}")


# Ungrouped layers with up to 8 source channels (from 2 images) take the same direct
# kernel: the forward for any number of outputs (blocks of 6 and 4 past the 32 a group
# allows; one image: two tasks of half the outputs from 16), the backward-data (source:
# grad_output) for up to 32 outputs; bias and activation in the forward.
@given(N=st.integers(1, 3), C=st.integers(1, 8), K=st.integers(1, 70), H=st.integers(1, 20),
       W=st.integers(1, 40), R=st.integers(1, 7), S=st.integers(1, 7),
       pad=st.tuples(*[st.integers(0, 3)] * 4), isa=st.sampled_from(ISAS),
       threads=st.sampled_from([1, 2, 3]))
def test_ungrouped_few_channels(N, C, K, H, W, R, S, pad, isa, threads):
    if H + pad[0] + pad[1] < R or W + pad[2] + pad[3] < S:
        return  # no output
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    shape = (N, C, H, W, K, R, S, 1, pad, 1, 1)
    args = make(shape, np.float32, seed=N + C + K + H + W + R + S)
    ref = torch_ref(*args)
    for g, r, name in zip(run_pyconv(*args), ref, ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[np.float32], f"{name} {shape} {isa}")
    x, w, b = args[:3]
    y, z = _C.conv2d_forward(x, w, b, (1, 1), pad, (1, 1), 1, _C.ACTIVATIONS["gelu"], 0.0, True)
    assert_close(z, ref[0], TOL[np.float32], "preact")
    assert_close(y, F.gelu(torch.tensor(ref[0])).numpy(), TOL[np.float32], "gelu")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(1, 3, 20, 31, 64, 7, 7, 1, (3, 3, 3, 3), 1, 1),
                                   (1, 1, 12, 40, 16, 3, 3, 1, (1, 0, 1, 2), 1, 1),
                                   (1, 8, 9, 9, 18, 5, 5, 1, (2, 2, 2, 2), 1, 1)], ids=str)
def test_ungrouped_one_image_halves(shape, isa):
    """One image: two tasks of half the output channels (9 each: a block of 6 and one of
    3), each reading the whole source; against torch, bitwise over threads."""
    _C.set_isa(isa)
    args = make(shape, np.float32, seed=8)
    out = assert_threads_bitwise(args, 1)
    assert_close(out[0], torch_ref(*args)[0], TOL[np.float32], f"forward {isa}")


# The AVX-512 weight gradient (3x3 filters; output channels as the 16 lanes of a vector,
# gv = 1, 2 or 4 groups per vector where Kg*gv fills whole vectors: Kg 16 and 32 (two
# vectors per block), 8 and 24, 4 and 12): source channels around its 3-channel block,
# widths 1..34, padded images of 34x34 past one pass of images (nb = 1), strided views.
@given(N=st.integers(0, 3), gv_kg=st.sampled_from([(1, 16), (1, 32), (2, 8), (2, 24), (4, 4),
                                                   (4, 12)]),
       mult=st.integers(1, 2), Cg=st.integers(1, 17), H=st.integers(1, 34),
       W=st.integers(1, 34), pad=st.tuples(*[st.integers(0, 2)] * 4), strided=st.booleans(),
       threads=st.sampled_from([1, 2, 3]))
def test_weight_lanes_sweep(N, gv_kg, mult, Cg, H, W, pad, strided, threads):
    if H + pad[0] + pad[1] < 3 or W + pad[2] + pad[3] < 3:
        return  # no output
    gv, Kg = gv_kg
    G = max(2, gv * mult)  # (one group is a plain convolution)
    isa = ISAS[-1]  # (the best: test_sweep covers the others)
    _C.set_isa(isa)
    pyconv.set_num_threads(threads)
    shape = (N, G * Cg, H, W, G * Kg, 3, 3, 1, pad, 1, G)
    x, w, b, dy, *conv = make(shape, np.float32, seed=N + G + Cg + Kg + H + W)
    ref = torch_ref(x, w, b, dy, *conv)[2]
    if strided:  # channels-last source, every other column of grad_output
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        dy = np.repeat(dy, 2, axis=3)[..., ::2]
    gw = _C.conv2d_backward(dy, x, w, *conv, [False, True, False])[1]
    assert_close(gw, ref, TOL[np.float32], f"grad_weight {shape} {isa} strided={strided}")


# AVX-512 with 16 or 32 outputs a group (3x3; forward, and backward-data with 16 or 32
# source channels a group): the output channels as the lanes, 16 at a time, each row in
# near-equal blocks of at most 16 pixels (widths 4..40: one block, or 2-3 uneven ones),
# the first and last source column of a block read as zeros on the padding (left and right
# padding 0 or 1; 2 takes the padded-copy kernel), rows off the plane as zeros. Against
# torch: views with row and channel strides (the kernel reads them in place) and
# channels-last ones (not unit column stride: the other kernel), bias, gelu with its
# pre-activation, 1-3 threads; bitwise the AVX2 kernel's results below.
@given(N=st.integers(0, 3), G=st.integers(2, 3), Cg=st.sampled_from([16, 17, 24, 32]),
       Kg=st.sampled_from([16, 32]), swap=st.booleans(), H=st.integers(1, 20),
       W=st.integers(2, 40), pad=st.tuples(st.integers(0, 2), st.integers(0, 2),
                                            st.integers(0, 2), st.integers(0, 2)),
       view=st.sampled_from(["dense", "window", "channels_last"]),
       threads=st.sampled_from([1, 2, 3]))
def test_lanes_sweep(N, G, Cg, Kg, swap, H, W, pad, view, threads):
    if H + pad[0] + pad[1] < 3 or W + pad[2] + pad[3] < 3:
        return  # no output
    if swap:  # (the backward-data's outputs are the forward's source channels)
        Cg, Kg = Kg, Cg
    shape = (N, G * Cg, H, W, G * Kg, 3, 3, 1, pad, 1, G)
    x, w, b, dy, *conv = make(shape, np.float32, seed=N + G + Cg + Kg + H + W)
    ref = torch_ref(x, w, b, dy, *conv)
    if view == "window":  # rows and channels strided, columns unit-stride
        xb = np.zeros((N, 2 * G * Cg, H + 3, W + 5), np.float32)
        xb[:, ::2, 1:H + 1, 2:W + 2] = x
        x = xb[:, ::2, 1:H + 1, 2:W + 2]
        dyb = np.zeros(dy.shape[:2] + (dy.shape[2] + 1, dy.shape[3] + 3), np.float32)
        dyb[:, :, 1:, 3:] = dy
        dy = dyb[:, :, 1:, 3:]
    elif view == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        dy = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for isa in ISAS[1:]:
        _C.set_isa(isa)
        pyconv.set_num_threads(threads)
        y, z = _C.conv2d_forward(x, w, b, *conv, _C.ACTIVATIONS["gelu"], 0.0, True)
        gi = _C.conv2d_backward(dy, x, w, *conv, [True, False, False])[0]
        assert_close(z, ref[0], TOL[np.float32], f"forward {shape} {isa} {view}")
        assert_close(y, F.gelu(torch.tensor(ref[0])).numpy(), TOL[np.float32], f"gelu {isa}")
        assert_close(gi, ref[1], TOL[np.float32], f"grad_input {shape} {isa} {view}")


# Shapes the lanes kernel takes (forward; backward-data where it lists "bd"): the same
# products in the same order as the AVX2 kernel, so the same bits; and an inf weight's NaN
# in the forward where its taps meet the padding, as torch's zeros give (the kernel
# multiplies them).
@pytest.mark.skipif("avx512" not in ISAS, reason="needs AVX-512")
@pytest.mark.parametrize("shape", [
    (2, 32, 9, 14, 32, 3, 3, 1, (1, 1, 1, 1), 1, 2),    # 16 -> 16, one block a row; bd
    (1, 72, 7, 33, 96, 3, 3, 1, (1, 1, 0, 0), 1, 3),    # 24 -> 32, rows of 31: 11+10+10
    (2, 64, 5, 40, 32, 3, 3, 1, (0, 1, 1, 0), 1, 2),    # 32 -> 16, right edge in the plane
    (1, 64, 6, 12, 64, 3, 3, 1, (1, 1, 1, 1), 1, 2),    # 32 -> 32; bd
    (3, 48, 4, 4, 48, 3, 3, 1, (1, 1, 1, 1), 1, 3),     # 16 -> 16, blocks of 4; bd
], ids=str)
def test_lanes_bitwise(shape):
    x, w, b, dy, *conv = make(shape, np.float32, seed=11)
    w[1, 2, 0, 0] = np.inf
    got = []
    for isa in ("avx2", "avx512"):
        _C.set_isa(isa)
        got.append((_C.conv2d_forward(x, w, b, *conv),
                    _C.conv2d_backward(dy, x, w, *conv, [True, False, False])[0]))
    for a, c in zip(*got):
        np.testing.assert_array_equal(a, c)
    ref = torch_ref(x, w, b, dy, *conv)[0]
    np.testing.assert_array_equal(np.isnan(got[1][0]), np.isnan(ref))


# ResNeXt-like groups (4, 8, 16 channels), the limit (32), and one past it (GEMM); output
# channels per group in every plan of forward blocks (grouped_direct_block: 10 = 6 + 4,
# 14 = 6 + 4 + 4, 20 = 6 + 6 + 4 + 4, 28 = 6 * 4 + 4; 9 and 23: blocks of 6, the last
# partly idle).
SHAPES = [(2, 32, 4, 9, 4), (2, 32, 8, 15, 8), (2, 8, 16, 14, 16), (1, 2, 32, 9, 32),
          (1, 2, 33, 7, 31), (2, 3, 8, 13, 10), (1, 2, 5, 9, 14), (1, 2, 12, 11, 20),
          (1, 2, 16, 10, 28), (2, 2, 7, 12, 9), (1, 2, 9, 10, 23),
          (2, 2, 16, 14, 16), (1, 3, 32, 7, 32)]  # (AVX-512: lanes, rows of 17 and 10)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_threads_bitwise(shape):
    N, G, Cg, H, Kg = shape
    args = make((N, G * Cg, H, H + 3, G * Kg, 3, 3, 1, (1, 1, 1, 1), 1, G), np.float32, seed=2)
    out = assert_threads_bitwise(args, 3)
    for g, r in zip(out, torch_ref(*args)[:3]):
        assert_close(g, r, TOL[np.float32], str(shape))


# The GEMM's weight gradient with the filter taps as the tile's rows, read in place, per
# group, where a group's outputs fill one tile width (16, or 32 on AVX-512; 8 on AVX2's
# 8 x 8 tile): past the direct kernels' 32 channels a group, 100+ output pixels an image,
# stride 1 and 2, padding, several images (chunks of the reduction), one image in chunks of
# pixels, taps not a multiple of the tile's rows; against torch and bitwise for 1-3 threads.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [
    (2, 80, 18, 17, 32, 3, 3, 1, (1, 1, 1, 1), 1, 2),   # 40 -> 16 a group, 306 pixels
    (3, 120, 35, 33, 48, 5, 5, 2, (2, 1, 2, 1), 1, 3),  # 5x5 stride 2, asymmetric padding
    (2, 68, 16, 20, 64, 7, 7, 1, (3, 3, 3, 3), 1, 2),   # 34 -> 32 a group (AVX-512's width)
    (3, 37, 12, 11, 8, 5, 5, 1, (2, 2, 2, 2), 1, 1),    # 37 -> 8: the 8 x 8 tile, 132 pixels
    (2, 66, 21, 21, 16, 3, 3, 2, (1, 0, 1, 0), 1, 2),   # 33 -> 8 a group, stride 2, 100 pixels
    (1, 16, 24, 90, 32, 3, 3, 1, (1, 1, 1, 1), 1, 1),   # one image, one task: 2 pixel chunks
    (1, 9, 47, 53, 8, 3, 3, 1, (1, 1, 1, 1), 1, 1),     # the same on the 8 x 8 tile
], ids=str)
def test_weight_gradient_taps_as_rows(shape, isa):
    _C.set_isa(isa)
    args = make(shape, np.float32, seed=7)
    out = assert_threads_bitwise(args, 3)
    for g, r, name in zip(out, torch_ref(*args)[:3], ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[np.float32], f"{name} {isa}")


# The direct kernels (4 groups of 8 -> 6) and the per-group split (2 groups of 32 -> 48).
@pytest.mark.parametrize("C, K, G", [(32, 24, 4), (64, 96, 2)])
def test_strided_views_and_activation(C, K, G):
    x, w, b, dy, stride, pad, dil, groups = make((2, C, 9, 12, K, 3, 3, 1, (1, 1, 1, 1), 1, G),
                                                 np.float32, seed=3)
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)
    xv = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    wv = np.ascontiguousarray(w.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    dyv = np.repeat(dy, 2, axis=3)[..., ::2]
    for g, r, what in zip(run_pyconv(xv, wv, b, dyv, stride, pad, dil, groups), ref,
                          ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, TOL[np.float32], what)
    y, z = _C.conv2d_forward(x, w, b, stride, pad, dil, groups, _C.ACTIVATIONS["silu"], 0.0, True)
    assert_close(z, ref[0], 1e-4, "preact")
    assert_close(y, F.silu(torch.tensor(ref[0])).numpy(), 1e-4, "silu")


def test_nonfinite_stays_local():
    """An inf in one group's input reaches only that group's outputs."""
    x, w, b, dy, stride, pad, dil, groups = make((1, 16, 6, 6, 16, 3, 3, 1, (1, 1, 1, 1), 1, 2),
                                                 np.float32, seed=4)
    x[0, 0, 2, 2] = np.inf
    y = _C.conv2d_forward(x, w, b, stride, pad, dil, groups)
    ref = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=1, groups=2).numpy()
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref))
    assert np.isfinite(y[:, 8:]).all()


@pytest.mark.parametrize("cg,kg", [(0, 3), (3, 0), (0, 0)])
def test_empty_groups(cg, kg):
    """Groups with no input or no output channels (all three passes): the output is the
    bias, the gradients zero or empty (torch's autograd refuses these shapes)."""
    x, w, b, dy, stride, pad, dil, groups = make((2, 2 * cg, 6, 7, 2 * kg, 3, 3, 1,
                                                  (1, 1, 1, 1), 1, 2), np.float32, seed=5)
    y, gi, gw, gb = run_pyconv(x, w, b, dy, stride, pad, dil, groups)
    assert y.shape == (2, 2 * kg, 6, 7) and gi.shape == x.shape and gw.shape == w.shape
    np.testing.assert_array_equal(y, np.broadcast_to(b[:, None, None], y.shape))
    np.testing.assert_array_equal(gi, np.zeros_like(x))
    assert_close(gb, dy.astype(np.float64).sum(axis=(0, 2, 3)), TOL[np.float32], "bias")


def test_padding_zeros_after_other_calls():
    # Each thread zeroes its padded-source buffer once per call and then copies only the
    # source rows of every (image, group) task: a call after one of another geometry (the
    # same scratch, full of that call's values) must still see zeros in its padding, in
    # the forward, backward-data and weight-gradient kernels alike.
    for threads in (1, 2):
        pyconv.set_num_threads(threads)
        big = make((3, 8, 30, 37, 8, 3, 3, 1, (0, 0, 0, 0), 1, 2), np.float32, seed=1)
        run_pyconv(*big)
        for pad in ((1, 1, 1, 1), (3, 0, 2, 1), (0, 2, 0, 3)):
            args = make((5, 12, 9, 14, 12, 3, 3, 1, pad, 1, 3), np.float32, seed=2)
            ref = torch_ref(*args)
            got = run_pyconv(*args)
            for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
                assert_close(g, r, TOL[np.float32], f"{name} pad={pad} threads={threads}")
            run_pyconv(*big)


# Groups of 32 channels or more on both sides at stride 1 run as one ungrouped convolution
# per group (csrc/conv/conv.cpp: views of the group's channels in, dense blocks copied into
# place out; auto from 192 output pixels or 6M multiply-adds a group, forced on here):
# dilation, asymmetric padding, kernels 1-5 (Winograd's 3x3 and 5x5, pixel rows, col2im and
# the GEMM take the groups), both dtypes, every ISA, 1-3 threads bitwise, against torch;
# conv_transpose2d (channels-last and strided views, the fused activation, auto:
# test_strided_views_and_activation).
@given(N=st.integers(0, 2), G=st.integers(2, 3), Cg=st.integers(32, 36), Kg=st.integers(32, 36),
       H=st.integers(1, 11), R=st.integers(1, 5), dil=st.integers(1, 2), pad=st.tuples(*[st.integers(0, 2)] * 4),
       dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS))
def test_split_groups(N, G, Cg, Kg, H, R, dil, pad, dtype, isa):
    W = H + 3
    if H + pad[0] + pad[1] < dil * (R - 1) + 1 or W + pad[2] + pad[3] < dil * (R - 1) + 1:
        return
    _C.set_isa(isa)
    _C._set_group_split("on")
    args = make((N, G * Cg, H, W, G * Kg, R, R, 1, pad, dil, G), dtype, seed=N + G + Cg + H)
    out = assert_threads_bitwise(args)
    for g, r, name in zip(out, torch_ref(*args), ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, TOL[dtype], f"{name} G={G} Cg={Cg} Kg={Kg} {isa}")


def test_split_groups_conv_transpose():
    _C._set_group_split("on")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 64, 8, 8)).astype(np.float32)
    # conv_transpose2d at stride 1 runs as the backward-data of a grouped convolution (and
    # its backward as the forward and weight gradient): split into groups too
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = np.random.default_rng(6).standard_normal((64, 48, 3, 3)).astype(np.float32)
    tw = torch.tensor(wt, dtype=torch.float64, requires_grad=True)
    ty = F.conv_transpose2d(tx, tw, padding=1, groups=2)
    g = np.random.default_rng(5).standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    got = pyconv.functional.conv_transpose2d(x, wt, padding=1, groups=2)
    assert_close(got, ty.detach().numpy(), 1e-4, "conv_transpose2d")
    gi, gw, _ = pyconv.functional.conv_transpose2d_backward(g.astype(np.float32), x, wt,
                                                            padding=1, groups=2)
    assert_close(gi, tx.grad.numpy(), 1e-4, "conv_transpose2d grad_input")
    assert_close(gw, tw.grad.numpy(), 1e-4, "conv_transpose2d grad_weight")


# The backward-data splits (auto) from 16 input channels a group with 64 outputs or more
# (the forward and weight gradient of these stay grouped): 3x3 and 5x5, padded and not.
@pytest.mark.parametrize("shape", [(2, 3, 16, 64, 9, 5, 2), (1, 2, 17, 70, 7, 3, 1),
                                   (3, 2, 16, 64, 6, 5, 0)], ids=str)
def test_split_groups_backward_data(shape):
    _C._set_group_split("on")
    N, G, Cg, Kg, H, R, pad = shape
    args = make((N, G * Cg, H, H + 1, G * Kg, R, R, 1, (pad,) * 4, 1, G), np.float32, seed=7)
    out = assert_threads_bitwise(args)
    for g, r, name in zip(out, torch_ref(*args), ("forward", "grad_input", "grad_weight")):
        assert_close(g, r, TOL[np.float32], f"{name} {shape}")
