"""pyconv.nn against torch.nn: reprs, state dicts, load errors, layers forward and backward, init."""
import collections
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyconv  # noqa: E402
from pyconv import Tensor, nn  # noqa: E402

tnn = torch.nn
rng = np.random.default_rng(7)


def rand(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def close(a, b, rtol=1e-9, atol=1e-10):
    a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def both(make):
    """make(nn_module_namespace) built in pyconv and torch, pyconv loaded with torch's weights, float64."""
    tm = make(tnn).double()
    pm = make(nn).double()
    pm.load_state_dict(tm.state_dict())
    return pm, tm


def check_fwd_bwd(pm, tm, x, rtol=1e-9, atol=1e-10, **kw):
    px = Tensor(x.copy(), requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    po, to = pm(px, **kw), tm(tx, **kw)
    close(po, to, rtol, atol)
    g = rand(*to.shape)
    po.backward(g)
    to.backward(torch.tensor(g))
    close(px.grad, tx.grad, rtol, atol)
    for (n, p), (tn, tp) in zip(pm.named_parameters(), tm.named_parameters()):
        assert n == tn
        close(p.grad, tp.grad, rtol, atol)


def classic(m):
    return m.Sequential(m.Conv2d(3, 32, 5, padding=2), m.MaxPool2d(2), m.Conv2d(32, 32, 5, padding=2),
                        m.MaxPool2d(2), m.Conv2d(32, 64, 5, padding=2), m.MaxPool2d(2), m.Flatten(),
                        m.Linear(1024, 64), m.Linear(64, 10))


class Block:
    """A model with nested modules, a buffer-carrying layer and a ModuleList/ModuleDict, in either library."""

    def __new__(cls, m):
        class Net(m.Module):
            def __init__(self):
                super().__init__()
                self.features = m.Sequential(collections.OrderedDict([
                    ("conv", m.Conv2d(2, 4, 3, padding=1, bias=False)), ("bn", m.BatchNorm2d(4)),
                    ("act", m.ReLU())]))
                self.heads = m.ModuleList([m.Linear(4, 3), m.Linear(3, 2)])
                self.extra = m.ModuleDict({"drop": m.Dropout(0.2), "pool": m.AdaptiveAvgPool2d(1)})

            def forward(self, x):
                x = self.extra["pool"](self.features(x)).flatten(1)
                for h in self.heads:
                    x = h(x)
                return x
        return Net()


# ----------------------------------------------------------------------------- module machinery

def test_repr_matches_torch():
    for make in (classic, Block):
        assert repr(make(nn)) == repr(make(tnn))
    mods = lambda m: [m.Conv2d(4, 8, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=2, bias=False,  # noqa
                               padding_mode="reflect"),
                      m.Conv2d(3, 3, 4, padding="same"), m.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1),
                      m.MaxPool2d(3, 2, 1, ceil_mode=True), m.MaxUnpool2d(2), m.AvgPool2d(3, 1, 1),
                      m.AdaptiveAvgPool2d((2, 3)), m.ReLU(), m.LeakyReLU(0.2), m.ELU(0.5), m.GELU("tanh"),
                      m.SiLU(), m.Sigmoid(), m.Tanh(), m.Hardswish(), m.Linear(3, 4, bias=False), m.Flatten(0, 2),
                      m.Dropout(0.1), m.BatchNorm2d(5, momentum=None), m.BatchNorm2d(2, bias=False), m.CrossEntropyLoss(), m.MSELoss(),
                      m.L1Loss()]
    for a, b in zip(mods(nn), mods(tnn)):
        assert repr(a) == repr(b)
    ml = lambda m: m.ModuleList([m.ReLU(), m.ReLU(), m.Tanh(), m.Linear(2, 2)])  # noqa: E731
    assert repr(ml(nn)) == repr(ml(tnn))


def test_state_dict_keys_shapes_and_traversal_match_torch():
    for make in (classic, Block):
        pm, tm = make(nn), make(tnn)
        psd, tsd = pm.state_dict(), tm.state_dict()
        assert list(psd) == list(tsd)
        for k in tsd:
            assert tuple(psd[k].shape) == tuple(tsd[k].shape), k
            assert np.asarray(psd[k]).dtype == tsd[k].numpy().dtype, k
        assert [n for n, _ in pm.named_parameters()] == [n for n, _ in tm.named_parameters()]
        assert [n for n, _ in pm.named_modules()] == [n for n, _ in tm.named_modules()]
        assert [n for n, _ in pm.named_children()] == [n for n, _ in tm.named_children()]
        assert len(list(pm.modules())) == len(list(tm.modules()))
        assert [n for n, _ in pm.named_buffers()] == [n for n, _ in tm.named_buffers()]


def test_load_state_dict_from_torch_and_errors():
    pm, tm = Block(nn), Block(tnn)
    res = pm.load_state_dict(tm.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(np.asarray(pm.state_dict()[k]), v.numpy())
    before = {k: np.array(v) for k, v in pm.state_dict().items()}

    sd = dict(tm.state_dict())
    del sd["features.conv.weight"]
    sd["bogus.weight"] = torch.zeros(3)
    with pytest.raises(RuntimeError) as e:
        pm.load_state_dict(sd)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "features.conv.weight"' in msg
    assert 'Unexpected key(s) in state_dict: "bogus.weight"' in msg
    with pytest.raises(RuntimeError) as et:                       # torch says the same
        tm.load_state_dict(sd)
    assert 'Missing key(s) in state_dict: "features.conv.weight"' in str(et.value)
    res = pm.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["features.conv.weight"] and res.unexpected_keys == ["bogus.weight"]

    sd = {k: v.clone() for k, v in tm.state_dict().items()}
    sd["heads.0.weight"] = torch.zeros(3, 5)
    sd["features.bn.running_mean"] = torch.full((4,), 7.0)
    pm.load_state_dict({k: v for k, v in tm.state_dict().items()})
    before = {k: np.array(v) for k, v in pm.state_dict().items()}
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for heads.0.weight.*\(3, 5\).*\(3, 4\)"):
            pm.load_state_dict(sd, strict=strict)
        with pytest.raises(ValueError):                           # also a ValueError (pyconv's bad input)
            pm.load_state_dict(sd, strict=strict)
    for k, v in pm.state_dict().items():                          # a failed load changes nothing
        np.testing.assert_array_equal(np.asarray(v), before[k])


def test_train_eval_zero_grad_to_and_containers():
    m = Block(nn)
    assert m.training and all(c.training for c in m.modules())
    m.eval()
    assert not any(c.training for c in m.modules())
    m.train()
    assert all(c.training for c in m.modules())
    params = list(m.parameters())
    m.eval()
    out = m(Tensor(rand(2, 2, 5, 5, dtype=np.float32)))
    out.sum().backward()
    assert all(p.grad is not None for p in params)
    m.zero_grad()
    assert all(p.grad is None for p in params)
    m.to(np.float64)
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.features.bn.running_mean.dtype == np.float64
    assert m.features.bn.num_batches_tracked.dtype == np.int64
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())
    assert m.to("cpu") is m
    seq = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.Sigmoid())
    assert len(seq) == 3 and isinstance(seq[1], nn.Tanh) and isinstance(seq[-1], nn.Sigmoid)
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Tanh())
    ml += [nn.SiLU()]
    assert len(ml) == 3 and isinstance(ml[2], nn.SiLU)
    md = nn.ModuleDict({"a": nn.ReLU()})
    md["b"] = nn.Linear(2, 2)
    assert list(md.keys()) == ["a", "b"] and "b" in md
    assert [n for n, _ in md.named_parameters()] == ["b.weight", "b.bias"]


