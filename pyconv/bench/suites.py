"""Benchmark cases: named suites of real layer shapes, and convolution problems from a CSV.

A case is one op, one shape, one direction (fwd, bwd_data, bwd_weight, bwd, step). Its
``build(env)`` allocates the arrays once and returns the callables to time: pyconv's (the
subject) and the reference's (torch, a numpy baseline, or pyconv's unfused op), all on the
same arrays. The work per call (FLOPs or bytes) gives GFLOP/s or GB/s.

Suite shapes are written from the architectures (CIFAR-10 reference network, ResNet, ResNeXt,
MobileNet, DCGAN, U-Net, VGG); batches are scaled down so that a full run stays short.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .backends import NP_ACT_BWD, NP_ACT_FWD, Env, Unavailable, bind, np_conv2d

CONV_DIRS = ("fwd", "bwd_data", "bwd_weight")


@dataclass
class Impl:
    subject: Callable                      # pyconv
    reference: Callable | None = None      # None: pyconv alone
    ref_label: str | None = None
    grad: bool = False                     # run with torch autograd enabled (training step)
    check: bool = True                     # compare the two results once after warm-up


@dataclass
class Case:
    suite: str
    cls: str
    name: str
    op: str
    direction: str
    shape: str
    build: Callable[[Env], Impl]
    flops: int | None = None
    bytes: int | None = None
    mem_bytes: int = 0
    batch: int | None = None
    params: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}/{self.direction}"

    @property
    def unit(self) -> str | None:
        if self.flops:
            return "GFLOP/s"
        if self.bytes:
            return "GB/s"
        return None

    @property
    def work(self) -> float | None:
        return self.flops or self.bytes


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def conv_out(size, k, pad, stride, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def conv_flops(N, C, K, P, Q, R, S, groups=1) -> int:
    """2*N*K*P*Q*(C/groups)*R*S: one forward, or one backward-data, or one backward-weight."""
    return 2 * N * K * P * Q * (C // groups) * R * S


# ---- convolution --------------------------------------------------------------------------

@dataclass
class ConvProblem:
    name: str
    cls: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    pad: tuple = (0, 0)
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    groups: int = 1

    @property
    def PQ(self):
        return (conv_out(self.H, self.R, self.pad[0], self.stride[0], self.dilation[0]),
                conv_out(self.W, self.S, self.pad[1], self.stride[1], self.dilation[1]))

    def describe(self) -> str:
        s = f"{self.N}x{self.C}x{self.H}x{self.W} k{self.K} {self.R}x{self.S}"
        if self.pad != (0, 0):
            s += f" p{self.pad[0]}" if self.pad[0] == self.pad[1] else f" p{self.pad}"
        if self.stride != (1, 1):
            s += f" s{self.stride[0]}" if self.stride[0] == self.stride[1] else f" s{self.stride}"
        if self.dilation != (1, 1):
            s += f" d{self.dilation[0]}"
        if self.groups != 1:
            s += f" g{self.groups}"
        return s

    def with_batch(self, n):
        return ConvProblem(**{**self.__dict__, "N": n}) if n else self


def classify(C, K, R, S, stride, dilation, groups) -> str:
    """PERF.md's class of a convolution shape."""
    if groups > 1:
        return "depthwise" if groups == C == K else "grouped"
    if R == 1 and S == 1:
        return "1x1"
    if max(dilation) > 1:
        return "dilated"
    if C <= 4 or (max(stride) > 1 and max(R, S) >= 5):
        return "stem"
    return "dense"


def _conv_params(p: ConvProblem) -> dict:
    return {k: v for k, v in p.__dict__.items() if k not in ("name", "cls")}


