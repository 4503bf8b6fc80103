"""Autograd Functions for the array-level ops in pyconv.ops: forward calls ops.<op>,
backward calls ops.<op>_backward."""
import numpy as np

from .. import ops
from ..ops import nn_extra as _x
from ._core import Function

# activation name -> name of its parameter (None: no parameter)
ACTIVATIONS = {"relu": None, "leaky_relu": "negative_slope", "elu": "alpha", "gelu": "approximate",
               "silu": None, "sigmoid": None, "tanh": None, "hardswish": None}


def split_activation(activation):
    """`"relu"`, `("leaky_relu", 0.2)` or `{"name": ..., <param>: ...}` -> (name, params dict)."""
    if activation is None:
        return None, {}
    if isinstance(activation, str):
        name, params = activation, {}
    elif isinstance(activation, dict):
        params = dict(activation)
        name = params.pop("name", None)
    elif isinstance(activation, (tuple, list)) and len(activation) in (1, 2) and isinstance(activation[0], str):
        name = activation[0]
        params = {}
        if len(activation) == 2:
            pname = ACTIVATIONS.get(name)
            if pname is None:
                raise ValueError(f"activation: {name!r} takes no parameter, got {activation!r}")
            params[pname] = activation[1]
    else:
        raise ValueError(f"activation: expected a name or (name, parameter), got {activation!r}")
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return name, params


_FROM_OUTPUT = ("sigmoid", "tanh")


class Activation(Function):
    def name(self):
        return getattr(self, "act", "activation").capitalize() + "Backward"

    @staticmethod
    def forward(ctx, x, act, params):
        ctx.act, ctx.params = act, params
        y = getattr(ops, act)(x, *params.values())
        # sigmoid and tanh differentiate through their output (as torch's autograd does):
        # no exp/tanh to recompute in the backward
        ctx.from_output = act in _FROM_OUTPUT
        ctx.save_for_backward(y if ctx.from_output else x)
        return y

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        bwd = getattr(ops, ctx.act + "_backward")
        if ctx.from_output:
            return (bwd(g, output=v),)
        return (bwd(g, v, *ctx.params.values()),)


def _act_backward(ctx, g):
    """Gradient through a fused activation, from the saved pre-activation."""
    if ctx.act is None:
        return g
    name, params = ctx.act
    return getattr(ops, name + "_backward")(g, ctx.pre, *params.values())


def _fused_forward(ctx, fn, activation, *args):
    ctx.act = None
    if activation is None:
        return fn(*args)
    if not any(ctx.needs_input_grad):
        return fn(*args, activation=activation)
    ctx.act = split_activation(activation)
    out, ctx.pre = fn(*args, activation=activation, return_preactivation=True)
    return out


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups, activation=None):
        ctx.args = (stride, padding, dilation, groups)
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, w)
        return _fused_forward(ctx, ops.conv2d, activation, x, w, b, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = _act_backward(ctx, g)
        n = ctx.needs_input_grad
        mask = (bool(n[0]), bool(n[1]), bool(n[2]) and ctx.has_bias)
        gi, gw, gb = ops.conv2d_backward(g, x, w, *ctx.args, output_mask=mask)
        return gi, gw, gb


class ConvTranspose2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, output_padding, groups, dilation, activation=None):
        ctx.args = (stride, padding, output_padding, groups, dilation)
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, w)
        return _fused_forward(ctx, ops.conv_transpose2d, activation, x, w, b, stride, padding, output_padding,
                              groups, dilation)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = _act_backward(ctx, g)
        n = ctx.needs_input_grad
        mask = (bool(n[0]), bool(n[1]), bool(n[2]) and ctx.has_bias)
        return ops.conv_transpose2d_backward(g, x, w, *ctx.args, output_mask=mask)


