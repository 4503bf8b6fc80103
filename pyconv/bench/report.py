"""Machine header, progress bar, and the console / JSON / Markdown / plot outputs."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from collections import OrderedDict

from .timing import geomean


# ---- machine header ------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def openmp_runtimes() -> list[str]:
    """OpenMP runtime libraries mapped into this process (libgomp, libiomp5, libomp)."""
    import re
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                name = os.path.basename(path)
                if re.match(r"lib(gomp|iomp5|omp)\b", name) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def header(env, threads: int, got_threads: dict, cfg: dict) -> dict:
    torch = env.torch
    pc = env.pyconv
    omp_env = {k: v for k, v in os.environ.items()
               if k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_NUM", "OPENBLAS_NUM"))}
    return OrderedDict(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        cpu=cpu_model(),
        cores=os.cpu_count(),
        cores_available=available_cores(),
        threads=threads,
        threads_effective=got_threads,
        pyconv_isa=env.isa(),
        pyconv_version=getattr(pc, "__version__", "unknown") if pc else None,
        torch_version=getattr(torch, "__version__", None) if torch else None,
        numpy_version=__import__("numpy").__version__,
        python=platform.python_version(),
        baseline=env.baseline,
        dtype=str(env.dtype),
        omp_env=omp_env,
        openmp_runtimes=openmp_runtimes(),
        **cfg,
    )


def header_lines(h: dict) -> list[str]:
    te = h.get("threads_effective") or {}
    eff = ", ".join(f"{k} {v}" for k, v in te.items() if v is not None)
    return [
        f"date: {h['date']}",
        f"cpu: {h['cpu']} ({h['cores']} cores, {h['cores_available']} available)",
        f"threads: {h['threads']}" + (f" ({eff})" if eff else ""),
        f"pyconv: {h['pyconv_version']}, isa {h['pyconv_isa']}; torch: {h['torch_version']}; "
        f"numpy: {h['numpy_version']}; python {h['python']}; OpenMP runtimes: "
        + (", ".join(os.path.basename(p) for p in h.get("openmp_runtimes", [])) or "none found"),
        f"baseline: {h['baseline']}, dtype {h['dtype']}, order {h['order']}, "
        f"sleep {h['sleep_ms']} ms, {'quick' if h['quick'] else 'full'} timing "
        f"(~{h['target_s']} s/case, median of >= {h['min_reps']})"
        + (f"; env {' '.join(f'{k}={v}' for k, v in h['omp_env'].items())}"
           if h.get("omp_env") else ""),
    ]


# ---- progress bar --------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr; on a non-terminal, a line every ~10%."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.last_decile = -1
        self.width = 30

    def update(self, done: int, label: str = ""):
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        el = time.monotonic() - self.t0
        eta = el / frac * (1 - frac) if frac > 0 else 0.0
        fill = int(frac * self.width)
        bar = "#" * fill + "-" * (self.width - fill)
        msg = f"[{bar}] {done}/{self.total} {_fmt_dur(el)} eta {_fmt_dur(eta)} {label}"
        if self.tty:
            cols = _term_cols()
            self.stream.write("\r" + msg[:cols - 1].ljust(cols - 1))
            self.stream.flush()
        else:
            dec = int(frac * 10)
            if dec != self.last_decile:
                self.last_decile = dec
                self.stream.write(msg + "\n")
                self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * (_term_cols() - 1) + "\r")
            self.stream.flush()


def _term_cols() -> int:
    try:
        cols = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        cols = 0
    return cols if cols >= 20 else 100


def _fmt_dur(s: float) -> str:
    s = int(s)
    return f"{s // 60}:{s % 60:02d}"


# ---- summary ------------------------------------------------------------------------------

# ../shared/PERF.md's targets: geometric mean of torch_time / pyconv_time per class,
# (forward, backward); backward covers bwd_data and bwd_weight.
TARGETS = {
    "dense": (1.15, 1.5), "1x1": (1.5, 3.0), "stem": (1.2, 3.0), "depthwise": (3.0, 3.0),
    "grouped": (1.5, 1.5), "dilated": (1.2, 1.5), "conv_transpose2d": (1.5, 1.5),
    "max_pool2d": (10.0, 3.0), "activation": (1.5, 1.5), "train": (2.0, 2.0),
    "fused-overhead": (1 / 1.03, None),   # at most 3% over the conv alone
}


def target_for(cls: str, direction: str, reference: str | None) -> float | None:
    if cls not in TARGETS or reference not in ("torch", "pyconv conv2d"):
        return None
    if (cls == "fused-overhead") != (reference == "pyconv conv2d"):
        return None
    fwd, bwd = TARGETS[cls]
    return fwd if direction in ("fwd", "step") else bwd


def summarize(results: list[dict]) -> list[dict]:
    """Geometric mean (and minimum) of the ratio per suite, class and direction.

    Backward-data and backward-weight also get a combined 'bwd' row.
    """
    groups = OrderedDict()
    for r in results:
        if r["status"] != "ok" or r.get("ratio") is None:
            continue
        keys = [(r["suite"], r["class"], r["direction"], r["reference"])]
        if r["direction"] in ("bwd_data", "bwd_weight"):
            keys.append((r["suite"], r["class"], "bwd", r["reference"]))
        for k in keys:
            groups.setdefault(k, []).append(r)
    out = []
    for (suite, cls, d, ref), rs in groups.items():
        ratios = [r["ratio"] for r in rs]
        g = geomean(ratios)
        row = OrderedDict(suite=suite, cls=cls, direction=d, reference=ref, n=len(rs),
                          geomean_ratio=g, min_ratio=min(ratios),
                          min_case=min(rs, key=lambda r: r["ratio"])["name"])
        rates = [r["pyconv_rate"] for r in rs if r.get("pyconv_rate")]
        row["pyconv_rate_geomean"] = geomean(rates)
        row["unit"] = rs[0].get("unit")
        row["target"] = target_for(cls, d, ref)
        if row["target"] is not None and g is not None:
            # PERF.md: the class meets its geometric-mean target and no shape is below 1.0
            floor = 1 / 1.03 if cls == "fused-overhead" else 1.0
            row["meets_target"] = bool(g >= row["target"] and min(ratios) >= floor)
        if cls == "fused-overhead" and g:
            row["overhead_pct"] = (1 / g - 1) * 100
        out.append(row)
    # keep bwd rows right after their bwd_data / bwd_weight rows
    order = {"fwd": 0, "bwd_data": 1, "bwd_weight": 2, "bwd": 3, "step": 4}
    first_seen = OrderedDict()
    for row in out:
        first_seen.setdefault((row["suite"], row["cls"]), len(first_seen))
    out.sort(key=lambda r: (first_seen[(r["suite"], r["cls"])], order.get(r["direction"], 9)))
    return out


# ---- formatting ---------------------------------------------------------------------------

def _ms(s):
    if s is None:
        return "-"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _rate(v):
    return "-" if v is None else (f"{v:.3g}" if v < 100 else f"{v:.0f}")


def _ratio(v):
    return "-" if v is None else f"{v:.2f}"


COLUMNS = ("case", "dir", "shape", "pyconv ms", "ref ms", "pyconv rate", "ref rate", "unit",
           "ratio", "ref")


NOISE = 0.25   # interquartile range / median above which a timing is flagged "~"


def noisy(r) -> bool:
    for t in (r.get("times") or {}).values():
        if t["median_s"] > 0 and t["iqr_s"] / t["median_s"] > NOISE:
            return True
    return False


def _row(r) -> list[str]:
    t = r.get("times") or {}
    rc = [r["name"], r["direction"], r["shape"]]
    if r["status"] != "ok":
        return rc + ["", "", "", "", "", "", f"{r['status']}: {r.get('note', '')}"]
    ratio = _ratio(r.get("ratio"))
    if r.get("overhead_pct") is not None:
        ratio += f" ({r['overhead_pct']:+.1f}%)"
    if noisy(r):
        ratio += " ~"
    err = r.get("max_rel_err")
    if err is not None and err > r.get("err_tol", 1e-3):
        ratio += f" !err {err:.1e}"
    return rc + [_ms(t.get("pyconv", {}).get("median_s")),
                 _ms(t.get("reference", {}).get("median_s")),
                 _rate(r.get("pyconv_rate")), _rate(r.get("reference_rate")),
                 r.get("unit") or "", ratio, r.get("reference") or "-"]


def _table(rows: list[list[str]], headers, left=(0, 1, 2)) -> list[str]:
    w = [len(h) for h in headers]
    for row in rows:
        for i, c in enumerate(row[:len(w) - 1]):
            w[i] = max(w[i], len(c))
    fmt = lambda row: "  ".join(  # noqa: E731
        (c.ljust(w[i]) if i in left or i == len(w) - 1 else c.rjust(w[i]))
        for i, c in enumerate(row)).rstrip()
    return [fmt(list(headers)), fmt(["-" * x for x in w])] + [fmt(r) for r in rows]


def _summary_rows(summary) -> list[list[str]]:
    rows = []
    for s in summary:
        extra = f"overhead {s['overhead_pct']:+.1f}%" if s.get("overhead_pct") is not None \
            else ""
        tgt = "-" if s.get("target") is None else \
            f"{s['target']:.2f} {'ok' if s.get('meets_target') else 'MISS'}"
        rows.append([s["suite"], s["cls"], s["direction"], str(s["n"]),
                     _ratio(s["geomean_ratio"]), _ratio(s["min_ratio"]), tgt, s["min_case"],
                     _rate(s.get("pyconv_rate_geomean")) + (" " + s["unit"] if s["unit"] else ""),
                     f"vs {s['reference']}" + (f"; {extra}" if extra else "")])
    return rows


SUMMARY_COLUMNS = ("suite", "class", "dir", "n", "geomean", "min", "target", "slowest case",
                   "pyconv rate", "note")


def console(report: dict, stream=None):
    stream = stream or sys.stdout
    p = lambda s="": print(s, file=stream)  # noqa: E731
    for line in header_lines(report["meta"]):
        p(line)
    p("ratio = reference time / pyconv time (> 1: pyconv faster); rate: GFLOP/s or GB/s; "
      f"~ = noisy (IQR > {NOISE:.0%} of the median); !err = results differ")
    by_suite = OrderedDict()
    for r in report["results"]:
        by_suite.setdefault(r["suite"], []).append(r)
    for suite, rs in by_suite.items():
        p()
        p(f"== {suite} ==")
        shown = [r for r in rs if r["status"] != "skipped"]
        if shown:
            for line in _table([_row(r) for r in shown], COLUMNS):
                p(line)
        for note, n in _skip_notes(rs):
            p(f"skipped {n} case{'s' if n > 1 else ''}: {note}")
    if report["summary"]:
        p()
        p("== summary: geometric mean of the ratio per class (target: ../shared/PERF.md; "
          "ok = met and no shape below 1.0) ==")
        for line in _table(_summary_rows(report["summary"]), SUMMARY_COLUMNS,
                           left=(0, 1, 2, 7)):
            p(line)
    for n in report.get("notes", []):
        p(f"note: {n}")


def _skip_notes(rs):
    counts = OrderedDict()
    for r in rs:
        if r["status"] == "skipped":
            counts[r.get("note", "")] = counts.get(r.get("note", ""), 0) + 1
    return list(counts.items())


def markdown(report: dict) -> str:
    out = ["# pyconv benchmark", ""]
    out += [f"- {line}" for line in header_lines(report["meta"])]
    out += ["- ratio = reference time / pyconv time (> 1: pyconv faster); "
            "rate in GFLOP/s (convolutions) or GB/s (memory-bound ops); "
            f"~ = noisy (IQR > {NOISE:.0%} of the median); !err = results differ",
            f"- command: `{report['meta'].get('command', '')}`", ""]

    def md_table(headers, rows):
        esc = lambda c: c.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        return lines

    if report["summary"]:
        out += ["## Summary (geometric mean of the ratio per class)", ""]
        out += md_table(SUMMARY_COLUMNS, _summary_rows(report["summary"])) + [""]
    by_suite = OrderedDict()
    for r in report["results"]:
        by_suite.setdefault(r["suite"], []).append(r)
    for suite, rs in by_suite.items():
        out += [f"## {suite}", ""]
        shown = [r for r in rs if r["status"] != "skipped"]
        if shown:
            out += md_table(COLUMNS, [_row(r) for r in shown])
        for note, n in _skip_notes(rs):
            out.append(f"\nskipped {n} case{'s' if n > 1 else ''}: {note}")
        out.append("")
    return "\n".join(out)


def write_json(report: dict, path: str):
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)
        f.write("\n")


def check_plot_available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("pyconv.bench: --plot needs matplotlib, which is not importable here "
                         "(pip install matplotlib), or drop --plot and use --json/--markdown")


def plot(report: dict, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in report["results"] if r["status"] == "ok" and r.get("ratio")]
    if not rs:
        raise SystemExit("pyconv.bench: --plot: no case with a ratio to plot")
    suites = list(OrderedDict.fromkeys(r["suite"] for r in rs))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    m = report["meta"]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.22 * len(rs)))
    ys = range(len(rs))
    ratios = [r["ratio"] for r in rs]
    # bars grow from 1.0 (equal speed) to the ratio, one colour per suite
    ax.barh(list(ys), [x - 1.0 for x in ratios], left=1.0,
            color=[colors[suites.index(r["suite"]) % len(colors)] for r in rs])
    for y, x in zip(ys, ratios):
        ax.text(x, y, f" {x:.2f} ", va="center", ha="left" if x >= 1 else "right", fontsize=6)
    lo, hi = min(ratios + [1.0]), max(ratios + [1.0])
    ax.set_xlim(lo / 1.6, hi * 1.6)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([f"{r['suite']}/{r['name']} {r['direction']}"
                        + ("" if r["reference"] == m["baseline"] else f" (vs {r['reference']})")
                        for r in rs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("reference time / pyconv time (> 1: pyconv faster)")
    ax.set_title(f"pyconv vs {m['baseline']}, {m['threads']} threads, {m['cpu']}, "
                 f"{m['date'][:10]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
