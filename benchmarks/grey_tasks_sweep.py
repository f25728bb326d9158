"""Grey measurements of sr4 and deblur-gauss (sigma 3 px, mirrored edges) restored by the default sampler at the true
noise level times 1, 1.5 and sqrt(3): does the grey scale that helps denoising (restore.GREY_NOISE_SCALE) help them?
Validation photos only, made grey (BT.601 luma, 8 bits), noise the same in the three channels (seed 1), restoration
seed 0; prints the mean PSNR / LPIPS-alex per task, level and factor. Measured 2026-12-02 on the 2-core CPU
(benchmarks/noise-estimator/grey.md): no consistent gain (deblur-gauss at 0.05: LPIPS 0.347 / 0.358 / 0.363; sr4 at
0.05: 0.359 / 0.353 / 0.354, at 0.02 flat), so only denoise is scaled (restore.GREY_NOISE_TASKS).

Usage:  python benchmarks/grey_tasks_sweep.py VAL/*.png
"""

import sys

import torch

import operators
from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

TASKS = (("sr4", {}), ("deblur-gauss", {"sigma": 3.0, "boundary": "reflect"}))
NOISE, FACTORS = (0.02, 0.05), (1.0, 1.5, 1.73)


def eight_bits(x: torch.Tensor) -> torch.Tensor:
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


def main() -> None:
    luma = torch.tensor(images.LUMA_WEIGHTS).view(1, 3, 1, 1)
    scores: dict[tuple, list] = {}
    for path in sys.argv[1:]:
        x = images.load_image(path)[:, :3]
        grey = eight_bits((x * luma).sum(1, keepdim=True)).expand(-1, 3, -1, -1)
        gen = torch.Generator().manual_seed(1)
        for task, params in TASKS:
            clean_y = operators.create(task, tuple(grey.shape[1:]), **params).forward(grey)
            for noise in NOISE:
                y = eight_bits(clean_y[:, :1] + noise * torch.randn(clean_y[:, :1].shape, generator=gen))
                for f in FACTORS:  # the grey scale is not applied to these tasks: f is the whole factor
                    est = restore_image(y, task, sigma_y=round(noise * f, 4), params=params, seed=0)[:1]
                    u, ref = images.to_unit(est.clamp(-1, 1).expand(-1, 3, -1, -1)), images.to_unit(grey)
                    scores.setdefault((task, noise, f), []).append((float(psnr(u, ref)),
                                                                     float(lpips_distance(u, ref)[0])))
                print(path, task, noise, flush=True)
    for (task, noise, f), v in sorted(scores.items()):
        print(f"{task} noise {noise:.2f} x{f:.2f}: PSNR {sum(a for a, _ in v) / len(v):.2f} "
              f"LPIPS {sum(b for _, b in v) / len(v):.4f}")


if __name__ == "__main__":
    main()
