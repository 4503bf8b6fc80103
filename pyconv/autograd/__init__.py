"""pyconv.autograd: Tensor, Function, no_grad and the backward pass."""
from ._core import (Function, Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,  # noqa: F401
                    tensor)

__all__ = ["Function", "Tensor", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled", "tensor"]
