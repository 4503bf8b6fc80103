"""linear on arrays: y = act(x @ weight.T + bias), and its backward.

Forward and backward run on the convolution GEMM core as a 1x1 convolution (rows
of x as images of in_features channels), so bias and activation are fused into the
GEMM epilogue. The backward deliberately avoids numpy's matmul: OpenBLAS keeps its
own thread pool spinning after each call, and on a machine with few cores those
spinning threads steal the cores of the next convolution (a CIFAR-10 training step
took 1.8x as long with them).
"""
from __future__ import annotations

import math

from .. import _C
from ._args import float_array, kernel_ready, parse_activation, same_device, same_dtype, vector

_OUT_MASK = (True, True, True)


def _check(op, x, w, b=None):
    x = float_array(op, x, "input")
    w = float_array(op, w, "weight")
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have at least 1 dimension, got a scalar")
    if w.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-dimensional (out_features, in_features), "
                         f"got shape {tuple(w.shape)}")
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"{op}: input's last dimension ({x.shape[-1]}) must equal weight's "
                         f"in_features ({w.shape[1]}); got input {tuple(x.shape)}, weight "
                         f"{tuple(w.shape)}")
    if b is not None:
        b = float_array(op, b, "bias")
        if b.shape != (w.shape[0],):
            raise ValueError(f"{op}: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
    same_dtype(op, input=x, weight=w, bias=b)
    if same_device(op, input=x, weight=w, bias=b):
        raise TypeError(f"{op}: CUDA arrays are not supported by linear yet")
    return x, w, b


def _as_conv(x, w):
    """linear as a 1x1 convolution: rows of x are images of in_features channels."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1], 1, 1), w[:, :, None, None]


def linear(input, weight, bias=None, *, activation=None, return_preactivation=False):
    """torch.nn.functional.linear; input (..., in_features), weight (out, in), bias (out,)."""
    op = "linear"
    x, w, b = _check(op, input, weight, bias)
    kind, param = parse_activation(op, activation)
    x4, w4 = _as_conv(x, w)
    out = _C.conv2d_forward(kernel_ready(x4), kernel_ready(w4), vector(b), (1, 1), (0, 0, 0, 0),
                            (1, 1), 1, kind, param, return_preactivation)
    shape = x.shape[:-1] + (w.shape[0],)
    if return_preactivation:
        return out[0].reshape(shape), out[1].reshape(shape)
    return out.reshape(shape)


def linear_backward(grad_output, input, weight, output_mask=_OUT_MASK):
    """Gradients of linear: (grad_input, grad_weight, grad_bias); None where output_mask is False."""
    op = "linear_backward"
    x, w, _ = _check(op, input, weight)
    g = float_array(op, grad_output, "grad_output")
    same_dtype(op, grad_output=g, input=x)
    if g.shape != x.shape[:-1] + (w.shape[0],):
        raise ValueError(f"{op}: grad_output must have shape {x.shape[:-1] + (w.shape[0],)}, "
                         f"got {tuple(g.shape)}")
    mask = [bool(m) for m in output_mask]
    if len(mask) != 3:
        raise TypeError(f"{op}: output_mask must be 3 booleans (grad_input, grad_weight, "
                        f"grad_bias), got {output_mask!r}")
    x4, w4 = _as_conv(x, w)
    gi = gw = gb = None
    if mask[0]:
        gi = _C.conv2d_backward(kernel_ready(g.reshape(x4.shape[0], w.shape[0], 1, 1)),
                                kernel_ready(x4), kernel_ready(w4), (1, 1), (0, 0, 0, 0),
                                (1, 1), 1, [True, False, False])[0].reshape(x.shape)
    if mask[1] or mask[2]:
        g4 = g.reshape(x4.shape[0], w.shape[0], 1, 1)
        _, gw, gb = _C.conv2d_backward(kernel_ready(g4), kernel_ready(x4), kernel_ready(w4),
                                       (1, 1), (0, 0, 0, 0), (1, 1), 1, [False] + mask[1:])
    return gi, gw.reshape(w.shape) if mask[1] else None, gb if mask[2] else None
