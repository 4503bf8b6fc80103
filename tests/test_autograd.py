"""pyconv.Tensor, autograd and the Tensor path of pyconv.functional, checked against torch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import pyconv  # noqa: E402
import pyconv.functional as F  # noqa: E402
from pyconv import Tensor  # noqa: E402

rng = np.random.default_rng(1234)


def rand(*shape, dtype=np.float64, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def pair(a):
    """The same leaf in pyconv and in torch."""
    return Tensor(a.copy(), requires_grad=True), torch.tensor(a, requires_grad=True)


def close(a, b, rtol=1e-10, atol=1e-12):
    a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- tensor basics

def test_tensor_basics():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = Tensor(a)
    assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == "cpu" and t.ndim == 2
    assert np.asarray(t) is a or np.shares_memory(np.asarray(t), a)
    assert t.numpy() is a
    assert Tensor([1.5, 2.0]).dtype == np.float32          # python floats: float32, as torch
    assert Tensor([1, 2]).dtype == np.int64
    assert Tensor(np.float64(2.0)).item() == 2.0
    assert t[1, 2].item() == 5.0
    assert not t.requires_grad and t.grad is None and t.is_leaf
    with pytest.raises(ValueError):
        t.item()
    with pytest.raises(TypeError):
        Tensor(np.arange(3), requires_grad=True)
    assert t.cpu().shape == (2, 3)
    assert t.to(np.float64).dtype == np.float64
    assert t.double().dtype == np.float64 and t.float().dtype == np.float32


def test_cuda_without_device_is_a_clear_error():
    if pyconv.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="CUDA"):
        Tensor(np.zeros(3, np.float32)).cuda()


def test_broadcasting_arithmetic_grads():
    a, ta = pair(rand(3, 1, 4))
    b, tb = pair(rand(5, 4))
    c, tc = pair(rand(4))
    d, td = pair(rand(3, 5, 4, lo=0.5, hi=2.0))
    out = (a * b + c / d - a ** 2 + 3.0 - b / 2.0 + 1.5 * c - (-d)) / 0.7
    tout = (ta * tb + tc / td - ta ** 2 + 3.0 - tb / 2.0 + 1.5 * tc - (-td)) / 0.7
    close(out, tout)
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    for x, tx in ((a, ta), (b, tb), (c, tc), (d, td)):
        close(x.grad, tx.grad)
    r = 2.0 - a
    r2 = 1.0 / d
    close(r, 2.0 - ta)
    close(r2, 1.0 / td)


def test_unary_and_reductions():
    x, tx = pair(rand(4, 5, 3, lo=0.1, hi=3.0))
    outs = [x.exp().sum(), x.log().mean(), x.sqrt().sum(dim=1).sum(), abs(x - 1.0).mean(dim=(0, 2)).sum(),
            x.sum(dim=-1, keepdim=True).mean(), x.max(), x.max(dim=1).values.sum(), x.min(dim=2)[0].sum(),
            x.mean(1).max()]
    touts = [tx.exp().sum(), tx.log().mean(), tx.sqrt().sum(dim=1).sum(), (tx - 1.0).abs().mean(dim=(0, 2)).sum(),
             tx.sum(dim=-1, keepdim=True).mean(), tx.max(), tx.max(dim=1).values.sum(), tx.min(dim=2)[0].sum(),
             tx.mean(1).max()]
    total = outs[0]
    ttotal = touts[0]
    for o, to in zip(outs[1:], touts[1:]):
        close(o, to)
        total = total + o
        ttotal = ttotal + to
    total.backward()
    ttotal.backward()
    close(x.grad, tx.grad)
    close(x.max(dim=1).indices, tx.max(dim=1).indices)
    close(x.argmax(dim=2), tx.argmax(dim=2))
    assert x.argmax().item() == tx.argmax().item()


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul(sa, sb):
    a, ta = pair(rand(*sa))
    b, tb = pair(rand(*sb))
    out, tout = a @ b, ta @ tb
    close(out, tout)
    g = rand(*tout.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    close(a.grad, ta.grad)
    close(b.grad, tb.grad)


def test_shape_ops_and_indexing():
    x, tx = pair(rand(2, 3, 4, 5))
    idx = np.array([2, 0, 2])
    outs = [x.reshape(6, 20), x.view(2, -1), x.flatten(1), x.permute(3, 1, 0, 2), x.transpose(1, 3),
            x[1], x[:, 1:3, ::2], x[..., 1], x[0, idx], x[:, None, 2].squeeze(1), x.unsqueeze(0), x.reshape(6, 20).T]
    touts = [tx.reshape(6, 20), tx.view(2, -1), tx.flatten(1), tx.permute(3, 1, 0, 2), tx.transpose(1, 3),
             tx[1], tx[:, 1:3, ::2], tx[..., 1], tx[0, torch.tensor(idx)], tx[:, None, 2].squeeze(1),
             tx.unsqueeze(0), tx.reshape(6, 20).T]
    loss, tloss = 0.0, 0.0
    for i, (o, to) in enumerate(zip(outs, touts)):
        assert o.shape == tuple(to.shape), i
        close(o, to)
        w = rand(*o.shape)
        loss = loss + (o * w).sum()
        tloss = tloss + (to * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    close(x.grad, tx.grad)
    # boolean mask and a Tensor index
    m = x.data > 0
    y = x[Tensor(m)]
    close(y, tx[torch.tensor(m)])


def test_cat_stack():
    a, ta = pair(rand(2, 3, 4))
    b, tb = pair(rand(2, 5, 4))
    c, tc = pair(rand(2, 3, 4))
    o, to = pyconv.cat([a, b, c], dim=1), torch.cat([ta, tb, tc], dim=1)
    s, ts = pyconv.stack([a, c], dim=-1), torch.stack([ta, tc], dim=-1)
    close(o, to)
    close(s, ts)
    g1, g2 = rand(*o.shape), rand(*s.shape)
    ((o * Tensor(g1)).sum() + (s * Tensor(g2)).sum()).backward()
    ((to * torch.tensor(g1)).sum() + (ts * torch.tensor(g2)).sum()).backward()
    for x, tx in ((a, ta), (b, tb), (c, tc)):
        close(x.grad, tx.grad)
    with pytest.raises(ValueError, match="cat"):
        pyconv.cat([a, b], dim=0)
    with pytest.raises(ValueError, match="stack"):
        pyconv.stack([a, b])


def test_grad_accumulates_and_graph_reuse():
    x, tx = pair(rand(3))
    for _ in range(2):
        (x * x).sum().backward()
        (tx * tx).sum().backward()
    close(x.grad, tx.grad)
    # a second backward through the same graph needs retain_graph, as torch
    w, tw = pair(rand(3))
    out, tout = (w * w).sum(), (tw * tw).sum()
    out.backward(retain_graph=True)
    out.backward()
    tout.backward(retain_graph=True)
    tout.backward()
    close(w.grad, tw.grad)
    with pytest.raises(RuntimeError, match="second time"):
        out.backward()
    # a value used twice in one graph
    y, ty = pair(rand(3))
    z = y * 2
    (z * z + z).sum().backward()
    tz = ty * 2
    (tz * tz + tz).sum().backward()
    close(y.grad, ty.grad)


def test_no_grad_detach_and_errors():
    x = Tensor(rand(3), requires_grad=True)
    with pyconv.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @pyconv.no_grad()
    def f(t):
        return t + 1
    assert not f(x).requires_grad
    assert (x * 2).requires_grad
    d = x.detach()
    assert not d.requires_grad and np.shares_memory(d.numpy(), x.numpy())
    with pytest.raises(RuntimeError):
        (x * 2).backward()                       # not a scalar
    with pytest.raises(RuntimeError):
        Tensor(rand(1)).backward()               # does not require grad
    with pytest.raises(ValueError):
        x.reshape(7)


def test_comparisons_for_accuracy():
    logits = Tensor(np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.2, 0.1]], np.float32))
    labels = Tensor(np.array([1, 2, 1]))
    pred = logits.argmax(dim=1)
    correct = (pred == labels)
    assert correct.dtype == np.bool_
    assert correct.sum().item() == 2
    assert (pred == labels).float().mean().item() == pytest.approx(2 / 3)
    assert ((logits > 0.5).sum().item()) == 2
    assert bool((logits <= 3.0).all()) and not bool((logits > 3.0).any())
    assert (logits > 0).any(dim=1).numpy().tolist() == [True, True, True]


# ----------------------------------------------------------------------------- functional, Tensor path

def test_plain_arrays_stay_arrays():
    x = rand(2, 5)
    y = F.softmax(x, dim=1)
    assert type(y) is np.ndarray
    assert type(F.cross_entropy(x, np.array([1, 3]))) is np.ndarray
    assert isinstance(F.softmax(Tensor(x), dim=1), Tensor)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_log_softmax(dim):
    x, tx = pair(rand(3, 4, 5))
    w = torch.tensor(rand(3, 4, 5))
    for f, tf in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
        x.grad = None
        tx.grad = None
        o, to = f(x, dim=dim), tf(tx, dim=dim)
        close(o, to)
        (o * Tensor(w.numpy())).sum().backward()
        (to * w).sum().backward()
        close(x.grad, tx.grad)


@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 2},
                                {"label_smoothing": 0.1}, {"weight": True}, {"weight": True, "ignore_index": 1,
                                                                             "label_smoothing": 0.2}])
@pytest.mark.parametrize("spatial", [False, True])
def test_cross_entropy(kw, spatial):
    kw = dict(kw)
    shape = (4, 5, 3, 2) if spatial else (6, 5)
    x, tx = pair(rand(*shape))
    t = rng.integers(0, 5, size=(shape[0],) + shape[2:])
    t.flat[0] = 2
    if kw.pop("weight", False):
        w = rand(5, lo=0.1, hi=2.0)
        kw_p, kw_t = dict(kw, weight=w), dict(kw, weight=torch.tensor(w))
    else:
        kw_p = kw_t = kw
    o, to = F.cross_entropy(x, t, **kw_p), TF.cross_entropy(tx, torch.tensor(t), **kw_t)
    close(o, to)
    g = rand(*to.shape)
    o.backward(g)
    to.backward(torch.tensor(g))
    close(x.grad, tx.grad)
    # array level
    gi = F.cross_entropy_backward(g, x.numpy(), t, **kw_p)
    close(gi, tx.grad)


def test_cross_entropy_unbatched_and_all_ignored():
    x, tx = pair(rand(5))
    for red in ("mean", "sum", "none"):
        x.grad, tx.grad = None, None
        o, to = F.cross_entropy(x, np.array(3), reduction=red), TF.cross_entropy(tx, torch.tensor(3), reduction=red)
        close(o, to)
        o.backward()
        to.backward()
        close(x.grad, tx.grad)
    x, tx = pair(rand(3, 4))
    t = np.array([-100, -100, -100])
    o, to = F.cross_entropy(x, t), TF.cross_entropy(tx, torch.tensor(t))
    assert np.isnan(o.item()) and np.isnan(to.item())
    o.backward()
    to.backward()
    close(x.grad, tx.grad)


def test_cross_entropy_probability_targets_and_errors():
    x, tx = pair(rand(4, 3))
    p = rng.dirichlet(np.ones(3), size=4)
    o, to = F.cross_entropy(x, p, label_smoothing=0.1), TF.cross_entropy(tx, torch.tensor(p), label_smoothing=0.1)
    close(o, to)
    o.backward()
    to.backward()
    close(x.grad, tx.grad)
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(rand(2, 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(rand(2, 3), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="cross_entropy"):
        F.cross_entropy(np.ones((2, 3), np.int64), np.array([0, 1]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_l1(reduction):
    for f, tf in ((F.mse_loss, TF.mse_loss), (F.l1_loss, TF.l1_loss)):
        x, tx = pair(rand(3, 4))
        y, ty = pair(rand(3, 4))
        o, to = f(x, y, reduction=reduction), tf(tx, ty, reduction=reduction)
        close(o, to)
        g = rand(*to.shape)
        o.backward(g)
        to.backward(torch.tensor(g))
        close(x.grad, tx.grad)
        close(y.grad, ty.grad)


@pytest.mark.parametrize("args", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, divisor_override=5)])
def test_avg_pool2d(args):
    x, tx = pair(rand(2, 3, 7, 8))
    o, to = F.avg_pool2d(x, **args), TF.avg_pool2d(tx, **args)
    close(o, to)
    g = rand(*to.shape)
    o.backward(g)
    to.backward(torch.tensor(g))
    close(x.grad, tx.grad)


@pytest.mark.parametrize("size", [1, 3, (2, 5), (7, None), (4, 4)])
def test_adaptive_avg_pool2d(size):
    x, tx = pair(rand(2, 3, 7, 8))
    o, to = F.adaptive_avg_pool2d(x, size), TF.adaptive_avg_pool2d(tx, size)
    close(o, to)
    g = rand(*to.shape)
    o.backward(g)
    to.backward(torch.tensor(g))
    close(x.grad, tx.grad)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(training):
    x, tx = pair(rand(4, 3, 5, 2))
    w, tw = pair(rand(3))
    b, tb = pair(rand(3))
    rm, rv = rand(3), rand(3, lo=0.5, hi=2)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    o = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)
    to = TF.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3, eps=1e-3)
    close(o, to)
    close(rm, trm)
    close(rv, trv)
    g = rand(*o.shape)
    o.backward(g)
    to.backward(torch.tensor(g))
    for p, tp in ((x, tx), (w, tw), (b, tb)):
        close(p.grad, tp.grad, rtol=1e-9, atol=1e-10)


def test_dropout():
    pyconv.manual_seed(3)
    x = Tensor(np.ones((200, 100)), requires_grad=True)
    y = F.dropout(x, 0.3)
    kept = y.numpy() != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.numpy())            # same mask in backward
    assert F.dropout(x, 0.3, training=False) is x
    pyconv.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3).numpy(), y.numpy())
    with pytest.raises(ValueError):
        F.dropout(x, 1.5)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad(mode):
    x, tx = pair(rand(2, 3, 5, 6))
    pad = (2, 1, 3, 0)
    o, to = F.pad(x, pad, mode=mode), TF.pad(tx, pad, mode=mode)
    close(o, to)
    g = rand(*o.shape)
    o.backward(g)
    to.backward(torch.tensor(g))
    close(x.grad, tx.grad)


@pytest.mark.parametrize("act", ["relu", ("leaky_relu", 0.2), "gelu", "sigmoid", "tanh", "silu", "hardswish",
                                 ("elu", 0.5)])
def test_activations(act):
    name, param = (act, None) if isinstance(act, str) else act
    x, tx = pair(rand(3, 7))
    f = getattr(F, name)
    tf = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}.get(name) or getattr(TF, name)
    o = f(x) if param is None else f(x, param)
    to = tf(tx) if param is None else tf(tx, param)
    close(o, to, rtol=1e-7, atol=1e-7)
    g = rand(3, 7)
    o.backward(g)
    to.backward(torch.tensor(g))
    close(x.grad, tx.grad, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("act", [None, "relu", ("leaky_relu", 0.1), "tanh"])
def test_conv_linear_autograd_with_fused_activation(act):
    x, tx = pair(rand(2, 4, 6, 7))
    w, tw = pair(rand(6, 2, 3, 3))
    b, tb = pair(rand(6))
    def tact(y):
        if act is None:
            return y
        name, p = (act, ()) if isinstance(act, str) else (act[0], (act[1],))
        return {"tanh": torch.tanh}.get(name, getattr(TF, name))(y, *p)

    o = F.conv2d(x, w, b, stride=(1, 2), padding=1, groups=2, activation=act)
    to = tact(TF.conv2d(tx, tw, tb, stride=(1, 2), padding=1, groups=2))
    close(o, to, rtol=1e-9, atol=1e-9)
    g = rand(*o.shape)
    o.backward(g)
    to.backward(torch.tensor(g))
    for p, tp in ((x, tx), (w, tw), (b, tb)):
        close(p.grad, tp.grad, rtol=1e-9, atol=1e-9)
    # linear
    a, ta = pair(rand(5, 4))
    lw, tlw = pair(rand(3, 4))
    o = F.linear(a, lw, activation=act)
    to = tact(TF.linear(ta, tlw))
    close(o, to)
    o.sum().backward()
    to.sum().backward()
    close(a.grad, ta.grad)
    close(lw.grad, tlw.grad)


def test_conv_transpose_maxpool_unpool_autograd():
    x, tx = pair(rand(2, 4, 5, 5))
    w, tw = pair(rand(4, 3, 3, 3))
    o = F.conv_transpose2d(x, w, None, stride=2, padding=1, output_padding=1)
    to = TF.conv_transpose2d(tx, tw, None, stride=2, padding=1, output_padding=1)
    close(o, to, rtol=1e-9, atol=1e-9)
    p, idx = F.max_pool2d(o, 2, return_indices=True)
    tp, tidx = TF.max_pool2d(to, 2, return_indices=True)
    close(p, tp, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    u = F.max_unpool2d(p * 2.0, idx, 2, output_size=o.shape[-2:])
    tu = TF.max_unpool2d(tp * 2.0, tidx, 2, output_size=to.shape[-2:])
    close(u, tu, rtol=1e-9, atol=1e-9)
    g = rand(*u.shape)
    (u * Tensor(g)).sum().backward()
    (tu * torch.tensor(g)).sum().backward()
    close(x.grad, tx.grad, rtol=1e-9, atol=1e-9)
    close(w.grad, tw.grad, rtol=1e-9, atol=1e-9)


def test_array_level_backwards_match_torch():
    x = rand(2, 3, 6, 6)
    g = rand(2, 3, 3, 3)
    tx = torch.tensor(x, requires_grad=True)
    TF.avg_pool2d(tx, 3, 2, 1).backward(torch.tensor(g))
    close(F.avg_pool2d_backward(g, x, 3, 2, 1), tx.grad)
    tx.grad = None
    TF.adaptive_avg_pool2d(tx, 3).backward(torch.tensor(g))
    close(F.adaptive_avg_pool2d_backward(g, x, 3), tx.grad)
    gs = rand(2, 3, 6, 6)
    tx.grad = None
    torch.softmax(tx, 1).backward(torch.tensor(gs))
    close(F.softmax_backward(gs, x, 1), tx.grad)
    tx.grad = None
    torch.log_softmax(tx, 1).backward(torch.tensor(gs))
    close(F.log_softmax_backward(gs, x, 1), tx.grad)


def test_float32_and_dtype_errors():
    x = rand(2, 3, dtype=np.float32)
    assert F.softmax(x, 1).dtype == np.float32
    assert F.cross_entropy(x, np.array([0, 2])).dtype == np.float32
    with pytest.raises(TypeError, match="mse_loss"):
        F.mse_loss(x, rand(2, 3))
    with pytest.raises(TypeError, match="avg_pool2d"):
        F.avg_pool2d(np.ones((1, 1, 4, 4), np.int32), 2)
    with pytest.raises(ValueError, match="avg_pool2d"):
        F.avg_pool2d(rand(1, 1, 4, 4), 2, padding=2)


# ----------------------------------------------------------------------------- randomized sweeps

from hypothesis import given, strategies as st  # noqa: E402


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 9))
    W = draw(st.integers(max(1, kw - 2 * pw), 9))
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kernel_size=(kh, kw),
                stride=(sh, sw), padding=(ph, pw), ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()), divisor_override=draw(st.sampled_from([None, 3])))


@given(pool_case())
def test_avg_pool2d_sweep(case):
    shape = case.pop("shape")
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    to = TF.avg_pool2d(tx, **case)
    o = F.avg_pool2d(x, **case)
    close(o, to)
    g = np.random.default_rng(1).standard_normal(to.shape)
    to.backward(torch.tensor(g))
    close(F.avg_pool2d_backward(g, x, **case), tx.grad)


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 6), st.integers(1, 6))
def test_adaptive_avg_pool2d_sweep(H, W, oh, ow):
    x = np.random.default_rng(H * 10 + W).standard_normal((2, 2, H, W))
    tx = torch.tensor(x, requires_grad=True)
    to = TF.adaptive_avg_pool2d(tx, (oh, ow))
    close(F.adaptive_avg_pool2d(x, (oh, ow)), to)
    g = np.ones(to.shape)
    to.backward(torch.tensor(g))
    close(F.adaptive_avg_pool2d_backward(g, x, (oh, ow)), tx.grad)


# ----------------------------------------------------------------------------- fuzz regressions
# Bugs found by tests/test_fuzz.py: each case compared with torch (same result, or both reject).

def _torch_rejects(fn):
    with pytest.raises((RuntimeError, TypeError, ValueError, IndexError)):
        fn()


def test_avg_pool2d_zero_channels_rejected_like_torch():
    for shape in [(2, 0, 7, 10), (0, 5, 5)]:
        _torch_rejects(lambda: TF.avg_pool2d(torch.zeros(shape), 2))
        with pytest.raises(ValueError, match="avg_pool2d: input expects non-zero channels"):
            F.avg_pool2d(np.zeros(shape), 2)


@pytest.mark.parametrize("shape", [(0, 3, 5, 1), (1, 1, 5, 1), (2, 2, 1, 2)])
def test_avg_pool2d_kernel_beyond_input_with_ceil_mode(shape):
    # torch accepts a kernel larger than the input when ceil_mode gives an output of >= 1
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    for cip in (False, True):
        to = TF.avg_pool2d(torch.tensor(x), 3, 3, 0, True, cip)
        o = F.avg_pool2d(x, 3, 3, 0, True, cip)
        assert o.shape == tuple(to.shape)
        close(o, to)
    _torch_rejects(lambda: TF.avg_pool2d(torch.tensor(x), 3, 3, 0, False))
    with pytest.raises(ValueError, match="avg_pool2d: output size is too small"):
        F.avg_pool2d(x, 3, 3, 0, False)


def test_avg_pool2d_big_endian_gives_native_dtype():
    x = rand(1, 1, 4, 4, dtype=np.float32).astype(">f4")
    o = F.avg_pool2d(x, (4, 2), ceil_mode=True)
    assert o.dtype == np.float32
    close(o, TF.avg_pool2d(torch.tensor(x.astype(np.float32)), (4, 2), ceil_mode=True), rtol=1e-6)
    assert F.softmax(x, 1).dtype == np.float32


def test_pool_flags_and_int32_params_checked_like_torch():
    x = rand(1, 2, 6, 6)
    for bad in ([1.0, 2.0], (1, "a"), 1, None):
        _torch_rejects(lambda: TF.avg_pool2d(torch.tensor(x), 2, ceil_mode=bad))
        with pytest.raises(TypeError, match="avg_pool2d: ceil_mode must be a bool"):
            F.avg_pool2d(x, 2, ceil_mode=bad)
        with pytest.raises(TypeError, match="avg_pool2d: count_include_pad must be a bool"):
            F.avg_pool2d(x, 2, count_include_pad=bad)
        _torch_rejects(lambda: TF.max_pool2d(torch.tensor(x), 2, ceil_mode=bad))
        with pytest.raises(TypeError, match="max_pool2d: ceil_mode must be a bool"):
            F.max_pool2d(x, 2, ceil_mode=bad)
    for bad in (1.5, "2"):
        _torch_rejects(lambda: TF.avg_pool2d(torch.tensor(x), bad))
        with pytest.raises(TypeError, match="avg_pool2d: kernel_size"):
            F.avg_pool2d(x, bad)
    _torch_rejects(lambda: TF.avg_pool2d(torch.tensor(x), 2, (2**62, 2**62)))
    with pytest.raises(ValueError, match="avg_pool2d: .*32-bit"):
        F.avg_pool2d(x, 2, (2**62, 2**62))


def test_adaptive_avg_pool2d_empty_input_huge_output_size():
    # no window arrays of the output size are built for an empty input
    to = TF.adaptive_avg_pool2d(torch.zeros(0, 2, 3, 2), (2**28, 3))
    o = F.adaptive_avg_pool2d(np.zeros((0, 2, 3, 2)), (2**28, 3))
    assert o.shape == tuple(to.shape) and o.dtype == np.float64
    # torch's shape (0, 0, 2**31 - 1, 2**31 - 1) has no numpy array: a clear error, at once
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output shape"):
        F.adaptive_avg_pool2d(np.zeros((0, 0, 3, 2)), 2**31 - 1)


def test_batch_norm_non_array_arguments_are_clear_errors():
    x = rand(2, 3, 4)
    with pytest.raises(TypeError, match="batch_norm: running_mean"):
        F.batch_norm(x, 0.5, np.ones(3))
    with pytest.raises(TypeError, match="batch_norm: running_var"):
        F.batch_norm(x, np.zeros(3), "mean")
    with pytest.raises(TypeError, match="batch_norm: eps"):
        F.batch_norm(x, np.zeros(3), np.ones(3), eps="mean")
    with pytest.raises(TypeError, match="batch_norm_backward: grad_output"):
        F.batch_norm_backward("mean", x, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="batch_norm_backward: grad_output expects"):
        F.batch_norm_backward(0.5, x, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="batch_norm_backward: grad_output expects"):
        F.batch_norm_backward(rand(2, 3), x, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="batch_norm_backward: running_mean and running_var"):
        F.batch_norm_backward(x, x)
    # and the valid call still matches torch
    to = TF.batch_norm(torch.tensor(x), torch.zeros(3, dtype=torch.float64),
                       torch.ones(3, dtype=torch.float64))
    close(F.batch_norm(x, np.zeros(3), np.ones(3)), to)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_dim_type_range_0d_and_empty_like_torch(fn):
    pf, tf = getattr(F, fn), getattr(TF, fn)
    for x in (np.array(1.5), rand(3)):
        for dim in (1.5, True, np.bool_(True), np.float64(0.0)):
            _torch_rejects(lambda: tf(torch.tensor(x), dim=dim))
            with pytest.raises(TypeError, match=f"{fn}: dim expects an int"):
                pf(x, dim=dim)
    for dim in (1, -2):  # out of range for a 0-d array
        _torch_rejects(lambda: tf(torch.tensor(1.5), dim=dim))
        with pytest.raises(ValueError, match=f"{fn}: dim expects an int in"):
            pf(np.array(1.5), dim=dim)
    for v in (1.5, np.inf, -np.inf, np.nan):  # 0-d: NaN/Inf propagate as in torch
        o = pf(np.array(v), dim=np.int64(0))
        assert isinstance(o, np.ndarray) and o.shape == ()
        np.testing.assert_array_equal(o, tf(torch.tensor(v), dim=0).numpy())
    for shape, dim in (((0, 3), 1), ((3, 0), 0), ((2, 0, 4), -1)):
        o = pf(np.zeros(shape, np.float32), dim=dim)
        assert o.shape == shape and o.dtype == np.float32


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_backward_validates_grad_output(fn):
    back = getattr(F, fn + "_backward")
    x = rand(2, 3)
    with pytest.raises(TypeError, match=f"{fn}_backward: grad_output"):
        back(3, x, 1)
    with pytest.raises(ValueError, match=f"{fn}_backward: grad_output expects"):
        back(rand(3), x, 1)
    for v in (2.0, np.inf):  # 0-d
        tx = torch.tensor(v, requires_grad=True)
        getattr(TF, fn)(tx, 0).backward(torch.tensor(1.0, dtype=torch.float64))
        o = back(np.array(1.0), np.array(v), 0)
        assert isinstance(o, np.ndarray) and o.shape == ()
        np.testing.assert_array_equal(o, tx.grad.numpy())


@pytest.mark.parametrize("fn", ["mse_loss", "l1_loss"])
def test_pointwise_loss_none_on_0d_is_an_array(fn):
    x, t = np.array(1.5), np.array(-0.5)
    to = getattr(TF, fn)(torch.tensor(x), torch.tensor(t), reduction="none")
    o = getattr(F, fn)(x, t, reduction="none")
    assert isinstance(o, np.ndarray) and o.shape == () and o.dtype == np.float64
    close(o, to)
    gi, gt = getattr(F, fn + "_backward")(np.array(1.0), x, t, "none")
    assert isinstance(gi, np.ndarray) and isinstance(gt, np.ndarray) and gi.shape == ()


def test_pad_amounts_must_be_ints_like_torch():
    x = rand(2, 3, 4)
    for bad in ((1.5, 1), (float("inf"), 0), (True, 1), 3, (1, None)):
        _torch_rejects(lambda: TF.pad(torch.tensor(x), bad))
        with pytest.raises(TypeError, match="pad: pad"):
            F.pad(x, bad)
    close(F.pad(x, (np.int64(1), 1)), TF.pad(torch.tensor(x), (np.int64(1), 1)))
    with pytest.raises(ValueError, match="pad: input expects at least 2 dimensions"):
        F.pad(rand(4), (1, 1))


def test_adaptive_avg_pool2d_output_size_types_like_torch():
    x = rand(1, 1, 9, 7)
    for bad in (None, [1.0, 2.0], (True, 2), 1.5):
        _torch_rejects(lambda: TF.adaptive_avg_pool2d(torch.tensor(x), bad))
        with pytest.raises(TypeError, match="adaptive_avg_pool2d: output_size"):
            F.adaptive_avg_pool2d(x, bad)
    for ok in ((None, 3), [2, None], 4, (np.int64(2), 3)):
        close(F.adaptive_avg_pool2d(x, ok),
              TF.adaptive_avg_pool2d(torch.tensor(x), tuple(int(v) if v is not None else None
                                                            for v in ok)
                                     if isinstance(ok, (list, tuple)) else ok))
