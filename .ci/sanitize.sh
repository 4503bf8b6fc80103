#!/usr/bin/env bash
# CI sanitizer step: rebuild pyconv with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option PYCONV_SANITIZE, RelWithDebInfo, CPU only) into the *current* Python
# environment and run the test suite under it (a reduced sweep). Called from .ci/run
# after the normal tests, inside the same venv.
#
# It replaces the normal build in that venv and does not reinstall it: it runs last.
# To get the normal build back: pip install . (or rerun .ci/run).
#
# Runtime: the extension is instrumented but python and torch are not, so the ASan and
# UBSan runtimes are preloaded (LD_PRELOAD) to come first in the link order.
# Leak detection is off (detect_leaks=0): CPython and torch keep allocations alive
# until exit by design (interned objects, caches, static registries), which LeakSanitizer
# would report as thousands of leaks that are not pyconv's. pyconv's own leaks are
# covered by tests/test_memory.py in the normal run. Any ASan error (overflow,
# use-after-free, ...) or UBSan report aborts the run with a stack trace.
#
# Reduced sweep: PYCONV_HYPOTHESIS_EXAMPLES=10 hypothesis examples per property,
# a short fuzz run (PYCONV_FUZZ_CALLS), no benchmark tests (timing under ASan means
# nothing) and no memory test (ASan's quarantine holds freed memory, so resident
# memory grows by design). Extra pytest arguments: PYCONV_SANITIZE_PYTEST_ARGS.
# Budget: about 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

python=${PYTHON:-python}
# It reinstalls pyconv: never into a system Python by accident.
if ! "$python" -c "import sys; sys.exit(sys.prefix == sys.base_prefix)"; then
  echo "sanitize: $(command -v "$python") is not a virtual environment; activate one (or set PYTHON)" >&2
  exit 2
fi
pip_args=(-Ccmake.define.PYCONV_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo
          -Ccmake.define.PYCONV_CUDA=OFF -Cbuild-dir=build/sanitize)
# Reuse the build tools of the environment when it has them (faster, works offline).
if "$python" -c "import scikit_build_core, pybind11" 2>/dev/null; then
  pip_args+=(--no-build-isolation)
fi
echo "sanitize: building pyconv with ASan+UBSan"
"$python" -m pip install -q --force-reinstall --no-deps "${pip_args[@]}" .
echo "sanitize: build done in $(( $(date +%s) - start )) s"

asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
for lib in "$asan" "$ubsan"; do
  if [ ! -e "$lib" ]; then echo "sanitize: $lib not found (gcc's sanitizer runtime)" >&2; exit 1; fi
done
# (located without importing pyconv: importing the instrumented _C needs the preload)
pkg=$(cd /tmp && "$python" -c "import importlib.util as u; print(u.find_spec('pyconv').submodule_search_locations[0])")
so=$(ls "$pkg"/_C.*so | head -1)
# (ldd's output captured first: with pipefail, grep -q exiting at the first match could
# SIGPIPE ldd and fail the check on a library that is linked; seen once in CI)
deps=$(ldd "$so")
if ! grep -q libasan <<<"$deps"; then
  echo "sanitize: $so is not linked against ASan; the sanitizer build did not install" >&2
  exit 1
fi

export LD_PRELOAD="$asan $ubsan"
# Under ASan, calloc touches what it returns (glibc maps untouched zero pages), so the
# huge allocations the fuzz test provokes would be real: cap them, numpy then raises
# MemoryError as it would on a machine without overcommit.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=4096
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYCONV_HYPOTHESIS_EXAMPLES=${PYCONV_HYPOTHESIS_EXAMPLES:-10}
export PYCONV_FUZZ_CALLS=${PYCONV_FUZZ_CALLS:-300}
# pytest's script, not "python -m pytest": the source tree (without the compiled
# extension) must not shadow the installed package.
pytest_cmd=("$(dirname "$(command -v "$python")")/pytest")
if [ ! -x "${pytest_cmd[0]}" ]; then
  pytest_cmd=("$python" -P -m pytest)  # Python >= 3.11: -P keeps the cwd off sys.path
fi
# shellcheck disable=SC2086
"${pytest_cmd[@]}" -q -p no:cacheprovider \
  --ignore=tests/test_bench.py --ignore=tests/test_memory.py -k "not bench" \
  ${PYCONV_SANITIZE_PYTEST_ARGS:-}
echo "sanitize: ASan+UBSan test run passed; step done in $(( $(date +%s) - start )) s"
