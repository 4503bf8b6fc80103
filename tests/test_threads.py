"""Concurrency and determinism: every kernel releases the GIL, so calls from several
Python threads really run in parallel; they must give the serial results, and results
must be bitwise identical for any pyconv thread count."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyconv
import pyconv.functional as F

rng = np.random.default_rng(11)
X = rng.standard_normal((3, 8, 19, 17)).astype(np.float32)
W = rng.standard_normal((12, 4, 3, 3)).astype(np.float32)
B = rng.standard_normal(12).astype(np.float32)
KW = dict(stride=2, padding=1, groups=2)
Y = F.conv2d(X, W, B, **KW)
G = rng.standard_normal(Y.shape).astype(np.float32)
WT = rng.standard_normal((8, 5, 4, 4)).astype(np.float32)
GT = rng.standard_normal(F.conv_transpose2d(X, WT, stride=2, padding=1).shape).astype(np.float32)
XL = rng.standard_normal((33, 64)).astype(np.float32)
WL = rng.standard_normal((48, 64)).astype(np.float32)
GL = rng.standard_normal((33, 48)).astype(np.float32)
YP, IP = F.max_pool2d(X, 3, 2, 1, return_indices=True)
GP = rng.standard_normal(YP.shape).astype(np.float32)
XA = rng.standard_normal((7, 50001)).astype(np.float32)   # several threads' worth
GA = rng.standard_normal(XA.shape).astype(np.float32)

CALLS = {
    "conv2d": lambda: [F.conv2d(X, W, B, **KW)],
    "conv2d_fused": lambda: [F.conv2d(X, W, B, activation="gelu", **KW)],
    "conv2d_backward": lambda: list(F.conv2d_backward(G, X, W, **KW)),
    "conv_transpose2d": lambda: [F.conv_transpose2d(X, WT, stride=2, padding=1)],
    "conv_transpose2d_backward": lambda: list(F.conv_transpose2d_backward(GT, X, WT, stride=2,
                                                                          padding=1)),
    "linear": lambda: [F.linear(XL, WL, activation="relu")],
    "linear_backward": lambda: list(F.linear_backward(GL, XL, WL)),
    "max_pool2d": lambda: list(F.max_pool2d(X, 3, 2, 1, return_indices=True)),
    "max_pool2d_backward": lambda: [F.max_pool2d_backward(GP, X, IP, 3, 2, 1)],
    "max_unpool2d": lambda: [F.max_unpool2d(YP, IP, 3, 2, 1, output_size=X.shape[-2:])],
    "max_unpool2d_backward": lambda: [F.max_unpool2d_backward(X, IP, 3, 2, 1)],
    "batch_norm": lambda: [F.batch_norm(X, None, None, training=True)],
    "cross_entropy": lambda: [F.cross_entropy(XL, np.arange(33) % 64)],
    "adaptive_avg_pool2d": lambda: [F.adaptive_avg_pool2d(X, 5)],
}
for _act in ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish"):
    CALLS[_act] = (lambda f: lambda: [f(XA)])(getattr(F, _act))
    CALLS[_act + "_backward"] = (lambda f: lambda: [f(GA, XA)])(getattr(F, _act + "_backward"))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_concurrent_calls_match_serial(name):
    call = CALLS[name]
    serial = call()
    with ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(lambda _: call(), range(16)))
    for res in results:
        for a, b in zip(res, serial):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bitwise_identical_for_1_2_3_threads(name):
    call = CALLS[name]
    outs = []
    for n in (1, 2, 3):
        pyconv.set_num_threads(n)
        outs.append(call())
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


# ---- the GEMM drivers' task scheduler (common/parallel.h's parallel_tasks) ---------------

@pytest.mark.parametrize("total,threads", [(0, 2), (1, 2), (2, 2), (7, 2), (64, 3), (5, 8),
                                           (100, 64), (130, 100)])  # (100 threads: OpenMP's schedule)
def test_parallel_tasks_runs_each_task_once(total, threads):
    runs, who, _ = pyconv._C._parallel_tasks(total, threads, 0, 0.0)
    assert runs == [1] * total
    assert all(0 <= w < max(1, min(threads, total)) for w in who)


def test_parallel_tasks_owner_goes_forward_and_others_take_its_tail():
    # Two threads, tasks 0-3 (thread 0's range) slow: thread 0 takes its range from the
    # front, in order; thread 1, done with tasks 4-7 at once, takes range 0's last tasks.
    runs, who, seq = pyconv._C._parallel_tasks(8, 2, 4, 30.0)
    assert runs == [1] * 8
    mine = [t for t in range(8) if who[t] == 0]
    assert set(who) == {0, 1}, who
    assert mine == sorted(mine, key=lambda t: seq[t]), "thread 0 out of order"
    assert 0 in mine and all(t < 4 for t in mine), mine
    stolen = [t for t in range(4) if who[t] != 0]
    assert stolen, who
    # (stolen from the back: each stolen task lies after every task thread 0 ran)
    assert min(stolen) > max(mine), (mine, stolen)
