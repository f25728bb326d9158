"""Non-local means' filtering strength h (in units of sigma_y) for the `nl-means` denoising baseline.

Photos: five of scikit-image's training photos (`ncvsd_cli.training.data.BUILTIN_TRAIN`; never the held-out
astronaut / coffee / chelsea or the validation photos), centre square resized to 256 px, on [-1, 1]. Noise: seed 0,
sigma_y 0.02-0.3. Denoiser: scikit-image `denoise_nl_means` with the settings of `ncvsd_cli.sampling.classical.nl_means`
and h = factor x sigma_y. Prints a markdown table of PSNR (dB) per photo, sigma_y and factor, the best factor and
the rule's loss against it (`nl_means_strength`).
Usage:  python benchmarks/nl_means_strength.py > benchmarks/nl-means/sweep.md
"""

from __future__ import annotations

import numpy as np
import skimage.data
from skimage.metrics import peak_signal_noise_ratio
from skimage.restoration import denoise_nl_means
from skimage.transform import resize

from ncvsd_cli.sampling.classical import nl_means_strength

PHOTOS = ("rocket", "stereo_motorcycle", "hubble_deep_field", "immunohistochemistry", "retina")
SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.3)
FACTORS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def photo(name: str) -> np.ndarray:
    img = skimage.data.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(skimage.data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s, :3]
    return resize(img, (256, 256), anti_aliasing=True) * 2 - 1


def denoise(y: np.ndarray, sigma: float, factor: float) -> np.ndarray:
    out = denoise_nl_means(y, h=factor * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                           channel_axis=-1)
    return np.clip(out, -1, 1)


def main() -> None:
    rng = np.random.default_rng(0)
    print("| photo | sigma_y | noisy | " + " | ".join(f"h {f}σ" for f in FACTORS) + " | best | rule (factor) | rule loss dB |")
    print("|---|---|---|" + "---|" * len(FACTORS) + "---|---|---|")
    losses = []
    for name in PHOTOS:
        x = photo(name)
        for sigma in SIGMAS:
            y = x + sigma * rng.standard_normal(x.shape)
            scores = {f: peak_signal_noise_ratio(x, denoise(y, sigma, f), data_range=2) for f in FACTORS}
            rule = nl_means_strength(sigma)
            ruled = peak_signal_noise_ratio(x, denoise(y, sigma, rule), data_range=2)
            best = max(scores, key=scores.get)
            losses.append(scores[best] - ruled)
            print(f"| {name} | {sigma} | {peak_signal_noise_ratio(x, y.clip(-1, 1), data_range=2):.2f} | "
                  + " | ".join(f"{scores[f]:.2f}" for f in FACTORS)
                  + f" | {best} | {ruled:.2f} ({rule:.2f}) | {scores[best] - ruled:.2f} |", flush=True)
    print(f"\nLargest loss of the rule against the best factor: {max(losses):.2f} dB (mean {np.mean(losses):.2f}).")


if __name__ == "__main__":
    main()
