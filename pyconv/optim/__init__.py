"""pyconv.optim: SGD, Adam, AdamW with torch.optim's update formulas."""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD, Adam, AdamW  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