class Linear(Function):
    @staticmethod
    def forward(ctx, x, w, b, activation=None):
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, w)
        return _fused_forward(ctx, ops.linear, activation, x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = _act_backward(ctx, g)
        n = ctx.needs_input_grad
        mask = (bool(n[0]), bool(n[1]), bool(n[2]) and ctx.has_bias)
        return ops.linear_backward(g, x, w, output_mask=mask)


class MaxPool2d(Function):
    """Output only; the indices are kept in ctx.indices for the caller."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        out, idx = ops.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, True)
        ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
        ctx.indices = idx
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (ops.max_pool2d_backward(g, x, ctx.indices, *ctx.args),)


class MaxUnpool2d(Function):
    @staticmethod
    def forward(ctx, x, indices, kernel_size, stride, padding, output_size):
        ctx.indices = indices
        ctx.in_shape = x.shape
        ctx.args = (kernel_size, stride, padding, output_size)
        return ops.max_unpool2d(x, indices, kernel_size, stride, padding, output_size)

    @staticmethod
    def backward(ctx, g):
        if hasattr(ops, "max_unpool2d_backward"):
            return ops.max_unpool2d_backward(g, ctx.indices, *ctx.args), None
        # the gradient of an unpool is a gather at the indices
        idx = ctx.indices
        gf = g.reshape(g.shape[:-2] + (-1,))
        gi = np.take_along_axis(gf, idx.reshape(idx.shape[:-2] + (-1,)), axis=-1)
        return gi.reshape(ctx.in_shape), None


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim, log):
        ctx.dim, ctx.log = dim, log
        ctx.save_for_backward(x)
        return _x.log_softmax(x, dim) if log else _x.softmax(x, dim)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        f = _x.log_softmax_backward if ctx.log else _x.softmax_backward
        return (f(g, x, ctx.dim),)


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction, label_smoothing):
        ctx.args = (weight, ignore_index, reduction, label_smoothing)
        ctx.save_for_backward(x, target)
        return _x.cross_entropy(x, target, *ctx.args)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        return _x.cross_entropy_backward(g, x, t, *ctx.args), None, None


class PointLoss(Function):
    def name(self):
        return {"mse": "MseLoss", "l1": "L1Loss"}.get(getattr(self, "kind", None), "PointLoss") + "Backward"

    @staticmethod
    def forward(ctx, x, y, kind, reduction):
        ctx.kind, ctx.reduction = kind, reduction
        ctx.save_for_backward(x, y)
        return (_x.mse_loss if kind == "mse" else _x.l1_loss)(x, y, reduction)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        f = _x.mse_loss_backward if ctx.kind == "mse" else _x.l1_loss_backward
        return f(g, x, y, ctx.reduction, output_mask=ctx.needs_input_grad[:2])


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, *args):
        ctx.args = args
        ctx.save_for_backward(x)
        return _x.avg_pool2d(x, *args)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (_x.avg_pool2d_backward(g, x, *ctx.args),)


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, output_size):
        ctx.output_size = output_size
        ctx.save_for_backward(x)
        return _x.adaptive_avg_pool2d(x, output_size)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (_x.adaptive_avg_pool2d_backward(g, x, ctx.output_size),)


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        ctx.training, ctx.eps = training, eps
        # eval mode normalises with the running stats as they are now
        rm = running_mean if training or running_mean is None else running_mean.copy()
        rv = running_var if training or running_var is None else running_var.copy()
        ctx.save_for_backward(x, weight, rm, rv)
        return _x.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)

    @staticmethod
    def backward(ctx, g):
        x, w, rm, rv = ctx.saved_tensors
        n = ctx.needs_input_grad
        gi, gw, gb = _x.batch_norm_backward(g, x, w, rm, rv, ctx.training, ctx.eps,
                                            output_mask=(bool(n[0]), bool(n[1]), bool(n[2])))
        return gi, gw, gb


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, p):
        mask = _x.dropout_mask(x.shape, p, x.dtype)
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return (_x.dropout_backward(g, ctx.mask),)


class Pad(Function):
    """numpy.pad of the last two dims with mode constant/reflect/replicate/circular."""
    _MODES = {"constant": "constant", "zeros": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}

    @staticmethod
    def forward(ctx, x, pad, mode, value=0.0):
        left, right, top, bottom = pad
        npmode = Pad._MODES[mode]
        H, W = x.shape[-2:]
        if npmode == "reflect" and (max(top, bottom) >= H or max(left, right) >= W):
            raise ValueError(f"pad: reflect padding {pad} must be smaller than the input size {(H, W)}")
        if npmode == "wrap" and (max(top, bottom) > H or max(left, right) > W):
            raise ValueError(f"pad: circular padding {pad} must be at most the input size {(H, W)}")
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        ctx.H, ctx.W, ctx.pad, ctx.npmode = H, W, pad, npmode
        if npmode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=value)
        return np.pad(x, widths, mode=npmode)

    @staticmethod
    def backward(ctx, g):
        left, right, top, bottom = ctx.pad
        if ctx.npmode == "constant":
            return (g[..., top:top + ctx.H, left:left + ctx.W],)
        # padded position -> source position along each axis; gradients of the positions
        # that map to one source added there (np.add.at, not a product with one-hot
        # matrices: 0 * NaN would spread a NaN of one position everywhere)
        ih = np.pad(np.arange(ctx.H), (top, bottom), mode=ctx.npmode)
        iw = np.pad(np.arange(ctx.W), (left, right), mode=ctx.npmode)
        gh = np.zeros(g.shape[:-2] + (ctx.H, g.shape[-1]), g.dtype)
        np.add.at(gh, (Ellipsis, ih, slice(None)), g)
        gi = np.zeros(g.shape[:-2] + (ctx.H, ctx.W), g.dtype)
        np.add.at(gi, (Ellipsis, iw), gh)
        return (gi,)
