"""CUDA backend tests.

Runs everywhere: importing pyconv, pyconv.cuda.is_available(), and the clear error a
CUDA array gets when there is no usable CUDA backend. On a machine with a GPU, CuPy
and the CUDA build, runs the parity sweep of every CUDA op against torch (CPU torch
is the reference; fp64 references for fp32 results), forward and backward, fp32/fp64.
"""
import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pyconv
import pyconv.cuda
import pyconv.functional as F


class FakeCudaArray:
    """Just enough of a CUDA array to reach the device dispatch."""

    def __init__(self, shape, dtype=np.float32):
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.dtype = np.dtype(dtype)
        self.__cuda_array_interface__ = {
            "shape": self.shape, "typestr": self.dtype.str, "data": (0, False),
            "strides": None, "version": 3,
        }


def test_import_and_is_available_is_bool():
    assert isinstance(pyconv.cuda.is_available(), bool)
    if pyconv.cuda._ext is None:
        assert pyconv.cuda.is_available() is False


def test_cuda_array_without_cuda_gives_clear_error():
    if pyconv.cuda.is_available():
        pytest.skip("a CUDA device is available; the no-GPU error path does not apply")
    x = FakeCudaArray((1, 3, 8, 8))
    w = FakeCudaArray((4, 3, 3, 3))
    with pytest.raises(RuntimeError, match=r"conv2d: got a CUDA array, but"):
        F.conv2d(x, w)
    with pytest.raises(RuntimeError, match=r"conv_transpose2d: got a CUDA array, but"):
        F.conv_transpose2d(FakeCudaArray((1, 4, 8, 8)), FakeCudaArray((4, 3, 3, 3)))


def test_device_helpers_without_cuda():
    if pyconv.cuda.is_available():
        pytest.skip("a CUDA device is available")
    with pytest.raises(RuntimeError, match="to_device: got a CUDA array, but|to_device: .*CUDA"):
        pyconv.cuda.to_device(np.zeros(3))
    x = np.ones(2)
    assert pyconv.cuda.to_host(x) is x
    assert pyconv.cuda.device_count() == 0


def test_mixing_devices_is_an_error():
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(TypeError, match="one device"):
        F.conv2d(x, FakeCudaArray((4, 3, 3, 3)))


# ---------------------------------------------------------------------------------
# The CUDA kernels under a CPU emulation of the execution model (runs without a GPU):
# csrc/cuda/emu/emu_check.cpp compiles conv_kernels.cuh / pool_kernels.cuh as C++ and
# checks them against reference loops. Catches index, tiling and sync bugs early.

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_kernels_under_cpu_emulation(tmp_path):
    src = ROOT / "csrc" / "cuda" / "emu" / "emu_check.cpp"
    if not src.exists():
        pytest.skip("needs the source tree (csrc/cuda/emu)")
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the CUDA emulation check")
    sources = [src, ROOT / "csrc" / "conv" / "conv_params.cpp"]
    defines = []
    if (ROOT / "csrc" / "pool" / "pool_params.cpp").exists():
        sources.append(ROOT / "csrc" / "pool" / "pool_params.cpp")
        defines.append("-DPYCONV_EMU_POOL")
    exe = tmp_path / "emu_check"
    build = subprocess.run([cxx, "-std=c++20", "-O1", "-pthread", *defines, f"-I{ROOT / 'csrc'}",
                            *map(str, sources), "-o", str(exe)], capture_output=True, text=True)
    if build.returncode != 0 and "barrier" in build.stderr:
        pytest.skip(f"{cxx} lacks C++20 <barrier>")
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok: 0 failure(s)")


# ---------------------------------------------------------------------------------
# GPU parity (skipped without a GPU)

def _gpu_reason():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed"
    if pyconv.cuda._ext is None:
        return f"pyconv was built without the CUDA backend ({pyconv.cuda._import_error})"
    if not pyconv.cuda.is_available():
        return f"no CUDA device ({pyconv.cuda._ext.device_error() or 'device_count() is 0'})"
    return None


_REASON = _gpu_reason()
gpu = pytest.mark.skipif(_REASON is not None, reason=f"CUDA tests need a GPU: {_REASON}")

if _REASON is None:
    import cupy as cp
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _t(a):  # numpy -> float64 torch tensor: the reference runs in fp64
    return torch.from_numpy(np.asarray(a, np.float64))


def _np(a):
    return cp.asnumpy(a)


def _close(got, want, dtype):
    want = np.asarray(want)
    tol = _tol(dtype)
    scale = float(np.abs(want).max()) if want.size else 0.0
    # fp32 sums of thousands of terms: absolute error grows with the largest value
    np.testing.assert_allclose(_np(got), want, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, scale))


