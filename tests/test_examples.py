"""The examples run end to end on a few images: train, save, load, classify (PNG, PPM, .npy)."""
import os
import pickle
import struct
import sys
import zlib

import numpy as np
import pytest

import pyconv

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)
import infer  # noqa: E402
import train_cifar10  # noqa: E402


def _png(rgb):
    """An RGB PNG using every filter type, encoded by the PNG specification's rules."""
    h, w, _ = rgb.shape
    rows, prev = [], np.zeros(w * 3, np.int64)
    for y, r in enumerate(rgb.reshape(h, w * 3).astype(np.int64)):
        f = y % 5
        left = np.concatenate([[0, 0, 0], r[:-3]])
        if f == 0:
            enc = r
        elif f == 1:
            enc = r - left
        elif f == 2:
            enc = r - prev
        elif f == 3:
            enc = r - (left + prev) // 2
        else:
            enc = np.zeros_like(r)
            for x in range(len(r)):
                a, b, c = (r[x - 3] if x >= 3 else 0), prev[x], (prev[x - 3] if x >= 3 else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                enc[x] = r[x] - (a if pa <= pb and pa <= pc else (b if pb <= pc else c))
        rows.append(bytes([f]) + (enc & 255).astype(np.uint8).tobytes())
        prev = r

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def test_image_readers_agree(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3)).astype(np.uint8)
    (tmp_path / "a.png").write_bytes(_png(rgb))
    (tmp_path / "a.ppm").write_bytes(b"P6\n# comment\n9 7\n255\n" + rgb.tobytes())
    (tmp_path / "b.ppm").write_bytes(b"P3 9 7 255\n" + " ".join(map(str, rgb.ravel())).encode())
    np.save(tmp_path / "a.npy", rgb.transpose(2, 0, 1))
    want = rgb.astype(np.float32) / 255
    for name in ("a.png", "a.ppm", "b.ppm", "a.npy"):
        np.testing.assert_allclose(infer.read_image(str(tmp_path / name)), want, err_msg=name)
    with pytest.raises(ValueError):
        infer.read_pnm(b"P7 1 1 255\n\0")


def test_train_then_infer(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = str(tmp_path / "net.npz")
    train_cifar10.main(["--epochs", "1", "--limit", "32", "--test-limit", "16", "--batch-size", "16",
                        "--out", out])
    text = capsys.readouterr().out
    assert "epoch 1/1 [" in text and "test loss" in text and os.path.exists(out + ".json")
    sd = pyconv.load(out)
    assert sd["0.weight"].shape == (32, 3, 5, 5) and sd["8.weight"].shape == (10, 64)
    img = tmp_path / "x.pgm"
    img.write_bytes(b"P5 8 8 16\n" + np.arange(64, dtype=np.uint8).__mod__(17).tobytes())
    probs = infer.main([out, str(img)])
    assert probs.shape == (1, 10) and abs(probs.sum() - 1) < 1e-5


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_batches_loader(tmp_path):
    r = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": r.integers(0, 256, (4, 3072)).astype(np.uint8),
                         b"labels": [int(v) for v in r.integers(0, 10, 4)], b"batch_label": b"x"}, f, protocol=2)
    xtr, ytr, xte, yte, classes, name = train_cifar10.load_cifar10(str(tmp_path))
    assert xtr.shape == (20, 3, 32, 32) and ytr.shape == (20,) and xte.shape == (4, 3, 32, 32)
    assert xtr.dtype == np.float32 and 0 <= xtr.min() and xtr.max() <= 1 and classes[0] == "airplane"
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        train_cifar10.load_cifar10(str(tmp_path))
