"""Tensor, Function and the backward pass.

A Tensor wraps an array (`.data`). An op applied through `Function.apply` records the
Function instance (the graph node, also the `ctx` of forward/backward) as the result's
`grad_fn`. `Tensor.backward()` walks the graph once in topological order and accumulates
into the `.grad` of leaves that require grad.
"""
import collections
import functools
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode):
    _state.enabled = bool(mode)


class _GradMode:
    mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) that disables graph recording."""
    mode = False


class enable_grad(_GradMode):
    mode = True


def _is_cuda_array(a):
    return hasattr(a, "__cuda_array_interface__") and not isinstance(a, np.ndarray)


def _to_array(data, dtype=None):
    if isinstance(data, Tensor):
        a = data.data
    elif isinstance(data, np.ndarray) or _is_cuda_array(data):
        a = data
    elif hasattr(data, "detach") and hasattr(data, "cpu") and hasattr(data, "numpy"):
        a = data.detach().cpu().numpy()          # a torch tensor, duck-typed
    else:
        a = np.asarray(data)
        if dtype is None and a.dtype == np.float64 and not isinstance(data, np.generic):
            a = a.astype(np.float32)             # python floats default to float32, as torch
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    return a


def _scalar_or_array(x):
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    return _to_array(x)


class Function:
    """Base class of differentiable ops. Subclasses define static `forward(ctx, *args, **kw)`
    on arrays and `backward(ctx, grad_output)` returning one gradient (or None) per positional arg."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()
        self.inputs = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    def name(self):
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.__dict__.get('_name') or self.name()}>"

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls()
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)
        ctx.needs_input_grad = needs if record else tuple(False for _ in args)
        raw = [a.data if isinstance(a, Tensor) else (a.item() if isinstance(a, np.generic) else a) for a in args]
        out = cls.forward(ctx, *raw, **kwargs)
        t = Tensor(out, requires_grad=record)
        if record:
            ctx.inputs = tuple(a if isinstance(a, Tensor) and a.requires_grad else None for a in args)
            t.grad_fn = ctx
        else:
            ctx.saved_tensors = ()
        return t


