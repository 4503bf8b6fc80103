"""Command line of ``python -m pyconv.bench``: pick cases, time them, write the reports."""

from __future__ import annotations

import argparse
import contextlib
import gc
import re
import shlex
import sys

from . import report as rep
from .backends import Env, Unavailable, max_rel_err
from .suites import DEFAULT_SUITES, SUITES, shapes_suite
from .timing import TimingConfig, measure

DIRECTIONS = ("fwd", "bwd", "bwd_data", "bwd_weight", "step")

EPILOG = """\
examples:
  python -m pyconv.bench                          all suites, all cores
  python -m pyconv.bench --quick --suite conv2d --threads 2
  python -m pyconv.bench --shapes ../shared/shapes/deepbench_conv.csv --batch 4 --limit 20
  python -m pyconv.bench --suite max_pool2d --order torch-first --sleep 5
  python -m pyconv.bench --json out.json --markdown out.md --plot out.png

ratio = reference time / pyconv time (> 1 means pyconv is faster). The reference is torch
when importable (else a plain numpy baseline where one is cheap, else pyconv alone).

OpenMP pitfall: torch and pyconv each keep an OpenMP thread pool; libgomp's workers spin
after a parallel region (about 10 ms by default), so a call timed right after the other
library's call would measure that spinning. `python -m pyconv.bench` therefore runs with
GOMP_SPINCOUNT=10000 (about 0.3 ms) for both unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is
set. Check small cases both ways (--order torch-first) and with a pause (--sleep MS).
"""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m pyconv.bench", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time pyconv against PyTorch (or numpy) side by side, op by op.")
    ap.add_argument("--suite", action="append", choices=sorted(SUITES) + ["all"],
                    help="suite to run (repeatable; default: all but 'smoke', or none when "
                         "--shapes is given)")
    ap.add_argument("--shapes", action="append", metavar="FILE",
                    help="CSV of convolution problems (columns of ../shared/shapes/*.csv: "
                         "name,N,C,H,W,K,R,S,pad_h,pad_w,stride_h,stride_w[,groups]); "
                         "repeatable")
    ap.add_argument("--batch", type=int, metavar="N", help="override the batch size N")
    ap.add_argument("--limit", type=int, metavar="N",
                    help="at most N problems (shapes) per suite or shapes file")
    ap.add_argument("--filter", metavar="REGEX",
                    help="only cases whose id 'suite/name/dir' or shape matches")
    ap.add_argument("--direction", action="append", choices=DIRECTIONS,
                    help="only these directions (repeatable; 'bwd' means every backward)")
    ap.add_argument("--threads", type=int, metavar="N",
                    help=f"threads for both libraries (default: all cores, "
                         f"{rep.available_cores()} here)")
    ap.add_argument("--quick", action="store_true",
                    help="short timing (~0.03 s per case, 1 warm-up, median of 5)")
    ap.add_argument("--target", type=float, metavar="S",
                    help="seconds per case, both libraries together (default 0.3; quick 0.03)")
    ap.add_argument("--min-reps", type=int, default=5, metavar="N",
                    help="median of at least N samples per library (default 5)")
    ap.add_argument("--warmup", type=int, metavar="N",
                    help="untimed calls per library first (default 2; quick 1)")
    ap.add_argument("--order", choices=("pyconv-first", "torch-first"), default="pyconv-first",
                    help="who is called first in each A B round ('torch-first' means the "
                         "reference first, whatever it is)")
    ap.add_argument("--sleep", type=float, default=0.0, metavar="MS",
                    help="pause before every timed call, in milliseconds (lets the other "
                         "runtime's OpenMP threads go to sleep)")
    ap.add_argument("--baseline", choices=("auto", "torch", "numpy", "none"), default="auto",
                    help="reference library (auto: torch if importable, else numpy)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--max-mem-gb", type=float, default=8.0, metavar="GB",
                    help="skip cases whose arrays (plus an im2col-sized scratch) would need "
                         "more than this (default 8)")
    ap.add_argument("--no-check", action="store_true",
                    help="do not compare pyconv's result with the reference's")
    ap.add_argument("--json", metavar="PATH", help="write all results as JSON")
    ap.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")
    ap.add_argument("--plot", metavar="PATH", help="bar chart of the ratios (needs matplotlib)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ap.add_argument("--quiet", action="store_true", help="no console table")
    return ap.parse_args(argv)


def select_cases(args) -> tuple[list, list[str]]:
    notes = []
    suites = args.suite or ([] if args.shapes else ["all"])
    if "all" in suites:
        suites = [s for s in suites if s != "all"] + [s for s in DEFAULT_SUITES
                                                       if s not in suites]
    problems_by_suite = []   # [(suite, [[case, ...] per problem])]
    for s in dict.fromkeys(suites):
        cases = SUITES[s](args.batch)
        probs = {}
        for c in cases:
            probs.setdefault(c.name, []).append(c)
        problems_by_suite.append((s, list(probs.values())))
    for path in args.shapes or []:
        try:
            probs, n = shapes_suite(path, args.batch)
        except OSError as e:
            raise SystemExit(f"pyconv.bench: --shapes {path}: {e}")
        notes += n
        problems_by_suite.append((path, probs))
    rx = re.compile(args.filter) if args.filter else None
    dirs = set(args.direction or DIRECTIONS)
    if "bwd" in dirs:
        dirs |= {"bwd_data", "bwd_weight"}
    out = []
    for _, probs in problems_by_suite:
        kept = 0
        for prob in probs:
            cs = [c for c in prob if c.direction in dirs
                  and (rx is None or rx.search(c.id) or rx.search(c.shape))]
            if not cs:
                continue
            if args.limit is not None and kept >= args.limit:
                break
            kept += 1
            out.extend(cs)
    return out, notes


def _err_tol(env) -> float:
    return 1e-3 if env.dtype.itemsize == 4 else 1e-9


def run_case(case, env: Env, cfg: TimingConfig, check: bool) -> dict:
    r = dict(id=case.id, suite=case.suite, **{"class": case.cls}, name=case.name, op=case.op,
             direction=case.direction, shape=case.shape, batch=case.batch, params=case.params,
             flops=case.flops, bytes=case.bytes, unit=case.unit, subject="pyconv",
             reference=None, status="ok")
    r["err_tol"] = _err_tol(env)
    if case.mem_bytes > env.max_mem_bytes:
        return dict(r, status="skipped", note=f"needs ~{case.mem_bytes / 2**30:.1f} GiB "
                                              f"(> --max-mem-gb); use --batch")
    torch = env.torch
    impl = None
    try:
        try:
            impl = case.build(env)
        except Unavailable as e:
            return dict(r, status="skipped", note=str(e))
        except NotImplementedError as e:
            return dict(r, status="skipped", note=f"{case.op}: NotImplementedError {e}".strip())
        except Exception as e:  # noqa: BLE001 - one broken case must not stop the run
            return dict(r, status="error", note=f"setup: {type(e).__name__}: {e}")
        r["reference"] = impl.ref_label
        grad_ctx = torch.set_grad_enabled(impl.grad) if torch is not None \
            else contextlib.nullcontext()
        with grad_ctx:
            try:
                out_s = impl.subject()
            except NotImplementedError as e:
                return dict(r, status="skipped",
                            note=f"pyconv {case.op} ({case.direction}): NotImplementedError"
                                 + (f": {e}" if str(e) else ""))
            except Exception as e:  # noqa: BLE001
                return dict(r, status="error", note=f"pyconv: {type(e).__name__}: {e}")
            fns = [("pyconv", impl.subject)]
            if impl.reference is not None:
                try:
                    out_r = impl.reference()
                except Exception as e:  # noqa: BLE001
                    return dict(r, status="error",
                                note=f"{impl.ref_label}: {type(e).__name__}: {e}")
                fns.append(("reference", impl.reference))
                if check and impl.check:
                    r["max_rel_err"] = max_rel_err(out_s, out_r)
                del out_r
            del out_s
            samples = measure(fns, cfg)
        r["times"] = {k: v.to_dict() for k, v in samples.items()}
        tp = samples["pyconv"].median
        work = case.work
        r["pyconv_rate"] = work / tp / 1e9 if work and tp > 0 else None
        if "reference" in samples:
            tr = samples["reference"].median
            r["reference_rate"] = work / tr / 1e9 if work and tr > 0 else None
            r["ratio"] = tr / tp if tp > 0 else None
            if case.cls == "fused-overhead" and r["ratio"]:
                r["overhead_pct"] = (1 / r["ratio"] - 1) * 100
        else:
            r["ratio"] = None
        return r
    finally:
        del impl
        if case.mem_bytes > 2**28:   # a full collection costs ~0.1 s with torch loaded
            gc.collect()


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.plot:
        rep.check_plot_available()
    if args.limit is not None and args.limit < 0:
        raise SystemExit("pyconv.bench: --limit must be >= 0")
    if args.threads is not None and args.threads < 1:
        raise SystemExit("pyconv.bench: --threads must be >= 1")
    if args.batch is not None and args.batch < 1:
        raise SystemExit("pyconv.bench: --batch must be >= 1")
    cases, notes = select_cases(args)
    if args.list:
        for c in cases:
            print(f"{c.id:60s} {c.shape}")
        return {"cases": [c.id for c in cases]}

    env = Env(baseline=args.baseline, dtype=args.dtype, max_mem_gb=args.max_mem_gb)
    threads = args.threads or rep.available_cores()
    got = env.set_threads(threads)
    base = TimingConfig.quick() if args.quick else TimingConfig()
    cfg = TimingConfig(
        target_s=args.target if args.target is not None else base.target_s,
        min_reps=max(1, args.min_reps), max_reps=base.max_reps,
        warmup=args.warmup if args.warmup is not None else base.warmup,
        sleep_s=max(0.0, args.sleep) / 1e3,
        first="pyconv" if args.order == "pyconv-first" else "reference")
    meta = rep.header(env, threads, got, dict(
        order=args.order, sleep_ms=args.sleep, quick=args.quick, target_s=cfg.target_s,
        min_reps=cfg.min_reps, warmup=cfg.warmup,
        command="python -m pyconv.bench " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))))
    if env.pyconv is None or env.F is None:
        notes.append("pyconv.functional is not importable: every pyconv case is skipped")

    progress = rep.Progress(len(cases), enabled=not args.no_progress)
    results = []
    try:
        for i, c in enumerate(cases):
            progress.update(i, c.id)
            results.append(run_case(c, env, cfg, check=not args.no_check))
        progress.update(len(cases), "done")
    finally:
        progress.close()
    meta["openmp_runtimes"] = rep.openmp_runtimes()   # torch and pyconv are loaded by now
    if len(meta["openmp_runtimes"]) > 1:
        notes.append(f"{len(meta['openmp_runtimes'])} OpenMP runtimes in this process: check "
                     "sub-millisecond cases with --order torch-first and --sleep 5")
    n_err = sum(r["status"] == "error" for r in results)
    if n_err:
        notes.append(f"{n_err} case{'s' if n_err > 1 else ''} failed (status error, see above)")
    report = {"meta": meta, "results": results, "summary": rep.summarize(results),
              "notes": notes}
    if not args.quiet:
        rep.console(report)
    if args.json:
        rep.write_json(report, args.json)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(rep.markdown(report) + "\n")
    if args.plot:
        rep.plot(report, args.plot)
    return report