def test_parameter_registration_rules():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.zeros(3, np.float32))
            self.sub = nn.Linear(2, 2)
            self.plain = np.zeros(2)
    m = M()
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    assert "plain" not in m.state_dict()
    with pytest.raises(TypeError):
        m.w = np.zeros(3)
    m.register_buffer("buf", np.ones(2, np.float32))
    assert "buf" in m.state_dict()
    m.register_buffer("tmp", np.ones(2, np.float32), persistent=False)
    assert "tmp" not in m.state_dict()
    assert m.w.requires_grad and isinstance(m.w, Tensor)


# ----------------------------------------------------------------------------- layers vs torch

@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("cfg", [dict(padding=1), dict(padding=(2, 1), stride=2), dict(padding="same", dilation=2),
                                 dict(padding="valid", groups=2)])
def test_conv2d_padding_modes(mode, cfg):
    k = 4 if cfg.get("padding") == "same" else 3
    pm, tm = both(lambda m: m.Conv2d(4, 6, k, padding_mode=mode, **cfg))
    check_fwd_bwd(pm, tm, rand(2, 4, 9, 8))
    check_fwd_bwd(pm, tm, rand(4, 9, 8))                              # unbatched


def test_conv_transpose2d_output_size():
    pm, tm = both(lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2))
    x = rand(2, 4, 5, 6)
    check_fwd_bwd(pm, tm, x)
    for size in ([10, 12], (2, 6, 9, 11)):
        check_fwd_bwd(pm, tm, x, output_size=size)
    with pytest.raises(ValueError, match="output size"):
        pm(Tensor(x), output_size=(13, 11))
    with pytest.raises(ValueError):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")


