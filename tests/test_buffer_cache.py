"""The output buffer cache (csrc/common/buffer_cache.h): large outputs reuse the memory of
dropped arrays. Checked here: reuse happens, the limit holds, arrays behave as numpy's,
and every kernel writes all of its output whatever memory it is handed (new buffers
filled with NaN bytes, compared with torch)."""
import gc
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import pyconv._C as C
from pyconv import ops

from conftest import tolerance


@pytest.fixture(autouse=True)
def _restore_cache():
    limit = C._cache_info()["limit"]
    yield
    C._set_cache_fill(-1)
    C._set_cache_limit(limit)


def _conv(x, w, **kw):
    return ops.conv2d(x, w, None, **kw)


def test_dropped_output_is_reused():
    C._empty_cache()
    x = np.ones((4, 8, 64, 64), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    y = _conv(x, w, padding=1)  # 512 KiB
    addr = y.__array_interface__["data"][0]
    before = C._cache_info()  # (with the call's scratch, back in the cache too)
    del y
    info = C._cache_info()
    assert info["idle_blocks"] == before["idle_blocks"] + 1
    assert info["idle_bytes"] >= before["idle_bytes"] + 4 * 8 * 64 * 64 * 4
    # (How many blocks are idle after the next call depends on which thread ran which
    # task: a worker whose scratch grows hands its smaller block to the cache.)
    y = _conv(x, w, padding=1)
    assert y.__array_interface__["data"][0] == addr
    assert C._cache_info()["hits"] > info["hits"]
    np.testing.assert_array_equal(y[:, :, 1:-1, 1:-1], 72.0)


def test_scratch_goes_back_to_the_cache():
    """The calling thread's copies of whole arrays (here a dilated convolution's polyphase
    sub-images of x and y, and the backward-data's of dy and dx) are handed to the cache
    when the op returns: bounded by its limit, freed by _empty_cache, reused by the next
    call."""
    x = np.random.default_rng(2).standard_normal((2, 16, 64, 64)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((16, 16, 3, 3)).astype(np.float32)
    C._set_winograd("on")
    try:
        C._empty_cache()
        y = ops.conv2d(x, w, None, padding=2, dilation=2)
        assert C._cache_info()["idle_bytes"] >= 2 * x.nbytes  # sub-images of x and of y
        hits = C._cache_info()["hits"]
        y2 = ops.conv2d(x, w, None, padding=2, dilation=2)
        assert C._cache_info()["hits"] >= hits + 2  # (y2 and the sub-images: 3 blocks, 2 idle)
        np.testing.assert_array_equal(y, y2)
        C._set_cache_limit(0)
        assert C._cache_info()["idle_blocks"] == 0
        gx, _, _ = ops.conv2d_backward(y, x, w, padding=2, dilation=2,
                                       output_mask=(True, False, False))
        assert C._cache_info()["idle_blocks"] == 0
        ref = torch.ops.aten.convolution_backward(
            torch.from_numpy(y), torch.from_numpy(x), torch.from_numpy(w), None, [1, 1], [2, 2],
            [2, 2], False, [0, 0], 1, [True, False, False])[0].numpy()
        np.testing.assert_allclose(gx, ref, rtol=1e-4, atol=1e-3)
    finally:
        C._set_winograd("auto")


def test_views_keep_the_block_alive():
    C._empty_cache()
    x = np.random.default_rng(0).standard_normal((2, 16, 64, 64)).astype(np.float32)
    y = ops.relu(x)
    v = y[1, 3]
    del y
    gc.collect()
    assert C._cache_info()["idle_blocks"] == 0  # v still holds it
    z = ops.relu(x)  # must not get v's memory
    assert not np.shares_memory(v, z)
    np.testing.assert_array_equal(v, np.maximum(x[1, 3], 0))
    del v, z
    assert C._cache_info()["idle_blocks"] == 2  # y's block and z's


def test_arrays_are_ordinary():
    y = ops.relu(np.ones((256, 256), np.float32))
    assert y.flags.writeable and y.flags.c_contiguous and y.flags.aligned
    assert y.__array_interface__["data"][0] % 64 == 0
    y += 1
    assert (y == 2).all()
    assert np.array_equal(np.load(_roundtrip(y)), y)
    small = ops.relu(np.ones((4, 4), np.float32))  # below the cache's size: numpy's own
    assert small.flags.owndata


def _roundtrip(a):
    import io
    f = io.BytesIO()
    np.save(f, a)
    f.seek(0)
    return f


def test_limit_and_empty_cache():
    C._set_cache_limit(1 << 20)
    arrays = [ops.relu(np.ones((128, 1024), np.float32)) for _ in range(4)]  # 512 KiB each
    del arrays
    info = C._cache_info()
    assert info["idle_bytes"] <= 1 << 20 and info["idle_blocks"] == 1  # 516 KiB blocks
    C._empty_cache()
    assert C._cache_info()["idle_blocks"] == 0 and C._cache_info()["idle_bytes"] == 0
    C._set_cache_limit(0)
    y = ops.relu(np.ones((128, 1024), np.float32))
    del y
    assert C._cache_info()["idle_blocks"] == 0
    with pytest.raises(ValueError, match="_set_cache_limit"):
        C._set_cache_limit(-1)


def test_threads_share_the_cache():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 96, 96)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    want = _conv(x, w, padding=1)
    errors = []

    def work():
        try:
            for _ in range(30):
                np.testing.assert_array_equal(_conv(x, w, padding=1), want)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def _cases(rng, dtype):
    """(name, pyconv thunk, torch thunk) over the kernels' families, outputs >= 64 KiB."""
    def a(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, w = a(4, 32, 20, 20), a(32, 32, 3, 3)
    x5, w5 = a(8, 32, 16, 16), a(32, 32, 5, 5)
    x1, w1 = a(4, 64, 20, 20), a(48, 64, 1, 1)
    xd, wd = a(4, 32, 30, 30), a(32, 1, 3, 3)
    xg, wg = a(4, 32, 20, 20), a(32, 8, 3, 3)
    xs, ws = a(4, 3, 40, 40), a(16, 3, 7, 7)
    xt, wt = a(4, 32, 11, 11), a(32, 16, 4, 4)
    t = torch.from_numpy
    cases = []
    for name, xx, ww, kw in [("dense3x3", x, w, dict(padding=1)), ("dense5x5", x5, w5, dict(padding=2)),
                             ("1x1", x1, w1, {}), ("depthwise", xd, wd, dict(padding=1, groups=32)),
                             ("grouped", xg, wg, dict(padding=1, groups=4)),
                             ("stem", xs, ws, dict(stride=2, padding=3)),
                             ("dilated", x, w, dict(padding=2, dilation=2))]:
        cases.append((name, lambda xx=xx, ww=ww, kw=kw: _conv(xx, ww, **kw),
                      lambda xx=xx, ww=ww, kw=kw: TF.conv2d(t(xx), t(ww), **kw)))
        ref = TF.conv2d(t(xx), t(ww), **kw)
        g = a(*ref.shape)
        p = dict(stride=kw.get("stride", 1), padding=kw.get("padding", 0),
                 dilation=kw.get("dilation", 1), groups=kw.get("groups", 1))

        def tb(xx=xx, ww=ww, g=g, p=p):
            return torch.ops.aten.convolution_backward(
                t(g), t(xx), t(ww), None, [p["stride"]] * 2, [p["padding"]] * 2,
                [p["dilation"]] * 2, False, [0, 0], p["groups"], [True, True, False])[:2]
        cases.append((name + " backward",
                      lambda xx=xx, ww=ww, g=g, p=p: ops.conv2d_backward(g, xx, ww, **p)[:2], tb))
    cases.append(("conv_transpose2d", lambda: ops.conv_transpose2d(xt, wt, None, 2, 1),
                  lambda: TF.conv_transpose2d(t(xt), t(wt), None, 2, 1)))
    xp = a(4, 32, 33, 31)
    y, i = TF.max_pool2d(t(xp), 3, 2, 1, return_indices=True)
    gp = a(*y.shape)
    cases.append(("max_pool2d", lambda: ops.max_pool2d(xp, 3, 2, 1, return_indices=True),
                  lambda: TF.max_pool2d(t(xp), 3, 2, 1, return_indices=True)))
    cases.append(("max_pool2d_backward", lambda: ops.max_pool2d_backward(gp, xp, i.numpy(), 3, 2, 1),
                  lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                      t(gp), t(xp), [3, 3], [2, 2], [1, 1], [1, 1], False, i)))
    y2, i2 = TF.max_pool2d(t(xp), 2, return_indices=True)
    cases.append(("max_unpool2d", lambda: ops.max_unpool2d(y2.numpy(), i2.numpy(), 2, output_size=(33, 31)),
                  lambda: TF.max_unpool2d(y2, i2, 2, output_size=(33, 31))))
    cases.append(("gelu", lambda: ops.gelu(xp), lambda: TF.gelu(t(xp))))
    cases.append(("silu backward", lambda: ops.silu_backward(gp, y.numpy()),
                  lambda: torch.ops.aten.silu_backward(t(gp), y)))
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_output_fully_written(dtype):
    """New buffers full of NaN bytes (0xFF): an output element a kernel forgot to write
    would stay NaN and differ from torch."""
    C._set_cache_fill(0xFF)
    C._empty_cache()
    for name, ours, theirs in _cases(np.random.default_rng(2), dtype):
        for _ in range(2):  # a fresh block, then a reused one
            got, ref = ours(), theirs()
            got = got if isinstance(got, tuple) else (got,)
            ref = ref if isinstance(ref, tuple) else (ref,)
            for g, r in zip(got, ref):
                r = r.numpy()
                rtol, atol = tolerance(dtype, r)
                np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=name)
            del got
