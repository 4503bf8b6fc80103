"""Activations on arrays of any shape: forward and explicit backward.

Each <name>_backward(grad_output, input, [param]) takes the forward's input (as
torch's gelu/silu/hardswish backward do) and returns the gradient with respect
to it, with torch's values at the kinks and special values. sigmoid_backward and
tanh_backward take the forward's output instead when given `output=` (as torch's
do): the derivative is then y(1 - y) or 1 - y^2, with nothing to recompute.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _C
from ._args import (FLOAT_DTYPES, _type_name, backend, contiguous, float_array, is_cuda_array,
                    same_dtype)


def _real(op, name, v) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {_type_name(v)} {v!r}")
    return float(v)


def _approximate(op, approximate) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{op}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return "gelu_tanh" if approximate == "tanh" else "gelu"


def _scalar_to_array(x):
    return np.asarray(x) if isinstance(x, np.generic) else x


def _plain(a):
    """A C-contiguous, aligned float32/float64 numpy array: what the kernels take as is."""
    if type(a) is not np.ndarray:
        return False
    f = a.flags
    return f.c_contiguous and f.aligned and a.dtype in FLOAT_DTYPES


def _forward(op, kind, param, input, inplace=False):
    # Plain arrays straight to the kernel: on cache-sized arrays (tens of microseconds) the
    # general path's checks and conversions were a few percent of the call.
    if not inplace and _plain(input):
        return _C.activation_forward(input, _C.ACTIVATIONS[kind], param, op)
    if inplace and not isinstance(input, np.ndarray) and not is_cuda_array(input):
        raise TypeError(f"{op}: inplace=True needs an array to write into, got {_type_name(input)}")
    x = float_array(op, _scalar_to_array(input), "input")
    y = backend(op, input=x).activation_forward(contiguous(x), _C.ACTIVATIONS[kind], param, op)
    if inplace:
        x[...] = y
        return x
    return y


def _backward(op, kind, param, grad_output, input, output=None):
    """dx = grad_output * act'(input); through the forward's output instead when one is
    given (sigmoid and tanh: no exp/tanh to recompute, as torch's own backward does)."""
    from_output = output is not None
    v = output if from_output else input
    if (_plain(v) and _plain(grad_output) and v.dtype == grad_output.dtype
            and v.shape == grad_output.shape and (input is None) == from_output):
        return _C.activation_backward(grad_output, v, _C.ACTIVATIONS[kind], param, op, from_output)
    if from_output == (input is not None):
        raise TypeError(f"{op}: give exactly one of input and output")
    name = "output" if from_output else "input"
    v = float_array(op, _scalar_to_array(output if from_output else input), name)
    dy = float_array(op, _scalar_to_array(grad_output), "grad_output")
    if dy.dtype != v.dtype:
        same_dtype(op, grad_output=dy, **{name: v})
    if dy.shape != v.shape:
        raise ValueError(f"{op}: grad_output must have the {name}'s shape {tuple(v.shape)}, "
                         f"got {tuple(dy.shape)}")
    be = (backend(op, grad_output=dy, output=v) if from_output
          else backend(op, grad_output=dy, input=v))
    return be.activation_backward(contiguous(dy), contiguous(v), _C.ACTIVATIONS[kind], param, op,
                                  from_output)


def relu(input, inplace=False):
    return _forward("relu", "relu", 0.0, input, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    op = "leaky_relu"
    return _forward(op, op, _real(op, "negative_slope", negative_slope), input, inplace)


def elu(input, alpha=1.0, inplace=False):
    return _forward("elu", "elu", _real("elu", "alpha", alpha), input, inplace)


def gelu(input, approximate="none"):
    return _forward("gelu", _approximate("gelu", approximate), 0.0, input)


def silu(input, inplace=False):
    return _forward("silu", "silu", 0.0, input, inplace)


def sigmoid(input):
    return _forward("sigmoid", "sigmoid", 0.0, input)


def tanh(input):
    return _forward("tanh", "tanh", 0.0, input)


def hardswish(input, inplace=False):
    return _forward("hardswish", "hardswish", 0.0, input, inplace)


def relu_backward(grad_output, input):
    return _backward("relu_backward", "relu", 0.0, grad_output, input)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    op = "leaky_relu_backward"
    return _backward(op, "leaky_relu", _real(op, "negative_slope", negative_slope), grad_output,
                     input)


def elu_backward(grad_output, input, alpha=1.0):
    op = "elu_backward"
    return _backward(op, "elu", _real(op, "alpha", alpha), grad_output, input)


def gelu_backward(grad_output, input, approximate="none"):
    op = "gelu_backward"
    return _backward(op, _approximate(op, approximate), 0.0, grad_output, input)


def silu_backward(grad_output, input):
    return _backward("silu_backward", "silu", 0.0, grad_output, input)


def sigmoid_backward(grad_output, input=None, output=None):
    return _backward("sigmoid_backward", "sigmoid", 0.0, grad_output, input, output)


def tanh_backward(grad_output, input=None, output=None):
    return _backward("tanh_backward", "tanh", 0.0, grad_output, input, output)


def hardswish_backward(grad_output, input):
    return _backward("hardswish_backward", "hardswish", 0.0, grad_output, input)


ACTIVATION_NAMES = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish")
