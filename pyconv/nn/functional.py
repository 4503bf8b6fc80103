"""`import pyconv.nn.functional as F` is pyconv.functional, as torch.nn.functional is for torch."""
import sys

from .. import functional as _functional

sys.modules[__name__] = _functional
