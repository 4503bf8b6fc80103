"""pyconv.functional: the public ops (torch.nn.functional signatures).

Plain arrays in, plain arrays out (straight to pyconv.ops). If any input is a
pyconv.Tensor the op goes through its autograd Function and returns a Tensor.
Every op's array-level backward (`<op>_backward`) is re-exported from pyconv.ops.
"""
import numpy as np

from . import ops
from .autograd import Tensor, is_grad_enabled
from .autograd import _nn as _fn
from .ops import _args
from .ops import nn_extra as _x
from .ops.nn_extra import (adaptive_avg_pool2d_backward, avg_pool2d_backward,  # noqa: F401
                           batch_norm_backward, cross_entropy_backward, dropout_backward,
                           l1_loss_backward, log_softmax_backward, mse_loss_backward,
                           softmax_backward)


def _has_tensor(*xs):
    return any(isinstance(x, Tensor) for x in xs)


def _data(x):
    return x.data if isinstance(x, Tensor) else x


_OWN = ["relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "conv2d", "conv_transpose2d",
        "linear", "max_pool2d", "max_unpool2d", "avg_pool2d", "adaptive_avg_pool2d", "softmax", "log_softmax",
        "cross_entropy", "mse_loss", "l1_loss", "batch_norm", "dropout", "pad", "softmax_backward",
        "log_softmax_backward", "cross_entropy_backward", "mse_loss_backward", "l1_loss_backward",
        "avg_pool2d_backward", "adaptive_avg_pool2d_backward", "batch_norm_backward", "dropout_backward"]
__all__ = _OWN + [n for n in getattr(ops, "__all__", []) if n not in _OWN]


def __getattr__(name):
    # every other array-level op and backward of pyconv.ops; kept as a module global once
    # looked up, so that later calls (F.relu_backward in a loop) skip this hook
    if not name.startswith("_") and hasattr(ops, name):
        fn = globals()[name] = getattr(ops, name)
        return fn
    raise AttributeError(f"module 'pyconv.functional' has no attribute {name!r}")


# ----------------------------------------------------------------------------- activations

def _activation(name, x, inplace=False, **params):
    if isinstance(x, Tensor):
        # (inplace is accepted for torch compatibility; the Tensor path always returns a new tensor)
        return _fn.Activation.apply(x, act=name, params=params)
    if inplace:
        return getattr(ops, name)(x, *params.values(), inplace=True)
    return getattr(ops, name)(x, *params.values())


def relu(input, inplace=False):
    if type(input) is np.ndarray:  # (plain arrays first: these ops are often microseconds)
        return ops.relu(input, inplace)
    return _activation("relu", input, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    if type(input) is np.ndarray:
        return ops.leaky_relu(input, negative_slope, inplace)
    return _activation("leaky_relu", input, inplace, negative_slope=negative_slope)


def elu(input, alpha=1.0, inplace=False):
    if type(input) is np.ndarray:
        return ops.elu(input, alpha, inplace)
    return _activation("elu", input, inplace, alpha=alpha)


def gelu(input, approximate="none"):
    if type(input) is np.ndarray:
        return ops.gelu(input, approximate)
    return _activation("gelu", input, approximate=approximate)


def silu(input, inplace=False):
    if type(input) is np.ndarray:
        return ops.silu(input, inplace)
    return _activation("silu", input, inplace)


def sigmoid(input):
    if type(input) is np.ndarray:
        return ops.sigmoid(input)
    return _activation("sigmoid", input)


def tanh(input):
    if type(input) is np.ndarray:
        return ops.tanh(input)
    return _activation("tanh", input)


def hardswish(input, inplace=False):
    if type(input) is np.ndarray:
        return ops.hardswish(input, inplace)
    return _activation("hardswish", input, inplace)


# ----------------------------------------------------------------------------- conv / linear

def _no_preactivation(op, flag):
    if flag:
        raise ValueError(f"{op}: return_preactivation is for plain arrays; with Tensors autograd keeps it")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None,
           return_preactivation=False):
    if not _has_tensor(input, weight, bias):
        return ops.conv2d(input, weight, bias, stride, padding, dilation, groups, activation=activation,
                    return_preactivation=return_preactivation)
    _no_preactivation("conv2d", return_preactivation)
    return _fn.Conv2d.apply(input, weight, bias, stride, padding, dilation, groups, activation=activation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     activation=None, return_preactivation=False):
    if not _has_tensor(input, weight, bias):
        return ops.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation,
                                    activation=activation, return_preactivation=return_preactivation)
    _no_preactivation("conv_transpose2d", return_preactivation)
    return _fn.ConvTranspose2d.apply(input, weight, bias, stride, padding, output_padding, groups, dilation,
                                     activation=activation)


