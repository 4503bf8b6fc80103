"""Array-level ops: numpy (or CUDA) arrays in, arrays out, plus explicit backward functions.

This layer normalises arguments and dispatches to the compiled kernels; it knows
nothing of pyconv.Tensor.
"""
from .conv import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from .linear import linear, linear_backward
from .pool import max_pool2d, max_pool2d_backward, max_unpool2d, max_unpool2d_backward
from .activation import (relu, leaky_relu, elu, gelu, silu, sigmoid, tanh, hardswish,
                         relu_backward, leaky_relu_backward, elu_backward, gelu_backward,
                         silu_backward, sigmoid_backward, tanh_backward, hardswish_backward)

__all__ = [
    "conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
    "linear", "linear_backward",
    "max_pool2d", "max_pool2d_backward", "max_unpool2d", "max_unpool2d_backward",
    "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish",
    "relu_backward", "leaky_relu_backward", "elu_backward", "gelu_backward",
    "silu_backward", "sigmoid_backward", "tanh_backward", "hardswish_backward",
]
