"""Classify an image with weights saved by train_cifar10.py.

    python examples/infer.py cifar10_net.npz picture.png [more images ...]

Image files: .npy (H x W, H x W x 3 or 3 x H x W; uint8 0..255 or float 0..1), binary or ASCII
PPM/PGM (P2, P3, P5, P6) and 8-bit non-interlaced PNG (grey, grey+alpha, RGB, RGBA), all read
with numpy and the standard library only. The image is resized to 32x32 (nearest neighbour),
made 3-channel and normalised with the mean/std stored next to the weights (<weights>.json).
"""
import argparse
import json
import os
import struct
import sys
import zlib

import numpy as np

import pyconv
from pyconv import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_cifar10 import CIFAR_CLASSES, build_model  # noqa: E402


def read_pnm(data):
    """PGM/PPM, binary (P5/P6) or ASCII (P2/P3)."""
    magic = data[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        raise ValueError("not a PGM/PPM file")
    fields, pos = [], 2
    while len(fields) < 3:                      # width, height, maxval; '#' starts a comment
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(data[start:pos]))
    w, h, maxval = fields
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = w * h * channels
    if magic in (b"P5", b"P6"):
        dtype = ">u2" if maxval > 255 else "u1"
        px = np.frombuffer(data, dtype=dtype, count=count, offset=pos + 1)
    else:
        px = np.array(data[pos:].split()[:count], dtype=np.int64)
    if px.size != count:
        raise ValueError("truncated PGM/PPM pixel data")
    img = px.reshape(h, w, channels).astype(np.float32) / maxval
    return img


def _unfilter(raw, h, stride, bpp):
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    rows = raw.reshape(h, stride + 1)
    for y in range(h):
        ftype, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if ftype == 0:
            cur = line
        elif ftype == 2:
            cur = (line + prev) & 0xFF
        else:                                   # Sub, Average, Paeth depend on the pixel to the left
            cur = np.zeros(stride, dtype=np.int64)
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                if ftype == 1:
                    pred = a
                elif ftype == 3:
                    pred = (a + b) // 2
                elif ftype == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise ValueError(f"bad PNG filter type {ftype}")
                cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out


def read_png(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif ctype == b"IDAT":
            idat.append(chunk)
        elif ctype == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    w, h, depth, ctype, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError("only 8-bit, non-interlaced grey/RGB(A) PNGs are supported; convert to PPM or .npy")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    img = _unfilter(raw, h, w * channels, channels).reshape(h, w, channels)
    if channels in (2, 4):
        img = img[..., :-1]                     # drop alpha
    return img.astype(np.float32) / 255.0


def read_image(path):
    if path.endswith(".npy"):
        a = np.load(path, allow_pickle=False)
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = a.transpose(1, 2, 0)
        a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 or a.max() > 1.0 else 1.0)
        return a if a.ndim == 3 else a[..., None]
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return read_png(data)
    return read_pnm(data)


def preprocess(img, mean, std):
    """(H, W, C) in [0, 1] -> (3, 32, 32) normalised."""
    h, w = img.shape[:2]
    ys = (np.arange(32) * h) // 32
    xs = (np.arange(32) * w) // 32
    img = img[ys][:, xs]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    x = img.transpose(2, 0, 1).astype(np.float32)
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


def main(argv=None):
    ap = argparse.ArgumentParser(description="Classify images with a network trained by train_cifar10.py")
    ap.add_argument("weights")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args(argv)

    meta = {"classes": CIFAR_CLASSES, "mean": [0.0] * 3, "std": [1.0] * 3}
    if os.path.exists(args.weights + ".json"):
        with open(args.weights + ".json") as f:
            meta.update(json.load(f))
    model = build_model()
    model.load_state_dict(pyconv.load(args.weights))
    model.eval()
    batch = np.stack([preprocess(read_image(p), meta["mean"], meta["std"]) for p in args.images])
    with pyconv.no_grad():
        probs = nn.functional.softmax(model(Tensor(batch)), dim=1).numpy()
    for path, p in zip(args.images, probs):
        order = np.argsort(-p)[:args.top]
        best = ", ".join(f"{meta['classes'][i]} {100 * p[i]:.1f}%" for i in order)
        print(f"{path}: {best}")
    return probs


if __name__ == "__main__":
    main()
