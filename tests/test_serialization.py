"""pyconv.save / pyconv.load: exact round trips, the safetensors layout as its specification
writes it, and clear errors (never code execution) for malformed or hostile files."""
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

import pyconv
from pyconv import nn


def sample_state():
    r = np.random.default_rng(5)
    return {
        "conv.weight": r.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv.bias": r.standard_normal(4),                                   # float64
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),               # 0-d
        "mask": r.random((2, 5)) > 0.5,
        "half": r.standard_normal(6).astype(np.float16),
        "idx": np.arange(10, dtype=np.int32).reshape(2, 5)[:, ::2],          # non-contiguous
        "empty": np.zeros((0, 3), np.float32),
        "u8": np.arange(5, dtype=np.uint8),
    }


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pt"])
def test_roundtrip_exact(tmp_path, suffix):
    sd = sample_state()
    path = tmp_path / ("model" + suffix)
    pyconv.save(sd, path)
    assert path.exists()                                     # no extension appended
    back = pyconv.load(path)
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)


def test_roundtrip_file_objects_and_model(tmp_path):
    pyconv.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    for fmt in ("npz", "safetensors"):
        buf = io.BytesIO()
        pyconv.save(m.state_dict(), buf, format=fmt)
        buf.seek(0)
        sd = pyconv.load(buf)
        m2 = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
        m2.load_state_dict(sd)
        for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_torch_state_dict_saves_and_loads(tmp_path):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    pyconv.save(tm.state_dict(), tmp_path / "t.safetensors")
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    m.load_state_dict(pyconv.load(tmp_path / "t.safetensors"))
    np.testing.assert_array_equal(m[0].weight.numpy(), tm[0].weight.detach().numpy())


