"""The fast conv2d kernels (packed GEMM, stride-phase backward-data, chunked
backward-weight, col2im backward-data, depthwise) against torch, across instruction
sets and thread counts. Shapes sit at, below and above each tile and block size of csrc/gemm:
MR=6 rows (8 for AVX-512 fp32), NR=16 (fp32 AVX2/scalar; 32 AVX-512, 48 where the columns
are pixels of grids of 128+ and the reduction 64+ values) / 8 (fp64) columns,
KC=256 reduction,
MC=144 rows, NB=192 columns; backward-weight splits the batch into up to 8
chunks and reads grad_output planes in place when P*Q >= 128, or, with few input channels
(C*R*S >= 2M, M a multiple of 8, P*Q >= 256), takes the taps as the tile's rows.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

import pyconv
from pyconv import _C

ISAS = [i for i in ("scalar", "avx2", "avx512")
        if ["scalar", "avx2", "avx512"].index(i) <= ["scalar", "avx2", "avx512"].index(_C.best_isa())]
TOL = {np.float64: 1e-10, np.float32: 1e-4}

# (N, C, H, W, K, R, S, stride, pad (t, b, l, r), dilation, groups)
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, 1, (0, 0, 0, 0), 1, 1),          # tiniest
    (2, 3, 5, 5, 5, 3, 3, 1, (1, 1, 1, 1), 1, 1),          # M < MR, P*Q < NR, across images
    (2, 4, 4, 4, 6, 3, 3, 1, (1, 1, 1, 1), 1, 1),          # M == MR, P*Q == NR
    (3, 4, 5, 3, 7, 2, 2, 1, (1, 0, 0, 1), 1, 1),          # M = MR+1, asymmetric padding
    (1, 5, 4, 17, 13, 1, 1, 1, (0, 0, 0, 0), 1, 1),        # 1x1, columns 17 per row
    (2, 28, 6, 6, 12, 3, 3, 1, (1, 1, 1, 1), 1, 1),        # Kd = 252 < KC
    (2, 29, 6, 6, 12, 3, 3, 1, (1, 1, 1, 1), 1, 1),        # Kd = 261 > KC: two blocks
    (1, 256, 3, 5, 8, 1, 1, 1, (0, 0, 0, 0), 1, 1),        # Kd == KC
    (1, 257, 3, 5, 8, 1, 1, 1, (0, 0, 0, 0), 1, 1),        # Kd = KC+1
    (2, 60, 4, 4, 9, 3, 3, 1, (1, 1, 1, 1), 1, 1),         # Kd = 540: three blocks
    (1, 3, 4, 4, 143, 1, 1, 1, (0, 0, 0, 0), 1, 1),        # M < MC
    (1, 3, 4, 4, 144, 1, 1, 1, (0, 0, 0, 0), 1, 1),        # M == MC
    (1, 3, 4, 4, 145, 3, 3, 1, (1, 1, 1, 1), 1, 1),        # M > MC
    (2, 70, 5, 5, 1001, 1, 1, 1, (0, 0, 0, 0), 1, 1),      # weight gradient: one row block of 1002
    (1, 8, 5, 6, 2050, 3, 3, 1, (1, 1, 1, 1), 1, 1),       # three row blocks of 684
    (1, 6, 1, 191, 7, 1, 1, 1, (0, 0, 0, 0), 1, 1),        # columns < NB
    (1, 6, 1, 193, 7, 1, 3, 1, (0, 0, 1, 1), 1, 1),        # columns > NB
    (2, 5, 13, 11, 6, 1, 1, 3, (0, 0, 0, 0), 1, 1),        # stride > kernel (empty phases)
    (2, 4, 11, 13, 5, 2, 2, 3, (1, 0, 2, 1), 1, 1),        # stride > kernel, asymmetric pad
    (2, 3, 17, 15, 8, 7, 7, 2, (3, 3, 3, 3), 1, 1),        # 7x7 s2 stem
    (2, 5, 12, 12, 7, 3, 3, (2, 1), (2, 2, 2, 2), 2, 1),   # dilation with padding, mixed stride
    (1, 4, 9, 10, 6, 3, 2, 1, (0, 0, 0, 0), (2, 3), 1),    # dilation, no padding
    (2, 8, 7, 7, 12, 3, 3, 1, (1, 1, 1, 1), 1, 2),         # grouped
    (2, 12, 6, 5, 8, 3, 3, 2, (1, 1, 1, 1), 1, 4),         # grouped, strided
    (2, 8, 9, 9, 8, 3, 3, 1, (1, 1, 1, 1), 1, 8),          # depthwise
    (2, 6, 10, 9, 6, 3, 3, 2, (1, 0, 1, 1), 1, 6),         # depthwise, strided, asymmetric
    (1, 5, 11, 12, 5, 3, 3, (1, 3), (2, 2, 2, 2), 2, 5),   # depthwise, dilated, stride > kernel in w
    (2, 4, 64, 64, 6, 3, 3, 1, (1, 1, 1, 1), 1, 1),        # backward-weight: 2 chunks, planes in place
    (3, 2, 60, 70, 5, 3, 2, 1, (1, 1, 0, 1), 1, 1),        # 3 chunks, ragged rows in place
    (11, 3, 16, 8, 13, 3, 3, 1, (1, 1, 1, 1), 1, 1),       # 8 chunks of 11 images, P*Q == 128
    (0, 3, 5, 5, 4, 3, 3, 1, (1, 1, 1, 1), 1, 1),          # empty batch
    (2, 2, 11, 10, 5, 2, 2, 3, (1, 0, 2, 1), (1, 2), 1),   # few channels, stride > kernel, dilation
    (2, 4, 7, 7, 8, 3, 3, 2, (1, 1, 1, 1), 1, 4),          # groups with channel multiplier 2 (not depthwise)
    (3, 5, 8, 8, 7, 3, 3, 1, (1, 1, 1, 1), 1, 1),          # 8-column rows: panels of whole rows
    (2, 3, 4, 4, 7, 3, 3, 1, (1, 1, 1, 1), 1, 1),          # 4-column rows
    (2, 9, 10, 9, 70, 3, 3, 2, (1, 1, 1, 1), 1, 1),        # strided stores over several reduction blocks (local C)
    (2, 3, 13, 12, 40, 5, 5, 2, (2, 1, 2, 2), 1, 1),       # few input channels: col2im backward-data
    (3, 256, 6, 6, 64, 3, 3, 1, (1, 1, 1, 1), 1, 1),       # backward-weight: 2^17+ weights, one chunk
    (2, 130, 9, 9, 128, 4, 4, 2, (1, 1, 1, 1), 1, 1),      # one chunk, strided, two reduction blocks per image
    (2, 3, 4, 8, 8, 3, 3, 1, (1, 1, 1, 1), 1, 1),          # M == 8 (AVX-512's fp32 MR), P*Q == 32 (its NR)
    (2, 5, 5, 7, 15, 3, 3, 1, (1, 1, 1, 1), 1, 1),         # M = 15: a 7-row last panel at MR 8
    (1, 6, 6, 6, 17, 3, 3, 1, (1, 1, 1, 1), 1, 1),         # M = 17 = 2*8 + 1
    (2, 3, 16, 16, 8, 5, 5, 1, (2, 2, 2, 2), 1, 1),        # backward-weight with the taps as rows (75 >= 2 * 8)
    (3, 3, 33, 36, 16, 7, 7, 2, (3, 3, 3, 3), 1, 1),       # the same, 147 taps: two row blocks, 3 chunks
    (2, 2, 20, 20, 8, 3, 3, 1, (2, 2, 2, 2), 2, 1),        # the same, dilated, a ragged last panel of taps
    (2, 3, 34, 34, 64, 4, 4, 2, (1, 1, 1, 1), 1, 1),       # the same with fewer taps (48) than 2 x 64 outputs
    (2, 4, 17, 16, 32, 3, 3, 1, (1, 1, 1, 1), 1, 1),       #   (less tile work): 36 taps, 32 outputs
    (2, 5, 9, 70, 6, 2, 2, 2, (0, 0, 0, 0), 1, 1),         # stride 2, no padding: columns two apart read in
    (1, 3, 7, 67, 9, 3, 3, 2, (0, 0, 0, 0), 1, 1),         #   place, rows of 35 / 33 (16-column blocks, tails)
    (1, 4, 12, 12, 600, 3, 3, 2, (1, 1, 1, 1), 1, 1),      # GEMM rows past 4 * MC: two nearly equal blocks
    (2, 5, 16, 16, 151, 1, 1, 1, (0, 0, 0, 0), 1, 1),      # 512 columns: one block of 151 rows past MC
    (2, 600, 5, 5, 8, 3, 3, 2, (1, 1, 1, 1), 1, 1),        # the same in the phases of a backward-data
    (2, 4, 0, 6, 5, 1, 1, 1, (1, 1, 1, 1), 1, 1),          # empty input rows, output from padding alone
    (2, 4, 5, 0, 5, 3, 3, 2, (2, 1, 1, 2), 1, 1),          # empty input columns, strided (no stride phases)
    (1, 6, 0, 0, 4, 2, 2, 1, (1, 1, 1, 1), 1, 2),          # empty planes, grouped
    (11, 8, 5, 5, 13, 3, 3, 1, (1, 1, 1, 1), 1, 1),        # backward-weight, grad_output packed (P*Q < 128) in
    (9, 6, 14, 14, 12, 4, 4, 2, (1, 1, 1, 1), 1, 1),       #   6-row panels: reduction blocks start mid-row
    (1, 3, 48, 48, 64, 3, 3, 1, (1, 1, 1, 1), 1, 1),       # backward-weight of one task (27 taps, 64
                                                           #   outputs; AVX-512): 2304 pixels in 2 chunks
    (1, 1, 12, 200, 16, 3, 3, 1, (1, 1, 1, 1), 1, 1),      # 9 taps as rows x 16 outputs: AVX2's tile on AVX-512
]


def out_size(H, pad0, pad1, R, stride, dil):
    """A convolution's output extent along one axis."""
    return (H + pad0 + pad1 - dil * (R - 1) - 1) // stride + 1


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def torch_ref(x, w, b, dy, stride, pad, dil, groups):
    """Forward and gradients in float64 by torch (asymmetric padding via F.pad)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    t, bo, l, r = pad
    y = F.conv2d(F.pad(xt, (l, r, t, bo)), wt, bt, stride=stride, dilation=dil, groups=groups)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return [a.detach().numpy() for a in (y, xt.grad, wt.grad, bt.grad)]


def run_pyconv(x, w, b, dy, stride, pad, dil, groups):
    y = _C.conv2d_forward(x, w, b, stride, pad, dil, groups)
    gi, gw, gb = _C.conv2d_backward(dy, x, w, stride, pad, dil, groups, [True, True, True])
    return [y, gi, gw, gb]


def make(shape, dtype, seed=0):
    N, C, H, W, K, R, S, stride, pad, dil, groups = shape
    stride, dil = _pair(stride), _pair(dil)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    P = (H + pad[0] + pad[1] - dil[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + pad[2] + pad[3] - dil[1] * (S - 1) - 1) // stride[1] + 1
    dy = rng.standard_normal((N, K, P, Q)).astype(dtype)
    return x, w, b, dy, stride, pad, dil, groups


def assert_close(got, ref, tol, what, floor=0.0):
    """max |got - ref| <= tol * max(max |ref|, floor): floor gives values whose own scale is
    below their input's (an activation's far tail) the input's."""
    assert got.shape == ref.shape, what
    scale = max(float(np.abs(ref).max()) if ref.size else 0.0, floor, 1e-30)
    err = float(np.abs(got.astype(np.float64) - ref).max()) if ref.size else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} * {scale:.3g}"


