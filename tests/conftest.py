"""Shared test settings.

Hypothesis runs derandomized with a bounded number of examples by default (the
'ci' profile); PYCONV_HYPOTHESIS=long runs a longer randomized sweep.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=int(os.environ.get("PYCONV_HYPOTHESIS_EXAMPLES", 40)),
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None, print_blob=True)
settings.register_profile(
    "long", max_examples=int(os.environ.get("PYCONV_HYPOTHESIS_EXAMPLES", 2000)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.load_profile(os.environ.get("PYCONV_HYPOTHESIS", "ci"))


@pytest.fixture(autouse=True)
def _restore_threads():
    """Tests that change pyconv's thread count must not leak it into others."""
    import pyconv
    n = pyconv.get_num_threads()
    yield
    pyconv.set_num_threads(n)


def tolerance(dtype, ref):
    """(rtol, atol) for comparing against torch: float64 tight, float32 at float32 level."""
    scale = float(np.max(np.abs(ref))) if np.size(ref) else 1.0
    scale = max(scale, 1.0)
    if np.dtype(dtype) == np.float64:
        return 1e-10, 1e-10 * scale
    return 1e-4, 2e-5 * scale
