"""Array-level ops written in vectorised numpy: softmax, losses, average pooling,
batch norm and dropout, each with its backward (torch.nn.functional semantics).

Every `<op>_backward` returns fresh arrays (it never accumulates into its inputs).
Arrays in, arrays out; nothing here knows about pyconv.Tensor.
"""
import numpy as np

from .. import _random
from . import _args

__all__ = [
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
    "l1_loss", "l1_loss_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "batch_norm",
    "batch_norm_backward", "dropout", "dropout_mask", "dropout_backward",
]

_REDUCTIONS = ("none", "mean", "sum")
_INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------- checks

def _float_array(op, name, x):
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        raise TypeError(f"{op}: {name} expects a float32 or float64 array, got dtype {x.dtype}")
    if not x.dtype.isnative:  # results in native byte order, as torch's
        x = x.astype(x.dtype.newbyteorder("="))
    return x


def _same_dtype(op, **arrays):
    named = [(k, v) for k, v in arrays.items() if v is not None]
    dtypes = {v.dtype for _, v in named}
    if len(dtypes) > 1:
        desc = ", ".join(f"{k} {v.dtype}" for k, v in named)
        raise TypeError(f"{op}: all float inputs must have the same dtype, got {desc}")


def _grad_output_like(op, grad_output, x):
    """grad_output checked for a backward whose gradient has the input's shape and dtype."""
    if grad_output is None:
        raise TypeError(f"{op}: grad_output expects a float32 or float64 array, got None")
    g = _float_array(op, "grad_output", grad_output)
    _same_dtype(op, grad_output=g, input=x)
    if g.shape != x.shape:
        raise ValueError(f"{op}: grad_output expects the input's shape {tuple(x.shape)}, "
                         f"got {tuple(g.shape)}")
    return g


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction expects one of {_REDUCTIONS}, got {reduction!r}")


def _norm_dim(op, dim, ndim):
    n = max(ndim, 1)
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim expects an int, got {type(dim).__name__} {dim!r}")
    if not -n <= dim < n:
        raise ValueError(f"{op}: dim expects an int in [{-n}, {n - 1}], got {dim!r}")
    return int(dim) % n


