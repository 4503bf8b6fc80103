"""No memory leak: resident memory stays flat over many calls of every op.

Each op of pyconv.functional is called on small arrays (outputs of 8-17 KB, so that
a leaked output or workspace per call would add megabytes), first for a warm-up
(allocator pools, thread pools, lazily built tables), then CALLS more times; the
resident set size from /proc/self/statm may grow by at most SLACK. The error path
is measured too: a call that raises (mismatched shapes) must free what it allocated.

By default CALLS = 1,000 per op; PYCONV_LONG_TESTS=1 runs the 10,000-call version.
PYCONV_MEMORY_STATS=path writes the measured growth per op as JSON.
"""
from __future__ import annotations

import gc
import json
import os
import sys

import numpy as np
import pytest

import pyconv.functional as F

LONG = os.environ.get("PYCONV_LONG_TESTS") == "1"
CALLS = 10_000 if LONG else 1_000
WARMUP = 200
SLACK = 3 << 20   # bytes; a leaked 8 KB output per call would be 8 MB over 1,000 calls
PAGE = os.sysconf("SC_PAGE_SIZE")
RESULTS: dict[str, dict] = {}

rng = np.random.default_rng(5)


def _r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


X = _r(1, 4, 16, 16)          # conv output (1, 8, 16, 16) float32: 8 KB
W = _r(8, 4, 3, 3)
B = _r(8)
GY = _r(1, 8, 16, 16)
WT = _r(4, 4, 3, 3)           # transpose: (1, 4, 33, 33), 17 KB
GT = _r(1, 4, 33, 33)
XL, WL, BL = _r(32, 32), _r(64, 32), _r(64)    # (32, 64): 8 KB
GL = _r(32, 64)
XA = _r(4, 1024)              # activations: 16 KB
GA = _r(4, 1024)


def _pool_calls():
    y, idx = F.max_pool2d(X, 2, return_indices=True)
    gy = np.ones_like(y)
    return {
        "max_pool2d": lambda: F.max_pool2d(X, 2, return_indices=True),
        "max_pool2d_backward": lambda: F.max_pool2d_backward(gy, X, idx, 2),
        "max_unpool2d": lambda: F.max_unpool2d(y, idx, 2),
        "max_unpool2d_backward": lambda: F.max_unpool2d_backward(X, idx, 2),
    }


def calls():
    """op name -> (valid call, failing call) for every op with a known call."""
    c = {
        "conv2d": lambda: F.conv2d(X, W, B, padding=1, activation="relu"),
        "conv2d_backward": lambda: F.conv2d_backward(GY, X, W, padding=1),
        "conv_transpose2d": lambda: F.conv_transpose2d(X, WT, stride=2, padding=0),
        "conv_transpose2d_backward": lambda: F.conv_transpose2d_backward(GT, X, WT, stride=2),
        "linear": lambda: F.linear(XL, WL, BL, activation="gelu"),
        "linear_backward": lambda: F.linear_backward(GL, XL, WL),
    }
    bad = {
        "conv2d": lambda: F.conv2d(X, W[:, :2], B, padding=1),
        "conv2d_backward": lambda: F.conv2d_backward(GY[:, :, 1:], X, W, padding=1),
        "conv_transpose2d": lambda: F.conv_transpose2d(X, WT[:2], stride=2),
        "conv_transpose2d_backward": lambda: F.conv_transpose2d_backward(GT[:, :, 1:], X, WT,
                                                                         stride=2),
        "linear": lambda: F.linear(XL, WL[:, 1:], BL),
        "linear_backward": lambda: F.linear_backward(GL[:, 1:], XL, WL),
    }
    if hasattr(F, "max_pool2d") and hasattr(F, "max_unpool2d_backward"):
        c.update(_pool_calls())
        bad["max_pool2d"] = lambda: F.max_pool2d(X, 2, padding=5)
        bad["max_unpool2d"] = lambda: F.max_unpool2d(X, np.zeros(X.shape, np.int64) - 1, 2)
    for name in ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish"):
        if hasattr(F, name):
            c[name] = (lambda f: lambda: f(XA))(getattr(F, name))
            bad[name] = (lambda f: lambda: f(XA.astype(np.int32)))(getattr(F, name))
        if hasattr(F, name + "_backward"):
            c[name + "_backward"] = (lambda f: lambda: f(GA, XA))(getattr(F, name + "_backward"))
            bad[name + "_backward"] = (lambda f: lambda: f(GA[:, 1:], XA))(
                getattr(F, name + "_backward"))
    c.update(_model_calls(bad))
    return {k: (v, bad.get(k)) for k, v in c.items()}