def assert_threads_bitwise(args, k=4):
    """The first k results of run_pyconv are bitwise the same for 1, 2 and 3 threads."""
    outs = []
    for nt in (1, 2, 3):
        pyconv.set_num_threads(nt)
        outs.append(run_pyconv(*args)[:k])
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert np.array_equal(a, b)
    return outs[0]


@pytest.fixture(autouse=True)
def _restore():
    isa, nt = _C.isa(), pyconv.get_num_threads()
    yield
    _C.set_isa(isa)
    pyconv.set_num_threads(nt)
    _C._set_col2im("auto")
    _C._set_group_split("auto")
    _C._set_direct("auto")
    _C._set_direct_bd("auto")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_against_torch(shape, dtype, isa):
    _C.set_isa(isa)
    args = make(shape, dtype)
    x, w, b, dy = args[:4]
    ref = torch_ref(*args)
    got = run_pyconv(*args)
    for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert g.dtype == dtype
        assert_close(g, r, TOL[dtype], f"{name} {shape} {isa}")


@pytest.mark.parametrize("shape", [SHAPES[i] for i in (6, 9, 12, 14, 16, 18, 21, 23, 25, 26, 27, 28, 29, 35, 36, 38, 40, 41, 55, 56, 57, 58)])
def test_threads_bitwise(shape):
    assert_threads_bitwise(make(shape, np.float32, seed=1))


# The GEMM weight gradient splits its columns (C*R*S) into blocks by the thread count
# (two tasks per thread, counting image chunks and row blocks): one image and 8 output
# channels make 1, 2 and 3 threads block 144 columns as 80 + 64, 3 x 48 and 4 x 32 + 16.
# Each weight is still reduced in the same order, so the gradients agree bitwise; with
# grad_output's rows read in place (16x16 outputs) and packed (8x8).
@pytest.mark.parametrize("H", [16, 8])
def test_weight_gradient_column_blocks_threads_bitwise(H):
    args = make((1, 16, H, H, 8, 3, 3, 1, (1, 1, 1, 1), 1, 1), np.float32, seed=H)
    ref = torch_ref(*args)
    got = assert_threads_bitwise(args)
    assert_close(got[2], ref[2], TOL[np.float32], f"grad_weight H={H}")


def test_isas_agree():
    args = make(SHAPES[9], np.float32, seed=2)
    res = {}
    for isa in ISAS:
        _C.set_isa(isa)
        res[isa] = run_pyconv(*args)
    for isa in ISAS[1:]:
        for a, b in zip(res[ISAS[0]], res[isa]):
            assert_close(a, b.astype(np.float64), 1e-4, isa)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [SHAPES[i] for i in (2, 9, 17, 18, 21, 23, 26)])
def test_strided_views(shape, dtype):
    """Packers read through View4 strides: reversed, sliced, transposed, zero strides."""
    x, w, b, dy, stride, pad, dil, groups = make(shape, dtype, seed=3)
    rng = np.random.default_rng(4)
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)
    views = {
        "x reversed w, sliced": np.ascontiguousarray(x[..., ::-1])[..., ::-1],
        "x channels-last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        "x every other": np.repeat(x, 2, axis=3)[..., ::2],
    }
    for name, xv in views.items():
        assert np.array_equal(xv, x)
        dyv = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        got = run_pyconv(xv, w[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1], b, dyv, stride,
                         pad, dil, groups)
        for g, r, what in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[dtype], f"{what} {name}")
    # zero strides: a broadcast input
    xb = np.broadcast_to(rng.standard_normal((1, x.shape[1], 1, x.shape[3])).astype(dtype), x.shape)
    refb = torch_ref(np.ascontiguousarray(xb), w, b, dy, stride, pad, dil, groups)
    got = run_pyconv(xb, w, b, dy, stride, pad, dil, groups)
    for g, r in zip(got, refb):
        assert_close(g, r, TOL[dtype], "broadcast input")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [SHAPES[i] for i in (4, 9, 12)])
