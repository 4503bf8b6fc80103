"""Functions behind Tensor arithmetic, shape ops, indexing and reductions.

Backward returns gradients in the shape of the broadcast result; the engine sums them
back to each input's shape.
"""
import numpy as np

from ._core import Function, Tensor, _is_cuda_array


def _arr(x):
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    return x


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _arr(a) + _arr(b)

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _arr(a) - _arr(b)

    @staticmethod
    def backward(ctx, g):
        return g, -g


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _arr(a), _arr(b)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return (g * b if ctx.needs_input_grad[0] else None,
                g * a if ctx.needs_input_grad[1] else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _arr(a), _arr(b)
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return (g / b if ctx.needs_input_grad[0] else None,
                -g * a / (b * b) if ctx.needs_input_grad[1] else None)


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return (-g,)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a ** exponent

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        e = ctx.exponent
        return (g * e * a ** (e - 1),)


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.saved_tensors[0],)


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        return (g / ctx.saved_tensors[0],)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        return (g * np.sign(ctx.saved_tensors[0]),)


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        # ties split the gradient evenly, as torch
        wa = (a > b) + 0.5 * (a == b)
        return g * wa, g * (1 - wa)


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _arr(a), _arr(b)
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            raise ValueError("matmul: both arguments need at least 1 dimension")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        A = a[None, :] if a.ndim == 1 else a
        B = b[:, None] if b.ndim == 1 else b
        G = g
        if b.ndim == 1:
            G = G[..., None]
        if a.ndim == 1:
            G = G[..., None, :]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = G @ np.swapaxes(B, -1, -2)
            ga = _sum_to(ga, A.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = np.swapaxes(A, -1, -2) @ G
            gb = _sum_to(gb, B.shape).reshape(b.shape)
        return ga, gb


def _sum_to(g, shape):
    from ._core import _unbroadcast
    return _unbroadcast(g, shape)


class Clone(Function):
    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return (g,)


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.src = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return (g.astype(ctx.src),)


def _move(a, device):
    """Array to "cpu" (numpy) or "cuda" (CuPy, through pyconv.cuda and its clear errors)."""
    from .. import cuda as _cuda
    if device == "cpu":
        return _cuda.to_host(a) if _is_cuda_array(a) else a
    if device != "cuda":
        raise ValueError(f"Tensor.to: unknown device {device!r} (expected 'cpu' or 'cuda')")
    if _is_cuda_array(a):
        return a
    if not _cuda.is_available():
        raise RuntimeError("Tensor.cuda: no CUDA device is available to pyconv (needs a CUDA build of pyconv "
                           "and a CUDA device); tensors stay on the cpu")
    return _cuda.to_device(a)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        ctx.src = "cuda" if _is_cuda_array(a) else "cpu"
        return _move(a, device)

    @staticmethod
    def backward(ctx, g):
        return (_move(g, ctx.src),)


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: shape {tuple(shape)} is invalid for input of shape {tuple(a.shape)}") from None

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.in_shape),)


class Permute(Function):
    @staticmethod
    def forward(ctx, a, dims):
        if sorted(dims) != list(range(a.ndim)):
            raise ValueError(f"permute: dims {dims} is not a permutation of {a.ndim} dimensions")
        ctx.dims = dims
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        return (g.transpose(np.argsort(ctx.dims)),)


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return (g,)


def index_key(key):
    if isinstance(key, tuple):
        return tuple(index_key(k) for k in key)
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, list):
        return np.asarray(key)
    return key


def _is_basic(key):
    ks = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer)) for k in ks)


class Index(Function):
    @staticmethod
    def forward(ctx, a, key):
        ctx.key, ctx.shape, ctx.dtype = key, a.shape, a.dtype
        return a[key]

    @staticmethod
    def backward(ctx, g):
        z = np.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_basic(ctx.key):
            z[ctx.key] += g
        else:
            np.add.at(z, ctx.key, g)
        return (z,)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, dim, keepdim):
        ctx.shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        return np.asarray(a.sum(axis=dim, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        if ctx.dim is not None and not ctx.keepdim:
            g = np.expand_dims(g, tuple(sorted(ctx.dim)))
        return (np.broadcast_to(g, ctx.shape),)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, dim, keepdim):
        ctx.shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        n = a.size if dim is None else int(np.prod([a.shape[d] for d in dim]))
        ctx.n = n
        return np.asarray(a.mean(axis=dim, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        if ctx.dim is not None and not ctx.keepdim:
            g = np.expand_dims(g, tuple(sorted(ctx.dim)))
        return (np.broadcast_to(g / ctx.n, ctx.shape),)


class MaxAll(Function):
    @staticmethod
    def forward(ctx, a):
        if a.size == 0:
            raise ValueError("max: expected a non-empty tensor")
        m = a.max()
        ctx.save_for_backward(a, m)
        return np.asarray(m)

    @staticmethod
    def backward(ctx, g):
        a, m = ctx.saved_tensors
        mask = (a == m)
        return (g * mask / mask.sum(),)


class TakeAlong(Function):
    @staticmethod
    def forward(ctx, a, index, dim, keepdim):
        ctx.shape, ctx.dtype, ctx.index, ctx.dim, ctx.keepdim = a.shape, a.dtype, index, dim, keepdim
        out = np.take_along_axis(a, index, axis=dim)
        return out if keepdim else np.squeeze(out, axis=dim)

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        z = np.zeros(ctx.shape, dtype=ctx.dtype)
        np.put_along_axis(z, ctx.index, g, axis=ctx.dim)
        return (z,)


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        bounds = np.cumsum(ctx.sizes)[:-1]
        return tuple(np.split(g, bounds, axis=ctx.dim))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim = dim
        return np.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.moveaxis(g, ctx.dim, 0))
