"""Array-level ops: numpy (or CUDA) arrays in, arrays out, plus explicit backward functions.

This layer normalises arguments and dispatches to the compiled kernels; it knows
nothing of pyconv.Tensor.
"""
from .conv import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from .linear import linear, linear_backward

__all__ = [
    "conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
    "linear", "linear_backward",
]
