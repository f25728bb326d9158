"""`ncvsd bench`: LPIPS / PSNR / SSIM versus network evaluations, against baselines, on the same measurements.

>>> from ncvsd_cli.bench import BenchConfig, run_bench
>>> outcome = run_bench(BenchConfig(dataset="builtin", tasks=["sr4"], nfe=[1, 4], limit=2, out="bench"))  # doctest: +SKIP

Modules: datasets (image sets), measurements (seeds, shared measurements), methods (which runs, how called),
memory (time and peak memory), results (CSV rows, resume), report (summary, plots, grids), distributed (torchrun),
runner (the loop).
"""

from ncvsd_cli.bench.runner import (
    DEFAULT_METHODS,
    DEFAULT_NFE,
    DEFAULT_TASKS,
    BenchConfig,
    BenchOutcome,
    run_bench,
)

__all__ = ["DEFAULT_METHODS", "DEFAULT_NFE", "DEFAULT_TASKS", "BenchConfig", "BenchOutcome", "run_bench"]