def linear(input, weight, bias=None, *, activation=None, return_preactivation=False):
    if not _has_tensor(input, weight, bias):
        return ops.linear(input, weight, bias, activation=activation,
                    return_preactivation=return_preactivation)
    _no_preactivation("linear", return_preactivation)
    return _fn.Linear.apply(input, weight, bias, activation=activation)


# ----------------------------------------------------------------------------- pooling

def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if not isinstance(input, Tensor):
        return ops.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    if not (input.requires_grad and is_grad_enabled()):
        r = ops.max_pool2d(input.data, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        return (Tensor(r[0]), Tensor(r[1])) if return_indices else Tensor(r)
    out = _fn.MaxPool2d.apply(input, kernel_size, stride, padding, dilation, ceil_mode)
    return (out, Tensor(out.grad_fn.indices)) if return_indices else out


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    if not _has_tensor(input, indices):
        return ops.max_unpool2d(input, indices, kernel_size, stride, padding, output_size)
    return _fn.MaxUnpool2d.apply(input, _data(indices), kernel_size, stride, padding, output_size)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    if not isinstance(input, Tensor):
        return _x.avg_pool2d(input, *args)
    return _fn.AvgPool2d.apply(input, *args)


def adaptive_avg_pool2d(input, output_size):
    if not isinstance(input, Tensor):
        return _x.adaptive_avg_pool2d(input, output_size)
    return _fn.AdaptiveAvgPool2d.apply(input, output_size)


# ----------------------------------------------------------------------------- softmax, losses

def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dtype is not None:
        input = input.to(dtype) if isinstance(input, Tensor) else np.asarray(input).astype(dtype)
    if not isinstance(input, Tensor):
        return _x.softmax(input, dim)
    return _fn.Softmax.apply(input, dim, False)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dtype is not None:
        input = input.to(dtype) if isinstance(input, Tensor) else np.asarray(input).astype(dtype)
    if not isinstance(input, Tensor):
        return _x.log_softmax(input, dim)
    return _fn.Softmax.apply(input, dim, True)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    if not isinstance(input, Tensor):
        return _x.cross_entropy(input, _data(target), _data(weight), ignore_index, reduction, label_smoothing)
    return _fn.CrossEntropy.apply(input, _data(target), _data(weight), ignore_index, reduction, label_smoothing)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    if not _has_tensor(input, target):
        return _x.mse_loss(input, target, reduction)
    return _fn.PointLoss.apply(input, target, "mse", reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    if not _has_tensor(input, target):
        return _x.l1_loss(input, target, reduction)
    return _fn.PointLoss.apply(input, target, "l1", reduction)


# ----------------------------------------------------------------------------- normalisation, dropout

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    rm, rv = _data(running_mean), _data(running_var)
    if not _has_tensor(input, weight, bias):
        return _x.batch_norm(input, rm, rv, weight, bias, training, momentum, eps)
    return _fn.BatchNorm.apply(input, weight, bias, rm, rv, training, momentum, eps)


def dropout(input, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p expects a value in [0, 1], got {p}")
    if not isinstance(input, Tensor):
        return _x.dropout(input, p, training)
    if not training or p == 0.0:
        return input
    return _fn.Dropout.apply(input, p)


def pad(input, pad, mode="constant", value=0.0):
    """Pads the last two dims: pad = (left, right, top, bottom); mode constant/reflect/replicate/circular."""
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad: pad expects a tuple of ints (left, right[, top, bottom]), "
                        f"got {type(pad).__name__}")
    pad = tuple(_args.int_param("pad", "pad", p) for p in pad)
    if len(pad) == 2:
        pad = pad + (0, 0)
    if len(pad) != 4:
        raise ValueError(f"pad: expects (left, right[, top, bottom]), got {pad}")
    if not isinstance(mode, str) or mode not in _fn.Pad._MODES:
        raise ValueError(f"pad: mode expects one of {sorted(_fn.Pad._MODES)}, got {mode!r}")
    if value is None:
        value = 0.0
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"pad: value expects a number, got {type(value).__name__} {value!r}")
    data = input.data if isinstance(input, Tensor) else np.asarray(input)
    if data.ndim < 2:
        raise ValueError(f"pad: input expects at least 2 dimensions (pads the last two), "
                         f"got shape {tuple(data.shape)}")
    if min(pad) < 0:
        raise ValueError(f"pad: negative padding (cropping) is not supported, got {pad}")
    if not isinstance(input, Tensor):
        return _fn.Pad.forward(_fn.Pad(), data, pad, mode, value)
    return _fn.Pad.apply(input, pad, mode, value)
