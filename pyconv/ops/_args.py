"""Argument normalisation shared by the array-level ops.

Every public op validates here what the kernels cannot see (Python types,
dtypes, devices, int-or-pair parameters, unbatched input) and raises
ValueError / TypeError naming the op. Shape arithmetic and shape checks live in
the C++ params structs, one place for the CPU and CUDA kernels.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _C

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _type_name(x) -> str:
    if isinstance(x, np.ndarray):
        return f"numpy array of dtype {x.dtype}"
    return type(x).__name__


def is_cuda_array(x) -> bool:
    return not isinstance(x, np.ndarray) and hasattr(x, "__cuda_array_interface__")


def float_array(op: str, x, name: str, ndims=None):
    """Checks that `x` is a float32/float64 array (numpy or CUDA) and returns it."""
    if not isinstance(x, np.ndarray) and not is_cuda_array(x):
        raise TypeError(f"{op}: {name} must be an array (numpy, or CUDA with "
                        f"__cuda_array_interface__), got {_type_name(x)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must have dtype float32 or float64, got {x.dtype}")
    if ndims is not None and x.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{op}: {name} must have {want} dimensions, got shape {tuple(x.shape)}")
    return x


def same_dtype(op: str, **arrays):
    """All given (non-None) arrays share one dtype; mixing float32 and float64 is a TypeError."""
    first = None
    for name, a in arrays.items():
        if a is None:
            continue
        if first is None:
            first = (name, a.dtype)
        elif a.dtype != first[1]:
            raise TypeError(f"{op}: {name} has dtype {a.dtype} but {first[0]} has dtype "
                            f"{first[1]}; pass arrays of one dtype")
    return first[1] if first else None


def same_device(op: str, **arrays) -> bool:
    """True when the arrays live on a CUDA device, False for numpy; mixing is a TypeError."""
    cuda = cpu = False
    for a in arrays.values():   # a plain loop: this runs on every call of every op
        if a is None:
            continue
        if is_cuda_array(a):
            cuda = True
        else:
            cpu = True
    if cuda and cpu:
        where = ", ".join(f"{n} on {'cuda' if is_cuda_array(a) else 'cpu'}"
                          for n, a in arrays.items() if a is not None)
        raise TypeError(f"{op}: all arrays must be on one device, got {where}")
    return cuda


def backend(op: str, **arrays):
    """The kernels for these arrays: pyconv._C for numpy, the CUDA module for CUDA arrays."""
    for a in arrays.values():
        if not isinstance(a, np.ndarray) and a is not None:
            break
    else:
        return _C  # all numpy: the common case, without same_device's second pass
    if same_device(op, **arrays):
        from .. import cuda
        return cuda.backend(op)
    return _C


def contiguous(a):
    """C-contiguous, aligned numpy array (CUDA arrays pass through: their kernels read strides).
    Checks the flags before np.require, which costs microseconds even when it copies nothing."""
    if isinstance(a, np.ndarray):
        f = a.flags
        if not (f.c_contiguous and f.aligned):
            return np.require(a, requirements=["C", "A"])
    return a


def kernel_ready(a):
    """Array the kernels can read through its strides (aligned, item-multiple strides).

    CUDA arrays pass through: the CUDA kernels read any strides."""
    if a is None or is_cuda_array(a):
        return a
    f = a.flags
    if f.c_contiguous and f.aligned:  # the common case, without the stride scan
        return a
    if not f.aligned or any(s % a.itemsize for s in a.strides):
        return np.array(a, order="C")  # a copy: ascontiguousarray keeps an unaligned C array
    return a


def vector(a):
    """Contiguous 1-d array (bias and the like) or None; CUDA arrays pass through."""
    if a is None or is_cuda_array(a) or (a.flags.c_contiguous and a.flags.aligned):
        return a
    return np.array(a, order="C")


def int_param(op: str, name: str, v) -> int:
    if type(v) is int:  # the common case, without the abstract-class check (0.7 us)
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {_type_name(v)} {v!r}")
    return int(v)


def flag(op: str, name: str, v) -> bool:
    """A bool parameter: Python or numpy bool only (torch rejects ints, None, lists...)."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {_type_name(v)} {v!r}")
    return bool(v)


def pair(op: str, name: str, v) -> tuple[int, int]:
    """int or sequence of two ints -> (int, int)."""
    if type(v) is int:
        return v, v
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {tuple(v)}")
        return int_param(op, name, v[0]), int_param(op, name, v[1])
    if isinstance(v, np.ndarray) and v.shape == (2,):
        return int_param(op, name, v[0].item()), int_param(op, name, v[1].item())
    x = int_param(op, name, v)
    return x, x


# Activation names of the fused epilogues and their parameter (name, default).
ACTIVATION_PARAMS = {
    "relu": None,
    "leaky_relu": ("negative_slope", 0.01),
    "elu": ("alpha", 1.0),
    "gelu": ("approximate", "none"),
    "silu": None,
    "sigmoid": None,
    "tanh": None,
    "hardswish": None,
}


def parse_activation(op: str, activation):
    """activation= of a fused op -> (kernel code, float parameter).

    Accepts None, a name ("relu"), or (name, parameter) such as
    ("leaky_relu", 0.2), ("elu", 0.5), ("gelu", "tanh").
    """
    if activation is None:
        return 0, 0.0
    param = None
    if isinstance(activation, (tuple, list)):
        if len(activation) != 2 or not isinstance(activation[0], str):
            raise TypeError(f"{op}: activation must be a name or a (name, parameter) pair, "
                            f"got {activation!r}")
        activation, param = activation
    if not isinstance(activation, str):
        raise TypeError(f"{op}: activation must be a name or a (name, parameter) pair, "
                        f"got {_type_name(activation)}")
    if activation not in ACTIVATION_PARAMS:
        raise ValueError(f"{op}: unknown activation {activation!r}; expected one of "
                         f"{', '.join(ACTIVATION_PARAMS)}")
    spec = ACTIVATION_PARAMS[activation]
    if spec is None:
        if param is not None:
            raise ValueError(f"{op}: activation {activation!r} takes no parameter, got {param!r}")
        return _C.ACTIVATIONS[activation], 0.0
    pname, default = spec
    param = default if param is None else param
    if activation == "gelu":
        if param not in ("none", "tanh"):
            raise ValueError(f"{op}: gelu's approximate must be 'none' or 'tanh', got {param!r}")
        return _C.ACTIVATIONS["gelu_tanh" if param == "tanh" else "gelu"], 0.0
    if isinstance(param, bool) or not isinstance(param, numbers.Real):
        raise TypeError(f"{op}: {activation}'s {pname} must be a number, got {param!r}")
    return _C.ACTIVATIONS[activation], float(param)
