"""The global random generator behind pyconv.manual_seed (initialisation, dropout)."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed the generator used by parameter initialisation and dropout; returns the seed."""
    global _generator
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be non-negative, got {seed}")
    _generator = np.random.default_rng(seed)
    return seed


def generator():
    return _generator