def _pair(op, name, v):
    """int, (int,) or a pair of ints (Python or numpy ints; not bools or floats, as torch)."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    return _args.pair(op, name, v)


def _implicit_softmax_dim(ndim):
    return 0 if ndim in (0, 1, 3) else 1


# ----------------------------------------------------------------------------- softmax

def _softmax_args(op, input, dim, grad_output=None):
    """(input, axis, grad_output) checked; a 0-d input is taken as one element along dim 0
    or -1 (as torch), so that NaN/Inf propagate as in the n-d case."""
    x = _float_array(op, "input", input)
    d = _norm_dim(op, _implicit_softmax_dim(x.ndim) if dim is None else dim, x.ndim)
    g = None
    if grad_output is not None or op.endswith("_backward"):
        g = _grad_output_like(op, grad_output, x)
    return x, d, g


def _softmax(x, d):
    e = np.exp(x - x.max(axis=d, keepdims=True))
    return e / e.sum(axis=d, keepdims=True)


def _log_softmax(x, d):
    s = x - x.max(axis=d, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=d, keepdims=True))


def _along(f, x, d, *more):
    """f(x, d, *more) for an n-d x; a 0-d x as a 1-element vector, an empty x gives an empty
    result (numpy's max has no identity); always an ndarray of x's shape and dtype."""
    if x.size == 0:
        return np.zeros(x.shape, x.dtype)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # NaN/Inf as torch, silently
        if x.ndim == 0:
            return np.asarray(f(x.reshape(1), 0, *(m.reshape(1) for m in more))).reshape(())
        return f(x, d, *more)


# softmax along `dim`; input any shape
def softmax(input, dim=None):
    x, d, _ = _softmax_args("softmax", input, dim)
    return _along(_softmax, x, d)


def softmax_backward(grad_output, input, dim=None):
    x, d, g = _softmax_args("softmax_backward", input, dim, grad_output)

    def f(x, d, g):
        y = _softmax(x, d)
        return y * (g - (g * y).sum(axis=d, keepdims=True))
    return _along(f, x, d, g)


def log_softmax(input, dim=None):
    x, d, _ = _softmax_args("log_softmax", input, dim)
    return _along(_log_softmax, x, d)


def log_softmax_backward(grad_output, input, dim=None):
    x, d, g = _softmax_args("log_softmax_backward", input, dim, grad_output)

    def f(x, d, g):
        return g - np.exp(_log_softmax(x, d)) * g.sum(axis=d, keepdims=True)
    return _along(f, x, d, g)


# ----------------------------------------------------------------------------- cross entropy

def _ce_prepare(op, input, target, weight, ignore_index, reduction, label_smoothing):
    x = _float_array(op, "input", input)
    _check_reduction(op, reduction)
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{op}: label_smoothing expects a value in [0, 1], got {label_smoothing}")
    if x.ndim == 0:
        raise ValueError(f"{op}: input expects at least 1 dimension (C) or (N, C, ...), got a scalar")
    unbatched = x.ndim == 1
    if unbatched:
        x = x[None]
    C = x.shape[1]
    if weight is not None:
        weight = _float_array(op, "weight", weight)
        if weight.shape != (C,):
            raise ValueError(f"{op}: weight expects shape ({C},) (one per class), got {tuple(weight.shape)}")
        _same_dtype(op, input=x, weight=weight)
    t = np.asarray(target) if not hasattr(target, "dtype") else target
    if t.dtype.kind == "f":
        # class probabilities, same shape as input
        t = t[None] if unbatched else t
        if t.shape != x.shape:
            raise ValueError(f"{op}: probability target expects the input's shape {tuple(x.shape)}, "
                             f"got {tuple(t.shape)}")
        _same_dtype(op, input=x, target=t)
        return x, t, weight, True, unbatched
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target expects int64 class indices or float probabilities, got dtype {t.dtype}")
    t = t[None] if unbatched else t
    expected = (x.shape[0],) + x.shape[2:]
    if t.shape != expected:
        raise ValueError(f"{op}: target expects shape {expected} for input of shape "
                         f"{tuple(x.shape)}, got {tuple(t.shape)}")
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= C))
    if bad.any():
        raise ValueError(f"{op}: target class indices must be in [0, {C - 1}] "
                         f"(or ignore_index={ignore_index}), got {t[bad].ravel()[0]}")
    return x, t.astype(np.int64), weight, False, unbatched


def _ce_grad_logp(x, t, weight, probs, ignore_index, reduction, label_smoothing, grad=None):
    """Returns (per-element loss or None, d loss / d log_softmax, reduced loss); grad is the upstream gradient."""
    C = x.shape[1]
    eps = float(label_smoothing)
    logp = log_softmax(x, 1)
    wc = np.ones(C, dtype=x.dtype) if weight is None else weight
    wshape = (1, C) + (1,) * (x.ndim - 2)
    wb = wc.reshape(wshape)
    if probs:
        q = t * (1.0 - eps) + eps / C if eps else t
        coef = -(wb * q)                              # d loss_i / d logp
        per = (coef * logp).sum(axis=1)
        denom = x.shape[0] * (int(np.prod(x.shape[2:])) if x.ndim > 2 else 1)
    else:
        valid = t != ignore_index
        tt = np.where(valid, t, 0)
        wt = wc[tt] * valid                            # weight of the target class, 0 where ignored
        onehot_coef = np.zeros_like(logp)
        np.put_along_axis(onehot_coef, tt[:, None], (-(1.0 - eps) * wt)[:, None].astype(x.dtype), axis=1)
        coef = onehot_coef
        if eps:
            coef = coef - (eps / C) * wb * valid[:, None].astype(x.dtype)
        per = (coef * logp).sum(axis=1)
        denom = wt.sum()
    if reduction == "none":
        loss = per
        scale = None if grad is None else grad
    elif reduction == "sum":
        loss = per.sum()
        scale = grad
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = per.sum() / denom
            scale = None if grad is None else grad / denom
    return loss, coef, scale, logp


# input (N, C) or (N, C, d1, ...) or (C,); target (N,)/(N, d1, ...) int64 or probabilities like input
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    x, t, w, probs, unbatched = _ce_prepare("cross_entropy", input, target, weight, ignore_index,
                                            reduction, label_smoothing)
    loss, _, _, _ = _ce_grad_logp(x, t, w, probs, ignore_index, reduction, label_smoothing)
    if reduction == "none" and unbatched:
        loss = loss[0]
    return np.asarray(loss, dtype=x.dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    x, t, w, probs, unbatched = _ce_prepare("cross_entropy_backward", input, target, weight, ignore_index,
                                            reduction, label_smoothing)
    g = np.asarray(grad_output, dtype=x.dtype)
    if reduction == "none" and unbatched:
        g = g[None]
    _, coef, scale, logp = _ce_grad_logp(x, t, w, probs, ignore_index, reduction, label_smoothing, g)
    if reduction == "mean" and not np.isfinite(scale).all() and not probs and not coef.any():
        glogp = np.zeros_like(coef)           # every target ignored: zero gradient, as torch
    else:
        glogp = coef * (scale[:, None] if reduction == "none" else scale)
    gi = glogp - np.exp(logp) * glogp.sum(axis=1, keepdims=True)
    gi = gi.astype(x.dtype, copy=False)
    return gi[0] if unbatched else gi


# ----------------------------------------------------------------------------- mse / l1

def _loss_prepare(op, input, target, reduction):
    x = _float_array(op, "input", input)
    y = _float_array(op, "target", target)
    _same_dtype(op, input=x, target=y)
    _check_reduction(op, reduction)
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} and target of shape {tuple(y.shape)} "
                         f"do not broadcast") from None
    return x, y


def _reduce(per, reduction):
    if reduction == "none":
        return np.asarray(per)  # a 0-d array, never a numpy scalar
    return np.asarray(per.sum() if reduction == "sum" else per.mean(), dtype=per.dtype)


def _sum_to(g, shape):
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _loss_backward(diff_grad, x, y, grad_output, reduction, output_mask):
    n = diff_grad.size
    g = np.asarray(grad_output, dtype=x.dtype)
    if reduction == "mean":
        g = g / n
    d = diff_grad * g
    gi = np.asarray(_sum_to(d, x.shape), dtype=x.dtype) if output_mask[0] else None
    gt = np.asarray(_sum_to(-d, y.shape), dtype=x.dtype) if output_mask[1] else None
    return gi, gt


def mse_loss(input, target, reduction="mean"):
    x, y = _loss_prepare("mse_loss", input, target, reduction)
    return _reduce((x - y) ** 2, reduction)


def mse_loss_backward(grad_output, input, target, reduction="mean", output_mask=(True, True)):
    x, y = _loss_prepare("mse_loss_backward", input, target, reduction)
    return _loss_backward(2 * (x - y), x, y, grad_output, reduction, output_mask)


def l1_loss(input, target, reduction="mean"):
    x, y = _loss_prepare("l1_loss", input, target, reduction)
    return _reduce(np.abs(x - y), reduction)


def l1_loss_backward(grad_output, input, target, reduction="mean", output_mask=(True, True)):
    x, y = _loss_prepare("l1_loss_backward", input, target, reduction)
    return _loss_backward(np.sign(x - y), x, y, grad_output, reduction, output_mask)


# ----------------------------------------------------------------------------- average pooling

def _pool_out(op, size, k, s, p, ceil_mode):
    if p > k // 2:
        raise ValueError(f"{op}: padding should be at most half of the kernel size (kernel {k}), got {p}")
    # torch's pooling_output_shape (floor division rounds towards -inf, as its div_rtn)
    out = (size + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    if out < 1:
        raise ValueError(f"{op}: output size is too small: kernel size {k}, stride {s} and padding {p} "
                         f"on an input size of {size} give {out}")
    return out


def _batched4(op, x):
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"{op}: input expects a 3D (C, H, W) or 4D (N, C, H, W) array, got shape {tuple(x.shape)}")
    return x, False


def _avg_params(op, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    kh, kw = _pair(op, "kernel_size", kernel_size)
    sh, sw = (kh, kw) if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else _pair(op, "stride", stride)
    ph, pw = _pair(op, "padding", padding)
    if min(kh, kw) <= 0 or min(sh, sw) <= 0 or min(ph, pw) < 0:
        raise ValueError(f"{op}: kernel_size and stride must be positive and padding non-negative, "
                         f"got kernel_size={(kh, kw)}, stride={(sh, sw)}, padding={(ph, pw)}")
    if max(kh, kw, sh, sw, ph, pw) > _INT32_MAX:  # torch's pooling parameters are C ints
        raise ValueError(f"{op}: kernel_size, stride and padding must fit in a 32-bit int, "
                         f"got kernel_size={(kh, kw)}, stride={(sh, sw)}, padding={(ph, pw)}")
    ceil_mode = _args.flag(op, "ceil_mode", ceil_mode)
    count_include_pad = _args.flag(op, "count_include_pad", count_include_pad)
    if divisor_override is not None and _args.int_param(op, "divisor_override", divisor_override) == 0:
        raise ValueError(f"{op}: divisor_override must be non-zero")
    if 0 in x.shape[1:]:
        raise ValueError(f"{op}: input expects non-zero channels, height and width (only the batch may "
                         f"be empty), got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    OH = _pool_out(op, H, kh, sh, ph, ceil_mode)
    OW = _pool_out(op, W, kw, sw, pw, ceil_mode)

    def counts(size, o, k, s, p):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        pool = end - start
        cnt = np.minimum(end, size) - np.maximum(start, 0)
        return (pool if count_include_pad else cnt)

    if divisor_override is not None:
        div = np.full((OH, OW), float(divisor_override))
    else:
        div = np.outer(counts(H, OH, kh, sh, ph), counts(W, OW, kw, sw, pw)).astype(np.float64)
    # zero-padded extent so that every window lies inside
    padb = max(0, (OH - 1) * sh + kh - ph - H)
    padr = max(0, (OW - 1) * sw + kw - pw - W)
    return (kh, kw, sh, sw, ph, pw, OH, OW, padb, padr), div.astype(x.dtype)


# input (N, C, H, W) or (C, H, W)
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x = _float_array("avg_pool2d", "input", input)
    x, unb = _batched4("avg_pool2d", x)
    (kh, kw, sh, sw, ph, pw, OH, OW, padb, padr), div = _avg_params(
        "avg_pool2d", x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, padb), (pw, padr)))
    out = np.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out += xp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw]
    out /= div
    return out[0] if unb else out


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    x = _float_array("avg_pool2d_backward", "input", input)
    x, unb = _batched4("avg_pool2d_backward", x)
    (kh, kw, sh, sw, ph, pw, OH, OW, padb, padr), div = _avg_params(
        "avg_pool2d_backward", x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    g = np.asarray(grad_output)
    g = g[None] if unb else g
    if g.shape != x.shape[:2] + (OH, OW):
        raise ValueError(f"avg_pool2d_backward: grad_output expects shape {x.shape[:2] + (OH, OW)}, "
                         f"got {tuple(g.shape)}")
    g = g / div
    H, W = x.shape[-2:]
    gp = np.zeros((x.shape[0], x.shape[1], H + ph + padb, W + pw + padr), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            gp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw] += g
    gi = np.ascontiguousarray(gp[:, :, ph:ph + H, pw:pw + W])
    return gi[0] if unb else gi


def _adaptive_windows(op, x, output_size, shape_only=False):
    H, W = x.shape[-2:]
    # torch: an int, or a pair of ints where None keeps the input's size (a bare None, floats
    # and bools are TypeErrors)
    if isinstance(output_size, np.ndarray) and output_size.ndim == 1:
        output_size = output_size.tolist()
    if not isinstance(output_size, (list, tuple)):
        output_size = (_args.int_param(op, "output_size", output_size),) * 2
    if len(output_size) != 2:
        raise ValueError(f"{op}: output_size expects an int or a pair, got {tuple(output_size)!r}")
    OH, OW = (size if v is None else _args.int_param(op, "output_size", v)
              for v, size in zip(output_size, (H, W)))
    if OH <= 0 or OW <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {(OH, OW)}")
    if H == 0 or W == 0:
        raise ValueError(f"{op}: input spatial size must be non-zero, got {(H, W)}")
    if shape_only:
        return OH, None, OW, None, None

    def windows(size, o):  # torch's rule: [floor(i*size/o), ceil((i+1)*size/o))
        i = np.arange(o)
        return (i * size) // o, -((-(i + 1) * size) // o)

    (h0, h1), (w0, w1) = windows(H, OH), windows(W, OW)
    return h0, h1, w0, w1, np.outer(h1 - h0, w1 - w0).astype(x.dtype)


# Window sums one output row / column at a time (separable; a loop over the output size,
# never over pixels). Not a product with 0/1 averaging matrices: there a NaN or Inf
# anywhere would reach every output through 0 * NaN.
def _window_sum(x, axis, lo, hi):
    return np.stack([x[(Ellipsis, slice(a, b)) + (slice(None),) * (-1 - axis)].sum(axis=axis)
                     for a, b in zip(lo, hi)], axis=axis)


def _window_scatter(g, axis, lo, hi, size):
    shape = list(g.shape)
    shape[axis] = size
    out = np.zeros(shape, g.dtype)
    tail = (slice(None),) * (-1 - axis)
    for i, (a, b) in enumerate(zip(lo, hi)):
        out[(Ellipsis, slice(a, b)) + tail] += g[(Ellipsis, slice(i, i + 1)) + tail]
    return out


def adaptive_avg_pool2d(input, output_size):
    x = _float_array("adaptive_avg_pool2d", "input", input)
    x, unb = _batched4("adaptive_avg_pool2d", x)
    h0, h1, w0, w1, div = _adaptive_windows("adaptive_avg_pool2d", x, output_size, x.size == 0)
    if x.size == 0:  # no windows to build (output_size may be huge)
        try:
            out = np.zeros(x.shape[:2] + (h0, w0), x.dtype)
        except ValueError:  # numpy bounds the product of the non-zero dims
            raise ValueError(f"adaptive_avg_pool2d: output shape {x.shape[:2] + (h0, w0)} is too "
                             f"large for a numpy array") from None
        return out[0] if unb else out
    out = _window_sum(_window_sum(x, -2, h0, h1), -1, w0, w1) / div
    return out[0] if unb else out


def adaptive_avg_pool2d_backward(grad_output, input, output_size):
    x = _float_array("adaptive_avg_pool2d_backward", "input", input)
    x, unb = _batched4("adaptive_avg_pool2d_backward", x)
    h0, h1, w0, w1, div = _adaptive_windows("adaptive_avg_pool2d_backward", x, output_size)
    g = np.asarray(grad_output)
    g = ((g[None] if unb else g) / div).astype(x.dtype, copy=False)
    H, W = x.shape[-2:]
    gi = _window_scatter(_window_scatter(g, -2, h0, h1, H), -1, w0, w1, W)
    return gi[0] if unb else gi


# ----------------------------------------------------------------------------- batch norm

def _real(op, name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} expects a number, got {type(v).__name__} {v!r}")
    return float(v)


def _bn_prepare(op, x, weight, bias, running_mean, running_var, grad_output=None):
    """Checked (input, weight, bias, running_mean, running_var, grad_output, axes, shape).
    The running stats must be arrays (training updates them in place)."""
    x = _float_array(op, "input", x)
    if x.ndim < 2:
        raise ValueError(f"{op}: input expects at least 2 dimensions (N, C, ...), got shape {tuple(x.shape)}")
    C = x.shape[1]
    out = {}
    for name, a in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if a is not None:
            if name.startswith("running") and not isinstance(a, np.ndarray):
                raise TypeError(f"{op}: {name} expects a float32 or float64 array or None, "
                                f"got {type(a).__name__}")
            a = _float_array(op, name, a)
            if tuple(a.shape) != (C,):
                raise ValueError(f"{op}: {name} expects shape ({C},) for input with {C} channels, "
                                 f"got {tuple(a.shape)}")
        out[name] = a
    _same_dtype(op, input=x, weight=out["weight"], bias=out["bias"])
    if op.endswith("_backward"):
        grad_output = _grad_output_like(op, grad_output, x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, C) + (1,) * (x.ndim - 2)
    return (x, out["weight"], out["bias"], out["running_mean"], out["running_var"], grad_output,
            axes, shape)


# input (N, C, ...); running_mean/var (C,) updated in place in training (torch semantics)
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    x, weight, bias, rm_in, rv_in, _, axes, shape = _bn_prepare(
        "batch_norm", input, weight, bias, running_mean, running_var)
    momentum, eps = _real("batch_norm", "momentum", momentum), _real("batch_norm", "eps", eps)
    if training:
        for name, a in (("running_mean", running_mean), ("running_var", running_var)):
            if a is not None and not a.flags.writeable:
                raise ValueError(f"batch_norm: {name} is read-only; training updates it in place")
        n = x.size // max(1, x.shape[1])
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(x.shape)}")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            running_mean *= (1.0 - momentum)
            running_mean += momentum * mean.astype(running_mean.dtype)
        if running_var is not None:
            running_var *= (1.0 - momentum)
            running_var += momentum * (var * (n / (n - 1))).astype(running_var.dtype)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        mean, var = rm_in, rv_in
    invstd = 1.0 / np.sqrt(var + eps)
    out = (x - mean.reshape(shape)) * invstd.astype(x.dtype).reshape(shape)
    if weight is not None:
        out *= weight.reshape(shape)
    if bias is not None:
        out += bias.reshape(shape)
    return out.astype(x.dtype, copy=False)


def batch_norm_backward(grad_output, input, weight=None, running_mean=None, running_var=None, training=False,
                        eps=1e-5, output_mask=(True, True, True)):
    x, weight, _, running_mean, running_var, g, axes, shape = _bn_prepare(
        "batch_norm_backward", input, weight, None, running_mean, running_var, grad_output)
    eps = _real("batch_norm_backward", "eps", eps)
    if isinstance(output_mask, (str, bytes)) or not hasattr(output_mask, "__len__") \
            or len(output_mask) != 3:
        raise TypeError(f"batch_norm_backward: output_mask expects 3 booleans, got {output_mask!r}")
    if training:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm_backward: running_mean and running_var are required when "
                             "training=False")
        mean, var = running_mean, running_var
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    gb = g.sum(axis=axes)
    gw = (g * xhat).sum(axis=axes)
    w = np.ones(x.shape[1], x.dtype) if weight is None else weight
    gi = None
    if output_mask[0]:
        if training:
            n = x.size // max(1, x.shape[1])
            gi = (w * invstd / n).reshape(shape) * (n * g - gb.reshape(shape) - xhat * gw.reshape(shape))
        else:
            gi = g * (w * invstd).reshape(shape)
        gi = gi.astype(x.dtype, copy=False)
    return (gi, gw.astype(x.dtype, copy=False) if output_mask[1] else None,
            gb.astype(x.dtype, copy=False) if output_mask[2] else None)


# ----------------------------------------------------------------------------- dropout

def dropout_mask(shape, p, dtype=np.float32):
    """Scaled keep-mask for dropout: 0 where dropped, 1/(1-p) where kept (all zeros when p == 1)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p expects a value in [0, 1], got {p}")
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = _random.generator().random(shape) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


def dropout(input, p=0.5, training=True):
    x = _float_array("dropout", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p expects a value in [0, 1], got {p}")
    if not training or p == 0.0:
        return x.copy()
    return x * dropout_mask(x.shape, p, x.dtype)


def dropout_backward(grad_output, mask):
    return grad_output * mask
