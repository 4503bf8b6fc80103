"""The libraries a case is timed with: pyconv, torch (when importable) and plain numpy.

pyconv ops are looked up by name in ``pyconv.functional`` at run time, so the harness runs
before every op exists and picks ops up as they land: a missing name, or a call that raises
NotImplementedError, turns the case into a one-line "skipped" note.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import numpy as np


class Unavailable(Exception):
    """The case cannot run here (op not implemented yet, no baseline, too big...)."""


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class Env:
    """Modules and settings shared by every case of a run."""

    def __init__(self, baseline: str = "auto", dtype: str = "float32", seed: int = 0,
                 max_mem_gb: float = 8.0):
        self.pyconv = _import("pyconv")
        self.F = _import("pyconv.functional")
        self.nn = _import("pyconv.nn")
        self.optim = _import("pyconv.optim")
        torch = None
        if baseline in ("auto", "torch"):
            torch = _import("torch")
            if torch is None and baseline == "torch":
                raise SystemExit("pyconv.bench: --baseline torch, but torch is not importable")
        self.torch = torch
        if baseline == "auto":
            baseline = "torch" if torch is not None else "numpy"
        self.baseline = baseline          # "torch", "numpy" or "none"
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.max_mem_bytes = max_mem_gb * 2**30
        self._rng = np.random.default_rng(seed)

    # ---- arrays -------------------------------------------------------------------------
    def randn(self, *shape) -> np.ndarray:
        return self._rng.standard_normal(shape, dtype=np.float32).astype(self.dtype, copy=False)

    def t(self, a):
        """The torch view of a numpy array (same memory)."""
        return self.torch.from_numpy(a)

    # ---- threads / machine --------------------------------------------------------------
    def set_threads(self, n: int) -> dict:
        got = {}
        if self.pyconv is not None and hasattr(self.pyconv, "set_num_threads"):
            self.pyconv.set_num_threads(n)
            got["pyconv"] = self.pyconv.get_num_threads() if hasattr(
                self.pyconv, "get_num_threads") else n
        else:
            got["pyconv"] = None
        if self.torch is not None:
            self.torch.set_num_threads(n)
            got["torch"] = self.torch.get_num_threads()
        return got

    def isa(self) -> str:
        C = _import("pyconv._C")
        fn = getattr(C, "isa", None) if C is not None else None
        if fn is None:
            return "unknown"
        try:
            isa = str(fn())
            # AVX-512: what a 512-bit FMA gains over a 256-bit one here (the tile choice's input)
            gain = getattr(C, "_wide_fma_gain", None)
            return f"{isa} (512-bit FMA gain {gain():.2f})" if isa == "avx512" and gain else isa
        except Exception as e:  # noqa: BLE001 - reported, never fatal
            return f"unknown ({type(e).__name__})"

    # ---- pyconv ops ---------------------------------------------------------------------
    def op(self, name: str):
        """pyconv.functional.<name>, or Unavailable with a one-line reason."""
        if self.F is None:
            raise Unavailable("pyconv.functional is not importable yet")
        fn = getattr(self.F, name, None)
        if fn is None:
            raise Unavailable(f"pyconv.functional.{name} not available yet")
        return fn


# Names under which an op's parameters may be spelled; the first is the canonical one.
_ALIASES = {
    "grad_output": ("grad_output", "grad_out", "grad", "dy", "gy"),
    "input": ("input", "x", "self"),
    "output": ("output", "result", "y"),
    "weight": ("weight", "w"),
}


def bind(fn, values: dict):
    """A zero-argument callable that calls ``fn`` with the values its parameters name.

    Lets the harness call pyconv's ``<op>_backward`` functions whatever their exact parameter
    order, as long as the names are torch-like. Binding is done once, outside the timed loop.
    """
    vals = dict(values)
    for canon, names in _ALIASES.items():
        if canon in values:
            for n in names:
                vals.setdefault(n, values[canon])
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise Unavailable(f"{getattr(fn, '__name__', fn)}: signature not introspectable")
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in vals:
            if p.kind == p.POSITIONAL_ONLY:
                args.append(vals[p.name])
            else:
                kwargs[p.name] = vals[p.name]
        elif p.default is p.empty:
            raise Unavailable(
                f"{getattr(fn, '__name__', fn)}: no value for parameter '{p.name}'")
    return functools.partial(fn, *args, **kwargs)


# ---- plain numpy baselines (used when torch is not importable) ------------------------------

def np_conv2d(x, w, stride, padding, dilation):
    """Direct im2col + tensordot convolution, groups=1."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    _, _, R, S = w.shape
    win = np.lib.stride_tricks.sliding_window_view(
        xp, (dh * (R - 1) + 1, dw * (S - 1) + 1), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


NP_ACT_FWD = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _np_sigmoid,
    "tanh": np.tanh,
    "silu": lambda x: x * _np_sigmoid(x),
}


def _np_silu_bwd(go, x, y):
    s = _np_sigmoid(x)
    return go * s * (1 + x * (1 - s))


NP_ACT_BWD = {  # (grad_output, input, output) -> grad_input
    "relu": lambda go, x, y: np.where(x > 0, go, 0),
    "sigmoid": lambda go, x, y: go * y * (1 - y),
    "tanh": lambda go, x, y: go * (1 - y * y),
    "silu": _np_silu_bwd,
}


def to_numpy_list(result) -> list:
    """Flattens an op's result (array, tensor, tuple with Nones) into a list of numpy arrays."""
    if result is None:
        return []
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            out.extend(to_numpy_list(r))
        return out
    if hasattr(result, "detach") and hasattr(result, "numpy"):   # torch.Tensor
        return [result.detach().numpy()]
    return [np.asarray(result)]


def max_rel_err(a, b) -> float | None:
    """max |a-b| / max |b| over the arrays of two results; None when not comparable."""
    la, lb = to_numpy_list(a), to_numpy_list(b)
    if not la or len(la) != len(lb):
        return None
    worst = 0.0
    for x, y in zip(la, lb):
        if x.shape != y.shape:
            return None
        if x.size == 0:
            continue
        x = x.astype(np.float64)
        y = y.astype(np.float64)
        scale = float(np.max(np.abs(y))) or 1.0
        err = float(np.max(np.abs(x - y)))
        if not np.isfinite(err):
            return float("inf")
        worst = max(worst, err / scale)
    return worst
