"""max_pool2d / max_unpool2d and their backward against torch: hypothesis sweeps
over shapes, parameters and values (ties, NaN, -inf), fixed edge cases, the
classic tutorial example and every error case. Pool values and indices compare
exactly; both the SIMD and the scalar kernels run."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

from pyconv import _C, ops

ISAS = sorted({"scalar", _C.best_isa()})


@pytest.fixture(params=ISAS, scope="module")
def isa(request):
    before = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(before)


def make_noncontiguous(a):
    """Same values, non-unit strides on every axis but the last... and the last."""
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1] + 1,), a.dtype)
    big[..., 1::2] = a
    return big[..., 1::2]


def transposed_view(a):
    """Same values, last two axes swapped in memory (W-stride != 1)."""
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(a, -1, -2)), -1, -2)


@st.composite
def pool_problems(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pad = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    ceil = draw(st.booleans())
    N = draw(st.sampled_from([0, 1, 1, 2]))
    C = draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 24)), draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed", "unbatched"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    # Small integers make ties common; NaN and -inf (whole -inf windows too) sprinkled in.
    x = rng.integers(-3, 4, (N, C, H, W)).astype(dtype)
    if draw(st.booleans()):
        x[rng.random(x.shape) < 0.05] = np.nan
    if draw(st.booleans()):
        x[rng.random(x.shape) < 0.4] = -np.inf
    return dict(x=x, kernel_size=(kh, kw), stride=stride, padding=pad, dilation=dil,
                ceil_mode=ceil, layout=layout, seed=seed)


def _layout(x, layout):
    if layout == "strided":
        return make_noncontiguous(x)
    if layout == "transposed":
        return transposed_view(x)
    if layout == "unbatched" and x.shape[0] == 1:
        return x[0]
    return x


@given(pool_problems())
def test_max_pool2d_matches_torch(isa, pr):
    kw = {k: pr[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    x = _layout(pr["x"], pr["layout"])
    tx = torch.tensor(np.ascontiguousarray(x))
    try:
        ty, ti = TF.max_pool2d(tx, return_indices=True, **kw)
    except RuntimeError:
        with pytest.raises(ValueError, match="max_pool2d: "):
            ops.max_pool2d(x, return_indices=True, **kw)
        return
    before = x.copy()
    y, i = ops.max_pool2d(x, return_indices=True, **kw)
    assert y.dtype == x.dtype and i.dtype == np.int64
    np.testing.assert_array_equal(y, ty.numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(i, ti.numpy())
    np.testing.assert_array_equal(ops.max_pool2d(x, **kw), y)
    np.testing.assert_array_equal(x, before)
    H, W = x.shape[-2:]
    if i.size and i.max() >= H * W:  # torch's placeholder for a window with no input tap
        with pytest.raises(ValueError, match="max_pool2d_backward: found an invalid index"):
            ops.max_pool2d_backward(np.ones_like(y), x, i, **kw)
        return
    g = np.random.default_rng(pr["seed"]).standard_normal(y.shape).astype(x.dtype)
    tg = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.tensor(g), tx, list(pr["kernel_size"]), list(pr["stride"] or pr["kernel_size"]),
        list(pr["padding"]), list(pr["dilation"]), pr["ceil_mode"], ti).numpy()
    gi = ops.max_pool2d_backward(g, x, i, **kw)
    assert gi.shape == x.shape and gi.dtype == x.dtype
    if x.dtype == np.float64:
        np.testing.assert_array_equal(gi, tg)
    else:
        np.testing.assert_allclose(gi, tg, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tutorial_example(isa, dtype):
    x = np.array([[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0], [5, 2, 3, 1, 1],
                  [2, 1, 0, 1, 1]], dtype)[None, None]
    y = ops.max_pool2d(x, kernel_size=3, ceil_mode=True)
    np.testing.assert_array_equal(y, np.array([[[[2, 3], [5, 1]]]], dtype))
    y = ops.max_pool2d(x[0], kernel_size=3, ceil_mode=True)  # unbatched
    np.testing.assert_array_equal(y, np.array([[[2, 3], [5, 1]]], dtype))


def _both(x, **kw):
    y, i = ops.max_pool2d(x, return_indices=True, **kw)
    ty, ti = TF.max_pool2d(torch.tensor(np.ascontiguousarray(x)), return_indices=True, **kw)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    return y, i


def test_ties_first_max_wins(isa):
    x = np.zeros((1, 1, 6, 40), np.float32)  # all equal: every index is its window's first tap
    y, i = _both(x, kernel_size=3, stride=1, padding=1)
    assert i[0, 0, 1, 1] == 0  # window rows 0..2, cols 0..2
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 5.0  # row-major order: (0, 1) comes first
    y, i = _both(x, kernel_size=2, stride=1)
    assert i[0, 0, 0, 0] == 1


def test_nan_propagates_last_nan_wins(isa):
    x = np.arange(2 * 40, dtype=np.float32).reshape(1, 1, 2, 40)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 1, 1] = np.nan
    y, i = _both(x, kernel_size=2, stride=2)
    assert np.isnan(y[0, 0, 0, 0]) and i[0, 0, 0, 0] == 41


def test_all_minus_inf_window(isa):
    x = np.full((1, 2, 8, 40), -np.inf, np.float64)
    y, i = _both(x, kernel_size=3, stride=2, padding=1)
    assert np.all(y == -np.inf)


def test_overlapping_windows_accumulate(isa):
    x = np.zeros((1, 1, 3, 3), np.float64)
    x[0, 0, 1, 1] = 1.0  # the max of all four 2x2 stride-1 windows
    y, i = _both(x, kernel_size=2, stride=1)
    gi = ops.max_pool2d_backward(np.ones_like(y), x, i, kernel_size=2, stride=1)
    assert gi[0, 0, 1, 1] == 4.0 and gi.sum() == 4.0


def test_large_plane_simd_path(isa):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 57, 113)).astype(np.float32)
    for kw in [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2),
               dict(kernel_size=3, stride=1), dict(kernel_size=(3, 2), stride=(1, 3), dilation=2),
               dict(kernel_size=5, stride=4, padding=2, ceil_mode=True)]:
        _both(x, **kw)


@pytest.mark.parametrize("minf", [False, True])
def test_narrow_rows_flat_path(isa, minf):
    # Output rows narrower than a vector: the plane's outputs run as one flat sequence (a
    # 2x2 pool of 8x8 planes, the CIFAR-10 net's last; GoogLeNet's 3x3 stride-2 ceil_mode
    # pool of 14x14 planes), every tap inside the input read unmasked, the taps of windows
    # over padding or past the input (ceil_mode) masked; with -inf, whole windows of it
    # keep the first valid tap's index.
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (3, 5, 9, 11)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    if minf:
        x[rng.random(x.shape) < 0.6] = -np.inf
    for v in (x[..., :8, :8], x, x[:, ::-1, ::-1, ::-1], x[:, :, ::2, 1:]):
        for kw in [dict(kernel_size=2), dict(kernel_size=3, stride=1, dilation=2),
                   dict(kernel_size=(2, 3), stride=(3, 2)), dict(kernel_size=2, ceil_mode=True),
                   dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1, padding=1),
                   dict(kernel_size=3, stride=2, ceil_mode=True),
                   dict(kernel_size=(5, 3), stride=(2, 3), padding=(2, 1), dilation=(1, 2)),
                   dict(kernel_size=(4, 5), stride=2, padding=2, ceil_mode=True)]:
            _both(v, **kw)
    g = rng.integers(-2, 3, (2, 9, 14, 14)).astype(np.float32)
    _both(g, kernel_size=3, stride=2, ceil_mode=True)
    # Stride-1 "same" pools of contiguous narrow planes (GoogLeNet's 3x3 pools at 7x7): a
    # tap of 8 consecutive outputs is 8 consecutive values, one (masked) load.
    for v in (np.ascontiguousarray(x[..., :7, :7]), np.ascontiguousarray(x[..., :5, :6])):
        for kw in [dict(kernel_size=3, stride=1, padding=1),
                   dict(kernel_size=(3, 5), stride=1, padding=(1, 2)),
                   dict(kernel_size=(5, 3), stride=1, padding=(2, 1)),
                   dict(kernel_size=5, stride=1, padding=2, ceil_mode=True),
                   dict(kernel_size=1, stride=1)]:  # (every tap inside: unmasked loads)
            _both(v, **kw)


def test_large_gradient_streamed(isa):
    # grad_input over 16 MiB takes the scratch-buffer + streaming-store path.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 64, 128, 130)).astype(np.float32)
    y, i = _both(x, kernel_size=3, stride=2, padding=1)
    g = rng.standard_normal(y.shape).astype(np.float32)
    tg = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.tensor(g), torch.tensor(x), [3, 3], [2, 2], [1, 1], [1, 1], False, torch.tensor(i))
    np.testing.assert_allclose(ops.max_pool2d_backward(g, x, i, 3, 2, 1), tg.numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, kw", [
    ((1, 87011, 7, 7), dict(kernel_size=3, stride=1, padding=1, ceil_mode=True)),
    ((2, 12503, 13, 13), dict(kernel_size=3, stride=2, ceil_mode=True))], ids=["7x7", "13x13"])
def test_large_gradient_of_small_planes_streamed_in_runs(shape, kw):
    # Over 16 MiB of planes under 1 KiB (GoogLeNet's and AlexNet's overlapping 3x3 pools):
    # scattered into a scratch run of up to 16 KiB of consecutive planes, streamed out together;
    # plane counts not a multiple of the run. An index outside its plane in the last run
    # is reported, not written.
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(np.float32)
    y, i = ops.max_pool2d(x, return_indices=True, **kw)
    g = rng.standard_normal(y.shape).astype(np.float32)
    k, st, pd = kw["kernel_size"], kw["stride"], kw.get("padding", 0)
    tg = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.tensor(g), torch.tensor(x), [k, k], [st, st], [pd, pd], [1, 1], True,
        torch.tensor(i))
    np.testing.assert_array_equal(ops.max_pool2d_backward(g, x, i, k, st, pd, ceil_mode=True),
                                  tg.numpy())
    i[-1, -1, 0, 0] = shape[2] * shape[3]
    with pytest.raises(ValueError, match="max_pool2d_backward"):
        ops.max_pool2d_backward(g, x, i, k, st, pd, ceil_mode=True)


def _scatter_ref(g, i, shape):
    """max_pool2d_backward by definition: zeros, plus each gradient added at its index."""
    ref = np.zeros((shape[0] * shape[1], shape[2] * shape[3]), g.dtype)
    gp, ip = g.reshape(len(ref), -1), i.reshape(len(ref), -1)
    for q in range(len(ref)):
        np.add.at(ref[q], ip[q], gp[q])
    return ref.reshape(shape)


# 2x2 windows of column stride 2 whose rows do not overlap, on rows of 24 columns and
# more: dx is computed in order by comparing each window's index with its positions
# (AVX2), each value written once, in place; other rows (strides above the kernel, odd H)
# and the last column of an odd W are zeros. Windows whose rows are apart (kernel (1, 2),
# stride 3, dilation). Rows of 16 columns take the scatter.
DISJOINT = [dict(kernel_size=2), dict(kernel_size=2, padding=(1, 0)),
            dict(kernel_size=(1, 2), stride=2), dict(kernel_size=2, stride=(3, 2)),
            dict(kernel_size=2, stride=(3, 2), dilation=(2, 1)),
            dict(kernel_size=2, ceil_mode=True)]


@pytest.mark.parametrize("kw", DISJOINT)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_disjoint_windows_backward(isa, kw, dtype):
    rng = np.random.default_rng(8)
    for shape in [(2, 3, 96, 100), (1, 2, 91, 101), (1, 1, 97, 180), (3, 4, 9, 25),
                  (2, 3, 8, 16)]:
        x = rng.integers(-3, 4, shape).astype(dtype)  # ties: the first maximum's index
        y, i = _both(x, **kw)
        g = rng.standard_normal(y.shape).astype(dtype)
        g.flat[::7] = -0.0  # zeros plus -0.0 is +0.0 in torch: the sign must match too
        t = kw.get("stride", kw["kernel_size"])
        tg = torch.ops.aten.max_pool2d_with_indices_backward(
            torch.tensor(g), torch.tensor(x), list(np.broadcast_to(kw["kernel_size"], 2)),
            list(np.broadcast_to(t, 2)), list(np.broadcast_to(kw.get("padding", 0), 2)),
            list(np.broadcast_to(kw.get("dilation", 1), 2)), kw.get("ceil_mode", False),
            torch.tensor(i)).numpy()
        gi = ops.max_pool2d_backward(g, x, i, **kw)
        np.testing.assert_array_equal(gi, tg)
        np.testing.assert_array_equal(np.signbit(gi), np.signbit(tg))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_disjoint_windows_backward_with_foreign_indices(isa, dtype):
    # Indices that are not this pooling's (anywhere in the plane, repeated) take the plain
    # scatter for their plane: the planes around them keep the fast path.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 96, 100)).astype(dtype)
    y, i = ops.max_pool2d(x, 2, return_indices=True)
    g = rng.standard_normal(y.shape).astype(dtype)
    i = i.copy()
    i[0, 1] = rng.integers(0, 96 * 100, i[0, 1].shape)
    i[1, 2, 5, 7] = i[1, 2, 5, 8]  # one index in its neighbour's window
    i[1, 3, 0, 0] = 1  # the other position of its own window's first row: still its window
    np.testing.assert_array_equal(ops.max_pool2d_backward(g, x, i, 2), _scatter_ref(g, i, x.shape))
    i[1, 0, 47, 49] = 96 * 100
    with pytest.raises(ValueError, match="max_pool2d_backward: found an invalid index 9600"):
        ops.max_pool2d_backward(g, x, i, 2)


def test_large_disjoint_gradient_streamed(isa):
    # Over 16 MiB: the fast path's rows go through a buffer and out with streaming stores
    # (an odd W: its last column stays zero in the buffer).
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 128, 190, 181)).astype(np.float32)
    y, i = _both(x, kernel_size=2)
    g = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(ops.max_pool2d_backward(g, x, i, 2), _scatter_ref(g, i, x.shape))


def test_negative_strides(isa):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 4, (2, 3, 17, 45)).astype(np.float32)
    for v in (x[:, ::-1, ::-1], x[..., ::-1], x[:, :, 1::2, 2:]):
        y, i = ops.max_pool2d(v, 3, 2, 1, return_indices=True)
        ty, ti = TF.max_pool2d(torch.tensor(v.copy()), 3, 2, 1, return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(i, ti.numpy())


def test_misaligned_arrays():
    buf = np.zeros(4 * 2 * 5 * 5 + 1, np.uint8)
    x = np.frombuffer(buf.data, np.float32, 50, 1).reshape(1, 2, 5, 5)
    y, i = ops.max_pool2d(x, 2, return_indices=True)
    assert ops.max_pool2d_backward(y, x, i, 2).shape == x.shape
    assert ops.max_unpool2d(y, i, 2, output_size=(5, 5)).shape == x.shape


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    y, i = ops.max_pool2d(x, 2, return_indices=True)
    assert y.shape == (0, 3, 2, 2) and i.shape == (0, 3, 2, 2)
    assert ops.max_pool2d_backward(y, x, i, 2).shape == x.shape


def test_no_input_tap_window():
    # W=2, kernel width 2, dilation 3, padding 1: the only window's taps are columns -1 and 2.
    x = np.ones((1, 1, 2, 2), np.float32)
    kw = dict(kernel_size=(1, 2), stride=1, padding=(0, 1), dilation=(1, 3))
    y, i = _both(x, **kw)
    assert np.all(y == -np.inf)
    with pytest.raises(ValueError, match="max_pool2d_backward: found an invalid index"):
        ops.max_pool2d_backward(np.ones_like(y), x, i, **kw)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_count_does_not_change_results(threads):
    import pyconv
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (2, 5, 30, 31)).astype(np.float32)
    pyconv.set_num_threads(1)
    y1, i1 = ops.max_pool2d(x, 3, 2, 1, return_indices=True)
    pyconv.set_num_threads(threads)
    y, i = ops.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, y1)
    np.testing.assert_array_equal(i, i1)


# ---- max_unpool2d ----

@st.composite
def unpool_problems(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    s = stride or k
    pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    default = [(H - 1) * s[0] - 2 * pad[0] + k[0], (W - 1) * s[1] - 2 * pad[1] + k[1]]
    out = None
    if draw(st.booleans()) and min(default[d] + s[d] - 1 for d in range(2)) >= 1:
        out = [draw(st.integers(max(1, default[d] - s[d] + 1), default[d] + s[d] - 1))
               for d in range(2)]
        if draw(st.booleans()):
            out = [N, C] + out
    size = out[-2:] if out else default
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    unbatched = draw(st.booleans()) and N == 1
    return dict(k=k, stride=stride, pad=pad, shape=(N, C, H, W), size=size, out=out,
                dtype=dtype, seed=seed, unbatched=unbatched)


@given(unpool_problems())
def test_max_unpool2d_matches_torch(pr):
    if min(pr["size"]) <= 0:
        return
    rng = np.random.default_rng(pr["seed"])
    x = rng.standard_normal(pr["shape"]).astype(pr["dtype"])
    # Distinct valid indices per plane: with duplicates torch's winner depends on its code path.
    N, C, H, W = pr["shape"]
    osz = pr["size"][0] * pr["size"][1]
    if H * W > osz:
        return
    idx = np.stack([rng.permutation(osz)[:H * W] for _ in range(N * C)]).reshape(N, C, H, W)
    out = pr["out"]
    if pr["unbatched"]:
        x, idx = x[0], idx[0]
        if out is not None and len(out) == 4:
            out = out[1:]  # torch accepts (C, H, W) for unbatched input
    kw = dict(kernel_size=pr["k"], stride=pr["stride"], padding=pr["pad"])
    tx = torch.tensor(x, requires_grad=True)
    try:
        ty = TF.max_unpool2d(tx, torch.tensor(idx), output_size=out, **kw)
    except (RuntimeError, ValueError):
        with pytest.raises(ValueError, match="max_unpool2d"):
            ops.max_unpool2d(x, idx, output_size=out, **kw)
        return
    if pr["unbatched"] and out is not None and len(out) == 3:
        out = out[1:]
    y = ops.max_unpool2d(x, idx, output_size=out, **kw)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    g = rng.standard_normal(y.shape).astype(pr["dtype"])
    (tg,) = torch.autograd.grad(ty, tx, torch.tensor(g))
    gi = ops.max_unpool2d_backward(g, idx, output_size=out, **kw)
    np.testing.assert_array_equal(gi, tg.numpy())


def test_max_unpool2d_duplicates_last_wins():
    x = np.arange(8.0).reshape(1, 1, 8, 1)
    y = ops.max_unpool2d(x, np.zeros((1, 1, 8, 1), np.int64), 1)
    assert y[0, 0, 0, 0] == 7.0 and np.count_nonzero(y) == 1


def test_max_unpool2d_roundtrip():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    y, i = ops.max_pool2d(x, 2, return_indices=True)
    u = ops.max_unpool2d(y, i, 2, output_size=x.shape)
    tu = TF.max_unpool2d(torch.tensor(y), torch.tensor(i), 2, output_size=x.shape)
    np.testing.assert_array_equal(u, tu.numpy())
    assert u.shape == x.shape
    # Without output_size the output is 8x10: indices from the 9x11 input overflow it.
    with pytest.raises(ValueError, match="max_unpool2d: found an invalid index"):
        ops.max_unpool2d(y, i, 2)
    assert ops.max_unpool2d(y[..., :4, :5], i[..., :4, :5] % 80, 2).shape == (2, 3, 8, 10)


# ---- errors: ValueError / TypeError naming the op ----

X = np.zeros((1, 2, 5, 5), np.float32)


@pytest.mark.parametrize("args, kwargs, exc, msg", [
    ((X.astype(np.int32), 2), {}, TypeError, r"max_pool2d: input must have dtype float32 or float64, got int32"),
    (([[1.0]], 2), {}, TypeError, r"max_pool2d: input must be an array"),
    ((np.zeros((5, 5), np.float32), 2), {}, ValueError, r"max_pool2d: input must have 3 or 4 dimensions"),
    ((X, 0), {}, ValueError, r"max_pool2d: kernel_size must be positive"),
    ((X, (1, 2, 3)), {}, ValueError, r"max_pool2d: kernel_size must be an int or a pair"),
    ((X, 1.5), {}, TypeError, r"max_pool2d: kernel_size must be an int"),
    ((X, 2), dict(stride=0), ValueError, r"max_pool2d: stride must be positive"),
    ((X, 2), dict(dilation=0), ValueError, r"max_pool2d: dilation must be positive"),
    ((X, 2), dict(padding=-1), ValueError, r"max_pool2d: padding must be non-negative"),
    ((X, 3), dict(padding=2), ValueError, r"max_pool2d: padding must be at most half of kernel_size"),
    ((X, 6), {}, ValueError, r"max_pool2d: output size \(0, 0\) is too small"),
    ((X, 3), dict(dilation=3), ValueError, r"max_pool2d: output size .* is too small"),
    ((np.zeros((1, 0, 5, 5), np.float32), 2), {}, ValueError, r"max_pool2d: expected an input with non-zero channels"),
    ((np.zeros((1, 2, 0, 5), np.float32), 2), {}, ValueError, r"max_pool2d: expected an input with non-zero"),
])
def test_max_pool2d_bad_input(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        ops.max_pool2d(*args, **kwargs)


def test_max_pool2d_backward_bad_input():
    y, i = ops.max_pool2d(X, 2, return_indices=True)
    op = "max_pool2d_backward"
    with pytest.raises(TypeError, match=rf"{op}: indices must have dtype int64, got int32"):
        ops.max_pool2d_backward(y, X, i.astype(np.int32), 2)
    with pytest.raises(TypeError, match=rf"{op}: indices must be an array"):
        ops.max_pool2d_backward(y, X, i.tolist(), 2)
    with pytest.raises(ValueError, match=rf"{op}: indices must have shape \(1, 2, 2, 2\) .*got \(1, 2, 2, 1\)"):
        ops.max_pool2d_backward(y, X, i[..., :1], 2)
    with pytest.raises(ValueError, match=rf"{op}: indices must have 4 dimensions"):
        ops.max_pool2d_backward(y, X, i[0], 2)
    with pytest.raises(ValueError, match=rf"{op}: grad_output must have shape \(1, 2, 2, 2\) .*got \(1, 2, 3, 3\)"):
        ops.max_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), X, i, 2)
    with pytest.raises(TypeError, match=rf"{op}: input has dtype float64 but grad_output has dtype float32"):
        ops.max_pool2d_backward(y, X.astype(np.float64), i, 2)
    with pytest.raises(TypeError, match=rf"{op}: grad_output must have dtype float32 or float64"):
        ops.max_pool2d_backward(y.astype(np.int64), X, i, 2)
    for bad in (25, -1):
        j = i.copy()
        j[0, 1, 1, 1] = bad
        with pytest.raises(ValueError, match=rf"{op}: found an invalid index {bad} in indices .*\[0, 25\)"):
            ops.max_pool2d_backward(y, X, j, 2)
    with pytest.raises(ValueError, match=rf"{op}: padding must be at most half"):
        ops.max_pool2d_backward(y, X, i, 2, padding=2)


def test_max_unpool2d_bad_input():
    x = np.ones((1, 1, 2, 2), np.float32)
    i = np.zeros((1, 1, 2, 2), np.int64)
    op = "max_unpool2d"
    with pytest.raises(TypeError, match=rf"{op}: indices must have dtype int64, got int32"):
        ops.max_unpool2d(x, i.astype(np.int32), 2)
    with pytest.raises(ValueError, match=rf"{op}: indices must have shape \(1, 1, 2, 2\) \(the shape of input\), got \(1, 1, 2, 3\)"):
        ops.max_unpool2d(x, np.zeros((1, 1, 2, 3), np.int64), 2)
    with pytest.raises(ValueError, match=rf"{op}: indices must have 4 dimensions"):
        ops.max_unpool2d(x, i[0], 2)
    with pytest.raises(TypeError, match=rf"{op}: input must have dtype float32 or float64"):
        ops.max_unpool2d(x.astype(np.int64), i, 2)
    with pytest.raises(ValueError, match=rf"{op}: found an invalid index 99 in indices \(output planes are 4x4"):
        ops.max_unpool2d(x, np.full((1, 1, 2, 2), 99, np.int64), 2)
    with pytest.raises(ValueError, match=rf"{op}: found an invalid index -1"):
        ops.max_unpool2d(x, np.full((1, 1, 2, 2), -1, np.int64), 2)
    with pytest.raises(ValueError, match=rf"{op}: invalid output_size \(9, 9\): dim 0 must be strictly between 2 and 6"):
        ops.max_unpool2d(x, i, 2, output_size=(9, 9))
    with pytest.raises(ValueError, match=rf"{op}: output_size must have 2 or 4 entries, got 3"):
        ops.max_unpool2d(x, i, 2, output_size=(1, 4, 4))
    with pytest.raises(ValueError, match=rf"{op}: kernel_size must be positive"):
        ops.max_unpool2d(x, i, 0)
    with pytest.raises(ValueError, match=rf"{op}: stride must be positive"):
        ops.max_unpool2d(x, i, 2, stride=0)
    op = "max_unpool2d_backward"
    with pytest.raises(ValueError, match=rf"{op}: grad_output must have shape \(1, 1, 4, 4\)"):
        ops.max_unpool2d_backward(np.zeros((1, 1, 3, 3), np.float32), i, 2)
    with pytest.raises(ValueError, match=rf"{op}: found an invalid index 16"):
        ops.max_unpool2d_backward(np.zeros((1, 1, 4, 4), np.float32), np.full((1, 1, 2, 2), 16, np.int64), 2)
    with pytest.raises(TypeError, match=rf"{op}: indices must have dtype int64"):
        ops.max_unpool2d_backward(np.zeros((1, 1, 4, 4), np.float32), i.astype(np.float32), 2)


def test_pool_parameters_beyond_int32_and_bad_unpool_sizes_rejected_like_torch():
    # fuzz regressions
    x = np.ones((3, 1, 7, 3), np.float32)
    for kw in (dict(stride=(2**31, 1)), dict(dilation=(2**31, 1)), dict(padding=2**31)):
        with pytest.raises(RuntimeError):
            TF.max_pool2d(torch.from_numpy(x), 2, **kw)
        with pytest.raises(ValueError, match="max_pool2d: .*32-bit"):
            ops.max_pool2d(x, 2, **kw)
    y, idx = TF.max_pool2d(torch.ones(1, 3, 8, 4), 2, return_indices=True)
    y, idx = y.numpy(), idx.numpy()
    # padding 2**63-1: torch's size is negative; int64 arithmetic used to wrap around
    with pytest.raises(ValueError):
        TF.max_unpool2d(torch.from_numpy(y), torch.from_numpy(idx), 2, 2, 2**63 - 1)
    with pytest.raises(ValueError, match="max_unpool2d: output size out of range"):
        ops.max_unpool2d(y, idx, 2, 2, 2**63 - 1)
    # a default output size of 2**61 x 2**61 values: refused before pybind11 computes its
    # strides (a signed overflow under UBSan, test_fuzz at 6,000 calls), with numpy's error
    for kw in (dict(stride=2**61), dict(stride=2**30)):
        with pytest.raises(ValueError, match="array is too big"):
            ops.max_unpool2d(y.astype(np.float64), idx, 2, **kw)
    # (-1, -1) is no "default" output size
    with pytest.raises(ValueError):
        TF.max_unpool2d(torch.from_numpy(y), torch.from_numpy(idx), 2, output_size=(-1, -1))
    with pytest.raises(ValueError, match="max_unpool2d: output_size must be non-negative"):
        ops.max_unpool2d(y, idx, 2, output_size=(-1, -1))
    # an empty stride is max_pool2d's default, but not max_unpool2d's
    with pytest.raises(IndexError):
        TF.max_unpool2d(torch.from_numpy(y), torch.from_numpy(idx), 2, [])
    with pytest.raises(ValueError, match="max_unpool2d: stride"):
        ops.max_unpool2d(y, idx, 2, [])
    with pytest.raises(ValueError, match="max_unpool2d_backward: stride"):
        ops.max_unpool2d_backward(np.ones((1, 3, 8, 4), np.float32), idx, 2, [])
