"""max_pool2d and max_unpool2d on arrays: forward and explicit backward.

Shapes follow torch: input (N, C, H, W) or unbatched (C, H, W); indices are
int64 flat positions within each input plane (h * W + w), as torch returns them.
Shape rules and their errors live in the C++ PoolParams (csrc/pool/pool_params.h).
"""
from __future__ import annotations

import numpy as np

from ._args import backend, contiguous, flag, float_array, pair, same_dtype


def _batched(op, x, name):
    x = float_array(op, x, name, ndims=(3, 4))
    return (x[None], True) if x.ndim == 3 else (x, False)


def _like(op, a, name, unbatched):
    """grad_output-like float array with the input's batching."""
    a = float_array(op, a, name, ndims=(3,) if unbatched else (4,))
    return a[None] if unbatched else a


def _indices(op, indices, unbatched):
    if not isinstance(indices, np.ndarray) and not hasattr(indices, "__cuda_array_interface__"):
        raise TypeError(f"{op}: indices must be an array of dtype int64, "
                        f"got {type(indices).__name__}")
    if indices.dtype != np.int64:
        raise TypeError(f"{op}: indices must have dtype int64, got {indices.dtype}")
    want = 3 if unbatched else 4
    if indices.ndim != want:
        raise ValueError(f"{op}: indices must have {want} dimensions like the input, "
                         f"got shape {tuple(indices.shape)}")
    return indices[None] if unbatched else indices


_INT32_MAX = 2**31 - 1


def _int32(op, name, v):
    """pair(v) whose entries fit in a C int (torch's max_pool2d rejects larger ones)."""
    p = pair(op, name, v)
    if max(abs(p[0]), abs(p[1])) > _INT32_MAX:
        raise ValueError(f"{op}: {name} must fit in a 32-bit int, got {p}")
    return p


def _pool_args(op, kernel_size, stride, padding, unpool=False):
    """(kernel, stride, padding) pairs. stride None (or, for max_pool2d, an empty sequence, as
    torch's default) means the kernel size; max_pool2d's parameters must fit in 32 bits."""
    conv = pair if unpool else lambda o, n, v: _int32(o, n, v)
    k = conv(op, "kernel_size", kernel_size)
    if stride is None or (not unpool and isinstance(stride, (list, tuple)) and len(stride) == 0):
        s = k
    else:
        s = conv(op, "stride", stride)
    return k, s, conv(op, "padding", padding)


def _rows_contiguous(x):
    """Aligned array with item-multiple strides and a unit-stride last axis (the fast
    kernels read rows); anything else is copied."""
    if not isinstance(x, np.ndarray):
        return x
    if (not x.flags.aligned or any(s % x.itemsize for s in x.strides)
            or (x.shape[-1] > 1 and x.strides[-1] != x.itemsize)):
        return np.require(x, requirements=["C", "A"])
    return x


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch.nn.functional.max_pool2d; with return_indices=True returns (output, indices)."""
    op = "max_pool2d"
    x, unbatched = _batched(op, input, "input")
    be = backend(op, input=x)
    k, s, p = _pool_args(op, kernel_size, stride, padding)
    out = be.max_pool2d_forward(_rows_contiguous(x), k, s, p, _int32(op, "dilation", dilation),
                                flag(op, "ceil_mode", ceil_mode),
                                flag(op, "return_indices", return_indices))
    if unbatched:
        return tuple(o[0] for o in out) if return_indices else out[0]
    return out


def max_pool2d_backward(grad_output, input, indices, kernel_size, stride=None, padding=0,
                        dilation=1, ceil_mode=False):
    """Gradient of max_pool2d with respect to its input: zeros, plus grad_output scattered
    (accumulated where windows overlap) to the positions in indices."""
    op = "max_pool2d_backward"
    x, unbatched = _batched(op, input, "input")
    dy = _like(op, grad_output, "grad_output", unbatched)
    idx = _indices(op, indices, unbatched)
    same_dtype(op, grad_output=dy, input=x)
    be = backend(op, grad_output=dy, input=x, indices=idx)
    k, s, p = _pool_args(op, kernel_size, stride, padding)
    gi = be.max_pool2d_backward(contiguous(dy), x, contiguous(idx), k, s, p,
                                _int32(op, "dilation", dilation), flag(op, "ceil_mode", ceil_mode))
    return gi[0] if unbatched else gi


def _output_size(op, output_size):
    if output_size is None:
        return (-1, -1)
    if isinstance(output_size, np.ndarray):
        output_size = output_size.tolist()
    try:
        size = tuple(output_size)
    except TypeError:
        raise TypeError(f"{op}: output_size must be a sequence of 2 or 4 ints, "
                        f"got {output_size!r}") from None
    if len(size) == 4:
        size = size[2:]
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must have 2 or 4 entries, got {len(size)}: "
                         f"{tuple(output_size)!r}")
    size = pair(op, "output_size", size)
    if min(size) < 0:
        raise ValueError(f"{op}: output_size must be non-negative, got {size}")
    return size


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool2d: zeros with input written at indices."""
    op = "max_unpool2d"
    x, unbatched = _batched(op, input, "input")
    idx = _indices(op, indices, unbatched)
    be = backend(op, input=x, indices=idx)
    k, s, p = _pool_args(op, kernel_size, stride, padding, unpool=True)
    out = be.max_unpool2d_forward(contiguous(x), contiguous(idx), k, s, p,
                                  _output_size(op, output_size))
    return out[0] if unbatched else out


def max_unpool2d_backward(grad_output, indices, kernel_size, stride=None, padding=0,
                          output_size=None):
    """Gradient of max_unpool2d with respect to its input: grad_output gathered at indices."""
    op = "max_unpool2d_backward"
    if not isinstance(indices, np.ndarray) and not hasattr(indices, "__cuda_array_interface__"):
        raise TypeError(f"{op}: indices must be an array of dtype int64, "
                        f"got {type(indices).__name__}")
    unbatched = indices.ndim == 3
    dy = _like(op, grad_output, "grad_output", unbatched)
    idx = _indices(op, indices, unbatched)
    be = backend(op, grad_output=dy, indices=idx)
    k, s, p = _pool_args(op, kernel_size, stride, padding, unpool=True)
    gi = be.max_unpool2d_backward(contiguous(dy), contiguous(idx), k, s, p,
                                  _output_size(op, output_size))
    return gi[0] if unbatched else gi
