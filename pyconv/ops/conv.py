"""conv2d and conv_transpose2d on arrays: forward and explicit backward.

Shapes follow torch: input (N, C, H, W) or unbatched (C, H, W), weight
(K, C/groups, R, S) for conv2d and (C, K/groups, R, S) for conv_transpose2d.
"""
from __future__ import annotations

from ._args import (backend, float_array, kernel_ready, pair, int_param, parse_activation,
                    same_dtype, vector)

_OUT_MASK = (True, True, True)


def _conv_padding(op, padding, kernel_hw, stride, dilation):
    """(top, bottom, left, right) for conv2d's int / pair / 'valid' / 'same' padding."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            out = []
            for k, d in zip(kernel_hw, dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)
        raise ValueError(f"{op}: padding must be an int, a pair of ints, 'valid' or 'same', "
                         f"got {padding!r}")
    ph, pw = pair(op, "padding", padding)
    return (ph, ph, pw, pw)


def _batched(op, x, name):
    """(array as 4-d, whether it was unbatched)."""
    x = float_array(op, x, name, ndims=(3, 4))
    return (x[None], True) if x.ndim == 3 else (x, False)


def _weight(op, w):
    w = float_array(op, w, "weight")
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-dimensional, got shape {tuple(w.shape)}")
    return w


def _bias(op, b):
    if b is None:
        return None
    b = float_array(op, b, "bias")
    if b.ndim != 1:
        raise ValueError(f"{op}: bias must be 1-dimensional, got shape {tuple(b.shape)}")
    return b


def _mask(op, output_mask):
    if len(output_mask) != 3:
        raise ValueError(f"{op}: output_mask must have 3 entries (input, weight, bias), "
                         f"got {output_mask!r}")
    return tuple(bool(m) for m in output_mask)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           activation=None, return_preactivation=False):
    """torch.nn.functional.conv2d; `activation=` fuses act(conv + bias) into one pass.

    With return_preactivation=True returns (output, conv + bias), what the
    backward of a fused activation needs.
    """
    op = "conv2d"
    x, unbatched = _batched(op, input, "input")
    w, b = _weight(op, weight), _bias(op, bias)
    same_dtype(op, input=x, weight=w, bias=b)
    be = backend(op, input=x, weight=w, bias=b)
    stride, dilation = pair(op, "stride", stride), pair(op, "dilation", dilation)
    pad = _conv_padding(op, padding, w.shape[2:], stride, dilation)
    kind, param = parse_activation(op, activation)
    out = be.conv2d_forward(kernel_ready(x), kernel_ready(w), vector(b), stride, pad, dilation,
                            int_param(op, "groups", groups), kind, param, return_preactivation)
    if unbatched:
        return tuple(o[0] for o in out) if return_preactivation else out[0]
    return out


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=_OUT_MASK):
    """Gradients of conv2d: (grad_input, grad_weight, grad_bias); None where output_mask is False."""
    op = "conv2d_backward"
    x, unbatched = _batched(op, input, "input")
    dy = float_array(op, grad_output, "grad_output", ndims=(3,) if unbatched else (4,))
    dy = dy[None] if unbatched else dy
    w = _weight(op, weight)
    same_dtype(op, grad_output=dy, input=x, weight=w)
    be = backend(op, grad_output=dy, input=x, weight=w)
    stride, dilation = pair(op, "stride", stride), pair(op, "dilation", dilation)
    pad = _conv_padding(op, padding, w.shape[2:], stride, dilation)
    gi, gw, gb = be.conv2d_backward(kernel_ready(dy), kernel_ready(x), kernel_ready(w), stride,
                                    pad, dilation, int_param(op, "groups", groups),
                                    _mask(op, output_mask))
    if unbatched and gi is not None:
        gi = gi[0]
    return gi, gw, gb


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, activation=None, return_preactivation=False):
    """torch.nn.functional.conv_transpose2d; `activation=` as in conv2d."""
    op = "conv_transpose2d"
    x, unbatched = _batched(op, input, "input")
    w, b = _weight(op, weight), _bias(op, bias)
    same_dtype(op, input=x, weight=w, bias=b)
    be = backend(op, input=x, weight=w, bias=b)
    kind, param = parse_activation(op, activation)
    out = be.conv_transpose2d_forward(
        kernel_ready(x), kernel_ready(w), vector(b), pair(op, "stride", stride),
        pair(op, "padding", padding), pair(op, "output_padding", output_padding),
        pair(op, "dilation", dilation), int_param(op, "groups", groups), kind, param,
        return_preactivation)
    if unbatched:
        return tuple(o[0] for o in out) if return_preactivation else out[0]
    return out


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, output_mask=_OUT_MASK):
    """Gradients of conv_transpose2d: (grad_input, grad_weight, grad_bias)."""
    op = "conv_transpose2d_backward"
    x, unbatched = _batched(op, input, "input")
    dy = float_array(op, grad_output, "grad_output", ndims=(3,) if unbatched else (4,))
    dy = dy[None] if unbatched else dy
    w = _weight(op, weight)
    same_dtype(op, grad_output=dy, input=x, weight=w)
    be = backend(op, grad_output=dy, input=x, weight=w)
    gi, gw, gb = be.conv_transpose2d_backward(
        kernel_ready(dy), kernel_ready(x), kernel_ready(w), pair(op, "stride", stride),
        pair(op, "padding", padding), pair(op, "output_padding", output_padding),
        pair(op, "dilation", dilation), int_param(op, "groups", groups), _mask(op, output_mask))
    if unbatched and gi is not None:
        gi = gi[0]
    return gi, gw, gb
