"""Train the classic CIFAR-10 network with pyconv (no torch needed).

    python examples/train_cifar10.py                      # scikit-learn's handwritten digits, 3x32x32
    python examples/train_cifar10.py --data cifar-10-batches-py --epochs 10

With --data DIR it reads the CIFAR-10 "python version" batches (data_batch_1..5, test_batch).
Without it, it trains on scikit-learn's bundled handwritten digits (1797 8x8 images, installed with
`pip install pyconv[examples]`, nothing downloaded at run time), upscaled to 3x32x32 so the same
network applies. Prints a progress bar, per-epoch loss and accuracy, and saves the weights with
pyconv.save (plus a small JSON file with the class names and input normalisation for infer.py).
"""
import argparse
import json
import os
import pickle
import sys
import time

import numpy as np

import pyconv
from pyconv import Tensor, nn, optim

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def build_model():
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10))


# ----------------------------------------------------------------------------- data

class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR-10 batches are pickles; allow only what they contain (numpy arrays), nothing callable."""
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            if module.startswith("numpy.core.") and hasattr(np, "_core"):
                module = "numpy._core." + module[len("numpy.core."):]     # numpy 2 name, no warning
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")


def _cifar_batch(path):
    with open(path, "rb") as f:
        d = _CifarUnpickler(f, encoding="bytes").load()
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(d[b"labels"], dtype=np.int64)
    return x, y


def load_cifar10(root):
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in names + ["test_batch"] if not os.path.exists(os.path.join(root, n))]
    if missing:
        sys.exit(f"error: {root} lacks CIFAR-10 python batches: {', '.join(missing)}")
    parts = [_cifar_batch(os.path.join(root, n)) for n in names]
    xtr = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _cifar_batch(os.path.join(root, "test_batch"))
    return xtr, ytr, xte.astype(np.float32) / 255.0, yte, CIFAR_CLASSES, "cifar10"


def load_digits_3x32(seed):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("error: no --data directory given and scikit-learn is not installed; "
                 "run `pip install pyconv[examples]` (or pass --data DIR with the CIFAR-10 python batches)")
    d = load_digits()
    x = d.images.astype(np.float32) / 16.0                         # (n, 8, 8) in [0, 1]
    x = np.kron(x, np.ones((1, 4, 4), np.float32))                 # nearest upscale to 32x32
    x = np.repeat(x[:, None], 3, axis=1)                           # 3 channels
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    x, y = x[perm], y[perm]
    n_test = len(x) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test], [str(i) for i in range(10)], "digits"


# ----------------------------------------------------------------------------- training

def progress(prefix, done, total, extra, width=30):
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "." * (width - filled)
    sys.stdout.write(f"\r{prefix} [{bar}] {done}/{total} {extra}")
    sys.stdout.flush()


def evaluate(model, x, y, batch_size, crit):
    model.eval()
    total_loss, correct = 0.0, 0
    with pyconv.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            out = model(Tensor(xb))
            total_loss += crit(out, Tensor(yb)).item() * len(xb)
            correct += int((out.argmax(dim=1) == Tensor(yb)).sum().item())
    model.train()
    return total_loss / len(x), correct / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="directory with the CIFAR-10 python batches (default: sklearn digits)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--test-limit", type=int, default=0, help="use only the first N test images (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="kernel threads (0: pyconv's default)")
    ap.add_argument("--out", default="cifar10_net.npz", help="where to save the weights (.npz or .safetensors)")
    args = ap.parse_args(argv)

    if args.threads:
        pyconv.set_num_threads(args.threads)
    pyconv.manual_seed(args.seed)
    if args.data:
        xtr, ytr, xte, yte, classes, dataset = load_cifar10(args.data)
    else:
        xtr, ytr, xte, yte, classes, dataset = load_digits_3x32(args.seed)
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    if args.test_limit:
        xte, yte = xte[:args.test_limit], yte[:args.test_limit]
    mean = xtr.mean(axis=(0, 2, 3)).astype(np.float32)
    std = (xtr.std(axis=(0, 2, 3)) + 1e-6).astype(np.float32)
    xtr = (xtr - mean[:, None, None]) / std[:, None, None]
    xte = (xte - mean[:, None, None]) / std[:, None, None]
    print(f"dataset: {dataset}, {len(xtr)} training and {len(xte)} test images of shape {xtr.shape[1:]}, "
          f"{pyconv.get_num_threads()} threads")

    model = build_model()
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    rng = np.random.default_rng(args.seed)
    nb = (len(xtr) + args.batch_size - 1) // args.batch_size
    test_acc = None
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(xtr))
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for b in range(nb):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb, yb = Tensor(xtr[idx]), Tensor(ytr[idx])
            out = model(xb)
            loss = crit(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += int((out.argmax(dim=1) == yb).sum().item())
            rate = seen / (time.perf_counter() - t0)
            progress(f"epoch {epoch}/{args.epochs}", b + 1, nb,
                     f"loss {loss_sum / seen:.4f} acc {100 * correct / seen:5.1f}% {rate:6.1f} img/s")
        test_loss, test_acc = evaluate(model, xte, yte, 256, crit)
        sys.stdout.write("\n")
        print(f"epoch {epoch}: train loss {loss_sum / seen:.4f} acc {100 * correct / seen:.1f}% | "
              f"test loss {test_loss:.4f} acc {100 * test_acc:.1f}% | {time.perf_counter() - t0:.1f} s")

    pyconv.save(model.state_dict(), args.out)
    meta = {"dataset": dataset, "classes": classes, "mean": mean.tolist(), "std": std.tolist(),
            "input": "3x32x32 float, pixel values scaled to [0, 1] then normalised with mean/std"}
    with open(args.out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    print(f"saved weights to {args.out} (and {args.out}.json)")
    return test_acc


if __name__ == "__main__":
    main()
