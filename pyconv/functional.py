"""pyconv.functional: torch.nn.functional's names on numpy arrays.

(Tensor-aware dispatch through autograd lands with pyconv.Tensor.)
"""
from .ops import *  # noqa: F401,F403
from .ops import __all__  # noqa: F401
