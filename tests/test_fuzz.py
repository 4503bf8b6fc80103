"""Hypothesis fuzzing of every public function of pyconv.functional against torch.

Each op found in pyconv.functional at run time gets random calls: shapes with
zero-size and 1-sized dims, huge and negative parameters (2**31, 2**62, 2**64, -1),
wrong types (lists, None, floats for ints, strings, objects), wrong dtypes (int, bool,
complex, float16, big-endian, mixed float32/float64), views with odd strides
(Fortran order, negative, zero (broadcast), padded, unaligned, read-only) and
NaN/Inf values. A call must either

* return what torch returns for the same arguments (shapes, dtypes, values within
  float tolerance, NaN/Inf at the same places, int64 indices exactly), or
* raise ValueError / TypeError / MemoryError,

and never anything else: another exception type fails the test, a crash kills it,
a hang is caught by faulthandler (the process exits with every thread's traceback).
On top of that:

* a call that torch accepts and that the generator built as valid (no mutation)
  must succeed in pyconv (no spurious rejections);
* a call that torch rejects must be rejected by pyconv (no result from garbage);
* no input array is modified (except an `inplace=True` activation's input, which
  must then hold the result), whether the call succeeded or failed.

Sizes are bounded: every case is first run through torch on the meta device; a case
whose tensors would exceed ~2M elements is not run, unless it is astronomically large
(>= 2**34 elements), in which case pyconv must refuse it (MemoryError or ValueError)
without touching torch. softmax, log_softmax, mse_loss, l1_loss, avg_pool2d and
adaptive_avg_pool2d get small generators compared with torch. Ops without a dedicated
generator (their backwards, and ones landed after this file) get a generic generator of random arrays and parameters: they must not crash
and may only raise the three exception types.

PYCONV_FUZZ_CALLS: total number of calls, split evenly over the ops (default 600,
at least 10 per op). PYCONV_FUZZ_OPS: comma-separated op names to restrict to.
PYCONV_FUZZ_STATS=path: write per-op outcome counts as JSON at the end.
PYCONV_FUZZ_FAST=1: draw the same cases from a numpy generator instead of hypothesis
(much cheaper per call, no shrinking; a failure prints PYCONV_FUZZ_SEED to rerun it),
for the long runs.
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
import warnings
import zlib
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyconv.functional as PF

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@pytest.fixture(autouse=True)
def _address_space_limit():
    """PYCONV_FUZZ_AS_LIMIT_GB=n caps the address space at its current size + n GiB while
    fuzzing, so that a runaway allocation is a MemoryError rather than the OOM killer (off by
    default: libraries that abort() on a failed allocation then kill the run; never under ASan)."""
    import resource
    gib = int(os.environ.get("PYCONV_FUZZ_AS_LIMIT_GB", "0"))
    if not gib or "asan" in os.environ.get("LD_PRELOAD", ""):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vm + (gib << 30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(autouse=True)
def _torch_one_thread():
    """torch is the reference, not the subject: one thread avoids its thread-pool spinning on
    tiny tensors (pyconv keeps its own thread count). Restored for the other test modules."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


HANG_SECONDS = 120          # one call (pyconv + torch) longer than this is a hang
SMALL = 1 << 21             # largest tensor (elements) a case may create
HUGE = 1 << 34              # tensors this large must be refused, not attempted
ALLOWED = (ValueError, TypeError, MemoryError)


def public_ops():
    names = getattr(PF, "__all__", None) or [n for n in dir(PF) if not n.startswith("_")]
    return sorted(n for n in names if callable(getattr(PF, n, None))
                  and not isinstance(getattr(PF, n), type))


OPS = public_ops()
if os.environ.get("PYCONV_FUZZ_OPS"):
    OPS = [o for o in OPS if o in os.environ["PYCONV_FUZZ_OPS"].split(",")]