def _unbroadcast(g, shape):
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _run_backward(root, grad, retain_graph=False):
    # topological order, iterative depth-first post-order
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        if t.grad_fn is not None:
            for inp in t.grad_fn.inputs:
                if inp is not None and id(inp) not in visited:
                    stack.append((inp, False))
    grads = {id(root): grad}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        fn = t.grad_fn
        if fn is None:
            if t.requires_grad:
                g = g.astype(t.data.dtype, copy=False)
                if t.grad is None:
                    t.grad = Tensor(np.array(g, copy=True) if isinstance(g, np.ndarray) else g.copy())
                else:
                    t.grad.data = t.grad.data + g
            continue
        if getattr(fn, "_freed", False):
            raise RuntimeError("Trying to backward through the graph a second time (its saved arrays were "
                               "freed); call .backward(retain_graph=True) the first time")
        in_grads = fn.backward(fn, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if not retain_graph:                   # free what forward saved, as torch does
            inputs, name = fn.inputs, fn.name()
            fn.__dict__.clear()
            fn.inputs, fn._freed, fn._name = inputs, True, name
        for inp, gi in zip(fn.inputs, in_grads):
            if inp is None or gi is None:
                continue
            if tuple(gi.shape) != inp.shape:
                gi = _unbroadcast(gi, inp.shape)
            key = id(inp)
            grads[key] = gi if key not in grads else grads[key] + gi


class _Device(str):
    @property
    def type(self):
        return str(self).split(":")[0]


class Tensor:
    """An array with autograd. `Tensor(data, requires_grad=False)`."""

    __array_priority__ = 1000        # numpy defers binary ops to Tensor
    __hash__ = object.__hash__

    def __init__(self, data, requires_grad=False, dtype=None):
        a = _to_array(data, dtype)
        if requires_grad and a.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating point tensors can require gradients, got dtype {a.dtype}")
        self.data = a
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None

    # ------------------------------------------------------------------ basic properties
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return _Device("cuda" if _is_cuda_array(self.data) else "cpu")

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def is_cuda(self):
        return self.device == "cuda"

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        body = np.array2string(np.asarray(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype not in (np.float32, np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------------ conversions
    def numpy(self):
        if _is_cuda_array(self.data):
            raise TypeError("Tensor.numpy: tensor is on cuda; call .cpu() first")
        return self.data

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        return np.array(a, copy=True) if copy else a

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"Tensor.item: only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        return self.data.reshape(()).item() if not _is_cuda_array(self.data) else self.data.item()

    def tolist(self):
        return np.asarray(self.numpy()).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    def detach(self):
        return Tensor(self.data)

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating point tensors can require gradients, got dtype {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        self.requires_grad = bool(requires_grad)
        return self

    def clone(self):
        return _m.Clone.apply(self)

    def contiguous(self):
        return self

    def zero_(self):
        self.data[...] = 0
        return self

    def fill_(self, value):
        self.data[...] = value
        return self

    def copy_(self, src):
        self.data[...] = _to_array(src)
        return self

    def astype(self, dtype):
        return self.to(dtype)

    def to(self, *args, **kwargs):
        """`.to(device)`, `.to(dtype)`, `.to(device, dtype)` or `.to(other_tensor)`."""
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda"):
                device = a
            elif hasattr(a, "type") and str(getattr(a, "type", "")) in ("cpu", "cuda"):
                device = str(a)
            else:
                dtype = a
        t = self
        if dtype is not None:
            dtype = _as_dtype(dtype)
            if dtype != t.dtype:
                t = _m.Cast.apply(t, dtype=dtype) if dtype.kind == "f" and t.dtype.kind == "f" \
                    else Tensor(t.data.astype(dtype))
        if device is not None:
            dev = str(device).split(":")[0]
            if dev != t.device:
                t = _m.ToDevice.apply(t, device=dev)
        return t

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def bool(self):
        return self.to(np.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs, got shape {self.shape}")
            g = np.ones_like(self.data)
        else:
            g = _to_array(gradient, self.dtype)
            if tuple(g.shape) != self.shape:
                raise ValueError(f"backward: gradient expects shape {self.shape}, got {tuple(g.shape)}")
        with no_grad():
            _run_backward(self, g, bool(retain_graph))

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, o):
        return _m.Add.apply(self, o)

    def __radd__(self, o):
        return _m.Add.apply(o, self)

    def __sub__(self, o):
        return _m.Sub.apply(self, o)

    def __rsub__(self, o):
        return _m.Sub.apply(o, self)

    def __mul__(self, o):
        return _m.Mul.apply(self, o)

    def __rmul__(self, o):
        return _m.Mul.apply(o, self)

    def __truediv__(self, o):
        return _m.Div.apply(self, o)

    def __rtruediv__(self, o):
        return _m.Div.apply(o, self)

    def __neg__(self):
        return _m.Neg.apply(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            return _m.Exp.apply(_m.Mul.apply(exponent, _m.Log.apply(self)))
        return _m.Pow.apply(self, exponent=exponent)

    def __rpow__(self, base):
        return _m.Exp.apply(_m.Mul.apply(self, float(np.log(base))))

    def __matmul__(self, o):
        return _m.MatMul.apply(self, o)

    def __rmatmul__(self, o):
        return _m.MatMul.apply(o, self)

    def __abs__(self):
        return _m.Abs.apply(self)

    def add(self, o):
        return self + o

    def sub(self, o):
        return self - o

    def mul(self, o):
        return self * o

    def div(self, o):
        return self / o

    def matmul(self, o):
        return self @ o

    def pow(self, e):
        return self ** e

    def abs(self):
        return _m.Abs.apply(self)

    def exp(self):
        return _m.Exp.apply(self)

    def log(self):
        return _m.Log.apply(self)

    def sqrt(self):
        return _m.Pow.apply(self, exponent=0.5)

    # in-place updates on data, outside the graph (for optimizers and initialisers)
    def _inplace(self, op, o):
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation; "
                               "wrap it in pyconv.no_grad()")
        op(self.data, _scalar_or_array(o), out=self.data, casting="same_kind")
        return self

    def add_(self, o, alpha=1):
        return self._inplace(np.add, o if alpha == 1 else _scalar_or_array(o) * alpha)

    def sub_(self, o, alpha=1):
        return self._inplace(np.subtract, o if alpha == 1 else _scalar_or_array(o) * alpha)

    def mul_(self, o):
        return self._inplace(np.multiply, o)

    def div_(self, o):
        return self._inplace(np.divide, o)

    # ------------------------------------------------------------------ comparisons (no grad)
    def _cmp(self, op, o):
        return Tensor(op(self.data, _scalar_or_array(o)))

    def __eq__(self, o):
        return self._cmp(np.equal, o)

    def __ne__(self, o):
        return self._cmp(np.not_equal, o)

    def __lt__(self, o):
        return self._cmp(np.less, o)

    def __le__(self, o):
        return self._cmp(np.less_equal, o)

    def __gt__(self, o):
        return self._cmp(np.greater, o)

    def __ge__(self, o):
        return self._cmp(np.greater_equal, o)

    def eq(self, o):
        return self == o

    def ne(self, o):
        return self != o

    def __invert__(self):
        return Tensor(~self.data)

    def __and__(self, o):
        return self._cmp(np.logical_and, o)

    def __or__(self, o):
        return self._cmp(np.logical_or, o)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _m.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        if self.ndim == 0:
            return self.reshape(1)
        shape = self.shape[:s] + (int(np.prod(self.shape[s:e + 1], dtype=np.int64)),) + self.shape[e + 1:]
        return self.reshape(shape)

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return _m.Permute.apply(self, dims=tuple(int(d) % max(self.ndim, 1) for d in dims))

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    def t(self):
        if self.ndim < 2:
            return self
        return self.transpose(0, 1)

    @property
    def T(self):
        return self.permute(tuple(range(self.ndim))[::-1])

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            d = dim % max(self.ndim, 1)
            shape = self.shape if self.ndim == 0 or self.shape[d] != 1 else self.shape[:d] + self.shape[d + 1:]
        return self.reshape(shape)

    def unsqueeze(self, dim):
        d = dim % (self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        return _m.Expand.apply(self, shape=shape)

    def __getitem__(self, key):
        return _m.Index.apply(self, key=_m.index_key(key))

    def __setitem__(self, key, value):
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError("Tensor.__setitem__: in-place assignment into a tensor that requires grad; "
                               "use pyconv.no_grad()")
        self.data[_m.index_key(key)] = _scalar_or_array(value)

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False):
        return _m.Sum.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return _m.Mean.apply(self, dim=_dims(dim, self.ndim), keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return _m.Maximum.apply(self, dim)
        if dim is None:
            return _m.MaxAll.apply(self)
        return _max_min(self, dim, keepdim, np.argmax)

    def min(self, dim=None, keepdim=False):
        if dim is None:
            return -_m.MaxAll.apply(-self)
        return _max_min(self, dim, keepdim, np.argmin)

    def all(self, dim=None, keepdim=False):
        return Tensor(np.asarray(np.all(self.data, axis=dim, keepdims=keepdim)))

    def any(self, dim=None, keepdim=False):
        return Tensor(np.asarray(np.any(self.data, axis=dim, keepdims=keepdim)))

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor(np.asarray(np.argmax(self.data), dtype=np.int64))
        return Tensor(np.argmax(self.data, axis=dim, keepdims=keepdim).astype(np.int64))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor(np.asarray(np.argmin(self.data), dtype=np.int64))
        return Tensor(np.argmin(self.data, axis=dim, keepdims=keepdim).astype(np.int64))

    # ------------------------------------------------------------------ nn shortcuts
    def relu(self):
        from .. import functional as F
        return F.relu(self)

    def sigmoid(self):
        from .. import functional as F
        return F.sigmoid(self)

    def tanh(self):
        from .. import functional as F
        return F.tanh(self)

    def softmax(self, dim):
        from .. import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim):
        from .. import functional as F
        return F.log_softmax(self, dim)


MaxResult = collections.namedtuple("max", ["values", "indices"])


def _max_min(t, dim, keepdim, argfn):
    d = int(dim) % max(t.ndim, 1)
    idx = argfn(t.data, axis=d, keepdims=True).astype(np.int64)
    values = _m.TakeAlong.apply(t, index=idx, dim=d, keepdim=keepdim)
    return MaxResult(values, Tensor(idx if keepdim else np.squeeze(idx, axis=d)))


def _dims(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (tuple, list)):
        return tuple(int(d) % max(ndim, 1) for d in dim)
    return (int(dim) % max(ndim, 1),)


def _as_dtype(dtype):
    if isinstance(dtype, str) and dtype in ("float", "double", "long"):
        dtype = {"float": "float32", "double": "float64", "long": "int64"}[dtype]
    if not isinstance(dtype, str) and not str(dtype).startswith("torch."):
        return np.dtype(dtype)
    s = str(dtype)
    if s.startswith("torch."):
        s = s[len("torch."):]
        s = {"float": "float32", "double": "float64", "long": "int64", "half": "float16"}.get(s, s)
    return np.dtype(s)


def _tensors(op, tensors):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expects a non-empty sequence of tensors")
    return [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]


def cat(tensors, dim=0):
    """Concatenates tensors along an existing dim (torch.cat), differentiably."""
    tensors = _tensors("cat", tensors)
    nd = tensors[0].ndim
    if not -nd <= dim < nd:
        raise ValueError(f"cat: dim expects a value in [{-nd}, {nd - 1}], got {dim}")
    try:
        return _m.Cat.apply(*tensors, dim=dim % nd)
    except ValueError as e:
        raise ValueError(f"cat: shapes {[t.shape for t in tensors]} do not match outside dim {dim} ({e})") from None


def stack(tensors, dim=0):
    """Stacks same-shaped tensors along a new dim (torch.stack), differentiably."""
    tensors = _tensors("stack", tensors)
    nd = tensors[0].ndim + 1
    if not -nd <= dim < nd:
        raise ValueError(f"stack: dim expects a value in [{-nd}, {nd - 1}], got {dim}")
    if len({t.shape for t in tensors}) != 1:
        raise ValueError(f"stack: expects tensors of one shape, got {[t.shape for t in tensors]}")
    return _m.Stack.apply(*tensors, dim=dim % nd)


def tensor(data, dtype=None, requires_grad=False):
    """A new Tensor holding a copy of data (as torch.tensor)."""
    a = _to_array(data, dtype)
    return Tensor(np.array(a, copy=True), requires_grad=requires_grad)


from . import _math as _m  # noqa: E402  (the Functions behind Tensor's methods)