@pytest.mark.parametrize("act", ["relu", "sigmoid", "gelu"])
def test_fused_epilogue(act, shape, isa):
    """Bias + relu run in the micro-kernel's registers on direct tiles, other activations
    on the stored tile; both over one or several reduction blocks and ragged rows."""
    _C.set_isa(isa)
    check_fused(shape, act)


def check_fused(shape, act):
    """The fused forward's output and pre-activation against torch's conv, then act."""
    x, w, b, dy, stride, pad, dil, groups = make(shape, np.float32, seed=5)
    y, z = _C.conv2d_forward(x, w, b, stride, pad, dil, groups, _C.ACTIVATIONS[act], 0.0, True)
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)[0]
    assert_close(z, ref, 1e-4, "preact")
    fn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu}[act]
    assert_close(y, fn(torch.tensor(ref)).numpy(), 1e-4, act)


# GEMM convolutions with at most 32 rows of A (output channels of the forward, input
# channels of backward-data), or 64 with a reduction of 64..256 values, and a small source
# footprint read B panels in place where a panel is one contiguous run of 16 source
# columns, and pack the others (row ends, several output rows in one panel, strides):
# widths that give only in-place panels (32, 48), a mix (33, 40, 21) and none (7, the
# strided forward); 32 and 33 channels straddle the threshold, 64 and 65 the short
# reductions' (75 values), 48 rows with 50, 250 and 275 values theirs; reduction over one
# and several blocks (3 and 40 channels); backward-data's stride phases (stride 2); bias +
# relu / gelu and the pre-activation on in-place tiles.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("W, K, C, stride", [
    (32, 32, 3, 1), (48, 20, 3, 1), (33, 32, 3, 1), (40, 32, 5, 1), (21, 7, 40, 1),
    (32, 33, 3, 1), (7, 12, 3, 1), (48, 32, 3, 2), (32, 64, 3, 1), (32, 65, 3, 1),
    (33, 48, 2, 1), (32, 48, 10, 1), (32, 48, 11, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_panels(W, K, C, stride, dtype, isa):
    _C.set_isa(isa)
    _C._set_direct("off")  # (the forwards of the direct kernel's gate)
    for shape in ((2, C, 9, W, K, 5, 5, stride, (2, 2, 2, 2), 1, 1),   # forward: K rows
                  (2, K, 9, W, C, 5, 5, stride, (2, 2, 2, 2), 1, 1)):  # backward-data: K rows
        args = make(shape, dtype, seed=W + K)
        ref = torch_ref(*args)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[dtype], f"{name} {shape} {isa}")
    args = make((2, C, 9, W, K, 5, 5, stride, (2, 2, 2, 2), 1, 1), dtype, seed=W + K)
    x, w, b, dy, st, pad, dil, groups = args
    ref = torch_ref(*args)
    for act, fn in (("relu", torch.relu), ("gelu", F.gelu)):
        y, z = _C.conv2d_forward(x, w, b, st, pad, dil, groups, _C.ACTIVATIONS[act], 0.0, True)
        assert_close(z, ref[0], TOL[dtype], f"preact {act}")
        assert_close(y, fn(torch.tensor(ref[0])).numpy(), TOL[dtype], act)


# The 7x7 stride-2 stem's forward at 224 columns: its reduction block's column-phase rows
# (3 channels x 7 rows x 230 values, 19.3 KB) are read in place where the L1 holds 48 KiB
# and packed where it holds 32 (in_place_bytes); 223 and 226 columns around it.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("W", [223, 224, 226])
def test_stem_rows_in_place(W, isa):
    _C.set_isa(isa)
    _C._set_direct("off")  # (its auto gate takes the stem's forward)
    args = make((2, 3, 11, W, 64, 7, 7, 2, (3, 3, 3, 3), 1, 1), np.float32, seed=W)
    ref = torch_ref(*args)
    got = assert_threads_bitwise(args)
    for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, TOL[np.float32], f"{name} W={W} {isa}")


# AVX-512's 8 x 48 tile in the GEMMs whose columns are pixels (conv_gemm.cpp, pixel_tile:
# grids of 128+ pixels and reductions of 64+ values, forward and backward-data's stride
# phases; the 8 x 32 tile below that and on the other ISAs): 48-column panels across images
# and ragged at the end, row panels of fewer than 8, two reduction blocks, 1x1 rows copied
# whole, stride-2 runs, bias + relu in registers, gelu and the pre-activation after,
# non-temporal stores (a 13 MB output); threads bitwise.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [
    (3, 72, 10, 13, 17, 1, 1, 1, (0, 0, 0, 0), 1, 1),      # 130 pixels an image, 390 columns
    (2, 3, 23, 25, 24, 5, 5, 2, (2, 2, 2, 2), 1, 1),       # stride 2: 156 pixels; 11x12 phases
    (2, 20, 24, 24, 16, 4, 4, 2, (1, 1, 1, 1), 1, 1),      # 12x12 phases of 20 rows
    (3, 12, 14, 14, 9, 5, 5, 1, (2, 2, 2, 2), 1, 1),       # 300 reduction values: two blocks
    (2, 72, 16, 8, 17, 1, 1, 1, (0, 0, 0, 0), 1, 1),       # exactly 128 pixels
    (2, 72, 15, 8, 17, 1, 1, 1, (0, 0, 0, 0), 1, 1),       # 120: the 8 x 32 tile
    (2, 63, 16, 8, 17, 1, 1, 1, (0, 0, 0, 0), 1, 1),       # 63 reduction values: the 8 x 32
])
def test_wide_tile(shape, isa):
    _C.set_isa(isa)
    args = make(shape, np.float32, seed=shape[2] * shape[3])
    ref = torch_ref(*args)
    got = assert_threads_bitwise(args)
    for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, TOL[np.float32], f"{name} {shape} {isa}")
    x, w, b, dy, st, pad, dil, groups = args
    for act, fn in (("relu", torch.relu), ("gelu", F.gelu)):
        y, z = _C.conv2d_forward(x, w, b, st, pad, dil, groups, _C.ACTIVATIONS[act], 0.0, True)
        assert_close(z, ref[0], TOL[np.float32], f"preact {act}")
        assert_close(y, fn(torch.tensor(ref[0])).numpy(), TOL[np.float32], act)
        np.testing.assert_array_equal(
            _C.conv2d_forward(x, w, b, st, pad, dil, groups, _C.ACTIVATIONS[act], 0.0), y)


def test_wide_tile_streams_large_outputs():
    pyconv.set_num_threads(2)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 64, 256, 200)).astype(np.float32)
    w = rng.standard_normal((64, 64, 1, 1)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    ref = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                   torch.tensor(b, dtype=torch.float64)).numpy()
    y = _C.conv2d_forward(x, w, b, (1, 1), (0, 0, 0, 0), (1, 1), 1, _C.ACTIVATIONS["relu"], 0.0)
    assert_close(y, np.maximum(ref, 0), TOL[np.float32], "relu, streamed")
    y = _C.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert_close(y, ref - b[:, None, None], TOL[np.float32], "plain, streamed")


