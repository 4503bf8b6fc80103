"""pyconv.optim against torch.optim: same parameters and gradients give the same updates step by step."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyconv  # noqa: E402
from pyconv import Tensor, nn, optim  # noqa: E402

rng = np.random.default_rng(11)


def make_params(dtype=np.float64):
    arrays = [rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)]
    p = [nn.Parameter(a.copy()) for a in arrays]
    t = [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays]
    return p, t


def loss_fn(params, data, lib):
    """A non-quadratic loss so that the gradients change with the parameters."""
    w, b = params
    x, y = data
    if lib == "torch":
        h = torch.tanh(torch.tensor(x) @ w + b)
        return ((h - torch.tensor(y)) ** 2).mean() + (w * w).sum() * 0.01
    h = pyconv.functional.tanh(Tensor(x) @ w + b)
    return ((h - Tensor(y)) ** 2).mean() + (w * w).sum() * 0.01


def run_both(make_p, make_t, steps=8, dtype=np.float64, rtol=1e-10):
    p, t = make_params(dtype)
    po, to = make_p(p), make_t(t)
    for step in range(steps):
        data = (rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype))
        po.zero_grad()
        to.zero_grad()
        lp, lt = loss_fn(p, data, "pyconv"), loss_fn(t, data, "torch")
        np.testing.assert_allclose(lp.item(), lt.item(), rtol=rtol)
        lp.backward()
        lt.backward()
        po.step()
        to.step()
        for a, b in zip(p, t):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=rtol)
    return p, t, po, to


SGD_CASES = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
             dict(lr=0.05, momentum=0.8, weight_decay=0.1), dict(lr=0.05, momentum=0.9, nesterov=True),
             dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_torch(kw):
    run_both(lambda p: optim.SGD(p, **kw), lambda t: torch.optim.SGD(t, **kw))


ADAM_CASES = [dict(), dict(lr=0.01, betas=(0.8, 0.99)), dict(lr=0.01, weight_decay=0.1),
              dict(lr=0.01, amsgrad=True), dict(lr=0.02, eps=1e-3, weight_decay=0.05, amsgrad=True)]


@pytest.mark.parametrize("kw", ADAM_CASES)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_adamw_match_torch(name, kw):
    run_both(lambda p: getattr(optim, name)(p, **kw), lambda t: getattr(torch.optim, name)(t, **kw))


def test_float32_adam_close_to_torch():
    run_both(lambda p: optim.Adam(p, lr=0.01), lambda t: torch.optim.Adam(t, lr=0.01), dtype=np.float32, rtol=1e-5)


def test_param_groups_and_state_dict_roundtrip():
    p, t = make_params()
    po = optim.SGD([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.5}], lr=0.1, momentum=0.9)
    to = torch.optim.SGD([{"params": [t[0]]}, {"params": [t[1]], "lr": 0.5}], lr=0.1, momentum=0.9)
    for _ in range(2):
        data = (rng.standard_normal((5, 4)), rng.standard_normal((5, 3)))
        for o, params, lib in ((po, p, "pyconv"), (to, t, "torch")):
            o.zero_grad()
            loss_fn(params, data, lib).backward()
            o.step()
    sd, tsd = po.state_dict(), to.state_dict()
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for k in tsd["state"]:
        np.testing.assert_allclose(sd["state"][k]["momentum_buffer"], tsd["state"][k]["momentum_buffer"].numpy())
    # a fresh optimizer loaded from the state dict continues exactly like the original
    q = [nn.Parameter(a.numpy().copy()) for a in p]
    qo = optim.SGD([{"params": [q[0]]}, {"params": [q[1]]}], lr=1.0, momentum=0.0)
    qo.load_state_dict(sd)
    assert qo.param_groups[1]["lr"] == 0.5 and qo.param_groups[0]["momentum"] == 0.9
    data = (rng.standard_normal((5, 4)), rng.standard_normal((5, 3)))
    for o, params in ((po, p), (qo, q)):
        o.zero_grad()
        loss_fn(params, data, "pyconv").backward()
        o.step()
    for a, b in zip(p, q):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_adam_state_dict_matches_torch_layout():
    p, t, po, to = run_both(lambda p: optim.Adam(p, lr=0.01), lambda t: torch.optim.Adam(t, lr=0.01), steps=3)
    sd, tsd = po.state_dict(), to.state_dict()
    for k in tsd["state"]:
        assert set(sd["state"][k]) == set(tsd["state"][k])
        assert int(sd["state"][k]["step"]) == int(tsd["state"][k]["step"])
        np.testing.assert_allclose(sd["state"][k]["exp_avg_sq"], tsd["state"][k]["exp_avg_sq"].numpy())


def test_zero_grad_and_errors():
    p, _ = make_params()
    o = optim.SGD(p, lr=0.1)
    loss_fn(p, (rng.standard_normal((5, 4)), rng.standard_normal((5, 3))), "pyconv").backward()
    o.zero_grad(set_to_none=False)
    assert all(np.all(x.grad.numpy() == 0) for x in p)
    o.zero_grad()
    assert all(x.grad is None for x in p)
    o.step()                                                  # no grads: nothing happens
    with pytest.raises(ValueError):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD(p[0], lr=0.1)