def test_pools_and_unpool():
    pm, tm = both(lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True))
    check_fwd_bwd(pm, tm, rand(2, 3, 9, 8))
    pool, tpool = nn.MaxPool2d(2, return_indices=True), tnn.MaxPool2d(2, return_indices=True)
    unpool, tunpool = nn.MaxUnpool2d(2), tnn.MaxUnpool2d(2)
    x = rand(2, 3, 6, 7)
    px, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (o, i), (to, ti) = pool(px), tpool(tx)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    u, tu = unpool(o, i, output_size=(6, 7)), tunpool(to, ti, output_size=(6, 7))
    close(u, tu)
    (u * u).sum().backward()
    (tu * tu).sum().backward()
    close(px.grad, tx.grad)
    for make in (lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                 lambda m: m.AdaptiveAvgPool2d((3, None)), lambda m: m.Flatten(), lambda m: m.Flatten(0, 2)):
        check_fwd_bwd(*both(make), rand(2, 3, 7, 5))


@pytest.mark.parametrize("make", [lambda m: m.ReLU(), lambda m: m.LeakyReLU(0.3), lambda m: m.ELU(0.7),
                                  lambda m: m.GELU(), lambda m: m.GELU("tanh"), lambda m: m.SiLU(),
                                  lambda m: m.Sigmoid(), lambda m: m.Tanh(), lambda m: m.Hardswish(),
                                  lambda m: m.Linear(5, 3), lambda m: m.Linear(5, 2, bias=False)])
def test_elementwise_and_linear_layers(make):
    check_fwd_bwd(*both(make), rand(4, 3, 5), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batchnorm2d_train_eval(momentum, affine, track):
    pm, tm = both(lambda m: m.BatchNorm2d(3, momentum=momentum, affine=affine, track_running_stats=track))
    for step in range(3):
        check_fwd_bwd(pm, tm, rand(4, 3, 5, 5) * (step + 1) + step)
        pm.zero_grad()
        tm.zero_grad()
    for k, v in tm.state_dict().items():
        close(pm.state_dict()[k], v)
    pm.eval()
    tm.eval()
    check_fwd_bwd(pm, tm, rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="4D"):
        pm(Tensor(rand(3, 4, 4)))


def test_dropout_module():
    d = nn.Dropout(0.5)
    x = Tensor(np.ones((100, 100), np.float32))
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


def test_losses():
    x = rand(6, 4)
    t = rng.integers(0, 4, 6)
    y = rand(6, 4)
    w = np.abs(rand(4)) + 0.1
    cases = [(nn.CrossEntropyLoss(), tnn.CrossEntropyLoss(), t),
             (nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1, reduction="sum"),
              tnn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=1, label_smoothing=0.1, reduction="sum"), t),
             (nn.MSELoss(), tnn.MSELoss(), y), (nn.L1Loss(reduction="sum"), tnn.L1Loss(reduction="sum"), y)]
    for pl, tl, target in cases:
        px, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        lo, tlo = pl(px, Tensor(target)), tl(tx, torch.tensor(target))
        close(lo, tlo)
        lo.backward()
        tlo.backward()
        close(px.grad, tx.grad)
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")


# ----------------------------------------------------------------------------- initialisation

def test_default_init_distributions_and_seed():
    pyconv.manual_seed(0)
    c = nn.Conv2d(16, 32, 3)
    lin = nn.Linear(200, 100)
    ct = nn.ConvTranspose2d(8, 16, 3)
    for w, b, fan_in in ((c.weight, c.bias, 16 * 9), (lin.weight, lin.bias, 200), (ct.weight, ct.bias, 16 * 9)):
        bound = 1 / math.sqrt(fan_in)            # kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        a = w.numpy()
        assert a.dtype == np.float32
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.95 * bound
        assert abs(a.std() - bound / math.sqrt(3)) < 0.05 * bound
        assert np.abs(b.numpy()).max() <= bound
    # torch's bounds agree
    tc = tnn.Conv2d(16, 32, 3)
    assert np.abs(tc.weight.detach().numpy()).max() <= 1 / math.sqrt(16 * 9)
    pyconv.manual_seed(0)
    c2 = nn.Conv2d(16, 32, 3)
    np.testing.assert_array_equal(c.weight.numpy(), c2.weight.numpy())
    pyconv.manual_seed(1)
    assert not np.array_equal(nn.Conv2d(16, 32, 3).weight.numpy(), c.weight.numpy())
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(3))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="same"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
