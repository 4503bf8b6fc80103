"""conv_transpose2d forward and backward against torch: hypothesis sweep, edge cases, errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

import pyconv.functional as F
from conftest import tolerance
from test_conv2d import assert_close, make_noncontiguous


@st.composite
def problems(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin_g, cout_g = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    R, S = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))  # includes kernel < stride
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    # padding that keeps the output positive
    def max_pad(n, s, d, k, op):
        return max(0, min(3, ((n - 1) * s + d * (k - 1) + op) // 2))
    pad = (draw(st.integers(0, max_pad(H, stride[0], dil[0], R, opad[0]))),
           draw(st.integers(0, max_pad(W, stride[1], dil[1], S, opad[1]))))
    return dict(N=draw(st.sampled_from([0, 1, 2])), Cin=groups * cin_g, Cout=groups * cout_g,
                H=H, W=W, R=R, S=S,
                kw=dict(stride=stride, padding=pad, output_padding=opad, groups=groups, dilation=dil),
                bias=draw(st.booleans()), unbatched=draw(st.integers(0, 4)) == 0,
                noncontig=draw(st.integers(0, 3)) == 0,
                dtype=draw(st.sampled_from([np.float64, np.float32])),
                seed=draw(st.integers(0, 2**31 - 1)))


def check(pr):
    rng = np.random.default_rng(pr["seed"])
    dt, kw = pr["dtype"], pr["kw"]
    xs = (pr["Cin"], pr["H"], pr["W"]) if pr["unbatched"] else (pr["N"], pr["Cin"], pr["H"], pr["W"])
    x = rng.standard_normal(xs).astype(dt)
    w = rng.standard_normal((pr["Cin"], pr["Cout"] // kw["groups"], pr["R"], pr["S"])).astype(dt)
    b = rng.standard_normal(pr["Cout"]).astype(dt) if pr["bias"] else None
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = TF.conv_transpose2d(tx, tw, tb, **kw)
    if pr["noncontig"]:
        x, w = make_noncontiguous(x, rng), make_noncontiguous(w, rng)
    y = F.conv_transpose2d(x, w, b, **kw)
    assert_close(y, ty.detach().numpy(), dt)
    g = rng.standard_normal(y.shape).astype(dt)
    ty.backward(torch.tensor(g))
    gi, gw, gb = F.conv_transpose2d_backward(g, x, w, output_mask=(True, True, b is not None), **kw)
    assert_close(gi, tx.grad.numpy(), dt)
    assert_close(gw, tw.grad.numpy(), dt)
    if b is not None:
        assert_close(gb, tb.grad.numpy(), dt)


@given(problems())
def test_conv_transpose2d_matches_torch(pr):
    check(pr)


@pytest.mark.parametrize("case", [
    (2, 16, 8, 7, 9, 4, 4, dict(stride=2, padding=1)),                    # DCGAN up-sampling
    (2, 8, 4, 6, 5, 2, 2, dict(stride=2)),                               # U-Net 2x2 s2
    (1, 6, 6, 5, 5, 3, 3, dict(stride=3, output_padding=2, groups=3)),   # kernel == stride
    (1, 4, 4, 5, 4, 1, 1, dict(stride=3, output_padding=1)),             # kernel < stride
    (2, 4, 6, 5, 7, 3, 2, dict(stride=1, dilation=3, output_padding=2, padding=1)),  # op from dilation
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_transpose2d_edge_cases(case, dtype):
    N, Cin, Cout, H, W, R, S, kw = case
    full = dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)
    full.update(kw)
    check(dict(N=N, Cin=Cin, Cout=Cout, H=H, W=W, R=R, S=S, kw=full, bias=True, unbatched=False,
               noncontig=False, dtype=dtype, seed=R * 10 + H))


@pytest.mark.parametrize("Cin, Cout", [(512, 160), (64, 40)])
def test_stride_phases_in_either_task_order(Cin, Cout):
    """The forward's four stride phases share one task list: a column block's phases next
    to each other, or, when the phases' filter rows (160 x 512 x 16 values: 5 MB) outgrow
    half an L2, a phase's column blocks. Either order covers every task once, on any thread
    count (bitwise the same for 1, 2 and 3)."""
    import pyconv
    rng = np.random.default_rng(Cin)
    x = rng.standard_normal((3, Cin, 7, 9), dtype=np.float32)
    w = rng.standard_normal((Cin, Cout, 4, 4), dtype=np.float32) / np.float32(Cin)
    ref = TF.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2,
                              padding=1).numpy()
    nt = pyconv.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            pyconv.set_num_threads(threads)
            outs.append(F.conv_transpose2d(x, w, stride=2, padding=1))
    finally:
        pyconv.set_num_threads(nt)
    for y in outs[1:]:
        assert np.array_equal(y, outs[0])
    assert_close(outs[0], ref, np.float32)


def _x(*s, dtype=np.float32):
    return np.ones(s, dtype)


@pytest.mark.parametrize("args, kwargs, exc, msg", [
    ((_x(1, 4, 5, 5), _x(3, 2, 3, 3)), {}, ValueError, r"conv_transpose2d: weight expects 3 input channels"),
    ((_x(1, 4, 5, 5), _x(4, 2, 3, 3)), dict(stride=2, output_padding=2), ValueError,
     r"conv_transpose2d: output_padding must be smaller than either stride or dilation"),
    ((_x(1, 4, 5, 5), _x(4, 2, 3, 3)), dict(groups=3), ValueError, r"input channels \(4\) must be divisible by groups \(3\)"),
    ((_x(1, 4, 5, 5), _x(4, 2, 3, 3), _x(3)), {}, ValueError, r"conv_transpose2d: bias must have 2 elements"),
    ((_x(1, 4, 1, 1), _x(4, 2, 1, 1)), dict(padding=1), ValueError, r"conv_transpose2d: output size \(-1, -1\) is not positive"),
    ((_x(1, 4, 5, 5), _x(4, 2, 3, 3)), dict(stride=0), ValueError, r"conv_transpose2d: stride must be positive"),
    ((_x(1, 4, 5, 5), _x(4, 2, 3, 3)), dict(padding=-1), ValueError, r"conv_transpose2d: padding must be non-negative"),
    ((_x(1, 4, 5, 5), _x(4, 2, 3, 3, dtype=np.float64)), {}, TypeError, r"conv_transpose2d: weight has dtype float64"),
    ((_x(4, 5), _x(4, 2, 3, 3)), {}, ValueError, r"conv_transpose2d: input must have 3 or 4 dimensions"),
])
def test_bad_input_raises(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        F.conv_transpose2d(*args, **kwargs)
