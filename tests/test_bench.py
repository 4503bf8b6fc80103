"""The benchmark harness end to end on tiny shapes. Structure only: no timing is asserted."""

import json
import math
import os
import subprocess
import sys

import pytest

from pyconv.bench import main
from pyconv.bench.suites import classify, conv_flops, pool_out
from pyconv.bench.timing import TimingConfig, geomean, measure

FAST = ["--quick", "--threads", "1", "--target", "0.002", "--no-progress", "--quiet"]

RESULT_FIELDS = {"id", "suite", "class", "name", "op", "direction", "shape", "status",
                 "flops", "bytes", "unit", "reference"}


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The harness sets torch's thread count too; do not leak it into other tests."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _hand_flops(N, C, H, W, K, R, S, pad, stride, groups=1, dil=1):
    P = (H + 2 * pad - dil * (R - 1) - 1) // stride + 1
    Q = (W + 2 * pad - dil * (S - 1) - 1) // stride + 1
    return 2 * N * K * P * Q * (C // groups) * R * S


def _check_ok_result(r):
    t = r["times"]["pyconv"]
    assert t["median_s"] > 0 and t["reps"] >= 5 and len(t["samples_s"]) == t["reps"]
    work = r["flops"] or r["bytes"]
    assert r["unit"] == ("GFLOP/s" if r["flops"] else "GB/s")
    assert r["pyconv_rate"] == pytest.approx(work / t["median_s"] / 1e9)
    if r["reference"] is not None:
        tr = r["times"]["reference"]["median_s"]
        assert tr > 0
        assert r["ratio"] > 0
        assert r["ratio"] == pytest.approx(tr / t["median_s"])
        assert r["reference_rate"] == pytest.approx(work / tr / 1e9)
    if r.get("max_rel_err") is not None:
        assert r["max_rel_err"] < r["err_tol"], r["id"]


def test_smoke_suite_end_to_end(tmp_path):
    js, md, png = tmp_path / "out.json", tmp_path / "out.md", tmp_path / "out.png"
    plot = ["--plot", str(png)] if _has_matplotlib() else []
    report = main(["--suite", "smoke", *FAST, "--json", str(js), "--markdown", str(md), *plot])
    if plot:
        assert png.stat().st_size > 0
    data = json.loads(js.read_text())
    meta = data["meta"]
    for k in ("date", "cpu", "cores", "threads", "pyconv_isa", "torch_version", "order",
              "sleep_ms", "baseline"):
        assert k in meta
    assert meta["threads"] == 1 and meta["quick"] is True
    assert isinstance(meta["pyconv_isa"], str) and meta["pyconv_isa"]

    results = data["results"]
    assert len(results) == len(report["results"]) > 0
    assert {r["suite"] for r in results} == {"smoke"}
    for r in results:
        assert RESULT_FIELDS <= set(r), r
        assert r["status"] in ("ok", "skipped", "error")
        if r["status"] == "ok":
            _check_ok_result(r)
        else:   # a one-line note says why
            assert r["note"] and "\n" not in r["note"]
    assert not [r for r in results if r["status"] == "error"], \
        [(r["id"], r["note"]) for r in results if r["status"] == "error"]

    # conv2d exists from the foundation on: its three directions ran, with the hand FLOPs
    conv = {r["direction"]: r for r in results if r["name"] == "conv.3x3" and r["op"] == "conv2d"}
    assert set(conv) == {"fwd", "bwd_data", "bwd_weight"}
    for r in conv.values():
        assert r["status"] == "ok"
        assert r["flops"] == 2 * 2 * 4 * 8 * 8 * 8 * 3 * 3 == _hand_flops(2, 8, 8, 8, 4, 3, 3, 1, 1)
    dw = [r for r in results if r["name"] == "conv.dw"]
    assert all(r["flops"] == 2 * 2 * 4 * 4 * 4 * 1 * 3 * 3 for r in dw)   # groups=C, stride 2

    # memory-bound cases count bytes
    for r in results:
        if r["op"] == "max_pool2d":
            assert r["flops"] is None and r["bytes"] > 0
        if r["op"] in ("relu", "gelu"):
            n = 2 * 3 * 8 * 8
            assert r["bytes"] == (8 * n if r["direction"] == "fwd" else 12 * n)

    # summary: geometric mean of the case ratios per suite/class/direction
    summary = data["summary"]
    assert summary
    for s in summary:
        rs = [r for r in results if r["status"] == "ok" and r.get("ratio")
              and r["suite"] == s["suite"] and r["class"] == s["cls"]
              and r["reference"] == s["reference"]
              and (r["direction"] == s["direction"] or
                   (s["direction"] == "bwd" and r["direction"] in ("bwd_data", "bwd_weight")))]
        assert len(rs) == s["n"] > 0
        assert s["geomean_ratio"] > 0
        assert s["geomean_ratio"] == pytest.approx(
            math.exp(sum(math.log(r["ratio"]) for r in rs) / len(rs)))
        assert s["min_ratio"] == pytest.approx(min(r["ratio"] for r in rs))

    text = md.read_text()
    assert "| suite | class | dir |" in text and "## smoke" in text
    assert meta["cpu"] in text


def test_shapes_csv_batch_limit_filter(tmp_path, capsys):
    csv = tmp_path / "tiny.csv"
    csv.write_text("name,N,C,H,W,K,R,S,pad_h,pad_w,stride_h,stride_w,groups\n"
                   "a,64,4,9,7,6,3,3,1,1,2,2,1\n"
                   "b,64,6,8,8,6,3,3,1,1,1,1,3\n"
                   "c,64,4,8,8,4,1,1,0,0,1,1,\n")
    js = tmp_path / "s.json"
    main(["--shapes", str(csv), "--batch", "2", "--limit", "2", "--direction", "fwd",
          *FAST[:-1], "--json", str(js)])
    out = capsys.readouterr().out
    assert "== shapes:tiny ==" in out and "geometric mean" in out
    results = json.loads(js.read_text())["results"]
    assert [r["name"] for r in results] == ["a", "b"]          # --limit 2
    assert {r["direction"] for r in results} == {"fwd"}
    a, b = results
    assert a["batch"] == 2                                       # --batch overrides N
    assert a["flops"] == _hand_flops(2, 4, 9, 7, 6, 3, 3, 1, 2) == 2 * 2 * 6 * 5 * 4 * 4 * 9
    assert b["flops"] == _hand_flops(2, 6, 8, 8, 6, 3, 3, 1, 1, groups=3)
    assert b["class"] == "grouped"
    for r in results:
        assert r["status"] == "ok", r.get("note")
        _check_ok_result(r)

    rep = main(["--shapes", str(csv), "--filter", "tiny/c/", "--batch", "1", *FAST])
    assert [(r["name"], r["direction"]) for r in rep["results"]] == \
        [("c", "fwd"), ("c", "bwd_data"), ("c", "bwd_weight")]
    assert rep["results"][0]["class"] == "1x1"


def test_numpy_baseline_and_order(tmp_path):
    rep = main(["--suite", "smoke", "--filter", r"conv\.3x3/fwd", "--baseline", "numpy",
                "--order", "torch-first", "--sleep", "0.1", *FAST])
    (r,) = rep["results"]
    assert r["status"] == "ok" and r["reference"] == "numpy"
    _check_ok_result(r)
    assert r["max_rel_err"] is not None
    assert rep["meta"]["order"] == "torch-first" and rep["meta"]["sleep_ms"] == 0.1
    rep = main(["--suite", "smoke", "--filter", r"conv\.3x3/bwd_data", "--baseline", "none",
                *FAST])
    (r,) = rep["results"]
    assert r["status"] == "ok" and r["reference"] is None and r["ratio"] is None


def test_measure_interleaves_in_the_requested_order():
    calls = []
    fns = [("pyconv", lambda: calls.append("p")), ("reference", lambda: calls.append("r"))]
    cfg = TimingConfig(target_s=0.0, min_reps=5, warmup=1, first="reference")
    out = measure(fns, cfg)
    assert calls == ["r", "p"] * 5
    assert all(len(s.times) == 5 and s.median >= 0 for s in out.values())


def test_formulas():
    assert conv_flops(64, 3, 32, 32, 32, 5, 5) == 2 * 64 * 32 * 32 * 32 * 3 * 25
    assert conv_flops(4, 128, 128, 56, 56, 3, 3, groups=32) == 2 * 4 * 128 * 56 * 56 * 4 * 9
    assert classify(64, 64, 3, 3, (1, 1), (1, 1), 64) == "depthwise"
    assert classify(3, 64, 7, 7, (2, 2), (1, 1), 1) == "stem"
    assert classify(64, 64, 3, 3, (1, 1), (2, 2), 1) == "dilated"
    assert pool_out(112, 3, 1, 2, 1, False) == 56
    assert pool_out(55, 3, 0, 2, 1, True) == 27
    assert pool_out(5, 3, 0, 3, 1, True) == 2
    assert geomean([1.0, 4.0]) == pytest.approx(2.0) and geomean([]) is None


def test_list_and_help(tmp_path):
    rep = main(["--list", "--suite", "conv2d", "--suite", "max_pool2d"])
    ids = rep["cases"]
    assert "conv2d/cifar10.conv1/fwd" in ids and "max_pool2d/resnet.stem.3x3s2p1/bwd" in ids
    # run from elsewhere so that the installed package, not the source tree, is imported
    p = subprocess.run([sys.executable, "-m", "pyconv.bench", "--help"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert p.returncode == 0 and "--shapes" in p.stdout and "--order" in p.stdout


def test_runs_both_openmp_runtimes_with_a_short_spin(tmp_path):
    # python -m pyconv.bench starts itself again with GOMP_SPINCOUNT set (libgomp reads it
    # when it loads), unless the caller set it or OMP_WAIT_POLICY.
    def meta_env(**extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
        env.update(extra)
        js = tmp_path / "out.json"
        p = subprocess.run([sys.executable, "-m", "pyconv.bench", "--suite", "smoke",
                            "--baseline", "none", "--limit", "1", *FAST, "--json", str(js)],
                           cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(js.read_text())["meta"]["omp_env"]

    from pyconv.bench.__main__ import SPINCOUNT
    assert meta_env()["GOMP_SPINCOUNT"] == SPINCOUNT
    assert meta_env(GOMP_SPINCOUNT="5000")["GOMP_SPINCOUNT"] == "5000"
    got = meta_env(OMP_WAIT_POLICY="passive")
    assert got["OMP_WAIT_POLICY"] == "passive" and "GOMP_SPINCOUNT" not in got


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_matplotlib(), reason="matplotlib is installed (plot tested above)")
def test_plot_without_matplotlib_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="matplotlib"):
        main(["--suite", "smoke", "--plot", str(tmp_path / "p.png"), *FAST])
