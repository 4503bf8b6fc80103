"""pyconv: fast, torch-exact convolution kernels for numpy arrays."""
from . import _C
from . import ops, functional, cuda
from ._random import manual_seed
from .autograd import Tensor, cat, enable_grad, no_grad, stack, tensor
from . import nn, optim
from .serialization import load, save

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Threads used by every CPU kernel (default: all cores)."""
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    return _C.get_num_threads()


__all__ = ["functional", "ops", "cuda", "set_num_threads", "get_num_threads",
           "Tensor", "tensor", "cat", "stack", "no_grad", "enable_grad", "manual_seed", "nn", "optim", "save", "load"]