def conv_cases(suite: str, p: ConvProblem, dirs=CONV_DIRS) -> list[Case]:
    P, Q = p.PQ
    if P <= 0 or Q <= 0:
        return []
    flops = conv_flops(p.N, p.C, p.K, P, Q, p.R, p.S, p.groups)
    isz = 4
    mem = isz * (2 * p.N * p.C * p.H * p.W + 2 * p.K * (p.C // p.groups) * p.R * p.S
                 + 2 * p.N * p.K * P * Q)
    # im2col-sized scratch a library may allocate
    mem += isz * p.N * (p.C // p.groups) * p.R * p.S * P * Q
    out = []
    for d in dirs:
        out.append(Case(suite, p.cls, p.name, "conv2d", d, p.describe(),
                        build=lambda env, d=d: _build_conv(env, p, d),
                        flops=flops, mem_bytes=mem, batch=p.N, params=_conv_params(p)))
    return out


def _build_conv(env: Env, p: ConvProblem, d: str) -> Impl:
    P, Q = p.PQ
    x = env.randn(p.N, p.C, p.H, p.W)
    w = env.randn(p.K, p.C // p.groups, p.R, p.S) * np.asarray(
        1.0 / np.sqrt(p.C // p.groups * p.R * p.S), dtype=env.dtype)
    kw = dict(stride=p.stride, padding=p.pad, dilation=p.dilation, groups=p.groups)
    torch = env.torch if env.baseline == "torch" else None
    if d == "fwd":
        F_conv = env.op("conv2d")
        subject = lambda: F_conv(x, w, None, **kw)  # noqa: E731
        if torch is not None:
            tx, tw = env.t(x), env.t(w)
            tconv = torch.nn.functional.conv2d
            ref = lambda: tconv(tx, tw, None, p.stride, p.pad, p.dilation, p.groups)  # noqa: E731
            return Impl(subject, ref, "torch")
        if env.baseline == "numpy" and p.groups == 1:
            return Impl(subject, lambda: np_conv2d(x, w, p.stride, p.pad, p.dilation), "numpy")
        return Impl(subject)
    go = env.randn(p.N, p.K, P, Q)
    mask = (True, False, False) if d == "bwd_data" else (False, True, False)
    subject = bind(env.op("conv2d_backward"), dict(
        grad_output=go, input=x, weight=w, output_mask=mask, **kw))
    if torch is not None:
        tgo, tx, tw = env.t(go), env.t(x), env.t(w)
        cb = torch.ops.aten.convolution_backward
        args = (tgo, tx, tw, None, list(p.stride), list(p.pad), list(p.dilation), False,
                [0, 0], p.groups, list(mask))
        return Impl(subject, lambda: cb(*args), "torch")
    return Impl(subject)


# ---- transposed convolution ---------------------------------------------------------------

def convt_cases(suite: str, name: str, N, Cin, H, W, Cout, k, stride, pad, out_pad=0,
                groups=1, cls="conv_transpose2d") -> list[Case]:
    Ho = (H - 1) * stride - 2 * pad + (k - 1) + out_pad + 1
    Wo = (W - 1) * stride - 2 * pad + (k - 1) + out_pad + 1
    # Each input pixel meets Cout/groups*k*k weights: the same count as the forward conv it
    # is the gradient of.
    flops = conv_flops(N, Cout, Cin, H, W, k, k, groups)
    mem = 4 * 3 * (N * Cin * H * W + N * Cout * Ho * Wo + Cin * Cout * k * k)
    shape = f"{N}x{Cin}x{H}x{W} k{Cout} {k}x{k} s{stride} p{pad} -> {Ho}x{Wo}"
    prm = dict(N=N, Cin=Cin, H=H, W=W, Cout=Cout, k=k, stride=stride, pad=pad,
               output_padding=out_pad, groups=groups)
    return [Case(suite, cls, name, "conv_transpose2d", d, shape,
                 build=lambda env, d=d: _build_convt(env, prm, d, (Ho, Wo)),
                 flops=flops, mem_bytes=mem, batch=N, params=prm) for d in CONV_DIRS]


def _build_convt(env: Env, q: dict, d: str, HoWo) -> Impl:
    N, Cin, Cout, k, g = q["N"], q["Cin"], q["Cout"], q["k"], q["groups"]
    x = env.randn(N, Cin, q["H"], q["W"])
    w = env.randn(Cin, Cout // g, k, k) * np.asarray(1.0 / np.sqrt(Cin * k * k / g),
                                                      dtype=env.dtype)
    kw = dict(stride=q["stride"], padding=q["pad"], output_padding=q["output_padding"],
              groups=g, dilation=1)
    s2, p2, op2 = [q["stride"]] * 2, [q["pad"]] * 2, [q["output_padding"]] * 2
    torch = env.torch if env.baseline == "torch" else None
    if d == "fwd":
        f = env.op("conv_transpose2d")
        subject = lambda: f(x, w, None, **kw)  # noqa: E731
        if torch is not None:
            tx, tw = env.t(x), env.t(w)
            tf = torch.nn.functional.conv_transpose2d
            return Impl(subject, lambda: tf(tx, tw, None, s2, p2, op2, g, 1), "torch")
        return Impl(subject)
    go = env.randn(N, Cout, *HoWo)
    mask = (True, False, False) if d == "bwd_data" else (False, True, False)
    subject = bind(env.op("conv_transpose2d_backward"),
                   dict(grad_output=go, input=x, weight=w, output_mask=mask, **kw))
    if torch is not None:
        cb = torch.ops.aten.convolution_backward
        args = (env.t(go), env.t(x), env.t(w), None, s2, p2, [1, 1], True, op2, g, list(mask))
        return Impl(subject, lambda: cb(*args), "torch")
    return Impl(subject)


# ---- max pooling --------------------------------------------------------------------------

def pool_out(size, k, pad, stride, dil, ceil_mode):
    eff = dil * (k - 1) + 1
    num = size + 2 * pad - eff
    o = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (o - 1) * stride >= size + pad:
        o -= 1
    return o


def pool_cases(suite: str, name: str, N, C, H, W, k, stride, pad=0, ceil_mode=False,
               cls="max_pool2d") -> list[Case]:
    P = pool_out(H, k, pad, stride, 1, ceil_mode)
    Q = pool_out(W, k, pad, stride, 1, ceil_mode)
    n_in, n_out = N * C * H * W, N * C * P * Q
    # fwd reads the input, writes values and int64 indices; bwd reads grad_output and the
    # indices, writes grad_input.
    b_fwd = 4 * n_in + 4 * n_out + 8 * n_out
    b_bwd = 4 * n_out + 8 * n_out + 4 * n_in
    shape = f"{N}x{C}x{H}x{W} {k}x{k} s{stride}" + (f" p{pad}" if pad else "") + \
        (" ceil" if ceil_mode else "") + f" -> {P}x{Q}"
    prm = dict(N=N, C=C, H=H, W=W, k=k, stride=stride, pad=pad, ceil_mode=ceil_mode)
    mem = 4 * 3 * n_in + 16 * n_out
    return [Case(suite, cls, name, "max_pool2d", d, shape,
                 build=lambda env, d=d: _build_pool(env, prm, d, (P, Q)),
                 bytes=b, mem_bytes=mem, batch=N, params=prm)
            for d, b in (("fwd", b_fwd), ("bwd", b_bwd))]


def _build_pool(env: Env, q: dict, d: str, PQ) -> Impl:
    x = env.randn(q["N"], q["C"], q["H"], q["W"])
    k, s, p, cm = q["k"], q["stride"], q["pad"], q["ceil_mode"]
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=1, ceil_mode=cm)
    torch = env.torch if env.baseline == "torch" else None
    mp = env.op("max_pool2d")
    if d == "fwd":
        subject = lambda: mp(x, return_indices=True, **kw)  # noqa: E731
        if torch is not None:
            tx = env.t(x)
            tmp = torch.nn.functional.max_pool2d
            return Impl(subject, lambda: tmp(tx, k, s, p, 1, cm, True), "torch")
        return Impl(subject)
    out, idx = mp(x, return_indices=True, **kw)
    go = env.randn(*np.shape(out))
    subject = bind(env.op("max_pool2d_backward"),
                   dict(grad_output=go, input=x, indices=idx, input_shape=x.shape, **kw))
    if torch is not None:
        tx = env.t(x)
        _, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, 1, cm, True)
        bw = torch.ops.aten.max_pool2d_with_indices_backward
        args = (env.t(go), tx, [k, k], [s, s], [p, p], [1, 1], cm, tidx)
        return Impl(subject, lambda: bw(*args), "torch")
    return Impl(subject)


# ---- activations --------------------------------------------------------------------------

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu")


def act_cases(suite: str, tag: str, shape: tuple, acts=ACTIVATIONS) -> list[Case]:
    n = int(np.prod(shape))
    out = []
    for a in acts:
        prm = dict(act=a, shape=shape)
        for d, b in (("fwd", 8 * n), ("bwd", 12 * n)):   # fwd: x in, y out; bwd: 2 in, 1 out
            out.append(Case(suite, "activation", f"{a}.{tag}", a, d,
                            "x".join(map(str, shape)),
                            build=lambda env, a=a, d=d: _build_act(env, a, shape, d),
                            bytes=b, mem_bytes=4 * 4 * n, batch=shape[0], params=prm))
    return out


def _build_act(env: Env, a: str, shape, d: str) -> Impl:
    x = env.randn(*shape)
    torch = env.torch if env.baseline == "torch" else None
    f = env.op(a)
    if d == "fwd":
        subject = lambda: f(x)  # noqa: E731
        if torch is not None:
            tf = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                  "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}[a]
            tx = env.t(x)
            return Impl(subject, lambda: tf(tx), "torch")
        if env.baseline == "numpy" and a in NP_ACT_FWD:
            nf = NP_ACT_FWD[a]
            return Impl(subject, lambda: nf(x), "numpy")
        return Impl(subject)
    y = np.asarray(f(x))
    go = env.randn(*shape)
    # sigmoid and tanh take the forward's output, as torch's sigmoid/tanh_backward do
    vals = dict(grad_output=go, **({"output": y} if a in ("sigmoid", "tanh") else {"input": x}))
    if a == "gelu":
        vals["approximate"] = "none"
    subject = bind(env.op(a + "_backward"), vals)
    if torch is not None:
        A = torch.ops.aten
        tgo, tx, ty = env.t(go), env.t(x), env.t(y)
        ref = {"relu": lambda: A.threshold_backward(tgo, tx, 0.0),
               "sigmoid": lambda: A.sigmoid_backward(tgo, ty),
               "tanh": lambda: A.tanh_backward(tgo, ty),
               "gelu": lambda: A.gelu_backward(tgo, tx, approximate="none"),
               "silu": lambda: A.silu_backward(tgo, tx)}[a]
        return Impl(subject, ref, "torch")
    if env.baseline == "numpy" and a in NP_ACT_BWD:
        nb = NP_ACT_BWD[a]
        return Impl(subject, lambda: nb(go, x, y), "numpy")
    return Impl(subject)


# ---- fused conv + bias + activation -------------------------------------------------------

def fused_cases(suite: str, p: ConvProblem, act="relu") -> list[Case]:
    P, Q = p.PQ
    flops = conv_flops(p.N, p.C, p.K, P, Q, p.R, p.S, p.groups)
    mem = 4 * 3 * (p.N * p.C * p.H * p.W + p.N * p.K * P * Q)
    prm = dict(_conv_params(p), activation=act)
    return [
        # pyconv's fused op against pyconv's conv alone (no bias, no activation): overhead
        Case(suite, "fused-overhead", f"{p.name}+bias+{act}", "conv2d_fused", "fwd",
             p.describe(), build=lambda env: _build_fused(env, p, act, False),
             flops=flops, mem_bytes=mem, batch=p.N, params=prm),
        # pyconv's fused op against torch's conv2d(bias) then activation
        Case(suite, "fused", f"{p.name}+bias+{act}.vs-torch", "conv2d_fused", "fwd",
             p.describe(), build=lambda env: _build_fused(env, p, act, True),
             flops=flops, mem_bytes=mem, batch=p.N, params=prm),
    ]


def _build_fused(env: Env, p: ConvProblem, act: str, vs_torch: bool) -> Impl:
    x = env.randn(p.N, p.C, p.H, p.W)
    w = env.randn(p.K, p.C // p.groups, p.R, p.S) * np.asarray(
        1.0 / np.sqrt(p.C // p.groups * p.R * p.S), dtype=env.dtype)
    b = env.randn(p.K)
    kw = dict(stride=p.stride, padding=p.pad, dilation=p.dilation, groups=p.groups)
    conv = env.op("conv2d")
    try:
        conv(x, w, b, activation=act, **kw)
    except TypeError as e:
        raise Unavailable(f"pyconv.functional.conv2d has no activation= yet ({e})")
    subject = lambda: conv(x, w, b, activation=act, **kw)  # noqa: E731
    if not vs_torch:
        return Impl(subject, lambda: conv(x, w, None, **kw), "pyconv conv2d", check=False)
    torch = env.torch if env.baseline == "torch" else None
    if torch is None:
        raise Unavailable("needs torch")
    tx, tw, tb = env.t(x), env.t(w), env.t(b)
    tF = torch.nn.functional
    tact = {"relu": tF.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": tF.gelu,
            "silu": tF.silu}[act]
    return Impl(subject, lambda: tact(tF.conv2d(tx, tw, tb, p.stride, p.pad, p.dilation,
                                                p.groups)), "torch")


# ---- CIFAR-10 reference network: one SGD training step ------------------------------------

def train_cases(suite: str, N=64) -> list[Case]:
    # Conv2d(3,32,5,p=2), MaxPool2d(2), Conv2d(32,32,5,p=2), MaxPool2d(2),
    # Conv2d(32,64,5,p=2), MaxPool2d(2), Flatten, Linear(1024,64), Linear(64,10)
    f = (conv_flops(N, 3, 32, 32, 32, 5, 5) + conv_flops(N, 32, 32, 16, 16, 5, 5)
         + conv_flops(N, 32, 64, 8, 8, 5, 5) + 2 * N * (1024 * 64 + 64 * 10))
    flops = 3 * f - 2 * N * 3 * 32 * 32 * 32 * 25   # fwd + bwd_data + bwd_weight, no dx at layer 1
    return [Case(suite, "train", "cifar10.sgd_step", "train_step", "step",
                 f"{N}x3x32x32 -> 10", build=lambda env: _build_train(env, N),
                 flops=flops, mem_bytes=200 * N * 32 * 32 * 4, batch=N, params=dict(N=N))]


def _build_train(env: Env, N: int) -> Impl:
    nn, optim, pc = env.nn, env.optim, env.pyconv
    if nn is None or optim is None or not hasattr(pc, "Tensor"):
        raise Unavailable("pyconv.nn / pyconv.optim / pyconv.Tensor not available yet")
    x = env.randn(N, 3, 32, 32)
    y = np.random.default_rng(env.seed).integers(0, 10, N).astype(np.int64)

    def net(m):
        return m.Sequential(m.Conv2d(3, 32, 5, padding=2), m.MaxPool2d(2),
                            m.Conv2d(32, 32, 5, padding=2), m.MaxPool2d(2),
                            m.Conv2d(32, 64, 5, padding=2), m.MaxPool2d(2), m.Flatten(),
                            m.Linear(1024, 64), m.Linear(64, 10))

    try:
        model = net(nn)
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
    except (AttributeError, NotImplementedError, TypeError) as e:
        raise Unavailable(f"pyconv.nn incomplete ({type(e).__name__}: {e})")
    tx = pc.Tensor(x)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(tx), y)
        loss.backward()
        opt.step()
        return loss

    torch = env.torch if env.baseline == "torch" else None
    if torch is None:
        return Impl(step, grad=True, check=False)
    tmodel = net(torch.nn)
    try:
        model.load_state_dict({k: v.detach().numpy().copy()
                               for k, v in tmodel.state_dict().items()})
    except Exception:  # noqa: BLE001 - the timing does not depend on equal weights
        pass
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tloss_fn = torch.nn.CrossEntropyLoss()
    ttx, tty = env.t(x), torch.from_numpy(y)

    def tstep():
        topt.zero_grad()
        loss = tloss_fn(tmodel(ttx), tty)
        loss.backward()
        topt.step()
        return loss

    return Impl(step, tstep, "torch", grad=True, check=False)


# ---- the suites ---------------------------------------------------------------------------

def _cp(name, N, C, H, K, R, pad=0, stride=1, dilation=1, groups=1, cls=None):
    stride, dilation, pad = _pair(stride), _pair(dilation), _pair(pad)
    cls = cls or classify(C, K, R, R, stride, dilation, groups)
    return ConvProblem(name, cls, N, C, H, H, K, R, R, pad, stride, dilation, groups)


def conv2d_problems() -> list[ConvProblem]:
    return [
        # CIFAR-10 reference network, batch 64
        _cp("cifar10.conv1", 64, 3, 32, 32, 5, pad=2, cls="stem"),
        _cp("cifar10.conv2", 64, 32, 16, 32, 5, pad=2),
        _cp("cifar10.conv3", 64, 32, 8, 64, 5, pad=2),
        # ResNet 3x3 stages
        _cp("resnet.3x3.64@56", 4, 64, 56, 64, 3, pad=1),
        _cp("resnet.3x3.128@28", 4, 128, 28, 128, 3, pad=1),
        _cp("resnet.3x3.256@14", 4, 256, 14, 256, 3, pad=1),
        _cp("resnet.3x3.512@7", 8, 512, 7, 512, 3, pad=1),
        # ResNet bottleneck 1x1 and projection shortcut
        _cp("resnet.1x1.256-64@56", 4, 256, 56, 64, 1),
        _cp("resnet.1x1.64-256@56", 4, 64, 56, 256, 1),
        _cp("resnet.1x1.512-128@28", 4, 512, 28, 128, 1),
        _cp("resnet.1x1.1024-256@14", 4, 1024, 14, 256, 1),
        _cp("resnet.1x1.256-512@56s2", 4, 256, 56, 512, 1, stride=2),
        # ResNet stem
        _cp("resnet.stem.7x7s2", 4, 3, 224, 64, 7, pad=3, stride=2, cls="stem"),
        # MobileNet depthwise 3x3
        _cp("mobilenet.dw.32@112", 4, 32, 112, 32, 3, pad=1, groups=32),
        _cp("mobilenet.dw.64@112s2", 4, 64, 112, 64, 3, pad=1, stride=2, groups=64),
        _cp("mobilenet.dw.128@56", 4, 128, 56, 128, 3, pad=1, groups=128),
        _cp("mobilenet.dw.256@28s2", 4, 256, 28, 256, 3, pad=1, stride=2, groups=256),
        _cp("mobilenet.dw.512@14", 4, 512, 14, 512, 3, pad=1, groups=512),
        # ResNeXt 32x4d grouped 3x3
        _cp("resnext.g32.128@56", 4, 128, 56, 128, 3, pad=1, groups=32),
        _cp("resnext.g32.256@28", 4, 256, 28, 256, 3, pad=1, groups=32),
        _cp("resnext.g32.512@14", 4, 512, 14, 512, 3, pad=1, groups=32),
        # dilated 3x3 (DeepLab-style)
        _cp("dilated.3x3d2.64@56", 2, 64, 56, 64, 3, pad=2, dilation=2),
        _cp("dilated.3x3d2.256@28", 2, 256, 28, 256, 3, pad=2, dilation=2),
    ]


def suite_conv2d(batch=None):
    return [c for p in conv2d_problems() for c in conv_cases("conv2d", p.with_batch(batch))]


def suite_conv_transpose2d(batch=None):
    b = lambda n: batch or n  # noqa: E731
    s = "conv_transpose2d"
    return (convt_cases(s, "dcgan.512-256@4", b(16), 512, 4, 4, 256, 4, 2, 1)
            + convt_cases(s, "dcgan.256-128@8", b(16), 256, 8, 8, 128, 4, 2, 1)
            + convt_cases(s, "dcgan.128-64@16", b(16), 128, 16, 16, 64, 4, 2, 1)
            + convt_cases(s, "dcgan.64-3@32", b(16), 64, 32, 32, 3, 4, 2, 1)
            + convt_cases(s, "unet.up.512-256@28", b(2), 512, 28, 28, 256, 2, 2, 0)
            + convt_cases(s, "unet.up.128-64@104", b(2), 128, 104, 104, 64, 2, 2, 0))


def suite_max_pool2d(batch=None):
    b = lambda n: batch or n  # noqa: E731
    s = "max_pool2d"
    return (pool_cases(s, "resnet.stem.3x3s2p1", b(8), 64, 112, 112, 3, 2, 1)
            + pool_cases(s, "cifar10.pool2x2", b(64), 32, 32, 32, 2, 2)
            + pool_cases(s, "vgg.2x2.64@224", b(2), 64, 224, 224, 2, 2)
            + pool_cases(s, "vgg.2x2.128@112", b(4), 128, 112, 112, 2, 2)
            + pool_cases(s, "vgg.2x2.256@56", b(8), 256, 56, 56, 2, 2)
            + pool_cases(s, "vgg.2x2.512@28", b(16), 512, 28, 28, 2, 2))


def suite_activations(batch=None):
    return (act_cases("activations", "large", (batch or 16, 64, 128, 128))
            + act_cases("activations", "cache", (batch or 1, 64, 64, 64)))


def suite_fused(batch=None):
    probs = [(_cp("cifar10.conv2", 64, 32, 16, 32, 5, pad=2), "relu"),
             (_cp("resnet.3x3.128@28", 4, 128, 28, 128, 3, pad=1), "relu"),
             (_cp("resnet.1x1.256-64@56", 4, 256, 56, 64, 1), "relu"),
             # the epilogue's other paths and a costlier activation (Winograd's rows, the
             # GEMM's tiles with gelu, a depthwise plane)
             (_cp("resnet.3x3.128@28", 4, 128, 28, 128, 3, pad=1), "gelu"),
             (_cp("resnet.1x1.256-64@56", 4, 256, 56, 64, 1), "gelu"),
             (_cp("mobilenet.dw.128@56", 4, 128, 56, 128, 3, pad=1, groups=128), "relu")]
    return [c for p, act in probs for c in fused_cases("fused", p.with_batch(batch), act)]


def suite_train(batch=None):
    return train_cases("train", batch or 64)


def suite_smoke(batch=None):
    """Tiny shapes through every code path, for tests and a first look (not in 'all')."""
    b = batch or 2
    s = "smoke"
    return (conv_cases(s, _cp("conv.3x3", b, 8, 8, 4, 3, pad=1))
            + conv_cases(s, _cp("conv.dw", b, 4, 8, 4, 3, pad=1, stride=2, groups=4))
            + convt_cases(s, "convt.4x4s2", b, 4, 4, 4, 3, 4, 2, 1)
            + pool_cases(s, "pool.3x3s2p1", b, 3, 9, 9, 3, 2, 1)
            + act_cases(s, "tiny", (b, 3, 8, 8), acts=("relu", "gelu"))
            + fused_cases(s, _cp("conv.3x3", b, 8, 8, 4, 3, pad=1))
            + train_cases(s, b))


SUITES = {
    "conv2d": suite_conv2d,
    "conv_transpose2d": suite_conv_transpose2d,
    "max_pool2d": suite_max_pool2d,
    "activations": suite_activations,
    "fused": suite_fused,
    "train": suite_train,
    "smoke": suite_smoke,
}
DEFAULT_SUITES = ("conv2d", "conv_transpose2d", "max_pool2d", "activations", "fused", "train")


# ---- convolution problems from a CSV (../shared/shapes/*.csv columns) -------------------------

def _int(row, key, default=None):
    v = (row.get(key) or "").strip()
    if v == "":
        if default is None:
            raise ValueError(f"missing column '{key}'")
        return default
    return int(float(v))


def shapes_suite(path: str, batch=None) -> tuple[list[list[Case]], list[str]]:
    """Problems (each a list of cases, one per direction) from a shapes CSV, and notes.

    Columns: name,N,C,H,W,K,R,S,pad_h,pad_w,stride_h,stride_w, optional groups, dilation_h,
    dilation_w, op (conv or maxpool; other ops are skipped with a note), ceil_mode.
    """
    suite = "shapes:" + os.path.splitext(os.path.basename(path))[0]
    problems, notes, skipped_ops = [], [], {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"name", "N", "C", "H", "W", "K", "R", "S", "pad_h", "pad_w", "stride_h",
                "stride_w"}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(f"pyconv.bench: {path}: missing columns {sorted(missing)}")
        for i, row in enumerate(reader):
            op = (row.get("op") or "conv").strip() or "conv"
            try:
                N = batch or _int(row, "N")
                C, H, W = _int(row, "C"), _int(row, "H"), _int(row, "W")
                K, R, S = _int(row, "K"), _int(row, "R"), _int(row, "S")
                pad = (_int(row, "pad_h"), _int(row, "pad_w"))
                stride = (_int(row, "stride_h"), _int(row, "stride_w"))
                dil = (_int(row, "dilation_h", 1), _int(row, "dilation_w", 1))
                groups = _int(row, "groups", 1)
            except ValueError as e:
                notes.append(f"{path}:{i + 2}: {e}; row skipped")
                continue
            name = row["name"].strip() or f"row{i + 2}"
            if op == "conv":
                p = ConvProblem(name, classify(C, K, R, S, stride, dil, groups), N, C, H, W,
                                K, R, S, pad, stride, dil, groups)
                cases = conv_cases(suite, p)
            elif op == "maxpool" and R == S and stride[0] == stride[1] and pad[0] == pad[1]:
                cm = (row.get("ceil_mode") or "").strip() in ("1", "True", "true")
                cases = pool_cases(suite, name, N, C, H, W, R, stride[0], pad[0], cm)
            else:
                skipped_ops[op] = skipped_ops.get(op, 0) + 1
                continue
            if cases:
                problems.append(cases)
    for op, n in skipped_ops.items():
        notes.append(f"{path}: {n} '{op}' rows skipped (not benchmarked)")
    return problems, notes
