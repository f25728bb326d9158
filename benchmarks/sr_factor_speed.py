"""The sr operators' per-axis factorisation (`operators.resize.downsample_factors`: the matrix M, its thin SVD and
pseudo-inverse), before/after side by side: LAPACK's SVD of M and the dense V S⁺ Uᵀ (the former implementation,
kept here as the reference) versus `thin_svd` (M Mᵀ's eigenvectors, banded products) and the banded pseudo-inverse.
An 8000x6000 sr4 output builds one axis of 8000 and one of 6000 px.

Prints one JSON line per (n, factor): the best of `--reps` seconds of each (interleaved), their ratio, and the
largest differences of the singular values and of the pseudo-inverses.
Usage (repository root, idle machine):  python benchmarks/sr_factor_speed.py [--sizes 2048,4096,8000] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from operators import resize


def reference(n: int, factor: int) -> dict[str, np.ndarray]:
    mat = resize.downsample_matrix(n, factor)
    u, s, vt = np.linalg.svd(mat, full_matrices=False)
    kept = s > s.max() * max(mat.shape) * np.finfo(s.dtype).eps
    return {"s": s, "pinv": (vt.T * np.where(kept, 1 / np.where(kept, s, 1), 0)) @ u.T}


def current(n: int, factor: int) -> dict[str, np.ndarray]:
    resize.downsample_factors.cache_clear()
    return resize.downsample_factors(n, factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048,4096,8000")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    for n in (int(v) for v in args.sizes.split(",")):
        best, results = {"reference": float("inf"), "current": float("inf")}, {}
        for _ in range(args.reps):
            for name, fn in (("reference", reference), ("current", current)):
                t = time.perf_counter()
                out = fn(n, args.factor)
                best[name] = min(best[name], time.perf_counter() - t)
                results[name] = out
        print(json.dumps({"n": n, "factor": args.factor, "reference_s": round(best["reference"], 3),
                          "current_s": round(best["current"], 3),
                          "ratio": round(best["reference"] / best["current"], 2),
                          "max_abs_diff_s": float(np.abs(results["reference"]["s"] - results["current"]["s"]).max()),
                          "max_abs_diff_pinv": float(np.abs(results["reference"]["pinv"]
                                                            - results["current"]["pinv"]).max())}), flush=True)


if __name__ == "__main__":
    main()
