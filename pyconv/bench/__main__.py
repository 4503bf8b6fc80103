import os
import sys

from .cli import main

# Spin of idle OpenMP workers while timing. torch and pyconv each bring a libgomp; its idle
# workers spin for GOMP_SPINCOUNT iterations after a parallel region (300000 by default:
# about 10 ms of a core here), so each library's call would be timed against the other's
# spinning worker (pyconv's dilated 64@56 forward: 2.2 ms after its own call, 2.9 ms right
# after torch's). 10000 (about 0.3 ms, still far longer than the gaps between the parallel
# regions of one call) for both. libgomp reads the variable when it loads, and pyconv's is
# loaded before this module runs, so the bench starts itself again once with it set. An
# explicit GOMP_SPINCOUNT or OMP_WAIT_POLICY is kept (the header records it).
SPINCOUNT = "10000"


def _short_spin() -> None:
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    argv = getattr(sys, "orig_argv", None) or [sys.executable, "-m", "pyconv.bench",
                                               *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    _short_spin()
    try:
        main(sys.argv[1:])
    except BrokenPipeError:          # e.g. `--list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
