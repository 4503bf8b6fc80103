"""pyconv.nn: Module, Parameter, containers, layers and losses (torch.nn's names and state-dict keys)."""
from . import functional  # noqa: F401  (pyconv.nn.functional is pyconv.functional)
from . import init  # noqa: F401
from .layers import (ELU, GELU, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d,  # noqa: F401
                     CrossEntropyLoss, Dropout, Flatten, Hardswish, Identity, L1Loss, LeakyReLU, Linear,
                     LogSoftmax, MaxPool2d, MaxUnpool2d, MSELoss, ReLU, Sigmoid, SiLU, Softmax, Tanh)
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential, StateDictError  # noqa: F401

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "StateDictError", "Conv2d",
           "ConvTranspose2d", "MaxPool2d", "MaxUnpool2d", "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "LeakyReLU",
           "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Hardswish", "Softmax", "LogSoftmax", "Identity", "Linear",
           "Flatten", "Dropout", "BatchNorm2d", "CrossEntropyLoss", "MSELoss", "L1Loss", "init", "functional"]