CONV_CASES = [
    # N, C, H, W, K, R, S, stride, padding, dilation, groups
    (2, 3, 9, 11, 4, 3, 3, 1, 1, 1, 1),
    (1, 8, 16, 16, 16, 3, 3, 2, 1, 1, 2),
    (2, 4, 10, 7, 6, 2, 3, (2, 1), (0, 1), (2, 1), 1),
    (1, 6, 12, 12, 6, 3, 3, 1, 2, 2, 6),          # depthwise, dilated
    (3, 5, 8, 8, 7, 1, 1, 1, 0, 1, 1),            # 1x1
    (1, 70, 9, 9, 65, 3, 3, 1, 1, 1, 1),          # tile edges (64) on both GEMM sides
    (4, 16, 33, 35, 8, 5, 5, 3, 2, 1, 1),
    (8, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1),         # long reduction: split weight gradient
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_backward(case, dtype):
    N, C, H, W, K, R, S, stride, pad, dil, g = case
    rng = np.random.default_rng(0)
    x, w = _rand(rng, (N, C, H, W), dtype), _rand(rng, (K, C // g, R, S), dtype)
    b = _rand(rng, (K,), dtype)
    y = F.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), stride, pad, dil, g)
    assert isinstance(y, cp.ndarray) and y.dtype == dtype
    tx, tw, tb = (_t(a).requires_grad_() for a in (x, w, b))
    ty = tF.conv2d(tx, tw, tb, stride, pad, dil, g)
    _close(y, ty.detach().numpy(), dtype)
    dy = _rand(rng, ty.shape, dtype)
    ty.backward(_t(dy))
    gi, gw, gb = F.conv2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), stride, pad, dil, g)
    _close(gi, tx.grad.numpy(), dtype)
    _close(gw, tw.grad.numpy(), dtype)
    _close(gb, tb.grad.numpy(), dtype)
    for mask in itertools.product([False, True], repeat=3):
        out = F.conv2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), stride, pad, dil, g,
                                output_mask=mask)
        assert [o is not None for o in out] == list(mask)


CONVT_CASES = [
    # N, Cin, H, W, Cout, R, S, stride, padding, output_padding, dilation, groups
    (2, 4, 5, 6, 3, 3, 3, 2, 1, 1, 1, 1),
    (1, 6, 7, 7, 4, 4, 4, 2, 1, 0, 1, 2),
    (2, 3, 5, 5, 5, 3, 2, (3, 1), (1, 0), (2, 0), (1, 2), 1),
    (1, 66, 4, 4, 67, 2, 2, 2, 0, 0, 1, 1),
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_forward_backward(case, dtype):
    N, C, H, W, K, R, S, stride, pad, opad, dil, g = case
    rng = np.random.default_rng(1)
    x, w = _rand(rng, (N, C, H, W), dtype), _rand(rng, (C, K // g, R, S), dtype)
    b = _rand(rng, (K,), dtype)
    y = F.conv_transpose2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), stride, pad, opad, g, dil)
    tx, tw, tb = (_t(a).requires_grad_() for a in (x, w, b))
    ty = tF.conv_transpose2d(tx, tw, tb, stride, pad, opad, g, dil)
    _close(y, ty.detach().numpy(), dtype)
    dy = _rand(rng, ty.shape, dtype)
    ty.backward(_t(dy))
    gi, gw, gb = F.conv_transpose2d_backward(cp.asarray(dy), cp.asarray(x), cp.asarray(w), stride,
                                             pad, opad, g, dil)
    _close(gi, tx.grad.numpy(), dtype)
    _close(gw, tw.grad.numpy(), dtype)
    _close(gb, tb.grad.numpy(), dtype)


ACTS = ["relu", ("leaky_relu", 0.2), ("elu", 0.5), "gelu", ("gelu", "tanh"), "silu", "sigmoid",
        "tanh", "hardswish"]


def _torch_act(act, z):
    name, param = (act, None) if isinstance(act, str) else act
    if name == "leaky_relu":
        return tF.leaky_relu(z, param)
    if name == "elu":
        return tF.elu(z, param)
    if name == "gelu":
        return tF.gelu(z, approximate=param or "none")
    return getattr(tF, name)(z)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS, ids=str)
def test_fused_bias_activation(act, dtype):
    rng = np.random.default_rng(2)
    x, w, b = _rand(rng, (2, 5, 9, 9), dtype), _rand(rng, (7, 5, 3, 3), dtype), _rand(rng, (7,), dtype)
    y, z = F.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), 1, 1, activation=act,
                    return_preactivation=True)
    tz = tF.conv2d(_t(x), _t(w), _t(b), 1, 1)
    _close(z, tz.numpy(), dtype)
    _close(y, _torch_act(act, tz).numpy(), dtype)
    wt = _rand(rng, (5, 7, 3, 3), dtype)
    yt = F.conv_transpose2d(cp.asarray(x), cp.asarray(wt), cp.asarray(b), 2, 1, activation=act)
    _close(yt, _torch_act(act, tF.conv_transpose2d(_t(x), _t(wt), _t(b), 2, 1)).numpy(), dtype)


@gpu
def test_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    x = cp.asarray(_rand(rng, (2, 8, 12, 20), np.float64))[:, ::2, :, ::2]
    w = cp.asarray(_rand(rng, (6, 8, 3, 3), np.float64)).transpose(1, 0, 2, 3)[:, ::2]
    ref = tF.conv2d(_t(_np(x)), _t(_np(w)), None, 1, 1)
    _close(F.conv2d(x, w, None, 1, 1), ref.numpy(), np.float64)
    assert not x.flags.c_contiguous