def _model_calls(bad):
    """The model ops (pooling, normalisation, losses, softmax, dropout, pad)."""
    XP = _r(2, 4, 16, 16)                   # pooled (2, 4, 8, 8): 2 KB; backward 8 KB
    GP = _r(2, 4, 8, 8)
    RM, RV, WB, BB = _r(4), np.abs(_r(4)) + 1, _r(4), _r(4)
    LG, T = _r(32, 64), np.arange(32) % 64  # logits (32, 64): 8 KB
    MK = F.dropout(np.ones_like(XA), 0.5)
    c = {
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(XP, 8),
        "adaptive_avg_pool2d_backward": lambda: F.adaptive_avg_pool2d_backward(GP, XP, 8),
        "avg_pool2d": lambda: F.avg_pool2d(XP, 2),
        "avg_pool2d_backward": lambda: F.avg_pool2d_backward(GP, XP, 2),
        "batch_norm": lambda: F.batch_norm(XP, RM.copy(), RV.copy(), WB, BB, training=True),
        "batch_norm_backward": lambda: F.batch_norm_backward(XP, XP, WB, training=True),
        "cross_entropy": lambda: F.cross_entropy(LG, T),
        "cross_entropy_backward": lambda: F.cross_entropy_backward(np.float32(1), LG, T),
        "dropout": lambda: F.dropout(XA, 0.5),
        "dropout_backward": lambda: F.dropout_backward(GA, MK),
        "l1_loss": lambda: F.l1_loss(XA, GA, reduction="none"),
        "l1_loss_backward": lambda: F.l1_loss_backward(GA, XA, GA, reduction="none"),
        "log_softmax": lambda: F.log_softmax(LG, 1),
        "log_softmax_backward": lambda: F.log_softmax_backward(LG, LG, 1),
        "mse_loss": lambda: F.mse_loss(XA, GA, reduction="none"),
        "mse_loss_backward": lambda: F.mse_loss_backward(GA, XA, GA, reduction="none"),
        "pad": lambda: F.pad(XP, (1, 2, 3, 4), mode="reflect"),
        "softmax": lambda: F.softmax(LG, 1),
        "softmax_backward": lambda: F.softmax_backward(LG, LG, 1),
    }
    bad.update({
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(XP, 0),
        "avg_pool2d": lambda: F.avg_pool2d(XP, 2, padding=3),
        "batch_norm": lambda: F.batch_norm(XP, RM[:2], RV, WB, BB),
        "cross_entropy": lambda: F.cross_entropy(LG, T[:5]),
        "l1_loss": lambda: F.l1_loss(XA, GA[:, 1:]),
        "log_softmax": lambda: F.log_softmax(LG, 5),
        "mse_loss": lambda: F.mse_loss(XA, GA[:, 1:]),
        "pad": lambda: F.pad(XP, (20, 20), mode="reflect"),
        "softmax": lambda: F.softmax(LG, 5),
    })
    return c


CALLS_BY_OP = calls()


def rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def growth(fn, n):
    for _ in range(WARMUP):
        fn()
    before = rss()
    for _ in range(n):
        fn()
    return rss() - before


def _failing(fn):
    def call():
        with pytest.raises((ValueError, TypeError)):
            fn()
    return call


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.parametrize("op", sorted(CALLS_BY_OP))
def test_no_leak(op):
    ok, bad = CALLS_BY_OP[op]
    grew = growth(ok, CALLS)
    grew_err = growth(_failing(bad), CALLS) if bad is not None else None
    RESULTS[op] = {"calls": CALLS, "rss_growth_bytes": grew, "error_path_growth_bytes": grew_err}
    assert grew <= SLACK, f"{op}: resident memory grew by {grew / 2**20:.1f} MiB over {CALLS} calls"
    if grew_err is not None:
        assert grew_err <= SLACK, (f"{op}: resident memory grew by {grew_err / 2**20:.1f} MiB "
                                   f"over {CALLS} failing calls")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_large_scratch_is_not_kept():
    """A large op's copies of whole arrays (a dilated convolution's polyphase sub-images of x
    and y, 2 x 41 MB here) go back to the buffer cache when it returns: with the cache off,
    resident memory is back where it was once the output is dropped. (They stayed with the
    calling thread before. One thread: no worker keeps tile-sized scratch of its own; blocks
    above glibc's 32 MiB mmap threshold: freed memory leaves the process.)"""
    import pyconv
    from pyconv import _C
    x = _r(8, 32, 200, 200)
    w = _r(32, 32, 3, 3)
    limit, threads = _C._cache_info()["limit"], pyconv.get_num_threads()
    _C._set_cache_limit(0)
    pyconv.set_num_threads(1)
    try:
        before = rss()
        y = F.conv2d(x, w, padding=2, dilation=2)
        del y
        grew = rss() - before
    finally:
        _C._set_cache_limit(limit)
        pyconv.set_num_threads(threads)
    # (16 MiB: freed blocks below glibc's mmap threshold, the tile buffers of a few MiB, may
    # stay in the heap; the old code kept 78 MiB.)
    assert grew <= 16 << 20, f"resident memory grew by {grew / 2**20:.1f} MiB"


def test_every_op_is_measured():
    """An op added to pyconv.functional must get a call here (or be listed as not applicable)."""
    names = [n for n in getattr(F, "__all__", []) if callable(getattr(F, n, None))]
    missing = sorted(set(names) - set(CALLS_BY_OP))
    assert not missing, f"no memory-test call for: {', '.join(missing)}"


def teardown_module(module):
    path = os.environ.get("PYCONV_MEMORY_STATS")
    if path:
        with open(path, "w") as f:
            json.dump(RESULTS, f, indent=1, sort_keys=True)
    for op, r in sorted(RESULTS.items()):
        print(f"memory {op}: {r}", file=sys.stderr)
