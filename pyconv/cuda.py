"""CUDA backend access. Without a CUDA build or device, is_available() is False and
CUDA arrays get a clear error.

pyconv._C_cuda reads arrays through __cuda_array_interface__ and allocates its
results through `_empty` below, so results are CuPy arrays (CuPy is the optional
`pyconv[cuda]` extra). Kernels run on CuPy's current stream.
"""
from __future__ import annotations

import sys

try:  # the CUDA extension is built only where nvcc was found
    from . import _C_cuda as _ext  # type: ignore[attr-defined]
except ImportError as e:  # pragma: no cover - depends on the build machine
    _ext = None
    _import_error = str(e)
else:
    _import_error = None


def _empty(shape, dtype):
    """Output allocator for the CUDA kernels: a CuPy array on the current device."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError("pyconv: results of the CUDA kernels are CuPy arrays; install CuPy "
                           "(pip install 'pyconv[cuda]')") from None
    return cupy.empty(shape, dtype=dtype)


def _stream() -> int:
    """CuPy's current stream (0, the legacy default stream, when CuPy is not loaded)."""
    cupy = sys.modules.get("cupy")
    return 0 if cupy is None else int(cupy.cuda.get_current_stream().ptr)


if _ext is not None:
    _ext._init(_empty, _stream)


def is_available() -> bool:
    if _ext is None:
        return False
    try:
        return bool(_ext.device_count() > 0)
    except Exception:
        return False


def device_count() -> int:
    return int(_ext.device_count()) if _ext is not None else 0


def _cupy(what: str):
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"{what}: CUDA arrays in pyconv are CuPy arrays; install CuPy "
                           f"(pip install 'pyconv[cuda]')") from None
    return cupy


def to_device(a):
    """numpy (or any) array -> CuPy array on the current CUDA device (for Tensor.cuda())."""
    if not is_available():
        backend("to_device")  # raises the clear no-CUDA error
    return _cupy("to_device").asarray(a)


def to_host(a):
    """CUDA array -> numpy array (for Tensor.cpu()); numpy arrays pass through."""
    if not hasattr(a, "__cuda_array_interface__"):
        return a
    return _cupy("to_host").asnumpy(a)


def from_dlpack(x):
    """A CUDA array with only DLPack (no __cuda_array_interface__) -> CuPy array, zero-copy."""
    return _cupy("from_dlpack").from_dlpack(x)


def synchronize() -> None:
    """Waits for all work on the current device (timing, tests)."""
    backend("synchronize").synchronize()


def backend(op: str):
    """The CUDA kernel module, or a clear error naming `op`."""
    if _ext is None:
        raise RuntimeError(f"{op}: got a CUDA array, but this pyconv was built without the CUDA "
                           f"backend ({_import_error})")
    if not is_available():
        why = _ext.device_error()
        raise RuntimeError(f"{op}: got a CUDA array, but no CUDA device is available"
                           + (f" ({why})" if why else ""))
    return _ext