# col2im backward-data (csrc/conv/conv_col2im.cpp: at most 8 input channels, at least 32
# and 4x as many output channels): strides 1-3 in each direction (stride > kernel: taps
# that reach no row), dilation, asymmetric padding of both parities, odd sizes, both
# dtypes, every ISA; threads bitwise.
COL2IM_SWEEP = dict(N=st.integers(1, 3), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
                    dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
                    pad=st.tuples(*[st.integers(0, 3)] * 4),
                    dtype=st.sampled_from([np.float32, np.float64]), isa=st.sampled_from(ISAS))


@given(C=st.integers(1, 8), K=st.integers(32, 48), H=st.integers(1, 13), W=st.integers(1, 13),
       R=st.integers(1, 5), S=st.integers(1, 5), **COL2IM_SWEEP)
def test_col2im_backward_data(N, C, K, H, W, R, S, stride, dil, pad, dtype, isa):
    check_grad_input((N, C, H, W, max(K, 4 * C), R, S, stride, pad, dil, 1), dtype, isa,
                     seed=N + C + H + W + R + S)


def check_grad_input(shape, dtype, isa, seed):
    """grad_input of a valid shape (R*S > 1) against torch, bitwise for 1-3 threads."""
    N, C, H, W, K, R, S, stride, pad, dil, groups = shape
    if (H + pad[0] + pad[1] < dil[0] * (R - 1) + 1 or W + pad[2] + pad[3] < dil[1] * (S - 1) + 1
            or R * S == 1):
        return
    _C.set_isa(isa)
    args = make(shape, dtype, seed=seed)
    ref = torch_ref(*args)
    gi = assert_threads_bitwise(args, k=2)[1]
    assert_close(gi, ref[1], TOL[dtype], "grad_input")


# The same kernel forced on for layers of any width (the auto gate also takes wide layers
# whose im2col of dy is largely zero padding): many channels, few output channels, both
# dtypes, every ISA; threads bitwise.
@given(C=st.integers(1, 40), K=st.integers(1, 70), H=st.integers(1, 12), W=st.integers(1, 12),
       R=st.integers(1, 7), S=st.integers(1, 7), **COL2IM_SWEEP)
def test_col2im_forced_any_width(N, C, K, H, W, R, S, stride, dil, pad, dtype, isa):
    _C._set_col2im("on")
    check_grad_input((N, C, H, W, K, R, S, stride, pad, dil, 1), dtype, isa,
                     seed=N + C + K + H + W)


# One dy value a filter and image at up to 4 images: dcol by combine_rows (each filter row
# streamed once) instead of the GEMM; 5 images take the GEMM.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [
    (2, 16, 9, 9, 8, 7, 7, 1, (2, 2, 2, 2), (2, 2), 2),  # 1x1 outputs: dilated, padded, grouped
    (4, 12, 5, 6, 40, 5, 6, 1, (0, 0, 0, 0), (1, 1), 1),  # the filter as large as the input
    (3, 6, 5, 5, 33, 3, 3, 3, (0, 0, 0, 0), (1, 1), 3),  # stride 3, 2 <- 11 a group
    (1, 70, 3, 3, 1, 3, 3, 1, (0, 0, 0, 0), (1, 1), 1),  # one output channel
    (1, 4, 1, 2, 2, 1, 2, 1, (0, 1, 0, 1), (1, 2), 2),  # one a group, dy's rows apart (cropped)
    (5, 16, 9, 9, 8, 7, 7, 1, (2, 2, 2, 2), (2, 2), 2),  # 5 images: the GEMM
])
def test_col2im_one_output_a_filter(shape, dtype, isa):
    _C._set_col2im("on")
    check_grad_input(shape, dtype, isa, seed=sum(shape[:5]))


# Grouped (not depthwise): the dcol GEMM reads each group's filter as its W^T (a view,
# groups Kg filters apart), dcol's rows in dx's channel order. Forced on: groups 2-4 with 1-9 channels and
# 1-20 outputs a group, every stride, dilation and padding of the sweep.
@given(G=st.integers(2, 4), Cg=st.integers(1, 9), Kg=st.integers(1, 20), H=st.integers(1, 12),
       W=st.integers(1, 12), R=st.integers(1, 7), S=st.integers(1, 7), **COL2IM_SWEEP)
def test_col2im_grouped(N, G, Cg, Kg, H, W, R, S, stride, dil, pad, dtype, isa):
    if Cg == Kg == 1:
        Kg = 2  # (depthwise: its own kernels)
    _C._set_col2im("on")
    check_grad_input((N, G * Cg, H, W, G * Kg, R, S, stride, pad, dil, G), dtype, isa,
                     seed=N + G + Cg + Kg + H + W)


