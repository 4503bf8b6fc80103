"""pyconv's benchmark harness: ``python -m pyconv.bench --help``.

Times pyconv and PyTorch (or a plain numpy baseline) side by side in one process: same
arrays, same thread count, interleaved calls, median of >= 5 after a warm-up. Reports time,
GFLOP/s (convolutions) or GB/s (memory-bound ops), the ratio reference/pyconv per case and its
geometric mean per class (see ../shared/PERF.md). Modules: ``timing`` (interleaved sampling),
``suites`` (cases and shapes CSV), ``backends`` (pyconv / torch / numpy adapters), ``report``
(header, tables, JSON, Markdown, plot, progress bar), ``cli``.
"""

from .cli import main

__all__ = ["main"]