@gpu
def test_weight_gradient_is_deterministic():
    rng = np.random.default_rng(4)
    x = cp.asarray(_rand(rng, (16, 8, 32, 32), np.float32))
    w = cp.asarray(_rand(rng, (16, 8, 3, 3), np.float32))
    dy = cp.asarray(_rand(rng, (16, 16, 32, 32), np.float32))
    a = F.conv2d_backward(dy, x, w, 1, 1)
    b = F.conv2d_backward(dy, x, w, 1, 1)
    for u, v in zip(a, b):
        assert cp.array_equal(u, v)


@gpu
def test_errors_on_gpu():
    x = cp.zeros((1, 3, 8, 8), cp.float32)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(x, cp.zeros((4, 3, 3, 3), cp.float64))
    with pytest.raises(ValueError, match="conv2d: weight expects 3 input channels"):
        F.conv2d(x, cp.zeros((4, 2, 3, 3), cp.float32))


@gpu
def test_runs_on_current_stream():
    rng = np.random.default_rng(5)
    x, w = _rand(rng, (2, 3, 16, 16), np.float32), _rand(rng, (4, 3, 3, 3), np.float32)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        y = F.conv2d(cp.asarray(x), cp.asarray(w), None, 1, 1)
    s.synchronize()
    _close(y, tF.conv2d(_t(x), _t(w), None, 1, 1).numpy(), np.float32)


POOL_CASES = [
    # N, C, H, W, kernel, stride, padding, dilation, ceil_mode
    (2, 3, 9, 9, 3, 2, 1, 1, False),
    (1, 2, 10, 7, (2, 3), (2, 1), (1, 0), 2, True),
    (2, 4, 8, 8, 2, 2, 0, 1, False),
    (1, 3, 11, 13, 3, 1, 1, 1, True),
]


def _need(name):
    if not hasattr(F, name):
        pytest.skip(f"pyconv.functional has no {name} yet")


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_and_unpool(case, dtype):
    _need("max_pool2d")
    N, C, H, W, k, s, p, d, ceil = case
    rng = np.random.default_rng(6)
    x = (np.round(rng.standard_normal((N, C, H, W)) * 2) / 2).astype(dtype)  # ties
    x[0, 0, 1, 1] = np.nan
    y, idx = F.max_pool2d(cp.asarray(x), k, s, p, d, ceil, return_indices=True)
    tx = _t(x).requires_grad_()
    ty, tidx = tF.max_pool2d(tx, k, s, p, d, ceil, return_indices=True)
    _close(y, ty.detach().numpy(), dtype)
    np.testing.assert_array_equal(_np(idx), tidx.numpy())
    dy = _rand(rng, ty.shape, dtype)
    ty.backward(_t(dy))
    gi = F.max_pool2d_backward(cp.asarray(dy), cp.asarray(x), idx, k, s, p, d, ceil)
    _close(gi, tx.grad.numpy(), dtype)
    if d == 1:
        u = F.max_unpool2d(y, idx, k, s, p, output_size=(H, W))
        tu = tF.max_unpool2d(_t(_np(y)), tidx, k, s, p, output_size=(H, W))
        _close(u, tu.numpy(), dtype)
        du = _rand(rng, (N, C, H, W), dtype)
        g = F.max_unpool2d_backward(cp.asarray(du), idx, k, s, p, output_size=(H, W))
        ref = np.take_along_axis(du.reshape(N, C, -1), tidx.numpy().reshape(N, C, -1), 2)
        _close(g, ref.reshape(_np(y).shape), dtype)


@gpu
def test_pool_bad_indices_raise():
    _need("max_pool2d")
    x = cp.asarray(np.random.default_rng(7).standard_normal((1, 1, 4, 4)).astype(np.float32))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    bad = idx.copy()
    bad[0, 0, 0, 0] = 99
    with pytest.raises(ValueError, match="invalid index 99"):
        F.max_pool2d_backward(cp.ones_like(y), x, bad, 2)
    with pytest.raises(ValueError, match="invalid index 99"):
        F.max_unpool2d(y, bad, 2)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS, ids=str)
def test_activation_kernels(act, dtype):
    ext = pyconv.cuda._ext
    from pyconv.ops._args import parse_activation
    kind, param = parse_activation("test", act)
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((2, 3, 5, 7)) * 3).astype(dtype)
    x.flat[:4] = [0.0, -3.0, 3.0, np.nan]
    xs = cp.asarray(x)[:, :, ::2]  # strided input
    y = ext.activation_forward(xs, kind, param)
    tx = _t(x[:, :, ::2]).requires_grad_()
    ty = _torch_act(act, tx)
    _close(y, ty.detach().numpy(), dtype)
    dy = _rand(rng, ty.shape, dtype)
    ty.backward(_t(dy))
    g = ext.activation_backward(cp.asarray(dy), xs, kind, param)
    _close(g, tx.grad.numpy(), dtype)