TOTAL = int(os.environ.get("PYCONV_FUZZ_CALLS", 600))
PER_OP = max(10, TOTAL // max(1, len(OPS)))
STATS: dict[str, Counter] = defaultdict(Counter)


# --------------------------------------------------------------------------- values

DTYPES = [np.float32, np.float64]


class HypDraw:
    """Random choices through hypothesis (shrinkable, reproducible failures)."""

    def __init__(self, data):
        self.data = data

    def int(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.data.draw(st.sampled_from(seq))

    def bool(self):
        return self.data.draw(st.booleans())

    def ints(self, lo, hi, max_size):
        return self.data.draw(st.lists(st.integers(lo, hi), max_size=max_size))

    def perm(self, n):
        return list(self.data.draw(st.permutations(range(n))))


class RngDraw:
    """The same choices from a numpy generator: ~10x cheaper per call, for long runs
    (PYCONV_FUZZ_FAST=1); a failure names its seed (PYCONV_FUZZ_SEED reruns it)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi, endpoint=True))

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def bool(self):
        return bool(self.rng.integers(2))

    def ints(self, lo, hi, max_size):
        return [self.int(lo, hi) for _ in range(self.int(0, max_size))]

    def perm(self, n):
        return [int(i) for i in self.rng.permutation(n)]


class Case:
    """One call: keyword arguments in signature order and how to judge it."""

    def __init__(self, kwargs, ref, *, arrays=(), ints=(), floats=(), bools=(), inplace=None):
        self.kwargs = dict(kwargs)
        self.ref = ref              # ref(kwargs, tt, tp) -> torch result
        self.arrays = list(arrays)  # names of array arguments (mutation targets)
        self.ints = list(ints)      # int / int-pair parameters
        self.floats = list(floats)  # real parameters
        self.bools = list(bools)    # flags pyconv reads with bool()
        self.inplace = inplace      # name of the array an inplace=True call writes
        self.dirty = None           # mutation applied, or None for a valid-by-construction call
        self.lenient = False        # pyconv may accept what torch rejects (bool() of a flag)
        self.unsafe = False         # torch itself must not see it (may read out of bounds)


def arr(d, shape, dtype, special=True):
    """Random array of `shape`: small integers (exact sums, ties), normals, constants,
    optionally sprinkled with NaN/Inf."""
    seed = d.int(0, 2**32 - 1)
    kind = d.choice(["int", "int", "normal", "normal", "const"])
    rng = np.random.default_rng(seed)
    if kind == "int":
        a = rng.integers(-3, 4, size=shape).astype(dtype)
    elif kind == "normal":
        a = rng.standard_normal(size=shape).astype(dtype)
    else:
        a = np.full(shape, rng.integers(-2, 3), dtype=dtype)
    if special and a.size and d.int(0, 4) == 0:
        n = int(rng.integers(1, max(2, a.size // 4)))
        pos = rng.integers(0, a.size, size=n)
        a.reshape(-1)[pos] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=dtype), size=n)
    return layout(d, a)


def layout(d, a):
    """The same values (or, for broadcast views, values copied along an axis) in an odd layout."""
    kind = d.choice(["c"] * 6 + ["f", "neg", "step", "zero", "unaligned",
                                               "readonly", "perm"])
    if kind == "f":
        return np.asfortranarray(a)
    if kind == "neg" and a.ndim:
        axes = tuple(i for i in range(a.ndim) if d.bool()) or (a.ndim - 1,)
        return np.flip(np.flip(a, axes).copy(), axes)
    if kind == "step" and a.ndim:
        ax = d.int(0, a.ndim - 1)
        shape = list(a.shape)
        shape[ax] *= 2
        big = np.full(shape, 7.0, dtype=a.dtype)
        idx = [slice(None)] * a.ndim
        idx[ax] = slice(None, None, 2)
        big[tuple(idx)] = a
        return big[tuple(idx)]
    if kind == "zero" and a.ndim and a.size:
        ax = d.int(0, a.ndim - 1)
        return np.broadcast_to(np.take(a, [0], axis=ax), a.shape)
    if kind == "unaligned":
        buf = np.zeros(a.nbytes + a.itemsize + 1, dtype=np.uint8)[1:1 + a.nbytes]
        out = buf.view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    if kind == "readonly":
        a = a.copy()
        a.setflags(write=False)
        return a
    if kind == "perm" and a.ndim > 1:
        perm = d.perm(a.ndim)
        inv = np.argsort(perm)
        return np.ascontiguousarray(a.transpose(perm)).transpose(inv)
    return a


def int_or_pair(d, lo, hi):
    if d.bool():
        return d.int(lo, hi)
    return tuple(d.int(lo, hi) for _ in range(2))


ACTS = [None] * 6 + ["relu", "leaky_relu", ("leaky_relu", 0.2), "elu", ("elu", 0.5), "gelu",
                     ("gelu", "tanh"), "silu", "sigmoid", "tanh", "hardswish"]


def torch_gelu(t, approximate="none"):
    """TF.gelu; exact float32 gelu goes through float64: torch's float32 result depends on its
    CPU capability (with AVX-512, gelu(+inf) is NaN; inf in float64, with AVX2 and ours)."""
    if approximate == "none" and t.dtype == torch.float32:
        return TF.gelu(t.double()).float()
    return TF.gelu(t, approximate=approximate)


def torch_act(y, act):
    if act is None:
        return y
    name, p = (tuple(act) if isinstance(act, (tuple, list)) else (act, None))
    if name == "leaky_relu":
        return TF.leaky_relu(y, 0.01 if p is None else p)
    if name == "elu":
        return TF.elu(y, 1.0 if p is None else p)
    if name == "gelu":
        return torch_gelu(y, "none" if p is None else p)
    if p is not None or name not in ("relu", "silu", "sigmoid", "tanh", "hardswish"):
        raise ValueError("bad activation")
    return getattr(TF, name)(y)


def meta_shape(fn):
    """Shape torch computes for fn(meta tensors), or None when torch rejects the arguments."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tuple(fn().shape)
    except Exception:
        return None


def M(shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


def TD(dtype):
    return torch.float32 if dtype == np.float32 else torch.float64


def backward_ref(forward, inputs, grad, mask=None, bias_size=None):
    """Gradients of forward(*leaves) by torch autograd: leaves are `inputs` plus a zero bias
    when bias_size is given; grads that autograd leaves None are zeros."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    if bias_size is not None:
        leaves.append(torch.zeros(bias_size, dtype=inputs[0].dtype, device=inputs[0].device,
                                  requires_grad=True))
    y = forward(*leaves)
    y.backward(grad)
    grads = [lf.grad if lf.grad is not None else torch.zeros_like(lf) for lf in leaves]
    if mask is not None:
        if len(mask) != 3:
            raise ValueError("mask")
        grads = [g if bool(m) else None for g, m in zip(grads, mask)]
        return tuple(grads)
    return grads[0]


# ------------------------------------------------------------------- convolutions

def gen_conv(d, op):
    transposed = op.startswith("conv_transpose2d")
    backward = op.endswith("_backward")
    dt = d.choice(DTYPES)
    g = d.int(1, 3)
    cpg = d.choice([1, 1, 2, 2, 3, 0])
    kpg = d.choice([1, 1, 2, 3, 0])
    R, S = d.int(1, 4), d.int(1, 4)
    N = d.choice([1, 1, 2, 3, 0])
    H, W = d.int(1, 9), d.int(1, 9)
    if d.int(0, 7) == 0:
        H, W = d.int(0, 9), d.int(0, 9)
    unbatched = d.int(0, 4) == 0
    stride = int_or_pair(d, 1, 3)
    dilation = int_or_pair(d, 1, 2)
    dmax = max(dilation) if isinstance(dilation, tuple) else dilation
    if d.int(0, 3):  # mostly: the (dilated) kernel fits
        H, W = max(H, (R - 1) * dmax + 1), max(W, (S - 1) * dmax + 1)
    if not transposed and d.int(0, 5) == 0:
        padding = d.choice(["same", "valid"])
        if padding == "same" and d.bool():
            stride = 1
    else:
        padding = int_or_pair(d, 0, 3)
    xs = (g * cpg, H, W) if unbatched else (N, g * cpg, H, W)
    x = arr(d, xs, dt)
    ws = (g * cpg, kpg, R, S) if transposed else (g * kpg, cpg, R, S)
    w = arr(d, ws, dt, special=False)
    kout = g * kpg
    kw = dict(stride=stride, padding=padding)
    if transposed:
        kw["output_padding"] = int_or_pair(d, 0, 2) if d.int(0, 2) == 0 else 0
        kw["groups"] = g
        kw["dilation"] = dilation
    else:
        kw["dilation"] = dilation
        kw["groups"] = g
    tfwd = TF.conv_transpose2d if transposed else TF.conv2d
    ints = ["stride", "dilation", "groups"] + (["output_padding"] if transposed else [])
    ints += [] if isinstance(padding, str) else ["padding"]
    if not backward:
        b = arr(d, (kout,), dt, special=False) if d.bool() else None
        act = d.choice(ACTS)
        args = dict(input=x, weight=w, bias=b, **kw)
        if act is not None:
            args["activation"] = act

        def ref(a, tt, tp):
            p = {k: tp(a[k]) for k in kw}
            y = tfwd(tt(a["input"]), tt(a["weight"]), tt(a["bias"]), **p)
            return torch_act(y, a.get("activation"))
        return Case(args, ref, arrays=["input", "weight", "bias"], ints=ints)
    oshape = meta_shape(lambda: tfwd(M(xs, TD(dt)), M(ws, TD(dt)), None, **kw))
    if oshape is None or d.int(0, 9) == 0:
        oshape = tuple(d.int(0, 4) for _ in xs)
    dy = arr(d, oshape, dt)
    mask = tuple(d.bool() for _ in range(3))
    args = dict(grad_output=dy, input=x, weight=w, **kw)
    if mask != (True, True, True) or d.bool():
        args["output_mask"] = mask

    def ref(a, tt, tp):
        p = {k: tp(a[k]) for k in kw}
        w_ = tt(a["weight"])
        k_out = w_.shape[1] * tp(a["groups"]) if transposed else w_.shape[0]
        return backward_ref(lambda x_, w_, b_: tfwd(x_, w_, b_, **p), [tt(a["input"]), w_],
                            tt(a["grad_output"]), a.get("output_mask", (True,) * 3), (k_out,))
    return Case(args, ref, arrays=["grad_output", "input", "weight"], ints=ints)


# ------------------------------------------------------------------------ linear

def gen_linear(d, op):
    dt = d.choice(DTYPES)
    fin, fout = d.int(1, 6), d.int(1, 6)
    if d.int(0, 5) == 0:
        fin, fout = d.int(0, 6), d.int(0, 6)
    lead = tuple(d.ints(0, 4, 3))
    x = arr(d, lead + (fin,), dt)
    w = arr(d, (fout, fin), dt, special=False)
    if op == "linear":
        b = arr(d, (fout,), dt, special=False) if d.bool() else None
        args = dict(input=x, weight=w, bias=b)
        act = d.choice(ACTS)
        if act is not None:
            args["activation"] = act

        def ref(a, tt, tp):
            return torch_act(TF.linear(tt(a["input"]), tt(a["weight"]), tt(a["bias"])),
                             a.get("activation"))
        return Case(args, ref, arrays=["input", "weight", "bias"])
    dy = arr(d, lead + (fout,), dt)
    mask = tuple(d.bool() for _ in range(3))
    args = dict(grad_output=dy, input=x, weight=w, output_mask=mask)

    def ref(a, tt, tp):
        w_ = tt(a["weight"])
        return backward_ref(TF.linear, [tt(a["input"]), w_], tt(a["grad_output"]),
                            a["output_mask"], (w_.shape[0],))
    return Case(args, ref, arrays=["grad_output", "input", "weight"])


# ----------------------------------------------------------------------- pooling

def pool_params(d):
    k = int_or_pair(d, 1, 4)
    s = None if d.int(0, 2) == 0 else int_or_pair(d, 1, 4)
    p = int_or_pair(d, 0, 2)
    dil = int_or_pair(d, 1, 3)
    return k, s, p, dil


def _t_stride(s, k):
    return [] if s is None else s


def gen_max_pool2d(d, op):
    dt = d.choice(DTYPES)
    unbatched = d.int(0, 4) == 0
    N, C = d.choice([1, 1, 2, 3, 0]), d.choice([1, 2, 3, 0])
    H, W = d.int(1, 10), d.int(1, 10)
    if d.int(0, 7) == 0:
        H, W = d.int(0, 10), d.int(0, 10)
    xs = (C, H, W) if unbatched else (N, C, H, W)
    x = arr(d, xs, dt)
    k, s, p, dil = pool_params(d)
    ceil = d.bool()
    ints = ["kernel_size", "stride", "padding", "dilation"]
    if op == "max_pool2d":
        ri = d.bool()
        args = dict(input=x, kernel_size=k, stride=s, padding=p, dilation=dil, ceil_mode=ceil,
                    return_indices=ri)

        def ref(a, tt, tp):
            return TF.max_pool2d(tt(a["input"]), tp(a["kernel_size"]), tp(a["stride"]),
                                 tp(a["padding"]), tp(a["dilation"]), a["ceil_mode"],
                                 a["return_indices"])
        return Case(args, ref, arrays=["input"], ints=ints, bools=["ceil_mode", "return_indices"])
    # backward: indices from torch's forward on the same input
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tx = torch.from_numpy(np.ascontiguousarray(x))
            y, idx = TF.max_pool2d(tx, k, s, p, dil, ceil, True)
        oshape, idx = tuple(y.shape), idx.numpy()
    except Exception:
        oshape = tuple(d.int(0, 4) for _ in xs)
        idx = np.zeros(oshape, np.int64)
    dy = arr(d, oshape, dt)
    idx = layout(d, idx)
    # torch's forward can return an out-of-range index (a window wholly in the padding, with
    # dilation), and torch's own backward then writes out of bounds (heap corruption that
    # aborts a later call): torch must not see such indices; pyconv must refuse them.
    # (Checked after the layout: a broadcast view may have dropped the bad index.)
    case_unsafe = bool(idx.size) and bool(idx.min() < 0 or idx.max() >= H * W)
    if idx.size and d.int(0, 6) == 0:
        rng = np.random.default_rng(d.int(0, 2**32 - 1))
        bad = d.choice(["in", "neg", "big", "huge"])
        idx = np.array(idx, order="C")  # reshape(-1) below must be a view
        pos = rng.integers(0, idx.size)
        plane = H * W
        idx.reshape(-1)[pos] = {"in": rng.integers(0, max(1, plane)), "neg": -1,
                                "big": plane, "huge": 2**62}[bad]
        case_unsafe = case_unsafe or bad != "in" or plane == 0
    args = dict(grad_output=dy, input=x, indices=idx, kernel_size=k, stride=s,
                padding=p, dilation=dil, ceil_mode=ceil)

    def ref(a, tt, tp):
        return torch.ops.aten.max_pool2d_with_indices_backward(
            tt(a["grad_output"]), tt(a["input"]), tp(a["kernel_size"]),
            _t_stride(tp(a["stride"]), None), tp(a["padding"]), tp(a["dilation"]),
            a["ceil_mode"], tt(a["indices"]))
    c = Case(args, ref, arrays=["grad_output", "input", "indices"], ints=ints, bools=["ceil_mode"])
    c.unsafe = case_unsafe
    if case_unsafe:
        c.dirty = "bad-indices"
    return c


def gen_max_unpool2d(d, op):
    dt = d.choice(DTYPES)
    unbatched = d.int(0, 4) == 0
    N, C = d.choice([1, 1, 2, 0]), d.choice([1, 2, 3, 0])
    H, W = d.int(1, 10), d.int(1, 10)
    if d.int(0, 7) == 0:
        H, W = d.int(0, 10), d.int(0, 10)
    xs = (C, H, W) if unbatched else (N, C, H, W)
    src = arr(d, xs, dt)
    k, s, p, _ = pool_params(d)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, idx = TF.max_pool2d(torch.from_numpy(np.ascontiguousarray(src)), k, s, p,
                                   return_indices=True)
        y, idx = y.numpy(), idx.numpy()
    except Exception:
        sh = tuple(d.int(0, 4) for _ in xs)
        y, idx = np.zeros(sh, dt), np.zeros(sh, np.int64)
    osz = d.choice(["none", "hw", "full", "off"])
    output_size = {"none": None, "hw": (H, W), "full": xs[-3:] if unbatched else xs,
                   "off": (H + d.int(-2, 2), W + d.int(-2, 2))}[osz]
    if idx.size and d.int(0, 6) == 0:
        rng = np.random.default_rng(d.int(0, 2**32 - 1))
        idx = idx.copy()
        idx.reshape(-1)[rng.integers(0, idx.size)] = d.choice(
            [-1, H * W, H * W + 5, 2**62, -2**63])
    ints = ["kernel_size", "stride", "padding"]
    if op == "max_unpool2d":
        args = dict(input=layout(d, y), indices=layout(d, idx), kernel_size=k, stride=s,
                    padding=p, output_size=output_size)

        def ref(a, tt, tp):
            return TF.max_unpool2d(tt(a["input"]), tt(a["indices"]), tp(a["kernel_size"]),
                                   tp(a["stride"]), tp(a["padding"]), tp(a["output_size"]))
        return Case(args, ref, arrays=["input", "indices"], ints=ints + ["output_size"])
    osh = meta_shape(lambda: TF.max_unpool2d(M(y.shape, TD(dt)), M(idx.shape, torch.int64), k, s,
                                             p, output_size))
    if osh is None or d.int(0, 9) == 0:
        osh = tuple(d.int(0, 4) for _ in xs)
    args = dict(grad_output=arr(d, osh, dt), indices=layout(d, idx), kernel_size=k, stride=s,
                padding=p, output_size=output_size)

    def ref(a, tt, tp):
        idx_ = tt(a["indices"])
        dy = tt(a["grad_output"])
        x_ = torch.zeros(idx_.shape, dtype=dy.dtype, device=dy.device)
        return backward_ref(lambda t: TF.max_unpool2d(t, idx_, tp(a["kernel_size"]),
                                                      tp(a["stride"]), tp(a["padding"]),
                                                      tp(a["output_size"])), [x_], dy)
    return Case(args, ref, arrays=["grad_output", "indices"], ints=ints + ["output_size"])


# -------------------------------------------------------------------- activations

ACT_PARAM = {"leaky_relu": ("negative_slope", 0.01), "elu": ("alpha", 1.0),
             "gelu": ("approximate", "none")}
ACT_INPLACE = {"relu", "leaky_relu", "elu", "silu", "hardswish"}
REALS = ([0.01, 0.2, -0.5, 0.0, 1.0, 2.5, 3, 1e30, -1e30, float("nan"),
                         float("inf"), 1e-40, np.float32(0.3), np.float64(-2.0)])


def gen_activation(d, op):
    name = op[:-len("_backward")] if op.endswith("_backward") else op
    dt = d.choice(DTYPES)
    shape = tuple(d.ints(0, 5, 4))
    x = arr(d, shape, dt)
    # values near the kinks and saturations of every activation
    if x.size and d.bool():
        rng = np.random.default_rng(d.int(0, 2**32 - 1))
        vals = np.array([0.0, -0.0, 3.0, -3.0, 1e-30, -1e-30, 20.0, -20.0, 88.7, -88.7, 710.0,
                         -710.0, 1e38, -1e38, 5e-324, np.nan], dtype=dt)
        x = np.array(x)
        x.reshape(-1)[rng.integers(0, x.size, size=max(1, x.size // 2))] = rng.choice(
            vals, size=max(1, x.size // 2))
        x = layout(d, x)
    args = {}
    floats = []
    if op.endswith("_backward"):
        args["grad_output"] = arr(d, shape, dt)
    args["input"] = x
    if name in ACT_PARAM and d.bool():
        pname = ACT_PARAM[name][0]
        if name == "gelu":
            args[pname] = d.choice(["none", "tanh"])
        else:
            args[pname] = d.choice(REALS)
            floats.append(pname)
    inplace = None
    if not op.endswith("_backward") and name in ACT_INPLACE and d.int(0, 3) == 0:
        args["inplace"] = True
        inplace = "input"

    def ref(a, tt, tp):
        kw = {}
        if name in ACT_PARAM:
            pname, default = ACT_PARAM[name]
            kw[pname] = a.get(pname, default)
        fwd = lambda t: (torch_gelu if name == "gelu" else getattr(TF, name))(t, **kw)  # noqa: E731
        if op.endswith("_backward"):
            return backward_ref(fwd, [tt(a["input"])], tt(a["grad_output"]))
        return fwd(tt(a["input"]))
    arrays = (["grad_output"] if op.endswith("_backward") else []) + ["input"]
    c = Case(args, ref, arrays=arrays, floats=floats, bools=["inplace"] if inplace else [],
             inplace=inplace)
    if inplace and not x.flags.writeable:
        c.dirty = "inplace into a read-only array"  # pyconv must refuse (numpy's ValueError)
    return c


# ------------------------------------------- softmax, losses, average pooling

def gen_softmax(d, op):
    dt = d.choice(DTYPES)
    shape = tuple(d.ints(0, 5, 4))
    x = arr(d, shape, dt)
    nd = max(1, len(shape))
    dim = d.int(-nd, nd - 1) if d.int(0, 9) else d.choice([nd, -nd - 1, 2**62])

    def ref(a, tt, tp):
        return getattr(TF, op)(tt(a["input"]), dim=tp(a["dim"]))
    return Case(dict(input=x, dim=dim), ref, arrays=["input"], ints=["dim"])


def gen_loss(d, op):
    dt = d.choice(DTYPES)
    shape = tuple(d.ints(0, 5, 4))
    x, t = arr(d, shape, dt), arr(d, shape, dt)
    red = d.choice(["mean", "sum", "none"])

    def ref(a, tt, tp):
        return getattr(TF, op)(tt(a["input"]), tt(a["target"]), reduction=a["reduction"])
    return Case(dict(input=x, target=t, reduction=red), ref, arrays=["input", "target"])


def gen_avg_pool2d(d, op):
    dt = d.choice(DTYPES)
    unbatched = d.int(0, 4) == 0
    N, C = d.choice([1, 1, 2, 0]), d.choice([1, 2, 3, 0])
    H, W = d.int(1, 10), d.int(1, 10)
    xs = (C, H, W) if unbatched else (N, C, H, W)
    x = arr(d, xs, dt)
    if op == "adaptive_avg_pool2d":
        osz = int_or_pair(d, 1, 6)

        def ref(a, tt, tp):
            return TF.adaptive_avg_pool2d(tt(a["input"]), tp(a["output_size"]))
        return Case(dict(input=x, output_size=osz), ref, arrays=["input"], ints=["output_size"])
    k, s, p, _ = pool_params(d)
    args = dict(input=x, kernel_size=k, stride=s, padding=p, ceil_mode=d.bool(),
                count_include_pad=d.bool(),
                divisor_override=d.choice([None, None, 1, 3]))

    def ref(a, tt, tp):
        return TF.avg_pool2d(tt(a["input"]), tp(a["kernel_size"]), tp(a["stride"]),
                             tp(a["padding"]), a["ceil_mode"], a["count_include_pad"],
                             tp(a["divisor_override"]))
    return Case(args, ref, arrays=["input"], ints=["kernel_size", "stride", "padding"],
                bools=["ceil_mode", "count_include_pad"])


# ------------------------------------------------------------------ generic op

def gen_generic(d, op):
    """Ops landed after this file: random arrays and parameters, no torch comparison."""
    args = []
    for _ in range(d.int(0, 4)):
        kind = d.choice(["arr", "arr", "int", "float", "none", "str"])
        if kind == "arr":
            shape = tuple(d.ints(0, 5, 4))
            args.append(arr(d, shape, d.choice(DTYPES)))
        else:
            args.append({"int": 2, "float": 0.5, "none": None, "str": "mean"}[kind])
    c = Case({f"_{i}": a for i, a in enumerate(args)}, None,
             arrays=[f"_{i}" for i, a in enumerate(args) if isinstance(a, np.ndarray)])
    c.dirty = "generic"
    return c


GENERATORS = {
    "conv2d": gen_conv, "conv2d_backward": gen_conv, "conv_transpose2d": gen_conv,
    "conv_transpose2d_backward": gen_conv, "linear": gen_linear, "linear_backward": gen_linear,
    "max_pool2d": gen_max_pool2d, "max_pool2d_backward": gen_max_pool2d,
    "max_unpool2d": gen_max_unpool2d, "max_unpool2d_backward": gen_max_unpool2d,
}
GENERATORS.update(softmax=gen_softmax, log_softmax=gen_softmax, mse_loss=gen_loss,
                  l1_loss=gen_loss, avg_pool2d=gen_avg_pool2d,
                  adaptive_avg_pool2d=gen_avg_pool2d)
for _n in ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish"):
    GENERATORS[_n] = GENERATORS[_n + "_backward"] = gen_activation


# -------------------------------------------------------------------- mutations

HUGE_INTS = [2**31, 2**31 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, -1, -2, -2**31, -2**63, 0]
GARBAGE = [None, "abc", 1.5, 2.0, 3 + 0j, [1, 2, 3], [], (1,), object(), {}, b"x", [1.0, 2.0],
           (1, "a"), np.float64(1.0), np.array([1, 2, 3])]
BAD_DTYPES = [np.int32, np.int64, np.bool_, np.complex64, np.complex128, np.float16, ">f4", ">f8",
              np.uint8, object]


def mutate(d, c: Case):
    kinds = ["huge", "garbage"] + (["dtype", "mixed", "ndim", "shape", "list"] if c.arrays else [])
    kinds += ["real"] if c.floats else []
    kinds += ["flag"] if c.bools else []
    kind = d.choice(kinds + ["kwarg"])
    kw = c.kwargs
    arrays = [n for n in c.arrays if isinstance(kw.get(n), np.ndarray)] or None
    if kind == "huge" and c.ints:
        name = d.choice(c.ints)
        v = d.choice(HUGE_INTS)
        if d.bool():
            v = tuple(d.choice([v, 1, 2**62, -1]) for _ in range(2))
        kw[name] = v
    elif kind == "garbage" or (kind == "huge" and not c.ints):
        name = d.choice(list(kw))
        kw[name] = d.choice(GARBAGE)
        if isinstance(kw[name], np.ndarray) and name in c.ints:
            kind = "garbage-array"  # a 3-vector where a pair is expected
    elif kind == "dtype" and arrays:
        name = d.choice(arrays)
        dt = d.choice(BAD_DTYPES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kw[name] = np.asarray(kw[name]).astype(dt)
    elif kind == "mixed" and arrays:
        name = d.choice(arrays)
        a = kw[name]
        if a.dtype.kind == "f":
            kw[name] = a.astype(np.float64 if a.dtype == np.float32 else np.float32)
    elif kind == "ndim" and arrays:
        name = d.choice(arrays)
        a = kw[name]
        kw[name] = a[None] if d.bool() or a.ndim == 0 else a.reshape(a.shape[1:]
                                                                                   if a.shape and a.shape[0] == 1 else -1)
    elif kind == "shape" and arrays:
        name = d.choice(arrays)
        a = kw[name]
        if a.ndim:
            ax = d.int(0, a.ndim - 1)
            shape = list(a.shape)
            shape[ax] = max(0, shape[ax] + d.choice([-1, 1, 2]))
            kw[name] = np.resize(np.ascontiguousarray(a), shape).astype(a.dtype)
    elif kind == "list" and arrays:
        name = d.choice(arrays)
        kw[name] = kw[name].tolist()
    elif kind == "real":
        name = d.choice(c.floats)
        kw[name] = d.choice([None, "0.1", True, 1 + 1j, [0.1], np.array([0.1, 0.2])])
    elif kind == "flag":
        name = d.choice(c.bools)
        kw[name] = d.choice([0, 1, "yes", None, np.bool_(True), 2])
        c.lenient = True
    else:
        kw["no_such_argument"] = 1
    c.dirty = kind


# ------------------------------------------------------------------ judging

def to_torch(device):
    def tt(a):
        if not isinstance(a, np.ndarray):
            return a
        if device == "meta":
            dt = torch.from_numpy(np.empty(0, a.dtype.newbyteorder("="))).dtype
            return torch.empty(a.shape, dtype=dt, device="meta")
        if not a.dtype.isnative:  # torch cannot take it; the values are what matter
            a = a.astype(a.dtype.newbyteorder("="))
        return torch.from_numpy(np.array(a, order="C"))
    return tt


def tp(v):
    """Parameters as torch takes them (numpy scalars and 2-vectors accepted by pyconv)."""
    if isinstance(v, np.ndarray) and v.shape == (2,) and v.dtype.kind in "iu":
        return tuple(int(i) for i in v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, tuple):
        return tuple(tp(i) for i in v)
    return v


def tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for i in x:
            yield from tensors(i)


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    if isinstance(x, (tuple, list)):
        return tuple(to_numpy(i) for i in x)
    return x


def run_torch(c: Case, device):
    """(result, error, peak elements)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = c.ref(c.kwargs, to_torch(device), tp)
        except Exception as e:  # noqa: BLE001 - any torch failure means "torch rejects"
            return None, e, 0
    peak = max((t.numel() for t in tensors(r)), default=0)
    if device == "meta":
        peak = max([peak] + [a.size for a in c.kwargs.values() if isinstance(a, np.ndarray)])
    return r, None, peak


def same_array(a, b):
    """Bitwise-ish equality for the 'inputs unchanged' check (NaN == NaN)."""
    return a.shape == b.shape and a.dtype == b.dtype and (
        a.dtype.kind not in "fc" and np.array_equal(a, b)
        or a.dtype.kind in "fc" and np.array_equal(a, b, equal_nan=True)
        or a.dtype.kind == "O")


def compare(op, got, ref, where="result"):
    if ref is None or got is None:
        assert got is None and ref is None, f"{op}: {where}: pyconv {type(got)}, torch {type(ref)}"
        return
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == len(ref), \
            f"{op}: {where}: pyconv returned {type(got).__name__} of {len(got) if isinstance(got, tuple) else '-'}, torch a {len(ref)}-tuple"
        for i, (g, r) in enumerate(zip(got, ref)):
            compare(op, g, r, f"{where}[{i}]")
        return
    assert isinstance(got, np.ndarray), f"{op}: {where}: pyconv returned {type(got).__name__}"
    assert got.shape == ref.shape, f"{op}: {where}: shape {got.shape}, torch {ref.shape}"
    assert got.dtype == ref.dtype, f"{op}: {where}: dtype {got.dtype}, torch {ref.dtype}"
    if ref.dtype.kind != "f":
        np.testing.assert_array_equal(got, ref, err_msg=f"{op}: {where}")
        return
    fin = ref[np.isfinite(ref)]
    scale = max(1.0, float(np.max(np.abs(fin))) if fin.size else 1.0)
    rtol, atol = (1e-9, 1e-9 * scale) if ref.dtype == np.float64 else (2e-4, 2e-5 * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{op}: {where}")


# Known divergences from torch, reported to the lead; counted, not failed, so that CI stays
# green while they are open. Each: (label, outcome, predicate(op, case, message)).
def _conv_op(op):
    return op.startswith(("conv2d", "conv_transpose2d"))


def _zero_channels(c):
    x = c.kwargs.get("input")
    return isinstance(x, np.ndarray) and x.ndim in (3, 4) and x.shape[-3] == 0


def _empty(c, name):
    a = c.kwargs.get(name)
    return isinstance(a, np.ndarray) and a.size == 0


def _nonfinite(c, name):
    a = c.kwargs.get(name)
    return isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all()


KNOWN = [
    ("conv: empty weight (a 0-sized dim) accepted; torch rejects it",
     "accepted", lambda op, c, m: _conv_op(op) and _empty(c, "weight")),
    ("conv: input with 0 channels gives zeros of K channels (torch: a 0-channel output)",
     "mismatch", lambda op, c, m: _conv_op(op) and _zero_channels(c)),
    ("conv: input with 0 channels: pyconv's output has K channels, torch's 0",
     "rejected", lambda op, c, m: _conv_op(op) and _zero_channels(c)),
    ("conv: input with an empty spatial dim accepted (torch: 'Only zero batch or zero channel')",
     "accepted", lambda op, c, m: _conv_op(op) and "Only zero batch or zero channel" in m),
    ("linear: 0 out_features -> numpy reshape(-1, 0) error",
     "rejected", lambda op, c, m: op.startswith("linear") and "cannot reshape array of size 0" in m),
    ("conv backward: Inf/NaN meeting zero padding: torch multiplies its materialised padding "
     "(0*Inf = NaN in grad_weight), pyconv skips it (Inf)",
     "mismatch", lambda op, c, m: _conv_op(op) and op.endswith("_backward")
     and (_nonfinite(c, "grad_output") or _nonfinite(c, "input"))
     and c.kwargs.get("padding") not in (0, (0, 0), "valid")),
    ("conv: empty input: torch's empty-input path skips checks (output_padding < stride "
     "or dilation) that pyconv applies",
     "rejected", lambda op, c, m: _conv_op(op) and _empty(c, "input")),
    ("conv_transpose2d: an output size of exactly 0 is rejected; torch returns an empty array",
     "rejected", lambda op, c, m: op.startswith("conv_transpose2d") and "is not positive" in m),
    ("max_unpool2d: input with 0 channels/height/width rejected; torch returns an empty array",
     "rejected", lambda op, c, m: op.startswith("max_unpool2d") and "only the batch may be empty" in m),
    ("max_unpool2d: an output size of 0 rejected; torch returns an empty array",
     "rejected", lambda op, c, m: op.startswith("max_unpool2d") and "is not positive" in m),
    ("activations/softmax: a Python or numpy scalar is taken as a 0-d array (torch's "
     "functional rejects it)",
     "accepted", lambda op, c, m: any(isinstance(v, (np.generic, float, int))
                                      and not isinstance(v, bool) for k, v in c.kwargs.items()
                                      if k in ("input", "grad_output"))),
    ("softmax, losses, avg pools (model ops): array-likes (lists, scalars) accepted via "
     "np.asarray; the conv/pool ops raise TypeError",
     "accepted", lambda op, c, m: any(isinstance(c.kwargs.get(n), (list, tuple, float, int,
                                                                   np.generic))
                                      for n in c.arrays)),
    ("max_pool2d_backward: torch's forward gave an out-of-range index (window wholly in the "
     "padding, ceil_mode); pyconv rejects that index",
     "rejected", lambda op, c, m: op == "max_pool2d_backward" and "found an invalid index" in m),
    ("elu_backward/hardswish_backward at input NaN: torch returns grad_output, pyconv NaN",
     "mismatch", lambda op, c, m: op in ("elu_backward", "hardswish_backward")
     and _nonfinite(c, "input")),
    ("unaligned C-contiguous array rejected instead of copied",
     "rejected", lambda op, c, m: "not aligned" in m),
]


def known(op, c, outcome, message):
    for label, kind, pred in KNOWN:
        if kind == outcome and pred(op, c, message):
            STATS[op]["known: " + label] += 1
            return True
    return False


def describe(c):
    def short(v):
        if isinstance(v, np.ndarray):
            return (f"array(shape={v.shape}, dtype={v.dtype}, strides={v.strides}, "
                    f"aligned={v.flags.aligned}, writeable={v.flags.writeable})")
        return repr(v)
    return "{" + ", ".join(f"{k}={short(v)}" for k, v in c.kwargs.items()) + \
        f"}} mutation={c.dirty}"


class _capped:
    """Around a call whose size torch could not vouch for: the address space capped at +4 GiB, so that an
    op that really tries to allocate an astronomic result fails with MemoryError instead
    of filling the machine (not under ASan, whose shadow memory needs the space)."""

    def __init__(self, on):
        self.on = on and "asan" not in os.environ.get("LD_PRELOAD", "")

    def __enter__(self):
        if self.on:
            import resource
            self.old = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as f:
                vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (vm + (4 << 30), self.old[1]))

    def __exit__(self, *exc):
        if self.on:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, self.old)


def judge(op, c: Case):
    stats = STATS[op]
    fn = getattr(PF, op)
    generic = c.ref is None
    if not generic and not c.unsafe:
        _, merr, peak = run_torch(c, "meta")
        if merr is None and peak > SMALL:
            if peak < HUGE:
                stats["skipped (too large to run)"] += 1
                return
            stats["huge: must refuse"] += 1
            c.unsafe = True  # pyconv must refuse it; torch is not run
    else:
        merr = None
    saved = {k: (v, v.copy()) for k, v in c.kwargs.items() if isinstance(v, np.ndarray)}
    with warnings.catch_warnings(record=True) as wrec, _capped(c.unsafe or merr is not None
                                                               or generic):
        warnings.simplefilter("always")
        try:
            if generic:
                got, perr = fn(*c.kwargs.values()), None
            else:
                got, perr = fn(**c.kwargs), None
        except ALLOWED as e:
            got, perr = None, e
        except Exception as e:  # noqa: BLE001 - a failure, unless a known (reported) one
            if known(op, c, "other exception", f"{type(e).__name__}: {e}"):
                return
            raise
    if wrec:
        stats["warning: " + "; ".join(sorted({f"{w.category.__name__}: {w.message}"[:90]
                                                for w in wrec}))] += 1
    for k, (v, before) in saved.items():
        if c.inplace == k and perr is None:
            continue
        assert same_array(v, before), f"{op}: pyconv modified its argument {k!r}: {describe(c)}"
    if generic:
        stats["generic: raised" if perr else "generic: returned"] += 1
        return
    if c.unsafe:
        assert perr is not None, f"{op}: accepted arguments it must refuse: {describe(c)}"
        stats["refused (required)"] += 1
        return
    if merr is not None and perr is not None:
        stats["both rejected" + (" (mutated)" if c.dirty else " (generated invalid)")] += 1
        return
    if c.inplace:  # torch sees the arguments as they were before the call
        c.kwargs = {k: saved[k][1] if k in saved else v for k, v in c.kwargs.items()}
    ref, terr, _ = run_torch(c, "cpu")
    if terr is not None:
        if perr is not None:
            stats["both rejected" + (" (mutated)" if c.dirty else " (generated invalid)")] += 1
            return
        if c.lenient:
            stats[f"lenient: accepted {c.dirty} torch rejects"] += 1
            return
        if known(op, c, "accepted", str(terr)):
            return
        raise AssertionError(f"{op}: returned a result for arguments torch rejects "
                             f"({type(terr).__name__}: {str(terr)[:200]}): {describe(c)}")
    if perr is not None:
        if c.dirty is None and known(op, c, "rejected", str(perr)):
            return
        assert c.dirty is not None, (f"{op}: rejected valid arguments that torch accepts "
                                     f"({type(perr).__name__}: {perr}): {describe(c)}")
        stats["pyconv stricter than torch"] += 1
        return
    try:
        compare(op, got, to_numpy(ref))
    except AssertionError as e:
        if known(op, c, "mismatch", str(e)):
            return
        raise AssertionError(f"{e}\n{describe(c)}") from None
    if c.inplace and c.kwargs.get("inplace"):
        x = saved[c.inplace][0]
        compare(op, x, to_numpy(ref), "inplace input")
    stats["compared equal"] += 1


class Watchdog:
    """faulthandler's hang detector, re-armed every few seconds (re-arming per call costs
    more than a small call): a call that runs HANG_SECONDS kills the process with every
    thread's traceback."""

    def __init__(self):
        self.armed = 0.0

    def tick(self):
        now = time.monotonic()
        if now - self.armed > 5:
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
            self.armed = now

    def stop(self):
        faulthandler.cancel_dump_traceback_later()


def one_case(d, op, gen):
    c = gen(d, op)
    if c.dirty is None and d.int(0, 9) < 4:
        mutate(d, c)
    judge(op, c)


@pytest.mark.parametrize("op", OPS)
def test_fuzz(op):
    gen = GENERATORS.get(op, gen_generic)
    dog = Watchdog()
    try:
        if os.environ.get("PYCONV_FUZZ_FAST") == "1" or os.environ.get("PYCONV_FUZZ_SEED"):
            seeds = ([int(os.environ["PYCONV_FUZZ_SEED"])] if os.environ.get("PYCONV_FUZZ_SEED")
                     else range(PER_OP))
            base = zlib.crc32(op.encode()) << 32
            for i in seeds:
                dog.tick()
                try:
                    one_case(RngDraw(base + i), op, gen)
                except Exception as e:
                    raise AssertionError(f"{op}: PYCONV_FUZZ_SEED={i} PYCONV_FUZZ_OPS={op}: "
                                         f"{type(e).__name__}: {e}") from e
            return

        @settings(max_examples=PER_OP)
        @given(st.data())
        def run(data):
            dog.tick()
            one_case(HypDraw(data), op, gen)

        run()
    finally:
        dog.stop()


def teardown_module(module):
    path = os.environ.get("PYCONV_FUZZ_STATS")
    if path:
        with open(path, "w") as f:
            json.dump({op: dict(s) for op, s in STATS.items()}, f, indent=1, sort_keys=True)
    for op, s in sorted(STATS.items()):
        print(f"fuzz {op}: {sum(s.values())} calls: {dict(s)}", file=sys.stderr)
