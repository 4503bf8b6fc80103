"""pyconv.autograd: Tensor, Function, no_grad and the backward pass."""
from ._core import (Function, Tensor, cat, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,  # noqa: F401
                    stack, tensor)

__all__ = ["Function", "Tensor", "cat", "stack", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled", "tensor"]