def test_safetensors_layout_follows_the_spec(tmp_path):
    sd = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), dtype=np.int64)}
    pyconv.save(sd, tmp_path / "x.safetensors")
    raw = (tmp_path / "x.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    assert header["b"]["dtype"] == "F32" and header["b"]["shape"] == [3]
    assert header["a"]["dtype"] == "I64" and header["a"]["shape"] == [2, 2]
    b0, b1 = header["b"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(body[b0:b1], "<f4"), sd["b"])
    a0, a1 = header["a"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(body[a0:a1], "<i8").reshape(2, 2), sd["a"])


def _st(header, body=b""):
    hb = json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + body


def test_reads_a_hand_written_safetensors_file_with_bf16(tmp_path):
    vals = np.array([1.0, -2.5, 3.0], np.float32)
    bf16 = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
    f64 = np.array([[1.5]], "<f8").tobytes()
    data = _st({"__metadata__": {"format": "pt"}, "w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                "v": {"dtype": "F64", "shape": [1, 1], "data_offsets": [6, 14]}}, bf16 + f64)
    p = tmp_path / "h.safetensors"
    p.write_bytes(data)
    sd = pyconv.load(p)
    np.testing.assert_array_equal(sd["w"], vals)
    assert sd["v"].dtype == np.float64 and sd["v"][0, 0] == 1.5


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
BAD_SAFETENSORS = {
    "truncated length": b"\x05\x00\x00",
    "header past end": struct.pack("<Q", 1000) + b"{}",
    "huge header": struct.pack("<Q", 2 ** 62) + b"{}",
    "not json": struct.pack("<Q", 4) + b"{abc",
    "not utf8": struct.pack("<Q", 4) + b"{\xff\xfe}",
    "not an object": _st([1, 2]),
    "unknown dtype": _st({"w": {"dtype": "F128", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "bad shape": _st({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "size mismatch": _st({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
    "offsets out of range": _st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
    "truncated data": _st(GOOD, b"\0" * 5),
    "trailing data": _st(GOOD, b"\0" * 12),
    "overlap": _st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
    "duplicate key": struct.pack("<Q", 2 * len(json.dumps(GOOD)) + 1) + json.dumps(GOOD)[:-1].encode() + b","
    + json.dumps(GOOD)[1:].encode() + b" " + b"\0" * 8,
    "extra field": _st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}}, b"\0" * 8),
    "bad metadata": _st({"__metadata__": {"a": 1}, **GOOD}, b"\0" * 8),
    "huge shape": _st({"w": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 8]}}, b"\0" * 8),
}


@pytest.mark.parametrize("name", list(BAD_SAFETENSORS))
def test_malformed_safetensors_raise_value_error(tmp_path, name):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(BAD_SAFETENSORS[name])
    with pytest.raises(ValueError, match="safetensors"):
        pyconv.load(p)


class _Evil:
    def __reduce__(self):
        return (os.mkdir, (_Evil.target,))


def test_pickle_payload_in_npz_is_refused_and_not_executed(tmp_path):
    _Evil.target = str(tmp_path / "pwned")
    p = tmp_path / "evil.npz"
    np.savez(p, w=np.array([_Evil()], dtype=object))            # an object array: pickled inside the zip
    with pytest.raises(ValueError, match="not a valid .npz"):
        pyconv.load(p)
    assert not os.path.exists(_Evil.target)
    # a raw pickle file is not accepted either
    q = tmp_path / "evil.pt"
    q.write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.raises(ValueError):
        pyconv.load(q)
    assert not os.path.exists(_Evil.target)


def test_malformed_npz_raise_value_error(tmp_path):
    good = io.BytesIO()
    pyconv.save({"w": np.arange(1000, dtype=np.float32)}, good)
    raw = good.getvalue()
    cases = {"truncated": raw[: len(raw) // 2], "garbage zip": b"PK\x03\x04" + b"\0" * 50}
    # a member whose .npy header declares far more data than it holds
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        hdr = io.BytesIO()
        np.lib.format.write_array_header_1_0(hdr, {"descr": "<f4", "fortran_order": False,
                                                   "shape": (10 ** 6, 10 ** 6)})
        zf.writestr("w.npy", hdr.getvalue() + b"\0" * 16)
        cases["huge declared shape"] = None
    cases["huge declared shape"] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", b"hello")
    cases["non-npy member"] = buf.getvalue()
    for name, data in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(data)
        with pytest.raises(ValueError, match="npz"):
            pyconv.load(p)


def test_save_rejects_non_arrays(tmp_path):
    with pytest.raises(TypeError):
        pyconv.save({"w": np.array(["a", "b"])}, tmp_path / "x.npz")
    with pytest.raises(TypeError):
        pyconv.save({"w": object()}, tmp_path / "x.npz")
    with pytest.raises(TypeError):
        pyconv.save({(1, 2): np.zeros(2)}, tmp_path / "x.npz")
    with pytest.raises(ValueError):
        pyconv.save({"__pyconv_tree__": np.zeros(2)}, tmp_path / "x.npz")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_nested_checkpoint_roundtrip(tmp_path, suffix):
    pyconv.manual_seed(0)
    m = nn.Linear(3, 2)
    opt = pyconv.optim.Adam(m.parameters(), lr=0.01)
    m(pyconv.Tensor(np.ones((4, 3), np.float32))).sum().backward()
    opt.step()
    ckpt = {"model": m.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "note": "hi", "none": None,
            "pair": (1.5, float("inf")), "list": [1, [2, np.arange(3)]], 7: True}
    pyconv.save(ckpt, tmp_path / ("c" + suffix))
    back = pyconv.load(tmp_path / ("c" + suffix))
    assert back["epoch"] == 3 and back["note"] == "hi" and back["none"] is None and back[7] is True
    assert back["pair"] == (1.5, float("inf"))
    np.testing.assert_array_equal(back["list"][1][1], np.arange(3))
    assert list(back["model"]) == ["weight", "bias"]
    np.testing.assert_array_equal(back["model"]["weight"], m.weight.numpy())
    opt2 = pyconv.optim.Adam(nn.Linear(3, 2).parameters(), lr=0.5)
    opt2.load_state_dict(back["optimizer"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    st = opt.state_dict()["state"][0]
    np.testing.assert_array_equal(back["optimizer"]["state"][0]["exp_avg"], st["exp_avg"])


@pytest.mark.parametrize("tree", [b"not json", b'{"__array__": 5}', b'{"__eval__": "1"}', b'[{"__dict__": [[[1], 2]]}]',
                                  b'{"__float__": "1e400"}'])
def test_hostile_structure_description(tmp_path, tree):
    p = tmp_path / "t.npz"
    pyconv.save({"a0": np.zeros(2), "__x": np.zeros(1)}, p)
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        for name, arr in (("a0", np.zeros(2)), ("__pyconv_tree__", np.frombuffer(tree, np.uint8))):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            zf.writestr(name + ".npy", buf.getvalue())
    p.write_bytes(data.getvalue())
    with pytest.raises(ValueError, match="structure"):
        pyconv.load(p)


def test_pyconv_weights_load_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    pyconv.manual_seed(3)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    m.eval()
    pyconv.save(m.state_dict(), tmp_path / "m.safetensors")
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                             torch.nn.Linear(4 * 5 * 5, 2)).eval()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in pyconv.load(tmp_path / "m.safetensors").items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    with pyconv.no_grad(), torch.no_grad():
        np.testing.assert_allclose(m(pyconv.Tensor(x)).numpy(), tm(torch.from_numpy(x)).numpy(), rtol=1e-4,
                                   atol=1e-5)