# Auto: col2im for layers whose stride-phase GEMM would spend 30% of its multiplies on dy's
# zero padding (kernels larger than 3x3, >= 64 output channels, a small dcol), or half of
# them (>= 32 output channels; dilated 3x3 from 1.4x the products of the taps that exist,
# dilated 5x5 from 1.5x),
# and strided kernels (larger than the stride) with 4x as many outputs as
# inputs, and dilated ones with 4-31 outputs a group where the products on padding times
# the outputs reach 64, and dilated ones with 9-32 input channels a group, 4x as many
# outputs and a dcol of at most 2^18 values an image, and kernels past 3x3 with up to 16
# input channels a group and 4x as many outputs from 1.1x the products of the taps that
# exist; the phase GEMM / Winograd otherwise, and
# pixel rows, which skip the padding's taps, for kernels past 5x5 at stride 1 from 257 dx
# pixels and 65 input channels (dilated ones below 8x waste; at fewer pixels with at most 64
# outputs where under 80% of dcol's values land inside dx), and the grouped direct kernel
# where it takes a layer (up to 32 channels a group, planes wide enough for its vectors)
# and dx has under twice dy's pixels. auto must be bitwise what the kernel it picks
# computes.
@pytest.mark.parametrize("shape, takes", [
    ((2, 16, 10, 10, 64, 7, 7, 1, (0, 0, 0, 0), 1, 1), True),     # unpadded 7x7, 200 pixels (4x)
    ((2, 96, 16, 16, 64, 7, 7, 1, (0, 0, 0, 0), 1, 1), False),    # 512 pixels: pixel rows'
    ((2, 16, 16, 16, 64, 7, 7, 1, (0, 0, 0, 0), 1, 1), True),     # ... unless 64 channels or less
    ((1, 16, 6, 6, 128, 7, 7, 1, (2, 2, 2, 2), 1, 1), True),      # padded 7x7 at 6x6 (2.25x)
    ((2, 16, 13, 13, 64, 7, 7, 2, (0, 0, 0, 0), 1, 1), True),     # the same at stride 2
    ((2, 24, 14, 14, 64, 5, 5, 1, (0, 0, 0, 0), 1, 1), True),     # unpadded 5x5 at 14x14 (1.96x)
    ((2, 8, 13, 13, 128, 5, 5, 1, (1, 1, 1, 1), 1, 1), True),     # padded by 1 (1.36x)
    ((2, 16, 14, 14, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),    # "same": no padding waste
    ((2, 16, 14, 14, 32, 5, 5, 1, (0, 0, 0, 0), 1, 1), False),    # 32 output channels
    ((2, 16, 20, 20, 32, 5, 5, 1, (0, 0, 0, 0), 2, 1), True),     # ... at 2.78x
    ((2, 16, 12, 12, 64, 3, 3, 1, (0, 0, 0, 0), 1, 1), False),    # 3x3: Winograd's (1.44x)
    ((2, 16, 12, 12, 64, 3, 3, 1, (0, 0, 0, 0), 2, 1), True),     # 3x3 dilated: dy 8x8 (2.25x)
    ((2, 16, 10, 10, 32, 3, 3, 1, (0, 0, 0, 0), 3, 1), True),     # 3x3 from 32 outputs (6.25x)
    ((2, 16, 9, 9, 32, 3, 3, 1, (0, 0, 0, 0), 1, 1), False),      # 3x3 at 9x9 (1.65x)
    ((2, 16, 12, 12, 16, 3, 3, 1, (0, 0, 0, 0), 2, 1), False),    # 16 outputs
    ((2, 32, 12, 12, 32, 3, 3, 1, (1, 1, 1, 1), 2, 1), True),     # dilated, padded (1.44x)
    ((2, 32, 16, 16, 32, 3, 3, 1, (1, 1, 1, 1), 2, 1), False),    # ... at 16x16 (1.31x)
    ((2, 64, 9, 9, 128, 3, 3, 1, (0, 0, 0, 0), 2, 4), True),      # grouped, dilated (3.24x)
    ((2, 16, 17, 17, 128, 3, 3, 2, (1, 1, 1, 1), 1, 1), True),    # 3x3 stride 2, 8x outputs
    ((2, 64, 17, 16, 256, 3, 3, 2, (1, 1, 1, 1), 1, 2), True),    # the same grouped (4x)
    ((2, 32, 17, 17, 64, 3, 3, 2, (1, 1, 1, 1), 1, 1), False),    # 2x outputs
    ((2, 32, 10, 10, 256, 7, 7, 2, (3, 3, 3, 3), 1, 1), True),    # 7x7 stride 2, 8x outputs
    ((2, 64, 10, 10, 128, 7, 7, 2, (3, 3, 3, 3), 1, 1), False),   # ... 2x
    ((2, 16, 16, 16, 64, 4, 4, 2, (1, 1, 1, 1), 1, 1), True),     # 4x4 stride 2, 4x
    ((1, 12, 17, 17, 256, 7, 7, 1, (0, 0, 0, 0), 1, 4), True),    # grouped, 3 channels a group
    ((2, 32, 15, 15, 256, 7, 7, 1, (0, 0, 0, 0), 1, 2), True),    # grouped: past 5x5 too
    ((2, 64, 14, 14, 128, 5, 5, 1, (0, 0, 0, 0), 1, 4), False),   # 32 outputs a group
    ((2, 32, 20, 20, 32, 5, 5, 1, (2, 2, 2, 2), 2, 1), True),     # 5x5 dilated at 1.56x
    ((2, 32, 30, 30, 32, 5, 5, 1, (2, 2, 2, 2), 2, 1), False),    # ... at 1.33x
    ((2, 64, 15, 15, 16, 7, 7, 1, (0, 0, 0, 0), 2, 4), True),     # 4 a group, dilated, 25x
    ((2, 64, 15, 15, 8, 7, 7, 1, (0, 0, 0, 0), 2, 4), False),     # ... 2 a group
    ((2, 16, 7, 7, 16, 3, 3, 1, (0, 0, 0, 0), 2, 1), True),       # 16 outputs at 5.4x
    ((2, 16, 4, 4, 16, 3, 3, 1, (0, 0, 0, 0), 1, 1), False),      # ... undilated (4x)
    ((2, 32, 12, 12, 32, 7, 7, 1, (0, 0, 0, 0), 1, 4), False),    # 8 a group at 4x
    ((2, 16, 14, 14, 64, 3, 3, 1, (2, 2, 2, 2), 2, 1), True),     # dilated, 16 -> 4x outputs, "same"
    ((1, 64, 13, 13, 512, 3, 3, 1, (1, 1, 1, 1), 2, 4), True),    # ... a group (16 -> 128)
    ((1, 16, 56, 56, 64, 3, 3, 1, (2, 2, 2, 2), 2, 1), False),    # ... its dcol past 2^18 values
    ((2, 32, 14, 14, 128, 3, 3, 1, (2, 2, 2, 2), 2, 1), True),    # ... 32 input channels
    ((2, 64, 14, 14, 256, 3, 3, 1, (2, 2, 2, 2), 2, 1), False),   # ... 64
    ((2, 16, 34, 34, 64, 5, 5, 1, (0, 0, 0, 0), 1, 1), True),     # 16 -> 64 5x5 at 1.28x
    ((2, 16, 28, 28, 64, 5, 5, 1, (2, 2, 2, 2), 1, 1), False),    # ... "same"
    ((2, 32, 34, 34, 128, 5, 5, 1, (0, 0, 0, 0), 1, 1), False),   # ... 32 -> 128
    ((2, 16, 16, 16, 64, 3, 3, 1, (0, 0, 0, 0), 1, 2), False),    # 8 <- 32 a group: the grouped
    ((2, 16, 16, 16, 66, 3, 3, 1, (0, 0, 0, 0), 1, 2), True),     # kernel's (up to 32 outputs)
    ((2, 128, 9, 9, 128, 5, 5, 1, (0, 0, 0, 0), 1, 4), True),     # ... unless padding (3.24x)
    ((2, 128, 5, 5, 128, 7, 7, 1, (1, 1, 1, 1), 1, 4), True),     # 1x1 outputs (25x), 5 wide
    ((2, 96, 12, 12, 32, 7, 7, 1, (2, 2, 2, 2), 2, 1), True),     # 7x7 d2, 96 channels (9x)
    ((2, 96, 15, 15, 32, 7, 7, 1, (3, 3, 3, 3), 2, 1), False),    # ... at 2.78x: pixel rows'
    ((2, 96, 5, 5, 32, 7, 7, 1, (2, 2, 2, 2), 1, 1), False),      # 50 pixels, 51% of dcol landed
    ((2, 96, 5, 5, 80, 7, 7, 1, (2, 2, 2, 2), 1, 1), True),       # ... with 80 outputs
    ((2, 96, 8, 8, 32, 7, 7, 1, (1, 1, 1, 1), 1, 1), True),       # ... 86% landed
])
def test_col2im_auto_takes_padding_heavy_layers(shape, takes):
    _C._set_direct_bd("off")  # (its gate takes some of these first)
    args = make(shape, np.float32, seed=3)
    x, w, b, dy, stride, pad, dil, groups = args
    ref = torch_ref(*args)

    def grad_input(mode):
        _C._set_col2im(mode)
        return _C.conv2d_backward(dy, x, w, stride, pad, dil, groups, [True, False, False])[0]

    on, off, auto = grad_input("on"), grad_input("off"), grad_input("auto")
    assert not np.array_equal(on, off)  # the two kernels round differently: auto is one of them
    assert np.array_equal(auto, on if takes else off)
    assert_close(auto, ref[1], TOL[np.float32], "grad_input")


def test_col2im_chunks_and_views():
    # dcol of one image is 392 x 75*75 > 2^21 values: three images in three passes; grad_output
    # channels-last (the GEMM reads it through its strides)
    args = make((3, 8, 150, 149, 32, 7, 7, 2, (3, 3, 3, 2), 1, 1), np.float32, seed=5)
    x, w, b, dy, stride, pad, dil, groups = args
    ref = torch_ref(*args)
    dyv = np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    gi = _C.conv2d_backward(dyv, x, w, stride, pad, dil, groups, [True, False, False])[0]
    assert_close(gi, ref[1], TOL[np.float32], "grad_input")


# (x shape, kernel size): a 3x3 layer, and 1x1 ones whose backward-data packs pixel rows of A
# over an empty reduction (8 one-pixel images: a linear layer with out_features 0, which
# read an empty offset list once).
@pytest.mark.parametrize("xs, k", [((2, 3, 5, 5), 3), ((8, 2, 1, 1), 1), ((1, 16, 12, 12), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_output_channels(xs, k, dtype):
    x = np.ones(xs, dtype)
    w = np.ones((0, xs[1], k, k), dtype)
    P, Q = xs[2] - k + 1, xs[3] - k + 1
    try:
        y = _C.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
        assert y.shape == (xs[0], 0, P, Q)
    except ValueError:
        pass
    gi, gw, gb = _C.conv2d_backward(np.ones((xs[0], 0, P, Q), dtype), x, w, (1, 1), (0, 0, 0, 0),
                                    (1, 1), 1, [True, True, True])
    assert np.array_equal(gi, np.zeros_like(x)) and gw.shape == (0, xs[1], k, k)


# conv_transpose2d runs as backward-data, its gradients as forward and backward-weight.
# (N, Cin, H, W, Cout, R, S, stride, padding, output_padding, dilation, groups)
CT_SHAPES = [
    (2, 8, 5, 6, 6, 3, 3, 2, 1, 1, 1, 1),
    (1, 12, 7, 4, 9, 4, 3, (3, 2), (1, 0), (2, 1), 1, 3),
    (3, 5, 9, 9, 7, 3, 3, 1, 2, 0, 2, 1),
    (2, 300, 5, 6, 13, 4, 4, 2, 1, 1, 1, 1),   # 5 reduction blocks per phase, ragged rows
    (3, 64, 7, 6, 3, 4, 4, 2, 1, 1, 1, 1),     # DCGAN's last layer: col2im, output_padding
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", CT_SHAPES, ids=[str(i) for i in range(len(CT_SHAPES))])
def test_conv_transpose_against_torch(shape, dtype):
    from pyconv.ops import conv as ops
    N, Ci, H, W, Co, R, S, st, pd, op, dil, g = shape
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, Ci, H, W)).astype(dtype)
    w = rng.standard_normal((Ci, Co // g, R, S)).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    y = F.conv_transpose2d(xt, wt, bt, st, pd, op, g, dil)
    dy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    got_y = ops.conv_transpose2d(x, w, b, st, pd, op, g, dil)
    gi, gw, gb = ops.conv_transpose2d_backward(dy, x, w, st, pd, op, g, dil)
    for a, r, what in ((got_y, y, "forward"), (gi, xt.grad, "grad_input"),
                       (gw, wt.grad, "grad_weight"), (gb, bt.grad, "grad_bias")):
        assert_close(a, r.detach().numpy(), TOL[dtype], what)


@pytest.mark.parametrize("pad", [(0, 0, 0, 0), (1, 2, 0, 3)])
def test_sparse_strides_read_in_place(pad):
    """Strides far beyond the kernel: no padded copy of the input (read in place through
    its strides, here reversed along W) or, with padding, the reference loops."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 1030, 1030))[..., ::-1]
    w = rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(3)
    stride, dil = (97, 101), (3, 2)
    P = (1030 + pad[0] + pad[1] - dil[0] - 1) // stride[0] + 1
    Q = (1030 + pad[2] + pad[3] - 2 * dil[1] - 1) // stride[1] + 1
    dy = rng.standard_normal((1, 3, P, Q))
    ref = torch_ref(np.ascontiguousarray(x), w, b, dy, stride, pad, dil, 1)
    got = run_pyconv(x, w, b, dy, stride, pad, dil, 1)
    for g, r, what in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, 1e-10, what)


# The direct depthwise kernels (csrc/conv/depthwise_plane.h) branch on the kernel size
# (3x3 single-pass interiors), the stride (1, 2, other), which kernel rows are in range
# for each output row (row masks) and the interior column range; small planes, padding up
# to and beyond the kernel, dilation and channel multipliers reach every branch.


@st.composite
def depthwise_problem(draw):
    C = draw(st.integers(1, 4))
    kg = draw(st.sampled_from([1, 1, 2]))
    R = draw(st.sampled_from([3, 3, 3, 1, 2, 5]))
    S = draw(st.sampled_from([R, R, 3, 1, 4]))
    sh = draw(st.sampled_from([1, 1, 2, 2, 3]))
    sw = draw(st.sampled_from([sh, sh, 1, 2, 3]))
    dh, dw = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2), (3, 1)]))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    H = draw(st.integers(1, 19))
    W = draw(st.integers(1, 23))
    if H + pad[0] + pad[1] < dh * (R - 1) + 1 or W + pad[2] + pad[3] < dw * (S - 1) + 1:
        H += dh * (R - 1) + 1
        W += dw * (S - 1) + 1
    N = draw(st.integers(1, 2))
    return (N, C, H, W, C * kg, R, S, (sh, sw), pad, (dh, dw), C)


@given(depthwise_problem(), st.sampled_from([np.float64, np.float32]), st.sampled_from(ISAS))
def test_depthwise_sweep(shape, dtype, isa):
    _C.set_isa(isa)
    args = make(shape, dtype, seed=8)
    ref = torch_ref(*args)
    got = run_pyconv(*args)
    for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
        assert_close(g, r, TOL[dtype], f"{name} {shape} {isa}")
    pyconv.set_num_threads(1)
    one = run_pyconv(*args)
    for a, b in zip(got, one):
        assert np.array_equal(a, b), f"threads differ {shape}"


# Small-plane depthwise 3x3 (padded copy + whole-vector rows, AVX2 float: up to 4 vectors
# of up to 4 rows in registers): rows wider than 32 columns take several register blocks,
# the last one ragged (1-4 vectors, partial last vector); a strided view takes the scalar
# copy.
# Stride 2 (undilated) splits the padded plane into even and odd columns.
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("W, dil, pad, stride", [
    (33, 1, (1, 1, 1, 1), 1), (40, 2, (2, 2, 2, 2), 1), (57, 1, (0, 1, 2, 0), 1),
    (64, 1, (1, 1, 1, 1), 1), (71, 2, (1, 3, 0, 2), 1), (90, 1, (1, 1, 1, 1), 1),
    (28, 1, (1, 1, 1, 1), 2), (71, 1, (0, 1, 1, 0), 2), (90, 1, (2, 0, 0, 2), 2),
    (17, 1, (0, 0, 0, 0), 2)])
def test_depthwise_small_plane_wide_rows(W, dil, pad, stride, isa):
    _C.set_isa(isa)
    for dtype in (np.float32, np.float64):
        args = make((2, 3, 6 + 5 * (stride - 1), W, 3, 3, 3, stride, pad, dil, 3), dtype, seed=W)
        ref = torch_ref(*args)
        for views in (False, True):
            x = np.repeat(args[0], 2, axis=3)[..., ::2] if views else args[0]
            got = run_pyconv(x, *args[1:])
            for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
                assert_close(g, r, TOL[dtype], f"{name} W={W} views={views}")


# Banded depthwise 3x3 (csrc/conv/depthwise_plane.h, AVX2 float): stride-1 planes (any
# dilation) whose padded rows do not fit one 16 KiB stack buffer run in bands of output
# rows in all three passes, and stride-2 backward-data runs by its polyphase parts in bands
# of dx rows; stride-2 forward and weight gradient take the split small-plane kernel up to
# the buffer's size and the per-row kernel beyond. Heights reach past several bands for
# every width (band sizes: stride 1 from 32 rows at W = 112 to 254 at W = 1, stride-2
# backward-data from 106 dx rows); widths straddle vectors and the 16-column interleave
# blocks; paddings of both parities on each side.
@st.composite
def banded_problem(draw):
    stride = draw(st.sampled_from([1, 1, 2, 2]))
    dil = 1 if stride == 2 else draw(st.sampled_from([1, 1, 2]))
    W = draw(st.sampled_from([1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 56, 57, 64, 112, 113, 130]))
    H = draw(st.integers(1, 420 if W <= 17 else 150))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    span = 2 * dil + 1
    H = max(H, span - pad[0] - pad[1])
    W = max(W, span - pad[2] - pad[3])
    return (1, 2, H, W, 2, 3, 3, stride, pad, dil, 2)


@given(banded_problem(), st.sampled_from([np.float32, np.float64]))
def test_depthwise_banded_sweep(shape, dtype):
    for isa in ISAS:
        _C.set_isa(isa)
        args = make(shape, dtype, seed=shape[2] + shape[3])
        ref = torch_ref(*args)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[dtype], f"{name} {shape} {isa}")


# Band edges exactly: heights one below, at and above a band multiple, for the widest rows
# the small-plane path takes (Q = 256) and a typical MobileNet width.
@pytest.mark.parametrize("H, W, stride", [
    (31, 112, 1), (32, 112, 1), (33, 112, 1), (65, 112, 1), (29, 113, 2), (30, 112, 2),
    (31, 112, 2), (106, 112, 2), (107, 112, 2), (213, 112, 2), (12, 256, 1), (9, 257, 1),
    (40, 256, 2), (40, 512, 2), (254, 1, 1), (255, 1, 1)])
def test_depthwise_band_edges(H, W, stride):
    for isa in ISAS:
        _C.set_isa(isa)
        args = make((2, 3, H, W, 3, 3, 3, stride, (1, 1, 1, 1), 1, 3), np.float32, seed=H)
        ref = torch_ref(*args)
        got = run_pyconv(*args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[np.float32], f"{name} H={H} W={W} {isa}")


# Stride-2 forward rows too tall for the split small-plane kernel (AVX2 float: eight outputs
# per vector from in-lane shuffles, a last partial vector recomputed over the previous one's
# columns): interior column counts from 7 (the scalar loop) through 8, 9, 15, 16, 17 and 24;
# both paddings' parities on each side, so the first and last rows mask kernel rows.
@pytest.mark.parametrize("W, pad", [
    (16, (1, 1, 1, 1)), (17, (1, 1, 1, 1)), (18, (1, 0, 1, 0)), (19, (0, 1, 0, 1)),
    (31, (1, 1, 1, 1)), (33, (1, 1, 1, 1)), (34, (0, 0, 0, 0)), (35, (1, 1, 1, 1)),
    (50, (1, 1, 0, 2)), (112, (1, 1, 1, 1)), (113, (0, 1, 1, 0))])
def test_depthwise_stride2_rows(W, pad):
    for isa in ISAS:
        _C.set_isa(isa)
        args = make((2, 3, 151, W, 3, 3, 3, 2, pad, 1, 3), np.float32, seed=W)
        ref = torch_ref(*args)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[np.float32], f"{name} W={W} pad={pad} {isa}")


# The zero-padded copy of a source (conv_gemm.cpp's pad_source; at stride 2 on AVX2 float
# eight values a column phase at a time, masked loads at the row's ends, the last eight of
# a phase overlapping the ones before; phases under eight values by the scalar loop): padded
# rows of 7 through 36 values (4 through 18 a phase at stride 2), left paddings of both parities,
# sources read through views with longer rows; forward and both gradients, any thread count.
@pytest.mark.parametrize("W", [5, 6, 7, 13, 14, 15, 22, 30, 31])
@pytest.mark.parametrize("stride, pad", [(1, (1, 1, 1, 1)), (1, (0, 2, 3, 0)),
                                         (2, (1, 1, 1, 1)), (2, (2, 1, 0, 3)), (2, (0, 0, 3, 2))])
def test_padded_source_rows(W, stride, pad):
    for isa in ISAS:
        _C.set_isa(isa)
        x, w, b, dy, *rest = make((2, 5, 9, W, 16, 3, 3, stride, pad, 1, 1), np.float32, seed=W)
        args = (padded_rows(x), w, b, dy, *rest)
        ref = torch_ref(*args)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[np.float32], f"{name} W={W} {stride} {pad} {isa}")


# Lane depthwise kernels (csrc/conv/depthwise_lanes_impl.h: float, channels in lanes, 16 on
# AVX-512 then 8 on AVX2, planes whose interleaved copy fits 4 Ki pixels, blocks of
# L output columns and L copied source columns): channel counts around multiples of 8 and
# 16 (16-lane groups, then an 8-lane one, the rest by the per-plane kernels), output widths
# from just below 8 and 16, strides 1-3 each way, dilation, paddings past the kernel
# (backward-data's flipped padding negative: rows and columns cropped), empty batches, and
# views with padded rows; forward, both gradients, any thread count.
@st.composite
def dw_lanes_problem(draw):
    C = draw(st.sampled_from([8, 9, 15, 16, 17, 24, 31, 32, 33, 40]))
    R = draw(st.sampled_from([3, 3, 3, 5, 5, 1, 2, 7]))
    S = draw(st.sampled_from([R, R, 3, 5, 4]))
    sh = draw(st.sampled_from([1, 1, 2, 3]))
    sw = draw(st.sampled_from([sh, sh, 1, 2]))
    dh, dw = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2)]))
    pad = tuple(draw(st.integers(0, 4)) for _ in range(4))
    H = max(draw(st.integers(1, 40)), (R - 1) * dh + 1 - pad[0] - pad[1])
    W = max(draw(st.integers(1, 60)), (S - 1) * dw + 1 - pad[2] - pad[3])
    N = draw(st.sampled_from([0, 1, 1, 2]))
    return (N, C, H, W, C, R, S, (sh, sw), pad, (dh, dw), C)


def padded_rows(a, extra=3):
    """The same values in a view whose rows (and planes) are longer than its width."""
    return np.pad(a, ((0, 0), (0, 0), (0, 1), (0, extra)))[:, :, :a.shape[2], :a.shape[3]]


@given(dw_lanes_problem(), st.booleans())
def test_depthwise_lanes_sweep(shape, views):
    args = make(shape, np.float32, seed=shape[1] * 100 + shape[3])
    ref = torch_ref(*args)
    if views:
        args = (padded_rows(args[0]),) + args[1:3] + (padded_rows(args[3], 5),) + args[4:]
    for isa in ISAS:
        _C.set_isa(isa)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[np.float32], f"{name} {shape} views={views} {isa}")


# Stride-2 backward-data by column parity (any kernel up to 7x7; 3x3 has its own unrolled
# rows): each kernel size with paddings of both parities on each side and widths below,
# at and past a block of 8 and of 16 dx pixels; 24 channels (a 16-lane and an 8-lane group
# on AVX-512).
@pytest.mark.parametrize("R, S", [(5, 5), (7, 7), (4, 4), (2, 2), (1, 1), (3, 5), (5, 3)])
@pytest.mark.parametrize("W, pad", [(7, (0, 1, 1, 0)), (16, (2, 2, 2, 2)), (23, (1, 0, 3, 2)),
                                    (28, (3, 3, 0, 1)), (33, (1, 2, 1, 2))])
def test_depthwise_lanes_stride2_backward_data(R, S, W, pad):
    H = max(W // 2 + 3, R - pad[0] - pad[1])
    W = max(W, S - pad[2] - pad[3])
    args = make((2, 24, H, W, 24, R, S, 2, pad, 1, 24), np.float32, seed=R * 10 + S + W)
    ref = torch_ref(*args)
    for isa in ISAS:
        _C.set_isa(isa)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[np.float32], f"{name} {R}x{S} W={W} pad={pad} {isa}")


# Bands: planes taller than the interleaved band's 4 Ki pixels run in bands of output rows
# (112 columns: 33 rows a band at stride 1, 31 at dilation 2, 17 at stride 2, at either
# lane width), heights at and past band multiples; one output row per band (1360 columns);
# rows too wide for even one (1400 columns) stay with the per-plane kernels; 8 channels
# (8 lanes) and 16 (16 lanes on AVX-512).
@pytest.mark.parametrize("C", [8, 16])
@pytest.mark.parametrize("N, H, W, stride, dil", [
    (2, 33, 112, 1, 1), (1, 34, 112, 1, 1), (1, 67, 112, 1, 1), (1, 100, 113, 1, 2),
    (1, 70, 112, 2, 1), (1, 113, 112, 2, 1), (1, 4, 1360, 1, 1), (1, 3, 1400, 1, 1)])
def test_depthwise_lanes_bands(N, H, W, stride, dil, C):
    args = make((N, C, H, W, C, 3, 3, stride, (1, 1, 1, 1), dil, C), np.float32, seed=H + W)
    ref = torch_ref(*args)
    for isa in ISAS:
        _C.set_isa(isa)
        got = assert_threads_bitwise(args)
        for g, r, name in zip(got, ref, ("forward", "grad_input", "grad_weight", "grad_bias")):
            assert_close(g, r, TOL[np.float32], f"{name} {H}x{W} s{stride} d{dil} {isa}")


# The 16-lane kernels (AVX-512) run each output's FMA chain in the 8-lane kernels' (AVX2)
# order: the same bits, forward (bias + relu in the stores), both stride-1 and stride-2
# input gradients and the weight gradient, across kernel sizes, plane widths below, at
# and past 16, and bands (the 112-wide planes).
@pytest.mark.skipif("avx512" not in ISAS, reason="needs an AVX-512 CPU")
@pytest.mark.parametrize("H, W, R, stride, pad", [
    (14, 14, 3, 1, 1), (7, 7, 3, 1, 1), (28, 28, 3, 2, 1), (21, 33, 5, 1, 2), (15, 19, 5, 2, 2),
    (9, 16, 7, 1, 3), (40, 112, 3, 1, 1), (36, 112, 3, 2, 1), (11, 13, 2, 1, 0)])
def test_depthwise_16_lanes_bitwise_8(H, W, R, stride, pad):
    args = make((2, 32, H, W, 32, R, R, stride, (pad,) * 4, 1, 32), np.float32, seed=H * W + R)
    got = {}
    for isa in ("avx2", "avx512"):
        _C.set_isa(isa)
        x, w, b, _, st, _, _, g = args
        fused = pyconv.functional.conv2d(x, w, b, stride=st, padding=pad, groups=g,
                                         activation="relu")
        got[isa] = run_pyconv(*args)[:3] + [fused]
    for a, b, name in zip(got["avx2"], got["avx512"], ("forward", "grad_input", "grad_weight",
                                                       "forward+bias+relu")):
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("P, Q", [(1, 1), (3, 7), (4, 8), (5, 9), (2, 17), (7, 33)])
def test_bias_gradient_is_the_rounded_exact_sum(P, Q, isa):
    """grad_bias sums grad_output in double (16 lanes by row parity and column): within a
    float32 rounding of the exact sum, and bitwise the same for a channels-last
    grad_output (the strided path) and for any thread count."""
    _C.set_isa(isa)
    rng = np.random.default_rng(P * 100 + Q)
    dy = rng.standard_normal((3, 5, P, Q)).astype(np.float32) * 100
    x = rng.standard_normal((3, 2, P, Q)).astype(np.float32)
    w = rng.standard_normal((5, 2, 1, 1)).astype(np.float32)
    exact = dy.astype(np.float64).sum(axis=(0, 2, 3))
    got = []
    for nt in (1, 2, 3):
        pyconv.set_num_threads(nt)
        for g in (dy, np.ascontiguousarray(dy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
            got.append(_C.conv2d_backward(g, x, w, (1, 1), (0, 0, 0, 0), (1, 1), 1,
                                          (False, False, True))[2])
    np.testing.assert_allclose(got[0], exact, rtol=1e-6, atol=1e-4)
    for g in got[1:]:
        assert np.array_equal(g, got[0])


# (N, C, H, W, K, R, S, stride, pad): outputs (forward) and input gradients (stride-1
# backward-data) of 12 MiB and more are written with non-temporal stores when two or more
# threads run: 32-wide rows (aligned tiles stream), 35-wide rows (tiles mostly unaligned:
# cached stores), an in-place-B stem (conv1-like) and a stride-1 backward-data into a
# 16 MiB dx. The values must not depend on the store kind: 1 and 2 threads bitwise equal.
STREAM_SHAPES = [
    (48, 3, 64, 64, 64, 4, 4, 2, (1, 1, 1, 1)),
    (48, 3, 35, 35, 64, 5, 5, 1, (2, 2, 2, 2)),
    (48, 3, 32, 32, 64, 5, 5, 1, (2, 2, 2, 2)),
    (16, 64, 64, 64, 8, 3, 3, 1, (1, 1, 1, 1)),
]


@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=str)
def test_streaming_stores_for_large_outputs(shape):
    N, C, H, W, K, R, S, stride, pad = shape
    x, w, b, dy, stride, pad, dil, groups = make((N, C, H, W, K, R, S, stride, pad, 1, 1),
                                                 np.float32, seed=21)
    assert max(N * K * dy.shape[2] * dy.shape[3], x.size) * 4 >= 12 << 20
    outs = []
    for nt in (1, 2):
        pyconv.set_num_threads(nt)
        y = _C.conv2d_forward(x, w, b, stride, pad, dil, groups, _C.ACTIVATIONS["relu"], 0.0)
        gi = _C.conv2d_backward(dy, x, w, stride, pad, dil, groups, [True, False, False])[0]
        outs.append((y, gi))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    ref = torch_ref(x, w, b, dy, stride, pad, dil, groups)
    assert_close(outs[1][0], np.maximum(ref[0], 0), TOL[np.float32], "forward + bias + relu")
    assert_close(outs[1][1], ref[1], TOL[np.float32], "grad_input")


@pytest.mark.parametrize("isa", ISAS)
def test_streaming_stores_of_the_few_channel_direct_kernel(isa):
    """The direct kernel of layers with few source channels (a 3-channel 3x3 stem at
    224x224: 25.7 MB out) streams its aligned 16-column rows on AVX-512 with two threads and
    no activation after it (with one, with relu: cached stores): the same values."""
    _C.set_isa(isa)
    x, w, b, dy, stride, pad, dil, groups = make((2, 3, 224, 224, 64, 3, 3, 1, (1, 1, 1, 1), 1, 1),
                                                 np.float32, seed=22)
    outs = []
    for nt in (1, 2):
        pyconv.set_num_threads(nt)
        outs.append(_C.conv2d_forward(x, w, b, stride, pad, dil, groups))
    relu = _C.conv2d_forward(x, w, b, stride, pad, dil, groups, _C.ACTIVATIONS["relu"], 0.0)
    assert np.array_equal(outs[0], outs[1])
    assert np.array_equal(relu, np.maximum(outs[1], 0))
    assert_close(outs[1], torch_ref(x, w, b, dy, stride, pad, dil, groups)[0], TOL[np.float32],
                 f"forward {isa}")
