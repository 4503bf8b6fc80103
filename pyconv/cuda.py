"""CUDA backend access. Without a CUDA build or device, is_available() is False and
CUDA arrays get a clear error."""
from __future__ import annotations

try:  # the CUDA extension is built only where nvcc was found
    from . import _C_cuda as _ext  # type: ignore[attr-defined]
except ImportError as e:  # pragma: no cover - depends on the build machine
    _ext = None
    _import_error = str(e)
else:
    _import_error = None


def is_available() -> bool:
    if _ext is None:
        return False
    try:
        return bool(_ext.device_count() > 0)
    except Exception:
        return False


def backend(op: str):
    """The CUDA kernel module, or a clear error naming `op`."""
    if _ext is None:
        raise RuntimeError(f"{op}: got a CUDA array, but this pyconv was built without the CUDA "
                           f"backend ({_import_error})")
    if not is_available():
        raise RuntimeError(f"{op}: got a CUDA array, but no CUDA device is available")
    return _ext
