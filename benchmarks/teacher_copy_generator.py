"""Writes the generator at its initialisation, the teacher copy (docs/method.md §1.9), as a checkpoint.

G(y, σ) = D_0(y + sqrt(σ̂² − σ²) z, σ̂): the teacher's posterior mean at the higher noise level
σ̂ = (1 + γ)σ, an approximate posterior sample (smoother than a true one) that needs no distillation.
The shipped default generator is this copy of the photos-tuned teacher: on this project's small model it
beat both generators this project distilled, on the validation photos (benchmarks/photos-default/).
Provenance: the teacher file and sha256, its training data, 0 kimg.
Usage:  python benchmarks/teacher_copy_generator.py TEACHER OUT.safetensors [--fp16] [--gamma G]
"""

from __future__ import annotations

import argparse
import json

import torch

from ncvsd_cli.checkpoints import save_checkpoint
from ncvsd_cli.training.distill import teacher_copy_generator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", help="teacher checkpoint: name, path or `ncvsd train` run directory")
    p.add_argument("out", help="generator checkpoint to write (.safetensors)")
    p.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--gamma", type=float, default=None,
                   help="γ > 0 of σ̂ = (1 + γ)σ (default: the teacher config's, the paper's 0.414)")
    a = p.parse_args()
    if a.gamma is not None and not a.gamma > 0:
        p.error(f"--gamma must be > 0, got {a.gamma}")
    gen, cfg = teacher_copy_generator(a.teacher, gamma=a.gamma)
    path = save_checkpoint(gen, a.out, cfg, dtype=torch.float16 if a.fp16 else None)
    print(json.dumps({"out": str(path), **cfg["provenance"]}))


if __name__ == "__main__":
    main()
